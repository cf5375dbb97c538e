//! The audit record end to end: a gateway process writing its hash-chained record to
//! SQLite, killed with SIGKILL under load and restarted (every answered call is recorded,
//! the chains verify), then tampered with (`gatehouse audit verify` names the first bad
//! record), and a store that cannot commit (durable calls fail closed).

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{free_port, fresh_database, gatehouse_bin, psql, serve_config};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const PEPPER: &str = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";
const APP: &str = "audit-test";
const ADMIN_TOKEN: &str = "admin-token-for-the-audit-tests-0123456789";

/// A workspace whose gateway signs checkpoints every five events; returns the directory
/// and the audit key's public half (base64).
fn workspace(port: u16) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("gatehouse-audit-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let keygen = std::process::Command::new(gatehouse_bin())
        .args(["audit", "keygen"])
        .output()
        .expect("keygen");
    let text = String::from_utf8_lossy(&keygen.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("keygen printed no {name}: {text}"))
    };
    std::fs::write(dir.join("audit.key"), field("signing_key (seed, secret):")).expect("key");
    std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).expect("admin token");
    let public = field("public_key:");
    std::fs::write(
        dir.join("gatehouse.yaml"),
        format!(
            r#"listen: 127.0.0.1:{port}
logging: {{level: warn}}
api_keys: {{pepper: "{PEPPER}"}}
store: {{sqlite: state.db}}
audit: {{signing_key: "file:{key}", checkpoint_every: 5}}
admin: {{token: "file:{admin}"}}
upstreams:
  demo:
    command: {bin}
    args: [demo-server]
    tools:
      deploy_service: {{verb: write}}
      search_files: {{verb: read}}
authorization:
  roles:
    ops: ["demo.*"]
"#,
            bin = gatehouse_bin(),
            key = dir.join("audit.key").display(),
            admin = dir.join("admin.token").display()
        ),
    )
    .expect("config");
    (dir, public)
}

async fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(gatehouse_bin())
        .arg(args[0])
        .arg("--config")
        .arg(dir.join("gatehouse.yaml"))
        .args(&args[1..])
        .output()
        .await
        .expect("run")
}

