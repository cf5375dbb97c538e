//! Upstream credentials, never the client's: the client's token stops at the gateway, an
//! upstream gets the gateway's own client-credentials token, calls made for a user carry a
//! token exchanged for theirs (RFC 8693), and client secrets come from the encrypted local
//! store.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;

use crate::common::oauth::{Idp, config, connect, parts, recording_upstream, with_token};
use crate::common::{Mcp, base64_decode, free_port, gatehouse_bin, run_ok, start_gateway_at};
use base64::Engine;
use serde_json::json;
use tokio::process::Command;

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
