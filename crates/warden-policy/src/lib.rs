//! Tool-call policy: may this caller run this tool with these arguments, and do the
//! amounts agree with the ledger?
//!
//! A [`Policy`] is loaded from a TOML file (see `policies/demo.toml`, the documented
//! example, and `docs/policy.md`). It declares roles and their tools, each tool's argument
//! schema (with exact money in ISO 4217 minor units), CEL rules that read a SQL ledger
//! through named read-only queries (`amount <= ledger.refundable(order_id) - holds(order_id)`),
//! approval thresholds, MFA step-up, velocity caps and idempotency. Validation returns a
//! [`Verdict`] value: `allow`, `deny`, `needs_approval` or `error` (fail closed).
//!
//! # Example
//!
//! ```
//! use warden_policy::{Decision, Policy, PolicyOptions, Principal, ToolCall};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let policy = Policy::demo(PolicyOptions {
//!     state_url: Some(format!("sqlite:{}", dir.path().join("state.sqlite").display())),
//!     ..PolicyOptions::default()
//! }).unwrap();
//! let agent = Principal::new("agent-1", "support_agent");
//! let call = ToolCall::from_anthropic(&serde_json::json!({
//!     "type": "tool_use", "id": "toolu_1", "name": "issue_refund",
//!     "input": {"order_id": "ord_1001", "amount": "100.00", "currency": "USD"}
//! })).unwrap();
//!
//! let verdict = policy.validate(&agent, &call).await;   // places a hold
//! assert_eq!(verdict.verdict, Decision::Allow);
//! assert_eq!(verdict.args["amount"], 10000);            // minor units
//! policy.confirm(verdict.hold_id.as_deref().unwrap()).await.unwrap();
//!
//! // The balance is now reserved: a second refund of 0.01 no longer fits.
//! let again = ToolCall::from_any(&serde_json::json!({"name": "issue_refund",
//!     "arguments": "{\"order_id\":\"ord_1001\",\"amount\":\"0.01\",\"currency\":\"USD\"}"})).unwrap();
//! assert_eq!(policy.validate(&agent, &again).await.verdict, Decision::Deny);
//! # });
//! ```

#![deny(missing_docs)]

mod demo;
mod error;
mod ledger;
mod money;
mod policy;
mod rules;
mod schema;
mod spec;
mod store;
mod toolcall;
mod verdict;

pub use demo::{demo_ledger_path, DEMO_POLICY, LEDGER_DEMO_SQL, LEDGER_SCHEMA_SQL};
pub use error::{Error, ErrorKind, Problem};
pub use money::{currency_exponent, format_minor_units, to_minor_units, MoneyError};
pub use policy::{cache_dir, Policy, PolicyOptions, ToolCallRecord};
pub use store::{Approval, Hold};
pub use toolcall::{Principal, ToolCall, ToolCallError};
pub use verdict::{Decision, Verdict};

#[cfg(test)]
mod send_sync {
    #[test]
    fn public_types_are_send_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<super::Policy>();
        assert::<super::Verdict>();
        assert::<super::Error>();
    }
}
