//! Shared helpers for the integration tests: real SQLite files in a temp dir.
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;
use warden_policy::{Policy, PolicyOptions, Principal, ToolCall, Verdict};

/// The demo policy with its state store in `dir`.
pub fn demo(dir: &Path) -> Policy {
    Policy::demo(PolicyOptions {
        state_url: Some(sqlite_url(dir, "state.sqlite")),
        ..PolicyOptions::default()
    })
    .expect("demo policy")
}

pub fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite:{}", dir.join(name).display())
}

/// A policy from source with its state store in `dir`, ledger = the demo ledger.
pub fn policy(src: &str, dir: &Path) -> Policy {
    Policy::from_source(
        src,
        "<test policy>",
        Some(dir),
        PolicyOptions {
            state_url: Some(sqlite_url(dir, "state.sqlite")),
            ..PolicyOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

pub fn call(v: Value) -> ToolCall {
    ToolCall::from_any(&v).expect("tool call")
}

pub fn refund(order: &str, amount: &str, currency: &str) -> ToolCall {
    call(
        serde_json::json!({"name": "issue_refund", "arguments": {"order_id": order, "amount": amount, "currency": currency}}),
    )
}

pub fn agent(id: &str) -> Principal {
    Principal::new(id, "support_agent")
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn summary(v: &Verdict) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
