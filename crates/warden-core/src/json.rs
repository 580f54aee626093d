//! Scanning, redacting and restoring the string leaves of a JSON value.
//!
//! Chat messages and tool arguments are JSON; their structure must survive
//! redaction. Every string value is scanned with its nearest object key as
//! context, so `{"ssn": "078-05-1120"}` is read as an SSN. Object keys are
//! scanned too, because data keyed by customer (`{"jane@acme.io": 120.5}`)
//! is common in ledger context: a key holding a detected value is renamed in
//! place, keeping its member's position. Walks are iterative, so arbitrarily
//! deep input cannot overflow the stack.
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
//! let found = redact_json(&redactor, &mut v, &mut vault).unwrap();
//! assert_eq!(found[0].pointer, "/messages/0/content");
//! assert_eq!(v["messages"][0]["content"], "I am <EMAIL_1>");
//! restore_json_value(&vault, &mut v);
//! assert_eq!(v, original);
//! ```

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

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
    /// The finding is in the object key of the member at `pointer`, and its
    /// span is a byte range in that key (not in the member's value).
    pub in_key: bool,
}

/// Why [`redact_json`] could not rewrite a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Two keys of one object redact to the same text (the `mask` and
    /// `remove` strategies can do that), so renaming them would drop a
    /// member. The value is left unchanged.
    #[error("two keys of one object redact to the same text; use the placeholder or hash strategy for this value")]
    KeyCollision,
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

/// What the read-only walk visits.
enum Node<'a> {
    /// A string value, with its nearest object key.
    Leaf(Option<&'a str>, &'a str),
    /// An object key; the path ends with that member.
    Key(&'a str),
}

/// The same walk, read-only, visiting each object's keys (in order) before
/// the strings below it.
fn walk<'a>(value: &'a Value, mut visit: impl FnMut(&[Seg<'a>], Node<'a>)) {
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
            Value::String(s) => visit(&path, Node::Leaf(key, s)),
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
                for k in map.keys() {
                    path.push(Seg::Key(k));
                    visit(&path, Node::Key(k));
                    path.pop();
                }
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

/// Every object of `value`, in the order [`walk`] visits them, without
/// recursion.
fn objects(value: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    let mut stack = vec![value];
    std::iter::from_fn(move || {
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items.iter().rev().filter(|v| is_container(v))),
                Value::Object(map) => {
                    stack.extend(map.values().rev().filter(|v| is_container(v)));
                    return Some(map);
                }
                _ => {}
            }
        }
        None
    })
}

/// Calls `f` with every object of `value`, in the order of [`objects`],
/// before descending into it.
fn for_each_object_mut(value: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter_mut().rev().filter(|v| is_container(v))),
            Value::Object(map) => {
                f(map);
                stack.extend(map.values_mut().rev().filter(|v| is_container(v)));
            }
            _ => {}
        }
    }
}

/// Renames the members of `map` in place, keeping their order: the `i`-th
/// key becomes `names[i]` where that is set. The caller ensures the new
/// keys are distinct.
fn rename_members(map: &mut Map<String, Value>, mut names: Vec<Option<String>>) {
    let old = std::mem::take(map);
    for (i, (k, v)) in old.into_iter().enumerate() {
        let name = names.get_mut(i).and_then(Option::take);
        map.insert(name.unwrap_or(k), v);
    }
}

fn is_container(v: &Value) -> bool {
    matches!(v, Value::Array(_) | Value::Object(_))
}

fn is_container_or_string(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Array(_) | Value::Object(_))
}

/// Scans every string leaf of `value`, each with its nearest object key as
/// context, and every object key (findings with `in_key` set); findings come
/// in document order, an object's keys before the strings below it.
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
    let mut keys = KeyMemo::default();
    walk(value, |path, node| {
        let (findings, in_key) = match node {
            Node::Leaf(key, s) => (detector.detect(s, key), false),
            Node::Key(k) => (keys.detect(detector, k).to_vec(), true),
        };
        if findings.is_empty() {
            return;
        }
        let at = pointer(path);
        out.extend(findings.into_iter().map(|finding| JsonFinding {
            pointer: at.clone(),
            finding,
            in_key,
        }));
    });
    out
}

/// Findings per distinct key: arrays of records repeat the same few keys,
/// and each is scanned once per document.
#[derive(Default)]
struct KeyMemo<'a>(HashMap<&'a str, Vec<Finding>>);

impl<'a> KeyMemo<'a> {
    fn detect<D: Detect + ?Sized>(&mut self, detector: &D, key: &'a str) -> &[Finding] {
        self.0
            .entry(key)
            .or_insert_with(|| detector.detect(key, None))
    }
}

