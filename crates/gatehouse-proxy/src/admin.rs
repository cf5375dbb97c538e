//! The administrator's revoke call: cut one subject (a user, a service, an API key's
//! principal) off at once, whatever token, session or key they hold — for incidents that
//! cannot wait for the directory to deprovision them — and lift it again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::scim::{authorize, body_json, error, scim, unavailable};
use crate::session::now_secs;

/// Longest subject accepted; principal subjects are far shorter.
const MAX_SUBJECT: usize = 512;

#[allow(clippy::result_large_err)]
fn check(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<Arc<dyn gatehouse_store::DirectoryStore>, Response> {
    authorize(gw, headers, |c| c.admin_token.as_ref())
}

fn valid(subject: &str) -> bool {
    !subject.is_empty() && subject.len() <= MAX_SUBJECT && !subject.chars().any(char::is_control)
}

/// `POST /admin/v1/revocations {"subject": "alice"}`: the subject part of a principal id
/// (`alice` for `corp/alice`, the key's principal for an API key).
pub(crate) async fn revoke(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let v = match body_json(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(subject) = v
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| valid(s))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "subject is required",
            Some("invalidValue"),
        );
    };
    if dir.revoke(subject, now_secs()).is_err() {
        return unavailable();
    }
    tracing::warn!(target: "gatehouse::audit", subject, "administrator revoked subject");
    scim(
        StatusCode::CREATED,
        json!({"subject": subject, "revoked": true}),
    )
}

/// `GET /admin/v1/revocations/{subject}`: whether the subject is refused now.
pub(crate) async fn status(
    State(gw): State<Arc<Gateway>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dir.is_deprovisioned(&subject) {
        Ok(revoked) => scim(
            StatusCode::OK,
            json!({"subject": subject, "revoked": revoked}),
        ),
        Err(_) => unavailable(),
    }
}

/// `DELETE /admin/v1/revocations/{subject}`: lifts a revocation. A user the directory set
/// inactive stays refused until the directory reactivates them.
pub(crate) async fn reinstate(
    State(gw): State<Arc<Gateway>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dir.reinstate(&subject) {
        Ok(true) => {
            tracing::warn!(target: "gatehouse::audit", subject = %subject, "administrator lifted revocation");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no revocation of that subject", None),
        Err(_) => unavailable(),
    }
}

/// Routes, on the gateway's listener under `/admin/v1`.
pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/v1/revocations", post(revoke))
        .route(
            "/admin/v1/revocations/{subject}",
            get(status).delete(reinstate),
        )
        .with_state(gw)
}
