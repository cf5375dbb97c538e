//! The administrator's revoke call: cut one subject (a user, a service, an API key's
//! principal) off at once, whatever token, session or key they hold — for incidents that
//! cannot wait for the directory to deprovision them — and lift it again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::scim::{authorize, error, scim, unavailable};
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_transport::session::now_secs;

/// Largest revocation body accepted.
const MAX_BODY: usize = 16 * 1024;
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
    let v = match crate::body::json(&gw, &headers, body, MAX_BODY).await {
        Ok(v) => v,
        Err(f) => return error(f.status(), f.message(), None),
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
    gw.audit_note(
        gatehouse_audit::EventKind::Auth,
        "auth.revoked",
        format!("subject {subject} revoked by an administrator"),
    )
    .await;
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
            gw.audit_note(
                gatehouse_audit::EventKind::Auth,
                "auth.reinstated",
                format!("revocation of {subject} lifted by an administrator"),
            )
            .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no revocation of that subject", None),
        Err(_) => unavailable(),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct AuditParams {
    tenant: Option<String>,
    principal: Option<String>,
    target: Option<String>,
    status: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    /// A data subject's identifier: found by its keyed digest.
    subject: Option<String>,
    limit: Option<u64>,
}

/// `GET /admin/v1/audit?principal=…&tenant=…&target=…&status=…&since_ms=…&until_ms=…&subject=…&limit=…`:
/// the records matching every filter, oldest first, as JSON lines (`{chain, seq, event}`),
/// what `gatehouse audit query` prints. Administrators only; the query itself is audited.
pub(crate) async fn audit_query(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Query(q): axum::extract::Query<AuditParams>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = crate::token::admin(&gw, &headers) {
        return r;
    }
    let cfg = gw.config();
    if cfg.audit.is_none() {
        return error(StatusCode::NOT_FOUND, "no audit record is configured", None);
    }
    let subject = match q.subject.as_deref() {
        None => None,
        Some(v) => match gatehouse_pipeline::gateway::subject_key(&cfg) {
            Some(k) => Some(k.digest(v)),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "no subject index: set audit.subject_key (or session.key)",
                    None,
                );
            }
        },
    };
    gw.audit_note(
        gatehouse_audit::EventKind::Config,
        "audit.queried",
        format!(
            "principal={:?} tenant={:?} target={:?} status={:?} subject={}",
            q.principal,
            q.tenant,
            q.target,
            q.status,
            subject.is_some()
        ),
    )
    .await;
    let query = gatehouse_store::AuditQuery {
        tenant: q.tenant,
        principal: q.principal,
        target: q.target,
        status: q.status,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        limit: q.limit.unwrap_or(1000).clamp(1, 100_000),
        subject,
        ..Default::default()
    };
    let path = cfg.store_path.clone();
    let postgres = cfg
        .postgres_for(gatehouse_proxy::config::StoreKind::Audit)
        .map(str::to_owned);
    let rows = tokio::task::spawn_blocking(move || {
        gatehouse_store::Backend::new(&path, postgres.as_deref())
            .audit()
            .and_then(|s| s.query(&query))
    })
    .await;
    let Ok(Ok(rows)) = rows else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit store unavailable",
            None,
        );
    };
    let mut body = String::new();
    for (chain, seq, event) in rows {
        body.push_str(&format!(
            "{{\"chain\":{},\"seq\":{seq},\"event\":{event}}}\n",
            serde_json::Value::String(chain)
        ));
    }
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

/// Routes, on the gateway's listener under `/admin/v1`.
pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/v1/revocations", post(revoke))
        .route("/admin/v1/audit", get(audit_query))
        .route(
            "/admin/v1/inventory",
            get(crate::inventory::list).post(crate::inventory::report),
        )
        .route("/admin/v1/pins", get(crate::pins::list))
        .route(
            "/admin/v1/pins/{upstream}/{kind}/{name}",
            get(crate::pins::show),
        )
        .route(
            "/admin/v1/pins/{upstream}/{kind}/{name}/approve",
            post(crate::pins::approve),
        )
        .route(
            "/admin/v1/pins/{upstream}/{kind}/{name}/reject",
            post(crate::pins::reject),
        )
        .route(
            "/admin/v1/revocations/{subject}",
            get(status).delete(reinstate),
        )
        .with_state(gw)
}
