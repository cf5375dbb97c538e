//! The HTTPS listener: TLS 1.3 only by default, client certificates verified against a CA
//! and mapped to principals, unverifiable or unmapped certificates refused, and
//! certificates reloaded without a restart. Certificates are made with openssl per test.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Mcp, ca, free_port, gatehouse_bin, leaf, start_gateway_with};
use reqwest::StatusCode;
use serde_json::json;

async fn pki() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-tls-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    ca(&dir, "ca").await;
    ca(&dir, "rogue-ca").await;
    leaf(
        &dir,
        "ca",
        "server",
        "IP:127.0.0.1,DNS:localhost",
        "serverAuth",
    )
    .await;
    leaf(
        &dir,
        "ca",
        "server2",
        "IP:127.0.0.1,DNS:localhost",
        "serverAuth",
    )
    .await;
    leaf(
        &dir,
        "ca",
        "reporting",
        "URI:spiffe://acme/ns/prod/sa/reporting",
        "clientAuth",
    )
    .await;
    leaf(
        &dir,
        "ca",
        "stranger",
        "URI:spiffe://acme/ns/prod/sa/stranger",
        "clientAuth",
    )
    .await;
    leaf(
        &dir,
        "rogue-ca",
        "impostor",
        "URI:spiffe://acme/ns/prod/sa/reporting",
        "clientAuth",
    )
    .await;
    std::fs::copy(dir.join("server.pem"), dir.join("live.pem")).expect("copy");
    std::fs::copy(dir.join("server.key"), dir.join("live.key")).expect("copy");
    dir
}

fn config(dir: &Path, client_auth: &str) -> gatehouse_proxy::Config {
    let yaml = format!(
        "tls:\n  cert: live.pem\n  key: live.key\n  client_ca: ca.pem\n  client_auth: {client_auth}\n  client_principals:\n    - san_uri: spiffe://acme/ns/prod/sa/reporting\n      principal: svc-reporting\n      roles: [analyst]\n      tenant: acme\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    );
    let path = dir.join("gatehouse.yaml");
    std::fs::write(&path, yaml).expect("write");
    gatehouse_proxy::Config::load(&path).expect("config")
}

/// Starts the gateway's HTTPS listener in process; returns `https://127.0.0.1:PORT`.
async fn start(cfg: gatehouse_proxy::Config) -> (String, std::sync::Arc<gatehouse_proxy::Gateway>) {
    let (base, gw, _) = start_with(cfg, 4096, std::future::pending()).await;
    (base, gw)
}

/// Like [`start`], holding at most `max_connections` and stopping at `shutdown`; the
/// listener's task is returned too.
async fn start_with(
    cfg: gatehouse_proxy::Config,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    String,
    std::sync::Arc<gatehouse_proxy::Gateway>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("https://{}", listener.local_addr().expect("addr"));
    let tls = cfg.tls.clone().expect("tls configured");
    let gw = gatehouse_proxy::Gateway::start(cfg);
    let router = gatehouse_proxy::http::router(gw.clone(), None)
        .merge(gatehouse_control::routes(gw.clone()));
    let served = tokio::spawn(gatehouse_proxy::tls::serve_tls(
        listener,
        router,
        tls,
        gatehouse_proxy::tls::ConnectionLimits {
            max_connections,
            drain: Duration::from_secs(5),
        },
        shutdown,
    ));
    while !gw.not_ready().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (base, gw, served)
}

/// Idle connections cannot take the listener over: at the cap, a new client waits until a
/// connection closes. On shutdown the listener stops accepting and returns once open
/// connections have drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_shutdown_drains() {
    let dir = pki().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (base, _gw, served) = start_with(config(&dir, "optional"), 2, async move {
        let _ = stopped.await;
    })
    .await;
    let addr = base.trim_start_matches("https://").to_owned();
    let idle1 = tokio::net::TcpStream::connect(&addr).await.expect("idle 1");
    let _idle2 = tokio::net::TcpStream::connect(&addr).await.expect("idle 2");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = client(&dir, None, false);
    let waiting = tokio::time::timeout(Duration::from_secs(1), initialize(&c, &base)).await;
    assert!(
        waiting.is_err(),
        "a third connection was served at a cap of two"
    );
    drop(idle1);
    let r = tokio::time::timeout(Duration::from_secs(10), initialize(&c, &base))
        .await
        .expect("served once a slot is free")
        .expect("https");
    // Served (no client certificate, so refused by authentication: an answer all the same).
    assert_eq!(r.status(), 401);
    drop(c);
    let _ = stop.send(());
    let done = tokio::time::timeout(Duration::from_secs(15), served)
        .await
        .expect("the listener drains and returns");
    assert!(done.expect("task").is_ok());
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still accepting"
    );
}

fn client(dir: &Path, identity: Option<&str>, tls12_only: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).expect("ca"))
        .expect("ca pem");
    let mut b = reqwest::Client::builder()
        .tls_certs_only([ca])
        .tls_info(true)
        .pool_max_idle_per_host(0);
    if let Some(name) = identity {
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).expect("cert");
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    if tls12_only {
        b = b.tls_version_max(reqwest::tls::Version::TLS_1_2);
    }
    b.build().expect("client")
}

