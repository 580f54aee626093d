//! Runs every inline example of the built-in injection packs.

use warden_injection::{builtin_packs, check_examples, Detector};

#[test]
fn all_pack_examples_pass() {
    let det = Detector::builtin().expect("builtin detector");
    let packs = builtin_packs().expect("packs parse");
    let report = check_examples(&det, &packs);
    let mut msg = String::new();
    for f in &report.failures {
        msg.push_str(&format!(
            "{} {} {}: {:?} -> found {:?}\n",
            f.origin,
            f.rule,
            if f.positive {
                "positive missed"
            } else {
                "negative fired"
            },
            f.example,
            f.found
        ));
    }
    assert!(
        report.failures.is_empty(),
        "{} passed, {} failed\n{msg}",
        report.passed,
        report.failures.len()
    );
    assert!(report.passed > 100);
}
