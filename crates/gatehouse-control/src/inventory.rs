//! The machines' MCP inventory (`POST /admin/v1/inventory`, `GET /admin/v1/inventory`):
//! `gatehouse discover --report-to` sends each machine's report, the latest per machine is
//! kept, and each arrival is an audit event naming the machine and how many of its servers
//! bypass the gateway. Admin token only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use gatehouse_pipeline::gateway::Gateway;

/// Largest report accepted.
const MAX_BODY: usize = 1 << 20;
/// Machines remembered; beyond it the one reported longest ago is forgotten.
const MAX_MACHINES: usize = 10_000;

/// The latest report per machine, with when it arrived (ms since the epoch).
static REPORTS: Mutex<BTreeMap<String, (u64, Value)>> = Mutex::new(BTreeMap::new());

fn reply(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `POST /admin/v1/inventory`: one machine's `gatehouse discover --json` report.
pub(crate) async fn report(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = crate::token::admin(&gw, &headers) {
        return r;
    }
    let v = match crate::body::json(&gw, &headers, body, MAX_BODY).await {
        Ok(v) => v,
        Err(f) => return reply(f.status(), json!({"error": f.message()})),
    };
    let host = v
        .get("host")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.chars().any(char::is_control))
        .map(str::to_owned);
    let (Some(host), Some(servers)) = (host, v.get("servers").and_then(Value::as_array)) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "a discover report: host and servers"}),
        );
    };
    let unmanaged = servers.iter().filter(|s| s["managed"] == false).count();
    let total = servers.len();
    let now = gatehouse_pipeline::audit::now_ms();
    {
        let mut reports = REPORTS.lock().unwrap_or_else(PoisonError::into_inner);
        if reports.len() >= MAX_MACHINES
            && !reports.contains_key(&host)
            && let Some(oldest) = reports
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(h, _)| h.clone())
        {
            reports.remove(&oldest);
        }
        reports.insert(host.clone(), (now, v));
    }
    tracing::info!(target: "gatehouse::audit", host = %host, servers = total, unmanaged, "inventory reported");
    gw.audit_note(
        gatehouse_audit::EventKind::Config,
        "inventory.reported",
        format!("{host}: {total} MCP servers, {unmanaged} not through the gateway"),
    )
    .await;
    reply(
        StatusCode::ACCEPTED,
        json!({"host": host, "servers": total, "unmanaged": unmanaged}),
    )
}

/// `GET /admin/v1/inventory`: every machine's latest report, with its unmanaged servers.
pub(crate) async fn list(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(r) = crate::token::admin(&gw, &headers) {
        return r;
    }
    let reports = REPORTS.lock().unwrap_or_else(PoisonError::into_inner);
    let machines: Vec<Value> = reports
        .iter()
        .map(|(host, (at, r))| {
            let unmanaged: Vec<&Value> = r["servers"]
                .as_array()
                .map(|a| a.iter().filter(|s| s["managed"] == false).collect())
                .unwrap_or_default();
            json!({"host": host, "reported_at_ms": at, "servers": r["servers"].as_array().map_or(0, Vec::len),
                "unmanaged": unmanaged})
        })
        .collect();
    reply(StatusCode::OK, json!({"machines": machines}))
}
