//! Fail-closed behaviour, bound parameters, audit records and lint, against real files.

mod common;

use std::sync::Arc;

use common::{agent, call, refund, rt};
use serde_json::json;
use warden_audit::{verify, AuditLog, Fsync};
use warden_policy::{Decision, ErrorKind, Policy, PolicyOptions};

/// A policy whose lookup tool takes any string (no pattern), so injection-looking values
/// reach the ledger query.
const LOOSE: &str = r#"
[ledger]
url = "builtin:demo"
[ledger.queries.order_status]
returns = "string"
sql = "SELECT status FROM orders WHERE id = $1"
[ledger.queries.refund_count]
returns = "integer"
sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM refunds WHERE length($1) >= 0"
[roles.support_agent]
tools = ["lookup_order"]
[tools.lookup_order]
args.order_id = { type = "string", max_len = 200 }
[[tools.lookup_order.rules]]
id = "order.known"
expr = "ledger.order_status(order_id) != ''"
message = "no such order"
[[tools.lookup_order.rules]]
id = "refunds.intact"
expr = "ledger.refund_count(order_id) >= 1"
message = "refunds table changed"
"#;

#[test]
fn sql_injection_values_are_bound_not_executed() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::policy(LOOSE, dir.path());
    let rt = rt();
    let payloads = [
        "' OR '1'='1",
        "ord_1001' OR 1=1 --",
        "x'; DROP TABLE refunds; --",
        "ord_1001\"; DELETE FROM refunds; --",
        "$1",
        "ord_1001' UNION SELECT 'captured",
    ];
    for payload in payloads {
        let v = rt.block_on(p.evaluate(
            &agent("a"),
            &call(json!({"name": "lookup_order", "arguments": {"order_id": payload}})),
        ));
        // Had the value been spliced into the SQL, most payloads would have matched a row.
        assert_eq!(v.verdict, Decision::Deny, "{payload}: {v:?}");
        assert_eq!(v.rules, vec!["order.known"], "{payload}: {v:?}");
    }
    let ok = rt.block_on(p.evaluate(
        &agent("a"),
        &call(json!({"name": "lookup_order", "arguments": {"order_id": "ord_1001"}})),
    ));
    assert_eq!(ok.verdict, Decision::Allow, "{ok:?}");
    // The ledger is unchanged: the demo scenario still holds exactly.
    let demo = common::demo(dir.path());
    assert_eq!(
        rt.block_on(demo.evaluate(&agent("a"), &refund("ord_1001", "100.00", "USD")))
            .verdict,
        Decision::Allow
    );
    assert_eq!(
        rt.block_on(demo.evaluate(&agent("a"), &refund("ord_1001", "100.01", "USD")))
            .verdict,
        Decision::Deny
    );
}

#[test]
fn writing_queries_are_refused_by_the_read_only_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    conn.execute_batch(warden_policy::LEDGER_SCHEMA_SQL)
        .unwrap();
    conn.execute_batch(warden_policy::LEDGER_DEMO_SQL).unwrap();
    drop(conn);
    // `WITH … SELECT` passes the policy's shape check; the read-only connection must stop
    // the write anyway.
    let src = format!(
        "{}\n[ledger.queries.sneaky]\nreturns = \"integer\"\nsql = \"WITH gone AS (SELECT 1) UPDATE refunds SET amount_minor = 0 WHERE order_id = $1 RETURNING 1\"\n",
        LOOSE.replace("url = \"builtin:demo\"", &format!("url = \"sqlite:{}\"", ledger.display()))
    )
    .replace("expr = \"ledger.refund_count(order_id) >= 1\"", "expr = \"ledger.sneaky(order_id) == 1\"");
    let p = common::policy(&src, dir.path());
    let rt = rt();
    let v = rt.block_on(p.evaluate(
        &agent("a"),
        &call(json!({"name": "lookup_order", "arguments": {"order_id": "ord_1001"}})),
    ));
    assert_eq!(v.verdict, Decision::Error, "{v:?}");
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let n: i64 = conn
        .query_row("SELECT SUM(amount_minor) FROM refunds", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2000);
}

#[test]
fn ledger_down_is_an_error_never_allow() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    for url in [
        "sqlite:/nonexistent/dir/ledger.sqlite",
        "postgres://warden@127.0.0.1:1/ledger?connect_timeout=1",
    ] {
        let p = Policy::demo(PolicyOptions {
            ledger_url: Some(url.to_string()),
            state_url: Some(common::sqlite_url(dir.path(), "state.sqlite")),
            ..PolicyOptions::default()
        })
        .expect("load succeeds; the ledger is connected lazily");
        let v = rt.block_on(p.validate(&agent("a"), &refund("ord_1001", "1.00", "USD")));
        assert_eq!(v.verdict, Decision::Error, "{url}: {v:?}");
        assert_eq!(v.rules, vec!["ledger.unavailable"]);
        assert_eq!(v.exit_code(), 2);
        assert!(v.hold_id.is_none());
    }
}

