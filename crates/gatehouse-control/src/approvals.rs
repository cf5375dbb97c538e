//! The approvers' API (`/admin/v1/approvals`): pending calls with their arguments and
//! context, and the decisions. Approvers authenticate as themselves (token, API key), must
//! hold an approver role for the request's tenant, can never decide their own call, and
//! step up when the data is restricted. The CLI's `gatehouse approvals` speaks to it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gatehouse_auth::{AuthMethod, Principal};
use gatehouse_policy::Classification;
use gatehouse_store::{ApprovalDecision, ApprovalRecord, ApprovalStatus, DecideError};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use gatehouse_pipeline::gateway::Gateway;
use gatehouse_proxy::config::Authorization;

/// The header a CLI or console names its application in (API keys are bound to one).
pub const APP_HEADER: &str = "gatehouse-app";
/// Longest reason kept.
const MAX_REASON: usize = 1000;
/// Largest request body.
const MAX_BODY: usize = 16 * 1024;

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    reply(status, json!({"error": message, "status": status.as_u16()}))
}

/// The approver, authenticated as any caller is; development mode's anonymous caller and
/// unauthenticated callers are nobody.
#[allow(clippy::result_large_err)]
async fn approver(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<Principal>, Response> {
    let cfg = gw.config();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::WWW_AUTHENTICATE, "Bearer"),
            ],
            json!({"error": "sign in as an approver", "status": 401}).to_string(),
        )
            .into_response()
    };
    if authorization.is_none() {
        return Err(unauthorized());
    }
    let p = match gatehouse_proxy::edge::authenticate(gw, &cfg, authorization, None).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(target: "gatehouse::audit", error = %e, "approvals API: authentication refused");
            return Err(unauthorized());
        }
    };
    if matches!(p.method, AuthMethod::DevMode) {
        return Err(unauthorized());
    }
    let app = headers.get(APP_HEADER).and_then(|v| v.to_str().ok());
    if gatehouse_proxy::edge::check_app(&p, app).is_err() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "this API key belongs to another application",
        ));
    }
    Ok(p)
}

/// The principal's roles with what they inherit.
pub(crate) fn roles(authz: Option<&Authorization>, p: &Principal) -> Vec<String> {
    match authz {
        Some(a) => a
            .engine
            .roles()
            .effective(p.roles.iter().map(String::as_str))
            .into_iter()
            .map(str::to_owned)
            .collect(),
        None => p.roles.clone(),
    }
}

/// Whether `p` may see and decide `rec`: an approver role it names, in the same tenant.
fn reviews(roles: &[String], p: &Principal, rec: &ApprovalRecord) -> bool {
    let tenant_ok = rec.tenant.is_empty() || p.tenant.as_deref() == Some(rec.tenant.as_str());
    tenant_ok && rec.approvers.iter().any(|r| roles.contains(r))
}

/// Why an approver may not decide a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not an approver of it (no role it names, or another tenant): told it does not exist.
    NotApprover,
    /// Separation of duties: the caller who asked never decides.
    OwnCall,
    /// The data's level needs a stronger or fresher sign-in.
    StepUp(gatehouse_policy::StepUpNeeded),
}

/// The approver checks, in order: approver of this request, not its requester (whatever
/// roles it holds), strong enough for its data.
pub(crate) fn may_decide(
    authz: Option<&Authorization>,
    p: &Principal,
    rec: &ApprovalRecord,
    now: u64,
) -> Result<(), Refusal> {
    if !reviews(&roles(authz, p), p, rec) {
        return Err(Refusal::NotApprover);
    }
    if p.id == rec.principal {
        return Err(Refusal::OwnCall);
    }
    if let Some(authz) = authz
        && let Some(step) = &authz.controls(level_of(rec)).step_up
    {
        step.check(&gatehouse_pipeline::authorize::subject_of(p, authz), now)
            .map_err(Refusal::StepUp)?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

/// `GET /admin/v1/approvals?status=pending|approved|denied|expired|used|all`: the requests
/// this approver may decide, newest first (default: pending).
pub(crate) async fn list(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let p = match approver(&gw, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    list_for(&gw, &p, q.status.as_deref(), q.limit).await
}

/// The requests `p` may decide with `status` (default pending), newest first.
pub(crate) async fn list_for(
    gw: &Gateway,
    p: &Principal,
    status: Option<&str>,
    limit: Option<usize>,
) -> Response {
    let q = ListQuery {
        status: status.map(str::to_owned),
        limit,
    };
    let status = match q.status.as_deref().unwrap_or("pending") {
        "all" => None,
        "pending" => Some(ApprovalStatus::Pending),
        "approved" => Some(ApprovalStatus::Approved),
        "denied" => Some(ApprovalStatus::Denied),
        "expired" => Some(ApprovalStatus::Expired),
        "used" => Some(ApprovalStatus::Used),
        _ => return error(StatusCode::BAD_REQUEST, "unknown status"),
    };
    let Ok(store) = gw.approvals.store() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval store unavailable",
        );
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let found = tokio::task::spawn_blocking(move || store.list(status, limit)).await;
    let Ok(Ok(found)) = found else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval store unavailable",
        );
    };
    let cfg = gw.config();
    let mine = roles(cfg.authorization.as_deref(), p);
    let visible: Vec<&ApprovalRecord> = found.iter().filter(|r| reviews(&mine, p, r)).collect();
    reply(StatusCode::OK, json!({"approvals": visible}))
}

