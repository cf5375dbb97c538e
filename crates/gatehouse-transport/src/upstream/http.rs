//! Streamable HTTP upstreams: each call is a POST whose answer is JSON or an SSE stream
//! carrying the response plus any progress and server requests; a GET stream carries the
//! server's own notifications. The upstream's session id is kept and renewed when it expires.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use gatehouse_auth::{ClientCredentials, ClientCredentialsConfig};

use crate::config::UpstreamTls;
use gatehouse_protocol::{
    Decoded, HEADER_MCP_METHOD, HEADER_MCP_NAME, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID,
    Limits, META_PROTOCOL_VERSION, Message, ProtocolVersion, Request, SseDecoder, decode_body,
    encode_header_value, name_param,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::{Backoff, Link, Shared, Upstream, UpstreamError, UpstreamEvent, UserToken};

/// One HTTP client (so one connection pool) per request worker, and one shared by every
/// other thread. hyper drives a pooled connection from a task on the runtime that opened
/// it: a worker that used another worker's connection would hand every call to that
/// thread and back (see `crate::worker`).
pub(crate) struct Clients {
    tls: Option<UpstreamTls>,
    slots: Box<[std::sync::OnceLock<Option<reqwest::Client>>]>,
}

impl Clients {
    pub(crate) fn new(tls: Option<&UpstreamTls>) -> Clients {
        let clients = Clients {
            tls: tls.cloned(),
            slots: (0..=crate::worker::MAX)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        };
        // Built now, so unusable TLS settings are reported at start.
        let _ = clients.get();
        clients
    }

    /// This thread's client; `None` when the TLS settings are unusable.
    pub(crate) fn get(&self) -> &Option<reqwest::Client> {
        let slot = crate::worker::index().min(self.slots.len() - 1);
        self.slots[slot].get_or_init(|| http_client(self.tls.as_ref()))
    }
}

pub(crate) struct HttpLink {
    clients: Clients,
    /// Parsed once: parsing per request showed up in profiles.
    url: reqwest::Url,
    headers: HeaderMap,
    session: ArcSwapOption<HeaderValue>,
    version: ArcSwapOption<HeaderValue>,
    /// The gateway's own credential for this upstream, if configured.
    credential: Option<ClientCredentials>,
}

/// The gateway's own bearer token for an upstream, when it has a credential for it.
pub(crate) async fn own_token(
    c: &Option<ClientCredentials>,
) -> Result<Option<String>, UpstreamError> {
    match c {
        None => Ok(None),
        Some(c) => c
            .token()
            .await
            .map(Some)
            .map_err(|e| UpstreamError::Transport(format!("upstream credential: {e}"))),
    }
}

/// The HTTP client for one upstream. `None` when its TLS settings cannot be used: that
/// upstream then fails every call rather than fall back to weaker verification.
pub fn http_client(tls: Option<&UpstreamTls>) -> Option<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none());
    let builder = match tls {
        Some(t) => t
            .client(builder)
            .map_err(|e| tracing::error!(error = %e, "upstream TLS settings unusable"))
            .ok()?,
        None => builder,
    };
    builder
        .build()
        .map_err(|e| tracing::error!(error = %e, "cannot build an HTTP client"))
        .ok()
}

/// The client, or the error every call gets when it could not be built.
pub(crate) fn usable(client: &Option<reqwest::Client>) -> Result<&reqwest::Client, UpstreamError> {
    client
        .as_ref()
        .ok_or_else(|| UpstreamError::Transport("upstream TLS settings unusable".into()))
}

pub(crate) fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        // Names were validated with the config; a value that is not a valid header is skipped
        // with a log line rather than sent mangled.
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(mut v)) => {
                v.set_sensitive(true);
                map.insert(k, v);
            }
            _ => tracing::error!(header = %k, "upstream header value is not valid; not sent"),
        }
    }
    map
}

/// 2026-07-28 routing headers, mirroring the body's envelope: `Mcp-Method` and, for
/// name-bearing methods, `Mcp-Name`. Messages without the envelope get none.
fn routing_headers(msg: &Message) -> Vec<(&'static str, String)> {
    let (method, params) = match msg {
        Message::Request(r) => (&r.method, &r.params),
        Message::Notification(n) => (&n.method, &n.params),
        Message::Response(_) => return Vec::new(),
    };
    let stateless = params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .is_some_and(|m| m.get(META_PROTOCOL_VERSION).is_some());
    if !stateless {
        return Vec::new();
    }
    let mut out = vec![(HEADER_MCP_METHOD, method.clone())];
    if let Some(v) = name_param(method).and_then(|k| params.as_ref()?.get(k)?.as_str()) {
        out.push((HEADER_MCP_NAME, encode_header_value(v)));
    }
    out
}

/// How many times one call's stream is resumed after the upstream cut it.
const MAX_RESUMES: usize = 8;

fn limits(shared: &Shared) -> Limits {
    Limits {
        max_body_bytes: shared.max_message_bytes,
        max_depth: 128,
        max_batch: 64,
    }
}