/// A new API key for `principal` (bound to the test's app), with optional roles.
async fn create_key(dir: &Path, principal: &str, roles: Option<&str>) -> String {
    let mut args = vec!["keys", "create", "--principal", principal, "--app", APP];
    if let Some(r) = roles {
        args.extend(["--roles", r]);
    }
    let out = cli(dir, &args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn serve(dir: &Path, port: u16) -> Child {
    serve_config(&dir.join("gatehouse.yaml"), port, &[]).await
}

/// Four workers deploy (a write: each answer waits for its commit) until the gateway is
/// killed with SIGKILL after 1.5 s; returns how many calls were answered.
async fn deploy_until_killed(gw: &mut Child, http: &reqwest::Client, port: u16, key: &str) -> u64 {
    let answered = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (http, key, answered) = (http.clone(), key.to_owned(), answered.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let args = json!({"service": format!("svc-{w}-{i}"), "version": "1", "environment": "production"});
                match call(&http, port, &key, "demo__deploy_service", args).await {
                    Some(v) if v["result"]["content"][0]["text"].as_str().is_some_and(|t| t.starts_with("deployed")) => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.start_kill().expect("SIGKILL");
    let _ = gw.wait().await;
    for w in workers {
        let _ = w.await;
    }
    answered.load(Ordering::SeqCst)
}

/// One stateless tools/call; the JSON-RPC answer, or `None` if the connection failed.
async fn call(
    http: &reqwest::Client,
    port: u16,
    key: &str,
    tool: &str,
    args: Value,
) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": APP, "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let resp = http
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body)
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// The store's request records: (principal, target, status).
fn records(dir: &Path) -> Vec<Value> {
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open");
    let mut q = db
        .prepare("SELECT body FROM audit_events ORDER BY chain, seq")
        .expect("query");
    q.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|b| serde_json::from_str(&b.expect("row")).expect("json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_calls_survive_kill_9_and_tampering_is_named() {
    let port = free_port();
    let (dir, public) = workspace(port);
    let key = create_key(&dir, "ops-bot", Some("ops")).await;
    let nobody = create_key(&dir, "nobody", None).await;
    let mut gw = serve(&dir, port).await;
    let http = reqwest::Client::new();

    // A refused credential is recorded as an authentication event.
    assert!(
        call(
            &http,
            port,
            "ghk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "demo__search_files",
            json!({})
        )
        .await
        .is_some()
    );
    // A denied call and a read are recorded with their outcome.
    let v = call(&http, port, &nobody, "demo__deploy_service", json!({}))
        .await
        .expect("answer");
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let v = call(
        &http,
        port,
        &key,
        "demo__search_files",
        json!({"query": "vpn"}),
    )
    .await
    .expect("answer");
    assert!(v["result"].is_object(), "{v}");

    // Load: four workers deploy (a write: each answer waits for its commit) until killed.
    let answered = deploy_until_killed(&mut gw, &http, port, &key).await;
    assert!(answered > 10, "the load ran ({answered} calls answered)");

    // Every call the client saw answered is in the store; the chains verify.
    let recs = records(&dir);
    let deploys = recs
        .iter()
        .filter(|r| r["target"] == "demo__deploy_service" && r["status"] == "ok")
        .count() as u64;
    assert!(
        deploys >= answered,
        "{deploys} recorded < {answered} answered"
    );
    assert!(recs.iter().any(|r| r["principal"] == "apikey/nobody"
        && r["status"] == "denied"
        && r["rule"] == "authorize.default_deny"));
    assert!(
        recs.iter()
            .any(|r| r["target"] == "demo__search_files" && r["verb"] == "read")
    );
    let out = cli(&dir, &["audit", "verify"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("records intact"),
        "{text}"
    );

    // The restarted gateway continues the same chain.
    let mut gw = serve(&dir, port).await;
    let v = call(
        &http,
        port,
        &key,
        "demo__deploy_service",
        json!({"service": "after", "version": "2", "environment": "production"}),
    )
    .await
    .expect("answer");
    assert!(v["result"].is_object(), "{v}");
    gw.start_kill().expect("kill");
    let _ = gw.wait().await;
    assert!(cli(&dir, &["audit", "verify"]).await.status.success());

    // Queries find records by principal and status, as JSON lines and as CSV.
    let out = cli(&dir, &["audit", "query", "--principal", "apikey/nobody"]).await;
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event"]["status"], "denied");
    assert_eq!(lines[0]["chain"], "default");
    let out = cli(
        &dir,
        &[
            "audit",
            "query",
            "--status",
            "denied",
            "--format",
            "csv",
            "--target",
            "demo__deploy_service",
        ],
    )
    .await;
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("chain,seq,time_ms,kind,tenant,principal"),
        "{csv}"
    );
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[1].contains("apikey/nobody") && rows[1].contains("authorize.default_deny"),
        "{csv}"
    );

    // Signed checkpoints match the chain.
    let out = cli(&dir, &["audit", "verify", "--public-key", &public]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("signed checkpoints match"),
        "{text}"
    );

    signed_checkpoints_and_tampering_are_named(&dir, &public).await;
}

/// Signed checkpoints catch a rewritten chain; an edited and a deleted record are named.
async fn signed_checkpoints_and_tampering_are_named(dir: &std::path::Path, public: &str) {
    // Someone who can write the store rewrites record 2 and recomputes every later hash:
    // the chain alone still verifies, the signed checkpoints do not.
    {
        let db = rusqlite::Connection::open(dir.join("state.db")).expect("open");
        let mut links: Vec<(i64, String)> = db
            .prepare("SELECT seq, body FROM audit_events WHERE chain = 'default' ORDER BY seq")
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        links[1].1 = links[1].1.replacen("\"v\":1", "\"v\":1,\"forged\":true", 1);
        let mut prev = gatehouse_audit::GENESIS.to_owned();
        for (seq, body) in &links {
            let hash = gatehouse_audit::link_hash("default", *seq as u64, &prev, body);
            db.execute(
                "UPDATE audit_events SET prev = ?1, hash = ?2, body = ?3 WHERE chain = 'default' AND seq = ?4",
                rusqlite::params![prev, hash, body, seq],
            )
            .expect("rewrite");
            prev = hash;
        }
        assert!(
            cli(dir, &["audit", "verify"]).await.status.success(),
            "recomputed hashes fool the chain alone"
        );
        let out = cli(dir, &["audit", "verify", "--public-key", public]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("differs from the signed checkpoint"),
            "{text}"
        );
    }

    // Tampering: an edited record, then a deleted one, each named.
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open");
    let denied_seq: i64 = db
        .query_row(
            "SELECT seq FROM audit_events WHERE body LIKE '%\"status\":\"denied\"%'",
            [],
            |r| r.get(0),
        )
        .expect("the denied call's record");
    db.execute(
        "UPDATE audit_events SET body = replace(body, '\"status\":\"denied\"', '\"status\":\"ok\"') WHERE seq = ?1",
        [denied_seq],
    )
    .expect("edit");
    let out = cli(dir, &["audit", "verify"]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("record {denied_seq}: its content does not match")),
        "{text}"
    );
    db.execute(
        "UPDATE audit_events SET body = replace(body, '\"status\":\"ok\"', '\"status\":\"denied\"') WHERE seq = ?1",
        [denied_seq],
    )
    .expect("undo");
    assert!(cli(dir, &["audit", "verify"]).await.status.success());
    assert!(
        records(dir)
            .iter()
            .any(|r| r["kind"] == "auth" && r["status"] == "denied"),
        "the refused key is recorded"
    );
    // Lifecycle events share the chain: the gateway's start is recorded too.
    assert!(
        records(dir)
            .iter()
            .any(|r| r["kind"] == "lifecycle" && r["method"] == "gateway started")
    );
    db.execute("DELETE FROM audit_events WHERE seq = 3", [])
        .expect("delete");
    let out = cli(dir, &["audit", "verify"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("record 4 follows record 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_commit_fails_durable_calls_closed() {
    let port = free_port();
    let (dir, _) = workspace(port);
    let key = create_key(&dir, "ops-bot", Some("ops")).await;
    let _gw = serve(&dir, port).await;
    let http = reqwest::Client::new();
    let deploy = json!({"service": "a", "version": "1", "environment": "production"});
    assert!(
        call(&http, port, &key, "demo__deploy_service", deploy.clone())
            .await
            .expect("answer")["result"]
            .is_object()
    );

    // Another process holds the database's write lock past the gateway's busy timeout.
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open");
    db.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    // A read of internal data does not wait for its record: it is answered at once.
    let started = Instant::now();
    let v = call(
        &http,
        port,
        &key,
        "demo__search_files",
        json!({"query": "vpn"}),
    )
    .await
    .expect("answer");
    assert!(v["result"].is_object(), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a read waited for the audit commit"
    );
    // A write waits for its record, which cannot be committed: it fails closed.
    let v = call(&http, port, &key, "demo__deploy_service", deploy.clone())
        .await
        .expect("answer");
    assert_eq!(v["error"]["code"], -32603, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("audit record"),
        "{v}"
    );
    db.execute_batch("COMMIT").expect("unlock");
    // Once the store commits again, so do calls.
    let v = call(&http, port, &key, "demo__deploy_service", deploy)
        .await
        .expect("answer");
    assert!(v["result"].is_object(), "{v}");
}

/// Retention: `audit prune` removes the oldest records up to a signed checkpoint; the rest
/// still verifies from that anchor with the public key; a forged anchor is caught;
/// checkpoints export for anchoring elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_to_a_signed_checkpoint_and_the_rest_still_verifies() {
    let port = free_port();
    let (dir, public) = workspace(port);
    let key = create_key(&dir, "ops-bot", Some("ops")).await;
    let mut gw = serve(&dir, port).await;
    let http = reqwest::Client::new();
    for i in 0..12 {
        let v = call(
            &http,
            port,
            &key,
            "demo__deploy_service",
            json!({"service": "s", "version": i.to_string(), "environment": "staging"}),
        )
        .await
        .expect("answer");
        assert!(v["result"].is_object(), "{v}");
    }
    // The same query through the admin API: administrators only, and itself on record.
    let url = format!("http://127.0.0.1:{port}/admin/v1/audit?principal=apikey/ops-bot&limit=5");
    let r = http.get(&url).send().await.expect("admin API");
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin API");
    assert_eq!(r.status(), 200);
    let lines: Vec<Value> = r
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["event"]["principal"] == "apikey/ops-bot"),
        "{lines:?}"
    );
    // An administrator's revocation is an authentication event.
    let r = http
        .post(format!("http://127.0.0.1:{port}/admin/v1/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"subject": "ops-bot"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 201);
    gw.start_kill().expect("stop");
    let _ = gw.wait().await;
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open");
    let on_record: i64 = db
        .query_row(
            "SELECT count(*) FROM audit_events WHERE json_extract(body, '$.method') IN ('auth.revoked', 'audit.queried')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        on_record, 2,
        "the revocation and the admin query are on record"
    );
    drop(db);

    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let out = cli(&dir, &["audit", "prune", "--older-than-days", "0"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&out).contains("pruned"), "{}", text(&out));
    let out = cli(&dir, &["audit", "verify", "--public-key", &public]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("intact") && text(&out).contains("pruned"),
        "{}",
        text(&out)
    );

    let out = cli(&dir, &["audit", "checkpoints"]).await;
    let exported: Vec<Value> = text(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(!exported.is_empty());
    assert!(
        exported
            .iter()
            .all(|c| c["signature"].as_str().is_some_and(|s| s.len() == 128)),
        "{exported:?}"
    );

    // Someone rewrites the anchor to hide what they did before it: caught.
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open");
    db.execute("UPDATE audit_anchors SET hash = ?1", [&"0".repeat(64)])
        .expect("forge");
    let out = cli(&dir, &["audit", "verify", "--public-key", &public]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("BROKEN"), "{}", text(&out));
}

/// The same guarantees with PostgreSQL as the store: every answered durable call survives
/// SIGKILL, the chain and its signed checkpoints verify, tampering is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_answered_call_through_kill_9_and_names_tampering() {
    let port = free_port();
    let (dir, public) = workspace(port);
    let db = format!("gatehouse_audit_{port}");
    fresh_database(&db).await;
    let config = dir.join("gatehouse.yaml");
    let yaml = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        yaml.replace(
            "checkpoint_every: 5}",
            &format!("checkpoint_every: 5, postgres: \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"}}"),
        ),
    )
    .expect("config");
    let key = create_key(&dir, "ops-bot", Some("ops")).await;
    let mut gw = serve(&dir, port).await;
    let http = reqwest::Client::new();
    let answered = deploy_until_killed(&mut gw, &http, port, &key).await;
    assert!(answered > 10, "the load ran ({answered} calls answered)");
    let recorded: u64 = psql(
        &db,
        "SELECT count(*) FROM gatehouse_audit_events WHERE body::jsonb->>'target' = 'demo__deploy_service' AND body::jsonb->>'status' = 'ok'",
    )
    .await
    .parse()
    .expect("count");
    assert!(
        recorded >= answered,
        "{recorded} recorded < {answered} answered"
    );
    let out = cli(&dir, &["audit", "verify", "--public-key", &public]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success()
            && text.contains("records intact")
            && text.contains("signed checkpoints match"),
        "{text}"
    );

    // The first answered call's record (lifecycle and pin records come before it).
    let seq = psql(
        &db,
        "SELECT min(seq) FROM gatehouse_audit_events WHERE chain = 'default' AND body LIKE '%\"status\":\"ok\"%'",
    )
    .await;
    let seq = seq.trim().to_owned();
    assert!(seq.parse::<u64>().is_ok(), "{seq}");
    psql(
        &db,
        &format!("UPDATE gatehouse_audit_events SET body = replace(body, '\"status\":\"ok\"', '\"status\":\"denied\"') WHERE chain = 'default' AND seq = {seq}"),
    )
    .await;
    let out = cli(&dir, &["audit", "verify", "--public-key", &public]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success() && text.contains(&format!("record {seq}")),
        "{text}"
    );
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}
