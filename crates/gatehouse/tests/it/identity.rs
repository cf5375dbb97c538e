//! The gateway as an OAuth 2.1 resource server, against a real OpenID provider
//! (npm oidc-provider) issuing RS256 and ES256 JWTs and opaque tokens: protected-resource
//! metadata, challenges, principals, session binding, and the attacks each control stops.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;
use std::time::Duration;

use crate::common::oauth::{
    Idp, admin, api, assemble, config, connect, init, parts, recording_upstream, with_token,
};
use crate::common::{
    Gw, Mcp, Reply, free_port, fresh_database, gatehouse_bin, last_json, peers, python, repo,
    run_ok, start_gateway, start_gateway_at,
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
async fn the_clients_token_never_reaches_an_upstream() {
    let (up_url, seen) = recording_upstream().await;
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let mut yaml =
        config(&idp, false).replace("virtual_servers:\n  ops:\n    upstreams: [demo]\n", "");
    yaml.push_str(&format!(
        "upstreams:\n  rec:\n    url: {up_url}\n    headers:\n      Authorization: \"Bearer upstream-own-credential\"\n"
    ));
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    let token = idp.token("svc-reporting", "mcp:tools", None).await;
    let c = connect(&gw.mcp(), &token).await;
    assert_eq!(
        c.call("rec__whoami", json!({})).await["content"][0]["text"],
        "ok"
    );

    let seen = seen.lock().expect("lock");
    assert!(
        seen.len() >= 3,
        "handshake, list and call reached the upstream"
    );
    for headers in seen.iter() {
        let auth: Vec<&str> = headers
            .get_all("authorization")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(
            auth,
            ["Bearer upstream-own-credential"],
            "only the upstream's own credential"
        );
        for (name, value) in headers {
            let v = value.to_str().unwrap_or("");
            assert!(!v.contains(&token), "the client's token leaked in {name}");
        }
        assert!(
            headers
                .get("mcp-session-id")
                .is_none_or(|v| v.to_str().unwrap_or("") != c.session.clone().unwrap_or_default())
        );
    }
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_get_the_gateways_own_client_credentials_token() {
    let (up_url, seen) = recording_upstream().await;
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let secret = std::env::temp_dir().join(format!("gatehouse-upstream-secret-{gw_port}"));
    std::fs::write(&secret, "upstream-secret\n").expect("write");
    let mut yaml =
        config(&idp, false).replace("virtual_servers:\n  ops:\n    upstreams: [demo]\n", "");
    yaml.push_str(&format!(
        "upstreams:\n  rec:\n    url: {up_url}\n    client_credentials:\n      token_url: {iss}/token\n      client_id: gatehouse-upstream\n      client_secret: \"file:{secret}\"\n      scope: mcp:tools\n      resource: {up_url}\n",
        iss = idp.issuer(),
        secret = secret.display()
    ));
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    let token = idp.token("svc-reporting", "mcp:tools", None).await;
    let c = connect(&gw.mcp(), &token).await;
    for _ in 0..3 {
        assert_eq!(
            c.call("rec__whoami", json!({})).await["content"][0]["text"],
            "ok"
        );
    }
    let seen = seen.lock().expect("lock");
    let mut jtis = std::collections::BTreeSet::new();
    for headers in seen.iter() {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .expect("the upstream gets a credential");
        let upstream_token = auth.strip_prefix("Bearer ").expect("bearer");
        assert_ne!(upstream_token, token, "never the client's token");
        let (_, claims, _) = parts(upstream_token);
        assert_eq!(
            claims["aud"],
            up_url.as_str(),
            "a token for this upstream (RFC 8707)"
        );
        assert_eq!(
            claims["client_id"], "gatehouse-upstream",
            "issued to the gateway itself"
        );
        jtis.insert(claims["jti"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(jtis.len(), 1, "one token, reused until it nears expiry");
    let _ = std::fs::remove_file(&secret);
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_for_a_user_carry_a_token_exchanged_for_theirs() {
    let (up_url, seen) = recording_upstream().await;
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-exchange-{gw_port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("secret"), "upstream-secret\n").expect("write");
    let pepper = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";
    let mut yaml =
        config(&idp, false).replace("virtual_servers:\n  ops:\n    upstreams: [demo]\n", "");
    yaml.push_str(&format!(
        "api_keys:\n  pepper: \"{pepper}\"\nstore:\n  sqlite: {db}\nupstreams:\n  rec:\n    url: {up_url}\n    client_credentials:\n      token_url: {iss}/token\n      client_id: gatehouse-upstream\n      client_secret: \"file:{secret}\"\n      resource: {up_url}\n      token_exchange: true\n",
        iss = idp.issuer(),
        secret = dir.join("secret").display(),
        db = dir.join("gatehouse.db").display(),
    ));
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    let alice = idp.token("svc-reporting", "mcp:tools", None).await;
    let bob = idp.token("svc-es256", "mcp:tools", None).await;
    let (a, b) = (
        connect(&gw.mcp(), &alice).await,
        connect(&gw.mcp(), &bob).await,
    );
    for c in [&a, &a, &b] {
        assert_eq!(
            c.call("rec__whoami", json!({})).await["content"][0]["text"],
            "ok"
        );
    }

    // An opaque token this issuer will not exchange: the call fails, and the gateway does
    // not fall back to its own token.
    let opaque = idp.token("svc-opaque", "mcp:tools", None).await;
    let o = connect(&gw.mcp(), &opaque).await;
    let r = o
        .request(
            "tools/call",
            json!({"name": "rec__whoami", "arguments": {}}),
        )
        .await;
    assert!(r.messages[0].get("error").is_some(), "{:?}", r.messages);
    // An API key has no user token to exchange: refused before the upstream.
    let store = gatehouse_store::SqliteKeyStore::open(&dir.join("gatehouse.db")).expect("store");
    let keys = gatehouse_auth::ApiKeys::new(&base64_decode(pepper), std::sync::Arc::new(store));
    let spec = gatehouse_auth::KeySpec {
        principal: "svc-batch".into(),
        app: "batch".into(),
        ..Default::default()
    };
    let key = keys.create(&spec, 1, None).expect("key").key;
    let mut k = with_token(&Mcp::new(&gw.mcp()), &key);
    let r = k.post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "batch", "version": "1"}}})).await;
    k.session = r
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let r = k
        .request(
            "tools/call",
            json!({"name": "rec__whoami", "arguments": {}}),
        )
        .await;
    assert!(
        r.messages[0]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("on behalf of users"),
        "{:?}",
        r.messages
    );

    // The IdP dies: a user whose token was already exchanged keeps working until that token
    // nears expiry; one who needs an exchange gets an error — no fallback — and the gateway
    // stays up.
    let bob_again = idp.token("svc-es256", "mcp:tools", None).await;
    let b2 = connect(&gw.mcp(), &bob_again).await;
    let mut idp = idp;
    idp.child.kill().await.expect("stop the IdP");
    let r = b2
        .request(
            "tools/call",
            json!({"name": "rec__whoami", "arguments": {}}),
        )
        .await;
    assert!(r.messages[0].get("error").is_some(), "{:?}", r.messages);
    assert_eq!(
        a.call("rec__whoami", json!({})).await["content"][0]["text"],
        "ok"
    );

    let seen = seen.lock().expect("lock");
    let mut calls = Vec::new();
    for headers in seen.iter() {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .expect("a credential");
        let t = auth.strip_prefix("Bearer ").expect("bearer");
        for client in [&alice, &bob, &opaque, &bob_again] {
            assert_ne!(t, client.as_str(), "never a client's token");
        }
        let (_, claims, _) = parts(t);
        assert_eq!(claims["aud"], up_url.as_str(), "only for this upstream");
        let method = headers
            .get("x-recorded-method")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if method == "tools/call" {
            assert_eq!(
                claims["act"]["sub"], "gatehouse-upstream",
                "the gateway acts"
            );
            calls.push((
                claims["sub"].as_str().unwrap_or("").to_owned(),
                claims["jti"].as_str().unwrap_or("").to_owned(),
            ));
        } else {
            assert_eq!(
                claims["sub"], "gatehouse-upstream",
                "the gateway's own traffic: {method}"
            );
            assert!(claims.get("act").is_none());
        }
    }
    let subs: Vec<&str> = calls.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subs,
        [
            "svc-reporting",
            "svc-reporting",
            "svc-es256",
            "svc-reporting"
        ],
        "each call names its user; the refused ones never arrived"
    );
    assert_eq!(
        calls[0].1, calls[1].1,
        "an exchanged token is reused while fresh"
    );
    assert_ne!(calls[0].1, calls[2].1);
    assert_eq!(calls[0].1, calls[3].1, "still the cached token");
    let _ = std::fs::remove_dir_all(&dir);
    drop(idp);
}

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

    // Reactivated, then deleted.
    scim(
        &gw.base,
        "scim-s3cret-0123456789",
        reqwest::Method::PATCH,
        &format!("/Users/{id}"),
        Some(json!({"Operations": [{"op": "replace", "value": {"active": true}}]})),
    )
    .await;
    assert_eq!(init(&gw.mcp(), &token).await.status, StatusCode::OK);
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
        init(&gw.mcp(), &token).await.status,
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
    let _ = std::fs::remove_dir_all(&dir);
    drop(idp);
}

