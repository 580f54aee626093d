//! Redaction with hand-built findings: strategies, span safety and the
//! round-trip / no-leak properties.

use proptest::prelude::*;
use proptest::sample::Index;
use warden_core::{
    is_placeholder, redact_findings, Detect, Finding, RedactConfig, Redaction, Redactor,
    Strategy as Strat, StreamRestorer, Vault,
};

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

/// A dictionary detector: reports every occurrence of its needles.
struct Needles(Vec<(&'static str, String)>);

impl Detect for Needles {
    fn detect(&self, text: &str, _key: Option<&str>) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .0
            .iter()
            .flat_map(|(entity, needle)| {
                text.match_indices(needle.as_str())
                    .map(|(at, v)| finding(entity, at, at + v.len()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by_key(|f| f.start);
        out
    }
}

#[test]
fn placeholders_are_typed_numbered_and_stable() {
    let text = "a@x.org, b@x.org, a@x.org, 078-05-1120";
    let fs = [
        finding("EMAIL", 0, 7),
        finding("EMAIL", 9, 16),
        finding("EMAIL", 18, 25),
        finding("US_SSN", 27, 38),
    ];
    let mut vault = Vault::new();
    let out = redact_findings(text, &fs, &RedactConfig::default(), None, &mut vault);
    assert_eq!(out, "<EMAIL_1>, <EMAIL_2>, <EMAIL_1>, <US_SSN_1>");
    assert_eq!(vault.len(), 3);
    assert_eq!(vault.restore(&out), text);
    // A second call with the same vault keeps the numbering.
    let out2 = redact_findings(
        "b@x.org",
        &[finding("EMAIL", 0, 7)],
        &RedactConfig::default(),
        None,
        &mut vault,
    );
    assert_eq!(out2, "<EMAIL_2>");
}

#[test]
fn keyed_placeholders_are_stable_across_vaults() {
    let text = "mail a@x.org";
    let fs = [finding("EMAIL", 5, 12)];
    let cfg = RedactConfig::default();
    let a = redact_findings(text, &fs, &cfg, None, &mut Vault::with_key(b"team-key"));
    let b = redact_findings(text, &fs, &cfg, None, &mut Vault::with_key(b"team-key"));
    let c = redact_findings(text, &fs, &cfg, None, &mut Vault::with_key(b"other-key"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let token = a.strip_prefix("mail ").unwrap();
    assert!(is_placeholder(token), "{token}");
    assert_eq!(token.len(), "<EMAIL_12345678>".len());
}

#[test]
fn strategies_per_entity() {
    let text = "card 4242 4242 4242 4242, ssn 078-05-1120, key sk_live_abc, mail a@x.org";
    let fs = [
        finding("CREDIT_CARD", 5, 24),
        finding("US_SSN", 30, 41),
        finding("API_KEY", 47, 58),
        finding("EMAIL", 65, 72),
    ];
    let cfg: RedactConfig = toml::from_str(
        r#"
        default = "placeholder"
        [per_entity]
        CREDIT_CARD = "mask"
        US_SSN = "mask"
        API_KEY = "remove"
        EMAIL = "hash"
        "#,
    )
    .unwrap();
    let mut vault = Vault::new();
    let out = redact_findings(text, &fs, &cfg, Some(b"k"), &mut vault);
    let expected_prefix = "card **** **** **** 4242, ssn ***-**-1120, key , mail <EMAIL#";
    assert!(out.starts_with(expected_prefix), "{out}");
    let hash = &out[expected_prefix.len() - "<EMAIL#".len()..];
    assert_eq!(hash.len(), "<EMAIL#a1b2c3d4e5f6>".len());
    assert!(hash[7..19]
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // Not reversible: nothing went into the vault.
    assert!(vault.is_empty());
    // Same key, same hash; another key, another hash.
    let again = redact_findings(text, &fs, &cfg, Some(b"k"), &mut Vault::new());
    assert_eq!(again, out);
    let other = redact_findings(text, &fs, &cfg, Some(b"k2"), &mut Vault::new());
    assert_ne!(other, out);
}

#[test]
fn mask_hides_credentials_whole() {
    // A token glued to the next word ends in that word: keeping its last
    // characters would show the start of the e-mail address after it.
    let text = "ghp_16C7e42F292c6912E7710c838347Ae178B4ajane.doe@acme.io";
    let fs = [finding("API_KEY", 0, 44)];
    let cfg = RedactConfig::uniform(Strat::Mask);
    let out = redact_findings(text, &fs, &cfg, None, &mut Vault::new());
    assert_eq!(out, format!("***_{}.doe@acme.io", "*".repeat(40)));
    let fs = [finding("EMAIL", 40, text.len())];
    let out = redact_findings(text, &fs, &cfg, None, &mut Vault::new());
    assert!(out.ends_with("B4a****.***@**me.io"), "{out}");
}

#[test]
fn mask_keep_last_is_configurable_and_capped_at_half() {
    let text = "4242424242424242";
    let fs = [finding("CREDIT_CARD", 0, 16)];
    let mut cfg = RedactConfig::uniform(Strat::Mask);
    cfg.mask_keep_last = 2;
    assert_eq!(
        redact_findings(text, &fs, &cfg, None, &mut Vault::new()),
        "**************42"
    );
    cfg.mask_keep_last = 100;
    assert_eq!(
        redact_findings(text, &fs, &cfg, None, &mut Vault::new()),
        "********42424242"
    );
    cfg.mask_keep_last = 0;
    assert_eq!(
        redact_findings(text, &fs, &cfg, None, &mut Vault::new()),
        "*".repeat(16)
    );
}

#[test]
fn hash_without_key_is_stable_within_one_redactor_only() {
    let det = Needles(vec![("EMAIL", "a@x.org".into())]);
    let r = Redactor::new(det, RedactConfig::uniform(Strat::Hash), None);
    let one = r.redact("a@x.org", &mut Vault::new()).text;
    let two = r.redact("a@x.org", &mut Vault::new()).text;
    assert_eq!(one, two);
    let det = Needles(vec![("EMAIL", "a@x.org".into())]);
    let other = Redactor::new(det, RedactConfig::uniform(Strat::Hash), None);
    assert_ne!(other.redact("a@x.org", &mut Vault::new()).text, one);
}

#[test]
fn bad_spans_never_panic_and_only_widen() {
    let text = "héllo wörld";
    // Inside multi-byte chars, reversed, empty, out of range, overlapping.
    let fs = [
        finding("A", 2, 4),
        finding("B", 9, 7),
        finding("C", 3, 3),
        finding("D", 8, 1000),
        finding("E", 1000, 2000),
        finding("F", 7, 10),
    ];
    let mut vault = Vault::new();
    let out = redact_findings(text, &fs, &RedactConfig::default(), None, &mut vault);
    assert_eq!(out, "h<A_1>lo <F_1>");
    assert_eq!(vault.get("<A_1>"), Some("él"));
    assert_eq!(vault.get("<F_1>"), Some("wörld"));
    assert_eq!(vault.restore(&out), text);
}

#[test]
fn literal_tokens_in_the_input_are_never_reused() {
    let text = "the template says <EMAIL_1>; my mail is a@x.org";
    let at = text.find("a@x.org").unwrap();
    let mut vault = Vault::new();
    let out = redact_findings(
        text,
        &[finding("EMAIL", at, at + 7)],
        &RedactConfig::default(),
        None,
        &mut vault,
    );
    assert_eq!(out, "the template says <EMAIL_1>; my mail is <EMAIL_2>");
    assert_eq!(vault.restore(&out), text);
    assert_eq!(vault.unknown_tokens(&out), vec!["<EMAIL_1>"]);
}

#[test]
fn redactor_reports_findings_against_the_original() {
    let det = Needles(vec![("EMAIL", "jane@example.org".into())]);
    let r = Redactor::new(det, RedactConfig::default(), Some(b"k".to_vec()));
    let mut vault = Vault::new();
    let Redaction { text, findings } = r.redact("hi jane@example.org!", &mut vault);
    assert_eq!(text, "hi <EMAIL_1>!");
    assert_eq!((findings[0].start, findings[0].end), (3, 19));
    // Debug never shows the hash key.
    assert!(!format!("{r:?}").contains("107"));
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
    assert_send_sync::<Redactor>();
    assert_send_sync::<Redaction>();
    assert_send_sync::<StreamRestorer>();
    assert_send_sync::<warden_core::json::JsonFinding>();
}

#[test]
fn strategy_names_parse() {
    for s in [Strat::Placeholder, Strat::Mask, Strat::Hash, Strat::Remove] {
        assert_eq!(s.as_str().parse::<Strat>().unwrap(), s);
        assert_eq!(s.to_string(), s.as_str());
    }
    let err = "encrypt".parse::<Strat>().unwrap_err();
    assert_eq!(err.kind(), &warden_core::ErrorKind::Config);
    assert!(err.to_string().contains("encrypt"));
}

/// Text with token-like noise, multi-byte characters and plain words, and
/// arbitrary spans on char boundaries (possibly overlapping).
fn text_and_spans() -> impl Strategy<Value = (String, Vec<(usize, usize, usize)>)> {
    let piece = prop_oneof![
        "\\PC{0,6}",
        "<[A-Z]{1,3}_[0-9]{1,2}>",
        "<[A-Z_]{0,4}",
        "[A-Z_0-9<>a-f]{0,6}",
        Just("é€😀\u{200b}".to_string()),
        "[ \n\"\\\\]{0,3}",
    ];
    prop::collection::vec(piece, 0..12)
        .prop_map(|ps| ps.concat())
        .prop_flat_map(|text| {
            let n = text.chars().count() + 1;
            let spans = prop::collection::vec((any::<Index>(), any::<Index>(), 0..3usize), 0..6);
            (Just(text), spans, Just(n))
        })
        .prop_map(|(text, spans, _)| {
            let bounds: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(text.len()))
                .collect();
            let spans = spans
                .into_iter()
                .map(|(a, b, e)| {
                    let (a, b) = (a.get(&bounds), b.get(&bounds));
                    (*a.min(b), *a.max(b), e)
                })
                .collect();
            (text, spans)
        })
}

const ENTITIES: [&str; 3] = ["EMAIL", "US_SSN", "PHONE"];

/// Values that can be told apart from everything else in the text: they
/// alone contain `§`, which is never in plain text, tokens or masks' stars.
fn marked_text() -> impl Strategy<Value = (String, Vec<(usize, usize, usize)>)> {
    let plain = "[^§]{0,8}";
    let value = "§[a-z0-9]{1,8}";
    prop::collection::vec((plain, value, 0..3usize), 0..6).prop_map(|parts| {
        let mut text = String::new();
        let mut spans = Vec::new();
        for (p, v, e) in parts {
            text.push_str(&p);
            spans.push((text.len(), text.len() + v.len(), e));
            text.push_str(&v);
        }
        (text, spans)
    })
}

fn to_findings(spans: &[(usize, usize, usize)]) -> Vec<Finding> {
    spans
        .iter()
        .map(|&(s, e, i)| finding(ENTITIES[i], s, e))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn restore_inverts_placeholder_redaction((text, spans) in text_and_spans(), keyed in any::<bool>()) {
        let mut vault = if keyed { Vault::with_key(b"k") } else { Vault::new() };
        let out = redact_findings(&text, &to_findings(&spans), &RedactConfig::default(), None, &mut vault);
        prop_assert_eq!(vault.restore(&out), text);
    }

    #[test]
    fn restore_inverts_redaction_with_a_reused_vault((t1, s1) in text_and_spans(), (t2, s2) in text_and_spans()) {
        let mut vault = Vault::new();
        let o1 = redact_findings(&t1, &to_findings(&s1), &RedactConfig::default(), None, &mut vault);
        let o2 = redact_findings(&t2, &to_findings(&s2), &RedactConfig::default(), None, &mut vault);
        // Later tokens never change what earlier ones mean.
        prop_assert_eq!(vault.restore(&o2), t2);
        // A literal token in the first text may be handed out by the second
        // call (it only avoids literals in its own text).
        if !t1.contains('<') {
            prop_assert_eq!(vault.restore(&o1), t1);
        }
    }

    #[test]
    fn redacted_text_never_contains_a_detected_value(
        (text, spans) in marked_text(),
        strategy in prop_oneof![Just(Strat::Placeholder), Just(Strat::Mask), Just(Strat::Hash), Just(Strat::Remove)],
        keep in 0usize..10,
    ) {
        let mut cfg = RedactConfig::uniform(strategy);
        cfg.mask_keep_last = keep;
        let findings = to_findings(&spans);
        let out = redact_findings(&text, &findings, &cfg, Some(b"k"), &mut Vault::new());
        for f in &findings {
            let value = &text[f.start..f.end];
            prop_assert!(!out.contains(value), "{value:?} leaked into {out:?} with {strategy}");
        }
    }
}

/// Flags a value only right after the context word `ssn `, like a
/// context-requiring rule.
struct AfterSsnWord;

impl Detect for AfterSsnWord {
    fn detect(&self, text: &str, _key: Option<&str>) -> Vec<Finding> {
        text.match_indices("ssn ")
            .filter_map(|(at, w)| {
                let s = at + w.len();
                let e = text[s..].find([' ', ',']).map_or(text.len(), |e| s + e);
                (e > s).then(|| finding("US_SSN", s, e))
            })
            .collect()
    }
}

#[test]
fn every_occurrence_of_a_detected_value_is_redacted() {
    let r = Redactor::new(AfterSsnWord, RedactConfig::default(), None);
    let mut vault = Vault::new();
    let text = "ssn 078-05-1120, again 078-05-1120 and x078-05-1120x, short ssn 12 and 12";
    let out = r.redact(text, &mut vault);
    assert_eq!(
        out.text,
        "ssn <US_SSN_1>, again <US_SSN_1> and x<US_SSN_1>x, short ssn <US_SSN_2> and 12"
    );
    assert_eq!(out.findings.len(), 4);
    assert!(out.findings.windows(2).all(|w| w[0].start < w[1].start));
    assert_eq!(vault.restore(&out.text), text);
}
