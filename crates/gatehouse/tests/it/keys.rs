//! API keys end to end: the `gatehouse keys` CLI writes the SQLite store while a running
//! gateway reads it; scopes, app binding, expiry, instant revocation and rotation.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{
    Mcp, Reply, free_port, fresh_database, gatehouse_bin, psql, run_ok, start_gateway_with,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

const PEPPER: &str = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";

fn workspace() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-keys-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let yaml = format!(
        "api_keys:\n  pepper: \"{PEPPER}\"\nstore:\n  sqlite: keys.db\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n  ops:\n    command: {bin}\n    args: [demo-server]\n",
        bin = gatehouse_bin()
    );
    std::fs::write(dir.join("gatehouse.yaml"), yaml).expect("write");
    dir
}

async fn cli(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["keys", "--config"])
        .arg(dir.join("gatehouse.yaml"))
        .args(args);
    run_ok(&mut cmd, 30).await.trim().to_owned()
}

fn client(url: &str, key: &str) -> Mcp {
    let mut c = Mcp::new(url);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    c
}

async fn open(url: &str, key: &str, app: &str) -> (Reply, Mcp) {
    let mut c = client(url, key);
    let r = c
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": app, "version": "1"}}}))
        .await;
    c.session = r
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_scoped_bound_revocable_and_rotatable() {
    let dir = workspace();
    let key = cli(
        &dir,
        &[
            "create",
            "--principal",
            "svc-reporting",
            "--app",
            "reporting",
            "--roles",
            "analyst",
            "--servers",
            "demo",
            "--tools",
            "demo__read_database,demo__search_files",
            "--expires",
            "30d",
        ],
    )
    .await;
    assert!(key.starts_with("ghk_"), "{key}");
    let cfg = gatehouse_proxy::Config::load(&dir.join("gatehouse.yaml")).expect("config");
    let gw = start_gateway_with(cfg, true).await;

    // The key works for its own application, and sees only what it may call.
    let (r, c) = open(&gw.mcp(), &key, "reporting").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.messages);
    let names: Vec<String> = c
        .list("tools/list", "tools")
        .await
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["demo__read_database", "demo__search_files"]);
    let rows = c
        .call(
            "demo__read_database",
            json!({"query": "select count(*) as n from customers"}),
        )
        .await;
    assert_eq!(rows["structuredContent"]["rows"][0]["n"], 5);
    for outside in ["demo__delete_database", "ops__search_files"] {
        let r = c
            .call(outside, json!({"query": "x", "table": "customers"}))
            .await;
        assert_eq!(r["isError"], true, "{outside} is outside the key's limits");
    }

    // Another application presenting the key is refused (and audited).
    let (r, _) = open(&gw.mcp(), &key, "someone-else").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Stateless requests name their application in the envelope.
    let stateless = |app: Option<&str>| {
        let mut meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
        if let Some(a) = app {
            meta["io.modelcontextprotocol/clientInfo"] = json!({"name": a, "version": "1"});
        }
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}})
    };
    let send = |body: Value| {
        client(&gw.mcp(), &key)
            .http
            .post(gw.mcp())
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .body(body.to_string())
            .send()
    };
    assert_eq!(
        send(stateless(Some("reporting")))
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(stateless(None)).await.expect("send").status(),
        StatusCode::FORBIDDEN
    );

    // The legacy HTTP+SSE transport cannot name the application before its session
    // exists, so keys are refused there.
    let legacy = client(&gw.mcp(), &key)
        .http
        .get(format!("{}/sse", gw.base))
        .send()
        .await
        .expect("get");
    assert_eq!(legacy.status(), StatusCode::FORBIDDEN);

    // Forged and unknown keys.
    let forged = format!(
        "{}{}",
        &key[..key.len() - 3],
        if key.ends_with("AAA") { "BBB" } else { "AAA" }
    );
    for bad in [
        forged.as_str(),
        "ghk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not-a-key",
    ] {
        let (r, _) = open(&gw.mcp(), bad, "reporting").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
    }

    // Rotation: both keys work during the overlap, the old one stops after it.
    let id = key.split('_').nth(1).expect("id").to_owned();
    let new_key = cli(&dir, &["rotate", &id, "--overlap", "5s"]).await;
    assert!(open(&gw.mcp(), &new_key, "reporting").await.0.status == StatusCode::OK);
    assert!(open(&gw.mcp(), &key, "reporting").await.0.status == StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(
        open(&gw.mcp(), &key, "reporting").await.0.status,
        StatusCode::UNAUTHORIZED
    );

    // Revocation from the CLI (another process) takes effect within a second, also for
    // open sessions: the gateway checks its copy of the keys that often.
    let (_, live) = open(&gw.mcp(), &new_key, "reporting").await;
    live.call("demo__search_files", json!({"query": "vpn"}))
        .await;
    let new_id = new_key.split('_').nth(1).expect("id").to_owned();
    cli(&dir, &["revoke", &new_id]).await;
    let revoked = std::time::Instant::now();
    loop {
        let r = live
            .request(
                "tools/call",
                json!({"name": "demo__search_files", "arguments": {"query": "vpn"}}),
            )
            .await;
        if r.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            revoked.elapsed() < Duration::from_millis(1500),
            "the revoked key still works after a second"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The list shows use and rotation, never a key.
    let listing = cli(&dir, &["list"]).await;
    assert!(!listing.contains("ghk_"));
    let old_row = listing
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("old key listed");
    let cols: Vec<&str> = old_row.split('\t').collect();
    assert_ne!(cols[9], "-", "last use recorded: {old_row}");
    let new_row = listing
        .lines()
        .find(|l| l.starts_with(&new_id))
        .expect("new key listed");
    assert!(
        new_row.ends_with(&id),
        "rotated_from names the old key: {new_row}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_and_wrong_config_are_refused() {
    let dir = workspace();
    // The gateway first, so the key's short life is not spent waiting for it to start.
    let cfg = gatehouse_proxy::Config::load(&dir.join("gatehouse.yaml")).expect("config");
    let gw = start_gateway_with(cfg, true).await;
    let key = cli(
        &dir,
        &[
            "create",
            "--principal",
            "svc-batch",
            "--app",
            "batch",
            "--expires",
            "5s",
        ],
    )
    .await;
    assert_eq!(
        open(&gw.mcp(), &key, "batch").await.0.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(
        open(&gw.mcp(), &key, "batch").await.0.status,
        StatusCode::UNAUTHORIZED
    );

    // No JWT issuer is configured: a JWT-looking bearer gets nowhere.
    let (r, _) = open(
        &gw.mcp(),
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        "batch",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The CLI refuses limits naming upstreams that do not exist.
    let out = Command::new(gatehouse_bin())
        .args(["keys", "--config"])
        .arg(dir.join("gatehouse.yaml"))
        .args([
            "create",
            "--principal",
            "x",
            "--app",
            "y",
            "--servers",
            "nope",
        ])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_key_store_refuses_keys_only() {
    let yaml = format!(
        "api_keys:\n  pepper: \"{PEPPER}\"\nstore:\n  sqlite: /proc/gatehouse-cannot-write-here/keys.db\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    );
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|_| None).expect("config");
    let gw = start_gateway_with(cfg, true).await;
    let (r, _) = open(
        &gw.mcp(),
        "ghk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "x",
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "keys cannot be checked: refused, never accepted"
    );
    let (r, _) = open(&gw.mcp(), "some.jwt.token", "x").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "other credentials are judged on their own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_postgres_hold_on_every_replica_and_a_revocation_reaches_them() {
    // Two gateways (hosts of their own: separate store files) and the CLI share the keys in
    // PostgreSQL: a key made by the CLI works on both; revoked by the CLI, both refuse it
    // within about a second.
    let port = free_port();
    let db = format!("gatehouse_keys_e2e_{port}");
    fresh_database(&db).await;
    let dir = std::env::temp_dir().join(format!("gatehouse-keys-pg-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let yaml = format!(
        "api_keys:\n  pepper: \"{PEPPER}\"\n  postgres: \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
        bin = gatehouse_bin()
    );
    std::fs::write(dir.join("gatehouse.yaml"), yaml).expect("write");
    let key = cli(
        &dir,
        &["create", "--principal", "svc-batch", "--app", "batch"],
    )
    .await;
    let rows = psql(&db, "SELECT count(*) FROM gatehouse_api_keys").await;
    assert_eq!(rows.trim(), "1", "the CLI wrote the key to PostgreSQL");
    let cfg = gatehouse_proxy::Config::load(&dir.join("gatehouse.yaml")).expect("config");
    let (mut cfg_a, mut cfg_b) = (cfg.clone(), cfg);
    cfg_a.store_path = dir.join("host-a.db");
    cfg_b.store_path = dir.join("host-b.db");
    let a = start_gateway_with(cfg_a, true).await;
    let b = start_gateway_with(cfg_b, true).await;
    for gw in [&a, &b] {
        let (r, _) = open(&gw.mcp(), &key, "batch").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.messages);
    }
    let id = key.split('_').nth(1).expect("key id").to_owned();
    cli(&dir, &["revoke", &id]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    for gw in [&a, &b] {
        while open(&gw.mcp(), &key, "batch").await.0.status != StatusCode::UNAUTHORIZED {
            assert!(
                std::time::Instant::now() < deadline,
                "a replica still accepts the revoked key"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
