//! Who gets into the operator console: the admin token, console API keys (not another
//! application's), forged cookies, login CSRF, revocation, single sign-on through a real
//! OpenID provider bound to its browser, separation of duties, and a console switched off.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{create_key, free_port, gatehouse_bin, last_json, peers, run_ok};
use crate::console::{ADMIN_TOKEN, Operator, call, client, login, session_cookie};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_takes_the_admin_token_or_a_console_key_and_refuses_the_rest() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-console-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gatehouse.yaml");
    std::fs::write(&config, format!(
        "listen: 127.0.0.1:{port}\nstore: {{sqlite: {}}}\napi_keys: {{pepper: \"Y29uc29sZS10ZXN0LXBlcHBlci0wMTIzNDU2Nzg5YWJj\"}}\nadmin: {{token: \"env:CONSOLE_ADMIN\"}}\naudit: {{}}\nauthorization:\n  roles:\n    viewer: []\n    admin: []\nupstreams:\n  demo: {{command: {}, args: [demo-server]}}\n",
        dir.join("g.db").display(), gatehouse_bin())).expect("config");
    let viewer_key = create_key(&config, "svc-watch", "gatehouse-console", "viewer").await;
    let other_app = create_key(&config, "svc-other", "reporting", "admin").await;
    let _gw = crate::common::serve_config(&config, port, &[("CONSOLE_ADMIN", ADMIN_TOKEN)]).await;
    let base = format!("http://127.0.0.1:{port}");
    let json = "application/json";
    assert_eq!(
        login(
            &base,
            json!({"token": "wrong-token-0123456789"}),
            json,
            None
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&base, json!({"token": other_app}), json, None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Login CSRF: a form post from another site, or another origin, never signs in.
    assert_eq!(
        login(&base, json!({"token": ADMIN_TOKEN}), "text/plain", None)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let cross = login(
        &base,
        json!({"token": ADMIN_TOKEN}),
        json,
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let ok = login(&base, json!({"token": ADMIN_TOKEN}), json, Some(&base)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let admin = Operator {
        base: base.clone(),
        cookie: session_cookie(ok.headers()),
        csrf: String::new(),
    };
    let (_, me) = admin.get("/console/api/me").await;
    assert_eq!(
        (me["operator"].as_str(), me["role"].as_str()),
        (Some("admin"), Some("admin"))
    );
    // A tampered cookie (the role rewritten) is nobody.
    let (name, value) = admin.cookie.split_once('=').expect("pair");
    let (payload, tag) = value.split_once('.').expect("signed");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut session: Value =
        serde_json::from_slice(&b64.decode(payload).expect("b64")).expect("json");
    let key = viewer_key.clone();
    let watcher = login(&base, json!({"token": key}), json, None).await;
    assert_eq!(watcher.status(), StatusCode::OK);
    let viewer = Operator {
        base: base.clone(),
        cookie: session_cookie(watcher.headers()),
        csrf: String::new(),
    };
    assert_eq!(viewer.get("/console/api/me").await.1["role"], "viewer");
    assert_eq!(
        viewer.get("/console/api/pins").await.0,
        StatusCode::FORBIDDEN
    );
    session["sub"] = json!("svc-watch");
    session["role"] = json!("admin");
    let forged = format!("{name}={}.{tag}", b64.encode(session.to_string()));
    let forger = Operator {
        base: base.clone(),
        cookie: forged,
        csrf: String::new(),
    };
    assert_eq!(
        forger.get("/console/api/pins").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Revoking the operator (admin API) ends their console session at once.
    let revoked = client()
        .post(format!("{base}/admin/v1/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"subject": "svc-watch"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::CREATED);
    let gone = viewer.get("/console/api/inventory").await;
    assert_eq!(gone.0, StatusCode::UNAUTHORIZED, "{}", gone.1);
    // Keys made in the console are shown once and audited with the operator.
    let mut admin = admin;
    admin.csrf = me["csrf"].as_str().expect("csrf").to_owned();
    let (status, made) = admin
        .post(
            "/console/api/keys",
            json!({"principal": "svc-new", "app": "reporting", "roles": "viewer", "days": 7}),
            true,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(made["key"].as_str().expect("key").starts_with("ghk_"));
    let (_, list) = admin.get("/console/api/keys").await;
    assert!(
        !list
            .to_string()
            .contains(made["key"].as_str().expect("key")),
        "keys are never listed"
    );
    let revoke = format!(
        "/console/api/keys/{}/revoke",
        made["id"].as_str().expect("id")
    );
    assert_eq!(
        admin.post(&revoke, json!({}), true, None).await.0,
        StatusCode::OK
    );
    let (_, audit) = admin
        .get("/console/api/audit?principal=admin&limit=50")
        .await;
    let methods: Vec<&str> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["event"]["method"].as_str())
        .collect();
    for m in [
        "console.signed_in",
        "console.key_created",
        "console.key_revoked",
        "console.audit_searched",
    ] {
        assert!(methods.contains(&m), "{m}: {methods:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_binds_the_login_to_the_browser_that_started_it() {
    let (idp, gw, _store) = crate::facade::facade_setup_with("", &[]).await;
    let run = |mode: &'static str| {
        let base = gw.base.clone();
        async move {
            last_json(
                &run_ok(
                    Command::new("node")
                        .arg(peers().join("console_sso.mjs"))
                        .args([base.as_str(), mode, "carol"]),
                    60,
                )
                .await,
            )
        }
    };
    let same = run("same").await;
    assert_eq!(same["status"], 303, "{same}");
    assert_eq!(same["location"], "/console");
    // The provider's users are analysts of tenant acme: console viewers (`console.viewers`).
    assert_eq!(same["me"]["role"], "viewer", "{same}");
    assert_eq!(same["me"]["tenant"], "acme");
    assert_eq!(same["me"]["via"], "sso");
    // A login finished in a browser that did not start it (login CSRF) is refused.
    let other = run("other").await;
    assert_eq!(other["status"], 403, "{other}");
    assert!(other["me"]["operator"].is_null(), "{other}");
    // A token the trusted issuer signed, pasted in: the same principal mapping, so the
    // service's `analyst` group makes it a viewer of tenant acme.
    let jwt = idp.token("svc-reporting", "mcp:tools", None).await;
    let r = login(&gw.base, json!({"token": jwt}), "application/json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let op = Operator {
        base: gw.base.clone(),
        cookie: session_cookie(r.headers()),
        csrf: String::new(),
    };
    let (_, me) = op.get("/console/api/me").await;
    assert_eq!(
        (
            me["role"].as_str(),
            me["tenant"].as_str(),
            me["via"].as_str()
        ),
        (Some("viewer"), Some("acme"), Some("token")),
        "{me}"
    );
    // A token for another audience is nobody.
    let wrong = idp
        .token("svc-reporting", "mcp:tools", Some("http://127.0.0.1:1/mcp"))
        .await;
    let r = login(&gw.base, json!({"token": wrong}), "application/json", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Separation of duties holds in the console as in the API: the operator whose own call
/// waits cannot approve it, approver role or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_cannot_approve_their_own_call_in_the_console() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-console-sod-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gatehouse.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:{port}\nstore: {{sqlite: {}}}\napi_keys: {{pepper: \"Y29uc29sZS10ZXN0LXBlcHBlci0wMTIzNDU2Nzg5YWJj\"}}\nauthorization:\n  roles:\n    approver: {{tools: [demo.deploy_service], approval: true}}\nupstreams:\n  demo: {{command: {}, args: [demo-server]}}\n",
        dir.join("g.db").display(),
        gatehouse_bin()
    );
    std::fs::write(&config, yaml).expect("config");
    let key = create_key(&config, "ops", "gatehouse-console", "approver").await;
    let _gw = crate::common::serve_config(&config, port, &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    let deploy = call(
        "demo__deploy_service",
        json!({"service": "api", "version": "9", "environment": "production"}),
    );
    let mut held = Value::Null;
    for _ in 0..100 {
        held = crate::cli::app_request(
            &base,
            &key,
            "gatehouse-console",
            "tools/call",
            deploy.clone(),
        )
        .await;
        if held["result"]["_meta"]["gatehouse/approval"]["id"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = held["result"]["_meta"]["gatehouse/approval"]["id"]
        .as_str()
        .expect("held")
        .to_owned();
    let signed = login(&base, json!({"token": key}), "application/json", None).await;
    assert_eq!(signed.status(), StatusCode::OK);
    let mut me = Operator {
        base: base.clone(),
        cookie: session_cookie(signed.headers()),
        csrf: String::new(),
    };
    let (_, who) = me.get("/console/api/me").await;
    assert_eq!(who["role"], "approver", "{who}");
    me.csrf = who["csrf"].as_str().expect("csrf").to_owned();
    let (_, inbox) = me.get("/console/api/approvals").await;
    assert_eq!(inbox["approvals"][0]["id"], id.as_str(), "{inbox}");
    let (status, refused) = me
        .post(
            &format!("/console/api/approvals/{id}/approve"),
            json!({"reason": "mine"}),
            true,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("separation of duties"),
        "{refused}"
    );
}

/// `console.enabled: false`: the console does not exist, whatever door is knocked on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_console_is_not_there() {
    let yaml = format!(
        "dev_mode: true\nadmin: {{token: \"env:GATEHOUSE_UNUSED_ADMIN\"}}\nconsole: {{enabled: false}}\nupstreams:\n  demo: {{command: {}, args: [demo-server]}}\n",
        gatehouse_bin()
    );
    // The token for the admin variable only: the demo upstream inherits PATH, HOME and
    // TMPDIR through the same lookup.
    let env = |k: &str| {
        (k == "GATEHOUSE_UNUSED_ADMIN")
            .then(|| ADMIN_TOKEN.to_owned())
            .or_else(|| std::env::var(k).ok())
    };
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &env).expect("config");
    let gw = crate::common::start_gateway_with(cfg, false).await;
    for path in [
        "/console",
        "/console/app.js",
        "/console/api/me",
        "/console/login?ticket=x",
    ] {
        let r = client()
            .get(format!("{}{path}", gw.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = login(
        &gw.base,
        json!({"token": ADMIN_TOKEN}),
        "application/json",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
