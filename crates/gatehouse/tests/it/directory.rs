//! The directory in the gateway's hands, against a real OpenID provider: SCIM 2.0
//! provisioning and deprovisioning (every credential refused mid-session), directory groups
//! ruling principals, and the administrator's revoke reaching replicas through PostgreSQL.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use crate::common::oauth::{Idp, admin, api, config, connect, init, with_token};
use crate::common::{Gw, Mcp, base64_decode, free_port, fresh_database, start_gateway_at};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn scim(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api(format!("{base}/scim/v2{path}"), token, method, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprovisioned_user_is_refused_mid_session_with_every_credential() {
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-scim-{gw_port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("scim-token"), "scim-s3cret-0123456789\n").expect("write");
    let pepper = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";
    let yaml = format!(
        "{}scim:\n  token: \"file:{}\"\napi_keys:\n  pepper: \"{pepper}\"\nstore:\n  sqlite: {}\n",
        config(&idp, true),
        dir.join("scim-token").display(),
        dir.join("gatehouse.db").display()
    );
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;

    // No admin token configured: no admin API.
    assert_eq!(
        admin(
            &gw.base,
            "scim-s3cret-0123456789",
            reqwest::Method::POST,
            "/revocations",
            Some(json!({"subject": "x"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // The SCIM client must present the configured token.
    assert_eq!(
        scim(
            &gw.base,
            "wrong",
            reqwest::Method::GET,
            "/Users?filter=userName%20eq%20%22x%22",
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let (st, created) = scim(&gw.base, "scim-s3cret-0123456789", reqwest::Method::POST, "/Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "svc-reporting", "externalId": "oid-123", "active": true}))).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (st, dup) = scim(
        &gw.base,
        "scim-s3cret-0123456789",
        reqwest::Method::POST,
        "/Users",
        Some(json!({"userName": "svc-reporting"})),
    )
    .await;
    assert_eq!(
        (st, dup["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness"))
    );
    let (_, found) = scim(
        &gw.base,
        "scim-s3cret-0123456789",
        reqwest::Method::GET,
        "/Users?filter=userName%20eq%20%22svc-reporting%22",
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 1);

    // The user works: a session with a JWT, and an API key of theirs.
    let token = idp.token("svc-reporting", "mcp:tools", None).await;
    let session = connect(&gw.mcp(), &token).await;
    session
        .call("demo__search_files", json!({"query": "vpn"}))
        .await;
    let store = gatehouse_store::SqliteKeyStore::open(&dir.join("gatehouse.db")).expect("store");
    let keys = gatehouse_auth::ApiKeys::new(&base64_decode(pepper), std::sync::Arc::new(store));
    let spec = gatehouse_auth::KeySpec {
        principal: "svc-reporting".into(),
        app: "reporting".into(),
        ..Default::default()
    };
    let key = keys.create(&spec, 1, None).expect("key").key;
    let key_client = || {
        let mut c = with_token(&Mcp::new(&gw.mcp()), &key);
        c.session = None;
        c
    };
    let open_with_key = |c: Mcp| async move {
        c.post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "reporting", "version": "1"}}})).await.status
    };
    assert_eq!(open_with_key(key_client()).await, StatusCode::OK);
    let bystander = connect(&gw.mcp(), &idp.token("svc-es256", "mcp:tools", None).await).await;

    // Deprovisioned (as Entra sends it: a PATCH with the string "False"): refused on the
    // very next request, in the open session, with a new session, and with the API key.
    let (st, _) = scim(&gw.base, "scim-s3cret-0123456789", reqwest::Method::PATCH, &format!("/Users/{id}"),
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}))).await;
    assert_eq!(st, StatusCode::OK);
    let r = session
        .request(
            "tools/call",
            json!({"name": "demo__search_files", "arguments": {"query": "vpn"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "mid-session");
    assert_eq!(
        init(&gw.mcp(), &token).await.status,
        StatusCode::UNAUTHORIZED,
        "new session"
    );
    assert_eq!(
        open_with_key(key_client()).await,
        StatusCode::UNAUTHORIZED,
        "API key"
    );
    bystander
        .call("demo__search_files", json!({"query": "vpn"}))
        .await;

    reactivated_then_deleted(&gw, &token, &id).await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(idp);
}

/// The end of a deprovisioned user's story: reactivated (signs in again), then deleted.
async fn reactivated_then_deleted(gw: &Gw, token: &str, id: &str) {
    // Reactivated, then deleted.
    scim(
        &gw.base,
        "scim-s3cret-0123456789",
        reqwest::Method::PATCH,
        &format!("/Users/{id}"),
        Some(json!({"Operations": [{"op": "replace", "value": {"active": true}}]})),
    )
    .await;
    assert_eq!(init(&gw.mcp(), token).await.status, StatusCode::OK);
    let (st, _) = scim(
        &gw.base,
        "scim-s3cret-0123456789",
        reqwest::Method::DELETE,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        init(&gw.mcp(), token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scim(
            &gw.base,
            "scim-s3cret-0123456789",
            reqwest::Method::GET,
            &format!("/Users/{id}"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

/// The principal the pipeline hands on for a bearer token.
async fn principal_of(gw: &Gw, token: &str) -> std::sync::Arc<gatehouse_pipeline::Principal> {
    let cfg = gw.gw.config();
    let auth = format!("Bearer {token}");
    gatehouse_proxy::edge::authenticate(&gw.gw, &cfg, Some(&auth), None)
        .await
        .expect("authenticated")
}

async fn groups_of(gw: &Gw, token: &str) -> Vec<String> {
    principal_of(gw, token).await.groups.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_groups_rule_principals_and_the_admin_revoke_cuts_anyone_off() {
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-groups-{gw_port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("scim-token"), "scim-s3cret-0123456789").expect("write");
    std::fs::write(dir.join("admin-token"), "adm1n-s3cret-0123456789").expect("write");
    let yaml = format!(
        "{}group_roles:\n  analyst: [token-reader]\n  analysts: [reader]\n  admins: [operator, reader]\nscim:\n  token: \"file:{}\"\nadmin:\n  token: \"file:{}\"\nstore:\n  sqlite: {}\n",
        config(&idp, true),
        dir.join("scim-token").display(),
        dir.join("admin-token").display(),
        dir.join("gatehouse.db").display()
    );
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg.clone(), gw_port, true).await;
    // A second replica on the same store file.
    let replica = start_gateway_at(cfg, 0, true).await;
    let s = "scim-s3cret-0123456789";

    let (token, uid) = token_groups_then_directory_users(&gw, &idp, s).await;
    directory_groups_replace_the_tokens(&gw, &token, &uid, s).await;
    the_admin_revoke_cuts_anyone_off((&gw, &replica, &idp), &dir, &token, s).await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(idp);
}

/// Before and after the directory provisions a user: the groups and roles they get.
async fn token_groups_then_directory_users(gw: &Gw, idp: &Idp, s: &str) -> (String, String) {
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    // Before the directory knows them: the token's groups, and the roles they grant.
    let token = idp.token("svc-reporting", "mcp:tools", None).await;
    let p = principal_of(gw, &token).await;
    assert_eq!(
        (p.groups.as_slice(), p.roles.as_slice()),
        (
            &["analyst".to_owned()][..],
            &["token-reader".to_owned()][..]
        )
    );
    let (st, spc) = scim(
        &gw.base,
        s,
        reqwest::Method::GET,
        "/ServiceProviderConfig",
        None,
    )
    .await;
    assert_eq!(
        (st, spc["patch"]["supported"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(
        spc["bulk"]["supported"], false,
        "what it does not do is said too"
    );
    assert_eq!(
        scim(
            &gw.base,
            "wrong",
            reqwest::Method::GET,
            "/ServiceProviderConfig",
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let (_, user) = scim(
        &gw.base,
        s,
        post.clone(),
        "/Users",
        Some(json!({"userName": "svc-reporting"})),
    )
    .await;
    let uid = user["id"].as_str().expect("id").to_owned();
    // A rename onto someone else's userName is a conflict, not a store failure.
    scim(
        &gw.base,
        s,
        post.clone(),
        "/Users",
        Some(json!({"userName": "taken"})),
    )
    .await;
    let (st, e) = scim(
        &gw.base,
        s,
        patch.clone(),
        &format!("/Users/{uid}"),
        Some(json!({
        "Operations": [{"op": "replace", "path": "userName", "value": "taken"}]})),
    )
    .await;
    assert_eq!(
        (st, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness"))
    );
    let p = principal_of(gw, &token).await;
    assert!(
        p.groups.is_empty() && p.roles.is_empty(),
        "the directory's groups rule"
    );

    (token, uid)
}

/// Directory groups (SCIM, as Okta and Entra send them) replace the token's, at once.
async fn directory_groups_replace_the_tokens(gw: &Gw, token: &str, uid: &str, s: &str) {
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    // A group, with one member the directory never provisioned (dropped).
    let (st, analysts) = scim(
        &gw.base,
        s,
        post.clone(),
        "/Groups",
        Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "analysts",
        "members": [{"value": uid}, {"value": "not-a-user"}]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{analysts}");
    assert_eq!(analysts["members"], json!([{"value": uid}]));
    let gid = analysts["id"].as_str().expect("id").to_owned();
    let (st, dup) = scim(
        &gw.base,
        s,
        post.clone(),
        "/Groups",
        Some(json!({"displayName": "analysts"})),
    )
    .await;
    assert_eq!(
        (st, dup["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness"))
    );
    let (_, found) = scim(
        &gw.base,
        s,
        reqwest::Method::GET,
        "/Groups?filter=displayName%20eq%20%22analysts%22",
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(groups_of(gw, token).await, ["analysts"]);

    // Okta adds members with a path; Entra removes them with a filter path.
    let (_, admins) = scim(
        &gw.base,
        s,
        post.clone(),
        "/Groups",
        Some(json!({"displayName": "admins"})),
    )
    .await;
    let aid = admins["id"].as_str().expect("id").to_owned();
    let (st, _) = scim(
        &gw.base,
        s,
        patch.clone(),
        &format!("/Groups/{aid}"),
        Some(json!({
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(groups_of(gw, token).await, ["admins", "analysts"]);
    assert_eq!(
        principal_of(gw, token).await.roles,
        ["operator", "reader"],
        "granted once each"
    );
    let (st, after) = scim(
        &gw.base,
        s,
        patch.clone(),
        &format!("/Groups/{gid}"),
        Some(json!({
        "Operations": [{"op": "Remove", "path": format!("members[value eq \"{uid}\"]")}]})),
    )
    .await;
    assert_eq!((st, after["members"].clone()), (StatusCode::OK, json!([])));
    assert_eq!(
        groups_of(gw, token).await,
        ["admins"],
        "removed at once, token unchanged"
    );
    let (st, _) = scim(
        &gw.base,
        s,
        patch.clone(),
        &format!("/Groups/{aid}"),
        Some(json!({
        "Operations": [{"op": "move", "path": "members"}]})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        scim(
            &gw.base,
            s,
            reqwest::Method::DELETE,
            &format!("/Groups/{aid}"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert!(groups_of(gw, token).await.is_empty());
    assert_eq!(
        scim(
            &gw.base,
            "wrong",
            reqwest::Method::GET,
            &format!("/Groups/{gid}"),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
}

/// The admin revoke: anyone cut off mid-session, on every replica, and lifted again.
async fn the_admin_revoke_cuts_anyone_off(
    (gw, replica, idp): (&Gw, &Gw, &Idp),
    dir: &std::path::Path,
    token: &str,
    s: &str,
) {
    let post = reqwest::Method::POST;
    // The admin revoke: a subject the directory never provisioned, cut off mid-session.
    let other = idp.token("svc-es256", "mcp:tools", None).await;
    let session = connect(&gw.mcp(), &other).await;
    session
        .call("demo__search_files", json!({"query": "vpn"}))
        .await;
    assert_eq!(init(&replica.mcp(), &other).await.status, StatusCode::OK);
    let a = "adm1n-s3cret-0123456789";
    let (st, _) = admin(
        &gw.base,
        s,
        post.clone(),
        "/revocations",
        Some(json!({"subject": "svc-es256"})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "the SCIM token is not an admin token"
    );
    let (st, _) = admin(
        &gw.base,
        a,
        post.clone(),
        "/revocations",
        Some(json!({"subject": ""})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = admin(
        &gw.base,
        a,
        post.clone(),
        "/revocations",
        Some(json!({"subject": "svc-es256"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let r = session
        .request(
            "tools/call",
            json!({"name": "demo__search_files", "arguments": {"query": "vpn"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "mid-session");
    assert_eq!(
        init(&gw.mcp(), &other).await.status,
        StatusCode::UNAUTHORIZED,
        "new session"
    );
    // The replica learns of it from the shared store within a couple of seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while init(&replica.mcp(), &other).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never saw the revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        admin(
            &gw.base,
            a,
            reqwest::Method::GET,
            "/revocations/svc-es256",
            None
        )
        .await
        .1["revoked"],
        true
    );
    assert_eq!(
        init(&gw.mcp(), token).await.status,
        StatusCode::OK,
        "others unaffected"
    );
    // Lifted: the same session works again (it was refused, never destroyed).
    assert_eq!(
        admin(
            &gw.base,
            a,
            reqwest::Method::DELETE,
            "/revocations/svc-es256",
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin(
            &gw.base,
            a,
            reqwest::Method::DELETE,
            "/revocations/svc-es256",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while init(&replica.mcp(), &other).await.status != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never saw the lifting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    session
        .call("demo__search_files", json!({"query": "vpn"}))
        .await;
    // The token is re-read at each call; a short one is refused, not used.
    std::fs::write(dir.join("admin-token"), "short").expect("write");
    let (st, _) = admin(
        &gw.base,
        "short",
        reqwest::Method::GET,
        "/revocations/x",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
}

/// Replicas on different hosts share the directory through PostgreSQL: each replica here
/// has its own store file, as on separate hosts, and one database for the directory. A
/// revoke on one is refused by the other within seconds; a reinstatement reaches back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_reaches_replicas_on_other_hosts_through_postgres() {
    let port = free_port();
    let db = format!("gatehouse_directory_e2e_{port}");
    fresh_database(&db).await;
    let dir = std::env::temp_dir().join(format!("gatehouse-directory-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let admin_token = "admin-token-for-the-directory-test-0123456789";
    std::fs::write(dir.join("admin.token"), admin_token).expect("token");
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let yaml = format!(
        "{}admin: {{token: \"file:{t}\"}}\ndirectory: {{postgres: \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"}}\n",
        config(&idp, true),
        t = dir.join("admin.token").display(),
    );
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let a = start_gateway_at(cfg.clone(), port, true).await;
    let b = start_gateway_at(cfg, 0, true).await;
    let token = idp.token("svc-es256", "mcp:tools", None).await;
    assert_eq!(init(&b.mcp(), &token).await.status, StatusCode::OK);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/admin/v1/revocations", a.base))
        .bearer_auth(admin_token)
        .header("content-type", "application/json")
        .body(json!({"subject": "svc-es256"}).to_string())
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        init(&a.mcp(), &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while init(&b.mcp(), &token).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica never saw the revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Lifted on the other replica: the first one serves again.
    let r = http
        .delete(format!("{}/admin/v1/revocations/svc-es256", b.base))
        .bearer_auth(admin_token)
        .send()
        .await
        .expect("reinstate");
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while init(&a.mcp(), &token).await.status != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the first replica never saw the reinstatement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
