//! How a request's answer travels back. Stateless (2026-07-28) requests: the HTTP exchange
//! is the call, and closing it cancels the call. Session requests: the call outlives the
//! connection (a dropped connection is not a cancellation; `notifications/cancelled` is), and
//! everything it sends goes through a resumable stream in the hub, so a client that loses the
//! connection resumes with `Last-Event-ID`. Either way a call whose first message is its
//! response is answered with plain JSON; one that sends progress, logs or server requests
//! first is answered with SSE.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use gatehouse_protocol::{Id, Message, Request, Response as RpcResponse, encode_sse_event};
use http::StatusCode;
use tokio::sync::mpsc;

use super::{json_body, sse_response};
use gatehouse_pipeline::ClientCtx;
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_transport::hub::{Event, EventId};

/// Answers one request.
pub(super) async fn respond(
    gw: Arc<Gateway>,
    ctx: ClientCtx,
    req: Request,
    sse_ok: bool,
) -> Response {
    let stateless = ctx.session.is_none();
    // A caller who signed in with OAuth and must step up gets the RFC 9470 challenge, so
    // its client can sign in again with the required strength.
    let oauth = matches!(
        ctx.principal.method,
        gatehouse_auth::AuthMethod::Jwt { .. }
            | gatehouse_auth::AuthMethod::Introspection { .. }
            | gatehouse_auth::AuthMethod::Gateway { .. }
    );
    let metadata = super::metadata_url(&gw.config(), ctx.scope.as_deref());
    let finish = move |resp: RpcResponse| {
        let challenge = match &resp.outcome {
            Err(e) if oauth => super::step_up_challenge(e, metadata.as_deref()),
            _ => None,
        };
        // Rate limited: HTTP 429 with Retry-After (seconds, rounded up).
        let retry_after = resp
            .outcome
            .as_ref()
            .err()
            .and_then(gatehouse_transport::refusal::retry_after_secs);
        let status = match &resp.outcome {
            _ if challenge.is_some() => StatusCode::UNAUTHORIZED,
            Err(e) => gatehouse_transport::refusal::http_status(e, stateless),
            Ok(_) => StatusCode::OK,
        };
        let mut r = json_body(status, &resp.into());
        if let Some(c) = challenge {
            r.headers_mut().insert(http::header::WWW_AUTHENTICATE, c);
        }
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        r
    };
    if !sse_ok {
        // Boxed: inline, the chain's state (about 10 KB) would make this future and the
        // handler's that holds it as large, and every move of them a copy of it.
        return finish(Box::pin(gw.handle_request(&ctx, req, None)).await);
    }
    match ctx.session.as_ref().map(|s| s.sid.clone()) {
        None => attached(gw, ctx, req, finish).await,
        Some(sid) => detached(gw, ctx, sid, req, finish).await,
    }
}

/// The call runs inside the HTTP exchange: dropping the response drops the call, which tells
/// the upstream it was cancelled.
async fn attached(
    gw: Arc<Gateway>,
    ctx: ClientCtx,
    req: Request,
    finish: impl Fn(RpcResponse) -> Response,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let mut call = Box::pin(async move { gw.handle_request(&ctx, req, Some(tx)).await });
    let first = tokio::select! {
        resp = &mut call => return finish(resp),
        ev = rx.recv() => ev,
    };
    let Some(first) = first else {
        return finish(call.await);
    };
    enum St<F> {
        Running(std::pin::Pin<Box<F>>, mpsc::Receiver<Message>),
        Done,
    }
    let head = stream::once(async move { Ok::<Bytes, Infallible>(sse_bytes(None, &first)) });
    let tail = stream::unfold(St::Running(call, rx), |state| async move {
        match state {
            St::Done => None,
            St::Running(mut call, mut rx) => {
                tokio::select! {
                    biased;
                    ev = rx.recv() => match ev {
                        Some(ev) => Some((Ok(sse_bytes(None, &ev)), St::Running(call, rx))),
                        None => Some((Ok(sse_bytes(None, &call.await.into())), St::Done)),
                    },
                    resp = &mut call => Some((Ok(sse_bytes(None, &resp.into())), St::Done)),
                }
            }
        }
    });
    sse_response(head.chain(tail).boxed())
}

