//! Upstream MCP servers. Each upstream has one connection shared by every client: request
//! ids are rewritten to the gateway's own, progress tokens and server-to-client requests are
//! mapped back to the client whose call they belong to, and the handshake is negotiated with
//! each upstream on its own, whatever version the clients speak.

pub mod egress;
mod http;
mod provenance;
mod registry;
pub mod sandbox;
mod server_requests;
mod sse;
mod stdio;

pub use server_requests::ServerRequests;

pub use crate::line::read_bounded_line;
pub use http::http_client;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use gatehouse_protocol::{
    Id, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, Message, Notification,
    ProtocolVersion, Request, Response, RpcError, code, method,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{TransportSpec, UpstreamSpec};
use crate::session::ClientCaps;
use gatehouse_auth::LocalSecrets;

/// Where the messages an upstream sends during one call go: the client's response stream.
#[derive(Debug, Clone)]
pub struct CallRoute {
    pub events: mpsc::Sender<Message>,
    /// The client's own progress token, restored on progress notifications.
    pub progress_token: Option<Value>,
    /// The client session this call belongs to: only it may answer server requests sent
    /// during the call.
    pub owner: String,
    /// What the client declared it can answer (sampling, elicitation, roots).
    pub caps: ClientCaps,
}

/// What went wrong talking to an upstream. Never shown to clients verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream is not connected")]
    Unavailable,
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream answered HTTP {0}")]
    Http(u16),
    #[error("upstream session expired")]
    SessionExpired,
    #[error("upstream broke the protocol: {0}")]
    Protocol(String),
    #[error("upstream transport error: {0}")]
    Transport(String),
}

impl UpstreamError {
    /// The failure's kind for metrics and spans, without the upstream's own words.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout => "timeout",
            UpstreamError::Unavailable | UpstreamError::Closed => "unavailable",
            _ => "transport",
        }
    }
}

/// Something an upstream did that the gateway as a whole must react to.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// Handshake done (first time or after a restart): lists must be (re)read.
    Ready { upstream: String },
    /// The connection is gone; calls fail until it is back.
    Down { upstream: String },
    /// A notification not tied to any call (list changes, logs, resource updates).
    Notification {
        upstream: String,
        notification: Notification,
    },
    /// A sandboxed server asked its egress proxy for a connection (`target` is
    /// `host:port`), which was made or refused.
    Egress {
        upstream: String,
        target: String,
        allowed: bool,
        detail: String,
    },
}

/// What the handshake learnt about an upstream.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    pub version: ProtocolVersion,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
}

