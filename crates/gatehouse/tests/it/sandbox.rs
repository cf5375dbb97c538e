//! Sandboxed stdio upstreams against a hostile server (official Python SDK) that tries what a
//! confined server must not: read a home directory's keys, the gateway's store, config and
//! secrets; write outside its grant; connect to a port it was not granted; signal the
//! gateway; fork-bomb; allocate past its memory. Each attempt is blocked, the gateway stays
//! up and audits every call, and the same server's granted work still succeeds.

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{Mcp, audit_records, free_port, gatehouse_bin, python, repo, serve_config};

/// `sys.prefix` and `sys.base_prefix` of the test Python: what it must be able to read.
async fn python_prefixes() -> Vec<String> {
    let out = Command::new(python())
        .args([
            "-c",
            "import sys; print(sys.prefix); print(sys.base_prefix)",
        ])
        .output()
        .await
        .expect("python");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn call(c: &Mcp, tool: &str, args: Value) -> String {
    let v = c.call(&format!("hostile__{tool}"), args).await;
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool}: {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_stdio_server_is_confined_to_its_grants() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-sandbox-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["home/.ssh", "state", "grant/read", "grant/write"] {
        std::fs::create_dir_all(dir.join(d)).expect("dir");
    }
    std::fs::write(
        dir.join("home/.ssh/id_ed25519"),
        "PRIVATE KEY of the operator",
    )
    .expect("key");
    std::fs::write(dir.join("grant/read/doc.txt"), "granted reading").expect("doc");
    std::fs::write(dir.join("state/secrets.enc"), "gateway secrets").expect("secrets");
    // A port the server may reach and one it may not, both listening.
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let denied = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (allowed_port, denied_port) = (
        allowed.local_addr().expect("addr").port(),
        denied.local_addr().expect("addr").port(),
    );
    let mut read = python_prefixes().await;
    read.push(repo().join("testdata/servers").display().to_string());
    read.push(dir.join("grant/read").display().to_string());
    let cfg = dir.join("state/gatehouse.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"listen: 127.0.0.1:{port}
dev_mode: true
store: {{sqlite: {store}}}
audit: {{durable_all: true}}
upstreams:
  hostile:
    command: {py}
    args: ['{server}']
    sandbox:
      read: {read:?}
      write: ['{write}']
      network: {{connect: [{allowed_port}]}}
      memory_mb: 256
      processes: 16
"#,
            store = dir.join("state/gatehouse.db").display(),
            py = python(),
            server = repo().join("testdata/servers/hostile_server.py").display(),
            write = dir.join("grant/write").display(),
        ),
    )
    .expect("config");
    let gw = serve_config(&cfg, port, &[]).await;
    let gw_pid = gw.id().expect("pid");
    let c = Mcp::connect(&format!("http://127.0.0.1:{port}/mcp"), "2025-11-25").await;

    let path = |p: &Path| p.display().to_string();
    for secret in [
        dir.join("home/.ssh/id_ed25519"),
        dir.join("state/gatehouse.db"),
        cfg.clone(),
        dir.join("state/secrets.enc"),
        "/proc/1/environ".into(),
    ] {
        let r = call(&c, "read_file", json!({"target": path(&secret)})).await;
        assert!(r.starts_with("blocked"), "{}: {r}", secret.display());
    }
    let r = call(
        &c,
        "read_file",
        json!({"target": path(&dir.join("grant/read/doc.txt"))}),
    )
    .await;
    assert_eq!(r, "read: granted reading");

    let outside = dir.join("home/planted.txt");
    let r = call(&c, "write_file", json!({"target": path(&outside)})).await;
    assert!(r.starts_with("blocked"), "{r}");
    assert!(!outside.exists());
    let r = call(
        &c,
        "write_file",
        json!({"target": path(&dir.join("grant/write/out.txt"))}),
    )
    .await;
    assert_eq!(r, "written");
    assert!(dir.join("grant/write/out.txt").exists());

    let r = call(&c, "connect", json!({"port": denied_port})).await;
    assert!(r.starts_with("blocked"), "{r}");
    let r = call(&c, "connect", json!({"port": allowed_port})).await;
    assert_eq!(r, "connected");

    let r = call(&c, "signal", json!({"pid": gw_pid})).await;
    assert!(r.starts_with("blocked"), "{r}");
    let r = call(&c, "fork_bomb", json!({})).await;
    assert!(r.starts_with("blocked after"), "{r}");
    let forked: u32 = r
        .trim_start_matches("blocked after ")
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(forked < 16, "{r}");
    let r = call(&c, "allocate", json!({"mb": 512})).await;
    assert!(r.starts_with("blocked"), "{r}");
    // Still serving, and the granted work still succeeds.
    let r = call(&c, "allocate", json!({"mb": 16})).await;
    assert_eq!(r, "allocated 16 MiB");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
    );

    // Every attempt is in the audit record.
    let calls = audit_records(&cfg)
        .await
        .into_iter()
        .filter(|v| {
            v["event"]["method"] == "tools/call"
                && v["event"]["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("hostile__"))
        })
        .count();
    assert_eq!(calls, 14, "every attempt and every granted call");
    drop(gw);
    drop((allowed, denied));
}

