//! The console's policy page: explain one decision with the running policy, and what-if:
//! replay recent audited calls (with the roles and groups each carried) against a draft
//! `authorization` section. Also which roles may call a tool, for the inventory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_policy::{Action, Outcome, Situation, Subject, Target, authorize};
use gatehouse_proxy::config::Authorization;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::api::body_json;
use super::explorer::{AuditParams, audit_query, run_query};
use super::{Role, audit, fail, operator, reply};

/// Recent calls a what-if replays at most.
const MAX_REPLAY: u64 = 5_000;

/// Roles whose members may call `target` (a decision with only that role, no other facts).
pub(super) fn roles_for(a: &Authorization, target: &Target) -> Vec<String> {
    let now = gatehouse_transport::session::now_secs();
    a.engine
        .roles()
        .grants()
        .keys()
        .filter(|role| {
            let subject = Subject {
                id: format!("role:{role}"),
                roles: vec![(*role).clone()],
                authenticated_at: Some(now),
                method: "explain".into(),
                ..Subject::default()
            };
            matches!(
                decide(a, &subject, target, &Map::new(), now),
                Outcome::Allow { .. }
            )
        })
        .cloned()
        .collect()
}

fn decide(
    a: &Authorization,
    s: &Subject,
    t: &Target,
    args: &Map<String, Value>,
    now: u64,
) -> Outcome {
    let Ok(prepared) = a.engine.prepare(s) else {
        return Outcome::Deny {
            policies: vec!["gatehouse.unevaluable_principal".into()],
            cause: gatehouse_policy::DenyCause::Error,
        };
    };
    let sit = Situation {
        listing: false,
        now,
        arguments: Some(args),
        client: None,
        source_ip: None,
    };
    authorize(
        &a.engine,
        &prepared,
        s,
        &a.controls,
        Action::CallTool,
        t,
        &sit,
    )
}

fn outcome_json(o: &Outcome) -> Value {
    json!({"decision": o.label(), "detail": format!("{o:?}")})
}

/// The tool a name means in the running catalogue, as policies see it.
fn target_of(gw: &Gateway, name: &str) -> Option<Target> {
    let cfg = gw.config();
    let catalog = gw.catalog();
    let e = catalog.tool(name)?;
    let spec = cfg.upstreams.iter().find(|u| u.name == e.upstream)?;
    Some(spec.data.tool(&e.upstream, &e.original, &e.exposed, &e.def))
}

pub(super) fn strings(v: &Value, k: &str) -> Vec<String> {
    match &v[k] {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// `POST /console/api/explain {principal, roles, groups, tenant, tool, arguments}`: may this
/// principal call this tool with these arguments, and which policies say so.
pub(super) async fn explain(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _s = signed_in!(gw, headers, Role::Viewer, true);
    let v = match body_json(&gw, &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let cfg = gw.config();
    let Some(a) = cfg.authorization.as_deref() else {
        return fail(
            StatusCode::NOT_FOUND,
            "no authorization section: every caller may call every tool",
        );
    };
    let tool = v["tool"].as_str().unwrap_or("");
    let Some(target) = target_of(&gw, tool) else {
        return fail(StatusCode::NOT_FOUND, "no such tool in the catalogue");
    };
    let args = match &v["arguments"] {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return fail(StatusCode::BAD_REQUEST, "arguments must be an object"),
    };
    let now = gatehouse_transport::session::now_secs();
    let subject = Subject {
        id: v["principal"].as_str().unwrap_or("someone").to_owned(),
        tenant: v["tenant"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        roles: strings(&v, "roles"),
        groups: strings(&v, "groups"),
        authenticated_at: Some(now),
        method: "explain".into(),
        ..Subject::default()
    };
    let o = decide(a, &subject, &target, &args, now);
    let effective: Vec<&str> = a
        .engine
        .roles()
        .effective(subject.roles.iter().map(String::as_str))
        .into_iter()
        .collect();
    reply(
        StatusCode::OK,
        json!({"tool": tool, "effective_roles": effective, "outcome": outcome_json(&o)}),
    )
}

/// `POST /console/api/whatif {"authorization": "<YAML>", "limit": N}`: the recent audited
/// calls replayed against a draft `authorization` section; the calls whose decision would
/// change.
pub(super) async fn whatif(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, true);
    let v = match body_json(&gw, &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let cfg = gw.config();
    let base = cfg
        .store_path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let draft = match gatehouse_proxy::config::draft_authorization(
        v["authorization"].as_str().unwrap_or(""),
        &base,
    ) {
        Ok(d) => d,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let limit = v["limit"].as_u64().unwrap_or(1000).clamp(1, MAX_REPLAY);
    let q = AuditParams::default();
    let mut query = match audit_query(&s, &q, limit) {
        Ok(x) => x,
        Err(r) => return r,
    };
    query.limit = limit;
    let rows = match run_query(&gw, query).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    audit(
        &gw,
        &s,
        "console.policy_whatif",
        "",
        json!({"replayed": rows.len()}),
    )
    .await;
    let now = gatehouse_transport::session::now_secs();
    let (mut replayed, mut skipped) = (0u64, 0u64);
    let mut changed = Vec::new();
    for (_, _, e) in rows {
        if e["method"] != "tools/call" || e["kind"] != "request" {
            continue;
        }
        let target_name = e["target"].as_str().unwrap_or("");
        let Some(target) = target_of(&gw, target_name) else {
            skipped += 1;
            continue;
        };
        let was = e["status"].as_str().unwrap_or("");
        // Only calls the policy decided: refusals by other stages say nothing of it.
        let was_allowed = match (was, e["rule"].as_str().unwrap_or("")) {
            ("denied", r) if r.starts_with("policy") || r.starts_with("authz") => false,
            ("denied", _) => {
                skipped += 1;
                continue;
            }
            _ => true,
        };
        let subject = Subject {
            id: e["principal"].as_str().unwrap_or("").to_owned(),
            tenant: e["tenant"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            roles: strings(&e, "roles"),
            groups: strings(&e, "groups"),
            authenticated_at: Some(now),
            method: e["auth_method"].as_str().unwrap_or("").to_owned(),
            ..Subject::default()
        };
        let args = e["arguments"].as_object().cloned().unwrap_or_default();
        let o = decide(&draft, &subject, &target, &args, now);
        replayed += 1;
        if matches!(o, Outcome::Allow { .. }) != was_allowed {
            changed.push(json!({
                "time_ms": e["time_ms"], "principal": subject.id, "tool": target_name,
                "was": if was_allowed {"allowed"} else {"denied"},
                "would_be": outcome_json(&o),
            }));
        }
    }
    reply(
        StatusCode::OK,
        json!({"replayed": replayed, "skipped": skipped, "changed": changed}),
    )
}
