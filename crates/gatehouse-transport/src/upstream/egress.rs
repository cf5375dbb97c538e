//! Egress by host for sandboxed servers granted `network: {hosts: […]}`. The server runs in a
//! network namespace of its own whose only interface is loopback. On it, one relay started
//! by the launcher before it confines itself (`gatehouse __egress_relay`) listens on
//! [`RELAY_PORT`] and carries each connection over a Unix socket to the gateway's proxy for
//! that server ([`Egress`]). The proxy reads one HTTP request head (`CONNECT host:port` or an
//! absolute `http://` URL), lets it through only to a host on the allowlist whose addresses
//! are all public (or to an address the allowlist names itself), and reports every attempt,
//! allowed or refused, to the audit. Nothing else leaves the namespace: no route, no DNS,
//! no UDP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_config::EgressRule;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};

use super::UpstreamEvent;

/// The hidden subcommand that relays the namespace's loopback port to the gateway's proxy.
pub const RELAY: &str = "__egress_relay";

/// The port the relay listens on inside the server's namespace (`HTTPS_PROXY` names it).
pub const RELAY_PORT: u16 = 3128;

/// The largest request head the proxy reads.
const MAX_HEAD: usize = 8 * 1024;
/// Connections one server may hold through the proxy at once.
const MAX_CONNECTIONS: usize = 64;
/// Attempts recorded in the audit per server and second; the rest are counted and the
/// count travels with the next record.
const RECORDS_PER_SECOND: u64 = 50;

/// The environment a server behind the egress proxy gets (both spellings: programs differ).
pub(crate) fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{RELAY_PORT}");
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), url.clone()))
    .collect()
}

/// The gateway's proxy for one server: a Unix socket in a directory only the gateway's user
/// can enter, removed when dropped.
pub(crate) struct Egress {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Egress {
    /// Starts the proxy for `upstream` with its allowlist.
    pub(crate) fn start(
        upstream: &str,
        rules: &[EgressRule],
        events: mpsc::UnboundedSender<UpstreamEvent>,
    ) -> std::io::Result<Egress> {
        use std::os::unix::fs::DirBuilderExt;
        // An unguessable name: a confined server runs as the gateway's user, and another
        // server's proxy (another allowlist) must not be found by trying names. `create`
        // fails on a path that exists: a directory planted by someone else is never used.
        let mut name = [0u8; 16];
        aws_lc_rs::rand::fill(&mut name).map_err(|_| std::io::Error::other("no randomness"))?;
        let dir = std::env::temp_dir().join(format!("gatehouse-egress-{}", hex::encode(name)));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let socket = dir.join("proxy.sock");
        let listener = UnixListener::bind(&socket)?;
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_owned(),
            rules: rules.to_vec(),
            events,
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        });
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Ok((conn, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let p = proxy.clone();
                tokio::spawn(async move {
                    p.serve(conn).await;
                    drop(permit);
                });
            }
        });
        Ok(Egress { dir, socket, task })
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Proxy {
    upstream: String,
    rules: Vec<EgressRule>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    /// The second (since the epoch) and count of records in it, packed: `secs << 20 | n`.
    window: AtomicU64,
    suppressed: AtomicU64,
}

/// What a client asked the proxy for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    host: String,
    port: u16,
    /// For a plain HTTP request, the head to send on in origin form; `None` for CONNECT.
    forward: Option<Vec<u8>>,
}

