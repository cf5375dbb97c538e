//! A fleet: three gateways behind HAProxy sharing PostgreSQL and Redis, driven by the
//! official Python and TypeScript SDK clients. HAProxy sends every GET (a client's
//! standalone stream) to the first replica and spreads POSTs over the other two, so what an
//! upstream raises on one replica must cross to another to reach its client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::common::Mcp;
use crate::common::oauth::{connect, with_token};
use crate::common::{
    free_port, fresh_database, gatehouse_bin, last_json, peers, python, repo, run_ok, wait_port,
    wait_ready,
};

const PEPPER: &str = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";
const SESSION_KEY: &str = "ZmxlZXQtdGVzdC1zZXNzaW9uLWtleS0zMi1ieXRlcyE=";
const APP: &str = "fleet-test";

struct Fleet {
    dir: PathBuf,
    ports: [u16; 3],
    lb: u16,
    replicas: Vec<Option<Child>>,
    _haproxy: Child,
    _upstream: Child,
}

impl Fleet {
    fn config(&self, i: usize) -> PathBuf {
        self.dir.join(format!("replica{i}.yaml"))
    }

    fn lb_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.lb)
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}/mcp", self.ports[i])
    }

    /// Starts replica `i`, its log in the fleet's directory (kept for a failed run).
    async fn start_replica(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("replica{i}.log")))
            .expect("log");
        let child = Command::new(gatehouse_bin())
            .args(["serve", "--config"])
            .arg(self.config(i))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("serve");
        wait_ready(self.ports[i]).await;
        self.replicas[i] = Some(child);
    }

    async fn key(&self, principal: &str, app: &str, roles: &str) -> String {
        let key = crate::common::create_key(&self.config(0), principal, app, roles).await;
        // Replicas re-read the key store at most a second after it changes.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        key
    }

    /// A counter of replica `i`, summed over the label sets that contain `labels`.
    async fn metric(&self, i: usize, name: &str, labels: &str) -> f64 {
        let body = crate::common::read_text(
            reqwest::get(format!("http://127.0.0.1:{}/metrics", self.ports[i]))
                .await
                .expect("metrics"),
        )
        .await;
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn audit(&self, args: &[&str]) -> std::process::Output {
        Command::new(gatehouse_bin())
            .args(["audit", "--config"])
            .arg(self.config(0))
            .args(args)
            .output()
            .await
            .expect("audit")
    }
}

