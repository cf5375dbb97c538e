//! The façade's other ways in, against the real OpenID provider and the TypeScript SDK:
//! clients named by their metadata document (CIMD) and enterprise-managed authorization
//! with identity assertion authorization grants (ID-JAG), each with the attacks it stops;
//! registration limits and CORS.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::oauth::{assemble, parts};
use crate::common::{Gw, free_port, last_json, peers, python, repo, run_ok};
use crate::facade::{audit_methods, facade_setup_with, form_post};

/// Serves `dir` over HTTPS on `port` with a certificate for localhost from `ca`.
async fn https_documents(dir: &std::path::Path, port: u16) -> tokio::process::Child {
    crate::common::ca(dir, "docs-ca").await;
    crate::common::leaf(
        dir,
        "docs-ca",
        "docs",
        "DNS:localhost,IP:127.0.0.1",
        "serverAuth",
    )
    .await;
    let child = Command::new(python())
        .arg(repo().join("testdata/servers/https_static.py"))
        .arg(port.to_string())
        .arg(dir.join("docs.pem"))
        .arg(dir.join("docs.key"))
        .arg(dir.join("www"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("https server");
    crate::common::wait_port(port).await;
    child
}

/// Clients named by their metadata document (CIMD): the TypeScript SDK signs in with a URL
/// as its client id and never registers; the fetch is fenced against server-side request
/// forgery, a document that does not name itself or carries a secret is refused, and so is
/// a redirect it does not list. Registration is limited per address, and the machine
/// endpoints answer browsers of any origin while the sign-in pages do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_named_by_a_metadata_document_sign_in_and_forged_ones_are_refused() {
    let docs_port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-cimd-{docs_port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www/clients")).expect("dir");
    let base = format!("https://localhost:{docs_port}/clients");
    let write = |name: &str, doc: Value| {
        std::fs::write(dir.join("www/clients").join(name), doc.to_string()).expect("doc");
    };
    write(
        "ts.json",
        json!({"client_id": format!("{base}/ts.json"), "client_name": "CIMD test client",
            "redirect_uris": ["http://127.0.0.1:9998/callback"], "grant_types": ["authorization_code"],
            "response_types": ["code"], "token_endpoint_auth_method": "none"}),
    );
    write(
        "liar.json",
        json!({"client_id": format!("{base}/ts.json"), "redirect_uris": ["http://127.0.0.1:9998/callback"]}),
    );
    write(
        "secret.json",
        json!({"client_id": format!("{base}/secret.json"), "client_secret": "s",
            "redirect_uris": ["http://127.0.0.1:9998/callback"]}),
    );
    write(
        "elsewhere.json",
        json!({"client_id": format!("{base}/elsewhere.json"), "redirect_uris": ["https://evil.example/cb"]}),
    );
    let _docs = https_documents(&dir, docs_port).await;
    let (idp, gw, store) = facade_setup_with(&format!(
        "    registrations_per_hour: 3\n    client_metadata: {{private_hosts: [localhost], ca: \"{}\", cache_secs: 60}}\n",
        dir.join("docs-ca.pem").display()
    ), &[])
    .await;
    let meta: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gw.base
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    assert_eq!(
        meta["client_id_metadata_document_supported"], true,
        "{meta}"
    );

    // The SDK names itself by its document and completes the sign-in; nothing registered.
    let out = run_ok(
        Command::new("node")
            .arg(peers().join("ts_oauth_client.mjs"))
            .args([&gw.mcp(), "demo__search_files", r#"{"query":"vpn"}"#])
            .env("GATEHOUSE_CLIENT_METADATA_URL", format!("{base}/ts.json")),
        120,
    )
    .await;
    let v = last_json(&out);
    assert_eq!(v["client_id"], format!("{base}/ts.json"), "{v}");
    assert_eq!(v["iss"], gw.base.as_str(), "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md"),
        "{v}"
    );
    let methods = audit_methods(&store);
    assert!(
        !methods.iter().any(|m| m == "auth.client_registered"),
        "{methods:?}"
    );
    assert!(
        methods.iter().any(|m| m == "auth.token_issued"),
        "{methods:?}"
    );

    // Attacks on the fetch and the document: each refused before anyone is redirected.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    attacks_on_the_fetch_and_the_document_are_refused((&gw, &http), &base, docs_port).await;
    // A document client is public: a secret never authenticates it at the token endpoint.
    let (status, body) = form_post(
        &format!("{}/oauth/token", gw.base),
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("code_verifier", &"v".repeat(43)),
            ("client_id", &format!("{base}/ts.json")),
            ("client_secret", "guess"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Registration: three per address per hour here, then 429.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .post(format!("{}/oauth/register", gw.base))
            .json(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .expect("register");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429]);

    // CORS: the machine endpoints answer any origin; the sign-in page does not.
    let pre = http
        .request(reqwest::Method::OPTIONS, format!("{}/oauth/token", gw.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    assert!(
        pre.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let meta = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            gw.base
        ))
        .header("origin", "https://app.example")
        .send()
        .await
        .expect("metadata");
    assert_eq!(meta.headers()["access-control-allow-origin"], "*");
    let page = http
        .get(format!("{}/oauth/authorize?client_id=x", gw.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .expect("authorize");
    assert!(page.headers().get("access-control-allow-origin").is_none());
    drop(idp);
}

/// Attacks on the metadata fetch and the document: each refused before anyone is redirected.
async fn attacks_on_the_fetch_and_the_document_are_refused(
    (gw, http): (&Gw, &reqwest::Client),
    base: &str,
    docs_port: u16,
) {
    let authorize = |client_id: String, redirect: &str| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/oauth/authorize", gw.base),
            &[
                ("client_id", client_id.as_str()),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ],
        )
        .expect("url");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("authorize");
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    let cb = "http://127.0.0.1:9998/callback";
    for (client_id, redirect, why) in [
        // The same document by address: loopback is only allowed under its named host.
        (
            format!("https://127.0.0.1:{docs_port}/clients/ts.json"),
            cb,
            "internal address",
        ),
        (
            "https://169.254.169.254/latest/meta-data/iam".to_owned(),
            cb,
            "internal address",
        ),
        (
            "https://[::ffff:a00:1]/client.json".to_owned(),
            cb,
            "internal address",
        ),
        (format!("{base}/liar.json"), cb, "not its own URL"),
        (format!("{base}/secret.json"), cb, "client_secret"),
        (
            format!("{base}/elsewhere.json"),
            "https://evil.example/cb",
            "not allowed here",
        ),
        (format!("{base}/missing.json"), cb, "HTTP 404"),
        (
            format!("{base}/ts.json"),
            "http://127.0.0.1:9998/other",
            "not one this client registered",
        ),
        (
            format!("http://localhost:{docs_port}/clients/ts.json"),
            cb,
            "Unknown client",
        ),
    ] {
        let (status, page) = authorize(client_id.clone(), redirect).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{client_id}: {page}");
        assert!(page.contains(why), "{client_id}: {page}");
    }
}

/// Registers a public client at the gateway; its client id.
async fn register_public(gw: &Gw) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/oauth/register", gw.base))
        .json(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    r["client_id"].as_str().expect("client_id").to_owned()
}

/// Enterprise-managed authorization: the enterprise IdP issues an identity assertion
/// authorization grant (ID-JAG) for a user and an agent, and the TypeScript SDK's
/// non-interactive flow exchanges it at the gateway for a gateway token with no sign-in
/// page. A replayed grant, one for another audience, one issued to another client, an
/// unsigned one and an ordinary access token are each refused and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enterprise_idps_assertion_grant_signs_an_agent_in_and_forged_ones_are_refused() {
    let map = std::env::temp_dir().join(format!("gatehouse-id-jag-{}.json", free_port()));
    std::fs::write(&map, "{}").expect("map");
    let (idp, gw, store) = facade_setup_with(
        "    id_jag: {issuers: [idp]}\n",
        &[("ID_JAG_CLIENT_MAP", &map.display().to_string())],
    )
    .await;
    let meta: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gw.base
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .is_some_and(|g| g.contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer"))),
        "{meta}"
    );
    // The agent's client at the gateway, which the IdP's administrator maps it to.
    let agent = register_public(&gw).await;
    let other = register_public(&gw).await;
    std::fs::write(&map, json!({"mcp-agent": agent}).to_string()).expect("map");
    let client = |mode: &str, audience: Option<&str>| {
        let mut cmd = Command::new("node");
        cmd.arg(peers().join("ts_id_jag_client.mjs")).args([
            idp.issuer().as_str(),
            gw.mcp().as_str(),
            agent.as_str(),
            mode,
        ]);
        if let Some(a) = audience {
            cmd.arg(a);
        }
        cmd
    };

    let v = last_json(&run_ok(&mut client("call", None), 120).await);
    assert_eq!(v["iss"], gw.base.as_str(), "a gateway token: {v}");
    assert_eq!(v["sub"], "idp/dave", "the user the IdP vouched for: {v}");
    assert_eq!(v["client_id"], agent.as_str(), "{v}");
    assert_eq!(
        v["refresh"],
        Value::Null,
        "no refresh token: the IdP keeps deciding"
    );
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("vpn.md"),
        "{v}"
    );

    let grant = |audience: Option<&'static str>| {
        let mut cmd = client("grant", audience);
        async move {
            last_json(&run_ok(&mut cmd, 120).await)["id_jag"]
                .as_str()
                .expect("grant")
                .to_owned()
        }
    };
    let token_url = format!("{}/oauth/token", gw.base);
    let present = |assertion: String, client_id: String| {
        let url = token_url.clone();
        async move {
            form_post(
                &url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                    ("client_id", &client_id),
                ],
            )
            .await
        }
    };
    // Once only.
    let g = grant(None).await;
    let (status, body) = present(g.clone(), agent.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string() && body.get("refresh_token").is_none());
    let (status, body) = present(g, agent.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("already used"),
        "{body}"
    );
    // Addressed to another server.
    let g = grant(Some("https://other.example")).await;
    let (status, body) = present(g, agent.clone()).await;
    assert_eq!(body["error"], "invalid_grant", "{status} {body}");
    // Issued to another client.
    let g = grant(None).await;
    let (status, body) = present(g.clone(), other.clone()).await;
    assert_eq!(body["error"], "invalid_grant", "{status} {body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("another client"),
        "{body}"
    );
    // Unsigned (alg none), and an ordinary access token from the same IdP.
    let (_, payload, _) = parts(&g);
    let unsigned = assemble(
        &json!({"alg": "none", "typ": "oauth-id-jag+jwt"}),
        &payload,
        "",
    );
    let (_, body) = present(unsigned, agent.clone()).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let access = idp.token("svc-reporting", "mcp:tools", None).await;
    let (_, body) = present(access, agent.clone()).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");

    let methods = audit_methods(&store);
    assert!(
        methods
            .iter()
            .filter(|m| *m == "auth.assertion_refused")
            .count()
            >= 5,
        "{methods:?}"
    );
    let _ = std::fs::remove_file(&map);
}
