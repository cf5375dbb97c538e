//! Pinned packages against a registry (an npm registry served by the test, used by the real
//! `npx`): a package whose registry integrity matches the pin starts and serves, and so does
//! one whose registry signature verifies; a pin the registry contradicts, a signature that
//! does not verify, and a tarball tampered with after publication (refused by npm's own
//! check against that integrity) never start.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Mcp, free_port};

/// A package a runner can start: a dependency-free stdio MCP server with one tool.
const SERVER_JS: &str = r#"#!/usr/bin/env node
const rl = require("readline").createInterface({ input: process.stdin });
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
rl.on("line", (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  if (m.id === undefined) return;
  if (m.method === "initialize") {
    send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: "pinned", version: "1.0.0" } } });
  } else if (m.method === "tools/list") {
    send({ jsonrpc: "2.0", id: m.id, result: { tools: [{ name: "hello", description: "Says hello.",
      inputSchema: { type: "object" }, annotations: { readOnlyHint: true } }] } });
  } else if (m.method === "tools/call") {
    send({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: "hello from the pinned package" }] } });
  } else {
    send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "Method not found" } });
  }
});
"#;

/// The package's tarball as npm publishes it (`package/…`), built with tar.
pub(crate) fn tarball(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let pkg = dir.join(format!("{name}-src/package"));
    std::fs::create_dir_all(&pkg).expect("dir");
    std::fs::write(
        pkg.join("package.json"),
        json!({"name": name, "version": "1.0.0", "bin": {name: "server.js"}}).to_string(),
    )
    .expect("package.json");
    std::fs::write(pkg.join("server.js"), SERVER_JS).expect("server.js");
    let out = dir.join(format!("{name}.tgz"));
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(dir.join(format!("{name}-src")))
        .arg("package")
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(out).expect("tgz")
}

pub(crate) fn integrity(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA512, bytes);
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    )
}

/// One package the registry serves: its metadata's integrity and signatures, and the bytes
/// it hands out.
pub(crate) struct Published {
    pub(crate) integrity: String,
    pub(crate) served: Vec<u8>,
    pub(crate) signatures: Value,
    /// A Sigstore provenance bundle, listed under `dist.attestations` when not null.
    pub(crate) attestations: Value,
}

/// The registry's signing key: its published form (`/-/npm/v1/keys`) and a signer.
fn registry_key(keyid: &str) -> (Value, aws_lc_rs::signature::EcdsaKeyPair) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    let published = json!({"keyid": keyid, "keytype": "ecdsa-sha2-nistp256", "scheme": "ecdsa-sha2-nistp256",
        "key": base64::engine::general_purpose::STANDARD.encode(spki)});
    (published, pair)
}

/// The registry's signature of `NAME@VERSION:INTEGRITY`.
fn sign(pair: &aws_lc_rs::signature::EcdsaKeyPair, keyid: &str, message: &str) -> Value {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = pair.sign(&rng, message.as_bytes()).expect("sign");
    json!([{"keyid": keyid, "sig": base64::engine::general_purpose::STANDARD.encode(sig.as_ref())}])
}

/// A config's `upstreams` entry running `name@1.0.0` with `npx` from the test registry.
pub(crate) fn npx_upstream(
    short: &str,
    name: &str,
    pin: &str,
    port: u16,
    cache: &std::path::Path,
) -> String {
    format!(
        "  {short}:\n    command: npx\n    args: [-y, '{name}@1.0.0']\n    integrity: '{pin}'\n    env: {{npm_config_registry: 'http://127.0.0.1:{port}/', npm_config_cache: '{cache}', npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false'}}\n",
        cache = cache.display(),
    )
}