async fn load(gw: &Gateway, id: &str) -> Result<ApprovalRecord, Response> {
    let Ok(store) = gw.approvals.store() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval store unavailable",
        ));
    };
    let id = id.to_owned();
    match tokio::task::spawn_blocking(move || store.get(&id)).await {
        Ok(Ok(Some(r))) => Ok(r),
        Ok(Ok(None)) => Err(error(StatusCode::NOT_FOUND, "no such approval request")),
        _ => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval store unavailable",
        )),
    }
}

/// `GET /admin/v1/approvals/{id}`.
pub(crate) async fn show(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = match approver(&gw, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let rec = match load(&gw, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // Someone who may not decide it learns nothing of it, not even that it exists.
    let cfg = gw.config();
    if !reviews(&roles(cfg.authorization.as_deref(), &p), &p, &rec) {
        return error(StatusCode::NOT_FOUND, "no such approval request");
    }
    reply(StatusCode::OK, json!(rec))
}

/// `POST /admin/v1/approvals/{id}/approve {"reason": "…"}`.
pub(crate) async fn approve(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    decide(gw, id, headers, body, true).await
}

/// `POST /admin/v1/approvals/{id}/deny {"reason": "…"}` (a reason is required).
pub(crate) async fn deny(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    decide(gw, id, headers, body, false).await
}

async fn decide(
    gw: Arc<Gateway>,
    id: String,
    headers: HeaderMap,
    body: Body,
    approve: bool,
) -> Response {
    let p = match approver(&gw, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let reason = match crate::body::bytes(&gw, &headers, body, MAX_BODY).await {
        Err(f) => return error(f.status(), f.message()),
        Ok(b) if b.is_empty() => String::new(),
        Ok(b) => match serde_json::from_slice::<Value>(&b) {
            Ok(v) => v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            Err(_) => return error(StatusCode::BAD_REQUEST, "body must be JSON"),
        },
    };
    decide_for(gw, &p, id, &reason, approve).await
}

/// `p` approves or denies request `id` with `reason`: the approver checks (role, tenant,
/// separation of duties, step-up), the store's decision, the audit record, the release.
pub(crate) async fn decide_for(
    gw: Arc<Gateway>,
    p: &Principal,
    id: String,
    reason: &str,
    approve: bool,
) -> Response {
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    if !approve && reason.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "a denial needs a reason");
    }
    let rec = match load(&gw, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let verb = if approve { "approve" } else { "deny" };
    let cfg = gw.config();
    match may_decide(
        cfg.authorization.as_deref(),
        p,
        &rec,
        gatehouse_transport::session::now_secs(),
    ) {
        Ok(()) => {}
        Err(Refusal::NotApprover) => {
            return error(StatusCode::NOT_FOUND, "no such approval request");
        }
        Err(Refusal::OwnCall) => {
            tracing::warn!(target: "gatehouse::audit", approval = %rec.id, principal = %p.id, "self-approval refused");
            let _ = gw
                .audit_approval(
                    "approval.refused",
                    &rec,
                    &p.id,
                    &format!("{verb} by the requester: separation of duties"),
                    "denied",
                )
                .await;
            return error(
                StatusCode::FORBIDDEN,
                "separation of duties: you cannot decide a call you made",
            );
        }
        Err(Refusal::StepUp(needed)) => {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({
                    "error": "insufficient_user_authentication",
                    "status": 401,
                    "acr_values": needed.acr_values,
                    "max_age": needed.max_age,
                }),
            );
        }
    }
    let Ok(store) = gw.approvals.store() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval store unavailable",
        );
    };
    let decision = ApprovalDecision {
        approver: p.id.clone(),
        approve,
        reason: reason.clone(),
        time_ms: gatehouse_pipeline::audit::now_ms(),
    };
    let use_by = decision.time_ms + gw.config().approvals.use_within.as_millis() as u64;
    let (s, i, d) = (store.clone(), id.clone(), decision.clone());
    let decided = match tokio::task::spawn_blocking(move || s.decide(&i, &d, use_by)).await {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval store unavailable",
            );
        }
    };
    let rec = match decided {
        Ok(r) => r,
        Err(DecideError::NotFound(_)) => {
            return error(StatusCode::NOT_FOUND, "no such approval request");
        }
        Err(DecideError::Closed(s)) => {
            return error(StatusCode::CONFLICT, &format!("the request is already {s}"));
        }
        Err(DecideError::AlreadyDecided) => {
            return error(
                StatusCode::CONFLICT,
                "you have already decided this request",
            );
        }
        Err(DecideError::Store(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval store unavailable",
            );
        }
    };
    tracing::warn!(target: "gatehouse::audit", approval = %rec.id, approver = %p.id, decision = verb, status = rec.status.as_str(), "approval decision");
    let step = if approve {
        "approval.approved"
    } else {
        "approval.denied"
    };
    if let Err(e) = gw
        .audit_approval(step, &rec, &p.id, &reason, rec.status.as_str())
        .await
    {
        tracing::error!(target: "gatehouse::audit", approval = %rec.id, error = %e, "approval decision not audited");
    }
    gw.approval_decided(&rec.id);
    reply(StatusCode::OK, json!(rec))
}

