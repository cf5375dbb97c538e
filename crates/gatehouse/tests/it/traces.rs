//! OpenTelemetry traces: the gateway exports OTLP/HTTP protobuf to a receiver that decodes
//! it with the official definitions (opentelemetry-proto), continues the client's trace,
//! hands its own context on to HTTP and stdio upstreams (real Python SDK servers), and keeps
//! answering when the collector is gone.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Mcp, free_port, python, read_reply, repo, serve_config, wait_port};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

fn spawn_py(args: &[String]) -> Child {
    Command::new(python())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python peer")
}

/// The spans the receiver has decoded so far.
fn spans(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Waits until the receiver holds spans of `trace_id`, including a server span.
async fn trace_of(out: &Path, trace_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> = spans(out)
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id)
            .collect();
        if found.iter().any(|s| s["kind"] == 2) {
            return found;
        }
        assert!(Instant::now() < deadline, "no server span of {trace_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tools/call with an optional `traceparent` header; the tool's text answer, parsed.
async fn call_with(mcp: &Mcp, tool: &str, traceparent: Option<&str>) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": {}}});
    let mut rb = mcp.builder(serde_json::to_vec(&body).expect("json"));
    if let Some(tp) = traceparent {
        rb = rb.header("traceparent", tp);
    }
    let reply = read_reply(rb.send().await.expect("send")).await;
    let text = reply.result()["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", reply.messages))
        .to_owned();
    serde_json::from_str(&text).expect("the tool's JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_traced_to_a_real_collector_and_the_context_reaches_upstreams() {
    let (collector, web, port) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gatehouse-traces-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("spans.jsonl");
    let server = repo().join("testdata/servers/trace_server.py");
    let mut receiver = spawn_py(&[
        repo()
            .join("testdata/servers/otlp_receiver.py")
            .display()
            .to_string(),
        collector.to_string(),
        out.display().to_string(),
    ]);
    let _web = spawn_py(&[server.display().to_string(), "http".into(), web.to_string()]);
    wait_port(collector).await;
    wait_port(web).await;
    let cfg = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{port}\ndev_mode: true\nstore: {{sqlite: {db}}}\ntraces:\n  endpoint: http://127.0.0.1:{collector}/v1/traces\n  service_name: gatehouse-it\n  headers: {{x-collector-key: k1}}\nupstreams:\n  web: {{url: \"http://127.0.0.1:{web}/mcp\"}}\n  local:\n    command: {py}\n    args: ['{server}']\n",
            db = dir.join("gatehouse.db").display(),
            py = python(),
            server = server.display(),
        ),
    )
    .expect("config");
    let _gw = serve_config(&cfg, port, &[]).await;
    let mcp = Mcp::connect(&format!("http://127.0.0.1:{port}/mcp"), "2025-11-25").await;

    // 1. The client's trace continues through the gateway to an HTTP upstream: header and
    //    `_meta` carry the gateway's span, not the client's.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let seen = call_with(
        &mcp,
        "web__trace_context",
        Some(&format!("00-{client_trace}-{client_span}-01")),
    )
    .await;
    let handed = seen["header"]
        .as_str()
        .expect("traceparent header upstream");
    assert_eq!(seen["meta"], seen["header"], "{seen}");
    let parts: Vec<&str> = handed.split('-').collect();
    assert_eq!(parts[1], client_trace, "{handed}");
    assert_ne!(parts[2], client_span, "{handed}");

    let trace = trace_of(&out, client_trace).await;
    let server_span = trace.iter().find(|s| s["kind"] == 2).expect("server span");
    assert_eq!(server_span["parent"], client_span);
    assert_eq!(server_span["name"], "tools/call web__trace_context");
    let attrs = &server_span["attributes"];
    assert_eq!(attrs["mcp.method.name"], "tools/call");
    assert_eq!(attrs["gen_ai.tool.name"], "web__trace_context");
    assert_eq!(attrs["gen_ai.operation.name"], "execute_tool");
    assert_eq!(attrs["jsonrpc.request.id"], "7");
    assert_eq!(attrs["gatehouse.outcome"], "ok");
    assert!(attrs["gatehouse.correlation_id"].is_string());
    assert_eq!(server_span["resource"]["service.name"], "gatehouse-it");
    assert_eq!(
        server_span["auth"], "k1",
        "the configured collector headers"
    );
    // The upstream call: a client span whose id is what the upstream received.
    let upstream = trace.iter().find(|s| s["kind"] == 3).expect("client span");
    assert_eq!(upstream["span_id"], parts[2]);
    assert_eq!(upstream["parent"], server_span["span_id"]);
    assert_eq!(upstream["attributes"]["gen_ai.tool.name"], "trace_context");
    assert_eq!(upstream["attributes"]["gatehouse.upstream"], "web");
    // A child span per stage, in the request's span.
    let stages: Vec<&str> = trace
        .iter()
        .filter(|s| s["kind"] == 1)
        .map(|s| {
            assert_eq!(s["parent"], server_span["span_id"]);
            s["name"].as_str().unwrap_or("")
        })
        .collect();
    for stage in [
        "route.scope",
        "policy.authorize",
        "validate.schema",
        "hold.approval",
    ] {
        assert!(stages.contains(&stage), "{stage} in {stages:?}");
    }

    // 2. No context from the client: a new trace, handed to a stdio upstream in `_meta`.
    let seen = call_with(&mcp, "local__trace_context", None).await;
    assert!(seen["header"].is_null(), "{seen}");
    let handed = seen["meta"].as_str().expect("_meta.traceparent over stdio");
    let parts: Vec<&str> = handed.split('-').collect();
    let trace = trace_of(&out, parts[1]).await;
    let server_span = trace.iter().find(|s| s["kind"] == 2).expect("server span");
    assert_eq!(server_span["parent"], "", "a root span");
    let upstream = trace.iter().find(|s| s["kind"] == 3).expect("client span");
    assert_eq!(upstream["span_id"], parts[2]);

    // 3. A refused call is a failed span naming its rule.
    let refused = mcp
        .request(
            "tools/call",
            json!({"name": "web__trace_context", "arguments": "nope"}),
        )
        .await;
    assert!(
        refused.messages[0]["error"].is_object(),
        "{:?}",
        refused.messages
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let failed = spans(&out).into_iter().any(|s| {
            s["kind"] == 2 && s["status"] == 2 && s["attributes"]["gatehouse.rule"].is_string()
        });
        if failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed span for the refused call"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 4. The collector gone: calls are still answered.
    let _ = receiver.kill().await;
    let seen = call_with(&mcp, "web__trace_context", None).await;
    assert!(seen["header"].is_string(), "{seen}");
}