impl UpstreamInfo {
    /// From an `initialize` or `server/discover` result; `server_info_at` is where that
    /// result keeps the server's identity (a JSON pointer).
    fn from_result(version: ProtocolVersion, result: &Value, server_info_at: &str) -> UpstreamInfo {
        UpstreamInfo {
            version,
            capabilities: result
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
            server_info: result
                .pointer(server_info_at)
                .cloned()
                .unwrap_or_else(|| json!({})),
            instructions: result
                .get("instructions")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// Who a call is made for, as far as an HTTP upstream's request shows it: the user's token
/// (per-user OAuth or token exchange) and the client headers this upstream receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    pub user: Option<&'a UserToken>,
    pub headers: &'a [(::http::HeaderName, ::http::HeaderValue)],
}

struct Pending {
    done: oneshot::Sender<Response>,
    route: Option<CallRoute>,
}

/// State every transport of one upstream shares: in-flight calls and event routing.
pub(crate) struct Shared {
    name: String,
    next_id: AtomicU64,
    inflight: Mutex<HashMap<u64, Pending>>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    server_requests: Arc<ServerRequests>,
    max_message_bytes: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_pending(&self, n: u64) -> bool {
        self.lock().contains_key(&n)
    }

    /// Fails every in-flight call (connection lost).
    fn fail_all(&self) {
        self.lock().clear();
    }

    /// The client call a message without a call id belongs to: the call whose HTTP response
    /// stream carried it (`hint`), else — over stdio, where nothing names the call — the only
    /// call in progress with a client stream. With several candidates nobody gets it: a
    /// guess could hand one user's data to another.
    fn call_route(&self, hint: Option<u64>) -> Option<CallRoute> {
        let inflight = self.lock();
        if let Some(h) = hint {
            return inflight.get(&h).and_then(|p| p.route.clone());
        }
        let mut candidates = inflight.values().filter_map(|p| p.route.as_ref());
        match (candidates.next(), candidates.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    /// Routes one message from the upstream. `hint` is the call whose HTTP response stream
    /// carried it, when known. Returns a message to send back to the upstream, if any.
    fn on_message(&self, msg: Message, hint: Option<u64>) -> Option<Message> {
        match msg {
            Message::Response(resp) => {
                let pending = resp.id.as_u64().and_then(|n| self.lock().remove(&n));
                match pending {
                    Some(p) => {
                        let _ = p.done.send(resp);
                    }
                    None => {
                        tracing::debug!(upstream = %self.name, id = ?resp.id, "response to no pending call")
                    }
                }
                None
            }
            Message::Notification(mut n) => {
                match n.method.as_str() {
                    method::PROGRESS => {
                        // Only the call that asked for progress gets it, under its own token.
                        let token = n
                            .params
                            .as_ref()
                            .and_then(|p| p.get("progressToken"))
                            .and_then(Value::as_u64);
                        let route =
                            token.and_then(|t| self.lock().get(&t).and_then(|p| p.route.clone()));
                        if let Some(route) = route
                            && let Some(original) = route.progress_token.clone()
                        {
                            if let Some(p) = n.params.as_mut().and_then(Value::as_object_mut) {
                                p.insert("progressToken".into(), original);
                            }
                            // Progress is lossy by nature: a slow client loses updates, not memory.
                            let _ = route.events.try_send(Message::Notification(n));
                        }
                    }
                    method::MESSAGE => {
                        // Logs can carry one caller's data: they go to the call they belong to
                        // and never to other sessions; logs outside any call are dropped.
                        match self.call_route(hint) {
                            Some(route) => {
                                let _ = route.events.try_send(Message::Notification(n));
                            }
                            None => {
                                tracing::debug!(upstream = %self.name, "log message outside any call dropped")
                            }
                        }
                    }
                    method::CANCELLED => {}
                    _ => {
                        let _ = self.events.send(UpstreamEvent::Notification {
                            upstream: self.name.clone(),
                            notification: n,
                        });
                    }
                }
                None
            }
            Message::Request(req) => {
                if req.method == method::PING {
                    return Some(Response::ok(req.id, json!({})).into());
                }
                let route = self.call_route(hint);
                // Stateless clients (no session) have no channel to answer on.
                let Some(route) = route.filter(|r| !r.owner.is_empty()) else {
                    return Some(
                        Response::err(
                            req.id,
                            crate::refusal::internal_bare("no client can answer this request"),
                        )
                        .into(),
                    );
                };
                let supported = match req.method.as_str() {
                    "sampling/createMessage" => route.caps.sampling,
                    "elicitation/create" => route.caps.elicitation,
                    "roots/list" => route.caps.roots,
                    _ => true,
                };
                if !supported {
                    return Some(
                        Response::err(
                            req.id,
                            crate::refusal::method_not_found(
                                "the client does not support this request",
                            ),
                        )
                        .into(),
                    );
                }
                let original = req.id.clone();
                let key = self
                    .server_requests
                    .insert(&self.name, original.clone(), &route.owner);
                let forwarded = Request {
                    id: Id::Str(key.clone()),
                    method: req.method,
                    params: req.params,
                };
                if route.events.try_send(forwarded.into()).is_err() {
                    self.server_requests.take(&Id::Str(key), &route.owner);
                    return Some(
                        Response::err(
                            original,
                            crate::refusal::internal_bare("client stream is gone"),
                        )
                        .into(),
                    );
                }
                None
            }
        }
    }
}

/// A user's credential for one call. `Client` is the token the user presented, kept only
/// to be exchanged (RFC 8693) for an upstream configured so, never sent anywhere else; it
/// holds the request's `Authorization` header itself (a reference count, not a copy).
/// `Upstream` is the user's own token *for that upstream* (per-user OAuth), sent as is.
/// `Debug` hides both.
#[derive(Clone)]
pub enum UserToken {
    Client(::http::HeaderValue),
    Upstream(::http::HeaderValue),
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken(..)")
    }
}

impl UserToken {
    /// From an `Authorization: Bearer …` header; `None` for any other shape.
    pub fn from_authorization(header: &::http::HeaderValue) -> Option<UserToken> {
        let t = UserToken::Client(header.clone());
        (!t.token().is_empty()).then_some(t)
    }

    /// A user's token for an upstream; `None` if it cannot be a header.
    pub fn for_upstream(token: &str) -> Option<UserToken> {
        let mut v = ::http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        v.set_sensitive(true);
        Some(UserToken::Upstream(v))
    }

    pub(crate) fn token(&self) -> &str {
        let (UserToken::Client(h) | UserToken::Upstream(h)) = self;
        gatehouse_auth::bearer(h.to_str().ok()).unwrap_or("")
    }
}

enum Link {
    Stdio(stdio::StdioLink),
    Http(http::HttpLink),
    Sse(sse::SseLink),
}

impl Link {
    async fn send_request(
        &self,
        shared: &Shared,
        n: u64,
        req: Request,
        caller: Caller<'_>,
    ) -> Result<(), UpstreamError> {
        match self {
            Link::Stdio(l) => l.send(&Message::Request(req)).await,
            Link::Http(l) => l.send_request(shared, n, req, caller).await,
            Link::Sse(l) => l.send(&Message::Request(req)).await,
        }
    }

    async fn send(&self, shared: &Shared, msg: &Message) -> Result<(), UpstreamError> {
        match self {
            Link::Stdio(l) => l.send(msg).await,
            Link::Http(l) => l.send_other(shared, msg).await,
            Link::Sse(l) => l.send(msg).await,
        }
    }
}

/// One upstream MCP server and its shared connection.
pub struct Upstream {
    pub spec: UpstreamSpec,
    shared: Arc<Shared>,
    link: Link,
    info: ArcSwapOption<UpstreamInfo>,
    task: Mutex<Option<JoinHandle<()>>>,
    handshake_timeout: Duration,
    /// Per-upstream latency histogram, resolved once (label lookup per call is costly).
    pub latency: metrics::Histogram,
    /// Set when the upstream speaks only the stateless protocol (no `initialize`).
    modern: std::sync::atomic::AtomicBool,
}

impl Upstream {
    /// Creates the upstream and starts connecting in the background.
    pub fn start(
        spec: UpstreamSpec,
        events: mpsc::UnboundedSender<UpstreamEvent>,
        server_requests: Arc<ServerRequests>,
        max_message_bytes: usize,
        handshake_timeout: Duration,
        secrets: Option<Arc<LocalSecrets>>,
    ) -> Arc<Upstream> {
        let shared = Arc::new(Shared {
            name: spec.name.clone(),
            next_id: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            events,
            server_requests,
            max_message_bytes,
        });
        let link = match &spec.transport {
            TransportSpec::Stdio { .. } => Link::Stdio(stdio::StdioLink::new()),
            TransportSpec::StreamableHttp {
                url,
                headers,
                credential,
                tls,
            } => Link::Http(http::HttpLink::new(
                url,
                headers,
                credential.clone(),
                tls.as_ref(),
                secrets.clone(),
            )),
            TransportSpec::Sse {
                url,
                headers,
                credential,
                tls,
            } => Link::Sse(sse::SseLink::new(
                url,
                headers,
                credential.clone(),
                tls.as_ref(),
                secrets,
            )),
        };
        let latency =
            metrics::histogram!(crate::metrics::UPSTREAM_LATENCY, "upstream" => spec.name.clone());
        let up = Arc::new(Upstream {
            spec,
            shared,
            link,
            info: ArcSwapOption::empty(),
            task: Mutex::new(None),
            handshake_timeout,
            latency,
            modern: std::sync::atomic::AtomicBool::new(false),
        });
        let task = match &up.link {
            Link::Stdio(_) => tokio::spawn(stdio::supervise(up.clone())),
            Link::Http(_) => tokio::spawn(http::supervise(up.clone())),
            Link::Sse(_) => tokio::spawn(sse::supervise(up.clone())),
        };
        *up.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        up
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The handshake's result, `None` while not connected.
    pub fn info(&self) -> Option<Arc<UpstreamInfo>> {
        self.info.load_full()
    }

    /// Stops the connection (and the child process, for stdio).
    pub fn stop(&self) {
        if let Some(t) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        self.info.store(None);
        self.shared.fail_all();
    }

    /// Sends a request and waits for its response. The request's id is replaced by the
    /// gateway's own and restored on the response. If the caller goes away first (client
    /// disconnect or timeout) the upstream is told the call is cancelled.
    ///
    /// `user` is the caller's token, for an upstream that exchanges tokens (see
    /// [`Upstream::exchanges_tokens`]); the gateway's own traffic passes `None`.
    pub async fn call(
        self: &Arc<Self>,
        req: Request,
        route: Option<CallRoute>,
        timeout: Duration,
        caller: Caller<'_>,
    ) -> Result<Response, UpstreamError> {
        // Only an HTTP upstream can forget our session; keep a copy for the retry there only.
        let Link::Http(_) = &self.link else {
            return self.call_once(req, route, timeout, caller).await;
        };
        match self
            .call_once(req.clone(), route.clone(), timeout, caller)
            .await
        {
            Err(UpstreamError::SessionExpired) => {
                // The upstream restarted and forgot us: handshake again, retry once.
                self.handshake().await?;
                self.call_once(req, route, timeout, caller).await
            }
            other => other,
        }
    }

    /// Whether calls made for a user must carry a token exchanged for theirs.
    pub fn exchanges_tokens(&self) -> bool {
        match &self.link {
            Link::Http(l) => l.exchanges_tokens(),
            _ => false,
        }
    }

    async fn call_once(
        self: &Arc<Self>,
        mut req: Request,
        route: Option<CallRoute>,
        timeout: Duration,
        caller: Caller<'_>,
    ) -> Result<Response, UpstreamError> {
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let client_id = std::mem::replace(&mut req.id, Id::from(n));
        if self.modern.load(Ordering::Relaxed) {
            add_envelope(&mut req);
        }
        if route.as_ref().is_some_and(|r| r.progress_token.is_some())
            && let Some(meta) = req.meta_mut()
        {
            meta.insert("progressToken".into(), json!(n));
        }
        let (tx, rx) = oneshot::channel();
        self.shared.lock().insert(n, Pending { done: tx, route });
        let guard = CancelOnDrop {
            upstream: self.clone(),
            n,
            armed: true,
        };
        let outcome = tokio::time::timeout(timeout, async {
            self.link.send_request(&self.shared, n, req, caller).await?;
            rx.await.map_err(|_| UpstreamError::Closed)
        })
        .await;
        match outcome {
            Ok(Ok(mut resp)) => {
                guard.disarm();
                resp.id = client_id;
                Ok(resp)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    /// Sends a notification (e.g. cancellation) or a response to a server request.
    pub async fn send(&self, msg: Message) -> Result<(), UpstreamError> {
        self.link.send(&self.shared, &msg).await
    }

    /// Runs the `initialize` handshake, then `notifications/initialized`.
    pub(crate) async fn handshake(self: &Arc<Self>) -> Result<Arc<UpstreamInfo>, UpstreamError> {
        if let Link::Http(l) = &self.link {
            l.reset_session();
        }
        self.modern.store(false, Ordering::Relaxed);
        let req = Request::new(
            0,
            method::INITIALIZE,
            Some(json!({
                "protocolVersion": ProtocolVersion::LATEST_HANDSHAKE.as_str(),
                "capabilities": {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}},
                "clientInfo": {"name": "gatehouse", "version": env!("CARGO_PKG_VERSION")}
            })),
        );
        let resp = self
            .call_once(req, None, self.handshake_timeout, Caller::default())
            .await?;
        let info = match resp.outcome {
            Ok(result) => {
                let version = result
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .and_then(ProtocolVersion::parse)
                    .filter(|v| !v.is_stateless())
                    .ok_or_else(|| {
                        UpstreamError::Protocol(
                            "initialize answered an unknown protocol version".into(),
                        )
                    })?;
                if let Link::Http(l) = &self.link {
                    l.set_version(version);
                }
                self.send(Notification::new(method::INITIALIZED, None).into())
                    .await?;
                UpstreamInfo::from_result(version, &result, "/serverInfo")
            }
            // A server without the handshake names the stateless versions it speaks.
            Err(e) if e.code == code::UNSUPPORTED_PROTOCOL_VERSION && names_stateless(&e) => {
                self.discover().await?
            }
            Err(e) => {
                return Err(UpstreamError::Protocol(format!(
                    "initialize failed: {}",
                    e.message
                )));
            }
        };
        let info = Arc::new(info);
        self.info.store(Some(info.clone()));
        Ok(info)
    }

    /// Switches this upstream to the stateless protocol: every request from now on carries
    /// the `_meta` envelope (and, over HTTP, the routing headers); `server/discover` replaces
    /// the handshake.
    async fn discover(self: &Arc<Self>) -> Result<UpstreamInfo, UpstreamError> {
        let version = ProtocolVersion::LATEST_STATELESS;
        self.modern.store(true, Ordering::Relaxed);
        if let Link::Http(l) = &self.link {
            l.set_version(version);
        }
        let resp = self
            .call_once(
                Request::new(0, method::DISCOVER, Some(json!({}))),
                None,
                self.handshake_timeout,
                Caller::default(),
            )
            .await?;
        let result = resp.outcome.map_err(|e| {
            UpstreamError::Protocol(format!("server/discover failed: {}", e.message))
        })?;
        let speaks = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|v| v.as_str() == Some(version.as_str())));
        if !speaks {
            return Err(UpstreamError::Protocol(
                "server/discover names no version Gatehouse speaks".into(),
            ));
        }
        Ok(UpstreamInfo::from_result(
            version,
            &result,
            "/_meta/io.modelcontextprotocol~1serverInfo",
        ))
    }

    fn emit(&self, ev: UpstreamEvent) {
        let _ = self.shared.events.send(ev);
    }

    fn disconnected(&self) {
        self.info.store(None);
        self.shared.fail_all();
        self.emit(UpstreamEvent::Down {
            upstream: self.spec.name.clone(),
        });
    }
}

/// Whether a -32022 error names a stateless version Gatehouse speaks.
fn names_stateless(e: &RpcError) -> bool {
    e.data
        .as_ref()
        .and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .is_some_and(|v| {
            v.iter()
                .any(|v| v.as_str() == Some(ProtocolVersion::LATEST_STATELESS.as_str()))
        })
}

/// The 2026-07-28 envelope Gatehouse sends as a client of a stateless upstream. It declares
/// no client capabilities: server requests are not relayed on that protocol.
fn add_envelope(req: &mut Request) {
    let params = req.params.get_or_insert_with(|| json!({}));
    let Some(obj) = params.as_object_mut() else {
        return;
    };
    let meta = obj.entry("_meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.insert(
            META_PROTOCOL_VERSION.into(),
            json!(ProtocolVersion::LATEST_STATELESS.as_str()),
        );
        m.insert(META_CLIENT_CAPABILITIES.into(), json!({}));
        m.insert(
            META_CLIENT_INFO.into(),
            json!({"name": "gatehouse", "version": env!("CARGO_PKG_VERSION")}),
        );
    }
}

/// Tells the upstream a call was abandoned, unless the response arrived.
struct CancelOnDrop {
    upstream: Arc<Upstream>,
    n: u64,
    armed: bool,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let was_pending = self.upstream.shared.lock().remove(&self.n).is_some();
        if !was_pending {
            return;
        }
        let up = self.upstream.clone();
        let n = self.n;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let note = Notification::new(
                    method::CANCELLED,
                    Some(
                        json!({"requestId": n, "reason": "client went away or the call timed out"}),
                    ),
                );
                let _ = up.send(note.into()).await;
            });
        }
    }
}

/// Exponential backoff between reconnects: 100 ms doubling to 30 s.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
    pub(crate) fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(30));
    }
}
