//! What a stage decides: go on, refuse with a typed reason, hold for a person, or answer.

use gatehouse_protocol::RpcError;
use serde_json::Value;

/// A stage's decision: go on, refuse, hold for a person, or answer now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    Deny(Denial),
    /// Allowed only once a person approves this exact call (the rule that asks).
    RequireApproval(&'static str),
    /// The request ends here with this answer (a local answer, a pending approval, a
    /// refusal already recorded by the stage that made it).
    Answer(Result<Value, RpcError>),
}

/// A refusal: the rule that refused, the reason for the log and audit, and the error the
/// client sees (which never carries internal detail).
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub rule: &'static str,
    pub reason: String,
    pub error: RpcError,
}

impl Denial {
    pub(crate) fn new(rule: &'static str, reason: impl Into<String>, error: RpcError) -> Self {
        Self {
            rule,
            reason: reason.into(),
            error,
        }
    }
}