impl Proxy {
    async fn serve(&self, mut conn: UnixStream) {
        let (head, rest) =
            match tokio::time::timeout(Duration::from_secs(10), read_head(&mut conn)).await {
                Ok(Ok(h)) => h,
                _ => return,
            };
        let req = match parse(&head) {
            Ok(r) => r,
            Err(why) => {
                self.record("?", false, &why);
                let _ = conn.write_all(&answer(400, &why)).await;
                return;
            }
        };
        let target = format!("{}:{}", host_for_display(&req.host), req.port);
        let addr = match destination(&self.rules, &req.host, req.port).await {
            Ok(a) => a,
            Err(why) => {
                self.record(&target, false, &why);
                let _ = conn.write_all(&answer(403, &why)).await;
                return;
            }
        };
        let mut out =
            match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                _ => {
                    let why = format!("{target} ({addr}) did not accept the connection");
                    self.record(&target, false, &why);
                    let _ = conn.write_all(&answer(502, &why)).await;
                    return;
                }
            };
        self.record(&target, true, &addr.to_string());
        let first = match &req.forward {
            None => {
                if conn
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                rest
            }
            Some(h) => [h.as_slice(), &rest].concat(),
        };
        if out.write_all(&first).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut out).await;
    }

    /// Sends an attempt to the audit, at most [`RECORDS_PER_SECOND`] per second.
    fn record(&self, target: &str, allowed: bool, detail: &str) {
        let outcome = if allowed { "allowed" } else { "refused" };
        metrics::counter!(crate::metrics::EGRESS, "upstream" => self.upstream.clone(), "outcome" => outcome)
            .increment(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let w = self.window.load(Ordering::Relaxed);
        let (secs, n) = (w >> 20, w & 0xF_FFFF);
        let next = if secs == now {
            (now << 20) | (n + 1)
        } else {
            (now << 20) | 1
        };
        self.window.store(next, Ordering::Relaxed);
        if next & 0xF_FFFF > RECORDS_PER_SECOND {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut detail: String = detail.chars().take(256).collect();
        let skipped = self.suppressed.swap(0, Ordering::Relaxed);
        if skipped > 0 {
            detail.push_str(&format!(" ({skipped} earlier attempts not recorded)"));
        }
        let _ = self.events.send(UpstreamEvent::Egress {
            upstream: self.upstream.clone(),
            target: target.chars().take(300).collect(),
            allowed,
            detail,
        });
    }
}

/// An IPv6 address in brackets, anything else as it is.
fn host_for_display(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The proxy's own answer, closing the connection.
fn answer(status: u16, why: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Bad Gateway",
    };
    let body = format!("gatehouse egress: {why}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads up to the blank line ending a request head; returns the head and what followed it.
async fn read_head(conn: &mut UnixStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + i + 4;
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

/// Splits `host[:port]` or `[v6][:port]`, lowercasing the host and dropping a final dot.
fn authority(text: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("`{text}` is not a host and port");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad()),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
    // Names and addresses only: no user info, percent-encoding or other punctuation that
    // parsers read differently.
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err(bad());
    }
    Ok((host, port))
}

/// Reads the request line: `CONNECT host:port` or a plain HTTP request to an absolute
/// `http://` URL, which is sent on in origin form with its `Host` set to that URL's host.
fn parse(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not an HTTP request line".into());
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err("not an HTTP/1 request".into());
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = authority(target, None)?;
        return Ok(Request {
            host,
            port,
            forward: None,
        });
    }
    let Some(rest) = target
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &target[7..])
    else {
        return Err("only CONNECT and absolute http:// URLs pass the egress proxy".into());
    };
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(cut);
    let (host, port) = authority(auth, Some(80))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    };
    let mut out = format!("{method} {path} {version}\r\nHost: {auth}\r\n");
    for h in lines.filter(|l| !l.is_empty()) {
        let name = h.split(':').next().unwrap_or_default().trim();
        if ["host", "proxy-connection", "proxy-authorization"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Ok(Request {
        host,
        port,
        forward: Some(out.into_bytes()),
    })
}

/// Where an allowed request connects: the address a rule names, or the host's addresses
/// when every one of them is public (a name resolving inside is refused, so an allowlisted
/// name cannot be pointed at the gateway's own network).
async fn destination(rules: &[EgressRule], host: &str, port: u16) -> Result<SocketAddr, String> {
    let target = format!("{}:{port}", host_for_display(host));
    let Some(rule) = rules.iter().find(|r| r.allows(host, port)) else {
        return Err(format!("{target} is not on this server's egress allowlist"));
    };
    if let Some(ip) = rule.ip {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host, port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        _ => return Err(format!("{host} does not resolve")),
    };
    if let Some(inside) = addrs
        .iter()
        .find(|a| gatehouse_detect::inject::internal_address(a.ip()))
    {
        return Err(format!(
            "{host} resolves to an internal address ({}); allow the address itself to reach it",
            inside.ip()
        ));
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{host} does not resolve"))
}

/// Brings the loopback interface of a fresh network namespace up (`RTM_NEWLINK` over
/// netlink; loopback is the first device of every namespace).
pub(crate) fn loopback_up() -> Result<(), String> {
    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, recv, send, socket};
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST_ACK: u16 = 1 | 4;
    const NLMSG_ERROR: u16 = 2;
    const IFF_UP: u32 = 1;
    let fd = socket(AddressFamily::NETLINK, SocketType::RAW, None)
        .map_err(|e| format!("netlink: {e}"))?;
    let mut msg = Vec::with_capacity(32);
    msg.extend(32u32.to_ne_bytes()); // nlmsghdr: length, type, flags, sequence, port
    msg.extend(RTM_NEWLINK.to_ne_bytes());
    msg.extend(NLM_F_REQUEST_ACK.to_ne_bytes());
    msg.extend(1u32.to_ne_bytes());
    msg.extend(0u32.to_ne_bytes());
    msg.extend([0u8, 0]); // ifinfomsg: family (unspecified), padding, type, index, flags, change
    msg.extend(0u16.to_ne_bytes());
    msg.extend(1i32.to_ne_bytes());
    msg.extend(IFF_UP.to_ne_bytes());
    msg.extend(IFF_UP.to_ne_bytes());
    send(&fd, &msg, SendFlags::empty()).map_err(|e| format!("netlink: {e}"))?;
    let mut buf = [0u8; 512];
    let (_, n) =
        recv(&fd, &mut buf[..], RecvFlags::empty()).map_err(|e| format!("netlink: {e}"))?;
    let word = |at: usize| -> [u8; 4] { [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]] };
    if n < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != NLMSG_ERROR {
        return Err("netlink: unexpected answer".into());
    }
    match i32::from_ne_bytes(word(16)) {
        0 => Ok(()),
        e => Err(format!(
            "loopback up: {}",
            std::io::Error::from_raw_os_error(e.saturating_neg())
        )),
    }
}

/// The relay (`gatehouse __egress_relay SOCKET PORT`): listens on the namespace's loopback
/// and carries each connection to the gateway's proxy. Says `ready` on stdout once
/// listening. Returns only on failure, with the reason.
pub fn relay(socket: &str, port: &str) -> String {
    let Ok(port) = port.parse::<u16>() else {
        return format!("egress relay: `{port}` is not a port");
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return format!("egress relay: {e}"),
    };
    let socket = PathBuf::from(socket);
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => return format!("egress relay: 127.0.0.1:{port}: {e}"),
        };
        println!("ready");
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut proxy) = UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut proxy).await;
                }
            });
        }
    })
}

#[cfg(test)]
mod tests;
