//! TLS for PostgreSQL connections, on rustls (the process's one crypto provider). The
//! connection string decides: `sslmode=require` or `sslmode=verify-full` encrypts and
//! verifies the server's certificate chain and name, against `sslrootcert=<PEM file>` when
//! given or the system's roots otherwise; a certificate that does not verify fails the
//! connection (there is no "encrypt but trust anyone" mode). `disable`, `prefer` or no
//! `sslmode` connect in clear, as before.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection string split into what `postgres` parses and the TLS it asks for.
pub(crate) struct Target {
    pub(crate) config: postgres::Config,
    pub(crate) tls: Option<Rustls>,
}

/// Reads `url` (key=value or `postgres://` form). `sslrootcert` and `verify-full` are
/// read here (the `postgres` parser does not know them) and removed before it parses.
pub(crate) fn target(url: &str) -> Result<Target, String> {
    let mut root: Option<String> = None;
    let cleaned = if let Some((base, query)) = url
        .split_once('?')
        .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        let mut kept = Vec::new();
        let mut verify = false;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslrootcert", v)) => root = Some(percent_decode(v)),
                Some(("sslmode", "verify-full" | "verify-ca")) => verify = true,
                _ => kept.push(pair),
            }
        }
        if verify {
            kept.push("sslmode=require");
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some(("sslrootcert", v)) => root = Some(v.trim_matches('\'').to_owned()),
                Some(("sslmode", "verify-full" | "verify-ca")) => kept.push("sslmode=require"),
                _ => kept.push(word),
            }
        }
        kept.join(" ")
    };
    let config: postgres::Config = cleaned
        .parse()
        .map_err(|e| format!("PostgreSQL connection string: {e}"))?;
    let tls = match config.get_ssl_mode() {
        postgres::config::SslMode::Require => Some(Rustls::new(root.as_deref())?),
        _ if root.is_some() => {
            return Err("sslrootcert needs sslmode=require or verify-full".into());
        }
        _ => None,
    };
    Ok(Target { config, tls })
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(x) = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A rustls client configuration for PostgreSQL servers.
#[derive(Clone)]
pub(crate) struct Rustls(Arc<rustls::ClientConfig>);

impl Rustls {
    fn new(root: Option<&str>) -> Result<Rustls, String> {
        let mut roots = rustls::RootCertStore::empty();
        match root {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!("sslrootcert {path}: no certificate"));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(
                        "sslmode=require: no system root certificates; set sslrootcert".into(),
                    );
                }
            }
        }
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Rustls(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for Rustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One TLS handshake to one server name.
pub(crate) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(Stream(s))
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// Whether the PostgreSQL server at `url` answers a query within `timeout` (readiness).
/// Opens and closes a connection of its own; blocking, so never on an async worker.
pub fn ping(url: &str, timeout: std::time::Duration) -> Result<(), String> {
    let mut target = target(url)?;
    target.config.connect_timeout(timeout);
    let mut client = match &target.tls {
        Some(tls) => target.config.connect(tls.clone()),
        None => target.config.connect(postgres::NoTls),
    }
    .map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .map(drop)
        .map_err(|e| e.to_string())
}
