//! The console pages' data under `/console/api`: approvals, pins, the audit explorer,
//! inventory, API keys, policy explanations and what-if, and the live feed. Each route
//! names the console role it needs; changes need the CSRF token and are audited with the
//! operator's identity. Decisions go through the same code as the admin and approvals APIs.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gatehouse_audit::AuditStore;
use gatehouse_policy::{Action, Outcome, Situation, Subject, Target, authorize};
use gatehouse_proxy::config::Authorization;
use gatehouse_proxy::gateway::Gateway;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Role, Session, audit, fail, operator, reply};

/// Largest change body.
const MAX_BODY: usize = 64 * 1024;
/// Records one explorer page or export may hold.
const MAX_PAGE: u64 = 500;
const MAX_EXPORT: u64 = 100_000;
/// Recent calls a what-if replays at most.
const MAX_REPLAY: u64 = 5_000;

macro_rules! signed_in {
    ($gw:expr, $headers:expr, $role:expr, $write:expr) => {
        match operator(&$gw, &$headers, $role, $write) {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

async fn body_json(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Value, Response> {
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

#[derive(Debug, Deserialize)]
struct PinsQuery {
    status: Option<String>,
}

async fn pins(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<PinsQuery>,
    headers: HeaderMap,
) -> Response {
    let _s = signed_in!(gw, headers, Role::Admin, false);
    crate::pins::list_with(&gw, q.status.as_deref()).await
}

async fn pin(
    State(gw): State<Arc<Gateway>>,
    Path(p): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let _s = signed_in!(gw, headers, Role::Admin, false);
    crate::pins::show_with(&gw, p).await
}

async fn decide_pin(
    State(gw): State<Arc<Gateway>>,
    Path((upstream, kind, name, verb)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, true);
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

#[derive(Debug, Default, Deserialize)]
struct AuditParams {
    tenant: Option<String>,
    principal: Option<String>,
    target: Option<String>,
    status: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    /// `time_ms.chain.seq` of the last record of the previous page.
    cursor: Option<String>,
    limit: Option<u64>,
    format: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The store query for an operator: someone of a tenant sees that tenant's chain only.
#[allow(clippy::result_large_err)]
fn audit_query(
    s: &Session,
    q: &AuditParams,
    limit: u64,
) -> Result<gatehouse_store::AuditQuery, Response> {
    let tenant = match (&s.tenant, nonempty(&q.tenant)) {
        (Some(mine), Some(asked)) if *mine != asked => {
            return Err(fail(StatusCode::FORBIDDEN, "another tenant's records"));
        }
        (Some(mine), _) => Some(mine.clone()),
        (None, asked) => asked,
    };
    let cursor = match nonempty(&q.cursor) {
        None => None,
        Some(c) => {
            let mut parts = c.splitn(3, '.');
            let t = parts.next().and_then(|t| t.parse().ok());
            let chain = parts.next().map(str::to_owned);
            let seq = parts.next().and_then(|s| s.parse().ok());
            match (t, chain, seq) {
                (Some(t), Some(chain), Some(seq)) => Some((t, chain, seq)),
                _ => return Err(fail(StatusCode::BAD_REQUEST, "cursor is time_ms.chain.seq")),
            }
        }
    };
    Ok(gatehouse_store::AuditQuery {
        tenant,
        principal: nonempty(&q.principal),
        target: nonempty(&q.target),
        status: nonempty(&q.status),
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        limit,
        subject: None,
        newest_first: true,
        cursor,
    })
}

fn store_of(gw: &Gateway) -> (std::path::PathBuf, Option<String>) {
    let cfg = gw.config();
    (
        cfg.store_path.clone(),
        cfg.postgres_for(gatehouse_proxy::config::StoreKind::Audit)
            .map(str::to_owned),
    )
}

async fn run_query(
    gw: &Gateway,
    query: gatehouse_store::AuditQuery,
) -> Result<Vec<(String, u64, Value)>, Response> {
    let (path, postgres) = store_of(gw);
    let rows = tokio::task::spawn_blocking(move || {
        gatehouse_store::Backend::new(&path, postgres.as_deref())
            .audit()
            .and_then(|s| s.query(&query))
    })
    .await;
    match rows {
        Ok(Ok(rows)) => Ok(rows
            .into_iter()
            .map(|(c, seq, body)| (c, seq, serde_json::from_str(&body).unwrap_or(Value::Null)))
            .collect()),
        _ => Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit store unavailable",
        )),
    }
}

/// `GET /console/api/audit?…&cursor=…`: one page, newest first, and the next page's cursor.
async fn audit_page(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<AuditParams>,
    headers: HeaderMap,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, false);
    if gw.config().audit.is_none() {
        return fail(StatusCode::NOT_FOUND, "no audit record is configured");
    }
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let query = match audit_query(&s, &q, limit) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows = match run_query(&gw, query).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let next = (rows.len() as u64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|(c, seq, e)| format!("{}.{c}.{seq}", e["time_ms"].as_u64().unwrap_or(0)));
    let records: Vec<Value> = rows
        .into_iter()
        .map(|(chain, seq, event)| json!({"chain": chain, "seq": seq, "event": event}))
        .collect();
    reply(StatusCode::OK, json!({"records": records, "next": next}))
}

/// A CSV cell, with formula prefixes defused (spreadsheets run `=…`).
fn csv_cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// `GET /console/api/audit/export?format=csv|jsonl&…`: every matching record (up to
/// 100,000), newest first; the export itself is audited.
async fn audit_export(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<AuditParams>,
    headers: HeaderMap,
) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, false);
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        None | Some("jsonl") => false,
        _ => return fail(StatusCode::BAD_REQUEST, "format is csv or jsonl"),
    };
    let query = match audit_query(&s, &q, q.limit.unwrap_or(MAX_EXPORT).clamp(1, MAX_EXPORT)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    audit(&gw, &s, "console.audit_exported", "", json!({"format": if csv {"csv"} else {"jsonl"}, "principal": query.principal, "target": query.target, "status": query.status, "tenant": query.tenant})).await;
    let rows = match run_query(&gw, query).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut out = String::new();
    const COLUMNS: [&str; 11] = [
        "time_ms",
        "tenant",
        "principal",
        "auth_method",
        "method",
        "target",
        "upstream",
        "status",
        "rule",
        "classification",
        "correlation",
    ];
    if csv {
        out.push_str("chain,seq,");
        out.push_str(&COLUMNS.join(","));
        out.push('\n');
    }
    for (chain, seq, e) in rows {
        if csv {
            let mut cells = vec![csv_cell(&chain), seq.to_string()];
            cells.extend(COLUMNS.iter().map(|k| match &e[*k] {
                Value::String(s) => csv_cell(s),
                Value::Null => String::new(),
                other => csv_cell(&other.to_string()),
            }));
            out.push_str(&cells.join(","));
        } else {
            out.push_str(&json!({"chain": chain, "seq": seq, "event": e}).to_string());
        }
        out.push('\n');
    }
    let (ct, name) = if csv {
        ("text/csv; charset=utf-8", "gatehouse-audit.csv")
    } else {
        ("application/x-ndjson", "gatehouse-audit.jsonl")
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        out,
    )
        .into_response()
}

/// `GET /console/api/audit/verify`: every chain re-hashed from its anchor.
async fn audit_verify(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let s = signed_in!(gw, headers, Role::Admin, false);
    let (path, postgres) = store_of(&gw);
    let only = s.tenant.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
        let store = gatehouse_store::AnyAudit::open(&path, postgres.as_deref())
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for chain in store.chains().map_err(|e| e.to_string())? {
            if only.as_ref().is_some_and(|t| *t != chain) {
                continue;
            }
            let links = store.links(&chain).map_err(|e| e.to_string())?;
            let anchor = store.anchor(&chain).map_err(|e| e.to_string())?;
            out.push(
                match gatehouse_audit::verify_chain_from(&links, anchor.as_ref()) {
                    Ok((n, head)) => {
                        json!({"chain": chain, "ok": true, "records": n, "head": head})
                    }
                    Err(e) => json!({"chain": chain, "ok": false, "error": e.to_string()}),
                },
            );
        }
        Ok(out)
    })
    .await;
    match checked {
        Ok(Ok(chains)) => reply(StatusCode::OK, json!({"chains": chains})),
        _ => fail(StatusCode::SERVICE_UNAVAILABLE, "audit store unavailable"),
    }
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

/// Roles whose members may call `target` (a decision with only that role, no other facts).
fn roles_for(a: &Authorization, target: &Target) -> Vec<String> {
    let now = gatehouse_proxy::session::now_secs();
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

fn strings(v: &Value, k: &str) -> Vec<String> {
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
async fn explain(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
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
    let now = gatehouse_proxy::session::now_secs();
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
async fn whatif(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
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
    let q = AuditParams {
        status: None,
        ..AuditParams::default()
    };
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
    let now = gatehouse_proxy::session::now_secs();
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
    match k.create(&spec, gatehouse_proxy::session::now_secs(), None) {
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
    let now = gatehouse_proxy::session::now_secs();
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
    let metrics = gatehouse_proxy::metrics::install()
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
        .route("/console/api/audit", get(audit_page))
        .route("/console/api/audit/export", get(audit_export))
        .route("/console/api/audit/verify", get(audit_verify))
        .route("/console/api/inventory", get(inventory))
        .route("/console/api/keys", get(keys).post(create_key))
        .route("/console/api/keys/{id}/{verb}", post(change_key))
        .route("/console/api/explain", post(explain))
        .route("/console/api/whatif", post(whatif))
        .route("/console/api/live", get(live))
}
