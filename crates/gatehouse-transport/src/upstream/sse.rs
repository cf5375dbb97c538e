//! Legacy HTTP+SSE upstreams (2024-11-05): a GET stream that first names a message endpoint,
//! then carries every message from the server; messages to the server are POSTed there.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use gatehouse_protocol::{Limits, Message, SseDecoder, decode_message_bytes};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};

use super::http::{header_map, http_client, own_token, usable};
use super::{Backoff, Link, Upstream, UpstreamError, UpstreamEvent};
use crate::config::UpstreamTls;
use gatehouse_auth::{ClientCredentials, ClientCredentialsConfig};

pub(crate) struct SseLink {
    client: Option<reqwest::Client>,
    url: reqwest::Url,
    headers: HeaderMap,
    endpoint: ArcSwapOption<reqwest::Url>,
    credential: Option<ClientCredentials>,
}

impl SseLink {
    pub(crate) fn new(
        url: &reqwest::Url,
        headers: &[(String, String)],
        credential: Option<ClientCredentialsConfig>,
        tls: Option<&UpstreamTls>,
        secrets: Option<Arc<gatehouse_auth::LocalSecrets>>,
    ) -> Self {
        Self {
            client: http_client(tls),
            url: url.clone(),
            headers: header_map(headers),
            endpoint: ArcSwapOption::empty(),
            credential: credential.map(|c| ClientCredentials::new(c, secrets)),
        }
    }

    pub(crate) async fn send(&self, msg: &Message) -> Result<(), UpstreamError> {
        let Some(endpoint) = self.endpoint.load_full() else {
            return Err(UpstreamError::Unavailable);
        };
        let mut rb = usable(&self.client)?
            .post((*endpoint).clone())
            .headers(self.headers.clone());
        if let Some(token) = own_token(&self.credential).await? {
            rb = rb.bearer_auth(token);
        }
        let resp = rb
            .header(CONTENT_TYPE, "application/json")
            .body(msg.to_bytes())
            .send()
            .await
            .map_err(|e| UpstreamError::Transport(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(UpstreamError::Http(resp.status().as_u16()));
        }
        Ok(())
    }
}

/// The endpoint must stay on the SSE URL's origin: an upstream cannot point our POSTs at
/// another host.
fn resolve_endpoint(base: &reqwest::Url, data: &str) -> Option<reqwest::Url> {
    let ep = base.join(data.trim()).ok()?;
    (ep.origin() == base.origin()).then_some(ep)
}

pub(crate) async fn supervise(up: Arc<Upstream>) {
    let Link::Sse(link) = &up.link else { return };
    let mut backoff = Backoff::new();
    let name = up.spec.name.clone();
    loop {
        let client = match usable(&link.client) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(upstream = %name, error = %e, "cannot reach the upstream");
                backoff.wait().await;
                continue;
            }
        };
        let mut rb = client.get(link.url.clone()).headers(link.headers.clone());
        match own_token(&link.credential).await {
            Ok(Some(token)) => rb = rb.bearer_auth(token),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e, "no credential for the upstream");
                backoff.wait().await;
                continue;
            }
        }
        let resp = rb.header(ACCEPT, "text/event-stream").send().await;
        let mut resp = match resp {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::warn!(upstream = %name, status = r.status().as_u16(), "SSE connect refused");
                backoff.wait().await;
                continue;
            }
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e.without_url(), "SSE connect failed");
                backoff.wait().await;
                continue;
            }
        };
        let shared = up.shared.clone();
        let limits = Limits {
            max_body_bytes: shared.max_message_bytes,
            max_depth: 128,
            max_batch: 1,
        };
        let mut dec = SseDecoder::new(shared.max_message_bytes);
        let mut handshake: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                _ => break,
            };
            let Ok(events) = dec.feed(&chunk) else { break };
            for ev in events {
                match ev.event.as_deref() {
                    Some("endpoint") => {
                        let Some(ep) = resolve_endpoint(&link.url, &ev.data) else {
                            tracing::error!(upstream = %name, "SSE endpoint is not on the upstream's origin");
                            continue;
                        };
                        link.endpoint.store(Some(Arc::new(ep)));
                        let hs = up.clone();
                        handshake = Some(tokio::spawn(async move {
                            match hs.handshake().await {
                                Ok(info) => {
                                    tracing::info!(upstream = %hs.spec.name, version = %info.version, "upstream ready");
                                    hs.emit(UpstreamEvent::Ready {
                                        upstream: hs.spec.name.clone(),
                                    });
                                }
                                Err(e) => {
                                    tracing::error!(upstream = %hs.spec.name, error = %e, "upstream handshake failed")
                                }
                            }
                        }));
                    }
                    None | Some("message") if !ev.data.trim().is_empty() => {
                        match decode_message_bytes(ev.data.as_bytes(), &limits) {
                            Ok(msg) => {
                                if let Some(reply) = shared.on_message(msg, None) {
                                    let _ = link.send(&reply).await;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(upstream = %name, error = %e, "unreadable SSE message")
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(h) = handshake {
            h.abort();
            backoff.reset();
        }
        link.endpoint.store(None);
        up.disconnected();
        backoff.wait().await;
    }
}