/// The request's level; one that cannot be read counts as the strictest.
fn level_of(rec: &ApprovalRecord) -> Classification {
    Classification::ALL
        .into_iter()
        .find(|c| c.as_str() == rec.classification)
        .unwrap_or(Classification::Restricted)
}

pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/v1/approvals", get(list))
        .route("/admin/v1/approvals/{id}", get(show))
        .route("/admin/v1/approvals/{id}/approve", post(approve))
        .route("/admin/v1/approvals/{id}/deny", post(deny))
        .with_state(gw)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn person(id: &str, roles: &[&str], tenant: Option<&str>, acr: Option<&str>) -> Principal {
        let mut p = Principal::anonymous();
        p.id = id.into();
        p.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        p.tenant = tenant.map(str::to_owned);
        p.acr = acr.map(str::to_owned);
        p.method = AuthMethod::ApiKey {
            key_id: "k".into(),
            app: "a".into(),
        };
        p
    }

    fn request(classification: &str, tenant: &str) -> ApprovalRecord {
        ApprovalRecord {
            id: "apr_1".into(),
            status: ApprovalStatus::Pending,
            principal: "corp/eng".into(),
            tenant: tenant.into(),
            upstream: "ops".into(),
            tool: "ops__deploy".into(),
            args_digest: "d".into(),
            arguments: json!({}),
            classification: classification.into(),
            reason: "default_rule".into(),
            approvers: vec!["approver".into()],
            required: 1,
            created_ms: 0,
            expires_ms: u64::MAX,
            correlation: String::new(),
            client: String::new(),
            decisions: vec![],
        }
    }

    #[test]
    fn only_other_approvers_of_the_tenant_strong_enough_for_the_data_decide() {
        let cfg = gatehouse_proxy::config::Config::from_yaml(
            r#"
authorization:
  roles:
    approver: []
    lead: [approver]
  classification:
    restricted: {step_up: {acr: ["urn:mfa"]}}
"#,
            &|_| None,
        )
        .unwrap();
        let authz = cfg.authorization.as_deref();
        let now = 1_800_000_000;
        let decide = |p: &Principal, r: &ApprovalRecord| may_decide(authz, p, r, now);
        let confidential = request("confidential", "");
        // An approver, by role or by inheritance, decides.
        assert_eq!(
            decide(
                &person("corp/boss", &["approver"], None, None),
                &confidential
            ),
            Ok(())
        );
        assert_eq!(
            decide(&person("corp/lead", &["lead"], None, None), &confidential),
            Ok(())
        );
        // Without the role: not even told it exists.
        assert_eq!(
            decide(
                &person("corp/dev", &["engineer"], None, None),
                &confidential
            ),
            Err(Refusal::NotApprover)
        );
        // The requester never decides, approver role or not.
        assert_eq!(
            decide(
                &person("corp/eng", &["approver"], None, None),
                &confidential
            ),
            Err(Refusal::OwnCall)
        );
        // Another tenant's approver is nobody here.
        let tenant_a = request("confidential", "a");
        assert_eq!(
            decide(&person("b/boss", &["approver"], Some("b"), None), &tenant_a),
            Err(Refusal::NotApprover)
        );
        assert_eq!(
            decide(&person("a/boss", &["approver"], Some("a"), None), &tenant_a),
            Ok(())
        );
        // Restricted data: step up first; an unreadable level counts as restricted.
        for level in ["restricted", "bogus"] {
            let r = request(level, "");
            assert!(matches!(
                decide(&person("corp/boss", &["approver"], None, None), &r),
                Err(Refusal::StepUp(_))
            ));
            assert_eq!(
                decide(
                    &person("corp/boss", &["approver"], None, Some("urn:mfa")),
                    &r
                ),
                Ok(())
            );
        }
    }
}
