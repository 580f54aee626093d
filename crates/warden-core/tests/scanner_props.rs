//! Scanner properties: thread-safety of the public types, no panics and
//! char-boundary spans on arbitrary Unicode, obfuscation mapping, config.

use proptest::prelude::*;
use warden_core::{Checksum, Evidence, ListEntry, Pack, ScanConfig, Scanner};

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Scanner>();
    check::<warden_core::Pack>();
    check::<warden_core::Error>();
    check::<warden_core::Finding>();
    check::<warden_core::ScanConfig>();
    check::<warden_core::ExampleReport>();
}

fn assert_well_formed(text: &str, scanner: &Scanner) {
    let found = scanner.scan(text);
    let mut last_end = 0;
    for f in &found {
        assert!(f.start < f.end && f.end <= text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!(f.start >= last_end, "overlapping or unsorted findings");
        assert!((0.0..=1.0).contains(&f.score));
        last_end = f.end;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn spans_fall_on_char_boundaries(text in "\\PC{0,200}") {
        assert_well_formed(&text, &Scanner::builtin().unwrap());
    }

    #[test]
    fn spans_fall_on_char_boundaries_around_entities(
        pre in "\\PC{0,20}",
        mid in prop::sample::select(vec!["jane@acme.io", "4111 1111 1111 1111", "+1 415 555 0100", "AKIAIOSFODNN7EXAMPLE", "536-90-4399"]),
        junk in prop::collection::vec(prop::sample::select(vec!['\u{200B}', '\u{FEFF}', '５', '\u{E0041}', 'é', '\u{301}', '%', '&', '\\']), 0..4),
        post in "\\PC{0,20}",
    ) {
        let mut m = String::new();
        for (i, c) in mid.chars().enumerate() {
            m.push(c);
            if let Some(j) = junk.get(i % 7) { if i % 3 == 1 { m.push(*j); } }
        }
        assert_well_formed(&format!("{pre}{m}{post}"), &Scanner::builtin().unwrap());
    }
}

#[test]
fn zero_width_inside_email_is_found_and_covered() {
    let text = "mail jane\u{200B}.doe@exa\u{200D}mple.org now";
    let f = &Scanner::builtin().unwrap().scan(text)[0];
    assert_eq!(
        &text[f.start..f.end],
        "jane\u{200B}.doe@exa\u{200D}mple.org"
    );
    assert!(f.obfuscated);
    assert!(f.evidence.contains(&Evidence::Obfuscation {
        layer: "zero_width".into()
    }));
}

#[test]
fn encoded_values_are_decoded_and_mapped_back() {
    let scanner = Scanner::builtin().unwrap();
    for (text, want) in [
        ("q=jane%40acme.io&x=1", "jane%40acme.io"),
        (r#"{"m": "jane\u0040acme.io"}"#, r"jane\u0040acme.io"),
        ("to jane&#64;acme.io.", "jane&#64;acme.io"),
        ("double jane%2540acme.io", "jane%2540acme.io"),
    ] {
        let found = scanner.scan(text);
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        assert_eq!(&text[found[0].start..found[0].end], want);
        assert!(found[0].obfuscated);
    }
}

#[test]
fn evidence_explains_without_the_value() {
    let text = "card number 4111-1111-1111-1111";
    let f = &Scanner::builtin().unwrap().scan(text)[0];
    assert_eq!(f.entity(), "CREDIT_CARD");
    assert!(f.evidence.contains(&Evidence::Checksum {
        validator: "credit_card".into(),
        result: Checksum::Valid
    }));
    assert!(f
        .evidence
        .iter()
        .any(|e| matches!(e, Evidence::Context { word, .. } if &**word == "card")));
    let json = serde_json::to_string(&f.evidence).unwrap();
    assert!(!json.contains("4111"));
}

#[test]
fn context_words_are_whole_words() {
    // "ssn" inside "lessnote" must not satisfy the SSN context requirement.
    let s = Scanner::builtin().unwrap();
    assert!(s.scan("lessnote 536904399").is_empty());
    assert_eq!(s.scan("ssn 536904399").len(), 1);
}

#[test]
fn json_key_is_context() {
    let s = Scanner::builtin().unwrap();
    assert!(s.scan("021000021").is_empty());
    let f = s.scan_with_key("021000021", Some("bankRoutingNumber"));
    assert_eq!(f[0].entity(), "US_BANK_ROUTING");
    let base = s.scan("ssn 536-90-4399")[0].score;
    let plain = s.scan("x 536-90-4399")[0].score;
    assert!(base > plain);
}

#[test]
fn allow_and_deny_lists() {
    let cfg = ScanConfig {
        allow: vec![
            ListEntry::regex("@example\\.com$").for_entity("EMAIL"),
            ListEntry::exact("4242424242424242"),
        ],
        deny: vec![ListEntry::exact("Project Bluebird").for_entity("CODENAME")],
        ..ScanConfig::default()
    };
    let s = Scanner::builder()
        .builtin_packs()
        .config(cfg)
        .build()
        .unwrap();
    let found = s.scan("a@example.com b@acme.io 4242424242424242 Project Bluebird");
    let kinds: Vec<&str> = found.iter().map(|f| f.entity()).collect();
    assert_eq!(kinds, ["EMAIL", "CODENAME"]);
}

#[test]
fn disabled_entities_and_bad_config() {
    let cfg = ScanConfig {
        disabled_entities: vec!["EMAIL".into()],
        ..ScanConfig::default()
    };
    let s = Scanner::builder()
        .builtin_packs()
        .config(cfg)
        .build()
        .unwrap();
    assert!(s.scan("jane@acme.io").is_empty());
    let cfg = ScanConfig {
        disabled_rules: vec!["no.such.rule".into()],
        ..ScanConfig::default()
    };
    assert!(Scanner::builder()
        .builtin_packs()
        .config(cfg)
        .build()
        .is_err());
}

#[test]
fn look_around_is_rejected_with_file_and_rule() {
    let src = r#"
[[rule]]
id = "bad.lookahead"
entity = "X"
regex = 'foo(?=bar)'
prefilter = { literals = ["foo"] }
score = 0.5
"#;
    let pack = Pack::parse(src, "packs/bad.toml").unwrap();
    let err = Scanner::builder().pack(pack).build().unwrap_err();
    assert_eq!(err.kind(), &warden_core::ErrorKind::Regex);
    assert_eq!(err.file(), Some("packs/bad.toml"));
    assert_eq!(err.rule(), Some("bad.lookahead"));
    assert!(err.to_string().contains("look-around"), "{err}");
    let backref = src.replace("foo(?=bar)", r"(a)\1");
    let err = Scanner::builder()
        .pack(Pack::parse(&backref, "b.toml").unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err.rule(), Some("bad.lookahead"));
}

#[test]
fn pack_errors_name_file_line_and_rule() {
    let src = "[[rule]]\nid = \"r1\"\nentity = \"X\"\nregex = 'x'\nprefilter = { literals = [\"x\"] }\nscore = 0.5\nvalidator = \"nope\"\n";
    let err = Pack::parse(src, "p.toml").unwrap_err();
    assert_eq!(
        (err.file(), err.rule(), err.line()),
        (Some("p.toml"), Some("r1"), Some(1))
    );
    assert!(err.to_string().contains("unknown validator"));
    let err = Pack::parse(
        "[[rule]]\nid = \"r2\"\nentity = \"X\"\nbogus = 1\n",
        "q.toml",
    )
    .unwrap_err();
    assert_eq!(err.file(), Some("q.toml"));
    assert_eq!(err.rule(), Some("r2"));
}

#[test]
fn packs_dir_loads_and_skips_injection() {
    let dir = std::env::temp_dir().join(format!("warden-packs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("injection")).unwrap();
    std::fs::write(dir.join("injection/x.toml"), "not a pii pack = [").unwrap();
    std::fs::write(dir.join("t.toml"), warden_core::builtin_pack_sources()[0].1).unwrap();
    let s = Scanner::builder().packs_dir(&dir).unwrap().build().unwrap();
    assert_eq!(s.scan("jane@acme.io").len(), 1);
    std::fs::write(dir.join("u.toml"), "[[rule]]\nid = 1\n").unwrap();
    let err = Scanner::builder().packs_dir(&dir).unwrap_err();
    assert!(err.file().is_some_and(|f| f.ends_with("u.toml")), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
