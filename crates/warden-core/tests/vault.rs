//! The vault: serialisation, merging, unknown tokens, JSON-safe restore.

use proptest::prelude::*;
use warden_core::{is_placeholder, ErrorKind, Vault};

#[test]
fn json_round_trip_keeps_tokens_and_numbering() {
    let mut v = Vault::new();
    v.placeholder("EMAIL", "a@x.org");
    v.placeholder("EMAIL", "b@x.org");
    v.placeholder("US_SSN", "078-05-1120");
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        json.starts_with(
            r#"{"version":1,"entries":[{"token":"<EMAIL_1>","entity":"EMAIL","original":"a@x.org"}"#
        ),
        "{json}"
    );
    let mut back: Vault = serde_json::from_str(&json).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back.restore("<EMAIL_2>/<US_SSN_1>"), "b@x.org/078-05-1120");
    assert_eq!(back.token_for("EMAIL", "a@x.org"), Some("<EMAIL_1>"));
    // New values continue after the loaded counters.
    assert_eq!(back.placeholder("EMAIL", "c@x.org"), "<EMAIL_3>");
    assert_eq!(back.placeholder("US_SSN", "219-09-9999"), "<US_SSN_2>");
}

#[test]
fn serialised_vault_never_contains_the_key() {
    let mut v = Vault::with_key(b"super-secret-key");
    v.placeholder("EMAIL", "a@x.org");
    let json = serde_json::to_string(&v).unwrap();
    assert!(!json.contains("super-secret-key"));
    assert!(!json.contains("key\""));
    let back: Vault = serde_json::from_str(&json).unwrap();
    assert!(!back.is_keyed());
    assert_eq!(back.len(), 1);
}

#[test]
fn bad_vault_files_are_rejected_without_echoing_values() {
    let cases = [
        (r#"{"version":2,"entries":[]}"#, "version 2"),
        (
            r#"{"version":1,"entries":[{"token":"EMAIL_1","entity":"EMAIL","original":"secret-a"}]}"#,
            "entry 0",
        ),
        (
            r#"{"version":1,"entries":[{"token":"<E_1>","entity":"E","original":"secret-a"},{"token":"<E_1>","entity":"E","original":"secret-b"}]}"#,
            "entry 1",
        ),
        (r#"{"version":1,"entries":[],"key":"x"}"#, "unknown field"),
        (r#"{"version":1}"#, "entries"),
    ];
    for (src, want) in cases {
        let err = serde_json::from_str::<Vault>(src).unwrap_err().to_string();
        assert!(err.contains(want), "{src}: {err}");
        assert!(!err.contains("secret-"), "{err}");
    }
    // The same definition twice is harmless.
    let ok = r#"{"version":1,"entries":[{"token":"<E_1>","entity":"E","original":"v"},{"token":"<E_1>","entity":"E","original":"v"}]}"#;
    assert_eq!(serde_json::from_str::<Vault>(ok).unwrap().len(), 1);
}

#[test]
fn debug_never_shows_originals() {
    let mut v = Vault::with_key(b"k3y");
    v.placeholder("EMAIL", "jane@example.org");
    let dbg = format!("{v:?} {v:#?}");
    assert!(!dbg.contains("jane"), "{dbg}");
    assert!(!dbg.contains("k3y"), "{dbg}");
    assert!(!dbg.contains("EMAIL_"), "{dbg}");
}

#[test]
fn merge_adds_tokens_and_refuses_conflicts_atomically() {
    let mut a = Vault::new();
    a.placeholder("EMAIL", "a@x.org");
    let mut b = Vault::new();
    b.placeholder("EMAIL", "a@x.org"); // same token, same value: fine
    b.placeholder("EMAIL", "b@x.org");
    b.placeholder("PHONE", "+1 202 555 0143");
    a.merge(b).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.placeholder("EMAIL", "c@x.org"), "<EMAIL_3>");

    let mut c = Vault::new();
    c.placeholder("PERSON", "Jane");
    c.placeholder("EMAIL", "other@x.org"); // <EMAIL_1>, conflicts
    let before = a.len();
    let err = a.merge(c).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Vault);
    assert!(err.to_string().contains("<EMAIL_1>"), "{err}");
    assert!(!err.to_string().contains("other@"));
    assert_eq!(a.len(), before, "a failed merge changes nothing");
    assert_eq!(a.get("<PERSON_1>"), None);
}

#[test]
fn unknown_tokens_are_reported_in_order() {
    let mut v = Vault::new();
    v.placeholder("EMAIL", "a@x.org");
    let text = "send <EMAIL_1> to <EMAIL_2> and <PHONE_3fa9c2d1>, not <b> or <EMAIL#a1b2c3d4e5f6>";
    assert_eq!(
        v.unknown_tokens(text),
        vec!["<EMAIL_2>", "<PHONE_3fa9c2d1>"]
    );
    assert!(v.unknown_tokens("nothing here").is_empty());
}

#[test]
fn restore_leaves_near_tokens_alone() {
    let mut v = Vault::new();
    v.placeholder("EMAIL", "a@x.org");
    for s in [
        "<EMAIL_1",
        "EMAIL_1>",
        "<email_1>",
        "<EMAIL_1 >",
        "<<EMAIL_1>>",
        "<EMAIL_01>",
    ] {
        let want = s.replace("<EMAIL_1>", "a@x.org");
        assert_eq!(v.restore(s), want, "{s}");
    }
}

#[test]
fn restore_json_escapes_originals() {
    let mut v = Vault::new();
    v.placeholder("PERSON", "Jane \"JD\" \\ Doe\nline2\t\u{1}\u{2028}");
    let args = r#"{"name":"<PERSON_1>","n":1}"#;
    let out = v.restore_json(args);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["name"], "Jane \"JD\" \\ Doe\nline2\t\u{1}\u{2028}");
    assert!(!out.contains('\n'));
}

