//! Legacy HTTP+SSE (2024-11-05) for old clients: `GET /sse` opens a session whose first
//! event names the message endpoint; `POST /message?sessionId=` carries requests, whose
//! answers go back on the stream.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gatehouse_protocol::{
    Decoded, Message, ProtocolVersion, Response as RpcResponse, code, encode_sse_event, method,
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::admission::{Admitted, Transport, admit, bind, edge, open_session};
use super::{AppState, app_refused, on_client_message, reject, session_stream, sse_response};
use std::net::SocketAddr;

use axum::extract::ConnectInfo;

use gatehouse_pipeline::ClientCtx;

use crate::edge::check_app;
use crate::tls::PeerIdentity;
use gatehouse_auth::AuthMethod;
use gatehouse_transport::session::ClientCaps;

pub(super) async fn legacy_sse(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIdentity>>,
    path: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let scope = path.map(|p| p.0);
    let principal = match edge(&st, scope.as_deref(), &headers, peer.as_ref().map(|p| &p.0)).await {
        Ok((_, p)) => p,
        Err(r) => return r,
    };
    // An API key is bound to one application, named at initialize; a legacy session exists
    // before that and its requests need no initialize, so API keys are not accepted here.
    if matches!(principal.method, AuthMethod::ApiKey { .. }) {
        return app_refused();
    }
    let (token, claims) = open_session(
        &st.gw,
        ProtocolVersion::V2024_11_05,
        scope.as_deref(),
        ClientCaps::default(),
        &principal,
        "",
        "sse",
    );
    let prefix = scope.map(|s| format!("/s/{s}")).unwrap_or_default();
    let endpoint = encode_sse_event(
        None,
        Some("endpoint"),
        &format!("{prefix}/message?sessionId={token}"),
    );
    let (replay, rx) = st.gw.hub.open_standalone(&claims.sid, None);
    sse_response(session_stream(replay, Some(rx), Some(endpoint)))
}

#[derive(Deserialize)]
pub(super) struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

pub(super) async fn legacy_message(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIdentity>>,
    remote: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    path: Option<Path<String>>,
    q: Result<Query<SessionQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let scope = path.map(|p| p.0);
    let peer = peer.as_ref().map(|p| &p.0);
    let Admitted {
        cfg,
        principal,
        decoded,
    } = match admit(
        &st,
        scope.as_deref(),
        &headers,
        peer,
        body,
        Transport::Legacy,
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(Query(q)) = q else {
        return reject(
            StatusCode::BAD_REQUEST,
            "no_session",
            code::INVALID_REQUEST,
            "sessionId is required",
        );
    };
    let claims = match bind(&st.gw, &q.session_id, scope.as_deref(), &principal) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let items = match decoded {
        Decoded::Single(m) => vec![m],
        Decoded::Batch(items) => items,
    };
    let sid = claims.sid.clone();
    let ctx = ClientCtx {
        user_token: gatehouse_pipeline::user_token(
            &principal,
            headers.get(http::header::AUTHORIZATION),
        ),
        principal,
        version: claims.version,
        session: Some(claims),
        scope: scope.clone(),
        // Legacy sessions open before initialize: the client's name is not known here.
        client: None,
        source: remote.map(|r| r.0.0.ip()),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(gatehouse_transport::otel::Parent::parse),
        forwarded: gatehouse_pipeline::forwardable(&st.gw.config(), &headers),
    };
    for item in items {
        match item {
            Ok(Message::Request(req)) if req.method == method::INITIALIZE => {
                let client_name = req
                    .params
                    .as_ref()
                    .and_then(|p| p.pointer("/clientInfo/name"))
                    .and_then(|v| v.as_str());
                if check_app(&ctx.principal, client_name).is_err() {
                    return app_refused();
                }
                let vs = scope.as_deref().and_then(|s| cfg.virtual_servers.get(s));
                let (_, result) = st
                    .gw
                    .initialize_result(req.param_str("protocolVersion"), vs);
                st.gw.deliver(&sid, RpcResponse::ok(req.id, result).into());
            }
            Ok(Message::Request(req)) => {
                let gw = st.gw.clone();
                let ctx = ctx.clone();
                let sid = sid.clone();
                tokio::spawn(async move {
                    let (tx, mut rx) = mpsc::channel::<Message>(64);
                    let fwd_gw = gw.clone();
                    let fwd_sid = sid.clone();
                    let forward = tokio::spawn(async move {
                        while let Some(m) = rx.recv().await {
                            fwd_gw.deliver(&fwd_sid, m);
                        }
                    });
                    let resp = gw.handle_request(&ctx, req, Some(tx)).await;
                    let _ = forward.await;
                    gw.deliver(&sid, resp.into());
                });
            }
            Ok(other) => on_client_message(&st.gw, &ctx, other),
            Err((id, e)) => {
                st.gw.deliver(&sid, RpcResponse::err(id, e).into());
            }
        }
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
