//! JSON-RPC error objects and the error codes MCP defines.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// JSON-RPC and MCP error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Transport-level failure (connection closed, upstream unavailable).
    pub const CONNECTION_CLOSED: i64 = -32000;
    /// The request timed out.
    pub const REQUEST_TIMEOUT: i64 = -32001;
    /// MCP: a resource URI names nothing.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// Gatehouse: authorization refused the request (policy, tenant or step-up). Distinct
    /// from "not found" so an auditor can tell a refusal from a missing tool.
    pub const FORBIDDEN: i64 = -32003;
    /// Gatehouse: a rate limit or in-flight cap refused the request; `data.retryAfterMs`
    /// says when to try again (HTTP 429 with `Retry-After` on plain JSON answers).
    pub const RATE_LIMITED: i64 = -32029;
    /// The call needs the user to complete a URL flow first (MCP 2025-11-25
    /// `URLElicitationRequiredError`); `data.elicitations` lists the URLs.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
    /// 2026-07-28: an `Mcp-*` routing header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the request needs a client capability the envelope does not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// 2026-07-28: the envelope's protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A JSON-RPC error object. `message` is what the client sees: never internal detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}
