//! ICAP client (RFC 3507) for an enterprise DLP or scanner: results go out as RESPMOD and
//! tool arguments as REQMOD, with a preview and `Allow: 204` so an unchanged message costs
//! no echo. The server's answer keeps the message (204), replaces it (200 with a new body),
//! or blocks it (200 with an HTTP error response, as scanners answer a detection).

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest answer read from the server.
const MAX_ANSWER: usize = 32 * 1024 * 1024;
/// Longest header line accepted.
const MAX_LINE: usize = 16 * 1024;

pub use crate::config::IcapService;

/// The client for one configured service (the configuration holds only where it is).
#[derive(Debug, Clone, Copy)]
pub struct IcapClient<'a>(pub &'a IcapService);

/// The server's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Unmodified,
    /// A new body to use instead.
    Modified(Vec<u8>),
    /// The server answered with an HTTP error (a detection): the message must not pass.
    Blocked {
        http_status: u16,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IcapError {
    #[error("ICAP server unreachable: {0}")]
    Io(#[from] std::io::Error),
    #[error("ICAP server timed out")]
    Timeout,
    #[error("ICAP protocol error: {0}")]
    Protocol(String),
}

fn protocol(msg: impl Into<String>) -> IcapError {
    IcapError::Protocol(msg.into())
}

impl IcapClient<'_> {
    /// RESPMOD: a result (JSON) as the body of an HTTP 200 response.
    pub async fn respmod(&self, body: &[u8]) -> Result<Verdict, IcapError> {
        let req_hdr = "POST /mcp HTTP/1.1\r\nHost: gatehouse\r\n\r\n".to_owned();
        let res_hdr = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let encapsulated = format!(
            "req-hdr=0, res-hdr={}, res-body={}",
            req_hdr.len(),
            req_hdr.len() + res_hdr.len()
        );
        let head = format!("{req_hdr}{res_hdr}");
        self.exchange("RESPMOD", &encapsulated, head.as_bytes(), body, false)
            .await
    }

    /// REQMOD: tool arguments (JSON) as the body of an HTTP POST.
    pub async fn reqmod(&self, body: &[u8]) -> Result<Verdict, IcapError> {
        let req_hdr = format!(
            "POST /mcp/tools/call HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let encapsulated = format!("req-hdr=0, req-body={}", req_hdr.len());
        self.exchange("REQMOD", &encapsulated, req_hdr.as_bytes(), body, true)
            .await
    }

    async fn exchange(
        &self,
        method: &str,
        encapsulated: &str,
        head: &[u8],
        body: &[u8],
        request: bool,
    ) -> Result<Verdict, IcapError> {
        tokio::time::timeout(
            self.0.timeout,
            self.exchange_inner(method, encapsulated, head, body, request),
        )
        .await
        .map_err(|_| IcapError::Timeout)?
    }

    async fn exchange_inner(
        &self,
        method: &str,
        encapsulated: &str,
        head: &[u8],
        body: &[u8],
        request: bool,
    ) -> Result<Verdict, IcapError> {
        let stream = TcpStream::connect((self.0.host.as_str(), self.0.port)).await?;
        stream.set_nodelay(true)?;
        let mut conn = BufReader::new(stream);
        let preview = (self.0.preview > 0).then(|| self.0.preview.min(body.len()));
        let mut msg = format!(
            "{method} icap://{host}:{port}/{service} ICAP/1.0\r\nHost: {host}:{port}\r\nAllow: 204\r\nEncapsulated: {encapsulated}\r\n",
            host = self.0.host,
            port = self.0.port,
            service = self.0.service
        )
        .into_bytes();
        if let Some(p) = preview {
            msg.extend_from_slice(format!("Preview: {p}\r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        msg.extend_from_slice(head);
        let first = preview.unwrap_or(body.len());
        chunk(&mut msg, &body[..first]);
        let whole = first == body.len();
        msg.extend_from_slice(if preview.is_some() && whole {
            b"0; ieof\r\n\r\n"
        } else {
            b"0\r\n\r\n"
        });
        conn.get_mut().write_all(&msg).await?;
        let (mut status, mut headers) = read_head(&mut conn).await?;
        if status == 100 {
            if preview.is_none() || whole {
                return Err(protocol("100 Continue without a pending body"));
            }
            let mut rest = Vec::with_capacity(body.len() - first + 32);
            chunk(&mut rest, &body[first..]);
            rest.extend_from_slice(b"0\r\n\r\n");
            conn.get_mut().write_all(&rest).await?;
            (status, headers) = read_head(&mut conn).await?;
        }
        match status {
            204 => Ok(Verdict::Unmodified),
            200 => read_encapsulated(&mut conn, &headers, request, body).await,
            other => Err(protocol(format!("ICAP status {other}"))),
        }
    }
}

fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

async fn read_line(conn: &mut BufReader<TcpStream>) -> Result<String, IcapError> {
    let mut line = Vec::new();
    match gatehouse_transport::line::read_bounded_line(conn, &mut line, MAX_LINE).await {
        Ok(Some(())) => Ok(String::from_utf8_lossy(&line).trim_end().to_owned()),
        Ok(None) => Err(protocol("connection closed")),
        Err(_) => Err(protocol("header line too long")),
    }
}

/// The ICAP status and headers (lower-cased names).
async fn read_head(
    conn: &mut BufReader<TcpStream>,
) -> Result<(u16, Vec<(String, String)>), IcapError> {
    let status_line = read_line(conn).await?;
    let mut parts = status_line.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("ICAP/")) {
        return Err(protocol(format!("not an ICAP answer: {status_line:.80}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol("no status"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(conn).await?;
        if line.is_empty() {
            break;
        }
        if headers.len() > 100 {
            return Err(protocol("too many headers"));
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

async fn read_encapsulated(
    conn: &mut BufReader<TcpStream>,
    headers: &[(String, String)],
    request: bool,
    original: &[u8],
) -> Result<Verdict, IcapError> {
    let enc = headers
        .iter()
        .find(|(k, _)| k == "encapsulated")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| protocol("200 without Encapsulated"))?;
    let mut sections = Vec::new();
    for part in enc.split(',') {
        let (name, offset) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| protocol("bad Encapsulated"))?;
        let offset: usize = offset
            .parse()
            .map_err(|_| protocol("bad Encapsulated offset"))?;
        sections.push((name.to_owned(), offset));
    }
    let body_at = sections
        .iter()
        .find(|(n, _)| n.ends_with("-body"))
        .map(|(n, o)| (n.clone(), *o))
        .ok_or_else(|| protocol("no body section"))?;
    if body_at.1 > MAX_LINE * 4 {
        return Err(protocol("encapsulated headers too large"));
    }
    let mut head = vec![0u8; body_at.1];
    conn.read_exact(&mut head).await?;
    let head = String::from_utf8_lossy(&head);
    // A response where a request was sent, or an HTTP error status: blocked.
    let responded = sections.iter().any(|(n, _)| n == "res-hdr");
    let http_status = if responded {
        let start = sections
            .iter()
            .find(|(n, _)| n == "res-hdr")
            .map_or(0, |(_, o)| *o);
        head.get(start..)
            .and_then(|h| h.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| protocol("no HTTP status in the encapsulated response"))?
    } else {
        200
    };
    let body = if body_at.0 == "null-body" {
        Vec::new()
    } else {
        read_chunked(conn).await?
    };
    if (request && responded) || http_status >= 300 {
        return Ok(Verdict::Blocked { http_status });
    }
    if body == original {
        Ok(Verdict::Unmodified)
    } else {
        Ok(Verdict::Modified(body))
    }
}

async fn read_chunked(conn: &mut BufReader<TcpStream>) -> Result<Vec<u8>, IcapError> {
    let mut out = Vec::new();
    loop {
        let line = read_line(conn).await?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| protocol("bad chunk size"))?;
        if size == 0 {
            // The final CRLF (trailers are not used by ICAP).
            let _ = read_line(conn).await;
            return Ok(out);
        }
        // A server may send any size: checked, so `ffffffffffffffff` is refused, not wrapped.
        if out.len().checked_add(size).is_none_or(|n| n > MAX_ANSWER) {
            return Err(protocol("answer too large"));
        }
        let at = out.len();
        out.resize(at + size, 0);
        conn.read_exact(&mut out[at..]).await?;
        let _ = read_line(conn).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk size that overflows the running length is a protocol error, not a panic.
    #[tokio::test]
    async fn an_overflowing_chunk_size_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let _ = s.write_all(b"4\r\nabcd\r\nffffffffffffffff\r\n").await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let mut conn = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
        let r = read_chunked(&mut conn).await;
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn service_urls_parse() {
        assert_eq!(
            IcapService::parse("icap://127.0.0.1:1344/srv_clamav"),
            Ok(("127.0.0.1".into(), 1344, "srv_clamav".into()))
        );
        assert_eq!(
            IcapService::parse("icap://dlp.corp/reqmod"),
            Ok(("dlp.corp".into(), 1344, "reqmod".into()))
        );
        for bad in ["http://x/s", "icap://x", "icap://:1/s", "icap://x:y/s"] {
            assert!(IcapService::parse(bad).is_err(), "{bad}");
        }
    }
}
