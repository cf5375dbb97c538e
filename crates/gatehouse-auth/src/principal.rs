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
    /// Development mode: nobody was authenticated.
    DevMode,
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
        }
    }

    /// Short label of the method, for logs and audit.
    pub fn method_label(&self) -> &'static str {
        match self.method {
            AuthMethod::Jwt { .. } => "jwt",
            AuthMethod::Introspection { .. } => "introspection",
            AuthMethod::DevMode => "dev_mode",
        }
    }
}
