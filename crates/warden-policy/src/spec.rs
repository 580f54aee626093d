//! The policy file: TOML → checked, compiled structures. Every problem is collected with
//! its line, so `warden policy lint` can report them all at once.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use crate::error::Problem;
use crate::money::{currency_exponent, to_minor_units};
use crate::rules::{CompiledRule, RuleCompiler};
use crate::schema::{ArgSpec, ArgType};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub ledger: RawLedger,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub roles: BTreeMap<Spanned<String>, RawRole>,
    #[serde(default)]
    pub tools: BTreeMap<Spanned<String>, RawTool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLedger {
    pub url: Option<Spanned<String>>,
    pub url_env: Option<String>,
    pub schema: Option<Spanned<String>>,
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub queries: BTreeMap<Spanned<String>, RawQuery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    pub sql: Spanned<String>,
    pub returns: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)] // documentation for readers of the policy file
    pub description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub url: Option<Spanned<String>>,
    pub url_env: Option<String>,
    pub schema: Option<Spanned<String>>,
    pub hold_ttl_secs: Option<u64>,
    pub posted_ttl_secs: Option<u64>,
    pub approval_ttl_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub fingerprint_key_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub tools: Vec<Spanned<String>>,
    #[serde(default)]
    pub require_mfa: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTool {
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub require_mfa: bool,
    #[serde(default)]
    pub args: BTreeMap<Spanned<String>, RawArg>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    pub hold: Option<Spanned<RawHold>>,
    pub idempotency_key: Option<Spanned<String>>,
    pub approval: Option<Spanned<RawLimits>>,
    pub velocity: Option<Spanned<RawVelocity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArg {
    #[serde(rename = "type")]
    pub ty: Spanned<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub sensitive: bool,
    pub values: Option<Vec<String>>,
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
    pub pattern: Option<Spanned<String>>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub currency: Option<Spanned<String>>,
    pub allowed: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Spanned<String>,
    pub expr: Spanned<String>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHold {
    pub resource: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub above: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVelocity {
    #[serde(default = "day")]
    pub window_secs: u64,
    pub max: BTreeMap<String, String>,
}

fn day() -> u64 {
    86_400
}

/// What a ledger query returns (first column of the first row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Returns {
    Integer,
    String,
    Bool,
}

pub(crate) struct QuerySpec {
    pub name: String,
    pub sql: String,
    pub returns: Returns,
    pub line: usize,
}

pub(crate) struct MoneyArg {
    pub amount: String,
    pub currency: String,
}

pub(crate) struct ToolSpec {
    pub name: String,
    pub require_mfa: bool,
    pub args: Vec<(String, ArgSpec)>,
    pub rules: Vec<CompiledRule>,
    pub money: Option<MoneyArg>,
    pub hold_resource: Option<String>,
    pub idempotency_arg: Option<String>,
    /// currency → minor units; above this, `needs_approval`.
    pub approval_above: Option<BTreeMap<String, i64>>,
    pub velocity: Option<(u64, BTreeMap<String, i64>)>,
}

pub(crate) struct RoleSpec {
    pub tools: BTreeSet<String>,
    pub require_mfa: bool,
}

pub(crate) struct Spec {
    pub ledger_url: Option<(String, usize)>,
    pub ledger_url_env: Option<String>,
    pub ledger_schema: Option<String>,
    pub ledger_timeout_ms: u64,
    pub queries: BTreeMap<String, QuerySpec>,
    pub state_url: Option<String>,
    pub state_url_env: Option<String>,
    pub state_schema: Option<String>,
    pub hold_ttl_secs: u64,
    pub posted_ttl_secs: u64,
    pub approval_ttl_secs: u64,
    pub fingerprint_key_env: Option<String>,
    pub roles: BTreeMap<String, RoleSpec>,
    pub tools: BTreeMap<String, ToolSpec>,
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses and checks a policy source. Returns the spec when there are no problems.
pub(crate) fn compile(src: &str, problems: &mut Vec<Problem>) -> Option<Spec> {
    let raw: RawPolicy = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(src, s.start));
            problems.push(Problem::new(
                line,
                format!("invalid policy TOML: {}", e.message()),
            ));
            return None;
        }
    };
    let at = |span: std::ops::Range<usize>| Some(line_of(src, span.start));
    let start = problems.len();

    if let Some(v) = raw.version {
        if v != 1 {
            problems.push(Problem::new(
                Some(1),
                format!("unsupported policy version {v} (this Warden reads version 1)"),
            ));
        }
    }

    // Ledger queries.
    let mut queries = BTreeMap::new();
    for (name, q) in &raw.ledger.queries {
        let line = line_of(src, name.span().start);
        if !is_identifier(name.get_ref()) {
            problems.push(Problem::new(
                Some(line),
                format!("query name {:?} is not an identifier", name.get_ref()),
            ));
        }
        let returns = match q.returns.get_ref().as_str() {
            "integer" => Returns::Integer,
            "string" => Returns::String,
            "bool" => Returns::Bool,
            other => {
                problems.push(Problem::new(
                    at(q.returns.span()),
                    format!(
                        "query {}: unknown return type {other:?} (integer, string or bool)",
                        name.get_ref()
                    ),
                ));
                Returns::Integer
            }
        };
        let sql = q.sql.get_ref().trim().to_string();
        let lowered = sql.to_ascii_lowercase();
        if !(lowered.starts_with("select") || lowered.starts_with("with")) || sql.contains(';') {
            problems.push(Problem::new(
                at(q.sql.span()),
                format!(
                    "query {}: must be a single SELECT statement (no ';')",
                    name.get_ref()
                ),
            ));
        }
        queries.insert(
            name.get_ref().clone(),
            QuerySpec {
                name: name.get_ref().clone(),
                sql,
                returns,
                line: line_of(src, q.sql.span().start),
            },
        );
    }

    let schema_name =
        |s: &Option<Spanned<String>>, problems: &mut Vec<Problem>| -> Option<String> {
            let s = s.as_ref()?;
            if !is_identifier(s.get_ref()) {
                problems.push(Problem::new(
                    at(s.span()),
                    "schema must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)",
                ));
            }
            Some(s.get_ref().clone())
        };
    let ledger_schema = schema_name(&raw.ledger.schema, problems);
    let state_schema = schema_name(&raw.state.schema, problems);

    // Tools.
    let mut tools = BTreeMap::new();
    for (tname, t) in &raw.tools {
        let tline = line_of(src, tname.span().start);
        let name = tname.get_ref().clone();
        let mut args = Vec::new();
        let mut money_args = Vec::new();
        let declared: BTreeSet<&str> = t.args.keys().map(|k| k.get_ref().as_str()).collect();
        for (aname, a) in &t.args {
            let aline = line_of(src, a.ty.span().start);
            if !is_identifier(aname.get_ref())
                || ["ledger", "principal", "holds"].contains(&aname.get_ref().as_str())
            {
                problems.push(Problem::new(
                    Some(line_of(src, aname.span().start)),
                    format!("tool {name}: argument name {:?} is not usable (identifier, not ledger/principal/holds)", aname.get_ref()),
                ));
            }
            let ty = match parse_type(a, &declared) {
                Ok(ty) => ty,
                Err(msg) => {
                    problems.push(Problem::new(
                        Some(aline),
                        format!("tool {name}: argument {}: {msg}", aname.get_ref()),
                    ));
                    continue;
                }
            };
            if let ArgType::Money { currency } = &ty {
                let ok = t
                    .args
                    .iter()
                    .any(|(k, v)| k.get_ref() == currency && v.ty.get_ref() == "currency");
                if !ok {
                    problems.push(Problem::new(
                        Some(aline),
                        format!("tool {name}: money argument {} names currency argument {currency:?}, which is not a `currency` argument of this tool", aname.get_ref()),
                    ));
                }
                money_args.push(MoneyArg {
                    amount: aname.get_ref().clone(),
                    currency: currency.clone(),
                });
            }
            args.push((
                aname.get_ref().clone(),
                ArgSpec {
                    ty,
                    optional: a.optional,
                    sensitive: a.sensitive,
                },
            ));
        }
        let needs_money = t.hold.is_some() || t.approval.is_some() || t.velocity.is_some();
        if money_args.len() > 1 && needs_money {
            problems.push(Problem::new(
                Some(tline),
                format!(
                    "tool {name}: holds, approvals and velocity need exactly one money argument"
                ),
            ));
        }
        if money_args.is_empty() && needs_money {
            problems.push(Problem::new(
                Some(tline),
                format!("tool {name}: holds, approvals and velocity need a money argument"),
            ));
        }
        let money = if money_args.len() == 1 {
            money_args.pop()
        } else {
            None
        };
        let money_currencies = |limits: &BTreeMap<String, String>,
                                what: &str,
                                line: usize,
                                problems: &mut Vec<Problem>| {
            let mut out = BTreeMap::new();
            for (cur, amount) in limits {
                match to_minor_units(amount, cur) {
                    Ok(m) => {
                        out.insert(cur.clone(), m);
                    }
                    Err(e) => problems.push(Problem::new(
                        Some(line),
                        format!("tool {name}: {what} {cur}: {e}"),
                    )),
                }
            }
            out
        };
        let approval_above = t.approval.as_ref().map(|a| {
            money_currencies(
                &a.get_ref().above,
                "approval threshold",
                line_of(src, a.span().start),
                problems,
            )
        });
        let velocity = t.velocity.as_ref().map(|v| {
            let line = line_of(src, v.span().start);
            if v.get_ref().window_secs == 0 {
                problems.push(Problem::new(
                    Some(line),
                    format!("tool {name}: velocity window_secs must be > 0"),
                ));
            }
            (
                v.get_ref().window_secs,
                money_currencies(&v.get_ref().max, "velocity cap", line, problems),
            )
        });
        let hold_resource = t.hold.as_ref().map(|h| {
            let r = h.get_ref().resource.clone();
            if !declared.contains(r.as_str()) {
                problems.push(Problem::new(
                    at(h.span()),
                    format!("tool {name}: hold resource {r:?} is not an argument of this tool"),
                ));
            }
            r
        });
        let idempotency_arg = t.idempotency_key.as_ref().map(|k| {
            let ok = t
                .args
                .iter()
                .any(|(n, a)| n.get_ref() == k.get_ref() && a.ty.get_ref() == "string");
            if !ok {
                problems.push(Problem::new(
                    at(k.span()),
                    format!(
                        "tool {name}: idempotency_key {:?} is not a string argument of this tool",
                        k.get_ref()
                    ),
                ));
            }
            k.get_ref().clone()
        });

        // Rules.
        let compiler = RuleCompiler {
            args: &declared,
            queries: &queries,
        };
        let mut rules = Vec::new();
        let mut seen = BTreeSet::new();
        let mut uses_holds = false;
        for r in &t.rules {
            let line = line_of(src, r.expr.span().start);
            if !seen.insert(r.id.get_ref().clone()) {
                problems.push(Problem::new(
                    at(r.id.span()),
                    format!("tool {name}: duplicate rule id {:?}", r.id.get_ref()),
                ));
            }
            match compiler.compile(r.id.get_ref(), r.expr.get_ref(), &r.message) {
                Ok(c) => {
                    uses_holds |= c.uses_holds();
                    rules.push(c);
                }
                Err(msg) => problems.push(Problem::new(
                    Some(line),
                    format!("tool {name}: rule {}: {msg}", r.id.get_ref()),
                )),
            }
        }
        if hold_resource.is_some() && !uses_holds {
            problems.push(Problem::new(
                Some(tline),
                format!("tool {name}: places holds but no rule reads holds(...); concurrent calls could overdraw"),
            ));
        }
        tools.insert(
            name.clone(),
            ToolSpec {
                name,
                require_mfa: t.require_mfa,
                args,
                rules,
                money,
                hold_resource,
                idempotency_arg,
                approval_above,
                velocity,
            },
        );
    }

    // Roles.
    let mut roles = BTreeMap::new();
    for (rname, r) in &raw.roles {
        let mut set = BTreeSet::new();
        for tool in &r.tools {
            if !tools.contains_key(tool.get_ref()) {
                problems.push(Problem::new(
                    at(tool.span()),
                    format!(
                        "role {}: unknown tool {:?}",
                        rname.get_ref(),
                        tool.get_ref()
                    ),
                ));
            }
            set.insert(tool.get_ref().clone());
        }
        roles.insert(
            rname.get_ref().clone(),
            RoleSpec {
                tools: set,
                require_mfa: r.require_mfa,
            },
        );
    }
    if raw.roles.is_empty() {
        problems.push(Problem::new(
            Some(1),
            "policy declares no roles: every call would be denied",
        ));
    }

    if problems.len() > start {
        return None;
    }
    Some(Spec {
        ledger_url: raw
            .ledger
            .url
            .as_ref()
            .map(|u| (u.get_ref().clone(), line_of(src, u.span().start))),
        ledger_url_env: raw.ledger.url_env.clone(),
        ledger_schema,
        ledger_timeout_ms: raw.ledger.timeout_ms.unwrap_or(2_000),
        queries,
        state_url: raw.state.url.as_ref().map(|u| u.get_ref().clone()),
        state_url_env: raw.state.url_env.clone(),
        state_schema,
        hold_ttl_secs: raw.state.hold_ttl_secs.unwrap_or(900),
        posted_ttl_secs: raw.state.posted_ttl_secs.unwrap_or(86_400),
        approval_ttl_secs: raw.state.approval_ttl_secs.unwrap_or(86_400),
        fingerprint_key_env: raw.audit.fingerprint_key_env.clone(),
        roles,
        tools,
    })
}