/// The call runs in this handler (no task, no hand-off on the fast path) but is not tied to
/// the connection: if the client goes away it finishes on its own task. If its first message
/// is the response, that is the JSON answer. Otherwise the call moves to its own task and
/// writes into a resumable hub stream, which this connection reads first and a reconnecting
/// client can pick up.
async fn detached(
    gw: Arc<Gateway>,
    ctx: ClientCtx,
    sid: String,
    req: Request,
    finish: impl Fn(RpcResponse) -> Response,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let call_gw = gw.clone();
    let mut call =
        DetachOnDrop::new(async move { call_gw.handle_request(&ctx, req, Some(tx)).await });
    let first = tokio::select! {
        resp = &mut call => return finish(resp),
        ev = rx.recv() => ev,
    };
    let Some(first) = first else {
        return finish(call.await);
    };
    let (number, stream_rx) = gw.hub.open_call(&sid);
    gw.hub.push(&sid, number, first);
    // The select above returns when the call completes, so it is still running here.
    let Some(mut call) = call.into_inner() else {
        let err = gatehouse_transport::refusal::internal_bare("call ended without an answer");
        return json_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            &RpcResponse::err(Id::Null, err).into(),
        );
    };
    // Moves the call's messages into the hub, independent of this connection.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                ev = rx.recv() => match ev {
                    Some(m) => {
                        gw.hub.push(&sid, number, m);
                    }
                    None => {
                        let resp = (&mut call).await;
                        gw.hub.push(&sid, number, resp.into());
                        break;
                    }
                },
                resp = &mut call => {
                    while let Ok(m) = rx.try_recv() {
                        gw.hub.push(&sid, number, m);
                    }
                    gw.hub.push(&sid, number, resp.into());
                    break;
                }
            }
        }
        gw.hub.finish(&sid, number);
    });
    // Priming event: an id and no data, so a client that loses the connection can resume.
    let priming = encode_sse_event(
        Some(
            &EventId {
                stream: number,
                seq: 0,
            }
            .to_string(),
        ),
        None,
        "",
    );
    sse_response(
        stream::iter([Ok(priming)])
            .chain(session_stream(Vec::new(), Some(stream_rx), None))
            .boxed(),
    )
}

/// A future that, if dropped before it completes, finishes on its own task instead of being
/// cancelled.
struct DetachOnDrop<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    fut: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> DetachOnDrop<F>
where
    F::Output: Send + 'static,
{
    fn new(f: F) -> Self {
        Self {
            fut: Some(Box::pin(f)),
        }
    }

    /// The unfinished future, to be driven elsewhere (it is not detached any more); `None`
    /// once it has completed.
    fn into_inner(mut self) -> Option<Pin<Box<F>>> {
        self.fut.take()
    }
}

impl<F: Future + Send + 'static> Future for DetachOnDrop<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Pending;
        };
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            self.fut = None;
        }
        out
    }
}

impl<F: Future + Send + 'static> Drop for DetachOnDrop<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(fut), Ok(rt)) = (self.fut.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = fut.await;
            });
        }
    }
}

fn sse_bytes(id: Option<EventId>, msg: &Message) -> Bytes {
    let json = String::from_utf8(msg.to_bytes()).unwrap_or_default();
    encode_sse_event(id.map(|i| i.to_string()).as_deref(), None, &json)
}

/// A hub stream as SSE: `first` (the legacy endpoint event), the replayed events, then live
/// ones until the stream ends, with keep-alive comments. Legacy SSE names its events
/// `message`.
pub(super) fn session_stream(
    replay: Vec<Event>,
    rx: Option<mpsc::Receiver<Event>>,
    first: Option<Bytes>,
) -> BoxStream<'static, Result<Bytes, Infallible>> {
    let legacy = first.is_some();
    let encode = move |(id, m): Event| {
        let json = String::from_utf8(m.to_bytes()).unwrap_or_default();
        encode_sse_event(Some(&id.to_string()), legacy.then_some("message"), &json)
    };
    let head = stream::iter(
        first
            .into_iter()
            .chain(replay.into_iter().map(encode))
            .map(Ok),
    );
    let Some(rx) = rx else { return head.boxed() };
    let body = stream::unfold(rx, move |mut rx| async move {
        let keepalive = tokio::time::sleep(Duration::from_secs(15));
        tokio::select! {
            m = rx.recv() => Some((Ok(encode(m?)), rx)),
            _ = keepalive => Some((Ok(Bytes::from_static(b": keepalive\n\n")), rx)),
        }
    });
    head.chain(body).boxed()
}
