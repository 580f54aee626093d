//! The demo scenario, data-driven from `demo_cases.toml`, against the real demo SQLite ledger.

mod common;

use serde::Deserialize;
use warden_policy::{Decision, Principal, ToolCall};

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    role: String,
    #[serde(default)]
    mfa: bool,
    call: String,
    expect: Decision,
    #[serde(default)]
    rules: Vec<String>,
    minor: Option<i64>,
}

#[test]
fn demo_cases() {
    let cases: Cases = toml::from_str(include_str!("demo_cases.toml")).expect("demo_cases.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = common::demo(dir.path());
    let rt = common::rt();
    let mut failures = Vec::new();
    for c in &cases.case {
        let value: serde_json::Value = serde_json::from_str(&c.call).expect("case call JSON");
        let call = ToolCall::from_any(&value).expect("case call shape");
        let p = Principal::new("agent-demo", &c.role).with_mfa(c.mfa);
        let v = rt.block_on(policy.evaluate(&p, &call));
        let mut wrong = Vec::new();
        if v.verdict != c.expect {
            wrong.push(format!("verdict {:?}, expected {:?}", v.verdict, c.expect));
        }
        for r in &c.rules {
            if !v.rules.contains(r) {
                wrong.push(format!("rule {r} missing"));
            }
        }
        if let Some(m) = c.minor {
            if v.args.get("amount").and_then(serde_json::Value::as_i64) != Some(m) {
                wrong.push(format!("amount not {m} minor units"));
            }
        }
        if v.verdict != Decision::Allow && v.messages.is_empty() {
            wrong.push("no message".into());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {} — got {}",
                c.name,
                wrong.join(", "),
                common::summary(&v)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.case.len(),
        failures.join("\n")
    );
    assert!(cases.case.len() >= 30);
}
