//! Authentication failures. `Display` is for logs and audit; clients only ever see the
//! OAuth error code and a fixed description (see [`AuthError::oauth_error`]).

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential presented")]
    Missing,
    #[error("credential is not a bearer token")]
    Malformed,
    #[error("token algorithm {0} is not allowed for this issuer")]
    Algorithm(String),
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    #[error("signing key {0:?} is unknown")]
    UnknownKey(Option<String>),
    #[error("token signature or claims are invalid: {0}")]
    Invalid(String),
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not this gateway")]
    Audience,
    #[error("token tenant {0} is not allowed")]
    Tenant(String),
    #[error("token is not active")]
    Inactive,
    #[error("token lacks scopes {0:?}")]
    InsufficientScope(Vec<String>),
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The RFC 6750 error code for `WWW-Authenticate`.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            AuthError::Missing => "",
            AuthError::Malformed => "invalid_request",
            AuthError::InsufficientScope(_) => "insufficient_scope",
            _ => "invalid_token",
        }
    }

    /// 403 for a valid token without the needed scope; 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::InsufficientScope(_) => 403,
            _ => 401,
        }
    }

    /// Short reason label for metrics (bounded set).
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Algorithm(_) => "algorithm",
            AuthError::UnknownIssuer => "issuer",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::Invalid(_) => "invalid",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Audience => "audience",
            AuthError::Tenant(_) => "tenant",
            AuthError::Inactive => "inactive",
            AuthError::InsufficientScope(_) => "scope",
            AuthError::Unavailable(_) => "idp_unavailable",
        }
    }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}
