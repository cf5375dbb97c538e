//! SCIM 2.0 (RFC 7643/7644) `Users` and `Groups` for the organisation's directory (Entra
//! ID, Okta…): provisioning, group membership (authoritative over a token's `groups` claim
//! for the users it provisions), and above all deprovisioning — a user set `active: false`
//! or deleted is refused on their next request, whatever token, session or API key they hold.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gatehouse_store::{DirectoryGroup, DirectoryStore, DirectoryUser};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use gatehouse_pipeline::gateway::Gateway;
use gatehouse_transport::session::{now_secs, random_bytes};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const MAX_BODY: usize = 256 * 1024;

pub(crate) fn scim(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn error(status: StatusCode, detail: &str, scim_type: Option<&str>) -> Response {
    let mut e =
        json!({"schemas": [ERROR], "status": status.as_u16().to_string(), "detail": detail});
    if let Some(t) = scim_type {
        e["scimType"] = json!(t);
    }
    scim(status, e)
}

pub(crate) fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "directory store unavailable",
        None,
    )
}

fn resource(u: &DirectoryUser) -> Value {
    let mut v = json!({"schemas": [USER], "id": u.id, "userName": u.user_name, "active": u.active,
        "meta": {"resourceType": "User", "location": format!("/scim/v2/Users/{}", u.id)}});
    if let Some(e) = &u.external_id {
        v["externalId"] = json!(e);
    }
    v
}

/// The SCIM client (the identity provider) authenticates with the configured bearer token.
#[allow(clippy::result_large_err)]
fn check(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<dyn DirectoryStore>, Response> {
    authorize(gw, headers, |c| c.scim_token.as_ref())
}

/// A control surface's bearer token (SCIM's, or the admin's for revocations, which live in
/// the directory), then the directory store. An unconfigured surface does not exist (404).
#[allow(clippy::result_large_err)]
pub(crate) fn authorize(
    gw: &Gateway,
    headers: &HeaderMap,
    which: fn(&gatehouse_proxy::config::Config) -> Option<&gatehouse_auth::SecretRef>,
) -> Result<Arc<dyn DirectoryStore>, Response> {
    use crate::token::Refusal;
    crate::token::check(gw, headers, which).map_err(|r| match r {
        Refusal::NotConfigured => StatusCode::NOT_FOUND.into_response(),
        Refusal::SecretUnavailable => {
            error(StatusCode::SERVICE_UNAVAILABLE, "secret unavailable", None)
        }
        Refusal::TooShort => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "configured token too short",
            None,
        ),
        Refusal::Wrong => error(StatusCode::UNAUTHORIZED, "unauthorized", None),
    })?;
    match gw.directory() {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(StatusCode::NOT_FOUND.into_response()),
        Err(_) => Err(unavailable()),
    }
}

/// A SCIM request's JSON body, or the SCIM error saying why not.
async fn body_json(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    crate::body::json(gw, headers, body, MAX_BODY)
        .await
        .map_err(|f| {
            let scim_type = (f == crate::body::Failure::NotJson).then_some("invalidSyntax");
            error(f.status(), f.message(), scim_type)
        })
}

/// An authorized SCIM call's store and JSON body.
async fn checked_body(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Arc<dyn DirectoryStore>, Value), Response> {
    let dir = check(gw, headers)?;
    Ok((dir, body_json(gw, headers, body).await?))
}

/// The value of an `attr eq "…"` filter, the only filter provisioning clients need.
/// Attribute and operator names are case-insensitive (RFC 7644 §3.4.2.2): `USERNAME EQ`
/// is the same filter.
fn eq_filter<'a>(filter: &'a str, attr: &str) -> Option<&'a str> {
    let (name, rest) = filter.trim().split_once(char::is_whitespace)?;
    let (op, value) = rest.trim_start().split_once(char::is_whitespace)?;
    (name.eq_ignore_ascii_case(attr) && op.eq_ignore_ascii_case("eq"))
        .then(|| value.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

fn list_response(found: Vec<Value>) -> Response {
    scim(
        StatusCode::OK,
        json!({"schemas": [LIST], "totalResults": found.len(), "startIndex": 1, "itemsPerPage": found.len(), "Resources": found}),
    )
}

/// One operation of a SCIM PatchOp body; `kind` lower-cased (Entra sends "Replace").
struct PatchOp<'a> {
    kind: String,
    path: Option<&'a str>,
    value: &'a Value,
}