async fn initialize(c: &reqwest::Client, base: &str) -> Result<reqwest::Response, reqwest::Error> {
    c.post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_map_to_principals_and_bad_ones_are_refused() {
    let dir = pki().await;
    let (base, _gw) = start(config(&dir, "optional")).await;

    // A certificate from the trusted CA that a rule maps: that is the caller.
    let good = client(&dir, Some("reporting"), false);
    let r = initialize(&good, &base)
        .await
        .expect("TLS 1.3 with a client certificate");
    assert_eq!(r.status(), StatusCode::OK);
    let sid = r.headers()["mcp-session-id"]
        .to_str()
        .expect("sid")
        .to_owned();
    let call = good
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "demo__search_files", "arguments": {"query": "vpn"}}}).to_string())
        .send()
        .await
        .expect("call");
    assert!(call.text().await.expect("body").contains("vpn.md"));

    // A verified certificate that no rule maps is nobody, even holding a valid session id.
    let stranger = client(&dir, Some("stranger"), false);
    let r = stranger
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a verified but unmapped certificate is nobody"
    );

    // No certificate and no token: 401. A certificate from another CA: no TLS session.
    assert_eq!(
        initialize(&client(&dir, None, false), &base)
            .await
            .expect("send")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(
        initialize(&client(&dir, Some("impostor"), false), &base)
            .await
            .is_err(),
        "rogue CA refused in the handshake"
    );

    // TLS 1.2 is refused unless configured; plain HTTP gets no MCP answer.
    assert!(
        initialize(&client(&dir, Some("reporting"), true), &base)
            .await
            .is_err(),
        "TLS 1.2 refused"
    );
    let plain = reqwest::Client::new()
        .post(format!("{}/mcp", base.replacen("https", "http", 1)))
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("resp").status().is_success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_auth_and_certificate_reload() {
    let dir = pki().await;
    let (base, _gw) = start(config(&dir, "required")).await;
    assert!(
        initialize(&client(&dir, None, false), &base).await.is_err(),
        "no certificate, no connection"
    );

    let r = initialize(&client(&dir, Some("reporting"), false), &base)
        .await
        .expect("handshake");
    let served = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer cert")
        .to_vec();
    let pem = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.pem"))).expect("pem");
    let der = |p: String| -> Vec<u8> {
        use base64::Engine;
        let body: String = p.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("b64")
    };
    assert_eq!(served, der(pem("server")));

    // Replace the certificate files: new connections get the new certificate.
    std::fs::copy(dir.join("server2.key"), dir.join("live.key")).expect("copy");
    std::fs::copy(dir.join("server2.pem"), dir.join("live.pem")).expect("copy");
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(r) = initialize(&client(&dir, Some("reporting"), false), &base).await {
            let now = r
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|i| i.peer_certificate())
                .map(<[u8]>::to_vec);
            if now.as_deref() == Some(der(pem("server2")).as_slice()) {
                reloaded = true;
                break;
            }
        }
    }
    assert!(reloaded, "the new certificate is served without a restart");

    // A broken file is refused and the current certificate keeps serving.
    std::fs::write(dir.join("live.pem"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = initialize(&client(&dir, Some("reporting"), false), &base)
        .await
        .expect("still serving");
    assert_eq!(r.status(), StatusCode::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_over_mtls_with_a_pinned_ca() {
    let dir = pki().await;
    leaf(
        &dir,
        "ca",
        "gateway-a",
        "URI:spiffe://acme/ns/prod/sa/gateway-a",
        "clientAuth",
    )
    .await;
    // Gateway B: HTTPS, client certificates required; the first gateway's certificate maps.
    let yaml = format!(
        "tls:\n  cert: live.pem\n  key: live.key\n  client_ca: ca.pem\n  client_auth: required\n  client_principals:\n    - san_uri: spiffe://acme/ns/prod/sa/gateway-a\n      principal: gateway-a\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    );
    std::fs::write(dir.join("b.yaml"), yaml).expect("write");
    let (b_base, _b) =
        start(gatehouse_proxy::Config::load(&dir.join("b.yaml")).expect("config")).await;

    let front = |tls: &str| {
        let yaml =
            format!("dev_mode: true\nupstreams:\n  b:\n    url: {b_base}/mcp\n    tls:\n{tls}");
        std::fs::write(dir.join("a.yaml"), yaml).expect("write");
        gatehouse_proxy::Config::load(&dir.join("a.yaml"))
    };
    // Pinned CA and the gateway's own certificate: works end to end.
    let cfg = front(
        "      ca: ca.pem\n      client_cert: gateway-a.pem\n      client_key: gateway-a.key\n",
    )
    .expect("config");
    let a = start_gateway_with(cfg, true).await;
    let c = Mcp::connect(&a.mcp(), "2025-11-25").await;
    let r = c
        .call("b__demo__search_files", json!({"query": "vpn"}))
        .await;
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md"),
        "{r}"
    );

    // The wrong CA pinned, or no client certificate: the upstream never connects.
    for tls in [
        "      ca: rogue-ca.pem\n      client_cert: gateway-a.pem\n      client_key: gateway-a.key\n",
        "      ca: ca.pem\n",
    ] {
        let a = start_gateway_with(front(tls).expect("config"), false).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(a.gw.not_ready(), vec!["b".to_owned()], "{tls}");
        let c = Mcp::connect(&a.mcp(), "2025-11-25").await;
        assert_eq!(
            c.call("b__demo__search_files", json!({"query": "vpn"}))
                .await["isError"],
            true
        );
    }

    // Mistakes are config errors, found before anything runs.
    assert!(front("      ca: missing.pem\n").is_err());
    assert!(
        front("      client_cert: gateway-a.pem\n").is_err(),
        "a certificate needs its key"
    );
    let plain = "dev_mode: true\nupstreams:\n  b:\n    url: http://127.0.0.1:1/mcp\n    tls: {ca: ca.pem}\n";
    std::fs::write(dir.join("p.yaml"), plain).expect("write");
    assert_eq!(
        gatehouse_proxy::Config::load(&dir.join("p.yaml"))
            .expect_err("http")
            .location,
        "upstreams.b.tls"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
