//! The load generator of `gatehouse bench`: the in-process echo upstream, the call the
//! benchmark sends (the harness's 1 KB argument, or 1 KB of English with `--prose`), and the
//! latency and closed-loop throughput measurements over it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

async fn echo_handler(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return (axum::http::StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let Some(id) = msg.get("id").cloned() else {
        return axum::http::StatusCode::ACCEPTED.into_response();
    };
    let result = match msg.get("method").and_then(Value::as_str).unwrap_or("") {
        "initialize" => {
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "echo", "version": "1"}})
        }
        "tools/list" => {
            // `echo_any` is the reference harness's tool: no annotations (so a write, and
            // its record durable), a plain string argument.
            json!({"tools": [{"name": "echo", "inputSchema": {"type": "object",
                "properties": {"text": {"type": "string", "maxLength": 1000}, "n": {"type": "integer", "minimum": 0}},
                "required": ["text"]}, "annotations": {"readOnlyHint": true}},
                {"name": "echo_any", "inputSchema": {"type": "object",
                "properties": {"text": {"type": "string"}}}}]})
        }
        "tools/call" => {
            let args = msg
                .pointer("/params/arguments")
                .cloned()
                .unwrap_or(Value::Null);
            json!({"content": [{"type": "text", "text": args.to_string()}]})
        }
        _ => json!({}),
    };
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
        .unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) session: Option<String>,
    pub(crate) bearer: Option<String>,
}

/// The reference harness's argument: 1 KB of text, one repeated word. With `--prose`, 1 KB
/// of English instead: the classifier's cost grows with the distinct words and trigrams of
/// a text, and the repeated word holds sixteen trigrams where prose holds hundreds.
fn kilobyte() -> String {
    if PROSE.load(std::sync::atomic::Ordering::Relaxed) {
        let mut t = PARAGRAPH.repeat(1024usize.div_ceil(PARAGRAPH.len()));
        t.truncate(1024);
        t
    } else {
        "abcdefghijklmnop".repeat(64)
    }
}

/// What the argument is, for the headings.
pub(crate) fn argument_kind() -> &'static str {
    if PROSE.load(std::sync::atomic::Ordering::Relaxed) {
        "prose"
    } else {
        "word"
    }
}

/// Whether the argument is [`PARAGRAPH`] (`--prose`), set once before any call.
pub(crate) static PROSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A benign tool result as it reads in practice: sentences, figures, an address.
const PARAGRAPH: &str = "The quarterly report shows revenue of $4.2M for the third quarter, up 12% \
from last year, with the largest gains in the northern region. Operating costs rose by 3%, \
mostly from the new warehouse in Leeds, which opened two weeks late. Please review the \
attached figures before Friday's planning meeting; questions about the forecast go to \
finance@example.com, and the slides are on the team drive under Q3/board. ";

fn call_body(tool: &str, i: u64) -> Vec<u8> {
    let arguments = if tool.ends_with("echo_any") {
        json!({"text": kilobyte()})
    } else {
        json!({"text": "hello from the benchmark", "n": i})
    };
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}}))
    .unwrap_or_default()
}

pub(crate) async fn call(client: &reqwest::Client, t: &Target, tool: &str, i: u64) -> Result<()> {
    let body = call_body(tool, i);
    let mut rb = client
        .post(&t.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(s) = &t.session {
        rb = rb
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-06-18");
    }
    if let Some(b) = &t.bearer {
        rb = rb.header("authorization", format!("Bearer {b}"));
    }
    let resp = rb.send().await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    // Our own echo server's or gateway's small answer; the benchmark is not an exposed surface.
    #[allow(clippy::disallowed_methods)]
    let bytes = resp.bytes().await?;
    if !bytes.windows(8).any(|w| w == b"\"result\"") {
        bail!("no result: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(crate) async fn latency(
    client: &reqwest::Client,
    t: &Target,
    tool: &str,
    calls: usize,
) -> Result<(Duration, Duration)> {
    for i in 0..200 {
        call(client, t, tool, i).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let start = Instant::now();
        call(client, t, tool, i as u64).await?;
        samples.push(start.elapsed());
    }
    samples.sort();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// A closed loop of calls on `conns` connections until `stop`, counting them in `done`.
pub(crate) fn load(
    t: &Arc<Target>,
    tool: &'static str,
    conns: usize,
    done: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Result<()>>> {
    (0..conns)
        .map(|c| {
            let (t, done, stop) = (t.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                // One client per connection: keep-alive, no pooling across workers.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()?;
                let mut i = (c as u64) << 32;
                while !stop.load(Ordering::Relaxed) {
                    call(&client, &t, tool, i).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

pub(crate) async fn throughput(
    t: Arc<Target>,
    tool: &'static str,
    conns: usize,
    secs: u64,
) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&t, tool, conns, &done, &stop);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Starts the in-process echo upstream; its URL.
pub(crate) async fn start_echo() -> Result<String> {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let echo_url = format!("http://{}/mcp", echo.local_addr()?);
    tokio::spawn(async move {
        let app = axum::Router::new().route("/mcp", axum::routing::post(echo_handler));
        let _ = axum::serve(echo, app).await;
    });
    Ok(echo_url)
}
