//! npm provenance before a pinned package starts. The bundles are made by sigstore-js (the
//! signer npm itself uses for `npm publish --provenance`) against a Fulcio CA and a Rekor
//! log of `@sigstore/mock` on loopback (`testdata/peers/provenance.mjs`), and served by the
//! test registry the way registry.npmjs.org lists them (`dist.attestations`). A package
//! whose provenance verifies starts; one attested for other bytes, one whose statement was
//! altered after signing, one signed under another trust root, and one without provenance
//! when provenance is required never start.

use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{Mcp, free_port, last_json, peers, run_ok};
use crate::packages::{Published, integrity, npx_upstream, registry, tarball};

/// The hex sha512 npm provenance names a tarball by.
fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, bytes).as_ref())
}

/// One run of the signer: a fresh CA and log, a trust root naming them, one bundle per
/// `(name, sha512)`.
async fn attest(subjects: &[(&str, &str)]) -> (Value, Vec<Value>) {
    let mut cmd = Command::new("node");
    cmd.arg(peers().join("provenance.mjs"));
    for (name, digest) in subjects {
        cmd.arg(format!("{name}@1.0.0={digest}"));
    }
    let out = last_json(&run_ok(&mut cmd, 60).await);
    let bundles = out["bundles"].as_array().expect("bundles").clone();
    (out["trusted_root"].clone(), bundles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_is_verified_where_the_registry_publishes_it() {
    let tag = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-provenance-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let names = [
        "attested",
        "misattested",
        "altered",
        "stranger",
        "unattested",
    ]
    .map(|n| format!("gh-{n}-{tag}"));
    let tarballs: Vec<Vec<u8>> = names.iter().map(|n| tarball(&dir, n)).collect();
    let digests: Vec<String> = tarballs.iter().map(|t| sha512_hex(t)).collect();

    let (root, mut bundles) = attest(&[
        (&names[0], &digests[0]),
        // Attested, but for other bytes than the registry serves.
        (&names[1], &sha512_hex(b"another build")),
        (&names[2], &digests[2]),
    ])
    .await;
    // Altered after signing: the statement now names other bytes, which nobody signed.
    let payload = bundles[2]["dsseEnvelope"]["payload"]
        .as_str()
        .expect("payload")
        .to_owned();
    let mut statement: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload).expect("b64"),
    )
    .expect("statement");
    statement["subject"][0]["digest"]["sha512"] = json!(sha512_hex(b"a backdoored build"));
    bundles[2]["dsseEnvelope"]["payload"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        statement.to_string()
    ));
    // Signed and logged properly, under a Sigstore the gateway does not trust.
    let (_, stranger) = attest(&[(&names[3], &digests[3])]).await;
    let root_file = dir.join("trusted_root.json");
    std::fs::write(&root_file, root.to_string()).expect("root");

    let attestations = [
        bundles[0].clone(),
        bundles[1].clone(),
        bundles[2].clone(),
        stranger[0].clone(),
        Value::Null,
    ];
    let published = names
        .iter()
        .zip(tarballs)
        .zip(attestations)
        .map(|((n, t), a)| {
            (
                n.clone(),
                Published {
                    integrity: integrity(&t),
                    served: t,
                    signatures: Value::Null,
                    attestations: a,
                },
            )
        })
        .collect::<Vec<_>>();
    let pins: Vec<String> = published.iter().map(|(_, p)| p.integrity.clone()).collect();
    let port = registry(published, json!([])).await;
    let upstreams: String = [
        "attested",
        "misattested",
        "altered",
        "stranger",
        "unattested",
    ]
    .iter()
    .enumerate()
    .map(|(i, short)| npx_upstream(short, &names[i], &pins[i], port, &dir.join("npm-cache")))
    .collect();
    let yaml = format!(
        "dev_mode: true\nprovenance: {{trusted_root: '{}', required: true}}\nupstreams:\n{upstreams}",
        root_file.display()
    );
    let cfg =
        gatehouse_proxy::Config::from_yaml(&yaml, &|k| std::env::var(k).ok()).expect("config");
    let gw = crate::common::start_gateway_with(cfg, false).await;
    let c = Mcp::connect(&gw.mcp(), "2025-11-25").await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !c
        .list("tools/list", "tools")
        .await
        .iter()
        .any(|t| t["name"] == "attested__hello")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the attested package never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let v = c.call("attested__hello", json!({})).await;
    assert_eq!(v["content"][0]["text"], "hello from the pinned package");

    // A few more seconds: none of the others comes up.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let waiting = gw.gw.not_ready();
    for refused in ["misattested", "altered", "stranger", "unattested"] {
        assert!(
            waiting.contains(&refused.to_owned()),
            "{refused}: {waiting:?}"
        );
    }
    assert!(!waiting.contains(&"attested".to_owned()));
}
