//! The JSON walker: pointers, key context, in-place redaction that keeps
//! JSON valid, deep nesting.

use std::sync::Mutex;

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_core::json::{redact_json, restore_json_value, scan_json};
use warden_core::{Detect, Finding, RedactConfig, Redactor, Strategy as Strat, Vault};

fn finding(entity: &str, start: usize, end: usize) -> Finding {
    Finding {
        entity: entity.into(),
        rule: "test.rule".into(),
        start,
        end,
        score: 1.0,
        evidence: vec![],
        obfuscated: false,
    }
}

/// Finds every `§`-marked word (`§` up to the next space or end) as an
/// EMAIL, and records which keys it was called with.
#[derive(Default)]
struct Marked {
    keys: Mutex<Vec<Option<String>>>,
}

impl Detect for Marked {
    fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
        self.keys.lock().unwrap().push(key.map(str::to_owned));
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(off) = text[from..].find('§') {
            let start = from + off;
            let end = text[start..].find(' ').map_or(text.len(), |e| start + e);
            out.push(finding("EMAIL", start, end));
            from = end;
        }
        out
    }
}

#[test]
fn pointers_follow_rfc_6901_and_keys_give_context() {
    let v = json!({
        "messages": [{"role": "user", "content": "hi §a"}],
        "a/b~c": {"ssn": ["§b", 1, null, true, "§c x"]},
        "n": 3
    });
    let det = Marked::default();
    let found = scan_json(&det, &v);
    let pointers: Vec<&str> = found.iter().map(|f| f.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/messages/0/content", "/a~1b~0c/ssn/0", "/a~1b~0c/ssn/4"]
    );
    assert_eq!((found[0].finding.start, found[0].finding.end), (3, 6));
    // Every string leaf was scanned, with its nearest key (array items inherit it).
    let keys = det.keys.lock().unwrap().clone();
    assert_eq!(
        keys,
        vec![
            Some("role".into()),
            Some("content".into()),
            Some("ssn".into()),
            Some("ssn".into())
        ]
    );
    // Pointers resolve with serde_json's own implementation.
    for f in &found {
        assert!(
            v.pointer(&f.pointer).is_some_and(Value::is_string),
            "{}",
            f.pointer
        );
    }
}

#[test]
fn a_bare_string_document_has_the_empty_pointer() {
    let found = scan_json(&Marked::default(), &json!("§x"));
    assert_eq!(found[0].pointer, "");
}

#[test]
fn redaction_touches_strings_only_and_restores() {
    let redactor = Redactor::new(Marked::default(), RedactConfig::default(), None);
    let mut v = json!({"a": "§one and §two", "b": [1.5, "§one"], "§key": "kept"});
    let original = v.clone();
    let mut vault = Vault::new();
    let found = redact_json(&redactor, &mut v, &mut vault);
    assert_eq!(found.len(), 3);
    assert_eq!(
        v,
        json!({"a": "<EMAIL_1> and <EMAIL_2>", "b": [1.5, "<EMAIL_1>"], "§key": "kept"})
    );
    restore_json_value(&vault, &mut v);
    assert_eq!(v, original);
}

#[test]
fn mask_and_remove_keep_json_valid() {
    for strategy in [Strat::Mask, Strat::Remove, Strat::Hash] {
        let redactor = Redactor::new(
            Marked::default(),
            RedactConfig::uniform(strategy),
            Some(b"k".to_vec()),
        );
        let mut v = json!({"a": "x §\"quoted\\\n y"});
        redact_json(&redactor, &mut v, &mut Vault::new());
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert!(!text.contains("quoted"), "{strategy}: {text}");
    }
}

/// Builds `depth` nested arrays/objects around a string, without recursion.
fn deep(depth: usize) -> Value {
    let mut v = json!("§deep");
    for i in 0..depth {
        v = if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            // Not `json!`: it would serialise (recursively) a copy of `v`.
            let mut map = serde_json::Map::new();
            map.insert("k".to_owned(), v);
            Value::Object(map)
        };
    }
    v
}

