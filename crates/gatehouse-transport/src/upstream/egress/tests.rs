//! The egress proxy on real sockets: a Unix-socket client in place of the relay, a loopback
//! TCP server as the destination.

use std::time::Duration;

use gatehouse_config::EgressRule;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::mpsc;

use super::{Egress, Request, parse};
use crate::upstream::UpstreamEvent;

#[test]
fn request_heads_are_read_strictly() {
    let r = parse(b"CONNECT Api.Example.COM.:443 HTTP/1.1\r\nHost: x\r\n\r\n").expect("connect");
    assert_eq!(
        r,
        Request {
            host: "api.example.com".into(),
            port: 443,
            forward: None
        }
    );
    let r = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").expect("v6");
    assert_eq!((r.host.as_str(), r.port), ("::1", 8443));

    let r = parse(
        b"GET http://docs.example.com/a?b=1 HTTP/1.1\r\nHost: evil.example.net\r\nProxy-Authorization: x\r\nAccept: */*\r\n\r\n",
    )
    .expect("absolute");
    assert_eq!((r.host.as_str(), r.port), ("docs.example.com", 80));
    let head = String::from_utf8(r.forward.expect("forward")).expect("utf8");
    // Origin form, the Host the URL names (not the client's), no proxy credentials.
    assert_eq!(
        head,
        "GET /a?b=1 HTTP/1.1\r\nHost: docs.example.com\r\nAccept: */*\r\n\r\n"
    );

    for bad in [
        &b"GET /relative HTTP/1.1\r\n\r\n"[..],
        b"GET https://x.com/ HTTP/1.1\r\n\r\n",
        b"CONNECT x.com HTTP/1.1\r\n\r\n",
        b"CONNECT user@x.com:443 HTTP/1.1\r\n\r\n",
        b"CONNECT x%2ecom:443 HTTP/1.1\r\n\r\n",
        b"GET http://user:pw@x.com/ HTTP/1.1\r\n\r\n",
        b"CONNECT x.com:0 HTTP/1.1\r\n\r\n",
        b"CONNECT  x.com:443 HTTP/1.1\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

/// Sends one request head through the proxy, returns the answer's first line and the
/// stream.
async fn ask(egress: &Egress, head: &str) -> (String, UnixStream) {
    let mut c = UnixStream::connect(egress.socket()).await.expect("proxy");
    c.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        if c.read(&mut b).await.expect("read") == 0 {
            break;
        }
        got.push(b[0]);
    }
    (String::from_utf8_lossy(&got).trim().to_owned(), c)
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<UpstreamEvent>) -> (String, bool, String) {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(UpstreamEvent::Egress {
            target,
            allowed,
            detail,
            ..
        })) => (target, allowed, detail),
        other => panic!("no egress event: {other:?}"),
    }
}

#[tokio::test]
async fn only_allowlisted_hosts_are_reached_and_every_attempt_is_reported() {
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = server.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = server.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 256];
                let n = s.read(&mut b).await.unwrap_or(0);
                let _ = s.write_all(&b[..n]).await;
            });
        }
    });
    let rules = vec![
        EgressRule::parse(&format!("127.0.0.1:{port}")).expect("rule"),
        EgressRule::parse(&format!("localhost:{port}")).expect("rule"),
    ];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let egress = Egress::start("files", &rules, tx).expect("start");

    // Allowed: a tunnel to the address the allowlist names; bytes go both ways.
    let (line, mut c) = ask(
        &egress,
        &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"),
    )
    .await;
    assert_eq!(line, "HTTP/1.1 200 Connection established");
    let mut rest = [0u8; 2];
    c.read_exact(&mut rest).await.expect("blank line");
    c.write_all(b"ping").await.expect("write");
    let mut echo = [0u8; 4];
    c.read_exact(&mut echo).await.expect("echo");
    assert_eq!(&echo, b"ping");
    let (target, allowed, _) = next_event(&mut rx).await;
    assert_eq!(
        (target.as_str(), allowed),
        (format!("127.0.0.1:{port}").as_str(), true)
    );

    // Refused: another port, another host, and an allowlisted name that resolves inside.
    for (head, why) in [
        (
            format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", port ^ 1),
            "allowlist",
        ),
        (
            "CONNECT example.com:443 HTTP/1.1\r\n\r\n".to_owned(),
            "allowlist",
        ),
        (
            format!("GET http://localhost:{port}/ HTTP/1.1\r\n\r\n"),
            "internal address",
        ),
    ] {
        let (line, _) = ask(&egress, &head).await;
        assert!(line.starts_with("HTTP/1.1 403"), "{head}: {line}");
        let (_, allowed, detail) = next_event(&mut rx).await;
        assert!(!allowed && detail.contains(why), "{head}: {detail}");
    }
    let (line, _) = ask(&egress, "NONSENSE\r\n\r\n").await;
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
    assert!(!next_event(&mut rx).await.1);

    // The socket sits in a directory of its own, readable by the gateway's user alone, and
    // goes with the proxy.
    use std::os::unix::fs::PermissionsExt;
    let dir = egress.socket().parent().expect("dir").to_path_buf();
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    drop(egress);
    assert!(!dir.exists());
}
