//! Upstreams that crash, hang, start late or change their tools; config hot reload; sessions
//! served by another replica; the stdio bridge.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    Mcp, everything_js, free_port, gatehouse_bin, py_server, python, repo, start_gateway,
    start_gateway_with,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn flaky() -> String {
    repo()
        .join("testdata/servers/flaky_server.py")
        .display()
        .to_string()
}

async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_upstream_is_restarted_and_hung_calls_time_out() {
    let yaml = format!(
        "dev_mode: true\nlimits: {{request_timeout_secs: 2}}\nupstreams:\n  flaky:\n    command: {}\n    args: ['{}']\n",
        python(),
        flaky()
    );
    let gw = start_gateway(&yaml).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let before = c.call("flaky__whoami", json!({})).await["content"][0]["text"].clone();

    // The upstream dies mid-call: the client gets a generic error with a correlation id.
    let r = c
        .request(
            "tools/call",
            json!({"name": "flaky__crash", "arguments": {}}),
        )
        .await;
    assert_eq!(r.error_code(), -32000);
    let err = &r.last()["error"];
    assert_eq!(err["message"], "Upstream unavailable");
    assert!(
        err["data"]["correlationId"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        !err.to_string().contains("python") && !err.to_string().contains("flaky_server"),
        "no internals: {err}"
    );

    // The supervisor restarts it; the same session keeps working with a new process.
    let gw2 = gw.gw.clone();
    eventually("the upstream is back", 30, || {
        let g = gw2.clone();
        async move { g.not_ready().is_empty() }
    })
    .await;
    let after = c.call("flaky__whoami", json!({})).await["content"][0]["text"].clone();
    assert_ne!(before, after, "a new process answers");

    // A call that never returns is cut at the configured timeout; the upstream is told.
    let started = Instant::now();
    let r = c
        .request(
            "tools/call",
            json!({"name": "flaky__hang", "arguments": {}}),
        )
        .await;
    assert_eq!(r.error_code(), -32001);
    assert!(started.elapsed() < Duration::from_secs(6));
    let again = c.call("flaky__whoami", json!({})).await["content"][0]["text"].clone();
    assert_eq!(again, after, "the upstream survived the abandoned call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancellation_reaches_the_upstream_call() {
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  flaky:\n    command: {}\n    args: ['{}']\n",
        python(),
        flaky()
    );
    let gw = start_gateway(&yaml).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        c2.post(json!({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": {"name": "flaky__hang", "arguments": {}}})).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.notify(
        "notifications/cancelled",
        Some(json!({"requestId": "slow-1", "reason": "user gave up"})),
    )
    .await;
    let r = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("cancel ends the call")
        .expect("join");
    assert_eq!(r.last()["id"], "slow-1");
    assert!(r.last()["error"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_starts_late_is_picked_up() {
    let port = free_port();
    let cfg = gatehouse_proxy::Config::from_yaml(
        &format!("dev_mode: true\nupstreams:\n  late:\n    url: http://127.0.0.1:{port}/mcp\n"),
        &|_| None,
    )
    .expect("config");
    let gw = start_gateway_with(cfg, false).await;
    let ready = reqwest::get(format!("{}/readyz", gw.base))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["waiting"], json!(["late"]));
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let r = c
        .request("resources/read", json!({"uri": "py://notes/x"}))
        .await;
    assert!(r.last()["error"].is_object(), "nothing to route to yet");

    let _py = Command::new(python())
        .args([py_server(), "http".into(), port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start");
    let base = gw.base.clone();
    eventually("the late upstream becomes ready", 60, || {
        let url = format!("{base}/readyz");
        async move {
            reqwest::get(url)
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        }
    })
    .await;
    assert_eq!(
        c.call("late__add", json!({"a": 2, "b": 2})).await["content"][0]["text"],
        "4"
    );
}

/// Reads SSE events from a GET stream in the background.
fn listen(c: &Mcp) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    listen_from(c, None)
}

/// Reads SSE events (with their `id`, as `_eventId`) from a GET stream, resuming after
/// `last_event_id` when given.
fn listen_from(
    c: &Mcp,
    last_event_id: Option<&str>,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut req = c
        .http
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().expect("session"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    tokio::spawn(async move {
        let Ok(mut resp) = req.send().await else {
            return;
        };
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let ev: String = buf.drain(..end + 2).collect();
                let id = ev
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .map(str::to_owned);
                for line in ev.lines() {
                    if let Some(data) = line.strip_prefix("data: ")
                        && let Ok(mut v) = serde_json::from_str::<Value>(data)
                    {
                        v["_eventId"] = json!(id);
                        let _ = tx.send(v);
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_added_later_is_announced_and_cannot_take_over_a_name() {
    // Both upstreams unprefixed, so names can collide.
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n    namespace: ''\n  flaky:\n    command: {}\n    args: ['{}']\n    namespace: ''\n",
        gatehouse_bin(),
        python(),
        flaky()
    );
    let gw = start_gateway(&yaml).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let mut events = listen(&c);
    tokio::time::sleep(Duration::from_millis(200)).await;

    c.call("grow", json!({"name": "brand_new"})).await;
    let note = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(v) if v["method"] == "notifications/tools/list_changed" => return v,
                Some(_) => continue,
                None => panic!("GET stream ended"),
            }
        }
    })
    .await
    .expect("list_changed reaches the client's GET stream");
    assert_eq!(note["method"], "notifications/tools/list_changed");
    let names: Vec<String> = c
        .list("tools/list", "tools")
        .await
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"brand_new".to_owned()), "{names:?}");
    assert!(
        c.call("brand_new", json!({})).await["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("added tool")
    );

    // Now the same upstream adds a tool named like the demo server's: refused, the
    // incumbent keeps the name and calls still reach the demo server.
    c.call("grow", json!({"name": "read_database"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tools = c.list("tools/list", "tools").await;
    let owners: Vec<&Value> = tools
        .iter()
        .filter(|t| t["name"] == "read_database")
        .collect();
    assert_eq!(owners.len(), 1, "exactly one read_database is exposed");
    let r = c
        .call(
            "read_database",
            json!({"query": "select count(*) as n from customers"}),
        )
        .await;
    assert_eq!(
        r["structuredContent"]["rows"][0]["n"], 5,
        "still the demo server's tool: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_hot_reload_applies_good_edits_and_rejects_bad_ones() {
    let dir = std::env::temp_dir().join(format!("gatehouse-reload-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("gatehouse.yaml");
    let base = format!(
        "dev_mode: true\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    );
    std::fs::write(&path, &base).expect("write");
    let cfg = gatehouse_proxy::Config::load(&path).expect("config");
    let gw = start_gateway_with(cfg, true).await;
    let _watch = gatehouse_proxy::reload::watch(path.clone(), gw.gw.clone()).expect("watch");
    let scoped = format!("{}/s/ops/mcp", gw.base);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(
        Mcp::new(&scoped).post(init.clone()).await.status,
        StatusCode::NOT_FOUND
    );

    std::fs::write(
        &path,
        format!("{base}virtual_servers:\n  ops:\n    upstreams: [demo]\n"),
    )
    .expect("write");
    let url = scoped.clone();
    let body = init.clone();
    eventually("the new virtual server is served", 10, || {
        let (url, body) = (url.clone(), body.clone());
        async move { Mcp::new(&url).post(body).await.status == StatusCode::OK }
    })
    .await;

    // A broken edit is refused; the running config keeps serving.
    std::fs::write(
        &path,
        format!("{base}virtual_servers:\n  ops:\n    upstreams: [nope]\n  bogus_field: 1\n"),
    )
    .expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        Mcp::new(&scoped).post(init.clone()).await.status,
        StatusCode::OK
    );
    std::fs::write(&path, "listen: [not, an, address\n").expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        Mcp::new(&scoped).post(init.clone()).await.status,
        StatusCode::OK
    );

    // A later good edit still applies.
    std::fs::write(&path, &base).expect("write");
    let url = scoped.clone();
    eventually("the virtual server is removed", 10, || {
        let (url, body) = (url.clone(), init.clone());
        async move { Mcp::new(&url).post(body).await.status == StatusCode::NOT_FOUND }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_replica_is_served_by_another() {
    let key = "c2hhcmVkLXJlcGxpY2Eta2V5LWZvci10ZXN0cy0zMmI="; // 32 bytes, base64
    let yaml = format!(
        "dev_mode: true\nsession: {{key: '{key}'}}\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    );
    let a = start_gateway(&yaml).await;
    let b = start_gateway(&yaml).await;
    let on_a = Mcp::connect(&a.mcp(), "2025-11-25").await;
    let mut on_b = on_a.clone();
    on_b.url = b.mcp();
    let r = on_b
        .call("demo__search_files", json!({"query": "rollback"}))
        .await;
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("deploy.md")
    );
    // A replica with another key does not accept it.
    let other = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    ))
    .await;
    let mut on_other = on_a.clone();
    on_other.url = other.mcp();
    assert_eq!(
        on_other.request("ping", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_bridge_relays_a_desktop_client() {
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    ))
    .await;
    let mut child = Command::new(gatehouse_bin())
        .args(["connect", &gw.mcp()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start bridge");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut send = async |v: Value| {
        let mut b = serde_json::to_vec(&v).expect("json");
        b.push(b'\n');
        stdin.write_all(&b).await.expect("write");
    };
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "desktop", "version": "1"}}})).await;
    let first: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("line")).expect("json");
    assert_eq!(first["result"]["protocolVersion"], "2025-06-18");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "demo__read_database", "arguments": {"query": "select name from customers where id = ?1", "params": [2]}}})).await;
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("answer")
        .expect("read")
        .expect("line");
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["id"], 2);
    assert_eq!(
        v["result"]["structuredContent"]["rows"][0]["name"],
        "Globex"
    );
    send(json!({"jsonrpc": "2.0", "id": 3, "method": "nope"})).await;
    let v: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("line")).expect("json");
    assert_eq!(v["error"]["code"], -32601);
    send(serde_json::Value::String("not json-rpc".into())).await;
    let v: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("line")).expect("json");
    assert_eq!(v["error"]["code"], -32600);
}

async fn next_list_changed(events: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(v) if v["method"] == "notifications/tools/list_changed" => return v,
                Some(_) => continue,
                None => panic!("GET stream ended"),
            }
        }
    })
    .await
    .expect("a list_changed event arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_stream_resumes_after_last_event_id() {
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  flaky:\n    command: {}\n    args: ['{}']\n",
        python(),
        flaky()
    );
    let gw = start_gateway(&yaml).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let mut events = listen(&c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.call("flaky__grow", json!({"name": "first"})).await;
    let first = next_list_changed(&mut events).await;
    let first_id = first["_eventId"]
        .as_str()
        .expect("events carry ids")
        .to_owned();
    drop(events);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // While the client is away the list changes again.
    c.call("flaky__grow", json!({"name": "second"})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut resumed = listen_from(&c, Some(&first_id));
    let missed = next_list_changed(&mut resumed).await;
    let seq = |id: &str| -> (u64, u64) {
        let (s, q) = id.split_once(':').expect("ids are stream:seq");
        (s.parse().expect("stream"), q.parse().expect("seq"))
    };
    let (first_stream, first_seq) = seq(&first_id);
    let (missed_stream, missed_seq) = seq(missed["_eventId"].as_str().expect("id"));
    assert_eq!(missed_stream, first_stream, "replayed on the same stream");
    assert!(
        missed_seq > first_seq,
        "only events after the one named are replayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_upstream_logs_never_reach_another_session() {
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  flaky:\n    command: {}\n    args: ['{}']\n",
        python(),
        flaky()
    );
    let gw = start_gateway(&yaml).await;
    let alice = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let bob = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let mut bob_stream = listen(&bob);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let r = alice
        .request(
            "tools/call",
            json!({"name": "flaky__chatty", "arguments": {"tag": "alice-secret"}}),
        )
        .await;
    let logs: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(
        logs.len(),
        1,
        "the caller gets its own call's log: {:?}",
        r.messages
    );
    assert!(logs[0].to_string().contains("alice-secret"));
    assert_eq!(r.last()["result"]["content"][0]["text"], "alice-secret");

    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(ev) = bob_stream.try_recv() {
        assert!(
            !ev.to_string().contains("alice-secret"),
            "another session saw the log: {ev}"
        );
    }
}

/// Reads SSE events from a response until `stop` says so; returns (id, message) pairs.
async fn read_events(
    resp: &mut reqwest::Response,
    mut stop: impl FnMut(&Value) -> bool,
) -> Vec<(Option<String>, Value)> {
    let mut out = Vec::new();
    let mut buf = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let ev: String = buf.drain(..end + 2).collect();
            let id = ev
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(str::to_owned);
            let data: String = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let v: Value = if data.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&data).expect("json")
            };
            let done = stop(&v);
            out.push((id, v));
            if done {
                return out;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_not_a_cancellation_and_the_answer_is_resumable() {
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  ev:\n    command: node\n    args: ['{}']\n",
        everything_js()
    ))
    .await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let body = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
        "name": "ev__trigger-long-running-operation", "arguments": {"duration": 2, "steps": 4},
        "_meta": {"progressToken": "my-token"}}});
    let mut resp = c
        .builder(serde_json::to_vec(&body).expect("json"))
        .send()
        .await
        .expect("send");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let seen = read_events(&mut resp, |v| v["method"] == "notifications/progress").await;
    assert_eq!(
        seen[0].1,
        Value::Null,
        "the stream opens with a priming event"
    );
    assert!(seen[0].0.as_deref().is_some_and(|id| id.ends_with(":0")));
    let (last_id, progress) = seen.last().cloned().expect("a progress event");
    assert_eq!(progress["params"]["progressToken"], "my-token");
    drop(resp); // the connection is lost mid-call

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut resumed = c
        .http
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().expect("session"))
        .header(
            "last-event-id",
            last_id.clone().expect("progress events carry ids"),
        )
        .send()
        .await
        .expect("resume");
    assert_eq!(resumed.status(), StatusCode::OK);
    let rest = tokio::time::timeout(
        Duration::from_secs(10),
        read_events(&mut resumed, |v| v["id"] == 77),
    )
    .await
    .expect("the rest of the stream arrives");
    let result = &rest.last().expect("events").1;
    assert_eq!(result["id"], 77, "{rest:?}");
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert!(
        text.contains("completed"),
        "the call ran to completion: {text}"
    );
    let progress_after: Vec<&Value> = rest
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["method"] == "notifications/progress")
        .collect();
    assert!(
        !progress_after.is_empty() && progress_after.len() < 4,
        "only the missed progress is replayed: {rest:?}"
    );

    // Another session cannot resume this stream.
    let other = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let r = other
        .http
        .get(&other.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", other.session.clone().expect("session"))
        .header("last-event-id", last_id.expect("id"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_upstream_cannot_grow_the_catalog_without_bound() {
    // An upstream whose tools/list never ends and whose tools are large.
    let pages = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let served = pages.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: axum::body::Bytes| {
            let served = served.clone();
            async move {
                let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let Some(id) = msg.get("id").cloned() else {
                    return (axum::http::StatusCode::ACCEPTED, String::new());
                };
                let result = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "hostile", "version": "1"}}),
                    "tools/list" => {
                        let page = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let tools: Vec<Value> = (0..500)
                            .map(|i| json!({"name": format!("t{page}_{i}"), "description": "x".repeat(2000), "inputSchema": {"type": "object"}}))
                            .collect();
                        json!({"tools": tools, "nextCursor": format!("page-{}", page + 1)})
                    }
                    _ => json!({}),
                };
                (axum::http::StatusCode::OK, json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  h:\n    url: {url}\n"
    ))
    .await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let tools = c.list("tools/list", "tools").await;
    let bytes: usize = tools.iter().map(|t| t.to_string().len()).sum();
    assert!(
        !tools.is_empty() && tools.len() < 10_000,
        "{} tools kept",
        tools.len()
    );
    assert!(bytes <= 9 * 1024 * 1024, "{bytes} bytes kept");
    assert!(
        pages.load(std::sync::atomic::Ordering::Relaxed) <= 100,
        "pagination is bounded"
    );
    // And the gateway still answers.
    c.request("ping", json!({})).await.result();
}