fn parse_type(a: &RawArg, declared: &BTreeSet<&str>) -> Result<ArgType, String> {
    let ty = a.ty.get_ref().trim();
    let t = match ty {
        "string" => {
            let pattern = match &a.pattern {
                Some(p) => {
                    // Anchor the whole value: a pattern is a format, not a substring search.
                    let anchored = format!("^(?:{})$", p.get_ref());
                    Some(
                        regex::Regex::new(&anchored)
                            .map_err(|e| format!("pattern does not compile: {e}"))?,
                    )
                }
                None => None,
            };
            ArgType::String {
                min_len: a.min_len.unwrap_or(0),
                max_len: a.max_len.unwrap_or(1024),
                pattern,
            }
        }
        "integer" => ArgType::Integer {
            min: a.min.unwrap_or(i64::MIN),
            max: a.max.unwrap_or(i64::MAX),
        },
        "bool" => ArgType::Bool,
        "money" => {
            let c = a
                .currency
                .as_ref()
                .ok_or("money needs `currency = \"<currency argument>\"`")?;
            if !declared.contains(c.get_ref().as_str()) {
                return Err(format!(
                    "currency argument {:?} is not declared",
                    c.get_ref()
                ));
            }
            ArgType::Money {
                currency: c.get_ref().clone(),
            }
        }
        "currency" => {
            let allowed = match &a.allowed {
                Some(list) => {
                    for c in list {
                        if currency_exponent(c.get_ref()).is_none() {
                            return Err(format!("{:?} is not an ISO 4217 currency", c.get_ref()));
                        }
                    }
                    Some(list.iter().map(|c| c.get_ref().clone()).collect())
                }
                None => None,
            };
            ArgType::Currency { allowed }
        }
        "enum" => {
            let values = a.values.clone().ok_or("enum needs `values = [...]`")?;
            if values.is_empty() {
                return Err("enum needs at least one value".into());
            }
            ArgType::Enum(values)
        }
        other if other.starts_with("enum[") && other.ends_with(']') => {
            let inner = &other[5..other.len() - 1];
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().trim_matches('"').to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err("enum[...] needs at least one value".into());
            }
            ArgType::Enum(values)
        }
        other => {
            return Err(format!(
                "unknown type {other:?} (string, integer, bool, enum[...], money, currency)"
            ))
        }
    };
    Ok(t)
}