#[tokio::test]
async fn a_profile_the_kernel_cannot_enforce_never_runs_the_server() {
    // A granted path that does not exist: the launcher refuses before running anything.
    let out = Command::new(gatehouse_bin())
        .args([
            "__sandbox",
            r#"{"read":["/nonexistent/gatehouse"],"write":[],"network":"none","memory_mb":64,"processes":8,"file_size_mb":8}"#,
            "--",
            "/bin/echo",
            "ran unconfined",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("launcher");
    assert_eq!(out.status.code(), Some(126));
    assert!(out.stdout.is_empty(), "the server ran");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sandbox cannot be enforced"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `gatehouse check` shows each server's effective profile.
    let dir = std::env::temp_dir().join(format!("gatehouse-sandbox-check-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg,
        "upstreams:\n  files:\n    command: /bin/cat\n    sandbox: {read: [/srv], network: {connect: [443]}, memory_mb: 128}\n  loose:\n    command: /bin/cat\n  web:\n    command: /bin/cat\n    sandbox: {network: {hosts: [api.github.com, '*.example.com:8443']}}\n",
    )
    .expect("config");
    let out = Command::new(gatehouse_bin())
        .arg("check")
        .arg(&cfg)
        .output()
        .await
        .expect("check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("files: sandboxed: read: system libraries and certificates, /srv"),
        "{text}"
    );
    assert!(text.contains("TCP connect to ports 443 only"), "{text}");
    assert!(text.contains("loose: not sandboxed"), "{text}");
    assert!(
        text.contains("egress proxy to api.github.com:443, *.example.com:8443"),
        "{text}"
    );
}

/// A loopback HTTP server answering every request with `body`.
async fn http_server(body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allowed_some_hosts_reaches_them_alone() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-egress-test-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let allowed = http_server("hello from the allowed host").await;
    let other = http_server("the other host").await;
    // A datagram must not reach the host's loopback either.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let udp_port = udp.local_addr().expect("addr").port();
    let mut read = python_prefixes().await;
    read.push(repo().join("testdata/servers").display().to_string());
    let cfg = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"listen: 127.0.0.1:{port}
dev_mode: true
store: {{sqlite: {store}}}
audit: {{durable_all: true}}
upstreams:
  hostile:
    command: {py}
    args: ['{server}']
    sandbox:
      read: {read:?}
      network: {{hosts: ['127.0.0.1:{allowed}', 'localhost:{other}', '*.example.com']}}
"#,
            store = dir.join("gatehouse.db").display(),
            py = python(),
            server = repo().join("testdata/servers/hostile_server.py").display(),
        ),
    )
    .expect("config");
    let gw = serve_config(&cfg, port, &[]).await;
    let c = Mcp::connect(&format!("http://127.0.0.1:{port}/mcp"), "2025-11-25").await;

    // Through the proxy to the allowlisted address: served.
    let r = call(
        &c,
        "fetch",
        json!({"target": format!("http://127.0.0.1:{allowed}/")}),
    )
    .await;
    assert_eq!(r, "fetched 200: hello from the allowed host");
    // Another port, a name that resolves to loopback, a host on no list: refused.
    for url in [
        format!("http://127.0.0.1:{other}/"),
        format!("http://localhost:{other}/"),
        "http://metadata.google.internal/".to_owned(),
    ] {
        let r = call(&c, "fetch", json!({ "target": url })).await;
        assert_eq!(r, "blocked: HTTP 403", "{url}");
    }
    // Around the proxy: straight to the allowed port, a datagram, a name lookup.
    let r = call(&c, "connect", json!({ "port": allowed })).await;
    assert!(r.starts_with("blocked"), "direct connect: {r}");
    let r = call(&c, "udp", json!({"host": "8.8.8.8", "port": 53})).await;
    assert!(r.starts_with("blocked"), "udp out: {r}");
    let _ = call(&c, "udp", json!({"host": "127.0.0.1", "port": udp_port})).await;
    let mut b = [0u8; 64];
    let got =
        tokio::time::timeout(std::time::Duration::from_millis(500), udp.recv_from(&mut b)).await;
    assert!(got.is_err(), "a datagram reached the host: {got:?}");
    let r = call(&c, "resolve", json!({"name": "example.com"})).await;
    assert!(r.starts_with("blocked"), "dns: {r}");
    // Still serving.
    let r = call(
        &c,
        "fetch",
        json!({"target": format!("http://127.0.0.1:{allowed}/")}),
    )
    .await;
    assert!(r.starts_with("fetched 200"), "{r}");

    // Each attempt through the proxy is audited, allowed or refused.
    let egress: Vec<(String, String)> = audit_records(&cfg)
        .await
        .into_iter()
        .filter(|v| v["event"]["kind"] == "egress" && v["event"]["upstream"] == "hostile")
        .map(|v| {
            (
                v["event"]["target"].as_str().unwrap_or_default().to_owned(),
                v["event"]["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let ok = format!("127.0.0.1:{allowed}");
    assert_eq!(
        egress.iter().filter(|(t, s)| *t == ok && s == "ok").count(),
        2,
        "{egress:?}"
    );
    for refused in [
        format!("127.0.0.1:{other}"),
        format!("localhost:{other}"),
        "metadata.google.internal:80".to_owned(),
    ] {
        assert!(
            egress.contains(&(refused.clone(), "denied".to_owned())),
            "{refused}: {egress:?}"
        );
    }
    drop(gw);
}
