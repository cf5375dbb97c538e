//! Integration-test harness: starts the gateway in process on an ephemeral loopback port,
//! starts real MCP peers (npm and PyPI packages pinned in testdata/peers) as child
//! processes, and speaks MCP over HTTP for the assertions.
#![allow(dead_code, unreachable_pub)]

mod certs;
pub mod oauth;

pub use certs::{ca, leaf};

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_proxy::{Config, Gateway};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn peers() -> PathBuf {
    let p = repo().join("testdata/peers");
    assert!(
        p.join("node_modules/@modelcontextprotocol/server-everything")
            .is_dir(),
        "test peers are not installed: run `bash .ci/run` (or `npm ci` in testdata/peers)"
    );
    p
}

pub fn gatehouse_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

pub fn everything_js() -> String {
    peers()
        .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

pub fn filesystem_js() -> String {
    peers()
        .join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
        .display()
        .to_string()
}

/// The Python with the pinned `mcp` SDK: `GATEHOUSE_TEST_PYTHON`, else testdata/peers/.venv.
pub fn python() -> String {
    let p = std::env::var("GATEHOUSE_TEST_PYTHON").unwrap_or_else(|_| {
        repo()
            .join("testdata/peers/.venv/bin/python")
            .display()
            .to_string()
    });
    assert!(
        Path::new(&p).exists(),
        "Python test peer missing at {p}: run `bash .ci/run`"
    );
    p
}

pub fn py_server() -> String {
    repo()
        .join("testdata/servers/py_server.py")
        .display()
        .to_string()
}

/// A port nothing listens on, for a peer or gateway the test starts next. Chosen below the
/// kernel's ephemeral range: a port the kernel hands out for `bind(0)` can be taken by any
/// outgoing connection before the test binds it (a rare `AddrInUse` seen in CI), one below
/// the range only by another listener.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .clamp(12_000, 61_000);
    let span = u32::from(low - 10_000);
    // Tests run as processes of their own: start from the pid and the clock, then walk.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut at = std::process::id().wrapping_mul(7919) ^ nanos;
    for _ in 0..span {
        at = at.wrapping_add(1);
        let port = 10_000 + (at % span) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    StdListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A gateway running in this process.
pub struct Gw {
    pub gw: Arc<Gateway>,
    pub base: String,
}

impl Gw {
    pub fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

/// Starts a gateway from YAML (`${VAR}` resolved from the environment) and waits until every
/// upstream is connected and listed.
static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub async fn start_gateway(yaml: &str) -> Gw {
    let cfg = Config::from_yaml(yaml, &|k| std::env::var(k).ok()).expect("test config is valid");
    start_gateway_with(cfg, true).await
}

pub async fn start_gateway_with(cfg: Config, wait_ready: bool) -> Gw {
    start_gateway_at(cfg, 0, wait_ready).await
}

/// Like [`start_gateway_with`], on a chosen port (when the config must name the URL).
pub async fn start_gateway_at(mut cfg: Config, port: u16, wait_ready: bool) -> Gw {
    // A test that names no store gets its own: state (pins, audit, keys) never leaks
    // between tests through a shared `gatehouse.db` in the working directory.
    if cfg.store_path == Path::new("gatehouse.db") {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-test-store-{}-{}",
            std::process::id(),
            STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test store dir");
        cfg.store_path = dir.join("gatehouse.db");
    }
    // GATEHOUSE_TEST_LOG=debug shows the gateway's logs when a test needs explaining.
    if let Ok(level) = std::env::var("GATEHOUSE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_test_writer()
            .try_init();
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let gw = Gateway::start(cfg);
    let control = gatehouse_control::start(&gw);
    tokio::spawn(gatehouse_proxy::serve_on(
        listener,
        gw.clone(),
        None,
        control,
    ));
    if wait_ready {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !gw.not_ready().is_empty() {
            assert!(
                Instant::now() < deadline,
                "upstreams never became ready: {:?}",
                gw.not_ready()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Gw { gw, base }
}

/// A child process killed when dropped.
pub struct Peer {
    pub child: Child,
    pub port: u16,
}

/// Starts server-everything over HTTP (`streamableHttp` or `sse`) on a free loopback port.
pub async fn everything_http(mode: &str) -> Peer {
    let port = free_port();
    let child = Command::new("node")
        .arg("-r")
        .arg(peers().join("loopback.cjs"))
        .arg(everything_js())
        .arg(mode)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start server-everything");
    wait_port(port).await;
    Peer { child, port }
}

/// Starts the Python SDK test server over Streamable HTTP.
pub async fn py_http() -> Peer {
    let port = free_port();
    let child = Command::new(python())
        .arg(py_server())
        .arg("http")
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start python server");
    wait_port(port).await;
    Peer { child, port }
}

pub async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the gateway on `port` answers `/readyz` with 200.
pub async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "gateway on {port} never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Capabilities the test client declares: the same the gateway declares upstream, so a
/// server that lists tools by client capability lists the same set to both.
pub static CLIENT_CAPS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}}),
);

/// A minimal MCP client over Streamable HTTP for assertions on the wire.
#[derive(Clone)]
pub struct Mcp {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    pub version: String,
    next: Arc<std::sync::atomic::AtomicU64>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Every JSON-RPC message in the body (one for JSON, all events for SSE).
    pub messages: Vec<Value>,
}

impl Reply {
    /// The final message (the response).
    pub fn last(&self) -> &Value {
        self.messages.last().expect("reply has a message")
    }
    pub fn result(&self) -> &Value {
        let m = self.last();
        assert!(m.get("result").is_some(), "expected a result, got {m}");
        &m["result"]
    }
    pub fn error_code(&self) -> i64 {
        self.last()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("expected an error, got {}", self.last()))
    }
    /// The error's message ("" when there is none, so a `contains` check fails).
    pub fn error_message(&self) -> &str {
        self.last()["error"]["message"].as_str().unwrap_or("")
    }
}

pub async fn read_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    #[allow(clippy::disallowed_methods)]
    let body = resp.text().await.expect("body");
    let messages = if ctype.starts_with("text/event-stream") {
        body.split("\n\n")
            .filter_map(|ev| {
                let data: Vec<&str> = ev
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let data = data.join("\n");
                (!data.trim().is_empty())
                    .then(|| serde_json::from_str(&data).expect("SSE data is JSON"))
            })
            .collect()
    } else if body.trim().is_empty() {
        vec![]
    } else {
        match serde_json::from_str::<Value>(&body) {
            Ok(Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(_) => vec![json!({"raw": body})],
        }
    };
    Reply {
        status,
        headers,
        messages,
    }
}

impl Mcp {
    pub fn new(url: &str) -> Mcp {
        Mcp {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            session: None,
            version: "2025-11-25".into(),
            next: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }

    /// Opens a session at `version`.
    pub async fn connect(url: &str, version: &str) -> Mcp {
        let mut c = Mcp::new(url);
        c.version = version.to_owned();
        let r = c
            .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": CLIENT_CAPS.clone(), "clientInfo": {"name": "gatehouse-it", "version": "1"}}}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "initialize failed: {:?}",
            r.messages
        );
        c.session = r
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(v) = r.result()["protocolVersion"].as_str() {
            c.version = v.to_owned();
        }
        c.notify("notifications/initialized", None).await;
        c
    }

    pub fn builder(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(s) = &self.session {
            rb = rb
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", &self.version);
        }
        rb
    }

    pub async fn post(&self, body: Value) -> Reply {
        read_reply(
            self.builder(serde_json::to_vec(&body).expect("json"))
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    pub async fn notify(&self, method: &str, params: Option<Value>) {
        let mut m = json!({"jsonrpc": "2.0", "method": method});
        if let Some(p) = params {
            m["params"] = p;
        }
        let r = self.post(m).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }

    pub async fn request(&self, method: &str, params: Value) -> Reply {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        r.result().clone()
    }

    /// Every item of a paginated list.
    pub async fn list(&self, method: &str, field: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<Value> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let r = self.request(method, params).await;
            let res = r.result();
            out.extend(res[field].as_array().cloned().unwrap_or_default());
            match res.get("nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => return out,
            }
        }
    }
}

/// Runs a command to completion with a timeout; returns stdout, panicking with stderr on failure.
pub async fn run_ok(cmd: &mut Command, secs: u64) -> String {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs), cmd.output())
        .await
        .expect("command timed out")
        .expect("command runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout: {stdout}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The last line of a peer script's output, as JSON.
/// Every audit record the gateway of `config` has written (`gatehouse audit query`), each
/// as the CLI prints it (`{"event": …, …}`).
pub async fn audit_records(config: &Path) -> Vec<Value> {
    let out = Command::new(gatehouse_bin())
        .args(["audit", "--config"])
        .arg(config)
        .args(["query", "--limit", "10000"])
        .output()
        .await
        .expect("audit");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

pub fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    serde_json::from_str(line).expect("peer printed JSON")
}

/// Runs a command to completion with a timeout; returns stdout whatever the exit status
/// (for tools that exit non-zero when any of their checks fail).
pub async fn run_capture(cmd: &mut Command, secs: u64) -> String {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs), cmd.output())
        .await
        .expect("command timed out")
        .expect("command runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// Peers shared by several test files.

/// Runs `gatehouse serve --config CONFIG` (with `env` added) as its own process and waits
/// until it is ready on `port`; killed when dropped.
// Reads the gateway's own small readiness answer: an unbounded read is fine here.
#[allow(clippy::disallowed_methods)]
pub async fn serve_config(config: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["serve", "--config"]).arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    // Ready as far as its upstreams go: every one connected and listed. Shared state
    // (Redis, PostgreSQL) is not waited for, since some tests point at a dead one on purpose.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && let Ok(body) = r.json::<Value>().await
            && body["waiting"].as_array().is_some_and(Vec::is_empty)
        {
            return child;
        }
        assert!(Instant::now() < deadline, "gateway never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A webhook receiver: each POST's signature header and body.
pub async fn hook_server() -> (u16, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < i + 4 + len {
                        continue;
                    }
                    let sig = head
                        .lines()
                        .find_map(|l| l.strip_prefix("gatehouse-signature:"))
                        .unwrap_or("")
                        .trim()
                        .to_owned();
                    let _ = tx.send((sig, buf[i + 4..i + 4 + len].to_vec()));
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (port, rx)
}

pub fn signature_verifies(header: &str, body: &[u8], secret: &str) -> bool {
    let t = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap_or("");
    let v1 = header
        .split(',')
        .find_map(|p| p.strip_prefix("v1="))
        .unwrap_or("");
    let Some(mac) = (0..v1.len())
        .step_by(2)
        .map(|i| {
            v1.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = t.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(body);
    aws_lc_rs::hmac::verify(&key, &signed, &mac).is_ok()
}

/// Drops database `db` on the local PostgreSQL if an earlier run left it, and creates it
/// empty.
pub async fn fresh_database(db: &str) {
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    psql("postgres", &format!("CREATE DATABASE {db}")).await;
}

pub async fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .await
        .expect("psql (scripts/test installs PostgreSQL)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Standard base64 (an API key pepper from a config), for tests that open stores directly.
pub fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// A whole response body as text (test peers' answers are small).
pub async fn read_text(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Some(c) = resp.chunk().await.expect("body") {
        body.extend_from_slice(&c);
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// `gatehouse check` on this YAML (written to a file in `dir`): `Err(stderr)` when refused.
pub async fn check_config(dir: &Path, yaml: &str) -> Result<String, String> {
    let path = dir.join("gatehouse.yaml");
    std::fs::write(&path, yaml).expect("config");
    let out = Command::new(gatehouse_bin())
        .arg("check")
        .arg(&path)
        .output()
        .await
        .expect("check");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A new API key from `gatehouse keys create` against `config`; the key itself.
pub async fn create_key(config: &Path, principal: &str, app: &str, roles: &str) -> String {
    let out = Command::new(gatehouse_bin())
        .args(["keys", "--config"])
        .arg(config)
        .args([
            "create",
            "--principal",
            principal,
            "--app",
            app,
            "--roles",
            roles,
        ])
        .output()
        .await
        .expect("keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `gatehouse approvals …` at `port` as the holder of `token` for `app`: (success, stdout,
/// stderr).
pub async fn approvals_cli(
    port: u16,
    token: &str,
    app: &str,
    args: &[&str],
) -> (bool, String, String) {
    let out = Command::new(gatehouse_bin())
        .arg("approvals")
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--app", app])
        .env("GATEHOUSE_TOKEN", token)
        .args(args)
        .output()
        .await
        .expect("approvals");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
