//! The authenticated caller, as every later control sees it.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Service,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A JWT access token verified against the issuer's keys.
    Jwt { issuer: String },
    /// An opaque token the issuer confirmed by introspection.
    Introspection { issuer: String },
    /// A token the gateway's own authorization server issued after the user signed in at
    /// `idp`.
    Gateway { idp: String },
    /// An API key of one application.
    ApiKey { key_id: String, app: String },
    /// A client certificate verified by the TLS listener, mapped by a config rule.
    ClientCert { subject: String },
    /// Development mode: nobody was authenticated.
    DevMode,
}

/// What an API key is limited to; empty lists mean no limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyLimits {
    pub servers: Vec<String>,
    pub tools: Vec<String>,
}

impl KeyLimits {
    /// Whether an upstream (and, for tools, an exposed tool name) is within the limits.
    pub fn allows(&self, upstream: &str, tool: Option<&str>) -> bool {
        (self.servers.is_empty() || self.servers.iter().any(|s| s == upstream))
            && match tool {
                Some(t) => self.tools.is_empty() || self.tools.iter().any(|x| x == t),
                None => true,
            }
    }
}

/// Who is calling, with what the policy engine decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Stable and unique across issuers: `{issuer name}/{subject}`.
    pub id: String,
    pub kind: PrincipalKind,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    /// Authentication strength: `acr` and `amr` as the issuer stated them.
    pub acr: Option<String>,
    pub amr: Vec<String>,
    /// When the user authenticated (`auth_time`), else when the token was issued.
    pub authenticated_at: Option<u64>,
    pub method: AuthMethod,
    /// Claims mapped by config into attributes for policies.
    pub attributes: BTreeMap<String, Value>,
    /// Set for API keys: the servers and tools the key may reach.
    pub limits: Option<KeyLimits>,
}

impl Principal {
    /// The caller in development mode (no authentication configured, loopback only).
    pub fn anonymous() -> Principal {
        Principal {
            id: "anonymous".into(),
            kind: PrincipalKind::User,
            tenant: None,
            roles: Vec::new(),
            groups: Vec::new(),
            scopes: Vec::new(),
            acr: None,
            amr: Vec::new(),
            authenticated_at: None,
            method: AuthMethod::DevMode,
            attributes: BTreeMap::new(),
            limits: None,
        }
    }

    /// Short label of the method, for logs and audit.
    pub fn method_label(&self) -> &'static str {
        match self.method {
            AuthMethod::Jwt { .. } => "jwt",
            AuthMethod::Introspection { .. } => "introspection",
            AuthMethod::Gateway { .. } => "gateway_token",
            AuthMethod::ApiKey { .. } => "api_key",
            AuthMethod::ClientCert { .. } => "client_cert",
            AuthMethod::DevMode => "dev_mode",
        }
    }
}
