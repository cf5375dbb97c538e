//! The gateway as an OAuth 2.1 resource server, against a real OpenID provider
//! (npm oidc-provider) issuing RS256 and ES256 JWTs and opaque tokens: protected-resource
//! metadata, challenges, principals, session binding, and the attacks each control stops.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use crate::common::oauth::{Idp, assemble, config, connect, init, parts, with_token};
use crate::common::{
    Gw, Mcp, Reply, free_port, gatehouse_bin, last_json, peers, python, repo, run_ok,
    start_gateway, start_gateway_at,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

async fn setup() -> (Idp, Gw) {
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let cfg = gatehouse_proxy::Config::from_yaml(&config(&idp, true), &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    (idp, gw)
}

fn challenge(r: &Reply) -> String {
    r.headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_idp_tokens_metadata_challenges_and_principals() {
    let (idp, gw) = setup().await;

    // No token: 401 naming the protected-resource metadata (RFC 9728).
    let r = Mcp::new(&gw.mcp())
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let meta_url = format!("{}/.well-known/oauth-protected-resource/mcp", gw.base);
    assert_eq!(
        challenge(&r),
        format!("Bearer resource_metadata=\"{meta_url}\"")
    );
    let meta: Value = reqwest::get(&meta_url)
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(meta["resource"], idp.resource);
    assert_eq!(meta["authorization_servers"], json!([idp.issuer()]));
    assert_eq!(meta["scopes_supported"], json!(["mcp:tools"]));
    let vs: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/s/ops/mcp",
        gw.base
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    assert_eq!(vs["resource"], format!("{}/s/ops/mcp", gw.base));

    // RS256 and ES256 tokens from the IdP work; the principal comes from the claims.
    let rs = idp.token("svc-reporting", "mcp:tools", None).await;
    assert_eq!(parts(&rs).0["alg"], "RS256");
    let c = connect(&gw.mcp(), &rs).await;
    let out = c.call("demo__search_files", json!({"query": "vpn"})).await;
    assert!(
        out["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md")
    );
    let es = idp.token("svc-es256", "mcp:tools", None).await;
    assert_eq!(parts(&es).0["alg"], "ES256");
    let c2 = connect(&gw.mcp(), &es).await;
    c2.call("demo__search_files", json!({"query": "deploy"}))
        .await;

    // Opaque tokens are checked by introspection.
    let opaque = idp.token("svc-opaque", "mcp:tools", None).await;
    assert_ne!(opaque.split('.').count(), 3);
    let c3 = connect(&gw.mcp(), &opaque).await;
    c3.call("demo__search_files", json!({"query": "q3"})).await;

    // A valid token without the required scope: 403 insufficient_scope naming it.
    let admin_only = idp.token("svc-reporting", "mcp:admin", None).await;
    let r = init(&gw.mcp(), &admin_only).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let ch = challenge(&r);
    assert!(
        ch.contains("error=\"insufficient_scope\"") && ch.contains("scope=\"mcp:tools\""),
        "{ch}"
    );
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_tokens_and_sessions_are_refused() {
    let (idp, gw) = setup().await;
    let good = idp.token("svc-reporting", "mcp:tools", None).await;
    let owner = connect(&gw.mcp(), &good).await;
    let (h, p, sig) = parts(&good);
    let refused = |r: &Reply, what: &str| {
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {:?}",
            r.messages
        );
        assert!(
            challenge(r).contains("error=\"invalid_token\""),
            "{what}: {}",
            challenge(r)
        );
    };

    // alg=none, with and without a signature.
    let mut none = h.clone();
    none["alg"] = json!("none");
    refused(&init(&gw.mcp(), &assemble(&none, &p, "")).await, "alg none");
    refused(
        &init(&gw.mcp(), &assemble(&none, &p, &sig)).await,
        "alg none with signature",
    );

    // HS256 signed with the issuer's RSA public key (the key-confusion attack).
    let jwks: Value = reqwest::get(format!("{}/jwks", idp.issuer()))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let rsa = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kty"] == "RSA")
        .expect("rsa key")
        .clone();
    let mut hs = h.clone();
    hs["alg"] = json!("HS256");
    for secret in [
        rsa.to_string().into_bytes(),
        B64.decode(rsa["n"].as_str().expect("n")).expect("n"),
    ] {
        let signing = format!(
            "{}.{}",
            B64.encode(hs.to_string()),
            B64.encode(p.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let mac = B64.encode(aws_lc_rs::hmac::sign(&key, signing.as_bytes()).as_ref());
        refused(
            &init(&gw.mcp(), &format!("{signing}.{mac}")).await,
            "HS256 with the public key",
        );
    }

    // Claims changed after signing: another tenant, another issuer, another subject.
    for (claim, value) in [
        ("tid", json!("acme-admin")),
        ("iss", json!("http://127.0.0.1:1")),
        ("sub", json!("svc-admin")),
    ] {
        let mut forged = p.clone();
        forged[claim] = value;
        refused(&init(&gw.mcp(), &assemble(&h, &forged, &sig)).await, claim);
    }

    // Properly signed, but for another resource (RFC 8707 audience) or another tenant.
    let elsewhere = idp
        .token("svc-reporting", "mcp:tools", Some("http://127.0.0.1:1/mcp"))
        .await;
    refused(&init(&gw.mcp(), &elsewhere).await, "wrong audience");
    let globex = idp.token("svc-other-tenant", "mcp:tools", None).await;
    refused(&init(&gw.mcp(), &globex).await, "other tenant");

    // Expired (4 s tokens, no skew allowed in this config).
    let short = idp.token("svc-short", "mcp:tools", None).await;
    assert_eq!(init(&gw.mcp(), &short).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(5100)).await;
    refused(&init(&gw.mcp(), &short).await, "expired");

    // Session hijack: a valid session id presented with another principal's token.
    let thief_token = idp.token("svc-es256", "mcp:tools", None).await;
    let mut thief = with_token(&owner, &thief_token);
    thief.session.clone_from(&owner.session);
    let r = thief
        .request(
            "tools/call",
            json!({"name": "demo__search_files", "arguments": {"query": "x"}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a session is only good for the principal that opened it"
    );
    let get = thief
        .http
        .get(&thief.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", thief.session.clone().expect("session"))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), StatusCode::NOT_FOUND, "nor its stream");
    // The owner still works.
    owner
        .call("demo__search_files", json!({"query": "vpn"}))
        .await;

    // Garbage and wrong schemes.
    for bad in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c",
        "Bearer not-a-token",
    ] {
        let r = reqwest::Client::new()
            .post(gw.mcp())
            .header("content-type", "application/json")
            .header("authorization", bad)
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_does_not_hammer_the_idp_and_rotation_is_followed() {
    let (idp, gw) = setup().await;
    let authn = gw.gw.authenticator().expect("auth configured");
    let old = idp.token("svc-reporting", "mcp:tools", None).await;
    connect(&gw.mcp(), &old).await;
    let after_first = authn.jwks_fetches("idp");
    assert_eq!(after_first, 1);

    // 60 tokens naming keys that do not exist, as fast as possible.
    let (h, p, sig) = parts(&old);
    let started = std::time::Instant::now();
    for i in 0..60 {
        let mut fake = h.clone();
        fake["kid"] = json!(format!("made-up-{i}"));
        let r = init(&gw.mcp(), &assemble(&fake, &p, &sig)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let flood = authn.jwks_fetches("idp") - after_first;
    // Refetches are limited to one per second (jwks_min_refetch_secs: 1), however many
    // unknown kids arrive: the bound follows the flood's duration on a loaded machine.
    let secs = started.elapsed().as_secs();
    assert!(
        flood <= secs + 2 && flood < 60,
        "JWKS fetched {flood} times for 60 unknown kids in {secs} s"
    );

    // The IdP rotates its keys (restart with new ones): new tokens verify after one refetch,
    // tokens signed with the retired key stop working.
    let Idp {
        port,
        resource,
        mut child,
    } = idp;
    let _ = child.kill().await;
    let _ = child.wait().await;
    let idp = Idp::start(port, &resource, "b").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = idp.token("svc-reporting", "mcp:tools", None).await;
    assert_eq!(parts(&new).0["kid"], "rsa-b");
    connect(&gw.mcp(), &new).await;
    let r = init(&gw.mcp(), &old).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the retired key no longer verifies"
    );

    // The IdP goes down: cached keys still verify JWTs; opaque tokens cannot be checked and
    // get 503 (never a pass).
    let opaque = idp.token("svc-opaque", "mcp:tools", None).await;
    connect(&gw.mcp(), &opaque).await;
    let Idp { mut child, .. } = idp;
    let _ = child.kill().await;
    let _ = child.wait().await;
    connect(&gw.mcp(), &new).await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // introspection cache expires
    let r = init(&gw.mcp(), &opaque).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        r.messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_opaque_tokens_stop_working() {
    let (idp, gw) = setup().await;
    let opaque = idp.token("svc-opaque", "mcp:tools", None).await;
    connect(&gw.mcp(), &opaque).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/token/revocation", idp.issuer()))
        .basic_auth("svc-opaque", Some("opaque-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={opaque}"))
        .send()
        .await
        .expect("revoke");
    assert!(resp.status().is_success());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = init(&gw.mcp(), &opaque).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_clients_complete_the_oauth_flow() {
    // The SDK finds the protected-resource metadata from the gateway's 401, registers
    // itself at the IdP, runs authorization code + PKCE with the gateway as resource, and
    // calls a tool with the token; the IdP's login and consent pages are answered over HTTP.
    let (idp, gw) = setup().await;
    for (mode, protocol) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let out = run_ok(
            Command::new(python())
                .arg(repo().join("testdata/clients/py_oauth_client.py"))
                .args([&gw.mcp(), mode, "demo__search_files", r#"{"query":"vpn"}"#]),
            120,
        )
        .await;
        let v = last_json(&out);
        assert_eq!(v["protocol"], protocol);
        assert_eq!(
            v["aud"],
            idp.resource.as_str(),
            "a token for this gateway (RFC 8707)"
        );
        assert_eq!(v["sub"], "alice", "the user who logged in");
        assert!(
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("vpn.md"),
            "{v}"
        );
    }
    // The TypeScript SDK client, through its OAuthClientProvider and finishAuth.
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("ts_oauth_client.mjs"))
            .args([&gw.mcp(), "demo__search_files", r#"{"query":"vpn"}"#]),
        120,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["aud"], idp.resource.as_str());
    assert_eq!(v["sub"], "bob");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md"),
        "{v}"
    );
    drop(idp);
}

/// An issuer whose key this test holds, to sign tokens a real IdP would never issue.
struct OwnIssuer {
    issuer: String,
    key: jsonwebtoken::EncodingKey,
}

async fn own_issuer() -> OwnIssuer {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let point = pair.public_key().as_ref().to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": "own", "alg": "ES256", "use": "sig"}]}).to_string();
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}).to_string();
    let app = axum::Router::new()
        .route(
            "/jwks",
            axum::routing::get(move || std::future::ready(jwks.clone())),
        )
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || std::future::ready(discovery.clone())),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = jsonwebtoken::EncodingKey::from_ec_der(pair.to_pkcs8v1().expect("pkcs8").as_ref());
    OwnIssuer { issuer, key }
}

impl OwnIssuer {
    fn sign(&self, claims: Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("own".into());
        jsonwebtoken::encode(&h, &claims, &self.key).expect("sign")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_claims_and_algorithm_confusion_with_a_trusted_key() {
    let own = own_issuer().await;
    let resource = "https://gw.test/mcp";
    let yaml = format!(
        "auth:\n  resource: {resource}\n  issuers:\n    own:\n      issuer: {}\n      algorithms: [ES256]\n      clock_skew_secs: 30\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        own.issuer,
        gatehouse_bin()
    );
    let gw = start_gateway(&yaml).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let claims = |extra: Value| {
        let mut c = json!({"iss": own.issuer, "sub": "carol", "aud": resource, "iat": now, "exp": now + 300});
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    // The baseline is accepted, so each refusal below is about the one thing changed.
    assert_eq!(
        init(&gw.mcp(), &own.sign(claims(json!({})))).await.status,
        StatusCode::OK
    );
    for (what, extra) in [
        (
            "not yet valid (nbf beyond the skew)",
            json!({"nbf": now + 600}),
        ),
        ("issued in the future", json!({"iat": now + 600})),
        (
            "expired beyond the skew",
            json!({"exp": now - 120, "iat": now - 400}),
        ),
        ("no expiry", json!({"exp": Value::Null})),
        (
            "audience of another resource",
            json!({"aud": "https://other.test/mcp"}),
        ),
    ] {
        let r = init(&gw.mcp(), &own.sign(claims(extra))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
    }
    // Within the configured skew is fine.
    assert_eq!(
        init(&gw.mcp(), &own.sign(claims(json!({"nbf": now + 10}))))
            .await
            .status,
        StatusCode::OK
    );
    // The same trusted key under another algorithm name is refused (ES384 is not allowed).
    let good = own.sign(claims(json!({})));
    let (_, payload, sig) = parts(&good);
    let header = json!({"alg": "ES384", "kid": "own", "typ": "JWT"});
    assert_eq!(
        init(&gw.mcp(), &assemble(&header, &payload, &sig))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_data_asks_an_oauth_caller_to_step_up() {
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-stepup-{gw_port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("tenant.cedar"),
        "@id(\"acme-staff\")\npermit (principal, action, resource) when { principal has tenant && principal.tenant == \"acme\" };\n",
    )
    .expect("policy");
    let yaml = config(&idp, true).replace(
        "args: [demo-server]\n",
        "args: [demo-server]\n    tools:\n      modify_permissions: {classification: restricted}\nauthorization:\n  policies: [tenant.cedar]\n  classification:\n    restricted:\n      step_up: {acr: [mfa], max_age: 600}\n",
    );
    let cfg = gatehouse_proxy::Config::from_yaml_in(&yaml, &|_| None, &dir).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    let token = idp.token("svc-reporting", "mcp:tools", None).await;
    let c = connect(&gw.mcp(), &token).await;
    // Internal data: the tenant's policy is enough.
    let out = c.call("demo__search_files", json!({"query": "vpn"})).await;
    assert!(
        out["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md"),
        "{out}"
    );
    // Restricted data: a token without `acr=mfa` gets the RFC 9470 challenge.
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "demo__modify_permissions", "arguments": {"user": "ana", "role": "admin"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.messages);
    let ch = challenge(&r);
    assert!(
        ch.contains("error=\"insufficient_user_authentication\""),
        "{ch}"
    );
    assert!(
        ch.contains("acr_values=\"mfa\"") && ch.contains("max_age=600"),
        "{ch}"
    );
    assert!(ch.contains("resource_metadata=\""), "{ch}");
    assert_eq!(r.error_code(), -32003);
    drop(idp);
}