/// The principal the pipeline hands on for a bearer token.
async fn principal_of(
    gw: &Gw,
    token: &str,
) -> std::sync::Arc<gatehouse_proxy::pipeline::Principal> {
    let cfg = gw.gw.config();
    let auth = format!("Bearer {token}");
    gatehouse_proxy::pipeline::authenticate(&gw.gw, &cfg, Some(&auth), None)
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
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let s = "scim-s3cret-0123456789";

    // Before the directory knows them: the token's groups, and the roles they grant.
    let token = idp.token("svc-reporting", "mcp:tools", None).await;
    let p = principal_of(&gw, &token).await;
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
    let p = principal_of(&gw, &token).await;
    assert!(
        p.groups.is_empty() && p.roles.is_empty(),
        "the directory's groups rule"
    );

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
    assert_eq!(groups_of(&gw, &token).await, ["analysts"]);

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
    assert_eq!(groups_of(&gw, &token).await, ["admins", "analysts"]);
    assert_eq!(
        principal_of(&gw, &token).await.roles,
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
        groups_of(&gw, &token).await,
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
    assert!(groups_of(&gw, &token).await.is_empty());
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
        init(&gw.mcp(), &token).await.status,
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
    let _ = std::fs::remove_dir_all(&dir);
    drop(idp);
}

fn base64_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_client_secret_from_the_encrypted_local_store() {
    let (up_url, seen) = recording_upstream().await;
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-secrets-it-{gw_port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("master.key"),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .expect("key");
    let yaml = format!(
        "{}secrets:\n  file: secrets.json\n  master_key: \"file:{}\"\nupstreams:\n  rec:\n    url: {up_url}\n    client_credentials:\n      token_url: {}/token\n      client_id: gatehouse-upstream\n      client_secret: \"secret:upstream-client\"\n      resource: {up_url}\n",
        config(&idp, false).replace("virtual_servers:\n  ops:\n    upstreams: [demo]\n", ""),
        dir.join("master.key").display(),
        idp.issuer()
    );
    let cfg_path = dir.join("gatehouse.yaml");
    std::fs::write(&cfg_path, yaml).expect("write");

    let mut set = Command::new(gatehouse_bin());
    set.args(["secrets", "--config"])
        .arg(&cfg_path)
        .args(["set", "upstream-client"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = set.spawn().expect("secrets set");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"upstream-secret\n").await.expect("write");
    }
    assert!(child.wait().await.expect("wait").success());
    let stored = std::fs::read_to_string(dir.join("secrets.json")).expect("store file");
    assert!(
        stored.contains("upstream-client") && !stored.contains("upstream-secret"),
        "stored sealed"
    );
    let listed = run_ok(
        Command::new(gatehouse_bin())
            .args(["secrets", "--config"])
            .arg(&cfg_path)
            .arg("list"),
        30,
    )
    .await;
    assert_eq!(listed.trim(), "upstream-client");

    let cfg = gatehouse_proxy::Config::load(&cfg_path).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;
    let c = connect(
        &gw.mcp(),
        &idp.token("svc-reporting", "mcp:tools", None).await,
    )
    .await;
    assert_eq!(
        c.call("rec__whoami", json!({})).await["content"][0]["text"],
        "ok"
    );
    let seen = seen.lock().expect("lock");
    let auth = seen
        .last()
        .and_then(|h| h.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .expect("credential")
        .to_owned();
    let (_, claims, _) = parts(auth.strip_prefix("Bearer ").expect("bearer"));
    assert_eq!(
        claims["client_id"], "gatehouse-upstream",
        "the IdP accepted the secret from the store"
    );
    let _ = std::fs::remove_dir_all(&dir);
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
