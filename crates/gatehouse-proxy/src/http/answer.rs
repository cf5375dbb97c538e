//! How a request's answer travels back. Stateless (2026-07-28) requests: the HTTP exchange
//! is the call, and closing it cancels the call. Session requests: the call outlives the
//! connection (a dropped connection is not a cancellation; `notifications/cancelled` is), and
//! everything it sends goes through a resumable stream in the hub, so a client that loses the
//! connection resumes with `Last-Event-ID`. Either way a call whose first message is its
//! response is answered with plain JSON; one that sends progress, logs or server requests
//! first is answered with SSE.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use gatehouse_protocol::{Message, Request, Response as RpcResponse, encode_sse_event};
use http::StatusCode;
use tokio::sync::mpsc;

use super::{json_body, sse_response, stateless_status};
use crate::gateway::Gateway;
use crate::hub::{Event, EventId};
use crate::pipeline::ClientCtx;

/// Answers one request.
pub(super) async fn respond(
    gw: Arc<Gateway>,
    ctx: ClientCtx,
    req: Request,
    sse_ok: bool,
) -> Response {
    let stateless = ctx.session.is_none();
    let finish = move |resp: RpcResponse| {
        let status = match (&resp.outcome, stateless) {
            (Err(e), true) => stateless_status(e.code),
            _ => StatusCode::OK,
        };
        json_body(status, &resp.into())
    };
    if !sse_ok {
        return finish(gw.handle_request(&ctx, req, None).await);
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

/// The call runs on its own task and writes into a hub stream; this connection is only its
/// first reader.
async fn detached(
    gw: Arc<Gateway>,
    ctx: ClientCtx,
    sid: String,
    req: Request,
    finish: impl Fn(RpcResponse) -> Response,
) -> Response {
    let (number, mut rx) = gw.hub.open_call(&sid);
    let (tx, mut events) = mpsc::channel::<Message>(64);
    let task_gw = gw.clone();
    let task_sid = sid.clone();
    tokio::spawn(async move {
        let call = task_gw.handle_request(&ctx, req, Some(tx));
        tokio::pin!(call);
        let resp = loop {
            tokio::select! {
                biased;
                ev = events.recv() => match ev {
                    Some(m) => {
                        task_gw.hub.push(&task_sid, number, m);
                    }
                    None => break (&mut call).await,
                },
                r = &mut call => break r,
            }
        };
        while let Ok(m) = events.try_recv() {
            task_gw.hub.push(&task_sid, number, m);
        }
        task_gw.hub.push(&task_sid, number, resp.into());
        task_gw.hub.finish(&task_sid, number);
    });
    let Some((first_id, first)) = rx.recv().await else {
        // The stream was cut before anything arrived (a slow reader); the client resumes.
        return json_body(
            StatusCode::SERVICE_UNAVAILABLE,
            &RpcResponse::err(
                gatehouse_protocol::Id::Null,
                gatehouse_protocol::RpcError::new(
                    gatehouse_protocol::code::INTERNAL_ERROR,
                    "stream interrupted",
                ),
            )
            .into(),
        );
    };
    if let Message::Response(resp) = first {
        gw.hub.discard(&sid, number);
        return finish(resp);
    }
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
    let head = stream::iter([Ok(priming), Ok(sse_bytes(Some(first_id), &first))]);
    sse_response(
        head.chain(session_stream(Vec::new(), Some(rx), None))
            .boxed(),
    )
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
