//! Holds, concurrency, idempotency, velocity and approvals against a real SQLite state
//! store and the real demo SQLite ledger.

mod common;

use std::sync::Arc;

use common::{agent, call, refund, rt};
use serde_json::json;
use warden_policy::{Decision, ErrorKind, Policy, PolicyOptions};

#[test]
fn partial_refunds_summing_past_captured_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::demo(dir.path());
    let rt = rt();
    let a = agent("a1");
    // ord_1001: 120.00 captured, 20.00 refunded → 100.00 refundable.
    let v1 = rt.block_on(p.validate(&a, &refund("ord_1001", "60.00", "USD")));
    assert_eq!(v1.verdict, Decision::Allow, "{v1:?}");
    let h1 = v1.hold_id.clone().expect("hold placed");
    let v2 = rt.block_on(p.validate(&a, &refund("ord_1001", "40.00", "USD")));
    assert_eq!(v2.verdict, Decision::Allow, "{v2:?}");
    let v3 = rt.block_on(p.validate(&a, &refund("ord_1001", "0.01", "USD")));
    assert_eq!(v3.verdict, Decision::Deny);
    assert_eq!(v3.rules, vec!["refund.within_refundable"]);
    // Posting keeps the amount reserved until the ledger shows it.
    let posted = rt.block_on(p.confirm(&h1)).unwrap();
    assert_eq!(posted.status, "posted");
    assert_eq!(rt.block_on(p.hold(&h1)).unwrap().status, "posted");
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_1001", "0.01", "USD")))
            .verdict,
        Decision::Deny
    );
    // Confirming twice is a conflict, not a silent success.
    assert_eq!(
        rt.block_on(p.confirm(&h1)).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        rt.block_on(p.void(&h1)).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    // The dry run never holds.
    let e = rt.block_on(p.evaluate(&a, &refund("ord_2002", "5000", "JPY")));
    assert_eq!(e.verdict, Decision::Allow);
    assert!(e.hold_id.is_none());
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_2002", "5000", "JPY")))
            .verdict,
        Decision::Allow
    );
}

