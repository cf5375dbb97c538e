//! The pin review API under `/admin/v1/pins`: what waits for review, one pin with its
//! diff, and an administrator's approval or rejection (audited, then the lists re-vetted).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gatehouse_audit::{AuditEvent, EventKind};
use gatehouse_pipeline::config::Config;
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_store::{PinDecideError, PinDecision, PinStatus};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn fail(status: StatusCode, message: &str) -> Response {
    reply(status, json!({"error": message, "status": status.as_u16()}))
}

#[allow(clippy::result_large_err)]
fn admin(gw: &Gateway, headers: &HeaderMap) -> Result<(), Response> {
    crate::token::admin(gw, headers)
}

fn summary(p: &gatehouse_store::PinRecord) -> Value {
    json!({
        "upstream": p.upstream,
        "kind": p.kind,
        "name": p.name,
        "status": p.status.as_str(),
        "hash": p.hash,
        "proposed_hash": p.proposed_hash,
        "findings": serde_json::from_str::<Value>(&p.findings).unwrap_or(Value::Null),
        "first_seen_ms": p.first_seen_ms,
        "updated_ms": p.updated_ms,
        "decided_by": p.decided_by,
        "reason": p.reason,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    status: Option<String>,
}

/// `GET /admin/v1/pins?status=pending|quarantined|rejected|approved|held`: pins, without
/// their definitions (`held`: everything hidden).
pub(crate) async fn list(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListParams>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    list_with(&gw, q.status.as_deref()).await
}

/// The pins with `status` (as the list route names it), for any authenticated reviewer.
pub(crate) async fn list_with(gw: &Gateway, status: Option<&str>) -> Response {
    let q = ListParams {
        status: status.map(str::to_owned),
    };
    let status = match q.status.as_deref() {
        None | Some("all") | Some("held") => None,
        Some("approved") => Some(PinStatus::Approved),
        Some("pending") => Some(PinStatus::Pending),
        Some("quarantined") => Some(PinStatus::Quarantined),
        Some("rejected") => Some(PinStatus::Rejected),
        Some(_) => return fail(StatusCode::BAD_REQUEST, "unknown status"),
    };
    let held = q.status.as_deref() == Some("held");
    let Some(store) = gw.pins.store.clone() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "pin store unavailable");
    };
    match tokio::task::spawn_blocking(move || store.list(status)).await {
        Ok(Ok(pins)) => reply(
            StatusCode::OK,
            json!({"pins": pins
                .iter()
                .filter(|p| !held || p.status != PinStatus::Approved)
                .map(summary)
                .collect::<Vec<_>>()}),
        ),
        _ => fail(StatusCode::SERVICE_UNAVAILABLE, "pin store unavailable"),
    }
}

/// `GET /admin/v1/pins/{upstream}/{kind}/{name}`: one pin with the trusted and the
/// proposed definitions, for review.
pub(crate) async fn show(
    State(gw): State<Arc<Gateway>>,
    Path((upstream, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    show_with(&gw, (upstream, kind, name)).await
}

/// One pin with both definitions, for any authenticated reviewer.
pub(crate) async fn show_with(
    gw: &Gateway,
    (upstream, kind, name): (String, String, String),
) -> Response {
    let Some(store) = gw.pins.store.clone() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "pin store unavailable");
    };
    match tokio::task::spawn_blocking(move || store.get(&upstream, &kind, &name)).await {
        Ok(Ok(Some(p))) => {
            let mut v = summary(&p);
            let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            v["definition"] = parse(&p.definition);
            v["proposed"] = parse(&p.proposed);
            // Compiling the definition rules for the view takes tens of milliseconds: off
            // the request workers.
            let (cfg, proposed) = (gw.config(), v["proposed"].clone());
            let (upstream, kind) = (p.upstream.clone(), p.kind.clone());
            v["spans"] =
                tokio::task::spawn_blocking(move || spans(&cfg, &upstream, &kind, &proposed))
                    .await
                    .unwrap_or_else(|_| json!([]));
            reply(StatusCode::OK, v)
        }
        Ok(Ok(None)) => fail(StatusCode::NOT_FOUND, "no such pin"),
        _ => fail(StatusCode::SERVICE_UNAVAILABLE, "pin store unavailable"),
    }
}

