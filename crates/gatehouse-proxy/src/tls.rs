//! The HTTPS listener: rustls with TLS 1.3 only unless config allows 1.2, optional or
//! required client certificates verified against a CA and mapped to principals by rules,
//! and certificate files reloaded (atomically, for new connections) when they change.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use gatehouse_auth::{AuthMethod, Principal, PrincipalKind};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::{CertMatch, CertRule, TlsSettings};

/// The identity a client certificate established on this connection, as a request
/// extension: `None` when a certificate was presented but no rule maps it.
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Option<Arc<Principal>>);

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Builds the rustls configuration from the files named in `s`.
pub fn server_config(s: &TlsSettings) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.cert)
        .map_err(|e| format!("{}: {e}", s.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", s.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", s.cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&s.key).map_err(|e| format!("{}: {e}", s.key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if s.allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match &s.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in
                CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
            {
                roots
                    .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if s.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Maps a verified certificate to a principal by the first matching rule.
pub fn map_certificate(der: &[u8], rules: &[CertRule]) -> Option<Principal> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_owned);
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::URI(u) => uris.push((*u).to_owned()),
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                _ => {}
            }
        }
    }
    let rule = rules.iter().find(|r| match &r.matcher {
        CertMatch::SanUri(u) => uris.contains(u),
        CertMatch::SanDns(d) => dns.contains(d),
        CertMatch::SubjectCn(c) => cn.as_deref() == Some(c.as_str()),
    })?;
    Some(Principal {
        id: format!("cert/{}", rule.principal),
        kind: PrincipalKind::Service,
        tenant: rule.tenant.clone(),
        roles: rule.roles.clone(),
        groups: Vec::new(),
        scopes: Vec::new(),
        acr: None,
        amr: vec!["mtls".into()],
        authenticated_at: None,
        method: AuthMethod::ClientCert {
            subject: cert.subject().to_string(),
        },
        attributes: Default::default(),
        limits: None,
    })
}

fn modified(s: &TlsSettings) -> Vec<Option<SystemTime>> {
    [Some(&s.cert), Some(&s.key), s.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Serves the router over TLS until `shutdown` completes.
/// Serves HTTPS until `shutdown`: at most `limits.max_connections` connections at once
/// (accepting pauses while that many are open, so a flood of idle connections cannot
/// exhaust memory or descriptors), then drains: no new connections, open ones finish
/// their requests (keep-alive ends after the current one) for up to `limits.drain`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    settings: TlsSettings,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let cfg = server_config(&settings).map_err(std::io::Error::other)?;
    let acceptor = Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(Arc::new(cfg))));
    // Certificate reload: files are checked every few seconds; a bad new file is logged
    // and the current certificate keeps serving.
    let reload_acceptor = acceptor.clone();
    let reload_settings = settings.clone();
    let reloader = tokio::spawn(async move {
        let mut seen = modified(&reload_settings);
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = modified(&reload_settings);
            if now == seen {
                continue;
            }
            seen = now;
            match server_config(&reload_settings) {
                Ok(cfg) => {
                    reload_acceptor.store(Arc::new(TlsAcceptor::from(Arc::new(cfg))));
                    tracing::info!(target: "gatehouse::audit", "TLS certificates reloaded");
                }
                Err(e) => {
                    tracing::error!(target: "gatehouse::audit", error = %e, "TLS reload refused; previous certificates still serve")
                }
            }
        }
    });
    let rules = Arc::new(settings.rules);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: while every slot is taken, new connections wait in the kernel's
        // backlog instead of costing a task and a TLS state each.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (tcp, peer_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of descriptors: give connections a moment to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.load_full();
        let router = router.clone();
        let rules = rules.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(target: "gatehouse::audit", peer = %peer_addr, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let identity = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|leaf| {
                let mapped = map_certificate(leaf.as_ref(), &rules).map(Arc::new);
                if mapped.is_none() {
                    tracing::warn!(target: "gatehouse::audit", peer = %peer_addr, "client certificate maps to no principal");
                }
                PeerIdentity(mapped)
            });
            let router = router.layer(axum::Extension(axum::extract::ConnectInfo(peer_addr)));
            let svc = match identity {
                Some(id) => router.layer(axum::Extension(id)),
                None => router,
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    reloader.abort();
    drop(listener);
    let open = limits.max_connections - slots.available_permits();
    tracing::info!(connections = open, "draining HTTPS connections");
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain time over: {} connections closed with requests in flight",
            limits.max_connections - slots.available_permits()
        );
    }
    Ok(())
}

/// How many connections the listener holds, and how long it drains.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub drain: Duration,
}
