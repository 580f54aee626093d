//! Scanning, redacting and restoring the string leaves of a JSON value.
//!
//! Chat messages and tool arguments are JSON; their structure must survive
//! redaction. Only string values are scanned and rewritten (object keys are
//! structure and left alone); each string is scanned with its nearest object
//! key as context, so `{"ssn": "078-05-1120"}` is read as an SSN. Walks are
//! iterative, so arbitrarily deep input cannot overflow the stack.
//!
//! # Example
//! ```
//! use warden_core::json::{redact_json, restore_json_value};
//! use warden_core::{Detect, Finding, RedactConfig, Redactor, Vault};
//! # struct Emails;
//! # impl Detect for Emails {
//! #     fn detect(&self, text: &str, _key: Option<&str>) -> Vec<Finding> {
//! #         text.match_indices("jane@example.org").map(|(at, v)| Finding {
//! #             entity: "EMAIL".into(), rule: "t".into(), start: at, end: at + v.len(),
//! #             score: 1.0, evidence: vec![], obfuscated: false }).collect()
//! #     }
//! # }
//! let redactor = Redactor::new(Emails, RedactConfig::default(), None);
//! let mut v = serde_json::json!({"messages": [{"role": "user", "content": "I am jane@example.org"}]});
//! let original = v.clone();
//! let mut vault = Vault::new();
//! let found = redact_json(&redactor, &mut v, &mut vault);
//! assert_eq!(found[0].pointer, "/messages/0/content");
//! assert_eq!(v["messages"][0]["content"], "I am <EMAIL_1>");
//! restore_json_value(&vault, &mut v);
//! assert_eq!(v, original);
//! ```

use std::collections::HashSet;

use serde_json::Value;

use crate::finding::Finding;
use crate::redact::repeats::Repeats;
use crate::redact::vault::placeholders;
use crate::redact::{Detect, Redactor, Vault};

/// A finding inside a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonFinding {
    /// RFC 6901 JSON Pointer to the string the finding is in, e.g.
    /// `/messages/0/content`.
    pub pointer: String,
    /// The finding; its span is a byte range in that string.
    pub finding: Finding,
}

/// One step of a path from the root: an array index or an object key.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Index(usize),
    Key(&'a str),
}

/// Renders a path as an RFC 6901 JSON Pointer (`~` → `~0`, `/` → `~1`).
///
/// Built only for strings that have findings, so walking a deep document
/// stays linear.
fn pointer(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Index(i) => out.push_str(&i.to_string()),
            Seg::Key(k) => {
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out
}

/// A pending node: the value, its depth, the step that reached it and the
/// nearest object key above it (its scanning context).
struct Frame<'a, V> {
    value: V,
    depth: usize,
    seg: Option<Seg<'a>>,
    key: Option<&'a str>,
}