/// A minimal npm registry: packuments, version documents and tarballs.
pub(crate) async fn registry(packages: Vec<(String, Published)>, keys: Value) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let packages = Arc::new(packages);
    let keys = Arc::new(keys);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let packages = packages.clone();
        let keys = (*keys).clone();
        let base = base.clone();
        async move {
            let path = uri.path().trim_start_matches('/').to_owned();
            for (name, p) in packages.iter() {
                if path == format!("-/npm/v1/attestations/{name}@1.0.0") && !p.attestations.is_null() {
                    return axum::response::IntoResponse::into_response((
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json!({"attestations": [{"predicateType": "https://slsa.dev/provenance/v1",
                            "bundle": p.attestations}]}).to_string(),
                    ));
                }
            }
            if path == "-/npm/v1/keys" {
                return axum::response::IntoResponse::into_response((
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    json!({"keys": keys}).to_string(),
                ));
            }
            for (name, p) in packages.iter() {
                let mut version = json!({"name": name, "version": "1.0.0", "bin": {name.as_str(): "server.js"},
                    "dist": {"tarball": format!("{base}/{name}/-/{name}-1.0.0.tgz"), "integrity": p.integrity,
                        "signatures": p.signatures}});
                if !p.attestations.is_null() {
                    version["dist"]["attestations"] = json!({
                        "url": format!("{base}/-/npm/v1/attestations/{name}@1.0.0"),
                        "provenance": {"predicateType": "https://slsa.dev/provenance/v1"}});
                }
                if path == *name {
                    let doc = json!({"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": version}});
                    return axum::response::IntoResponse::into_response((
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    ));
                }
                if path == format!("{name}/1.0.0") {
                    return axum::response::IntoResponse::into_response((
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        version.to_string(),
                    ));
                }
                if path == format!("{name}/-/{name}-1.0.0.tgz") {
                    return axum::response::IntoResponse::into_response(p.served.clone());
                }
            }
            axum::response::IntoResponse::into_response(axum::http::StatusCode::NOT_FOUND)
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_starts_only_when_its_registry_and_its_bytes_match_the_pin() {
    let tag = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-packages-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (good, tampered) = (format!("gh-pinned-{tag}"), format!("gh-tampered-{tag}"));
    let good_tgz = tarball(&dir, &good);
    let tampered_tgz = tarball(&dir, &tampered);
    let good_integrity = integrity(&good_tgz);
    let tampered_integrity = integrity(&tampered_tgz);
    // The tampered package's registry metadata still carries the published integrity; the
    // bytes it serves were changed afterwards.
    let mut altered = tampered_tgz.clone();
    let n = altered.len();
    altered[n - 20] ^= 0xff;
    let (signed, forged) = (format!("gh-signed-{tag}"), format!("gh-forged-{tag}"));
    let signed_tgz = tarball(&dir, &signed);
    let forged_tgz = tarball(&dir, &forged);
    let (signed_integrity, forged_integrity) = (integrity(&signed_tgz), integrity(&forged_tgz));
    let (key, pair) = registry_key("SHA256:test-registry-key");
    // A signature by a key the registry does not publish.
    let (_, stranger) = registry_key("SHA256:test-registry-key");
    let port = registry(
        vec![
            (
                good.clone(),
                Published {
                    integrity: good_integrity.clone(),
                    served: good_tgz,
                    signatures: Value::Null,
                    attestations: Value::Null,
                },
            ),
            (
                tampered.clone(),
                Published {
                    integrity: tampered_integrity.clone(),
                    served: altered,
                    signatures: Value::Null,
                    attestations: Value::Null,
                },
            ),
            (
                signed.clone(),
                Published {
                    integrity: signed_integrity.clone(),
                    served: signed_tgz,
                    signatures: sign(
                        &pair,
                        "SHA256:test-registry-key",
                        &format!("{signed}@1.0.0:{signed_integrity}"),
                    ),
                    attestations: Value::Null,
                },
            ),
            (
                forged.clone(),
                Published {
                    integrity: forged_integrity.clone(),
                    served: forged_tgz,
                    signatures: sign(
                        &stranger,
                        "SHA256:test-registry-key",
                        &format!("{forged}@1.0.0:{forged_integrity}"),
                    ),
                    attestations: Value::Null,
                },
            ),
        ],
        json!([key]),
    )
    .await;
    let other = integrity(b"some other package");
    let upstream = |name: &str, pin: &str| {
        let short = if name == good && pin == good_integrity {
            "good"
        } else if name == good {
            "contradicted"
        } else if name == signed {
            "signed"
        } else if name == forged {
            "forged"
        } else {
            "tampered"
        };
        npx_upstream(short, name, pin, port, &dir.join("npm-cache"))
    };
    let yaml = format!(
        "dev_mode: true\nupstreams:\n{}{}{}{}{}",
        upstream(&good, &good_integrity),
        upstream(&good, &other),
        upstream(&tampered, &tampered_integrity),
        upstream(&signed, &signed_integrity),
        upstream(&forged, &forged_integrity),
    );
    let cfg =
        gatehouse_proxy::Config::from_yaml(&yaml, &|k| std::env::var(k).ok()).expect("config");
    let gw = crate::common::start_gateway_with(cfg, false).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;

    // The matching package starts and serves.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let tools = c.list("tools/list", "tools").await;
        if tools.iter().any(|t| t["name"] == "good__hello")
            && tools.iter().any(|t| t["name"] == "signed__hello")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pinned package never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let v = c.call("good__hello", json!({})).await;
    assert_eq!(v["content"][0]["text"], "hello from the pinned package");

    // A few more seconds: the contradicted and the tampered ones never come up.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let tools: Vec<Value> = c.list("tools/list", "tools").await;
    assert!(
        tools.iter().all(|t| !t["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("contradicted__")
            && !t["name"].as_str().unwrap_or("").starts_with("tampered__")),
        "{tools:?}"
    );
    let waiting = gw.gw.not_ready();
    for refused in ["contradicted", "tampered", "forged"] {
        assert!(
            waiting.contains(&refused.to_owned()),
            "{refused}: {waiting:?}"
        );
    }
    assert!(!waiting.contains(&"good".to_owned()) && !waiting.contains(&"signed".to_owned()));
}

/// `gatehouse scan --package`: the package's hash comes from its registry, the pinned config
/// lines are printed, and the package is run and vetted in the sandbox; a tampered package
/// never gets that far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_fetches_verifies_and_vets_a_package_in_the_sandbox() {
    let tag = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-scan-pkg-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (good, tampered) = (format!("gh-scan-{tag}"), format!("gh-scan-bad-{tag}"));
    let good_tgz = tarball(&dir, &good);
    let bad_tgz = tarball(&dir, &tampered);
    let good_integrity = integrity(&good_tgz);
    let mut altered = bad_tgz.clone();
    let n = altered.len();
    altered[n - 20] ^= 0xff;
    let port = registry(
        vec![
            (
                good.clone(),
                Published {
                    integrity: good_integrity.clone(),
                    served: good_tgz,
                    signatures: Value::Null,
                    attestations: Value::Null,
                },
            ),
            (
                tampered.clone(),
                Published {
                    integrity: integrity(&bad_tgz),
                    served: altered,
                    signatures: Value::Null,
                    attestations: Value::Null,
                },
            ),
        ],
        json!([]),
    )
    .await;
    let scan = |name: &str, timeout: &str| {
        let mut cmd = tokio::process::Command::new(crate::common::gatehouse_bin());
        cmd.args([
            "scan",
            "--package",
            &format!("npm:{name}@1.0.0"),
            "--registry",
            &format!("http://127.0.0.1:{port}/"),
            "--json",
            "--timeout",
            timeout,
        ]);
        cmd
    };
    let out = scan(&good, "90").output().await.expect("scan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("integrity: \"{good_integrity}\"")),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v.to_string().contains("hello"), "{v}");
    let out = scan(&tampered, "20").output().await.expect("scan");
    assert!(!out.status.success(), "a tampered package was vetted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not become ready"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
