//! Rate limits end to end: one gateway answers HTTP 429 with `Retry-After` once a caller
//! spends its burst (list floods included); two gateway processes sharing the Redis on this
//! machine hold one global limit within 5%.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    Mcp, ca, free_port, gatehouse_bin, leaf, serve_config, start_gateway, wait_port,
};
use serde_json::{Value, json};

/// One stateless request; the HTTP status, `Retry-After`, and the JSON-RPC answer.
async fn post(
    http: &reqwest::Client,
    port: u16,
    method: &str,
    params: Value,
) -> (u16, Option<String>, Value) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "limits-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut req = http
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    let resp = req
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

fn config(port: u16, rules: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}\ndev_mode: true\nlogging: {{level: warn}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n{rules}",
        bin = gatehouse_bin()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_burst_gets_429_with_retry_after_and_list_floods_are_limited() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-limits-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("gatehouse.yaml");
    std::fs::write(
        &path,
        config(
            port,
            "rate_limits:\n  rules:\n    - {name: calls, per: principal, methods: [tools/call], requests: 1, per_secs: 2, burst: 2}\n    - {name: lists, per: principal, methods: [tools/list], requests: 1, per_secs: 60, burst: 1}\n",
        ),
    )
    .expect("config");
    let _gw = serve_config(&path, port, &[]).await;
    let http = reqwest::Client::new();
    let call = json!({"name": "demo__search_files", "arguments": {"query": "vpn"}});
    for i in 0..3 {
        let (status, _, body) = post(&http, port, "tools/call", call.clone()).await;
        assert_eq!(status, 200, "call {i} is within the burst: {body}");
        assert!(body["result"]["content"].is_array(), "{body}");
    }
    let (status, retry, body) = post(&http, port, "tools/call", call.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], -32029, "{body}");
    let secs: u64 = retry
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&secs), "{secs}");
    let wait = body["error"]["data"]["retryAfterMs"]
        .as_u64()
        .expect("retryAfterMs");
    // After the hint, one more call is allowed again.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    let (status, _, body) = post(&http, port, "tools/call", call.clone()).await;
    assert_eq!(status, 200, "{body}");

    for _ in 0..2 {
        let (status, _, _) = post(&http, port, "tools/list", json!({})).await;
        assert_eq!(status, 200);
    }
    let (status, _, body) = post(&http, port, "tools/list", json!({})).await;
    assert_eq!(status, 429, "a list flood is limited too: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_hold_one_global_limit() {
    let (a, b) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gatehouse-limits-{a}"));
    std::fs::create_dir_all(&dir).expect("dir");
    const RATE: u64 = 40;
    const BURST: u64 = 2;
    // A rule name unique to this run: no state from an earlier one.
    let rules = format!(
        "rate_limits:\n  redis: redis://127.0.0.1:6379/\n  rules:\n    - {{name: global-{a}, per: tool, methods: [tools/call], requests: {RATE}, per_secs: 1, burst: {BURST}, fail: closed}}\n"
    );
    for port in [a, b] {
        std::fs::write(dir.join(format!("{port}.yaml")), config(port, &rules)).expect("config");
    }
    let _ga = serve_config(&dir.join(format!("{a}.yaml")), a, &[]).await;
    let _gb = serve_config(&dir.join(format!("{b}.yaml")), b, &[]).await;

    // Warm up: each gateway connects to Redis on its first checked call.
    let http = reqwest::Client::new();
    let call = json!({"name": "demo__search_files", "arguments": {"query": "vpn"}});
    for port in [a, b] {
        post(&http, port, "tools/call", call.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let allowed = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let run_for = Duration::from_secs(5);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let port = if i % 2 == 0 { a } else { b };
        let (allowed, limited) = (allowed.clone(), limited.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let call = json!({"name": "demo__search_files", "arguments": {"query": "vpn"}});
            while started.elapsed() < run_for {
                match post(&http, port, "tools/call", call.clone()).await.0 {
                    200 => allowed.fetch_add(1, Ordering::Relaxed),
                    429 => limited.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected HTTP {other}"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = allowed.load(Ordering::Relaxed) as f64;
    let limited = limited.load(Ordering::Relaxed);
    // GCRA admits the burst and one at once, then one per interval.
    let expected = (BURST + 1) as f64 + elapsed * RATE as f64;
    eprintln!(
        "global limit: allowed {allowed} in {elapsed:.2}s, expected {expected:.1}; {limited} limited"
    );
    assert!(limited > 0, "the load exceeded the limit");
    // The property under test is that the two gateways share one limit: two separate
    // limits would admit about twice `expected`. The upper bound is tight; the lower one is
    // loose because on a loaded machine a Redis answer can miss its deadline, and this
    // limit fails closed (a refusal, never an extra admission).
    assert!(
        allowed <= expected * 1.05,
        "allowed {allowed} in {elapsed:.2}s, more than one limit admits ({expected:.1}); {limited} limited"
    );
    assert!(
        allowed >= expected * 0.7,
        "allowed {allowed} in {elapsed:.2}s, far below the limit ({expected:.1}); {limited} limited"
    );
}

/// Many small reads spend a principal's byte budget, then its calls are refused (429 with
/// a retry hint) before they run; a result far above the usual size raises an alert in the
/// audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_budgets_stop_a_slow_drain_and_size_anomalies_are_recorded() {
    let port = free_port();
    let store = std::env::temp_dir().join(format!("gatehouse-exfil-{port}.db"));
    let _ = std::fs::remove_file(&store);
    let yaml = format!(
        "dev_mode: true\nstore: {{sqlite: {store}}}\naudit: {{durable_all: true}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\nexfiltration:\n  budgets:\n    - {{name: drain, per: principal, bytes: 3000, window_secs: 60}}\n  anomaly: {{factor: 5, min_bytes: 300, min_samples: 3}}\n",
        store = store.display(),
        bin = gatehouse_bin()
    );
    let gw = start_gateway(&yaml).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let small = json!({"query": "SELECT name FROM customers WHERE id = 1"});
    for _ in 0..4 {
        let r = mcp.call("demo__read_database", small.clone()).await;
        assert!(r["content"].is_array(), "{r}");
    }
    // Far above the usual size for this principal and tool: served, and flagged.
    let big = mcp
        .call(
            "demo__read_database",
            json!({"query": "SELECT * FROM customers"}),
        )
        .await;
    assert!(big["content"].is_array(), "{big}");
    // Keep reading until the budget is spent: refused before the call runs, with a hint.
    let mut refused = None;
    for _ in 0..30 {
        let r = mcp
            .request(
                "tools/call",
                json!({"name": "demo__read_database", "arguments": small.clone()}),
            )
            .await;
        if r.last().get("error").is_some() {
            refused = Some(r.last().clone());
            break;
        }
    }
    let refused = refused.expect("the budget ran out");
    assert_eq!(refused["error"]["code"], -32029, "{refused}");
    assert_eq!(refused["error"]["data"]["limit"], "drain", "{refused}");
    assert!(
        refused["error"]["data"]["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 60_000),
        "{refused}"
    );
    drop(mcp);

    let audit = gatehouse_store::SqliteAudit::open(&store).expect("store");
    let events: Vec<Value> = audit
        .query(&gatehouse_store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .expect("query")
        .into_iter()
        .filter_map(|(_, _, b)| serde_json::from_str(&b).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["findings"]
            .as_str()
            .is_some_and(|f| f.contains("size_anomaly="))),
        "the size anomaly is on record: {events:?}"
    );
    assert!(
        events.iter().any(|e| e["rule"] == "exfiltration.budget"),
        "the refusal is on record"
    );
}

/// A Redis with TLS only, started for the test; killed when dropped.
struct TlsRedis {
    child: tokio::process::Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn tls_redis(dir: &std::path::Path) -> TlsRedis {
    ca(dir, "redis-ca").await;
    leaf(dir, "redis-ca", "redis", "IP:127.0.0.1", "serverAuth").await;
    let port = free_port();
    let child = tokio::process::Command::new("redis-server")
        .current_dir(dir)
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            "redis.pem",
            "--tls-key-file",
            "redis.key",
            "--tls-ca-cert-file",
            "redis-ca.pem",
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server");
    wait_port(port).await;
    TlsRedis { child, port }
}

/// Cluster-wide limits over TLS: with the CA that issued the server's certificate, the
/// shared limit holds; with another CA, the connection is refused and the limit fails
/// closed (every call refused) rather than falling back to clear text or to no limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_limits_reach_redis_over_verified_tls() {
    let dir = std::env::temp_dir().join(format!("gatehouse-redis-tls-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let redis = tls_redis(&dir).await;
    ca(&dir, "other-ca").await;
    let http = reqwest::Client::new();
    let call = json!({"name": "demo__search_files", "arguments": {"query": "vpn"}});
    for (ca_file, expect_limited) in [("redis-ca.pem", true), ("other-ca.pem", false)] {
        let port = free_port();
        let path = dir.join(format!("gatehouse-{port}.yaml"));
        std::fs::write(
            &path,
            config(
                port,
                &format!(
                    "rate_limits:\n  redis: rediss://127.0.0.1:{}/\n  redis_ca: {}\n  rules:\n    - {{name: tls-{port}, per: principal, methods: [tools/call], requests: 1, per_secs: 60, burst: 1, fail: closed}}\n",
                    redis.port,
                    dir.join(ca_file).display()
                ),
            ),
        )
        .expect("config");
        let _gw = serve_config(&path, port, &[]).await;
        let mut statuses = Vec::new();
        let mut last = Value::Null;
        for _ in 0..3 {
            let (status, _, body) = post(&http, port, "tools/call", call.clone()).await;
            statuses.push(status);
            last = body;
        }
        if expect_limited {
            assert_eq!(statuses, vec![200, 200, 429], "{ca_file}: {last}");
        } else {
            // Not even the first call passes (a reachable store would allow it): the store
            // cannot be reached over verified TLS and the rule fails closed.
            assert_eq!(statuses, vec![429, 429, 429], "{ca_file}: {last}");
        }
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
