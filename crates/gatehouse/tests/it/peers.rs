//! Real MCP peers through the gateway: the official TypeScript and Python SDK clients, the
//! npm reference servers over stdio, Streamable HTTP and legacy SSE, and a Python SDK server.
//! Each test compares what comes through the gateway with the upstream answering directly.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;

use crate::common::{
    Mcp, everything_http, everything_js, filesystem_js, free_port, gatehouse_bin, last_json, peers,
    py_http, py_server, python, repo, run_ok, start_gateway, wait_port,
};
use serde_json::{Value, json};
use tokio::process::Command;

fn strip(ns: &str, tools: &[Value]) -> BTreeMap<String, Value> {
    tools
        .iter()
        .map(|t| {
            let name = t["name"].as_str().expect("tool name");
            let mut t = t.clone();
            t["name"] = json!(name.strip_prefix(ns).unwrap_or(name));
            (t["name"].as_str().unwrap_or_default().to_owned(), t)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_upstream_matches_direct_calls() {
    let everything = everything_http("streamableHttp").await;
    let direct_url = format!("http://127.0.0.1:{}/mcp", everything.port);
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  ev:\n    url: {direct_url}\n"
    ))
    .await;
    let direct = Mcp::connect(&direct_url, "2025-11-25").await;
    let through = Mcp::connect(&gw.mcp(), "2025-11-25").await;

    let d_tools = strip("", &direct.list("tools/list", "tools").await);
    let g_tools = strip("ev__", &through.list("tools/list", "tools").await);
    assert!(d_tools.len() > 10, "server-everything lists its tools");
    assert_eq!(
        d_tools, g_tools,
        "every tool definition passes through unchanged but for its name"
    );

    for (tool, args) in [
        ("echo", json!({"message": "through the gate"})),
        ("get-sum", json!({"a": 40, "b": 2})),
        ("get-structured-content", json!({"location": "New York"})),
        ("get-tiny-image", json!({})),
    ] {
        let d = direct.call(tool, args.clone()).await;
        let g = through.call(&format!("ev__{tool}"), args).await;
        assert_eq!(d, g, "{tool}: same result directly and through the gateway");
    }

    let d_prompts = direct.list("prompts/list", "prompts").await;
    let g_prompts = through.list("prompts/list", "prompts").await;
    assert_eq!(d_prompts.len(), g_prompts.len());
    assert!(
        g_prompts
            .iter()
            .all(|p| p["name"].as_str().unwrap_or("").starts_with("ev__"))
    );

    let d_res = direct.list("resources/list", "resources").await;
    let g_res = through.list("resources/list", "resources").await;
    assert_eq!(d_res, g_res, "resources keep their URIs");
    let uri = d_res[0]["uri"].as_str().expect("uri");
    let d_read = direct.request("resources/read", json!({"uri": uri})).await;
    let g_read = through.request("resources/read", json!({"uri": uri})).await;
    assert_eq!(d_read.result(), g_read.result());

    let prompt = g_prompts
        .iter()
        .find(|p| p["arguments"].as_array().is_none_or(Vec::is_empty))
        .expect("a prompt without arguments");
    let name = prompt["name"].as_str().expect("name");
    let d_get = direct
        .request(
            "prompts/get",
            json!({"name": name.strip_prefix("ev__").unwrap_or(name)}),
        )
        .await;
    let g_get = through.request("prompts/get", json!({"name": name})).await;
    assert_eq!(d_get.result(), g_get.result());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_progress_and_sampling_through_stdio_upstream() {
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  ev:\n    command: node\n    args: ['{}']\n",
        everything_js()
    ))
    .await;
    let script = peers().join("ts_client.mjs");
    let out = run_ok(
        Command::new("node").arg(&script).args([
            &gw.mcp(),
            "http",
            "ev__echo",
            r#"{"message":"hi from ts"}"#,
        ]),
        60,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["protocol"], "2025-11-25");
    assert_eq!(v["result"]["content"][0]["text"], "Echo: hi from ts");
    assert!(
        v["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t == "ev__trigger-sampling-request")
    );

    // Progress notifications reach the client with its own progress token.
    let out = run_ok(
        Command::new("node").arg(&script).args([
            &gw.mcp(),
            "http",
            "ev__trigger-long-running-operation",
            r#"{"duration":1,"steps":3}"#,
            "progress",
        ]),
        60,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["progress"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["progress"][2], json!({"progress": 3, "total": 3}));

    // The upstream's sampling request is routed to the client whose call caused it.
    let out = run_ok(
        Command::new("node").arg(&script).args([
            &gw.mcp(),
            "http",
            "ev__trigger-sampling-request",
            r#"{"prompt":"hello"}"#,
        ]),
        60,
    )
    .await;
    let v = last_json(&out);
    let text = v["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("sampled-by-ts-client"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_on_both_sides() {
    // A legacy HTTP+SSE upstream, reached by a legacy HTTP+SSE client.
    let everything = everything_http("sse").await;
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  ev:\n    url: http://127.0.0.1:{}/sse\n    transport: sse\n",
        everything.port
    ))
    .await;
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("ts_client.mjs"))
            .args([
                &format!("{}/sse", gw.base),
                "sse",
                "ev__get-sum",
                r#"{"a":1,"b":2}"#,
            ]),
        60,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(
        v["result"]["content"][0]["text"],
        "The sum of 1 and 2 is 3."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_stateless_and_legacy_against_python_and_old_servers() {
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  py:\n    command: {py}\n    args: ['{srv}']\n  old:\n    command: {gh}\n    args: [demo-server, --max-version, '2025-03-26']\n",
        py = python(),
        srv = py_server(),
        gh = gatehouse_bin()
    );
    let gw = start_gateway(&yaml).await;
    assert_eq!(
        gw.gw
            .upstream("old")
            .and_then(|u| u.info())
            .map(|i| i.version.as_str()),
        Some("2025-03-26")
    );
    let client = repo().join("testdata/clients/py_client.py");

    // 2026-07-28 client (server/discover, no session) ↔ 2025-03-26 stdio server.
    let out = run_ok(
        Command::new(python()).arg(&client).args([
            &gw.mcp(),
            "auto",
            "old__search_files",
            r#"{"query":"rollback"}"#,
        ]),
        90,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["protocol"], "2026-07-28");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("ops/deploy.md"),
        "{v}"
    );

    // 2026-07-28 client ↔ Python SDK server.
    let out = run_ok(
        Command::new(python()).arg(&client).args([
            &gw.mcp(),
            "auto",
            "py__add",
            r#"{"a":20,"b":22}"#,
        ]),
        90,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["protocol"], "2026-07-28");
    assert_eq!(v["result"]["structuredContent"]["result"], 42);

    // The same client forced to the initialize handshake.
    let out = run_ok(
        Command::new(python()).arg(&client).args([
            &gw.mcp(),
            "legacy",
            "py__shout",
            r#"{"text":"quiet"}"#,
        ]),
        90,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["protocol"], "2025-11-25");
    assert_eq!(v["result"]["content"][0]["text"], "QUIET");

    // A 2025-03-26 client ↔ the Python SDK server (which would speak 2026-07-28).
    let old = Mcp::connect(&gw.mcp(), "2025-03-26").await;
    assert_eq!(old.version, "2025-03-26");
    let r = old.call("py__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(r["content"][0]["text"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_over_http_matches_direct() {
    let py = py_http().await;
    let direct_url = format!("http://127.0.0.1:{}/mcp", py.port);
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  py:\n    url: {direct_url}\n"
    ))
    .await;
    let direct = Mcp::connect(&direct_url, "2025-11-25").await;
    let through = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    assert_eq!(
        strip("", &direct.list("tools/list", "tools").await),
        strip("py__", &through.list("tools/list", "tools").await)
    );
    assert_eq!(
        direct.call("add", json!({"a": 5, "b": 6})).await,
        through.call("py__add", json!({"a": 5, "b": 6})).await
    );
    let d = direct
        .request("resources/read", json!({"uri": "py://notes/tls"}))
        .await;
    let g = through
        .request("resources/read", json!({"uri": "py://notes/tls"}))
        .await;
    assert_eq!(
        d.result(),
        g.result(),
        "templated resources route by their URI prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_server_and_environment_scrubbing() {
    let dir = std::env::temp_dir().join(format!("gatehouse-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("hello.txt"), "hello filesystem").expect("write");
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  fs:\n    command: node\n    args: ['{fs}', '{dir}']\n  ev:\n    command: node\n    args: ['{ev}']\n    inherit_env: [PATH]\n    env: {{GRANTED_TO_CHILD: 'yes'}}\n",
        fs = filesystem_js(),
        dir = dir.display(),
        ev = everything_js()
    );
    let gw = start_gateway(&yaml).await;
    let c = Mcp::connect(&gw.mcp(), "2025-06-18").await;
    let r = c
        .call(
            "fs__read_text_file",
            json!({"path": dir.join("hello.txt").display().to_string()}),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "hello filesystem");
    // Path outside the allowed directory: the filesystem server itself refuses.
    let r = c
        .call("fs__read_text_file", json!({"path": "/etc/passwd"}))
        .await;
    assert_eq!(r["isError"], true);

    let env = c.call("ev__get-env", json!({})).await;
    let text = env["content"][0]["text"].as_str().expect("env text");
    assert!(
        text.contains("GRANTED_TO_CHILD"),
        "granted variable is passed"
    );
    assert!(text.contains("\"PATH\""), "inherited variable is passed");
    assert!(
        !text.contains("CARGO_MANIFEST_DIR") && !text.contains("\"HOME\""),
        "nothing else leaks: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_clients_reach_a_server_that_speaks_only_2026_07_28() {
    let port = free_port();
    let _server = Command::new(python())
        .arg(repo().join("testdata/servers/modern_only_server.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start modern-only server");
    wait_port(port).await;
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  mo:\n    url: http://127.0.0.1:{port}/mcp\n"
    ))
    .await;
    let info = gw
        .gw
        .upstream("mo")
        .and_then(|u| u.info())
        .expect("connected");
    assert_eq!(
        info.version.as_str(),
        "2026-07-28",
        "the gateway fell back to the stateless protocol upstream"
    );
    assert_eq!(info.server_info["name"], "gatehouse-modern-only-peer");

    // A 2025-03-26 session client.
    let old = Mcp::connect(&gw.mcp(), "2025-03-26").await;
    let tools = old.list("tools/list", "tools").await;
    assert!(
        tools.iter().any(|t| t["name"] == "mo__multiply"),
        "{tools:?}"
    );
    let r = old.call("mo__multiply", json!({"a": 6, "b": 7})).await;
    assert_eq!(r["content"][0]["text"], "42");

    // A legacy HTTP+SSE client (2024-11-05).
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("ts_client.mjs"))
            .args([
                &format!("{}/sse", gw.base),
                "sse",
                "mo__multiply",
                r#"{"a":3,"b":5}"#,
            ]),
        60,
    )
    .await;
    assert_eq!(last_json(&out)["result"]["content"][0]["text"], "15");

    // And a 2026-07-28 client, end to end stateless.
    let out = run_ok(
        Command::new(python())
            .arg(repo().join("testdata/clients/py_client.py"))
            .args([&gw.mcp(), "auto", "mo__multiply", r#"{"a":2,"b":21}"#]),
        90,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["protocol"], "2026-07-28");
    assert_eq!(v["result"]["structuredContent"]["result"], 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_ends_a_stream_mid_call_is_resumed() {
    // The Python SDK server (with an event store) answers test_reconnection by sending a
    // priming event, closing the stream, and leaving the result for a Last-Event-ID resume.
    let port = free_port();
    let _server = Command::new(python())
        .arg(repo().join("testdata/servers/conformance_server.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start server");
    wait_port(port).await;
    let gw = start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  up:\n    url: http://127.0.0.1:{port}/mcp\n"
    ))
    .await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    for _ in 0..3 {
        let r = c.call("up__test_reconnection", json!({})).await;
        assert_eq!(
            r["content"][0]["text"], "Reconnection test completed",
            "{r}"
        );
    }
}
