//! `gatehouse connect URL`: a stdio MCP server that relays to a remote gateway over
//! Streamable HTTP, for desktop clients that can only spawn stdio servers.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use gatehouse_protocol::{
    Decoded, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, Limits, Message, Response, RpcError,
    SseDecoder, code, decode_body,
};
use gatehouse_transport::upstream::read_bounded_line;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Session {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
}

struct Bridge {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    session: Mutex<Session>,
    out: mpsc::Sender<Vec<u8>>,
}

impl Bridge {
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method, &self.url)
            .headers(self.headers.clone());
        let s = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = &s.id {
            rb = rb.header(HEADER_SESSION_ID, id.clone());
        }
        if let Some(v) = &s.version {
            rb = rb.header(HEADER_PROTOCOL_VERSION, v.clone());
        }
        rb
    }

    async fn emit(&self, bytes: &[u8]) {
        let mut line = bytes.to_vec();
        line.push(b'\n');
        let _ = self.out.send(line).await;
    }

    /// Relays one client message; a request that cannot be delivered gets an error answer
    /// so the client never waits forever.
    async fn relay(&self, msg: Message) {
        let id = match &msg {
            Message::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        let is_init = msg.method() == Some("initialize");
        if let Err(e) = self.post(&msg, is_init).await {
            eprintln!("gatehouse connect: {e:#}");
            if let Some(id) = id {
                let err = Response::err(
                    id,
                    RpcError::new(code::CONNECTION_CLOSED, "gateway unreachable"),
                );
                self.emit(&Message::Response(err).to_bytes()).await;
            }
        }
    }

    async fn post(&self, msg: &Message, is_init: bool) -> Result<()> {
        let resp = self
            .request(reqwest::Method::POST)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(msg.to_bytes())
            .send()
            .await
            .context("sending to the gateway")?;
        if let Some(sid) = resp.headers().get(HEADER_SESSION_ID) {
            self.session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .id = Some(sid.clone());
        }
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if status == reqwest::StatusCode::ACCEPTED {
            return Ok(());
        }
        if ctype.starts_with("text/event-stream") {
            let mut resp = resp;
            let mut dec = SseDecoder::new(MAX_LINE);
            while let Some(chunk) = resp.chunk().await.context("reading the gateway's stream")? {
                for ev in dec.feed(&chunk)? {
                    if !ev.data.trim().is_empty() {
                        self.emit(ev.data.as_bytes()).await;
                    }
                }
            }
            return Ok(());
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.context("reading the gateway's answer")? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_LINE {
                bail!("gateway answer exceeds {MAX_LINE} bytes");
            }
        }
        if body.is_empty() {
            if !status.is_success() {
                bail!("gateway answered HTTP {status}");
            }
            return Ok(());
        }
        if is_init
            && let Ok(Decoded::Single(Ok(Message::Response(r)))) =
                decode_body(&body, &Limits::default())
            && let Some(v) = r
                .outcome
                .as_ref()
                .ok()
                .and_then(|v| v.get("protocolVersion"))
                .and_then(Value::as_str)
        {
            self.session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .version = HeaderValue::from_str(v).ok();
        }
        self.emit(&body).await;
        Ok(())
    }

    /// Holds the GET stream for server-initiated messages, reconnecting while the session lives.
    async fn listen(self: Arc<Self>) {
        loop {
            let resp = self
                .request(reqwest::Method::GET)
                .header(ACCEPT, "text/event-stream")
                .send()
                .await;
            let Ok(mut resp) = resp else { return };
            if !resp.status().is_success() {
                return;
            }
            let mut dec = SseDecoder::new(MAX_LINE);
            while let Ok(Some(chunk)) = resp.chunk().await {
                let Ok(events) = dec.feed(&chunk) else { return };
                for ev in events {
                    if !ev.data.trim().is_empty() {
                        self.emit(ev.data.as_bytes()).await;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

pub(crate) async fn run(url: String, header_args: Vec<String>) -> Result<()> {
    let mut headers = HeaderMap::new();
    for h in header_args {
        let (k, v) = h.split_once('=').context("--header takes NAME=VALUE")?;
        let mut v = HeaderValue::from_str(v).context("header value")?;
        v.set_sensitive(true);
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).context("header name")?,
            v,
        );
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let bridge = Arc::new(Bridge {
        client: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?,
        url,
        headers,
        session: Mutex::new(Session::default()),
        out: out_tx,
    });
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let limits = Limits {
        max_body_bytes: MAX_LINE,
        ..Limits::default()
    };
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    let mut relays = tokio::task::JoinSet::new();
    while let Some(()) = read_bounded_line(&mut stdin, &mut line, MAX_LINE)
        .await
        .context("reading stdin")?
    {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg = match decode_body(&line, &limits) {
            Ok(Decoded::Single(Ok(m))) => m,
            Ok(Decoded::Single(Err((id, e)))) => {
                bridge
                    .emit(&Message::Response(Response::err(id, e)).to_bytes())
                    .await;
                continue;
            }
            _ => {
                let e = Response::err(
                    gatehouse_protocol::Id::Null,
                    RpcError::new(code::PARSE_ERROR, "Parse error"),
                );
                bridge.emit(&Message::Response(e).to_bytes()).await;
                continue;
            }
        };
        if msg.method() == Some("initialize") {
            // Later messages need the session id this returns.
            bridge.relay(msg).await;
        } else {
            if listener.is_none()
                && bridge
                    .session
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .id
                    .is_some()
            {
                listener = Some(tokio::spawn(bridge.clone().listen()));
            }
            let b = bridge.clone();
            relays.spawn(async move { b.relay(msg).await });
        }
    }
    // stdin closed: let answers in flight reach the client, then end the session.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while relays.join_next().await.is_some() {}
    })
    .await;
    relays.abort_all();
    if let Some(l) = listener {
        l.abort();
        let _ = l.await;
    }
    let has_session = bridge
        .session
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .id
        .is_some();
    if has_session {
        let _ = bridge.request(reqwest::Method::DELETE).send().await;
    }
    drop(bridge);
    let _ = writer.await;
    Ok(())
}
