//! The verdict: a value, serialisable as the JSON `warden check-call` prints.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The call may run.
    Allow,
    /// The call must not run.
    Deny,
    /// The call may run only after a human approves it (see `approval_id`).
    NeedsApproval,
    /// Warden could not decide (ledger or state store down, rule failed to evaluate):
    /// treat as deny. Fail closed.
    Error,
}

impl Decision {
    /// The lowercase name (`allow`, `deny`, `needs_approval`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::NeedsApproval => "needs_approval",
            Decision::Error => "error",
        }
    }
}

/// The outcome of validating one tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The decision.
    pub verdict: Decision,
    /// The tool called.
    pub tool: String,
    /// Rule ids that decided it: the failing ones for `deny`, the passing ones for `allow`.
    pub rules: Vec<String>,
    /// Human messages, one per failing rule (or the error).
    pub messages: Vec<String>,
    /// Normalised arguments (money in integer minor units); empty when they did not validate.
    pub args: Map<String, Value>,
    /// The approval request to decide, for `needs_approval` (or the approval used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The hold placed for an allowed money call: confirm or void it when the call ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    /// True when this is the stored decision for a repeated idempotency key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

impl Verdict {
    pub(crate) fn new(verdict: Decision, tool: &str) -> Verdict {
        Verdict {
            verdict,
            tool: tool.to_string(),
            rules: Vec::new(),
            messages: Vec::new(),
            args: Map::new(),
            approval_id: None,
            hold_id: None,
            replayed: false,
        }
    }

    pub(crate) fn deny(tool: &str, rule: &str, message: impl Into<String>) -> Verdict {
        let mut v = Verdict::new(Decision::Deny, tool);
        v.rules.push(rule.to_string());
        v.messages.push(message.into());
        v
    }

    pub(crate) fn error(tool: &str, rule: &str, message: impl Into<String>) -> Verdict {
        let mut v = Verdict::deny(tool, rule, message);
        v.verdict = Decision::Error;
        v
    }

    /// True only for `allow`.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Decision::Allow
    }

    /// The CLI exit code: 0 allow, 1 deny or needs_approval, 2 error.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Decision::Allow => 0,
            Decision::Deny | Decision::NeedsApproval => 1,
            Decision::Error => 2,
        }
    }
}