/// Redacts every string leaf and object key of `value` in place (see the
/// module example); the result is always valid JSON with the same structure
/// and member order. Returns what was redacted, with pointers into the
/// original value, in document order.
///
/// A value detected in one string is also redacted wherever else it occurs
/// in the document (values of 4 bytes or more), as with
/// [`Redactor::redact_with_key`]: an SSN found under `"ssn"` stays hidden
/// when a later free-text field repeats it.
///
/// # Errors
/// [`JsonError::KeyCollision`] when two keys of one object would redact to
/// the same text (possible with `mask` and `remove`); `value` is then left
/// as it was.
///
/// # Example
/// ```
/// use warden_core::json::redact_json;
/// use warden_core::{RedactConfig, Redactor, Scanner, Vault};
/// let redactor = Redactor::new(Scanner::builtin().unwrap(), RedactConfig::default(), None);
/// let mut v = serde_json::json!({"balances": {"jane.doe@acme.io": 120.5}});
/// let found = redact_json(&redactor, &mut v, &mut Vault::new()).unwrap();
/// assert!(found[0].in_key);
/// assert_eq!(v, serde_json::json!({"balances": {"<EMAIL_1>": 120.5}}));
/// ```
pub fn redact_json(
    redactor: &Redactor,
    value: &mut Value,
    vault: &mut Vault,
) -> Result<Vec<JsonFinding>, JsonError> {
    // Pass 1: detect in every leaf and key, then search the whole document
    // for the values found anywhere in it.
    // Token-like strings anywhere in the document are never handed out as
    // new tokens: restoring would otherwise rewrite them.
    let detector = redactor.detector();
    let (mut per_leaf, per_key, repeats, literal_tokens) = {
        let mut leaves: Vec<(&str, Vec<Finding>)> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        let mut memo = KeyMemo::default();
        walk(value, |_, node| match node {
            Node::Leaf(key, s) => leaves.push((s, detector.detect(s, key))),
            Node::Key(k) => {
                memo.detect(detector, k);
                keys.push(k);
            }
        });
        let repeats = Repeats::new(
            leaves
                .iter()
                .map(|(t, f)| (*t, f.as_slice()))
                .chain(memo.0.iter().map(|(k, f)| (*k, f.as_slice()))),
        );
        let literal_tokens: Vec<String> = leaves
            .iter()
            .map(|(t, _)| *t)
            .chain(keys.iter().copied())
            .flat_map(placeholders)
            .map(str::to_owned)
            .collect();
        // Per key in walk order: its findings, repeats included.
        let per_key: Vec<Vec<Finding>> = keys
            .iter()
            .map(|k| {
                let mut f = memo.0.get(k).cloned().unwrap_or_default();
                if let Some(rep) = &repeats {
                    rep.extend(k, &mut f);
                }
                f
            })
            .collect();
        let per_leaf: Vec<Vec<Finding>> = leaves.into_iter().map(|(_, f)| f).collect();
        (per_leaf, per_key, repeats, literal_tokens)
    };
    let avoid: HashSet<&str> = literal_tokens.iter().map(String::as_str).collect();

    // Pass 2: new names for the keys that hold detected values (pointers
    // into the original value), checked for collisions before the value
    // changes. Names come from the caller's vault, which may already map a
    // value to a token that the document also holds as a literal key.
    let mut out = Vec::new();
    let mut new_keys: Vec<Option<String>> = Vec::new();
    // Most documents have no key to rename: skip the walk.
    if per_key.iter().any(|f| !f.is_empty()) {
        walk(value, |path, node| {
            let Node::Key(k) = node else { return };
            let findings = per_key.get(new_keys.len()).map_or(&[][..], Vec::as_slice);
            if findings.is_empty() {
                new_keys.push(None);
                return;
            }
            new_keys.push(Some(
                redactor.redact_findings_avoiding(k, findings, vault, &avoid),
            ));
            let at = pointer(path);
            out.extend(findings.iter().map(|finding| JsonFinding {
                pointer: at.clone(),
                finding: finding.clone(),
                in_key: true,
            }));
        });
    }
    let renaming = new_keys.iter().any(Option::is_some);
    if renaming {
        let mut names = new_keys.iter();
        for map in objects(value) {
            let mine: Vec<&Option<String>> = names.by_ref().take(map.len()).collect();
            if mine.iter().all(|n| n.is_none()) {
                continue;
            }
            let mut seen: HashSet<&str> = HashSet::with_capacity(map.len());
            for (k, name) in map.keys().zip(mine) {
                if !seen.insert(name.as_deref().unwrap_or(k)) {
                    return Err(JsonError::KeyCollision);
                }
            }
        }
    }

    // Pass 3: rewrite the strings (same walk order as pass 1).
    let mut leaf = 0;
    let mut keyed = std::mem::take(&mut out);
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
            in_key: false,
        }));
    });

    // Pass 4: rename the keys, which pass 2 showed cannot collide.
    if renaming {
        let mut names = new_keys.into_iter();
        for_each_object_mut(value, |map| {
            let mine: Vec<Option<String>> = names.by_ref().take(map.len()).collect();
            if mine.iter().any(Option::is_some) {
                rename_members(map, mine);
            }
        });
    }
    out.append(&mut keyed);
    Ok(out)
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
    // Keys renamed by `redact_json` get their names back; an object whose
    // restored names would clash keeps its tokens, so nothing is dropped.
    for_each_object_mut(value, |map| {
        if !map.keys().any(|k| k.contains('<')) {
            return;
        }
        let names: Vec<String> = map
            .keys()
            .map(|k| {
                if k.contains('<') {
                    vault.restore(k)
                } else {
                    k.clone()
                }
            })
            .collect();
        let mut seen = HashSet::with_capacity(names.len());
        let unique = names.iter().all(|n| seen.insert(n.as_str()));
        if unique && names.iter().zip(map.keys()).any(|(n, k)| n != k) {
            rename_members(map, names.into_iter().map(Some).collect());
        }
    });
}
