//! Argument schemas: types, limits, and normalisation (money to integer minor units).

use serde_json::{Map, Value};

use crate::money::{currency_exponent, to_minor_units, MoneyError};

/// One argument's declared type.
#[derive(Debug)]
pub(crate) enum ArgType {
    String {
        min_len: usize,
        max_len: usize,
        pattern: Option<regex::Regex>,
    },
    Integer {
        min: i64,
        max: i64,
    },
    Bool,
    Enum(Vec<String>),
    Money {
        currency: String,
    },
    Currency {
        allowed: Option<Vec<String>>,
    },
}

#[derive(Debug)]
pub(crate) struct ArgSpec {
    pub ty: ArgType,
    pub optional: bool,
    pub sensitive: bool,
}

/// A schema violation: the rule id and a message that never repeats the value.
pub(crate) struct Violation {
    pub rule: &'static str,
    pub message: String,
}

fn v(rule: &'static str, message: String) -> Violation {
    Violation { rule, message }
}

/// Checks `args` against the tool's schema and returns the normalised arguments
/// (declaration order, money in minor units, optional-and-absent omitted), or every
/// violation found.
pub(crate) fn normalise(
    specs: &[(String, ArgSpec)],
    args: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<Violation>> {
    let mut out = Map::new();
    let mut errs = Vec::new();
    for name in args.keys() {
        if !specs.iter().any(|(n, _)| n == name) {
            // The name is the model's text; cap it so a huge key cannot flood the verdict.
            let shown: String = name.chars().take(64).collect();
            errs.push(v("args.unknown", format!("unknown argument {shown:?}")));
        }
    }
    // Currencies first: money arguments need them.
    for (name, spec) in specs {
        let value = match args.get(name) {
            None | Some(Value::Null) => {
                if !spec.optional {
                    errs.push(v(
                        "args.missing",
                        format!("missing required argument {name:?}"),
                    ));
                }
                continue;
            }
            Some(val) => val,
        };
        match &spec.ty {
            ArgType::String {
                min_len,
                max_len,
                pattern,
            } => match value.as_str() {
                Some(s) => {
                    let n = s.chars().count();
                    if n < *min_len || n > *max_len {
                        errs.push(v(
                            "args.length",
                            format!("{name}: length must be {min_len}..={max_len} characters"),
                        ));
                    } else if pattern.as_ref().is_some_and(|p| !p.is_match(s)) {
                        errs.push(v(
                            "args.pattern",
                            format!("{name}: does not match the required format"),
                        ));
                    } else {
                        out.insert(name.clone(), Value::String(s.to_string()));
                    }
                }
                None => errs.push(v("args.type", format!("{name}: must be a string"))),
            },
            ArgType::Integer { min, max } => match value.as_i64() {
                Some(i) if i >= *min && i <= *max => {
                    out.insert(name.clone(), Value::from(i));
                }
                Some(_) => errs.push(v(
                    "args.range",
                    format!("{name}: must be between {min} and {max}"),
                )),
                None => errs.push(v("args.type", format!("{name}: must be an integer"))),
            },
            ArgType::Bool => match value.as_bool() {
                Some(b) => {
                    out.insert(name.clone(), Value::Bool(b));
                }
                None => errs.push(v("args.type", format!("{name}: must be true or false"))),
            },
            ArgType::Enum(values) => match value.as_str() {
                Some(s) if values.iter().any(|x| x == s) => {
                    out.insert(name.clone(), Value::String(s.to_string()));
                }
                _ => errs.push(v(
                    "args.enum",
                    format!("{name}: must be one of {}", values.join(", ")),
                )),
            },
            ArgType::Currency { allowed } => match value.as_str() {
                Some(s) if currency_exponent(s).is_some() => {
                    if allowed.as_ref().is_some_and(|a| !a.iter().any(|c| c == s)) {
                        errs.push(v(
                            "args.currency",
                            format!("{name}: currency not allowed for this tool"),
                        ));
                    } else {
                        out.insert(name.clone(), Value::String(s.to_string()));
                    }
                }
                _ => errs.push(v(
                    "args.currency",
                    format!("{name}: must be an ISO 4217 currency code (e.g. USD)"),
                )),
            },
            ArgType::Money { currency } => {
                let Some(cur) = args
                    .get(currency)
                    .and_then(Value::as_str)
                    .filter(|c| currency_exponent(c).is_some())
                else {
                    // The currency argument reports its own error.
                    continue;
                };
                let text = match value {
                    Value::String(s) => Some(s.clone()),
                    // serde_json keeps integers exact; floats are re-read from their shortest
                    // round-trip form, and exponent notation in that form is refused below.
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                let Some(text) = text else {
                    errs.push(v(
                        "args.type",
                        format!("{name}: must be a decimal string such as \"120.00\""),
                    ));
                    continue;
                };
                match to_minor_units(&text, cur) {
                    Ok(minor) => {
                        out.insert(name.clone(), Value::from(minor));
                    }
                    Err(e) => {
                        let rule = match e {
                            MoneyError::TooManyDecimals { .. } => "money.precision",
                            MoneyError::Negative | MoneyError::Zero => "money.sign",
                            _ => "money.format",
                        };
                        errs.push(v(rule, format!("{name}: {e}")));
                    }
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}