impl HttpLink {
    pub(crate) fn new(
        url: &reqwest::Url,
        headers: &[(String, String)],
        credential: Option<ClientCredentialsConfig>,
        tls: Option<&UpstreamTls>,
        secrets: Option<Arc<gatehouse_auth::LocalSecrets>>,
    ) -> Self {
        Self {
            clients: Clients::new(tls),
            url: url.clone(),
            headers: header_map(headers),
            session: ArcSwapOption::empty(),
            version: ArcSwapOption::empty(),
            credential: credential.map(|c| ClientCredentials::new(c, secrets)),
        }
    }

    pub(crate) fn reset_session(&self) {
        self.session.store(None);
        self.version.store(None);
    }

    pub(crate) fn set_version(&self, v: ProtocolVersion) {
        self.version
            .store(Some(Arc::new(HeaderValue::from_static(v.as_str()))));
    }

    pub(crate) fn exchanges_tokens(&self) -> bool {
        self.credential
            .as_ref()
            .is_some_and(ClientCredentials::exchanges)
    }

    async fn request(
        &self,
        method: reqwest::Method,
        user: Option<&UserToken>,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let mut rb = usable(self.clients.get())?
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        match (&self.credential, user) {
            // The user's own token for this upstream (per-user OAuth).
            (_, Some(UserToken::Upstream(h))) => {
                rb = rb.header(reqwest::header::AUTHORIZATION, h.clone());
            }
            // A call for a user: a token for this upstream naming them, or no call at all.
            (Some(c), Some(u)) if c.exchanges() => {
                let token = c.exchange(u.token()).await.map_err(|e| {
                    UpstreamError::Transport(format!("token exchange for the user: {e}"))
                })?;
                rb = rb.bearer_auth(token);
            }
            _ => {
                if let Some(token) = own_token(&self.credential).await? {
                    rb = rb.bearer_auth(token);
                }
            }
        }
        if let Some(s) = self.session.load_full() {
            rb = rb.header(HEADER_SESSION_ID, (*s).clone());
        }
        if let Some(v) = self.version.load_full() {
            rb = rb.header(HEADER_PROTOCOL_VERSION, (*v).clone());
        }
        Ok(rb)
    }

    async fn post(
        &self,
        msg: &Message,
        caller: super::Caller<'_>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut rb = self
            .request(reqwest::Method::POST, caller.user)
            .await?
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        // The client headers configured for this upstream; checked again here, so no
        // credential or protocol header is ever passed on, whatever reached this far.
        for (k, v) in caller.headers {
            if !gatehouse_config::never_forwarded(k.as_str()) {
                rb = rb.header(k, v);
            }
        }
        for (k, v) in routing_headers(msg) {
            rb = rb.header(k, v);
        }
        // The trace context the call carries in `_meta`, as W3C propagation has it for HTTP.
        if let Message::Request(r) = msg
            && let Some(tp) = r.meta().and_then(|m| m.get("traceparent")?.as_str())
            && crate::otel::Parent::parse(tp).is_some()
        {
            rb = rb.header("traceparent", tp);
        }
        let resp = rb
            .body(msg.to_bytes())
            .send()
            .await
            .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND && self.session.load().is_some() {
            return Err(UpstreamError::SessionExpired);
        }
        // A 4xx carrying a JSON-RPC body is an answer (2026-07-28 servers send errors so).
        let json_body = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if status == reqwest::StatusCode::UNAUTHORIZED
            && let Some(c) = &self.credential
        {
            // The upstream refused the token: the next call fetches a fresh one.
            match caller.user {
                // The user's own token was refused: the pipeline forgets it.
                Some(UserToken::Upstream(_)) => {}
                Some(u) if c.exchanges() => c.forget_exchanged(u.token()),
                _ => c.invalidate().await,
            }
        }
        let answered = status.is_success() || (status.is_client_error() && json_body);
        if !answered {
            return Err(UpstreamError::Http(status.as_u16()));
        }
        if self.session.load().is_none()
            && let Some(sid) = resp.headers().get(HEADER_SESSION_ID)
        {
            self.session.store(Some(Arc::new(sid.clone())));
        }
        Ok(resp)
    }

    /// POSTs a request and pumps its answer until the response for call `n` has arrived.
    pub(crate) async fn send_request(
        &self,
        shared: &Shared,
        n: u64,
        req: Request,
        caller: super::Caller<'_>,
    ) -> Result<(), UpstreamError> {
        let resp = self.post(&Message::Request(req), caller).await?;
        let accepted = self.pump(shared, resp, Some(n)).await?;
        // 202: the response comes later on the GET stream; the caller's timeout bounds it.
        if shared.is_pending(n) && !accepted {
            return Err(UpstreamError::Closed);
        }
        Ok(())
    }

    /// POSTs a notification or a response to a server request.
    pub(crate) async fn send_other(
        &self,
        shared: &Shared,
        msg: &Message,
    ) -> Result<(), UpstreamError> {
        let resp = self.post(msg, super::Caller::default()).await?;
        self.pump(shared, resp, None).await.map(drop)
    }

