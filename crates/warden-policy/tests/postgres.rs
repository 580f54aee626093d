//! The same policy against a real PostgreSQL server: ledger in one fresh schema, state
//! store in another, both dropped afterwards.
//!
//! Needs `WARDEN_TEST_POSTGRES_URL` (see `scripts/pg.sh start`). Without it these tests
//! print "skipped: no postgres" — unless `WARDEN_REQUIRE_SERVICES=1`, when they fail.

mod common;

use std::sync::Arc;

use common::{agent, call, refund, rt};
use serde::Deserialize;
use serde_json::json;
use warden_policy::{Decision, Policy, PolicyOptions, Principal, ToolCall};

fn pg_url() -> Option<String> {
    match std::env::var("WARDEN_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert_ne!(
                std::env::var("WARDEN_REQUIRE_SERVICES").as_deref(),
                Ok("1"),
                "WARDEN_REQUIRE_SERVICES=1 but WARDEN_TEST_POSTGRES_URL is unset (run: eval \"$(scripts/pg.sh start)\")"
            );
            eprintln!("skipped: no postgres (set WARDEN_TEST_POSTGRES_URL; see scripts/pg.sh)");
            None
        }
    }
}

/// A fresh ledger schema (loaded with the demo SQL) and a fresh state schema.
struct PgEnv {
    url: String,
    ledger: String,
    state: String,
}

impl PgEnv {
    fn new(rt: &tokio::runtime::Runtime) -> Option<PgEnv> {
        let url = pg_url()?;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let env = PgEnv {
            url,
            ledger: format!("ledger_{}", &tag[..12]),
            state: format!("state_{}", &tag[..12]),
        };
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&env.url, tokio_postgres::NoTls)
                .await
                .expect("connect to test postgres");
            tokio::spawn(conn);
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA {0}; SET search_path TO {0};",
                    env.ledger
                ))
                .await
                .expect("create ledger schema");
            client
                .batch_execute(warden_policy::LEDGER_SCHEMA_SQL)
                .await
                .expect("schema.sql on PostgreSQL");
            client
                .batch_execute(warden_policy::LEDGER_DEMO_SQL)
                .await
                .expect("demo.sql on PostgreSQL");
        });
        Some(env)
    }

    fn opts(&self) -> PolicyOptions {
        PolicyOptions {
            ledger_url: Some(self.url.clone()),
            ledger_schema: Some(self.ledger.clone()),
            state_url: Some(self.url.clone()),
            state_schema: Some(self.state.clone()),
            ..PolicyOptions::default()
        }
    }

    fn demo(&self) -> Policy {
        Policy::demo(self.opts()).expect("demo policy on postgres")
    }
}

impl Drop for PgEnv {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok((client, conn)) =
                tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE;",
                        self.ledger, self.state
                    ))
                    .await;
            }
        });
    }
}

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
}

