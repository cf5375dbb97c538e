//! Bad input at the client edge: every class is answered with the right HTTP status and
//! JSON-RPC error, nothing panics, and the gateway keeps serving afterwards.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use crate::common::{Gw, Mcp, Reply, free_port, gatehouse_bin, read_reply, start_gateway};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config() -> String {
    format!(
        "dev_mode: true\nallowed_origins: ['https://console.example.com']\nlimits:\n  max_body_bytes: 4096\n  max_json_depth: 16\n  max_batch: 3\n  body_timeout_secs: 1\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\nvirtual_servers:\n  analytics:\n    upstreams: [demo]\n    tools: [demo__read_database]\n",
        gatehouse_bin()
    )
}

async fn raw(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut rb = reqwest::Client::new().post(url).body(body.to_vec());
    let mut has_ct = false;
    for (k, v) in headers {
        has_ct |= k.eq_ignore_ascii_case("content-type");
        rb = rb.header(*k, *v);
    }
    if !has_ct {
        rb = rb.header("content-type", "application/json");
    }
    read_reply(rb.send().await.expect("send")).await
}

async fn still_serves(gw: &Gw) {
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let r = c.call("demo__search_files", json!({"query": "vpn"})).await;
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_wrong_shapes() {
    let gw = start_gateway(&config()).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let session = c.session.clone().expect("session");
    let h = [("mcp-session-id", session.as_str())];

    let r = raw(
        &gw.mcp(),
        b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ",
        &h,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, -32700)
    );
    assert_eq!(r.last()["id"], Value::Null);

    let r = raw(
        &gw.mcp(),
        br#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#,
        &h,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, -32600)
    );
    assert_eq!(r.last()["id"], 9, "the error carries the request's id");

    let r = raw(
        &gw.mcp(),
        br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"x"}"#,
        &h,
    )
    .await;
    assert_eq!(r.error_code(), -32600);

    let r = c.request("no/such/method", json!({})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::OK, -32601));

    let r = c
        .request(
            "tools/call",
            json!({"name": "demo__search_files", "arguments": [1, 2]}),
        )
        .await;
    assert_eq!(r.error_code(), -32602, "arguments must be an object");
    let r = c.request("tools/call", json!({"arguments": {}})).await;
    assert_eq!(r.error_code(), -32602, "a call needs a name");

    let r = c
        .request("tools/call", json!({"name": "demo__nope", "arguments": {}}))
        .await;
    assert_eq!(
        r.result()["isError"],
        true,
        "an unknown tool is a tool error, never forwarded"
    );

    let r = c
        .request("resources/read", json!({"uri": "file:///etc/shadow"}))
        .await;
    assert_eq!(r.error_code(), -32002);
    let r = c.request("tools/list", json!({"cursor": "not-ours"})).await;
    assert_eq!(r.error_code(), -32602);

    let r = raw(&gw.mcp(), b"{}", &[("content-type", "text/plain"), h[0]]).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = raw(
        &gw.mcp(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        &[("accept", "text/html"), h[0]],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);

    // Garbage of every shape never brings the gateway down.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 300) as usize;
        let body: Vec<u8> = (0..len)
            .map(|j| {
                b"{}[]\":,0123 abcnulltrue\\\x00\xff"[((seed >> (j % 48)) as usize + i + j) % 26]
            })
            .collect();
        let r = raw(&gw.mcp(), &body, &h).await;
        assert!(
            r.status.is_client_error()
                || r.status == StatusCode::OK
                || r.status == StatusCode::ACCEPTED,
            "{}",
            r.status
        );
    }
    still_serves(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_depth_batch_and_slow_body_limits() {
    let gw = start_gateway(&config()).await;
    let old = Mcp::connect(&gw.mcp(), "2025-03-26").await;
    let s = old.session.clone().expect("session");
    let h = [("mcp-session-id", s.as_str())];

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(8000)
    );
    let r = raw(&gw.mcp(), big.as_bytes(), &h).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Same without Content-Length (chunked): the body is cut at the limit. Raw TCP, so the
    // whole request is in the socket buffer before the gateway answers and closes.
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nmcp-session-id: {s}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    for _ in 0..6 {
        req.push_str(&format!("3e8\r\n{}\r\n", " ".repeat(1000)));
    }
    req.push_str("0\r\n\r\n");
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{}1{}}}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let r = raw(&gw.mcp(), deep.as_bytes(), &h).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, -32700)
    );

    // Batches: allowed in 2025-03-26 up to the limit, refused beyond it and in later versions.
    let ping = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "ping"});
    let r = raw(
        &gw.mcp(),
        &serde_json::to_vec(&json!([ping(1), ping(2), ping(3)])).expect("json"),
        &h,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.messages.len(), 3);
    let r = raw(
        &gw.mcp(),
        &serde_json::to_vec(&json!([ping(1), ping(2), ping(3), ping(4)])).expect("json"),
        &h,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, -32600)
    );
    let r = raw(&gw.mcp(), b"[]", &h).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let new = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let r = raw(
        &gw.mcp(),
        &serde_json::to_vec(&json!([ping(1), ping(2)])).expect("json"),
        &[("mcp-session-id", new.session.as_deref().expect("session"))],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "no batches after 2025-03-26"
    );

    // A client that sends its body too slowly is cut off.
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nmcp-session-id: {s}\r\ncontent-length: 200\r\n\r\n{{\"jsonrpc\""
    );
    sock.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    still_serves(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_sessions_and_scopes() {
    let gw = start_gateway(&config()).await;
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    // DNS rebinding: a foreign Origin is refused; loopback and configured origins pass.
    let r = raw(&gw.mcp(), init, &[("origin", "http://evil.example")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = raw(
        &gw.mcp(),
        init,
        &[("origin", "http://localhost.evil.example:80")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = raw(&gw.mcp(), init, &[("origin", "null")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for ok in [
        "http://localhost:6274",
        "http://127.0.0.1",
        "http://[::1]:3000",
        "https://console.example.com",
    ] {
        let r = raw(&gw.mcp(), init, &[("origin", ok)]).await;
        assert_eq!(r.status, StatusCode::OK, "{ok}");
    }
    let r = reqwest::Client::new()
        .get(format!("{}/sse", gw.base))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let ping = br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let r = raw(&gw.mcp(), ping, &[]).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "no session, not stateless"
    );
    let r = raw(&gw.mcp(), ping, &[("mcp-session-id", "forged-session")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A session is bound to the endpoint that issued it.
    let scoped = Mcp::connect(&format!("{}/s/analytics/mcp", gw.base), "2025-11-25").await;
    let sid = scoped.session.clone().expect("session");
    let r = raw(&gw.mcp(), ping, &[("mcp-session-id", &sid)]).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a virtual server's session is not valid on /mcp"
    );
    let tools = scoped.list("tools/list", "tools").await;
    assert_eq!(
        tools.iter().map(|t| t["name"].clone()).collect::<Vec<_>>(),
        vec![json!("demo__read_database")]
    );
    let r = scoped
        .call("demo__delete_database", json!({"table": "customers"}))
        .await;
    assert_eq!(
        r["isError"], true,
        "a tool outside the virtual server cannot be called through it"
    );
    let r = raw(&format!("{}/s/nope/mcp", gw.base), init, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // An unknown protocol version header is refused; DELETE ends a session for good.
    let c = Mcp::connect(&gw.mcp(), "2025-06-18").await;
    let s = c.session.clone().expect("session");
    let r = raw(
        &gw.mcp(),
        ping,
        &[
            ("mcp-session-id", &s),
            ("mcp-protocol-version", "1999-01-01"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let del = reqwest::Client::new()
        .delete(gw.mcp())
        .header("mcp-session-id", &s)
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), StatusCode::OK);
    let r = raw(&gw.mcp(), ping, &[("mcp-session-id", &s)]).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a terminated session stays dead"
    );
    let get = reqwest::Client::new()
        .get(gw.mcp())
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("get");
    assert_eq!(
        get.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "no GET stream without a session"
    );
}

fn stateless(method: &str, params: Value) -> Vec<u8> {
    let mut p = params;
    p["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": p}))
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_headers_must_match_the_body() {
    let gw = start_gateway(&config()).await;
    let call = stateless(
        "tools/call",
        json!({"name": "demo__read_database", "arguments": {"query": "select 1 as one"}}),
    );
    let good = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "demo__read_database"),
    ];
    let r = raw(&gw.mcp(), &call, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.messages);
    assert_eq!(r.result()["resultType"], "complete");
    assert!(
        r.headers.get("mcp-session-id").is_none(),
        "stateless requests get no session"
    );

    // The routing headers are what proxies and WAFs see: a body that disagrees is refused.
    let cases: &[(&[(&str, &str)], i64)] = &[
        (
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "demo__delete_database"),
            ],
            -32020,
        ),
        (
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "demo__read_database"),
            ],
            -32020,
        ),
        (
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            -32020,
        ),
        (
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?ZGVtb19fZGVsZXRlX2RhdGFiYXNl?="),
            ],
            -32020,
        ),
    ];
    for (headers, code) in cases {
        let r = raw(&gw.mcp(), &call, headers).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::BAD_REQUEST, *code),
            "{headers:?}"
        );
    }
    // A base64-encoded name that does match is accepted.
    let r = raw(
        &gw.mcp(),
        &call,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZGVtb19fcmVhZF9kYXRhYmFzZQ==?="),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let mut future =
        serde_json::from_slice::<Value>(&stateless("tools/list", json!({}))).expect("json");
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let r = raw(
        &gw.mcp(),
        &serde_json::to_vec(&future).expect("json"),
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/list"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, -32022)
    );
    assert_eq!(
        r.last()["error"]["data"]["supported"],
        json!(["2026-07-28"])
    );

    let r = raw(
        &gw.mcp(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, -32602),
        "the _meta envelope is required"
    );

    let r = raw(
        &gw.mcp(),
        &stateless("server/discover", json!({})),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "server/discover"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.result()["supportedVersions"]
            .as_array()
            .expect("versions")
            .contains(&json!("2026-07-28"))
    );
    assert_eq!(r.result()["cacheScope"], "private");
    let r = raw(
        &gw.mcp(),
        &stateless("tools/list", json!({})),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ],
    )
    .await;
    assert_eq!(r.result()["ttlMs"], 0);
    let r = raw(
        &gw.mcp(),
        &stateless("nope", json!({})),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "nope"),
        ],
    )
    .await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, -32601));
    still_serves(&gw).await;
}