#[allow(clippy::result_large_err)]
fn patch_ops(v: &Value) -> Result<Vec<PatchOp<'_>>, Response> {
    let Some(ops) = v.get("Operations").and_then(Value::as_array) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Operations is required",
            Some("invalidSyntax"),
        ));
    };
    Ok(ops
        .iter()
        .map(|op| PatchOp {
            kind: op
                .get("op")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase(),
            path: op.get("path").and_then(Value::as_str),
            value: op.get("value").unwrap_or(&Value::Null),
        })
        .collect())
}

/// SCIM booleans arrive as JSON booleans or, from some providers, as "True"/"False".
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A directory change: in the log, and as an authentication event in the audit record.
async fn audit_change(gw: &Gateway, u: &DirectoryUser, what: &str) {
    tracing::info!(target: "gatehouse::audit", user = %u.user_name, id = %u.id, active = u.active, what, "directory change");
    gw.audit_note(
        gatehouse_audit::EventKind::Auth,
        &format!("auth.{what}"),
        format!("user {} ({}) by the directory", u.user_name, u.id),
    )
    .await;
}

pub(crate) async fn create(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (dir, v) = match checked_body(&gw, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(user_name) = v
        .get("userName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "userName is required",
            Some("invalidValue"),
        );
    };
    match dir.find_by_user_name(user_name) {
        Ok(Some(_)) => return error(StatusCode::CONFLICT, "userName exists", Some("uniqueness")),
        Ok(None) => {}
        Err(_) => {
            return unavailable();
        }
    }
    let u = DirectoryUser {
        id: new_id(),
        user_name: user_name.to_owned(),
        external_id: v
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        active: v.get("active").and_then(as_bool).unwrap_or(true),
        updated_at: now_secs(),
    };
    if dir.put(&u).is_err() {
        return unavailable();
    }
    audit_change(&gw, &u, "provisioned").await;
    scim(StatusCode::CREATED, resource(&u))
}

