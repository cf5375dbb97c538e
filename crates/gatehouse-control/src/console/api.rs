//! The console pages' data under `/console/api`: approvals, pins, inventory, API keys and
//! the live feed (the audit explorer and the policy page have modules of their own). Each route
//! names the console role it needs; changes need the CSRF token and are audited with the
//! operator's identity. Decisions go through the same code as the admin and approvals APIs.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_policy::Target;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::explorer::{AuditParams, audit_query, run_query};
use super::policy::{roles_for, strings};
use super::{Role, Session, audit, fail, operator, reply};

/// Largest change body.
const MAX_BODY: usize = 64 * 1024;

pub(super) async fn body_json(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, Response> {
    crate::body::json(gw, headers, body, MAX_BODY)
        .await
        .map_err(|f| fail(f.status(), f.message()))
}

#[derive(Debug, Deserialize)]
struct ApprovalsQuery {
    status: Option<String>,
}

async fn approvals(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ApprovalsQuery>,
    headers: HeaderMap,
) -> Response {
    let s = signed_in!(gw, headers, Role::Approver, false);
    crate::approvals::list_for(&gw, &s.principal(), q.status.as_deref(), Some(200)).await
}

async fn decide_approval(
    State(gw): State<Arc<Gateway>>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let s = signed_in!(gw, headers, Role::Approver, true);
    let approve = match verb.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return fail(StatusCode::NOT_FOUND, "approve or deny"),
    };
    let v = match body_json(&gw, &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
    // The audit record of the decision names the operator (the approvals code writes it).
    crate::approvals::decide_for(gw.clone(), &s.principal(), id, reason, approve).await
}

/// Pins are the whole gateway's: an administrator of one tenant does not review them.
#[allow(clippy::result_large_err)]
fn global(s: &Session) -> Result<(), Response> {
    match s.tenant {
        None => Ok(()),
        Some(_) => Err(fail(
            StatusCode::FORBIDDEN,
            "tool definitions are reviewed by the gateway's own administrators",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct PinsQuery {
    status: Option<String>,
}

async fn pins(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<PinsQuery>,
    headers: HeaderMap,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, false);
    if let Err(r) = global(&s) {
        return r;
    }
    crate::pins::list_with(&gw, q.status.as_deref()).await
}

async fn pin(
    State(gw): State<Arc<Gateway>>,
    Path(p): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, false);
    if let Err(r) = global(&s) {
        return r;
    }
    crate::pins::show_with(&gw, p).await
}

async fn decide_pin(
    State(gw): State<Arc<Gateway>>,
    Path((upstream, kind, name, verb)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, true);
    if let Err(r) = global(&s) {
        return r;
    }
    let approve = match verb.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return fail(StatusCode::NOT_FOUND, "approve or reject"),
    };
    let v = match body_json(&gw, &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    crate::pins::decide_with(
        gw.clone(),
        (upstream, kind, name),
        &v,
        s.sub.clone(),
        approve,
    )
    .await
}

/// `GET /console/api/inventory`: upstreams and their tools, with verb class,
/// classification and the roles whose grants name each tool.
async fn inventory(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let _s = signed_in!(gw, headers, Role::Viewer, false);
    let cfg = gw.config();
    let catalog = gw.catalog();
    let live = gw.upstreams();
    let authz = cfg.authorization.as_deref();
    let mut ups = Vec::new();
    for spec in &cfg.upstreams {
        let up = live.get(&spec.name);
        let tools: Vec<Value> = catalog
            .tools
            .iter()
            .filter(|e| e.upstream == spec.name)
            .map(|e| {
                let target = spec.data.tool(&spec.name, &e.original, &e.exposed, &e.def);
                let (verb, class) = match &target {
                    Target::Tool {
                        verb,
                        classification,
                        ..
                    } => (verb.as_str().to_owned(), classification.as_str().to_owned()),
                    _ => (String::new(), String::new()),
                };
                json!({
                    "name": e.exposed,
                    "verb": verb,
                    "classification": class,
                    "roles": authz.map(|a| roles_for(a, &target)).unwrap_or_default(),
                })
            })
            .collect();
        ups.push(json!({
            "name": spec.name,
            "transport": match &spec.transport { gatehouse_proxy::config::TransportSpec::Stdio { .. } => "stdio", _ => "http" },
            "up": up.is_some_and(|u| u.info().is_some()),
            "protocol": up.and_then(|u| u.info()).map(|i| i.version.as_str()),
            "classification": spec.data.classification.unwrap_or(gatehouse_policy::Classification::Internal).as_str(),
            "tools": tools,
        }));
    }
    reply(StatusCode::OK, json!({"upstreams": ups}))
}

/// `GET /console/api/keys`: API keys (never the keys themselves).
async fn keys(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, false);
    let Ok(Some(k)) = gw.api_keys() else {
        return fail(StatusCode::NOT_FOUND, "API keys are not configured");
    };
    match k.store().list() {
        Ok(list) => reply(
            StatusCode::OK,
            json!({"keys": list.iter().filter(|r| s.tenant.is_none() || r.tenant == s.tenant).map(|r| json!({
                "id": r.id, "principal": r.principal, "app": r.app, "tenant": r.tenant,
                "roles": r.roles, "created_at": r.created_at, "expires_at": r.expires_at,
                "revoked_at": r.revoked_at, "last_used_at": r.last_used_at,
                "rotated_from": r.rotated_from,
            })).collect::<Vec<_>>()}),
        ),
        Err(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"),
    }
}

/// `POST /console/api/keys {principal, app, roles, days}`: a new key, shown once.
async fn create_key(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, true);
    let v = match body_json(&gw, &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(Some(k)) = gw.api_keys() else {
        return fail(StatusCode::NOT_FOUND, "API keys are not configured");
    };
    let principal = v["principal"].as_str().unwrap_or("").trim().to_owned();
    let app = v["app"].as_str().unwrap_or("").trim().to_owned();
    if principal.is_empty() || app.is_empty() || principal.len() > 200 || app.len() > 200 {
        return fail(StatusCode::BAD_REQUEST, "principal and app are required");
    }
    let days = v["days"].as_u64().unwrap_or(90).clamp(1, 3650);
    let spec = gatehouse_auth::KeySpec {
        principal,
        app,
        tenant: s.tenant.clone(),
        roles: strings(&v, "roles"),
        servers: Vec::new(),
        tools: Vec::new(),
        expires_in: Some(std::time::Duration::from_secs(days * 86_400)),
    };
    match k.create(&spec, gatehouse_transport::session::now_secs(), None) {
        Ok(new) => {
            audit(
                &gw,
                &s,
                "console.key_created",
                &new.record.id,
                json!({"principal": spec.principal, "app": spec.app, "roles": spec.roles}),
            )
            .await;
            reply(
                StatusCode::CREATED,
                json!({"id": new.record.id, "key": new.key}),
            )
        }
        Err(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"),
    }
}

/// `POST /console/api/keys/{id}/rotate|revoke`.
async fn change_key(
    State(gw): State<Arc<Gateway>>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, true);
    let Ok(Some(k)) = gw.api_keys() else {
        return fail(StatusCode::NOT_FOUND, "API keys are not configured");
    };
    match k.store().get(&id) {
        Ok(Some(r)) if s.tenant.is_none() || r.tenant == s.tenant => {}
        Ok(_) => return fail(StatusCode::NOT_FOUND, "no such key"),
        Err(_) => return fail(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"),
    }
    let now = gatehouse_transport::session::now_secs();
    match verb.as_str() {
        "revoke" => match k.store().revoke(&id, now) {
            Ok(true) => {
                audit(&gw, &s, "console.key_revoked", &id, json!({})).await;
                reply(StatusCode::OK, json!({"id": id, "revoked": true}))
            }
            Ok(false) => fail(StatusCode::NOT_FOUND, "no such key"),
            Err(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"),
        },
        "rotate" => match k.rotate(&id, std::time::Duration::from_secs(86_400), None, now) {
            Ok(Some(new)) => {
                audit(
                    &gw,
                    &s,
                    "console.key_rotated",
                    &id,
                    json!({"new": new.record.id}),
                )
                .await;
                reply(
                    StatusCode::CREATED,
                    json!({"id": new.record.id, "key": new.key, "old_expires_in_secs": 86_400}),
                )
            }
            Ok(None) => fail(StatusCode::NOT_FOUND, "no such live key"),
            Err(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"),
        },
        _ => fail(StatusCode::NOT_FOUND, "rotate or revoke"),
    }
}

/// `GET /console/api/live`: the gateway's counters (Prometheus text, which the page turns
/// into rates and latencies) and the latest refusals and detections.
async fn live(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let s = signed_in!(gw, headers, Role::Viewer, false);
    let metrics = gatehouse_transport::metrics::install()
        .map(|h| h.render())
        .unwrap_or_default();
    let mut feed = Vec::new();
    if gw.config().audit.is_some() {
        let q = AuditParams::default();
        if let Ok(query) = audit_query(&s, &q, 300)
            && let Ok(rows) = run_query(&gw, query).await
        {
            for (_, _, e) in rows {
                let detections = e["detections"].as_array().map_or(0, Vec::len);
                let refused = matches!(e["status"].as_str(), Some("denied" | "error"));
                if (detections > 0 || refused) && e["kind"] == "request" {
                    feed.push(json!({
                        "time_ms": e["time_ms"], "principal": e["principal"],
                        "target": e["target"], "status": e["status"], "rule": e["rule"],
                        "detections": e["detections"].as_array().map(|d| d.iter().map(|x| json!({
                            "place": x["place"], "stage": x["stage"], "rule": x["rule"], "action": x["action"],
                        })).collect::<Vec<_>>()),
                    }));
                }
                if feed.len() >= 50 {
                    break;
                }
            }
        }
    }
    reply(StatusCode::OK, json!({"metrics": metrics, "feed": feed}))
}

pub(super) fn router() -> axum::Router<Arc<Gateway>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/console/api/approvals", get(approvals))
        .route("/console/api/approvals/{id}/{verb}", post(decide_approval))
        .route("/console/api/pins", get(pins))
        .route("/console/api/pins/{upstream}/{kind}/{name}", get(pin))
        .route(
            "/console/api/pins/{upstream}/{kind}/{name}/{verb}",
            post(decide_pin),
        )
        .route("/console/api/audit", get(super::explorer::audit_page))
        .route(
            "/console/api/audit/export",
            get(super::explorer::audit_export),
        )
        .route(
            "/console/api/audit/verify",
            get(super::explorer::audit_verify),
        )
        .route("/console/api/inventory", get(inventory))
        .route("/console/api/keys", get(keys).post(create_key))
        .route("/console/api/keys/{id}/{verb}", post(change_key))
        .route("/console/api/explain", post(super::policy::explain))
        .route("/console/api/whatif", post(super::policy::whatif))
        .route("/console/api/live", get(live))
}