#[test]
fn void_releases_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::demo(dir.path());
    let rt = rt();
    let a = agent("a1");
    let v = rt.block_on(p.validate(&a, &refund("ord_1001", "100.00", "USD")));
    assert_eq!(v.verdict, Decision::Allow);
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_1001", "0.01", "USD")))
            .verdict,
        Decision::Deny
    );
    let h = rt.block_on(p.void(v.hold_id.as_deref().unwrap())).unwrap();
    assert_eq!(h.amount_minor, 10000);
    assert_eq!(rt.block_on(p.hold(&h.id)).unwrap().status, "voided");
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_1001", "100.00", "USD")))
            .verdict,
        Decision::Allow
    );
    assert_eq!(
        rt.block_on(p.void("hold_missing")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn expired_holds_stop_counting() {
    let dir = tempfile::tempdir().unwrap();
    // hold_ttl_secs = 0: every hold is already expired when the next call reads holds.
    let src = warden_policy::DEMO_POLICY.replace("hold_ttl_secs = 900", "hold_ttl_secs = 0");
    assert_ne!(src, warden_policy::DEMO_POLICY);
    let p = common::policy(&src, dir.path());
    let rt = rt();
    let a = agent("a1");
    let v1 = rt.block_on(p.validate(&a, &refund("ord_1001", "100.00", "USD")));
    assert_eq!(v1.verdict, Decision::Allow);
    let v2 = rt.block_on(p.validate(&a, &refund("ord_1001", "100.00", "USD")));
    assert_eq!(
        v2.verdict,
        Decision::Allow,
        "an expired hold must not block: {v2:?}"
    );
    // An expired hold can be neither posted nor voided.
    let err = rt
        .block_on(p.confirm(v1.hold_id.as_deref().unwrap()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(rt.block_on(p.expire_holds()).unwrap(), 2);
    assert_eq!(
        rt.block_on(p.hold(v1.hold_id.as_deref().unwrap()))
            .unwrap()
            .status,
        "expired"
    );
}

/// Two refunds that each fit but together exceed the refundable balance, racing on
/// separate threads (and, half the time, through two separate `Policy` instances, as two
/// proxy replicas would): exactly one may win, every time.
#[test]
fn concurrent_refunds_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = common::demo(dir.path());
    let p2 = common::demo(dir.path());
    let rt = rt();
    let iterations = 60;
    for i in 0..iterations {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for k in 0..2 {
            let p = if i % 2 == 0 || k == 0 {
                p1.clone()
            } else {
                p2.clone()
            };
            let b = Arc::clone(&barrier);
            tasks.push(rt.spawn(async move {
                b.wait().await;
                p.validate(
                    &agent(&format!("racer-{k}")),
                    &refund("ord_1001", "60.00", "USD"),
                )
                .await
            }));
        }
        let verdicts: Vec<_> = tasks.into_iter().map(|t| rt.block_on(t).unwrap()).collect();
        let allowed: Vec<_> = verdicts
            .iter()
            .filter(|v| v.verdict == Decision::Allow)
            .collect();
        assert_eq!(allowed.len(), 1, "iteration {i}: {verdicts:?}");
        let loser = verdicts
            .iter()
            .find(|v| v.verdict != Decision::Allow)
            .unwrap();
        assert_eq!(loser.verdict, Decision::Deny, "iteration {i}: {loser:?}");
        rt.block_on(p1.void(allowed[0].hold_id.as_deref().unwrap()))
            .unwrap();
    }
}

#[test]
fn idempotent_repeat_and_key_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::demo(dir.path());
    let rt = rt();
    let a = agent("a1");
    let with_key = |amount: &str| {
        call(json!({"name": "issue_refund", "arguments":
            {"order_id": "ord_1001", "amount": amount, "currency": "USD", "idempotency_key": "refund-req-0001"}}))
    };
    let first = rt.block_on(p.validate(&a, &with_key("70.00")));
    assert_eq!(first.verdict, Decision::Allow);
    assert!(!first.replayed);
    let again = rt.block_on(p.validate(&a, &with_key("70.00")));
    assert_eq!(
        again.verdict,
        Decision::Allow,
        "same key, same args → same decision"
    );
    assert!(again.replayed);
    assert_eq!(again.hold_id, first.hold_id, "no second hold");
    // Only one hold exists: 30.00 still fits.
    assert_eq!(
        rt.block_on(p.evaluate(&a, &refund("ord_1001", "30.00", "USD")))
            .verdict,
        Decision::Allow
    );
    let conflict = rt.block_on(p.validate(&a, &with_key("71.00")));
    assert_eq!(conflict.verdict, Decision::Deny);
    assert_eq!(conflict.rules, vec!["idempotency.conflict"]);

    // A denial is repeated too.
    let deny_key = call(json!({"name": "issue_refund", "arguments":
        {"order_id": "ord_1001", "amount": "500.00", "currency": "USD", "idempotency_key": "refund-req-0002"}}));
    let d1 = rt.block_on(p.validate(&a, &deny_key));
    let d2 = rt.block_on(p.validate(&a, &deny_key));
    assert_eq!((d1.verdict, d2.verdict), (Decision::Deny, Decision::Deny));
    assert!(d2.replayed);
}

#[test]
fn velocity_cap_per_principal() {
    let dir = tempfile::tempdir().unwrap();
    let src =
        warden_policy::DEMO_POLICY.replace("max = { USD = \"2000.00\"", "max = { USD = \"150.00\"");
    assert_ne!(src, warden_policy::DEMO_POLICY);
    let p = common::policy(&src, dir.path());
    let rt = rt();
    let a = agent("fast-refunder");
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_7001", "100.00", "USD")))
            .verdict,
        Decision::Allow
    );
    let over = rt.block_on(p.validate(&a, &refund("ord_7002", "60.00", "USD")));
    assert_eq!(over.verdict, Decision::Deny);
    assert_eq!(over.rules, vec!["velocity.cap"]);
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_7002", "50.00", "USD")))
            .verdict,
        Decision::Allow
    );
    // Another principal has its own budget.
    assert_eq!(
        rt.block_on(p.validate(&agent("other"), &refund("ord_7002", "60.00", "USD")))
            .verdict,
        Decision::Allow
    );
    // A currency without a cap is refused (fail closed).
    let no_cap = common::policy(&src.replace(", JPY = \"300000\"", ""), dir.path());
    let v = rt.block_on(no_cap.validate(&a, &refund("ord_2002", "10", "JPY")));
    assert_eq!(v.verdict, Decision::Deny);
    assert!(v.rules.contains(&"velocity.no_cap".to_string()), "{v:?}");
}