/// Visits every string leaf in document order with its path and context
/// key, without recursion; `visit` may rewrite the string.
fn walk_mut<'a>(
    value: &'a mut Value,
    mut visit: impl FnMut(&[Seg<'a>], Option<&'a str>, &mut String),
) {
    let mut path: Vec<Seg<'a>> = Vec::new();
    let mut stack = vec![Frame {
        value,
        depth: 0,
        seg: None,
        key: None,
    }];
    while let Some(Frame {
        value,
        depth,
        seg,
        key,
    }) = stack.pop()
    {
        path.truncate(depth.saturating_sub(1));
        if let Some(seg) = seg {
            path.push(seg);
        }
        match value {
            Value::String(s) => visit(&path, key, s),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate().rev() {
                    if is_container_or_string(item) {
                        stack.push(Frame {
                            value: item,
                            depth: depth + 1,
                            seg: Some(Seg::Index(i)),
                            key,
                        });
                    }
                }
            }
            Value::Object(map) => {
                let children: Vec<_> = map.iter_mut().collect();
                for (k, item) in children.into_iter().rev() {
                    if is_container_or_string(item) {
                        let k = k.as_str();
                        stack.push(Frame {
                            value: item,
                            depth: depth + 1,
                            seg: Some(Seg::Key(k)),
                            key: Some(k),
                        });
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The same walk, read-only.
fn walk<'a>(value: &'a Value, mut visit: impl FnMut(&[Seg<'a>], Option<&'a str>, &'a str)) {
    let mut path: Vec<Seg<'a>> = Vec::new();
    let mut stack = vec![Frame {
        value,
        depth: 0,
        seg: None,
        key: None,
    }];
    while let Some(Frame {
        value,
        depth,
        seg,
        key,
    }) = stack.pop()
    {
        path.truncate(depth.saturating_sub(1));
        if let Some(seg) = seg {
            path.push(seg);
        }
        match value {
            Value::String(s) => visit(&path, key, s),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    if is_container_or_string(item) {
                        stack.push(Frame {
                            value: item,
                            depth: depth + 1,
                            seg: Some(Seg::Index(i)),
                            key,
                        });
                    }
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter().rev() {
                    if is_container_or_string(item) {
                        let k = k.as_str();
                        stack.push(Frame {
                            value: item,
                            depth: depth + 1,
                            seg: Some(Seg::Key(k)),
                            key: Some(k),
                        });
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

fn is_container_or_string(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Array(_) | Value::Object(_))
}

/// Scans every string leaf of `value`, each with its nearest object key as
/// context; findings come in document order.
///
/// `detector` is normally a [`Scanner`](crate::Scanner).
///
/// # Example
/// ```
/// use warden_core::json::scan_json;
/// use warden_core::{Detect, Finding};
/// # struct Ssn;
/// # impl Detect for Ssn {
/// #     fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
/// #         if key != Some("ssn") { return vec![]; }
/// #         vec![Finding { entity: "US_SSN".into(), rule: "t".into(), start: 0, end: text.len(),
/// #             score: 1.0, evidence: vec![], obfuscated: false }]
/// #     }
/// # }
/// let v = serde_json::json!({"people": [{"a/b": {"ssn": "078-05-1120"}}]});
/// let found = scan_json(&Ssn, &v);
/// assert_eq!(found[0].pointer, "/people/0/a~1b/ssn");
/// ```
pub fn scan_json<D: Detect + ?Sized>(detector: &D, value: &Value) -> Vec<JsonFinding> {
    let mut out = Vec::new();
    walk(value, |path, key, s| {
        let findings = detector.detect(s, key);
        if findings.is_empty() {
            return;
        }
        let at = pointer(path);
        out.extend(findings.into_iter().map(|finding| JsonFinding {
            pointer: at.clone(),
            finding,
        }));
    });
    out
}

/// Redacts every string leaf of `value` in place (see the module example);
/// the result is always valid JSON with the same structure. Returns what was
/// redacted, with pointers, in document order.
///
/// A value detected in one string is also redacted wherever else it occurs
/// in the document (values of 4 bytes or more), as with
/// [`Redactor::redact_with_key`]: an SSN found under `"ssn"` stays hidden
/// when a later free-text field repeats it.
pub fn redact_json(redactor: &Redactor, value: &mut Value, vault: &mut Vault) -> Vec<JsonFinding> {
    // Pass 1: detect in every leaf, then search the whole document for the
    // values found anywhere in it.
    // Token-like strings anywhere in the document are never handed out as
    // new tokens: restoring would otherwise rewrite them.
    let (mut per_leaf, repeats, literal_tokens) = {
        let mut leaves: Vec<(&str, Vec<Finding>)> = Vec::new();
        walk(value, |_, key, s| {
            leaves.push((s, redactor.detector().detect(s, key)))
        });
        let repeats = Repeats::new(leaves.iter().map(|(t, f)| (*t, f.as_slice())));
        let literal_tokens: Vec<String> = leaves
            .iter()
            .flat_map(|(t, _)| placeholders(t))
            .map(str::to_owned)
            .collect();
        let per_leaf: Vec<Vec<Finding>> = leaves.into_iter().map(|(_, f)| f).collect();
        (per_leaf, repeats, literal_tokens)
    };
    let avoid: HashSet<&str> = literal_tokens.iter().map(String::as_str).collect();
    // Pass 2: same walk order, now rewriting.
    let mut out = Vec::new();
    let mut leaf = 0;
    walk_mut(value, |path, _, s| {
        let mut findings = per_leaf
            .get_mut(leaf)
            .map(std::mem::take)
            .unwrap_or_default();
        leaf += 1;
        if let Some(rep) = &repeats {
            rep.extend(s, &mut findings);
        }
        if findings.is_empty() {
            return;
        }
        *s = redactor.redact_findings_avoiding(s, &findings, vault, &avoid);
        let at = pointer(path);
        out.extend(findings.into_iter().map(|finding| JsonFinding {
            pointer: at.clone(),
            finding,
        }));
    });
    out
}

/// Puts originals back into every string leaf of `value`. Strings in a
/// `Value` are unescaped, so no JSON escaping is needed here.
///
/// # Example
/// ```
/// let mut vault = warden_core::Vault::new();
/// vault.placeholder("PERSON", "Jane \"JD\"\nDoe");
/// let mut v = serde_json::json!({"to": ["<PERSON_1>"], "n": 1});
/// warden_core::json::restore_json_value(&vault, &mut v);
/// assert_eq!(v["to"][0], "Jane \"JD\"\nDoe");
/// ```
pub fn restore_json_value(vault: &Vault, value: &mut Value) {
    walk_mut(value, |_, _, s| {
        if s.contains('<') {
            let restored = vault.restore(s);
            if restored != *s {
                *s = restored;
            }
        }
    });
}
