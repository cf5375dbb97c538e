//! The facts a decision is made on, as plain data: who asks (`Subject`), for what
//! (`Action` on a `Target`), and in which circumstances (`Situation`). Built by the proxy
//! from the principal, the catalog and config; nothing here does IO.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How sensitive the data behind a server, tool or resource is. Ordered: a higher level
/// carries stricter controls.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl Classification {
    pub const ALL: [Classification; 4] = [
        Classification::Public,
        Classification::Internal,
        Classification::Confidential,
        Classification::Restricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
        }
    }

    /// 0 (public) … 3 (restricted), for policies that compare levels.
    pub fn level(self) -> i64 {
        self as i64
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tool does to the world, coarsely: the class policies limit by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Read,
    Write,
    Execute,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Write => "write",
            Verb::Execute => "execute",
            Verb::Delete => "delete",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MCP tool annotations with the spec's defaults applied (a tool that says nothing is
/// assumed to write, destructively, to an open world).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Default for Hints {
    fn default() -> Self {
        Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
            open_world: true,
        }
    }
}

impl Hints {
    /// Reads `annotations` of a tool definition. Annotations come from the upstream and are
    /// hints, not guarantees: config can override the verb they imply.
    pub fn from_annotations(annotations: Option<&Value>) -> Hints {
        let flag = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_bool);
        let read_only = flag("readOnlyHint").unwrap_or(false);
        Hints {
            read_only,
            // The spec: destructiveHint is meaningful only when readOnlyHint is false.
            destructive: !read_only && flag("destructiveHint").unwrap_or(true),
            idempotent: flag("idempotentHint").unwrap_or(false),
            open_world: flag("openWorldHint").unwrap_or(true),
        }
    }

    /// The verb the annotations imply: read-only tools read, tools that explicitly say they
    /// are destructive delete, every other tool writes. `execute` comes only from config.
    pub fn verb(annotations: Option<&Value>) -> Verb {
        let flag = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_bool);
        if flag("readOnlyHint") == Some(true) {
            Verb::Read
        } else if flag("destructiveHint") == Some(true) {
            Verb::Delete
        } else {
            Verb::Write
        }
    }
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    CallTool,
    GetPrompt,
    ReadResource,
    SubscribeResource,
    Complete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CallTool => "call_tool",
            Action::GetPrompt => "get_prompt",
            Action::ReadResource => "read_resource",
            Action::SubscribeResource => "subscribe_resource",
            Action::Complete => "complete",
        }
    }
}

/// The caller, as policies see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Subject {
    pub id: String,
    /// A service (API key, certificate, client credentials) rather than a person.
    pub service: bool,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    /// When the caller authenticated (seconds since the epoch), if known.
    pub authenticated_at: Option<u64>,
    /// How the caller authenticated: `jwt`, `api_key`, `client_cert`…
    pub method: String,
    /// Claims mapped into attributes; each is a set of strings in policies.
    pub attributes: BTreeMap<String, Value>,
}

/// Who owns a server and who may share it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tenancy {
    /// The tenant the server belongs to; `None` in a single-tenant deployment.
    pub tenant: Option<String>,
    /// Declared shared: principals of every tenant may be granted it.
    pub shared: bool,
}

/// What is acted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tool {
        server: String,
        /// The tool's name at its upstream.
        original: String,
        /// The name clients see.
        exposed: String,
        classification: Classification,
        verb: Verb,
        hints: Hints,
        tenancy: Tenancy,
    },
    Prompt {
        server: String,
        original: String,
        exposed: String,
        classification: Classification,
        tenancy: Tenancy,
    },
    Resource {
        server: String,
        uri: String,
        classification: Classification,
        tenancy: Tenancy,
    },
}

impl Target {
    pub fn server(&self) -> &str {
        match self {
            Target::Tool { server, .. }
            | Target::Prompt { server, .. }
            | Target::Resource { server, .. } => server,
        }
    }

    pub fn classification(&self) -> Classification {
        match self {
            Target::Tool { classification, .. }
            | Target::Prompt { classification, .. }
            | Target::Resource { classification, .. } => *classification,
        }
    }

    /// `server.name` for tools and prompts (the name at the upstream), the URI for resources.
    pub fn reference(&self) -> String {
        match self {
            Target::Tool {
                server, original, ..
            }
            | Target::Prompt {
                server, original, ..
            } => format!("{server}.{original}"),
            Target::Resource { uri, .. } => uri.clone(),
        }
    }
}

/// The circumstances of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Situation<'a> {
    /// Deciding whether to *show* the target in a list: argument conditions are not
    /// known yet and do not hide it.
    pub listing: bool,
    /// Seconds since the epoch.
    pub now: u64,
    /// The call's arguments (`tools/call`, `prompts/get`).
    pub arguments: Option<&'a serde_json::Map<String, Value>>,
    /// `clientInfo.name`.
    pub client: Option<&'a str>,
    pub source_ip: Option<std::net::IpAddr>,
}
