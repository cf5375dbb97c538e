//! Per-user upstream OAuth through the façade: a user connects their own upstream account
//! through a consent link bound to their sign-in, their calls carry their own token, sealed
//! at rest, refreshed without asking again; a link opened by someone else is refused.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use crate::common::oauth::{Idp, config, connect, parts, recording_upstream};
use crate::common::{Gw, Mcp, free_port, last_json, peers, run_ok, start_gateway_at};
use crate::facade::{audit_methods, facade_login_as};
use base64::Engine;
use serde_json::{Value, json};
use tokio::process::Command;

/// Opens a consent link as `user` in a scripted browser; the gateway's last page.
async fn open_consent(url: &str, user: &str) -> Value {
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("consent.mjs"))
            .args([url, user]),
        60,
    )
    .await;
    last_json(&out)
}

fn bearer_payload(h: &reqwest::header::HeaderMap) -> Value {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").unwrap_or_default();
    parts(token).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_connect_their_own_upstream_accounts_through_consent() {
    let (up_url, seen) = recording_upstream().await;
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let idp = Idp::start(free_port(), &resource, "a").await;
    let dir = std::env::temp_dir().join(format!("gatehouse-consent-{gw_port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("idp-secret"), "gatehouse-secret").expect("secret");
    std::fs::write(dir.join("saas-secret"), "saas-secret").expect("secret");
    std::fs::write(
        dir.join("token-key"),
        base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
    )
    .expect("key");
    let store = dir.join("gatehouse.db");
    let yaml = config(&idp, false).replace("virtual_servers:\n  ops:\n    upstreams: [demo]\n", "")
        + &format!(
            "  authorization_server:\n    redirect_uris: [\"http://127.0.0.1/cb\"]\n    login: {{issuer: idp, client_id: gatehouse, client_secret: \"file:{idp_secret}\"}}\n    token_key: \"file:{key}\"\n    upstreams:\n      rec:\n        authorization_endpoint: {iss}/auth\n        token_endpoint: {iss}/token\n        client_id: gatehouse-saas\n        client_secret: \"file:{saas}\"\n        scopes: [mcp:tools]\nstore: {{sqlite: {db}}}\naudit: {{durable_all: true}}\nupstreams:\n  rec:\n    url: {up_url}\n",
            idp_secret = dir.join("idp-secret").display(),
            key = dir.join("token-key").display(),
            saas = dir.join("saas-secret").display(),
            iss = idp.issuer(),
            db = store.display(),
        );
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_at(cfg, gw_port, true).await;

    let carol_at = facade_login_as(&gw, "tokens", "carol").await["tokens"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let carol = connect(&gw.mcp(), &carol_at).await;
    let call = whoami;
    // No account connected yet: a URL elicitation with a one-use consent link; the
    // upstream is not called.
    let calls_before = seen.lock().expect("lock").len();
    let r = call(&carol).await;
    assert_eq!(r["error"]["code"], -32042, "{r}");
    let link = r["error"]["data"]["elicitations"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/oauth/connect?ticket=", gw.base)),
        "{link}"
    );
    assert_eq!(seen.lock().expect("lock").len(), calls_before);

    // Someone else opens carol's link: they must sign in at the IdP, and as someone else
    // they are refused. The link is spent.
    let page = open_consent(&link, "mallory").await;
    assert_eq!(page["status"], 403, "{page}");
    assert!(
        page["body"].as_str().unwrap_or("").contains("someone else"),
        "{page}"
    );
    let page = open_consent(&link, "carol").await;
    assert_eq!(page["status"], 400, "a spent link: {page}");

    // Carol connects through a fresh link: sign-in as herself, consent at the upstream's
    // authorization server, tokens kept sealed.
    let r = call(&carol).await;
    let link = r["error"]["data"]["elicitations"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let page = open_consent(&link, "carol").await;
    assert_eq!(page["status"], 200, "{page}");
    assert!(
        page["body"].as_str().unwrap_or("").contains("connected"),
        "{page}"
    );

    // Her calls now carry her own token for the upstream: issued by the IdP to the
    // gateway's upstream client, for the upstream's audience, naming her; never the
    // gateway token she presented.
    let r = call(&carol).await;
    assert_eq!(r["result"]["content"][0]["text"], "ok", "{r}");
    let first = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("call seen");
    let p = bearer_payload(&first);
    assert_eq!(p["sub"], "carol");
    assert_eq!(p["aud"], up_url.as_str());
    assert_eq!(p["client_id"], "gatehouse-saas");
    assert_eq!(p["iss"], idp.issuer().as_str());
    assert!(
        !first["authorization"]
            .to_str()
            .unwrap_or("")
            .contains(&carol_at)
    );

    a_moved_token_does_not_open(&gw, &store, &first).await;

    // Close to expiry the token is refreshed (the refresh token rotates) without asking
    // carol again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = call(&carol).await;
    assert_eq!(r["result"]["content"][0]["text"], "ok", "{r}");
    let second = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("call seen");
    let p2 = bearer_payload(&second);
    assert_eq!(p2["sub"], "carol");
    assert_ne!(p2["jti"], p["jti"], "a refreshed token");

    // A caller who cannot prove who they are at the login provider (an IdP service
    // token) is never asked to consent, and never gets anyone's token.
    let svc = idp.token("svc-reporting", "mcp:tools", None).await;
    let s = connect(&gw.mcp(), &svc).await;
    let r = call(&s).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");

    let methods = audit_methods(&store);
    for m in [
        "auth.consent_refused",
        "auth.upstream_connected",
        "auth.consent_identified",
    ] {
        assert!(methods.iter().any(|x| x == m), "{m} in {methods:?}");
    }
    drop(idp);
}

/// The consent test's one call: `rec__whoami`, its first message.
async fn whoami(c: &Mcp) -> Value {
    c.request(
        "tools/call",
        json!({"name": "rec__whoami", "arguments": {}}),
    )
    .await
    .messages[0]
        .clone()
}

/// A user's upstream token at rest: sealed, and a copy moved to another user's row does
/// not open for them.
async fn a_moved_token_does_not_open(
    gw: &Gw,
    store: &std::path::Path,
    first: &reqwest::header::HeaderMap,
) {
    // At rest the token is sealed: not in the store in clear, and a copy moved to another
    // user's row does not open for them.
    let db = rusqlite::Connection::open(store).expect("store");
    let sealed: Vec<u8> = db
        .query_row(
            "SELECT sealed FROM oauth_upstream_tokens WHERE principal = 'idp/carol' AND upstream = 'rec'",
            [],
            |r| r.get(0),
        )
        .expect("sealed row");
    let raw = first["authorization"].to_str().expect("header")["Bearer ".len()..].to_owned();
    assert!(
        !sealed.windows(20).any(|w| raw.as_bytes().starts_with(w)),
        "sealed, not clear"
    );
    db.execute(
        "INSERT INTO oauth_upstream_tokens (principal, upstream, sealed, updated_at) VALUES ('idp/mallory', 'rec', ?1, 0)",
        [&sealed],
    )
    .expect("copy");
    let mallory_at = facade_login_as(gw, "tokens", "mallory").await["tokens"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mallory = connect(&gw.mcp(), &mallory_at).await;
    let r = whoami(&mallory).await;
    assert_eq!(
        r["error"]["code"], -32042,
        "a moved token does not open: {r}"
    );
}