#[test]
fn state_store_down_is_an_error() {
    let rt = rt();
    let p = Policy::demo(PolicyOptions {
        state_url: Some("sqlite:/proc/warden-no-such/state.sqlite".into()),
        ..PolicyOptions::default()
    })
    .unwrap();
    let v = rt.block_on(p.validate(&agent("a"), &refund("ord_1001", "1.00", "USD")));
    assert_eq!(v.verdict, Decision::Error, "{v:?}");
    assert_eq!(v.rules, vec!["state.unavailable"]);
}

#[test]
fn an_allowed_call_without_its_audit_record_is_not_released() {
    // Every write to /dev/full fails (ENOSPC): a disk that filled up.
    let log = Arc::new(AuditLog::open("/dev/full", Fsync::Never).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let p = Policy::demo(PolicyOptions {
        state_url: Some(common::sqlite_url(dir.path(), "state.sqlite")),
        audit: Some(log),
        ..PolicyOptions::default()
    })
    .unwrap();
    let rt = rt();
    let v = rt.block_on(p.validate(&agent("a"), &refund("ord_1001", "1.00", "USD")));
    assert_eq!(v.verdict, Decision::Error, "{v:?}");
    assert_eq!(v.rules, vec!["audit.unavailable"]);
    assert!(v.hold_id.is_none());
    // A denied call stays denied: the missing record changes nothing for it.
    let v = rt.block_on(p.validate(&agent("a"), &refund("ord_1001", "1200.00", "USD")));
    assert_eq!(v.verdict, Decision::Deny, "{v:?}");
}

#[test]
fn every_verdict_is_audited_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = Arc::new(AuditLog::open(&path, Fsync::Always).unwrap());
    let p = Policy::demo(PolicyOptions {
        state_url: Some(common::sqlite_url(dir.path(), "state.sqlite")),
        audit: Some(Arc::clone(&log)),
        ..PolicyOptions::default()
    })
    .unwrap();
    let rt = rt();
    let secret_reason = "customer Jane Roe card 4242424242424242 complained";
    let calls = [
        call(
            json!({"name": "issue_refund", "arguments": {"order_id": "ord_1001", "amount": "12.34", "currency": "USD", "reason": secret_reason}}),
        ),
        refund("ord_1001", "1200.00", "USD"),
        call(json!({"name": "no_such_tool", "arguments": {"x": "jane@example.com"}})),
    ];
    for c in &calls {
        rt.block_on(p.validate(&agent("agent-9"), c));
    }
    let v = rt.block_on(p.validate(&agent("agent-9"), &refund("ord_7001", "600.00", "USD")));
    rt.block_on(p.approve(v.approval_id.as_deref().unwrap(), "lead"))
        .unwrap();
    drop(p);
    drop(log);
    let report = verify(&path).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 5);
    let text = std::fs::read_to_string(&path).unwrap();
    // As a token: hashes, ids and timestamps are random hex and digits, and
    // "1234" turns up inside one of them in about one run in a hundred.
    let token_at = |p: usize, len: usize| {
        let b = text.as_bytes();
        let edge = |i: Option<&u8>| !i.is_some_and(u8::is_ascii_alphanumeric);
        edge(p.checked_sub(1).and_then(|q| b.get(q))) && edge(b.get(p + len))
    };
    for value in [
        "Jane",
        "4242424242424242",
        "ord_1001",
        "12.34",
        "1234",
        "jane@example.com",
        "1200.00",
    ] {
        assert!(
            !text
                .match_indices(value)
                .any(|(p, _)| token_at(p, value.len())),
            "audit log contains the raw value {value:?}"
        );
    }
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let data = &first["data"];
    assert_eq!(data["verdict"], "allow");
    assert_eq!(data["principal"], "agent-9");
    assert_eq!(data["tool"], "issue_refund");
    assert_eq!(data["args"]["reason"], "withheld");
    assert_eq!(data["args"]["order_id"].as_str().map(str::len), Some(16));
    assert!(text.contains("\"verdict\":\"deny\""));
    assert!(text.contains("approval_approved"));

    // Tampering with a verdict is detected and named.
    let tampered = text.replacen("\"verdict\":\"deny\"", "\"verdict\":\"allow\"", 1);
    std::fs::write(&path, tampered).unwrap();
    let broken = verify(&path).unwrap().broken.expect("tampering detected");
    assert_eq!(broken.line, 2);
}

