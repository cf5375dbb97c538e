//! The console's audit explorer: indexed filters, newest-first pages by keyset cursor,
//! one record in full, chain verification and CSV / JSON-lines export. An operator of a
//! tenant reads that tenant's chain only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gatehouse_audit::AuditStore;
use gatehouse_pipeline::gateway::Gateway;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Role, Session, audit, fail, operator, reply};

/// Records one explorer page or export may hold.
const MAX_PAGE: u64 = 500;
const MAX_EXPORT: u64 = 20_000;

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditParams {
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
pub(super) fn audit_query(
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
        Some(c) => match parse_cursor(&c) {
            Some(x) => Some(x),
            None => return Err(fail(StatusCode::BAD_REQUEST, "cursor is time_ms.chain.seq")),
        },
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

/// `time_ms.chain.seq`; a tenant's chain name may itself hold dots.
fn parse_cursor(c: &str) -> Option<(u64, String, u64)> {
    let (t, rest) = c.split_once('.')?;
    let (chain, seq) = rest.rsplit_once('.')?;
    Some((t.parse().ok()?, chain.to_owned(), seq.parse().ok()?))
}

fn store_of(gw: &Gateway) -> (std::path::PathBuf, Option<String>) {
    let cfg = gw.config();
    (
        cfg.store_path.clone(),
        cfg.postgres_for(gatehouse_proxy::config::StoreKind::Audit)
            .map(str::to_owned),
    )
}

pub(super) async fn run_query(
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
pub(super) async fn audit_page(
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
    // Reading the record is itself on the record, as the admin API's queries are.
    if !audit(
        &gw,
        &s,
        "console.audit_searched",
        "",
        json!({"principal": query.principal, "target": query.target, "status": query.status,
               "tenant": query.tenant, "since_ms": query.since_ms, "until_ms": query.until_ms,
               "cursor": query.cursor.is_some()}),
    )
    .await
    {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the search could not be recorded",
        );
    }
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

/// `GET /console/api/audit/export?format=csv|jsonl&…&cursor=…`: the matching records, up
/// to 20,000 newest first from the cursor (held in memory while written: larger exports
/// page with the cursor or use `gatehouse audit query`); the export itself is audited.
pub(super) async fn audit_export(
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
    if !audit(&gw, &s, "console.audit_exported", "", json!({"format": if csv {"csv"} else {"jsonl"}, "principal": query.principal, "target": query.target, "status": query.status, "tenant": query.tenant})).await
    {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the export could not be recorded");
    }
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
pub(super) async fn audit_verify(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
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

#[cfg(test)]
mod tests {
    #[test]
    fn cursors_keep_dotted_chain_names_and_refuse_junk() {
        assert_eq!(
            super::parse_cursor("17.acme.corp.42"),
            Some((17, "acme.corp".to_owned(), 42))
        );
        assert_eq!(
            super::parse_cursor("17.default.3"),
            Some((17, "default".to_owned(), 3))
        );
        for junk in [
            "",
            "17",
            "17.default",
            "x.default.3",
            "17.default.x",
            "17..3x",
        ] {
            assert_eq!(super::parse_cursor(junk), None, "{junk}");
        }
    }
}