#[test]
fn keyed_tokens_are_stable_and_distinct_per_type() {
    let mut a = Vault::with_key(b"k");
    let mut b = Vault::with_key(b"k");
    let t = a.placeholder("EMAIL", "x");
    assert!(is_placeholder(&t));
    assert_eq!(
        b.placeholder("PERSON", "x").len(),
        "<PERSON_12345678>".len()
    );
    assert_eq!(b.placeholder("EMAIL", "x"), t);
    assert_ne!(a.placeholder("EMAIL", "y"), t);
}

#[test]
fn odd_entity_names_still_make_valid_tokens() {
    let mut v = Vault::new();
    for e in ["email", "9X", "", "Ünïcode-type", &"LONG".repeat(40)] {
        let t = v.placeholder(e, "value");
        assert!(is_placeholder(&t), "{e:?} -> {t}");
        assert_eq!(v.restore(&t), "value");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Restoring inside JSON text keeps it valid and equal to restoring the
    /// decoded string, whatever the originals contain.
    #[test]
    fn restore_json_keeps_json_valid(
        originals in prop::collection::vec("\\PC{0,8}|[\"\\\\\n\r\t\u{0}-\u{1f}]{1,4}", 1..5),
        picks in prop::collection::vec((0usize..5, "[a-z \"\\\\\n]{0,4}"), 0..8),
        keyed in any::<bool>(),
    ) {
        let mut v = if keyed { Vault::with_key(b"k") } else { Vault::new() };
        let tokens: Vec<String> = originals.iter().map(|o| v.placeholder("X", o)).collect();
        let mut s = String::new();
        for (i, glue) in &picks {
            s.push_str(glue);
            s.push_str(&tokens[i % tokens.len()]);
        }
        let doc = serde_json::json!({ "arg": s, "list": [s.clone()] });
        let text = serde_json::to_string(&doc).unwrap();
        let restored = v.restore_json(&text);
        let parsed: serde_json::Value = serde_json::from_str(&restored).unwrap();
        let want = v.restore(&s);
        prop_assert_eq!(&parsed["arg"], &serde_json::Value::String(want.clone()));
        prop_assert_eq!(&parsed["list"][0], &serde_json::Value::String(want));
    }

    /// A serialised vault restores exactly like the one it came from.
    #[test]
    fn serde_round_trip(values in prop::collection::vec("\\PC{0,12}", 0..10), text in "\\PC{0,20}") {
        let mut v = Vault::new();
        let mut doc = String::new();
        for (i, val) in values.iter().enumerate() {
            doc.push_str(&v.placeholder(["EMAIL", "PHONE"][i % 2], val));
            doc.push_str(&text);
        }
        let back: Vault = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        prop_assert_eq!(back.len(), v.len());
        prop_assert_eq!(back.restore(&doc), v.restore(&doc));
    }
}