#[test]
fn approval_is_bound_to_the_exact_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::demo(dir.path());
    let rt = rt();
    let a = agent("a1");
    let big = refund("ord_7001", "600.00", "USD");
    let v1 = rt.block_on(p.validate(&a, &big));
    assert_eq!(v1.verdict, Decision::NeedsApproval);
    let id = v1.approval_id.clone().expect("approval id");
    // Asking again while pending gives the same request, not a new one.
    assert_eq!(
        rt.block_on(p.validate(&a, &big)).approval_id.as_deref(),
        Some(id.as_str())
    );
    let approved = rt.block_on(p.approve(&id, "lead")).unwrap();
    assert_eq!(approved.status, "approved");
    assert_eq!(approved.args["amount"], 60000);
    // Changed arguments need a new approval.
    let changed = rt.block_on(p.validate(&a, &refund("ord_7001", "600.01", "USD")));
    assert_eq!(changed.verdict, Decision::NeedsApproval);
    assert_ne!(changed.approval_id.as_deref(), Some(id.as_str()));
    // Another principal cannot use it either.
    assert_eq!(
        rt.block_on(p.validate(&agent("a2"), &big)).verdict,
        Decision::NeedsApproval
    );
    // The approved call is allowed once, with a hold.
    let ok = rt.block_on(p.validate(&a, &big));
    assert_eq!(ok.verdict, Decision::Allow, "{ok:?}");
    assert!(ok.rules.contains(&"approval.granted".to_string()));
    assert!(ok.hold_id.is_some());
    assert_eq!(rt.block_on(p.approval(&id)).unwrap().status, "consumed");
    rt.block_on(p.void(ok.hold_id.as_deref().unwrap())).unwrap();
    assert_eq!(
        rt.block_on(p.validate(&a, &big)).verdict,
        Decision::NeedsApproval,
        "approval is single-use"
    );
    // Deciding twice is a conflict; unknown ids are not found.
    assert_eq!(
        rt.block_on(p.approve(&id, "lead")).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        rt.block_on(p.approve("apr_nope", "lead"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn denied_approval_denies_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::demo(dir.path());
    let rt = rt();
    let a = agent("a1");
    let big = refund("ord_7001", "900.00", "USD");
    let id = rt.block_on(p.validate(&a, &big)).approval_id.unwrap();
    assert_eq!(rt.block_on(p.reject(&id, "lead")).unwrap().status, "denied");
    let v = rt.block_on(p.validate(&a, &big));
    assert_eq!(v.verdict, Decision::Deny);
    assert_eq!(v.rules, vec!["approval.denied"]);
}

#[test]
fn state_store_shared_by_separate_policies() {
    // The CLI's `warden approve` and a running proxy are different processes sharing one
    // state file: a decision made through one is seen by the other.
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(dir.path(), "shared.sqlite");
    let opts = || PolicyOptions {
        state_url: Some(url.clone()),
        ..PolicyOptions::default()
    };
    let proxy = Policy::demo(opts()).unwrap();
    let approver = Policy::demo(opts()).unwrap();
    let rt = rt();
    let big = refund("ord_7001", "700.00", "USD");
    let id = rt
        .block_on(proxy.validate(&agent("a1"), &big))
        .approval_id
        .unwrap();
    rt.block_on(approver.approve(&id, "lead")).unwrap();
    assert_eq!(
        rt.block_on(proxy.validate(&agent("a1"), &big)).verdict,
        Decision::Allow
    );
}
