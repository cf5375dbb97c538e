//! The audit event: one schema (versioned) for requests, authentication, configuration and
//! lifecycle events. Field order is the serialization order, so a stored body is canonical.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning; new optional fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An MCP request and its outcome.
    Request,
    /// Authentication succeeded or failed, a key was used, a subject revoked.
    Auth,
    /// Configuration or policy changed (or a change was refused).
    Config,
    /// A tool or prompt definition was pinned, held for review, approved, rejected or
    /// restored.
    Pin,
    /// The gateway started or stopped.
    Lifecycle,
    /// A step of a human approval: requested, notified, approved, denied, expired, used.
    Approval,
    /// A sandboxed server's connection out through the egress proxy, made or refused.
    Egress,
}

/// One audit event. Secrets and tokens never appear: arguments and results are recorded as
/// digests (and, where a classification allows, a redacted copy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub v: u32,
    pub kind: Option<EventKind>,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation: String,
    /// The tenant whose chain holds the event; empty for the default chain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// How the principal authenticated: `jwt`, `api_key`, `client_cert`…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub virtual_server: String,
    /// The JSON-RPC method, or the event's name for other kinds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// Tool, prompt or resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream: String,
    /// `ok`, `denied`, `error`, `unknown_tool`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The rule that refused, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// The principal's roles and groups as the call carried them (what a replay of the
    /// call against a draft policy decides with).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub classification: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verb: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub args_digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_class: String,
    /// What DLP found and did: `kind=count,…` and `blocked:kind` (never the values).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub findings: String,
    /// What prompt-injection detection found in the arguments, the result or a
    /// description, and what it did (at most 32 per event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detections: Vec<Detection>,
    /// Keyed digests of the personal identifiers the call's arguments or result carried
    /// (a data subject's access report searches them; the values are never stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// The arguments, when the classification keeps them (`audit_bodies`): masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// The result as delivered, when the classification keeps it: masked, bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The approval reference a call waited for (and, on approval events, their subject).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub approval: String,
    pub latency_us: u64,
    /// Free-form detail for non-request events (a config diff, a reason).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One detection finding: where, which stage and rule, how sure, and what was done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `arguments`, `result` or `description`.
    pub place: String,
    /// 1 patterns, 2 classifier, 3 arbitration.
    pub stage: u8,
    pub rule: String,
    pub severity: String,
    pub score: f64,
    /// JSON pointer to the string inside the message, and the byte span within it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub at: String,
    pub start: u64,
    pub end: u64,
    /// `block`, `approve`, `redact`, `flag`, `quarantine`.
    pub action: String,
}

impl AuditEvent {
    /// The chain this event belongs to.
    pub fn chain(&self) -> &str {
        if self.tenant.is_empty() {
            "default"
        } else {
            &self.tenant
        }
    }

    /// The canonical body: the JSON the chain hashes and the store keeps.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
