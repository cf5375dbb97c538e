//! The gateway as authorization server (the façade) and per-user upstream OAuth, against a
//! real OpenID provider (npm oidc-provider) and the official SDK clients: sign-in through
//! the gateway, gateway-issued tokens, refresh rotation, and the attacks each control
//! stops (consent links for upstream accounts: `consent.rs`).

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use crate::common::oauth::{Idp, admin, assemble, config, init, parts};
use crate::common::{
    Gw, free_port, fresh_database, last_json, peers, python, repo, run_ok, start_gateway_at,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

const FACADE_ADMIN: &str = "admin-token-for-the-facade-test-0123456789";

/// A gateway that runs the authorization-server façade: clients register and sign in at
/// the gateway, which sends the user to the IdP and issues its own tokens.
async fn facade_setup() -> (Idp, Gw, std::path::PathBuf) {
    facade_setup_with("", &[]).await
}

/// [`facade_setup`] with more lines in the `authorization_server` section and more
/// environment for the IdP.
pub(crate) async fn facade_setup_with(
    extra: &str,
    idp_env: &[(&str, &str)],
) -> (Idp, Gw, std::path::PathBuf) {
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start_with(free_port(), &resource, "a", idp_env).await;
    let dir = std::env::temp_dir().join(format!("gatehouse-facade-{gw_port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("idp-secret"), "gatehouse-secret").expect("secret");
    std::fs::write(dir.join("admin-token"), FACADE_ADMIN).expect("admin token");
    let store = dir.join("gatehouse.db");
    let facade = format!(
        "  authorization_server:\n{extra}    redirect_uris: [\"http://127.0.0.1/callback\", \"http://127.0.0.1/cb\"]\n    access_token_ttl_secs: 300\n    login: {{issuer: idp, client_id: gatehouse, client_secret: \"file:{}\"}}\nstore: {{sqlite: {}}}\naudit: {{durable_all: true}}\nadmin: {{token: \"file:{}\"}}\nconsole: {{viewers: [analyst]}}\nvirtual_servers:\n",
        dir.join("idp-secret").display(),
        store.display(),
        dir.join("admin-token").display()
    );
    let yaml = config(&idp, true).replacen("virtual_servers:\n", &facade, 1);
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    (idp, gw, store)
}

async fn facade_login(gw: &Gw, mode: &str) -> Value {
    facade_login_as(gw, mode, "carol").await
}

pub(crate) async fn facade_login_as(gw: &Gw, mode: &str, user: &str) -> Value {
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("facade_login.mjs"))
            .args([gw.base.as_str(), mode, user]),
        60,
    )
    .await;
    last_json(&out)
}

pub(crate) async fn form_post(url: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn audit_methods(store: &std::path::Path) -> Vec<String> {
    let db = rusqlite::Connection::open(store).expect("store");
    let mut st = db
        .prepare("SELECT json_extract(body, '$.method') FROM audit_events ORDER BY chain, seq")
        .expect("query");
    st.query_map([], |r| r.get::<_, Option<String>>(0))
        .expect("rows")
        .filter_map(|r| r.ok().flatten())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_clients_sign_in_through_the_gateways_authorization_server() {
    // With the façade the protected-resource metadata names the gateway first: the SDKs
    // register at the gateway, the user signs in at the IdP, and the clients end up holding
    // the gateway's own token, never the IdP's.
    let (idp, gw, store) = facade_setup().await;
    let prm: Value = reqwest::get(format!("{}/.well-known/oauth-protected-resource", gw.base))
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["authorization_servers"][0], gw.base.as_str(), "{prm}");
    let meta: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gw.base
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    assert_eq!(meta["issuer"], gw.base.as_str());
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));

    let check = |v: &Value, user: &str| {
        assert_eq!(v["iss"], gw.base.as_str(), "a gateway token: {v}");
        assert_ne!(v["iss"], idp.issuer().as_str());
        assert_eq!(v["aud"], idp.resource.as_str());
        assert_eq!(v["sub"], format!("idp/{user}"), "the user who signed in");
        assert!(
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("vpn.md"),
            "{v}"
        );
    };
    for mode in ["auto", "legacy"] {
        let out = run_ok(
            Command::new(python())
                .arg(repo().join("testdata/clients/py_oauth_client.py"))
                .args([&gw.mcp(), mode, "demo__search_files", r#"{"query":"vpn"}"#]),
            120,
        )
        .await;
        check(&last_json(&out), "alice");
    }
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("ts_oauth_client.mjs"))
            .args([&gw.mcp(), "demo__search_files", r#"{"query":"vpn"}"#]),
        120,
    )
    .await;
    check(&last_json(&out), "bob");

    let methods = audit_methods(&store);
    for m in ["auth.client_registered", "auth.login", "auth.token_issued"] {
        assert!(
            methods.iter().filter(|x| *x == m).count() >= 3,
            "{m}: {methods:?}"
        );
    }
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_the_authorization_server_are_refused() {
    let (idp, gw, store) = facade_setup().await;
    // The signing key was made on first start, beside the store, readable by its owner only.
    let key = std::path::PathBuf::from(format!("{}.oauth-key.pem", store.display()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("signing key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let client_id = registration_and_authorize_refuse_forgeries(&gw).await;
    let (login, at1, rt1) = a_sign_in_and_forgeries_of_its_token(&gw).await;
    refresh_replay_revokes_the_family(&gw, &login, &at1, &rt1).await;
    codes_are_bound_to_pkce_and_single_use(&gw, &client_id).await;
    deprovisioning_reaches_sign_ins(&gw).await;

    let methods = audit_methods(&store);
    for m in [
        "auth.refresh_replayed",
        "auth.code_replayed",
        "auth.token_refreshed",
        "auth.login",
        "auth.refresh_refused",
    ] {
        assert!(methods.iter().any(|x| x == m), "{m} in {methods:?}");
    }
    drop(idp);
}

/// Registration allows only allowlisted redirect URIs; `/authorize` never redirects to an
/// unregistered one; a forged callback is refused.
async fn registration_and_authorize_refuse_forgeries(gw: &Gw) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let register = |uris: Value| {
        let http = http.clone();
        let url = format!("{}/oauth/register", gw.base);
        async move {
            let r = http
                .post(url)
                .json(&json!({"redirect_uris": uris, "token_endpoint_auth_method": "none"}))
                .send()
                .await
                .expect("register");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Registration: only allowlisted redirect URIs; no fragments, no other hosts, no
    // script schemes, no prefix stretched past the allowlisted path.
    for bad in [
        "https://evil.example/callback",
        "http://127.0.0.1:9997/cb#x",
        "javascript:alert(1)",
        "http://127.0.0.1:9997/cb/../../evil",
        "http://192.168.1.5/cb",
    ] {
        let (status, body) = register(json!([bad])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{bad}");
    }
    let (status, client) = register(json!(["http://127.0.0.1:9997/cb"])).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();

    // /authorize: an unknown client or an unregistered redirect URI gets a page, never a
    // redirect (no open redirector); a downgrade to plain PKCE goes back as an error.
    let authorize = |q: String| {
        let http = http.clone();
        let url = format!("{}/oauth/authorize?{q}", gw.base);
        async move { http.get(url).send().await.expect("authorize") }
    };
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let r = authorize(format!("response_type=code&client_id=ghc_nobody&redirect_uri=https%3A%2F%2Fevil.example%2F&code_challenge={challenge}&code_challenge_method=S256")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    let r = authorize(format!("response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fevil.example%2F&code_challenge={challenge}&code_challenge_method=S256")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "unregistered redirect");
    assert!(
        r.headers().get("location").is_none(),
        "never an open redirect"
    );
    let r = authorize(format!("response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9997%2Fcb&code_challenge={challenge}&code_challenge_method=plain&state=s1")).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        loc.starts_with("http://127.0.0.1:9997/cb?error=invalid_request")
            && loc.contains("state=s1"),
        "{loc}"
    );
    let r = authorize(format!("response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9997%2Fcb&state=s1")).await;
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        loc.contains("error=invalid_request"),
        "PKCE is required: {loc}"
    );

    // A forged or replayed callback (CSRF: a state the gateway never issued) is refused.
    let r = http
        .get(format!("{}/oauth/callback?code=abc&state=forged", gw.base))
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());

    client_id
}

/// A real sign-in, and forgeries of the gateway token it yields: its login, access and
/// refresh tokens.
async fn a_sign_in_and_forgeries_of_its_token(gw: &Gw) -> (Value, String, String) {
    // A real sign-in: the client holds a gateway token (ES256, the gateway as issuer) that
    // opens a session; the IdP's token never reaches it.
    let login = facade_login(gw, "tokens").await;
    let tokens = &login["tokens"];
    assert!(tokens.get("id_token").is_none(), "{tokens}");
    let at1 = tokens["access_token"].as_str().expect("access").to_owned();
    let rt1 = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let (h, p, sig) = parts(&at1);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(p["iss"], gw.base.as_str());
    assert_eq!(p["sub"], "idp/carol");
    assert_eq!(p["gh"]["tenant"], "acme");
    assert!(p["exp"].as_u64().expect("exp") - p["iat"].as_u64().expect("iat") <= 300);
    assert_eq!(init(&gw.mcp(), &at1).await.status, StatusCode::OK);

    // Forgeries of a gateway token: alg=none, a changed subject under the old signature,
    // HS256 keyed with the public key, and a token for another audience.
    let jwks = reqwest::get(format!("{}/oauth/jwks", gw.base))
        .await
        .expect("jwks")
        .text()
        .await
        .expect("text");
    let mut elevated = p.clone();
    elevated["sub"] = json!("idp/admin");
    elevated["gh"]["roles"] = json!(["admin"]);
    let none = assemble(&json!({"alg": "none", "typ": "at+jwt"}), &elevated, "");
    let resigned = assemble(&h, &elevated, &sig);
    let hs = {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": h["kid"]});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(elevated.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwks.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64.encode(tag.as_ref()))
    };
    let mut other_aud = p.clone();
    other_aud["aud"] = json!("https://other.example/mcp");
    let other = assemble(&h, &other_aud, &sig);
    for (name, forged) in [
        ("none", none),
        ("resigned", resigned),
        ("hs256", hs),
        ("audience", other),
    ] {
        let r = init(&gw.mcp(), &forged).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
    }

    (login, at1, rt1)
}

/// Refresh tokens rotate; a replayed one revokes the whole family.
async fn refresh_replay_revokes_the_family(gw: &Gw, login: &Value, at1: &str, rt1: &str) {
    // Refresh tokens rotate; the spent one, replayed, revokes the whole family: the new
    // refresh token and every access token of that sign-in stop working.
    let token_url = format!("{}/oauth/token", gw.base);
    let (status, t2) = form_post(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("client_id", login["client_id"].as_str().expect("id")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t2}");
    let at2 = t2["access_token"].as_str().expect("at2").to_owned();
    let rt2 = t2["refresh_token"].as_str().expect("rt2").to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(init(&gw.mcp(), &at2).await.status, StatusCode::OK);
    let (status, body) = form_post(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("client_id", login["client_id"].as_str().expect("id")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = form_post(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", login["client_id"].as_str().expect("id")),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "the family is revoked"
    );
    for t in [at1, at2.as_str()] {
        assert_eq!(init(&gw.mcp(), t).await.status, StatusCode::UNAUTHORIZED);
    }
}

/// Codes are bound to their PKCE verifier and client, and a replayed code revokes its tokens.
async fn codes_are_bound_to_pkce_and_single_use(gw: &Gw, client_id: &str) {
    let token_url = format!("{}/oauth/token", gw.base);
    // Codes: a wrong PKCE verifier is refused; another client cannot redeem a code; a code
    // redeemed twice revokes what the first redemption produced.
    let stolen = facade_login(gw, "code").await;
    let (status, body) = form_post(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", stolen["code"].as_str().expect("code")),
            ("client_id", stolen["client_id"].as_str().expect("id")),
            ("redirect_uri", "http://127.0.0.1:9997/cb"),
            (
                "code_verifier",
                "attacker-guess-attacker-guess-attacker-guess",
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    let other = facade_login(gw, "code").await;
    let (status, body) = form_post(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", other["code"].as_str().expect("code")),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9997/cb"),
            ("code_verifier", other["verifier"].as_str().expect("v")),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "another client's code: {body}"
    );
    let mine = facade_login(gw, "code").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", mine["code"].as_str().expect("code")),
        ("client_id", mine["client_id"].as_str().expect("id")),
        ("redirect_uri", "http://127.0.0.1:9997/cb"),
        ("code_verifier", mine["verifier"].as_str().expect("v")),
    ];
    let redeem = || form_post(&token_url, &form);
    let (status, first) = redeem().await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let at3 = first["access_token"].as_str().expect("at3").to_owned();
    assert_eq!(init(&gw.mcp(), &at3).await.status, StatusCode::OK);
    let (status, _) = redeem().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        init(&gw.mcp(), &at3).await.status,
        StatusCode::UNAUTHORIZED,
        "a replayed code revokes its tokens"
    );
}

/// A revoked subject's gateway tokens stop working and their refresh revokes the sign-in.
async fn deprovisioning_reaches_sign_ins(gw: &Gw) {
    let token_url = format!("{}/oauth/token", gw.base);

    // Deprovisioning reaches sign-ins: a revoked subject's access token is refused at
    // once and its next refresh revokes the sign-in instead of renewing it.
    let login = facade_login(gw, "tokens").await;
    let at = login["tokens"]["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    let rt = login["tokens"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    assert_eq!(init(&gw.mcp(), &at).await.status, StatusCode::OK);
    let (status, body) = admin(
        &gw.base,
        FACADE_ADMIN,
        reqwest::Method::POST,
        "/revocations",
        Some(json!({"subject": "carol"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(init(&gw.mcp(), &at).await.status, StatusCode::UNAUTHORIZED);
    let (status, body) = form_post(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", login["client_id"].as_str().expect("id")),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_sign_ins_and_catch_a_refresh_token_replayed_on_another_host() {
    // Two gateways behind one public URL share the façade's state in PostgreSQL and one
    // signing key: a token from one works on the other, a refresh token rotated on one and
    // replayed on the other revokes the sign-in on both.
    let port = free_port();
    let db = format!("gatehouse_facade_e2e_{port}");
    fresh_database(&db).await;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-facade-pg-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("idp-secret"), "gatehouse-secret").expect("secret");
    let facade = format!(
        "  authorization_server:\n    redirect_uris: [\"http://127.0.0.1/cb\"]\n    login: {{issuer: idp, client_id: gatehouse, client_secret: \"file:{}\"}}\n    signing_key: {}\n    postgres: \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"\nvirtual_servers:\n",
        dir.join("idp-secret").display(),
        dir.join("shared-signing-key.pem").display(),
    );
    let yaml = config(&idp, true).replacen("virtual_servers:\n", &facade, 1);
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let a = start_gateway_at(cfg.clone(), port, true).await;
    let b = start_gateway_at(cfg, 0, true).await;

    let login = facade_login(&a, "tokens").await;
    let client_id = login["client_id"].as_str().expect("id").to_owned();
    let at1 = login["tokens"]["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    let rt1 = login["tokens"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    assert_eq!(
        init(&b.mcp(), &at1).await.status,
        StatusCode::OK,
        "one key, one issuer"
    );

    let refresh = |base: String, rt: String| {
        let client_id = client_id.clone();
        async move {
            form_post(
                &format!("{base}/oauth/token"),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", &client_id),
                ],
            )
            .await
        }
    };
    let (status, t2) = refresh(b.base.clone(), rt1.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the client registered on A refreshes on B: {t2}"
    );
    let at2 = t2["access_token"].as_str().expect("at2").to_owned();
    let rt2 = t2["refresh_token"].as_str().expect("rt2").to_owned();
    assert_eq!(init(&b.mcp(), &at2).await.status, StatusCode::OK);

    // The spent token replayed on A: caught there, and the whole sign-in dies on both.
    let (status, body) = refresh(a.base.clone(), rt1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = refresh(b.base.clone(), rt2).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the rotated token is revoked too"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while init(&b.mcp(), &at2).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "B still accepts an access token of the revoked sign-in"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(init(&a.mcp(), &at1).await.status, StatusCode::UNAUTHORIZED);
    drop(idp);
}