#[test]
fn keyed_fingerprints_differ_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut fps = Vec::new();
    for key in [b"key-one".to_vec(), b"key-two".to_vec()] {
        let path = dir.path().join(format!("audit-{}.jsonl", fps.len()));
        let log = Arc::new(AuditLog::open(&path, Fsync::Never).unwrap());
        let p = Policy::demo(PolicyOptions {
            state_url: Some(common::sqlite_url(dir.path(), "state.sqlite")),
            audit: Some(log),
            fingerprint_key: Some(key),
            ..PolicyOptions::default()
        })
        .unwrap();
        rt.block_on(p.evaluate(&agent("a"), &refund("ord_1001", "1.00", "USD")));
        drop(p);
        let line: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(line["data"]["fingerprint"], "hmac-sha256");
        fps.push(
            line["data"]["args"]["order_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_ne!(fps[0], fps[1]);
}

#[test]
fn lint_reports_every_problem_with_its_line() {
    let src = r#"
[ledger]
url = "builtin:demo"

[ledger.queries.good]
returns = "integer"
sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM orders WHERE id = $1"

[ledger.queries.no_table]
returns = "integer"
sql = "SELECT amount FROM no_such_table WHERE id = $1"

[roles.agent]
tools = ["t", "ghost_tool"]

[tools.t]
args.a = { type = "strnig" }
args.n = { type = "integer" }
args.m = { type = "money", currency = "c" }
args.p = { type = "string", pattern = "(a" }

[[tools.t.rules]]
id = "r1"
expr = "n >"
message = "m"

[[tools.t.rules]]
id = "r2"
expr = "ledger.nope(n) == 1"
message = "m"

[[tools.t.rules]]
id = "r3"
expr = "undeclared_var == 1"
message = "m"
"#;
    let rt = rt();
    let problems = rt.block_on(Policy::lint(src, None, PolicyOptions::default()));
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expect = [
        (17, "unknown type \"strnig\""),
        (19, "currency argument \"c\""),
        (20, "pattern does not compile"),
        (24, "CEL does not compile"),
        (29, "unknown ledger query \"nope\""),
        (34, "unknown variable \"undeclared_var\""),
        (14, "unknown tool \"ghost_tool\""),
    ];
    for (line, needle) in expect {
        assert!(
            problems
                .iter()
                .any(|p| p.line == Some(line) && p.message.contains(needle)),
            "missing line {line}: {needle}\n{}",
            text.join("\n")
        );
    }
    // Compile problems first; once those are fixed, queries are prepared against the ledger.
    let fixed = src
        .replace("\"strnig\"", "\"string\"")
        .replace("args.m = { type = \"money\", currency = \"c\" }\n", "")
        .replace("pattern = \"(a\"", "pattern = \"a\"")
        .replace("\"n >\"", "\"n > 0\"")
        .replace("ledger.nope(n)", "ledger.good(a)")
        .replace("undeclared_var", "n")
        .replace(", \"ghost_tool\"", "");
    let problems = rt.block_on(Policy::lint(&fixed, None, PolicyOptions::default()));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, Some(11));
    assert!(
        problems[0].message.contains("no_such_table"),
        "{problems:?}"
    );
    // Loading refuses a bad policy with every problem in the error.
    let err = Policy::from_source(src, "bad.toml", None, PolicyOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Policy);
    assert!(err.problems().len() >= 7);
    assert!(err.to_string().contains("bad.toml:17:"), "{err}");
}

#[test]
fn demo_policy_lints_clean() {
    let rt = rt();
    let problems = rt.block_on(Policy::lint(
        warden_policy::DEMO_POLICY,
        None,
        PolicyOptions::default(),
    ));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn bad_toml_is_reported_with_a_line() {
    let err = Policy::from_source(
        "[roles.a]\ntools = [\n",
        "x.toml",
        None,
        PolicyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Policy);
    assert!(err.problems()[0].line.is_some(), "{err}");
    let err = Policy::from_source(
        "[roles.a]\ntools = []\nsurprise = 1\n",
        "x.toml",
        None,
        PolicyOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
}

#[test]
fn slow_ledger_query_times_out_as_error() {
    let dir = tempfile::tempdir().unwrap();
    // A recursive CTE that would count to a billion: interrupted by the progress handler.
    let src = LOOSE.replace("url = \"builtin:demo\"", "url = \"builtin:demo\"\ntimeout_ms = 50").replace(
        "sql = \"SELECT status FROM orders WHERE id = $1\"",
        "sql = \"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT status FROM orders WHERE id = $1 AND (SELECT MAX(i) FROM n) > 0\"",
    );
    let p = common::policy(&src, dir.path());
    let rt = rt();
    let started = std::time::Instant::now();
    let v = rt.block_on(p.evaluate(
        &agent("a"),
        &call(json!({"name": "lookup_order", "arguments": {"order_id": "ord_1001"}})),
    ));
    assert_eq!(v.verdict, Decision::Error, "{v:?}");
    assert!(v.messages[0].contains("timed out"), "{v:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