/// Legacy HTTP+SSE goes through the same admission as Streamable HTTP: opening its session
/// writes the chained audit record, and a call on it is recorded under that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_session_is_audited_like_any_other() {
    let admin = "admin-token-for-the-edge-tests-0123456789";
    let dir = std::env::temp_dir().join(format!("gatehouse-edge-legacy-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("admin.token"), admin).expect("token");
    let gw = start_gateway(&format!(
        "dev_mode: true\nstore: {{sqlite: {db}}}\nadmin: {{token: \"file:{tok}\"}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
        db = dir.join("gatehouse.db").display(),
        tok = dir.join("admin.token").display(),
        bin = gatehouse_bin()
    ))
    .await;
    let http = reqwest::Client::new();
    let mut sse = http
        .get(format!("{}/sse", gw.base))
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(sse.status(), StatusCode::OK);
    let mut seen = String::new();
    let endpoint = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
            .await
            .expect("endpoint event in time")
            .expect("stream")
            .expect("open stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = seen.lines().find(|l| l.starts_with("data: /message")) {
            break line.trim_start_matches("data: ").to_owned();
        }
    };
    let r = http
        .post(format!("{}{endpoint}", gw.base))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
        .send()
        .await
        .expect("POST /message");
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let deadline = Instant::now() + Duration::from_secs(10);
    let (opened, ping) = loop {
        let body = http
            .get(format!("{}/admin/v1/audit?limit=1000", gw.base))
            .bearer_auth(admin)
            .send()
            .await
            .expect("admin API")
            .text()
            .await
            .expect("audit");
        let events: Vec<Value> = body
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["event"].clone())
            .collect();
        let opened = events
            .iter()
            .find(|e| e["method"] == "auth.session_opened")
            .cloned();
        let ping = events.iter().find(|e| e["method"] == "ping").cloned();
        if let (Some(o), Some(p)) = (&opened, &ping) {
            break (o.clone(), p.clone());
        }
        assert!(Instant::now() < deadline, "not audited: {events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sid = opened["session"].as_str().unwrap_or("");
    assert!(!sid.is_empty(), "{opened}");
    assert_eq!(ping["session"], sid, "{ping}");
    assert_eq!(ping["status"], "ok", "{ping}");
}