#[test]
fn postgres_demo_cases() {
    let rt = rt();
    let Some(env) = PgEnv::new(&rt) else { return };
    let policy = env.demo();
    let cases: Cases = toml::from_str(include_str!("demo_cases.toml")).expect("demo_cases.toml");
    let mut failures = Vec::new();
    for c in &cases.case {
        let value: serde_json::Value = serde_json::from_str(&c.call).expect("case JSON");
        let call = ToolCall::from_any(&value).expect("case shape");
        let v = rt
            .block_on(policy.evaluate(&Principal::new("pg-agent", &c.role).with_mfa(c.mfa), &call));
        if v.verdict != c.expect || c.rules.iter().any(|r| !v.rules.contains(r)) {
            failures.push(format!("{}: {}", c.name, common::summary(&v)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn postgres_concurrent_refunds_never_both_win() {
    let rt = rt();
    let Some(env) = PgEnv::new(&rt) else { return };
    // Two policies = two connection pools, like two proxy replicas.
    let p1 = env.demo();
    let p2 = env.demo();
    for i in 0..60 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [p1.clone(), p2.clone()]
            .into_iter()
            .enumerate()
            .map(|(k, p)| {
                let b = Arc::clone(&barrier);
                rt.spawn(async move {
                    b.wait().await;
                    p.validate(
                        &agent(&format!("pg-racer-{k}")),
                        &refund("ord_1001", "60.00", "USD"),
                    )
                    .await
                })
            })
            .collect();
        let verdicts: Vec<_> = tasks
            .into_iter()
            .map(|t| rt.block_on(t).expect("task"))
            .collect();
        let allowed: Vec<_> = verdicts
            .iter()
            .filter(|v| v.verdict == Decision::Allow)
            .collect();
        assert_eq!(allowed.len(), 1, "iteration {i}: {verdicts:?}");
        assert!(
            verdicts.iter().any(|v| v.verdict == Decision::Deny),
            "iteration {i}: {verdicts:?}"
        );
        rt.block_on(p1.void(allowed[0].hold_id.as_deref().expect("hold")))
            .expect("void");
    }
}

#[test]
fn postgres_holds_idempotency_and_approvals() {
    let rt = rt();
    let Some(env) = PgEnv::new(&rt) else { return };
    let p = env.demo();
    let a = agent("pg-a");
    let v = rt.block_on(p.validate(&a, &refund("ord_1001", "100.00", "USD")));
    assert_eq!(v.verdict, Decision::Allow, "{v:?}");
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_1001", "0.01", "USD")))
            .verdict,
        Decision::Deny
    );
    rt.block_on(p.void(v.hold_id.as_deref().unwrap())).unwrap();
    assert_eq!(
        rt.block_on(p.validate(&a, &refund("ord_1001", "0.01", "USD")))
            .verdict,
        Decision::Allow
    );

    let keyed = |amount: &str| {
        call(json!({"name": "issue_refund", "arguments":
            {"order_id": "ord_2002", "amount": amount, "currency": "JPY", "idempotency_key": "pg-key-00001"}}))
    };
    let first = rt.block_on(p.validate(&a, &keyed("1000")));
    let again = rt.block_on(p.validate(&a, &keyed("1000")));
    assert!(
        again.replayed && again.hold_id == first.hold_id,
        "{again:?}"
    );
    assert_eq!(
        rt.block_on(p.validate(&a, &keyed("1001"))).rules,
        vec!["idempotency.conflict"]
    );

    let big = refund("ord_7001", "800.00", "USD");
    let id = rt
        .block_on(p.validate(&a, &big))
        .approval_id
        .expect("approval id");
    rt.block_on(p.approve(&id, "pg-lead")).unwrap();
    assert_eq!(rt.block_on(p.validate(&a, &big)).verdict, Decision::Allow);

    let payout = call(
        json!({"name": "create_payout", "arguments": {"merchant_id": "mer_77", "amount": "1234.56", "currency": "USD"}}),
    );
    let fin = Principal::new("pg-fin", "finance").with_mfa(true);
    assert_eq!(
        rt.block_on(p.validate(&fin, &payout)).verdict,
        Decision::Allow
    );
    // The payout is held: a second one for the same merchant is refused.
    assert_eq!(
        rt.block_on(p.validate(&fin, &payout)).verdict,
        Decision::Deny
    );
}

#[test]
fn postgres_ledger_is_read_only_and_bound() {
    let rt = rt();
    let Some(env) = PgEnv::new(&rt) else { return };
    let src = r#"
[ledger.queries.status]
returns = "string"
sql = "SELECT status FROM orders WHERE id = $1"
[ledger.queries.sneaky]
returns = "integer"
sql = "WITH gone AS (DELETE FROM refunds WHERE order_id = $1 RETURNING 1) SELECT CAST(COUNT(*) AS BIGINT) FROM gone"
[roles.r]
tools = ["lookup", "sneak"]
[tools.lookup]
args.order_id = { type = "string" }
[[tools.lookup.rules]]
id = "known"
expr = "ledger.status(order_id) != ''"
message = "no such order"
[tools.sneak]
args.order_id = { type = "string" }
[[tools.sneak.rules]]
id = "sneaky"
expr = "ledger.sneaky(order_id) >= 0"
message = "x"
"#;
    let p =
        Policy::from_source(src, "<pg test>", None, env.opts()).unwrap_or_else(|e| panic!("{e}"));
    let r = Principal::new("x", "r");
    for payload in [
        "' OR '1'='1",
        "ord_1001' OR 1=1 --",
        "x'; DROP TABLE refunds; --",
    ] {
        let v = rt.block_on(p.evaluate(
            &r,
            &call(json!({"name": "lookup", "arguments": {"order_id": payload}})),
        ));
        assert_eq!(v.verdict, Decision::Deny, "{payload}: {v:?}");
    }
    let v = rt.block_on(p.evaluate(
        &r,
        &call(json!({"name": "sneak", "arguments": {"order_id": "ord_1001"}})),
    ));
    assert_eq!(
        v.verdict,
        Decision::Error,
        "a write through the ledger session must fail: {v:?}"
    );
    assert!(v.messages[0].contains("read-only"), "{v:?}");
    // The refund is still there.
    let demo = env.demo();
    assert_eq!(
        rt.block_on(demo.evaluate(&agent("a"), &refund("ord_1001", "100.01", "USD")))
            .verdict,
        Decision::Deny
    );
}

#[test]
fn postgres_lint_prepares_queries() {
    let rt = rt();
    let Some(env) = PgEnv::new(&rt) else { return };
    let src = r#"
[ledger.queries.ok]
returns = "integer"
sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM orders WHERE id = $1"
[ledger.queries.missing_table]
returns = "integer"
sql = "SELECT 1 FROM nowhere WHERE id = $1"
[ledger.queries.numeric_sum]
returns = "integer"
sql = "SELECT SUM(amount_minor) FROM refunds WHERE order_id = $1"
[roles.r]
tools = []
"#;
    let problems = rt.block_on(Policy::lint(src, None, env.opts()));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.line == Some(7) && p.message.contains("nowhere")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.line == Some(10) && p.message.contains("numeric")),
        "{problems:?}"
    );
    assert!(rt
        .block_on(Policy::lint(warden_policy::DEMO_POLICY, None, env.opts()))
        .is_empty());
}

#[test]
fn postgres_slow_query_times_out_as_error() {
    let rt = rt();
    let Some(env) = PgEnv::new(&rt) else { return };
    let src = r#"
[ledger]
timeout_ms = 100
[ledger.queries.slow]
returns = "string"
sql = "SELECT status FROM orders, pg_sleep(5) WHERE id = $1"
[roles.r]
tools = ["lookup"]
[tools.lookup]
args.order_id = { type = "string" }
[[tools.lookup.rules]]
id = "known"
expr = "ledger.slow(order_id) != ''"
message = "no such order"
"#;
    let p =
        Policy::from_source(src, "<pg test>", None, env.opts()).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let v = rt.block_on(p.evaluate(
        &Principal::new("x", "r"),
        &call(json!({"name": "lookup", "arguments": {"order_id": "ord_1001"}})),
    ));
    assert_eq!(v.verdict, Decision::Error, "{v:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "statement_timeout did not fire"
    );
}
