//! Every inline example of every built-in pack, through the one checker that
//! `warden test-patterns` uses. All failures are reported at once.

use warden_core::{builtin_pack_sources, check_examples, Pack, Scanner};

#[test]
fn all_builtin_pack_examples_pass() {
    let scanner = Scanner::builtin().expect("built-in packs compile");
    let report = check_examples(&scanner, scanner.packs());
    let lines: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(report.ok(), "{}\n{}", lines.join("\n"), report.summary());
    assert!(
        report.passed >= 6 * scanner.rule_count(),
        "{}",
        report.summary()
    );
}

#[test]
fn every_builtin_pack_parses_and_has_rules() {
    for (path, src) in builtin_pack_sources() {
        let pack = Pack::parse(src, path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!pack.rules().is_empty(), "{path} has no rules");
    }
}

#[derive(serde::Deserialize)]
struct GluedCases {
    case: Vec<GluedCase>,
}

#[derive(serde::Deserialize)]
struct GluedCase {
    text: String,
    found: Vec<(String, String)>,
}

/// Values glued to the word around them (`tests/data/glued.toml`), found
/// whole and in text order, also when the same rule matches elsewhere.
#[test]
fn glued_values_are_found() {
    let scanner = Scanner::builtin().expect("built-in packs compile");
    let cases: GluedCases = toml::from_str(include_str!("data/glued.toml")).expect("glued.toml");
    for c in cases.case {
        let got: Vec<(String, String)> = scanner
            .scan(&c.text)
            .iter()
            .map(|f| (f.entity().to_string(), c.text[f.start..f.end].to_string()))
            .collect();
        assert_eq!(got, c.found, "{}", c.text);
    }
}

#[test]
fn glued_needs_literals_or_digits() {
    let pack = r#"
[pack]
name = "bad"
description = "glued on a context rule"

[[rule]]
id = "bad.glued"
entity = "X"
description = "x"
regex = '''[0-9]{9}'''
prefilter = { context = true, glued = true }
context = { words = ["routing"] }
score = 0.5
positive = []
negative = []
"#;
    let err = Pack::parse(pack, "bad.toml").expect_err("glued with context is rejected");
    assert!(err.to_string().contains("glued"), "{err}");
}
