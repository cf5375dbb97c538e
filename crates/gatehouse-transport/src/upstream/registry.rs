//! A pinned package checked against its registry before a runner starts it: npm's
//! `dist.integrity` for that exact version must equal the pinned one (npm then checks the
//! tarball it downloads against that same value) and, where the registry signs it
//! (`dist.signatures`), one signature must verify with the registry's published keys; or one
//! of a PyPI release's files must have the pinned sha256. Where the npm registry publishes
//! provenance (`dist.attestations`), it must verify for that tarball (`provenance`).
//! Anything else — a different hash, a signature or provenance that does not verify, an
//! unknown version, a registry that does not answer — and the server is not started.

use std::time::Duration;

use gatehouse_config::packages::PinnedPackage;
use serde_json::Value;

/// Largest registry answer read.
const MAX_ANSWER: usize = 8 << 20;

/// The npm registry the runner will use: the child's own setting, else npm's default.
fn npm_registry(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("npm_config_registry"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "https://registry.npmjs.org/".to_owned())
}

async fn fetch(url: &str) -> Result<Value, String> {
    fetch_maybe(url)
        .await?
        .ok_or_else(|| "the registry answered HTTP 404".to_owned())
}

/// A registry document, or `None` when the registry has none (404).
async fn fetch_maybe(url: &str) -> Result<Option<Value>, String> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("the registry did not answer: {}", e.without_url()))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(format!(
            "the registry answered HTTP {}",
            resp.status().as_u16()
        ));
    }
    let mut body = Vec::new();
    while let Some(c) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&c);
        if body.len() > MAX_ANSWER {
            return Err("the registry's answer is too large".into());
        }
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|_| "the registry's answer is not JSON".into())
}

/// Whether one `dist.signatures` entry verifies over `message` with the key the registry
/// publishes under its `keyid` (ECDSA P-256, SHA-256, ASN.1 signature).
fn signature_verifies(keys: &Value, sig: &Value, message: &[u8]) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Some(keyid), Some(s)) = (
        sig.get("keyid").and_then(Value::as_str),
        sig.get("sig").and_then(Value::as_str),
    ) else {
        return false;
    };
    let Some(key) = keys["keys"].as_array().and_then(|k| {
        k.iter()
            .find(|k| k.get("keyid").and_then(Value::as_str) == Some(keyid))
    }) else {
        return false;
    };
    let spki = key
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| b64.decode(k).ok());
    let Some(point) = spki
        .as_deref()
        .and_then(super::provenance::p256_point)
        .map(<[u8]>::to_vec)
    else {
        return false;
    };
    let Ok(sig) = b64.decode(s) else { return false };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, &sig)
        .is_ok()
}

/// Verifies the provenance the registry lists for a version (`dist.attestations.url`, on
/// the registry itself); without one, passes unless provenance is required.
async fn npm_provenance(p: &PinnedPackage, base: &str, version: &Value) -> Result<(), String> {
    let Some(url) = version
        .pointer("/dist/attestations/url")
        .and_then(Value::as_str)
    else {
        return if p.require_provenance {
            Err(format!(
                "{}@{} has no published provenance, and provenance.required is set",
                p.name, p.version
            ))
        } else {
            Ok(())
        };
    };
    // The registry's own attestation endpoint only: a version document cannot send the
    // gateway elsewhere.
    let origin = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    if origin(url).is_none() || origin(url) != origin(base) {
        return Err(format!(
            "the attestations of {}@{} are not on the registry",
            p.name, p.version
        ));
    }
    let root = trust_root(p)?;
    let listed = fetch(url).await?;
    let bundle = listed["attestations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| {
            a["predicateType"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://slsa.dev/provenance/"))
        })
        .map(|a| &a["bundle"])
        .ok_or_else(|| {
            format!(
                "the registry lists no provenance for {}@{}",
                p.name, p.version
            )
        })?;
    let what = super::provenance::verify_npm(&root, bundle, &p.name, &p.version, &p.integrity)
        .map_err(|e| {
            format!(
                "the provenance of {}@{} does not verify: {e}",
                p.name, p.version
            )
        })?;
    tracing::info!(package = %p.name, version = %p.version, "provenance verified: {what}");
    Ok(())
}

/// Verifies the attestations PyPI publishes for the pinned file (PEP 740, its integrity
/// API); without any, passes unless provenance is required.
async fn pypi_provenance(p: &PinnedPackage, file: &str, sha256: &str) -> Result<(), String> {
    let url = format!(
        "https://pypi.org/integrity/{}/{}/{file}/provenance",
        p.name, p.version
    );
    let Some(provenance) = fetch_maybe(&url).await? else {
        return if p.require_provenance {
            Err(format!(
                "{file} has no published provenance, and provenance.required is set"
            ))
        } else {
            Ok(())
        };
    };
    let what = super::provenance::verify_pypi(&trust_root(p)?, &provenance, file, sha256)
        .map_err(|e| format!("the provenance of {file} does not verify: {e}"))?;
    tracing::info!(package = %p.name, version = %p.version, "provenance verified: {what}");
    Ok(())
}

/// The trust root provenance is checked against: the configured file, else the built-in one.
fn trust_root(p: &PinnedPackage) -> Result<super::provenance::TrustRoot, String> {
    match &p.trusted_root {
        None => super::provenance::TrustRoot::public_good(),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("provenance.trusted_root {}: {e}", f.display()))?;
            super::provenance::TrustRoot::from_json(&text)
        }
    }
}

/// Checks `p` against its registry (`env` is the child's environment).
pub(crate) async fn verify(p: &PinnedPackage, env: &[(String, String)]) -> Result<(), String> {
    match p.ecosystem {
        "npm" => {
            let base = npm_registry(env);
            // A scoped name keeps its `@` and encodes its `/`.
            let url = format!(
                "{}/{}/{}",
                base.trim_end_matches('/'),
                p.name.replace('/', "%2f"),
                p.version
            );
            let v = fetch(&url).await?;
            let found = v
                .pointer("/dist/integrity")
                .and_then(Value::as_str)
                .ok_or("the registry reports no integrity for it")?;
            if found != p.integrity {
                return Err(format!(
                    "{}@{} has integrity {found} at the registry, not the pinned {}",
                    p.name, p.version, p.integrity
                ));
            }
            match v.pointer("/dist/signatures").and_then(Value::as_array) {
                Some(sigs) if !sigs.is_empty() => {
                    let keys =
                        fetch(&format!("{}/-/npm/v1/keys", base.trim_end_matches('/'))).await?;
                    let message = format!("{}@{}:{}", p.name, p.version, p.integrity);
                    if !sigs
                        .iter()
                        .any(|s| signature_verifies(&keys, s, message.as_bytes()))
                    {
                        return Err(format!(
                            "no registry signature of {}@{} verifies with the registry's keys",
                            p.name, p.version
                        ));
                    }
                }
                // Unsigned (a private registry): the pinned integrity alone.
                _ => {}
            }
            npm_provenance(p, &base, &v).await
        }
        _ => {
            let url = format!("https://pypi.org/pypi/{}/{}/json", p.name, p.version);
            let v = fetch(&url).await?;
            let want = p.integrity.trim_start_matches("sha256:");
            let file = v["urls"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| {
                    f.pointer("/digests/sha256")
                        .and_then(Value::as_str)
                        .is_some_and(|h| h.eq_ignore_ascii_case(want))
                })
                .and_then(|f| f["filename"].as_str())
                .ok_or_else(|| {
                    format!("no file of {}=={} has the pinned sha256", p.name, p.version)
                })?;
            pypi_provenance(p, file, want).await
        }
    }
}
