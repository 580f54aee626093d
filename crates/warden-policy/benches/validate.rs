//! Validation of one tool call against the demo policy and the demo SQLite ledger.
//!
//! `evaluate` runs the whole decision (schema, money, two CEL rules, three SQLite ledger
//! queries, one holds read, one velocity read) without writing; `validate` also places
//! and commits a hold in the SQLite state store (voided again outside the timing loop
//! would skew nothing: the refundable balance is re-read each time).

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use warden_policy::{Decision, Policy, PolicyOptions, Principal, ToolCall};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::demo(PolicyOptions {
        state_url: Some(format!(
            "sqlite:{}",
            dir.path().join("state.sqlite").display()
        )),
        ..PolicyOptions::default()
    })
    .expect("demo policy");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = Principal::new("bench-agent", "support_agent");
    let call = ToolCall::from_any(&serde_json::json!({
        "name": "issue_refund",
        "arguments": {"order_id": "ord_1001", "amount": "100.00", "currency": "USD"}
    }))
    .expect("call");
    // Setup check: a fast-but-wrong validator cannot look good.
    assert_eq!(
        rt.block_on(policy.evaluate(&agent, &call)).verdict,
        Decision::Allow
    );
    let over = ToolCall::from_any(&serde_json::json!({
        "name": "issue_refund",
        "arguments": {"order_id": "ord_1001", "amount": "100.01", "currency": "USD"}
    }))
    .expect("call");
    assert_eq!(
        rt.block_on(policy.evaluate(&agent, &over)).verdict,
        Decision::Deny
    );

    c.bench_function("evaluate_refund_sqlite", |b| {
        b.iter(|| rt.block_on(policy.evaluate(&agent, &call)))
    });
    c.bench_function("validate_hold_void_sqlite", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v = policy.validate(&agent, &call).await;
                if let Some(h) = &v.hold_id {
                    let _ = policy.void(h).await;
                }
                v
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