/// Drops a deep value without recursion (serde_json's Drop recurses).
fn dismantle(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 200_000;
    let mut v = deep(depth);
    let found = scan_json(&Marked::default(), &v);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pointer.matches('/').count(), depth);
    let redactor = Redactor::new(Marked::default(), RedactConfig::default(), None);
    let mut vault = Vault::new();
    assert_eq!(redact_json(&redactor, &mut v, &mut vault).len(), 1);
    restore_json_value(&vault, &mut v);
    assert_eq!(v.pointer(&found[0].pointer), Some(&json!("§deep")));
    dismantle(v);
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z \"\\\\\n\t<>§_A-Z0-9é😀]{0,12}".prop_map(Value::String),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z/~§]{0,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Redact → serialise → parse → restore gives the original back, and
    /// the serialised redacted JSON holds no detected value.
    #[test]
    fn json_round_trip(original in value(), keyed in any::<bool>()) {
        let redactor = Redactor::new(Marked::default(), RedactConfig::default(), None);
        let mut vault = if keyed { Vault::with_key(b"k") } else { Vault::new() };
        let mut v = original.clone();
        let found = redact_json(&redactor, &mut v, &mut vault);
        let wire = serde_json::to_string(&v).unwrap();
        let mut back: Value = serde_json::from_str(&wire).unwrap();
        for f in &found {
            let leaf = original.pointer(&f.pointer).and_then(Value::as_str).unwrap();
            prop_assert!(leaf[f.finding.start..f.finding.end].starts_with('§'));
        }
        // No detected value is left in any redacted string.
        let mut stack = vec![&v];
        while let Some(x) = stack.pop() {
            match x {
                Value::String(s) => prop_assert!(!s.contains('§'), "{s:?}"),
                Value::Array(a) => stack.extend(a),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
        // Restoring the wire text (JSON-escaped) and restoring the parsed
        // value agree, and both give the original back.
        let via_text: Value = serde_json::from_str(&vault.restore_json(&wire)).unwrap();
        restore_json_value(&vault, &mut back);
        prop_assert_eq!(&back, &original);
        prop_assert_eq!(via_text, back);
    }
}

/// Flags strings under the key `ssn` only.
struct SsnKey;

impl Detect for SsnKey {
    fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
        if key == Some("ssn") && !text.is_empty() {
            vec![finding("US_SSN", 0, text.len())]
        } else {
            vec![]
        }
    }
}

#[test]
fn a_value_found_under_one_key_is_redacted_everywhere() {
    let redactor = Redactor::new(SsnKey, RedactConfig::default(), None);
    let mut v =
        json!({"notes": "customer 078-05-1120 called", "ssn": "078-05-1120", "n": ["078-05-1120"]});
    let original = v.clone();
    let mut vault = Vault::new();
    let found = redact_json(&redactor, &mut v, &mut vault);
    assert_eq!(
        v,
        json!({"notes": "customer <US_SSN_1> called", "ssn": "<US_SSN_1>", "n": ["<US_SSN_1>"]})
    );
    let pointers: Vec<&str> = found.iter().map(|f| f.pointer.as_str()).collect();
    assert_eq!(pointers, ["/notes", "/ssn", "/n/0"]);
    restore_json_value(&vault, &mut v);
    assert_eq!(v, original);
}

#[test]
fn literal_tokens_elsewhere_in_the_document_are_not_reused() {
    let redactor = Redactor::new(Marked::default(), RedactConfig::default(), None);
    let mut v = json!({"a": "template <EMAIL_1>", "b": "§me"});
    let original = v.clone();
    let mut vault = Vault::new();
    redact_json(&redactor, &mut v, &mut vault);
    assert_eq!(v["b"], "<EMAIL_2>");
    restore_json_value(&vault, &mut v);
    assert_eq!(v, original);
}
