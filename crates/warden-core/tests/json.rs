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
    // Every string leaf was scanned, with its nearest key (array items
    // inherit it); every distinct object key was scanned once, without
    // context, before the strings below it.
    let keys = det.keys.lock().unwrap().clone();
    let ctx = |k: &str| Some(k.to_owned());
    assert_eq!(
        keys,
        vec![
            None, // messages
            None, // a/b~c
            None, // n
            None, // role
            None, // content
            ctx("role"),
            ctx("content"),
            None, // ssn
            ctx("ssn"),
            ctx("ssn"),
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
fn redaction_rewrites_strings_and_keys_and_restores() {
    let redactor = Redactor::new(Marked::default(), RedactConfig::default(), None);
    let mut v = json!({"a": "§one and §two", "b": [1.5, "§one"], "§key": "kept", "z": 0});
    let original = v.clone();
    let mut vault = Vault::new();
    let found = redact_json(&redactor, &mut v, &mut vault).unwrap();
    assert_eq!(found.len(), 4);
    // Keys get their tokens first; members keep their order.
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"a":"<EMAIL_2> and <EMAIL_3>","b":[1.5,"<EMAIL_2>"],"<EMAIL_1>":"kept","z":0}"#
    );
    let key = found.iter().find(|f| f.in_key).unwrap();
    assert_eq!(key.pointer, "/§key");
    assert_eq!((key.finding.start, key.finding.end), (0, "§key".len()));
    assert_eq!(found.iter().filter(|f| f.in_key).count(), 1);
    restore_json_value(&vault, &mut v);
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        serde_json::to_string(&original).unwrap()
    );
}

#[test]
fn scan_json_reports_values_in_keys() {
    let v = json!({"balances": {"§jane": 120.5, "plain": "§bob"}});
    let found = scan_json(&Marked::default(), &v);
    let got: Vec<(&str, bool)> = found
        .iter()
        .map(|f| (f.pointer.as_str(), f.in_key))
        .collect();
    assert_eq!(got, [("/balances/§jane", true), ("/balances/plain", false)]);
}

#[test]
fn a_value_in_a_key_is_redacted_in_strings_too_and_back() {
    // SsnKey finds the value only under "ssn"; the key elsewhere repeats it.
    let redactor = Redactor::new(SsnKey, RedactConfig::default(), None);
    let mut v = json!({"ssn": "078-05-1120", "by_ssn": {"078-05-1120": {"note": "x"}}});
    let original = v.clone();
    let mut vault = Vault::new();
    let found = redact_json(&redactor, &mut v, &mut vault).unwrap();
    assert_eq!(
        v,
        json!({"ssn": "<US_SSN_1>", "by_ssn": {"<US_SSN_1>": {"note": "x"}}})
    );
    assert!(found
        .iter()
        .any(|f| f.in_key && f.pointer == "/by_ssn/078-05-1120"));
    restore_json_value(&vault, &mut v);
    assert_eq!(v, original);
}

#[test]
fn keys_that_would_collide_are_an_error_and_nothing_changes() {
    let redactor = Redactor::new(
        Marked::default(),
        RedactConfig::uniform(Strat::Remove),
        None,
    );
    let mut v = json!({"x": {"§a": 1, "§b": 2}, "y": "§c"});
    let original = v.clone();
    let err = redact_json(&redactor, &mut v, &mut Vault::new()).unwrap_err();
    assert_eq!(err, warden_core::json::JsonError::KeyCollision);
    assert_eq!(v, original);
    // The message names no value.
    assert!(!err.to_string().contains('§'));
    // A vault that already maps a value to a token the document holds as a
    // literal key: renaming would drop a member, so it is refused too.
    let placeholder = Redactor::new(Marked::default(), RedactConfig::default(), None);
    let mut vault = Vault::new();
    let token = vault.placeholder("EMAIL", "§a");
    let mut v = json!({token.clone(): 1, "§a": 2});
    let original = v.clone();
    assert_eq!(
        redact_json(&placeholder, &mut v, &mut vault),
        Err(warden_core::json::JsonError::KeyCollision)
    );
    assert_eq!(v, original);
}

#[test]
fn restoring_keys_never_drops_a_member() {
    let mut vault = Vault::new();
    let token = vault.placeholder("EMAIL", "jane@x.io");
    let mut v = json!({token.clone(): 1, "jane@x.io": 2, "n": {token.clone(): 3}});
    restore_json_value(&vault, &mut v);
    // The top object would end with two "jane@x.io" members: it keeps its
    // token; the nested one is restored.
    assert_eq!(
        v,
        json!({token.clone(): 1, "jane@x.io": 2, "n": {"jane@x.io": 3}})
    );
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
        redact_json(&redactor, &mut v, &mut Vault::new()).unwrap();
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
    assert_eq!(redact_json(&redactor, &mut v, &mut vault).unwrap().len(), 1);
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
        let found = redact_json(&redactor, &mut v, &mut vault).unwrap();
        let wire = serde_json::to_string(&v).unwrap();
        let mut back: Value = serde_json::from_str(&wire).unwrap();
        for f in &found {
            // A key finding's pointer ends with that key (RFC 6901-escaped).
            let owned;
            let text = if f.in_key {
                let last = f.pointer.rsplit('/').next().unwrap();
                owned = last.replace("~1", "/").replace("~0", "~");
                prop_assert!(original.pointer(&f.pointer).is_some());
                owned.as_str()
            } else {
                original.pointer(&f.pointer).and_then(Value::as_str).unwrap()
            };
            prop_assert!(text[f.finding.start..f.finding.end].starts_with('§'));
        }
        // No detected value is left in any redacted string or key.
        let mut stack = vec![&v];
        while let Some(x) = stack.pop() {
            match x {
                Value::String(s) => prop_assert!(!s.contains('§'), "{s:?}"),
                Value::Array(a) => stack.extend(a),
                Value::Object(m) => {
                    for k in m.keys() {
                        prop_assert!(!k.contains('§'), "key {k:?}");
                    }
                    stack.extend(m.values());
                }
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
    let found = redact_json(&redactor, &mut v, &mut vault).unwrap();
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
    redact_json(&redactor, &mut v, &mut vault).unwrap();
    assert_eq!(v["b"], "<EMAIL_2>");
    restore_json_value(&vault, &mut v);
    assert_eq!(v, original);
}
