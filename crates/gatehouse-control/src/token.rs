//! The bearer tokens of the control surfaces (the admin API, SCIM): compared in constant
//! time with the configured secret, read at each request so rotation needs no restart.
//! Each surface turns a refusal into its own error shape.

use http::{HeaderMap, header};

use gatehouse_pipeline::gateway::Gateway;

/// Shortest admin or SCIM token accepted in configuration.
pub(crate) const MIN_TOKEN_BYTES: usize = 16;

/// Why a control request was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The surface is not configured: it does not exist (404).
    NotConfigured,
    /// The secret cannot be read now (503).
    SecretUnavailable,
    /// The configured secret is guessable: every call is refused (503).
    TooShort,
    /// Missing or wrong token (401).
    Wrong,
}

/// Checks the request's bearer token against the secret `which` names in the running
/// configuration.
pub(crate) fn check(
    gw: &Gateway,
    headers: &HeaderMap,
    which: fn(&gatehouse_proxy::config::Config) -> Option<&gatehouse_auth::SecretRef>,
) -> Result<(), Refusal> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| gatehouse_auth::bearer(Some(v)).ok())
        .unwrap_or("");
    let r = verify(gw, presented, which);
    if r == Err(Refusal::Wrong) {
        tracing::warn!(target: "gatehouse::audit", "control request with a wrong token refused");
    }
    r
}

/// Compares `presented` with the secret `which` names, in constant time; logs nothing (a
/// console sign-in tries the admin token before other credentials).
pub(crate) fn verify(
    gw: &Gateway,
    presented: &str,
    which: fn(&gatehouse_proxy::config::Config) -> Option<&gatehouse_auth::SecretRef>,
) -> Result<(), Refusal> {
    let cfg = gw.config();
    let secret = which(&cfg).ok_or(Refusal::NotConfigured)?;
    let expected = secret
        .resolve(gw.secrets())
        .map_err(|_| Refusal::SecretUnavailable)?;
    // A guessable secret would make this door the weakest in the gateway: refuse to use one.
    if expected.len() < MIN_TOKEN_BYTES {
        tracing::error!(
            "a configured SCIM/admin token is shorter than {MIN_TOKEN_BYTES} bytes: refusing every call"
        );
        return Err(Refusal::TooShort);
    }
    let ok = !presented.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            presented.as_bytes(),
            expected.as_bytes(),
        )
        .is_ok();
    if !ok {
        return Err(Refusal::Wrong);
    }
    Ok(())
}

/// The admin API's answer to a refusal: `{"error": …, "status": …}`.
pub(crate) fn admin_error(r: Refusal) -> axum::response::Response {
    use axum::response::IntoResponse;
    use http::StatusCode;
    let (status, message) = match r {
        Refusal::NotConfigured => return StatusCode::NOT_FOUND.into_response(),
        Refusal::SecretUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "secret unavailable"),
        Refusal::TooShort => (
            StatusCode::SERVICE_UNAVAILABLE,
            "configured token too short",
        ),
        Refusal::Wrong => (StatusCode::UNAUTHORIZED, "unauthorized"),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": message, "status": status.as_u16()}).to_string(),
    )
        .into_response()
}

/// The admin API's token check.
#[allow(clippy::result_large_err)]
pub(crate) fn admin(gw: &Gateway, headers: &HeaderMap) -> Result<(), axum::response::Response> {
    check(gw, headers, |c| c.admin_token.as_ref()).map_err(admin_error)
}