pub(crate) async fn get(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dir.get(&id) {
        Ok(Some(u)) => scim(StatusCode::OK, resource(&u)),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such user", None),
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    filter: Option<String>,
}

/// Only `userName eq "…"` is supported: what provisioning clients use to look a user up.
pub(crate) async fn list(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(filter) = q.filter else {
        return error(
            StatusCode::BAD_REQUEST,
            "a filter `userName eq \"…\"` is required",
            Some("invalidFilter"),
        );
    };
    let name = eq_filter(&filter, "userName");
    let Some(name) = name else {
        return error(
            StatusCode::BAD_REQUEST,
            "only `userName eq \"…\"` filters are supported",
            Some("invalidFilter"),
        );
    };
    let found: Vec<Value> = match dir.find_by_user_name(name) {
        Ok(u) => u.iter().map(resource).collect(),
        Err(_) => {
            return unavailable();
        }
    };
    list_response(found)
}

pub(crate) async fn replace(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    update(gw, id, headers, body, false).await
}

pub(crate) async fn patch(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    update(gw, id, headers, body, true).await
}

async fn update(
    gw: Arc<Gateway>,
    id: String,
    headers: HeaderMap,
    body: Body,
    is_patch: bool,
) -> Response {
    let (dir, v) = match checked_body(&gw, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut u = match dir.get(&id) {
        Ok(Some(u)) => u,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such user", None),
        Err(_) => {
            return unavailable();
        }
    };
    let apply = |u: &mut DirectoryUser, attrs: &Value| {
        if let Some(a) = attrs.get("active").and_then(as_bool) {
            u.active = a;
        }
        if let Some(n) = attrs.get("userName").and_then(Value::as_str) {
            u.user_name = n.to_owned();
        }
        if let Some(e) = attrs.get("externalId").and_then(Value::as_str) {
            u.external_id = Some(e.to_owned());
        }
    };
    if is_patch {
        let ops = match patch_ops(&v) {
            Ok(ops) => ops,
            Err(r) => return r,
        };
        for op in ops {
            if op.kind != "replace" && op.kind != "add" {
                return error(
                    StatusCode::BAD_REQUEST,
                    "only replace and add operations are supported",
                    Some("invalidSyntax"),
                );
            }
            match op.path {
                Some(path) => apply(&mut u, &json!({ path: op.value })),
                None => apply(&mut u, op.value),
            }
        }
    } else {
        apply(&mut u, &v);
    }
    match dir.find_by_user_name(&u.user_name) {
        Ok(Some(other)) if other.id != u.id => {
            return error(StatusCode::CONFLICT, "userName exists", Some("uniqueness"));
        }
        Ok(_) => {}
        Err(_) => return unavailable(),
    }
    u.updated_at = now_secs();
    if dir.put(&u).is_err() {
        return unavailable();
    }
    audit_change(&gw, &u, if u.active { "updated" } else { "deprovisioned" }).await;
    scim(StatusCode::OK, resource(&u))
}

pub(crate) async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dir.delete(&id, now_secs()) {
        Ok(true) => {
            tracing::info!(target: "gatehouse::audit", id = %id, "directory change: deleted (deprovisioned)");
            gw.audit_note(
                gatehouse_audit::EventKind::Auth,
                "auth.deprovisioned",
                format!("user {id} deleted by the directory"),
            )
            .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such user", None),
        Err(_) => unavailable(),
    }
}

fn new_id() -> String {
    hex::encode(random_bytes::<16>())
}

fn group_resource(g: &DirectoryGroup) -> Value {
    let members: Vec<Value> = g.members.iter().map(|m| json!({"value": m})).collect();
    let mut v = json!({"schemas": [GROUP], "id": g.id, "displayName": g.display_name, "members": members,
        "meta": {"resourceType": "Group", "location": format!("/scim/v2/Groups/{}", g.id)}});
    if let Some(e) = &g.external_id {
        v["externalId"] = json!(e);
    }
    v
}

/// `[{"value": id}, …]` as SCIM sends members; anything else is no member.
fn member_ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("value").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn audit_group(g: &DirectoryGroup, what: &str) {
    tracing::info!(target: "gatehouse::audit", group = %g.display_name, id = %g.id, members = g.members.len(), what, "directory change");
}

/// A display name must stay unique: two groups of one name would make `groups` ambiguous.
#[allow(clippy::result_large_err)]
fn name_taken(dir: &dyn DirectoryStore, name: &str, id: &str) -> Result<bool, Response> {
    match dir.find_group_by_name(name) {
        Ok(Some(other)) => Ok(other.id != id),
        Ok(None) => Ok(false),
        Err(_) => Err(unavailable()),
    }
}

pub(crate) async fn create_group(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (dir, v) = match checked_body(&gw, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(name) = v
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "displayName is required",
            Some("invalidValue"),
        );
    };
    let id = new_id();
    match name_taken(dir.as_ref(), name, &id) {
        Ok(true) => {
            return error(
                StatusCode::CONFLICT,
                "displayName exists",
                Some("uniqueness"),
            );
        }
        Ok(false) => {}
        Err(r) => return r,
    }
    let g = DirectoryGroup {
        id,
        display_name: name.to_owned(),
        external_id: v
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        members: v.get("members").map(member_ids).unwrap_or_default(),
    };
    stored_group(dir.as_ref(), &g, StatusCode::CREATED, "group provisioned")
}

/// Writes a group and answers with what was stored (members the directory does not know
/// are dropped, so the answer is the truth).
fn stored_group(
    dir: &dyn DirectoryStore,
    g: &DirectoryGroup,
    status: StatusCode,
    what: &str,
) -> Response {
    if dir.put_group(g).is_err() {
        return unavailable();
    }
    match dir.get_group(&g.id) {
        Ok(Some(g)) => {
            audit_group(&g, what);
            scim(status, group_resource(&g))
        }
        _ => unavailable(),
    }
}

pub(crate) async fn get_group(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dir.get_group(&id) {
        Ok(Some(g)) => scim(StatusCode::OK, group_resource(&g)),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such group", None),
        Err(_) => unavailable(),
    }
}

/// Only `displayName eq "…"` is supported.
pub(crate) async fn list_groups(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let name = q
        .filter
        .as_deref()
        .and_then(|f| eq_filter(f, "displayName"));
    let Some(name) = name else {
        return error(
            StatusCode::BAD_REQUEST,
            "only `displayName eq \"…\"` filters are supported",
            Some("invalidFilter"),
        );
    };
    let found: Vec<Value> = match dir.find_group_by_name(name) {
        Ok(g) => g.iter().map(group_resource).collect(),
        Err(_) => return unavailable(),
    };
    list_response(found)
}

pub(crate) async fn replace_group(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    update_group(gw, id, headers, body, false).await
}

pub(crate) async fn patch_group(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    update_group(gw, id, headers, body, true).await
}

/// The member a `members[value eq "…"]` path names.
fn member_filter(path: &str) -> Option<&str> {
    let open = path.find('[')?;
    if !path[..open].trim().eq_ignore_ascii_case("members") {
        return None;
    }
    eq_filter(path[open + 1..].strip_suffix(']')?, "value")
}

async fn update_group(
    gw: Arc<Gateway>,
    id: String,
    headers: HeaderMap,
    body: Body,
    is_patch: bool,
) -> Response {
    let (dir, v) = match checked_body(&gw, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut g = match dir.get_group(&id) {
        Ok(Some(g)) => g,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such group", None),
        Err(_) => return unavailable(),
    };
    let set_attrs = |g: &mut DirectoryGroup, attrs: &Value| {
        if let Some(n) = attrs.get("displayName").and_then(Value::as_str) {
            g.display_name = n.to_owned();
        }
        if let Some(e) = attrs.get("externalId").and_then(Value::as_str) {
            g.external_id = Some(e.to_owned());
        }
    };
    if is_patch {
        let ops = match patch_ops(&v) {
            Ok(ops) => ops,
            Err(r) => return r,
        };
        for PatchOp { kind, path, value } in ops {
            match (kind.as_str(), path) {
                ("add", Some("members")) => g.members.extend(member_ids(value)),
                ("replace", Some("members")) => g.members = member_ids(value),
                ("remove", Some("members")) if value.is_array() => {
                    let gone = member_ids(value);
                    g.members.retain(|m| !gone.contains(m));
                }
                ("remove", Some("members")) => g.members.clear(),
                ("remove", Some(p)) if member_filter(p).is_some() => {
                    let gone = member_filter(p).unwrap_or_default();
                    g.members.retain(|m| m != gone);
                }
                ("add" | "replace", Some(p)) => set_attrs(&mut g, &json!({ p: value })),
                ("add" | "replace", None) => {
                    set_attrs(&mut g, value);
                    if let Some(m) = value.get("members") {
                        g.members = member_ids(m);
                    }
                }
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "unsupported operation",
                        Some("invalidSyntax"),
                    );
                }
            }
        }
    } else {
        set_attrs(&mut g, &v);
        g.members = v.get("members").map(member_ids).unwrap_or_default();
    }
    match name_taken(dir.as_ref(), &g.display_name, &g.id) {
        Ok(true) => {
            return error(
                StatusCode::CONFLICT,
                "displayName exists",
                Some("uniqueness"),
            );
        }
        Ok(false) => {}
        Err(r) => return r,
    }
    stored_group(dir.as_ref(), &g, StatusCode::OK, "group updated")
}