    /// Reads a POST's answer, routing every message in it. `Ok(true)` when the upstream
    /// only accepted the message (202) and will answer elsewhere.
    async fn pump(
        &self,
        shared: &Shared,
        mut resp: reqwest::Response,
        call: Option<u64>,
    ) -> Result<bool, UpstreamError> {
        if resp.status() == reqwest::StatusCode::ACCEPTED {
            return Ok(true);
        }
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ctype.starts_with("text/event-stream") {
            // A server may end a call's stream before the response (SEP-1699 polling) after
            // giving events ids: the call then continues on a GET with Last-Event-ID, after
            // the retry delay it asked for. Bounded, so a server that keeps cutting cannot
            // hold the call forever (the call's timeout bounds it too).
            let mut dec = SseDecoder::new(shared.max_message_bytes);
            let mut retry = Duration::from_millis(0);
            let mut last_seen: Option<String> = None;
            for _attempt in 0..MAX_RESUMES {
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?
                {
                    let events = dec
                        .feed(&chunk)
                        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                    for ev in events {
                        if ev.id.is_some() {
                            last_seen.clone_from(&ev.id);
                        }
                        if let Some(ms) = ev.retry {
                            retry = Duration::from_millis(ms.min(10_000));
                        }
                        if ev.data.trim().is_empty() {
                            continue; // priming event
                        }
                        self.deliver(shared, ev.data.as_bytes(), call).await;
                    }
                    if call.is_some_and(|n| !shared.is_pending(n)) {
                        return Ok(false);
                    }
                }
                let (Some(n), Some(last)) = (call, last_seen.as_deref()) else {
                    return Ok(false);
                };
                if !shared.is_pending(n) {
                    return Ok(false);
                }
                tokio::time::sleep(retry).await;
                resp = self
                    .request(reqwest::Method::GET, None)
                    .await?
                    .header(ACCEPT, "text/event-stream")
                    .header("last-event-id", last)
                    .send()
                    .await
                    .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?;
                if !resp.status().is_success() {
                    return Err(UpstreamError::Http(resp.status().as_u16()));
                }
                dec = SseDecoder::new(shared.max_message_bytes);
            }
            return Ok(false);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > shared.max_message_bytes {
                return Err(UpstreamError::Protocol(
                    "response exceeds the size limit".into(),
                ));
            }
        }
        if !body.is_empty() {
            self.deliver(shared, &body, call).await;
        }
        Ok(false)
    }

    async fn deliver(&self, shared: &Shared, bytes: &[u8], call: Option<u64>) {
        let msgs = match decode_body(bytes, &limits(shared)) {
            Ok(Decoded::Single(Ok(m))) => vec![m],
            Ok(Decoded::Batch(items)) => items.into_iter().filter_map(Result::ok).collect(),
            _ => {
                tracing::warn!(upstream = %shared.name, "unreadable message from upstream");
                return;
            }
        };
        for m in msgs {
            if let Some(reply) = shared.on_message(m, call) {
                let _ = Box::pin(self.send_other(shared, &reply)).await;
            }
        }
    }

    /// Holds the GET stream open for server-initiated messages. Returns when it ends;
    /// `Err(SessionExpired)` means the upstream forgot the session.
    async fn listen(&self, shared: &Shared) -> Result<(), UpstreamError> {
        let mut resp = self
            .request(reqwest::Method::GET, None)
            .await?
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(UpstreamError::SessionExpired),
            s => return Err(UpstreamError::Http(s)),
        }
        let mut dec = SseDecoder::new(shared.max_message_bytes);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?
        {
            for ev in dec
                .feed(&chunk)
                .map_err(|e| UpstreamError::Protocol(e.to_string()))?
            {
                if !ev.data.trim().is_empty() {
                    self.deliver(shared, ev.data.as_bytes(), None).await;
                }
            }
        }
        Ok(())
    }
}

/// Handshakes (retrying with backoff), then keeps the GET stream for server messages.
pub(crate) async fn supervise(up: Arc<Upstream>) {
    let Link::Http(link) = &up.link else { return };
    let mut backoff = Backoff::new();
    loop {
        match up.handshake().await {
            Ok(info) => {
                tracing::info!(upstream = %up.spec.name, version = %info.version, "upstream ready");
                up.emit(UpstreamEvent::Ready {
                    upstream: up.spec.name.clone(),
                });
                backoff.reset();
            }
            Err(e) => {
                tracing::warn!(upstream = %up.spec.name, error = %e, "upstream handshake failed");
                up.disconnected();
                backoff.wait().await;
                continue;
            }
        }
        let mut listen_backoff = Backoff::new();
        loop {
            match link.listen(&up.shared).await {
                Ok(()) => listen_backoff.reset(),
                // The server offers no GET stream: nothing to hold open.
                Err(UpstreamError::Http(405)) => std::future::pending::<()>().await,
                Err(UpstreamError::SessionExpired) => break,
                Err(e) => tracing::debug!(upstream = %up.spec.name, error = %e, "GET stream ended"),
            }
            listen_backoff.wait().await;
        }
    }
}