/// Where the detectors find what they find in a proposed tool definition, for a reviewer:
/// the JSON pointer of the text, the stage and rule, and the span in characters of that
/// text. The same checks as at list time, without the cross-catalogue ones.
fn spans(cfg: &Config, upstream: &str, kind: &str, proposed: &Value) -> Value {
    let (Some(d), "tool", true) = (cfg.detection.as_ref(), kind, proposed.is_object()) else {
        return json!([]);
    };
    let level = cfg
        .upstreams
        .iter()
        .find(|u| u.name == upstream)
        .and_then(|u| u.data.classification)
        .unwrap_or(gatehouse_policy::Classification::Internal);
    // Compiled for this view and dropped with it: the gateway keeps no definition rules.
    let rules = gatehouse_pipeline::pins::definition_rules();
    let (_, found) = gatehouse_pipeline::pins::judge_definition(
        d,
        rules.as_ref(),
        level,
        upstream,
        proposed,
        &[],
    );
    let chars = |text: &str, byte: usize| text.get(..byte).map(|t| t.chars().count());
    found
        .iter()
        .map(|(at, s)| {
            let text = proposed.pointer(at).and_then(Value::as_str).unwrap_or("");
            json!({
                "at": at,
                "stage": s.stage,
                "rule": s.rule,
                "severity": format!("{:?}", s.severity).to_lowercase(),
                "score": s.score,
                "start": chars(text, s.start),
                "end": chars(text, s.end),
            })
        })
        .collect()
}

/// Longest reason kept.
const MAX_REASON: usize = 1000;
/// Largest decision body accepted.
const MAX_BODY: usize = 64 * 1024;

async fn decide(
    gw: Arc<Gateway>,
    (upstream, kind, name): (String, String, String),
    headers: HeaderMap,
    body: Body,
    approve: bool,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let v = match crate::body::json(&gw, &headers, body, MAX_BODY).await {
        Ok(v) => v,
        Err(f) => return fail(f.status(), f.message()),
    };
    // The admin token names no one: the body may say who decided.
    let by = v
        .get("by")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .map(|b| b.chars().take(MAX_REASON).collect())
        .unwrap_or_else(|| "admin".to_owned());
    decide_with(gw, (upstream, kind, name), &v, by, approve).await
}

/// Approves or rejects a pin as `by` with the `hash` and `reason` of `v`: audited, then
/// every list re-vetted.
pub(crate) async fn decide_with(
    gw: Arc<Gateway>,
    (upstream, kind, name): (String, String, String),
    v: &Value,
    by: String,
    approve: bool,
) -> Response {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(MAX_REASON).collect::<String>())
    };
    let (hash, reason) = (text("hash"), text("reason").unwrap_or_default());
    if !approve && reason.trim().is_empty() {
        return fail(StatusCode::BAD_REQUEST, "a rejection needs a reason");
    }
    let Some(store) = gw.pins.store.clone() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "pin store unavailable");
    };
    let (u, k, n) = (upstream.clone(), kind.clone(), name.clone());
    let (b, r) = (by.clone(), reason.clone());
    let decided = tokio::task::spawn_blocking(move || {
        store.decide(
            &u,
            &k,
            &n,
            &PinDecision {
                approve,
                expect_hash: hash.as_deref(),
                by: &b,
                reason: &r,
            },
            gatehouse_pipeline::audit::now_ms(),
        )
    })
    .await;
    let rec = match decided {
        Ok(Ok(rec)) => rec,
        Ok(Err(PinDecideError::NotFound)) => return fail(StatusCode::NOT_FOUND, "no such pin"),
        Ok(Err(e @ (PinDecideError::NothingToReview | PinDecideError::Stale(_)))) => {
            return fail(StatusCode::CONFLICT, &e.to_string());
        }
        _ => return fail(StatusCode::SERVICE_UNAVAILABLE, "pin store unavailable"),
    };
    let what = if approve {
        "pin.approved"
    } else {
        "pin.rejected"
    };
    tracing::warn!(target: "gatehouse::audit", upstream, kind, name, by, reason, "{what}");
    if let Some(w) = &gw.audit {
        let event = AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(EventKind::Pin),
            time_ms: gatehouse_pipeline::audit::now_ms(),
            method: what.to_owned(),
            target: name.clone(),
            upstream: upstream.clone(),
            principal: by.clone(),
            status: rec.status.as_str().to_owned(),
            detail: json!({"kind": kind, "hash": rec.hash, "reason": reason}).to_string(),
            ..Default::default()
        };
        if let Err(e) = w.record(event, true).await {
            tracing::error!(target: "gatehouse::audit", error = %e, "pin decision audit record not committed");
        }
    }
    // Re-vet with the decision and tell clients the lists changed.
    gw.pins_decided();
    reply(StatusCode::OK, summary(&rec))
}

/// `POST /admin/v1/pins/{upstream}/{kind}/{name}/approve {"hash": "…", "reason": "…"}`.
pub(crate) async fn approve(
    State(gw): State<Arc<Gateway>>,
    Path(p): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    decide(gw, p, headers, body, true).await
}

/// `POST /admin/v1/pins/{upstream}/{kind}/{name}/reject {"reason": "…"}`.
pub(crate) async fn reject(
    State(gw): State<Arc<Gateway>>,
    Path(p): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    decide(gw, p, headers, body, false).await
}
