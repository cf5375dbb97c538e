//! Request bodies of the control surfaces: read by the same bounded reader as the MCP edge
//! (`gatehouse_proxy::http::read_bounded`), within the surface's size limit and the
//! configured `limits.body_timeout`, so no control endpoint waits on a slow sender forever.
//! Each surface answers a failure in its own shape.

use axum::body::{Body, Bytes};
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_proxy::http::{BodyError, read_bounded};
use http::HeaderMap;
use serde_json::Value;

/// Why a body was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    TooLarge,
    TooSlow,
    NotJson,
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Failure::TooLarge,
            BodyError::TooSlow => Failure::TooSlow,
        }
    }
}

impl Failure {
    pub(crate) fn status(self) -> http::StatusCode {
        match self {
            Failure::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            Failure::TooSlow => http::StatusCode::REQUEST_TIMEOUT,
            Failure::NotJson => http::StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Failure::TooLarge => "body too large",
            Failure::TooSlow => "the body did not arrive in time",
            Failure::NotJson => "body is not JSON",
        }
    }
}

/// The body's bytes.
pub(crate) async fn bytes(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Failure> {
    let timeout = gw.config().limits.body_timeout;
    Ok(read_bounded(headers, body, limit, timeout).await?)
}

/// The body as JSON.
pub(crate) async fn json(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Value, Failure> {
    let b = bytes(gw, headers, body, limit).await?;
    serde_json::from_slice(&b).map_err(|_| Failure::NotJson)
}