/// Starts the upstream, three replicas and HAProxy in front of them.
async fn fleet() -> Fleet {
    let ports = [free_port(), free_port(), free_port()];
    let (lb, up) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gatehouse-fleet-{lb}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let db = format!("gatehouse_fleet_{lb}");
    fresh_database(&db).await;

    let upstream = Command::new(python())
        .arg(repo().join("testdata/servers/fleet_server.py"))
        .arg(up.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("fleet upstream");
    wait_port(up).await;

    for (i, port) in ports.iter().enumerate() {
        std::fs::write(
            dir.join(format!("replica{i}.yaml")),
            format!(
                r#"listen: 127.0.0.1:{port}
logging: {{level: info}}
session: {{key: "{SESSION_KEY}"}}
api_keys: {{pepper: "{PEPPER}"}}
store: {{postgres: "host=127.0.0.1 port=5432 user=postgres dbname={db}"}}
audit: {{durable_all: true}}
fleet: {{redis: "redis://127.0.0.1:6379/", channel: "gatehouse:fleet-test-{lb}"}}
rate_limits:
  redis: redis://127.0.0.1:6379/
  rules:
    - {{name: fleet-{lb}, per: principal, methods: [tools/call], tools: [fl__slow], requests: 1, per_secs: 600, burst: 2, fail: closed}}
upstreams:
  fl:
    url: http://127.0.0.1:{up}/mcp
    tools:
      deploy: {{approval: {{timeout_secs: 60}}}}
authorization:
  roles:
    agent: {{tools: ["fl.*"], resources: ["fl.*"]}}
    approver: []
approvals:
  hold_secs: 30
  progress_secs: 1
"#
            ),
        )
        .expect("config");
    }

    std::fs::write(
        dir.join("haproxy.cfg"),
        format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
             frontend mcp\n  bind 127.0.0.1:{lb}\n  use_backend streams if METH_GET\n  default_backend calls\n\
             backend streams\n  server g0 127.0.0.1:{p0}\n\
             backend calls\n  balance roundrobin\n  option httpchk GET /healthz\n  retry-on conn-failure empty-response\n  option redispatch\n  retries 3\n\
             \x20 server g1 127.0.0.1:{p1} check inter 200ms fall 1 rise 1\n\
             \x20 server g2 127.0.0.1:{p2} check inter 200ms fall 1 rise 1\n",
            p0 = ports[0],
            p1 = ports[1],
            p2 = ports[2],
        ),
    )
    .expect("haproxy.cfg");

    let mut f = Fleet {
        dir: dir.clone(),
        ports,
        lb,
        replicas: vec![None, None, None],
        _haproxy: Command::new(haproxy())
            .args(["-db", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy (scripts/test installs it)"),
        _upstream: upstream,
    };
    for i in 0..3 {
        f.start_replica(i).await;
    }
    wait_port(lb).await;
    f
}

fn haproxy() -> &'static str {
    if Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_haproxy_share_streams_decisions_revocations_and_limits() {
    let mut f = fleet().await;
    let sdk = f.key("sdk", APP, "agent").await;
    streams_cross_replicas(&f, &sdk).await;
    a_decision_on_one_replica_releases_a_call_on_another(&f, &sdk).await;
    a_revocation_reaches_every_replica(&f).await;
    one_rate_limit_across_the_fleet(&f).await;
    cancellations_and_session_ends_cross_replicas(&f).await;
    // 6. kill -9 of a replica mid-load: TypeScript SDK sessions carry on through the others,
    //    every acknowledged call has its audit record, and the chain verifies.
    let load = f.key("load", APP, "agent").await;
    let mut clients = Vec::new();
    for k in 0..4 {
        clients.push(
            Command::new("node")
                .arg(peers().join("ts_fleet_client.mjs"))
                .args([&f.lb_url(), "9", &format!("c{k}")])
                .env("GATEHOUSE_BEARER", &load)
                .env("GATEHOUSE_CLIENT_NAME", APP)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("ts client"),
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = now_ms();
    let mut victim = f.replicas[1].take().expect("replica 1");
    victim.start_kill().expect("kill -9");
    let _ = victim.wait().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.start_replica(1).await;
    let back_at = now_ms();
    let mut calls: Vec<Value> = Vec::new();
    for c in clients {
        let out = tokio::time::timeout(Duration::from_secs(60), c.wait_with_output())
            .await
            .expect("ts client finished")
            .expect("output");
        let v = last_json(&String::from_utf8_lossy(&out.stdout));
        let mine = v["calls"].as_array().cloned().unwrap_or_default();
        assert!(
            mine.iter()
                .any(|c| c["ok"] == true && c["at"].as_u64() > Some(back_at)),
            "a session did not carry on after the kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        calls.extend(mine);
    }
    report_load(&calls, killed_at, back_at);
    let acked = calls.iter().filter(|c| c["ok"] == true).count();
    let out = f.audit(&["query", "--limit", "1000000"]).await;
    let recorded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["event"]["principal"] == "apikey/load"
                && v["event"]["method"] == "tools/call"
                && v["event"]["status"] == "ok"
        })
        .count();
    assert!(
        recorded >= acked,
        "{acked} calls acknowledged, {recorded} audit records"
    );
    let verify = f.audit(&["verify"]).await;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// Step 1: server-to-client messages cross to the replica holding the stream.
async fn streams_cross_replicas(f: &Fleet, sdk: &str) {
    // 1. A resource update and a sampling request raised on one replica reach a client
    //    whose stream is on another (Python SDK).
    let out = run_ok(
        Command::new(python())
            .arg(repo().join("testdata/clients/py_fleet_client.py"))
            .args([f.lb_url().as_str(), sdk]),
        90,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["updated"], json!(["fleet://status"]), "{v}");
    assert_eq!(
        v["ask"], "the client's LLM said: sampled across replicas",
        "{v}"
    );
    // The update crossed to the replica holding the GET stream, and the client's answer
    // to the sampling request crossed back to the replica whose upstream asked.
    assert!(
        f.metric(0, "gatehouse_fleet_received_total", "kind=\"stream\"")
            .await
            >= 1.0
    );
    let answers = f
        .metric(1, "gatehouse_fleet_received_total", "kind=\"answer\"")
        .await
        + f.metric(2, "gatehouse_fleet_received_total", "kind=\"answer\"")
            .await;
    assert!(answers >= 1.0, "the sampling answer never crossed replicas");
}

/// Step 2: an approval decided on another replica releases a held call.
async fn a_decision_on_one_replica_releases_a_call_on_another(f: &Fleet, sdk: &str) {
    // 2. A call held for approval on replica 1 is released by a decision on replica 2.
    let boss = f.key("boss", APP, "approver").await;
    let held = Command::new(python())
        .arg(repo().join("testdata/clients/py_approval_client.py"))
        .args([
            f.url(1).as_str(),
            sdk,
            APP,
            "legacy",
            "fl__deploy",
            &json!({"service": "billing"}).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("held call");
    let id = pending_id(f.ports[2], &boss).await;
    let decided = Instant::now();
    let (ok, _, err) = approvals(f.ports[2], &boss, &["approve", &id]).await;
    assert!(ok, "{err}");
    let out = tokio::time::timeout(Duration::from_secs(60), held.wait_with_output())
        .await
        .expect("held call finished")
        .expect("output");
    let released = decided.elapsed();
    let v = last_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["result"]["content"][0]["text"], "deployed billing", "{v}");
    assert!(
        f.metric(1, "gatehouse_fleet_received_total", "kind=\"approval\"")
            .await
            >= 1.0,
        "replica 1 was not told of the decision"
    );
    eprintln!("approval on replica 2 released the call on replica 1 in {released:?}");
}

/// Step 3: a key revoked through one replica is refused by all.
async fn a_revocation_reaches_every_replica(f: &Fleet) {
    // 3. A key revoked through one replica is refused by all of them at once.
    let doomed = f.key("doomed", "t", "agent").await;
    let clients = [
        connect(&f.url(0), &doomed).await,
        connect(&f.url(1), &doomed).await,
        connect(&f.url(2), &doomed).await,
    ];
    for c in &clients {
        let r = c
            .request(
                "tools/call",
                json!({"name": "fl__echo", "arguments": {"text": "hi"}}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.messages);
    }
    let key_id = doomed
        .strip_prefix("ghk_")
        .and_then(|r| r.split('_').next())
        .expect("key id");
    let out = Command::new(gatehouse_bin())
        .args(["keys", "--config"])
        .arg(f.config(0))
        .args(["revoke", key_id])
        .output()
        .await
        .expect("revoke");
    assert!(out.status.success());
    let revoked = Instant::now();
    // Replicas re-read the key store at most a second after it changes.
    let mut refused = [false; 3];
    while !refused.iter().all(|r| *r) && revoked.elapsed() < Duration::from_secs(3) {
        for (i, c) in clients.iter().enumerate() {
            if !refused[i] {
                let r = c
                    .request(
                        "tools/call",
                        json!({"name": "fl__echo", "arguments": {"text": "hi"}}),
                    )
                    .await;
                refused[i] = r.status == 401;
            }
        }
    }
    let took = revoked.elapsed();
    eprintln!("a key revoked through one replica was refused by all three after {took:?}");
    assert!(refused.iter().all(|r| *r), "a revoked key still works");
    // One second for the store's version check, and slack for a loaded machine.
    assert!(took < Duration::from_millis(1_500), "{took:?}");
}

/// Step 4: one rate limit across the fleet.
async fn one_rate_limit_across_the_fleet(f: &Fleet) {
    // 4. One rate limit across the fleet: a burst of 2 and one more, whichever replica.
    let limited = f.key("limited", "t", "agent").await;
    let mut allowed = 0;
    for i in 0..9 {
        let c = connect(&f.url(i % 3), &limited).await;
        let r = c
            .request(
                "tools/call",
                json!({"name": "fl__slow", "arguments": {"seconds": 0}}),
            )
            .await;
        if r.messages.iter().any(|m| m.get("result").is_some()) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "three replicas kept three separate limits");
}

/// Step 5: cancellations and session ends cross replicas.
async fn cancellations_and_session_ends_cross_replicas(f: &Fleet) {
    // 5. A cancellation sent through one replica stops the call running on another, and a
    //    session ended through one is refused by the others.
    let canceller = f.key("canceller", "t", "agent").await;
    let running = connect(&f.url(1), &canceller).await;
    let mut elsewhere = with_token(&Mcp::new(&f.url(2)), &canceller);
    elsewhere.session = running.session.clone();
    let slow = {
        let running = running.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = running
                .post(json!({"jsonrpc": "2.0", "id": 777, "method": "tools/call",
                    "params": {"name": "fl__slow", "arguments": {"seconds": 30}}}))
                .await;
            (started.elapsed(), r)
        })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    elsewhere
        .notify("notifications/cancelled", Some(json!({"requestId": 777})))
        .await;
    let (took, r) = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("the cancelled call ended")
        .expect("task");
    assert!(took < Duration::from_secs(15), "{took:?}: {:?}", r.messages);
    assert!(
        r.messages.iter().all(|m| m.get("result").is_none()),
        "{:?}",
        r.messages
    );
    assert!(
        f.metric(1, "gatehouse_fleet_received_total", "kind=\"cancel\"")
            .await
            >= 1.0
    );
    let session = running.session.clone().expect("session");
    let ended = elsewhere
        .http
        .delete(&elsewhere.url)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", &elsewhere.version)
        .send()
        .await
        .expect("delete");
    assert_eq!(ended.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = running
        .request(
            "tools/call",
            json!({"name": "fl__echo", "arguments": {"text": "hi"}}),
        )
        .await;
    assert_eq!(
        r.status, 404,
        "an ended session still works on another replica: {:?}",
        r.messages
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Calls/s and p99 of the TypeScript clients before the kill and while a replica was down.
fn report_load(calls: &[Value], killed_at: u64, back_at: u64) {
    let window = |from: u64, to: u64| {
        let mut ms: Vec<f64> = calls
            .iter()
            .filter(|c| c["ok"] == true)
            .filter(|c| c["at"].as_u64().is_some_and(|t| t >= from && t < to))
            .filter_map(|c| c["ms"].as_f64())
            .collect();
        ms.sort_by(f64::total_cmp);
        let p99 = ms
            .get((ms.len() * 99 / 100).min(ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let failed = calls
            .iter()
            .filter(|c| c["ok"] == false)
            .filter(|c| c["at"].as_u64().is_some_and(|t| t >= from && t < to))
            .count();
        (
            ms.len() as f64 * 1000.0 / (to - from).max(1) as f64,
            p99,
            failed,
        )
    };
    let before = window(killed_at - 2_000, killed_at);
    let during = window(killed_at, back_at);
    eprintln!(
        "fleet load (4 TypeScript SDK sessions): before the kill {:.0} calls/s, p99 {:.1} ms, {} failed; \
         replica down ({} ms) {:.0} calls/s, p99 {:.1} ms, {} failed",
        before.0,
        before.1,
        before.2,
        back_at - killed_at,
        during.0,
        during.1,
        during.2
    );
}

async fn approvals(port: u16, token: &str, args: &[&str]) -> (bool, String, String) {
    crate::common::approvals_cli(port, token, APP, args).await
}

/// The id of the one pending request, once there is one.
async fn pending_id(port: u16, token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = approvals(port, token, &["list", "--json"]).await;
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).expect("list json");
        if let Some(id) = v["approvals"][0]["id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no pending request");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads a legacy SSE stream until a `data:` line holds a JSON message with id `id`.
async fn sse_answer(stream: &mut reqwest::Response, seen: &mut String, id: u64) -> Value {
    loop {
        if let Some(v) = seen
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v["id"] == id)
        {
            return v;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no answer to {id} on the stream: {seen}"))
            .expect("stream")
            .expect("open stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Legacy HTTP+SSE behind a balancer without sticky sessions: one replica holds the event
/// stream, the POSTs land on another, and every answer crosses to the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_answers_reach_the_stream_held_by_another_replica() {
    let yaml = format!(
        "dev_mode: true\nsession: {{key: '{SESSION_KEY}'}}\nfleet: {{redis: 'redis://127.0.0.1:6379/', channel: 'gatehouse:fleet-legacy-{}'}}\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        free_port(),
        gatehouse_bin()
    );
    let a = crate::common::start_gateway(&yaml).await;
    let b = crate::common::start_gateway(&yaml).await;
    for base in [&a.base, &b.base] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/readyz"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "{base} never subscribed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("{}/sse", a.base))
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let endpoint = loop {
        if let Some(line) = seen.lines().find(|l| l.starts_with("data: /message")) {
            break line.trim_start_matches("data: ").to_owned();
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("endpoint event in time")
            .expect("stream")
            .expect("open stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    };
    let post = |body: Value| {
        http.post(format!("{}{endpoint}", b.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}}))
    .await
    .expect("POST initialize");
    assert_eq!(r.status(), 202);
    let init = sse_answer(&mut stream, &mut seen, 1).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
    let r = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "demo__search_files", "arguments": {"query": "rollback"}}}))
    .await
    .expect("POST tools/call");
    assert_eq!(r.status(), 202);
    let call = sse_answer(&mut stream, &mut seen, 2).await;
    assert!(
        call["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("deploy.md"),
        "{call}"
    );
}