pub(crate) async fn delete_group(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match check(&gw, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dir.delete_group(&id) {
        Ok(true) => {
            tracing::info!(target: "gatehouse::audit", id = %id, "directory change: group deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such group", None),
        Err(_) => unavailable(),
    }
}

/// `GET /ServiceProviderConfig` (RFC 7643 §5): what provisioning clients may use, so their
/// connection tests and feature detection see the truth.
pub(crate) async fn service_provider_config(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&gw, &headers) {
        return r;
    }
    scim(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": 1},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer token",
                "description": "The token configured as scim.token", "primary": true}],
            "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"}
        }),
    )
}

/// Routes, on the gateway's listener under `/scim/v2`.
pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    use axum::routing::get as get_route;
    axum::Router::new()
        .route("/scim/v2/Users", get_route(list).post(create))
        .route(
            "/scim/v2/Users/{id}",
            get_route(get).put(replace).patch(patch).delete(delete),
        )
        .route("/scim/v2/Groups", get_route(list_groups).post(create_group))
        .route(
            "/scim/v2/ServiceProviderConfig",
            get_route(service_provider_config),
        )
        .route(
            "/scim/v2/Groups/{id}",
            get_route(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .with_state(gw)
}

#[cfg(test)]
mod tests {
    use super::{eq_filter, member_filter};

    /// RFC 7644 §3.4.2.2: attribute names and operators are case-insensitive.
    #[test]
    fn filters_read_names_and_operators_in_any_case() {
        for f in [
            "userName eq \"ana\"",
            "USERNAME EQ \"ana\"",
            "username Eq \"ana\"",
            "  userName  eq  \"ana\" ",
        ] {
            assert_eq!(eq_filter(f, "userName"), Some("ana"), "{f}");
        }
        for f in [
            "userName ne \"ana\"",
            "displayName eq \"ana\"",
            "userName eq \"\"",
        ] {
            assert_eq!(eq_filter(f, "userName"), None, "{f}");
        }
        assert_eq!(member_filter("members[value eq \"u1\"]"), Some("u1"));
        assert_eq!(member_filter("Members[Value EQ \"u1\"]"), Some("u1"));
        assert_eq!(member_filter("owners[value eq \"u1\"]"), None);
    }
}
