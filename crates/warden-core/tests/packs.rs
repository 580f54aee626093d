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