/// `/readyz` answers 503 naming Redis and PostgreSQL when they do not answer (so a load
/// balancer stops sending calls that would fail closed), and 200 when they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_shared_state_that_does_not_answer() {
    crate::common::fresh_database("gatehouse_ready").await;
    let dead = free_port();
    let config = |redis: String, pg: String| {
        gatehouse_proxy::Config::from_yaml(
            &format!(
                "dev_mode: true\naudit: {{postgres: \"{pg}\"}}\nrate_limits:\n  redis: {redis}\n  rules:\n    - {{name: calls, per: principal, methods: [tools/call], requests: 100, per_secs: 1}}\n"
            ),
            &|_| None,
        )
        .expect("config")
    };
    let up = start_gateway_with(
        config(
            "redis://127.0.0.1:6379/0".into(),
            "host=127.0.0.1 user=postgres dbname=gatehouse_ready".into(),
        ),
        false,
    )
    .await;
    let r = reqwest::get(format!("{}/readyz", up.base))
        .await
        .expect("readyz");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["unavailable"], json!([]));

    let down = start_gateway_with(
        config(
            format!("redis://127.0.0.1:{dead}/0"),
            format!("host=127.0.0.1 port={dead} user=postgres dbname=gatehouse_ready"),
        ),
        false,
    )
    .await;
    let r = reqwest::get(format!("{}/readyz", down.base))
        .await
        .expect("readyz");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["unavailable"], json!(["redis", "postgres"]));
    assert_eq!(body["ready"], false);
    // Probes at once share one check, and none of them is told "ready" meanwhile.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let probes = (0..16).map(|_| {
        let url = format!("{}/readyz", down.base);
        tokio::spawn(async move { reqwest::get(url).await.expect("readyz").status() })
    });
    for p in probes.collect::<Vec<_>>() {
        assert_eq!(p.await.expect("probe"), StatusCode::SERVICE_UNAVAILABLE);
    }
    // Alive all the same: liveness is not readiness.
    let health = reqwest::get(format!("{}/healthz", down.base))
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}
