//! RFC 5424 syslog over TCP with octet-counting framing (RFC 6587), plain or TLS (RFC 5425),
//! with a client certificate for mutual TLS. The connection is kept between batches; a
//! batch counts as delivered only when the connection is still open after it was written
//! (TCP has no acknowledgements: a peer that went away shows as end of stream).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::Pending;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Failure, format};
use gatehouse_proxy::config::{RawSinkFormat, SinkKind};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to look for the peer closing after a batch.
const LIVENESS: Duration = Duration::from_millis(25);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub(super) struct Syslog {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: Option<tokio_rustls::TlsConnector>,
    format: RawSinkFormat,
    hostname: String,
    conn: Option<Box<dyn Stream>>,
}

fn tls_config(tls: &gatehouse_proxy::config::UpstreamTls) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = tls
        .ca_pem
        .as_deref()
        .ok_or("syslog over TLS needs `tls.ca`: the CA that signed the server")?;
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots
            .add(cert.map_err(|e| format!("CA: {e}"))?)
            .map_err(|e| format!("CA: {e}"))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    match tls.identity_pem.as_deref() {
        None => Ok(builder.with_no_client_auth()),
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))
        }
    }
}

impl Syslog {
    pub(super) fn new(kind: &SinkKind) -> Result<Syslog, String> {
        let SinkKind::Syslog {
            host,
            port,
            server_name,
            tls,
            format,
        } = kind
        else {
            return Err("not a syslog sink".into());
        };
        let tls = match tls {
            None => None,
            Some(t) => Some(tokio_rustls::TlsConnector::from(Arc::new(tls_config(t)?))),
        };
        Ok(Syslog {
            host: host.clone(),
            port: *port,
            server_name: ServerName::try_from(server_name.clone())
                .map_err(|e| format!("server_name: {e}"))?,
            tls,
            format: *format,
            hostname: std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "gatehouse".into()),
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, Failure> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| Failure::Transient("connect timed out".into()))?
        .map_err(|e| Failure::Transient(format!("connect: {e}")))?;
        tcp.set_nodelay(true).ok();
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(c) => {
                let s =
                    tokio::time::timeout(CONNECT_TIMEOUT, c.connect(self.server_name.clone(), tcp))
                        .await
                        .map_err(|_| Failure::Transient("TLS handshake timed out".into()))?
                        .map_err(|e| Failure::Transient(format!("TLS: {e}")))?;
                Ok(Box::new(s))
            }
        }
    }

    pub(super) async fn send(&mut self, batch: &[Pending]) -> Result<(), Failure> {
        let mut frame = Vec::new();
        for p in batch {
            let msg = format::syslog(p, self.format, &self.hostname);
            frame.extend_from_slice(format!("{} ", msg.len()).as_bytes());
            frame.extend_from_slice(msg.as_bytes());
        }
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            conn.write_all(&frame).await?;
            conn.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::Transient(format!("write: {e}"))),
            Err(_) => return Err(Failure::Transient("write timed out".into())),
        }
        // Syslog servers never write back: anything readable is the peer closing.
        let mut probe = [0u8; 64];
        match tokio::time::timeout(LIVENESS, conn.read(&mut probe)).await {
            Err(_) => {
                self.conn = Some(conn);
                Ok(())
            }
            Ok(Ok(n)) if n > 0 => {
                self.conn = Some(conn);
                Ok(())
            }
            Ok(_) => Err(Failure::Transient("connection closed by the server".into())),
        }
    }
}
