//! Header passthrough against a real Python SDK server that reports every header a call
//! arrived with: the client headers named for an upstream reach it, and nothing else the
//! client sent does — not its API key, its cookies, its session, its other headers — nor do
//! they reach an upstream that names none. Names that may never pass are refused at load.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::common::{Mcp, free_port, gatehouse_bin, python, repo, serve_config, wait_port};

const PEPPER: &str = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";

fn spawn_headers_server(port: u16) -> Child {
    Command::new(python())
        .arg(repo().join("testdata/servers/trace_server.py"))
        .args(["http", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("headers server")
}

/// The headers one upstream saw for a call, as (name, value) pairs.
async fn seen(c: &Mcp, tool: &str) -> Vec<(String, String)> {
    let r = c
        .request("tools/call", json!({"name": tool, "arguments": {}}))
        .await;
    let text = r.result()["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", r.messages))
        .to_owned();
    let pairs: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("pairs: {e}: {text:?}"));
    pairs
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or("").to_owned(),
                p[1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_client_headers_reach_their_upstream_and_nothing_else_does() {
    let (port, a, b) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gatehouse-passthrough-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let _a = spawn_headers_server(a);
    let _b = spawn_headers_server(b);
    wait_port(a).await;
    wait_port(b).await;
    let cfg = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"listen: 127.0.0.1:{port}
api_keys: {{pepper: "{PEPPER}"}}
store: {{sqlite: state.db}}
upstreams:
  tenanted:
    url: http://127.0.0.1:{a}/mcp
    forward_headers: [X-Tenant-Id, x-request-source]
  plain:
    url: http://127.0.0.1:{b}/mcp
"#
        ),
    )
    .expect("config");
    let out = Command::new(gatehouse_bin())
        .args(["keys", "--config"])
        .arg(&cfg)
        .args(["create", "--principal", "svc", "--app", "gatehouse-it"])
        .output()
        .await
        .expect("keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let _gw = serve_config(&cfg, port, &[]).await;

    // A client sending its credential, a cookie, the two named headers, others the config
    // does not name, and headers that look like the gateway's or the protocol's own.
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in [
        ("authorization", format!("Bearer {key}")),
        ("cookie", "session=client-cookie-secret".to_owned()),
        ("x-tenant-id", "acme".to_owned()),
        ("x-request-source", "nightly-batch".to_owned()),
        ("x-internal-secret", "client-private-value".to_owned()),
        ("x-forwarded-for", "10.9.9.9".to_owned()),
        ("gatehouse-app", "spoofed-app".to_owned()),
        ("user-agent", "client-agent/9".to_owned()),
    ] {
        headers.insert(
            reqwest::header::HeaderName::from_static(k),
            v.parse().expect("value"),
        );
    }
    let mut c = Mcp::new(&format!("http://127.0.0.1:{port}/mcp"));
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let init = c
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "gatehouse-it", "version": "1"}}}))
        .await;
    assert_eq!(init.status, 200, "{:?}", init.messages);
    c.session = init
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let client_session = c.session.clone().expect("session");

    let got = seen(&c, "tenanted__request_headers").await;
    let value = |name: &str| {
        got.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(value("x-tenant-id"), ["acme"], "{got:?}");
    assert_eq!(value("x-request-source"), ["nightly-batch"], "{got:?}");
    let plain = seen(&c, "plain__request_headers").await;
    for (upstream, got) in [("tenanted", &got), ("plain", &plain)] {
        // Nothing of the client's own reaches either upstream beyond what is named.
        for (k, v) in got.iter() {
            for secret in [
                key.as_str(),
                "client-cookie-secret",
                "client-private-value",
                "10.9.9.9",
                "spoofed-app",
                "client-agent/9",
                client_session.as_str(),
            ] {
                assert!(!v.contains(secret), "{upstream} saw {k}: {v}");
            }
        }
        for name in [
            "cookie",
            "x-internal-secret",
            "x-forwarded-for",
            "gatehouse-app",
        ] {
            assert!(got.iter().all(|(k, _)| k != name), "{upstream}: {got:?}");
        }
    }
    assert!(
        plain
            .iter()
            .all(|(k, _)| k != "x-tenant-id" && k != "x-request-source"),
        "{plain:?}"
    );
}

#[tokio::test]
async fn headers_that_may_never_pass_are_refused_at_load() {
    let dir = std::env::temp_dir().join(format!("gatehouse-passthrough-bad-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    for name in [
        "Authorization",
        "cookie",
        "Mcp-Session-Id",
        "Proxy-Authorization",
        "x-forwarded-for",
        "gatehouse-app",
        "traceparent",
        "not a header",
    ] {
        let err = crate::common::check_config(
            &dir,
            &format!("upstreams:\n  u:\n    url: http://127.0.0.1:1/mcp\n    forward_headers: ['{name}']\n"),
        )
        .await
        .expect_err(name);
        assert!(err.contains("upstreams.u.forward_headers"), "{name}: {err}");
    }
    // And a stdio upstream has no headers to receive.
    crate::common::check_config(
        &dir,
        "upstreams:\n  u:\n    command: x\n    forward_headers: [x-tenant-id]\n",
    )
    .await
    .expect_err("a stdio upstream with forward_headers");
}
