//! Package provenance: a Sigstore bundle npm's registry publishes for a package version
//! (`dist.attestations`), or PyPI's attestations of a release file (PEP 740), checked offline against a Sigstore trust root (by default the
//! public-good root, `provenance/trusted_root.json`, as sigstore-python 4.5.1 ships it). A
//! bundle is accepted when:
//! - its signing certificate chains to one of the root's certificate authorities (Fulcio),
//!   for code signing, and was valid when the log recorded the signature;
//! - a transparency log the root names (Rekor) promised to include it: its signed entry
//!   timestamp verifies with that log's key, and the logged entry is this envelope;
//! - the DSSE envelope's signature verifies with the certificate's key;
//! - the in-toto statement names this package version (`pkg:npm/NAME@VERSION`) with the
//!   pinned tarball's sha512, or this PyPI file by name with its pinned sha256.
//!
//! Who built it (the certificate's workflow identity) is not matched against a policy: as
//! with `npm audit signatures`, a verified provenance proves the tarball was attested
//! through Sigstore's public log, not by whom.

use aws_lc_rs::digest;
use base64::Engine;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde_json::Value;
use webpki::KeyUsage;

/// The public-good Sigstore trust root (Apache-2.0, from the sigstore-python 4.5.1 package).
const PUBLIC_GOOD: &str = include_str!("provenance/trusted_root.json");

/// Extended key usage `codeSigning` (1.3.6.1.5.5.7.3.3), which Fulcio certificates carry.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before its 65-byte point.
pub(crate) const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed point of a P-256 SubjectPublicKeyInfo.
pub(crate) fn p256_point(spki: &[u8]) -> Option<&[u8]> {
    (spki.len() == 91 && spki[..26] == P256_SPKI_PREFIX).then(|| &spki[26..])
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| "malformed base64 in the bundle".to_owned())
}

/// A transparency log the trust root names: its id, P-256 key and the time it was trusted.
struct Log {
    id: Vec<u8>,
    point: Vec<u8>,
    valid: Window,
}

/// A certificate authority the trust root names: its root, its intermediates, and the time
/// it issued certificates (a retired CA signs nothing logged after its end).
struct Authority {
    anchor: TrustAnchor<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    valid: Window,
}

/// A trust root entry's `validFor`, in seconds since the epoch; no end: still in use.
#[derive(Clone, Copy)]
struct Window {
    start: u64,
    end: Option<u64>,
}

impl Window {
    /// Reads `validFor` (`{start, end?}` as RFC 3339 UTC times); absent: always.
    fn of(v: &Value) -> Result<Window, String> {
        let at = |k: &str| -> Result<Option<u64>, String> {
            match v["validFor"][k].as_str() {
                None => Ok(None),
                Some(t) => rfc3339_secs(t)
                    .map(Some)
                    .ok_or_else(|| format!("trust root: unreadable time `{t}`")),
            }
        };
        Ok(Window {
            start: at("start")?.unwrap_or(0),
            end: at("end")?,
        })
    }

    fn contains(self, t: u64) -> bool {
        t >= self.start && self.end.is_none_or(|e| t <= e)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` as seconds since the epoch (the fraction dropped).
fn rfc3339_secs(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let time = time.split('.').next()?;
    let num = |s: &str| s.parse::<i64>().ok();
    let d: Vec<i64> = date.split('-').map(num).collect::<Option<_>>()?;
    let h: Vec<i64> = time.split(':').map(num).collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), h.as_slice()) else {
        return None;
    };
    if !(1..=12).contains(m) || !(1..=31).contains(day) || *hh > 23 || *mm > 59 || *ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// The certificate authorities and transparency logs a bundle must chain to.
pub(crate) struct TrustRoot {
    authorities: Vec<Authority>,
    logs: Vec<Log>,
}

impl TrustRoot {
    /// The public-good root Gatehouse ships.
    pub(crate) fn public_good() -> Result<TrustRoot, String> {
        TrustRoot::from_json(PUBLIC_GOOD)
    }

    /// A `trusted_root.json` (Sigstore's `TrustedRoot` message).
    pub(crate) fn from_json(text: &str) -> Result<TrustRoot, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("trust root: {e}"))?;
        let mut authorities = Vec::new();
        for ca in v["certificateAuthorities"].as_array().into_iter().flatten() {
            let certs: Vec<Vec<u8>> = ca["certChain"]["certificates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["rawBytes"].as_str())
                .map(b64)
                .collect::<Result<_, _>>()?;
            let Some((root, rest)) = certs.split_last() else {
                continue;
            };
            let der = CertificateDer::from(root.clone());
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("trust root: certificate authority: {e:?}"))?
                .to_owned();
            authorities.push(Authority {
                anchor,
                intermediates: rest.iter().cloned().map(CertificateDer::from).collect(),
                valid: Window::of(ca)?,
            });
        }
        let mut logs = Vec::new();
        for t in v["tlogs"].as_array().into_iter().flatten() {
            // Signed entry timestamps come from the P-256 logs (Rekor v1); other logs
            // prove inclusion by checkpoint only and are not used here.
            if t["publicKey"]["keyDetails"] != "PKIX_ECDSA_P256_SHA_256" {
                continue;
            }
            let (Some(id), Some(key)) = (
                t["logId"]["keyId"].as_str(),
                t["publicKey"]["rawBytes"].as_str(),
            ) else {
                continue;
            };
            let spki = b64(key)?;
            let point = p256_point(&spki)
                .ok_or("trust root: a log key is not P-256")?
                .to_vec();
            logs.push(Log {
                id: b64(id)?,
                point,
                valid: Window::of(&t["publicKey"])?,
            });
        }
        if authorities.is_empty() || logs.is_empty() {
            return Err("trust root: no certificate authority or no transparency log".into());
        }
        Ok(TrustRoot { authorities, logs })
    }
}

/// The package URL npm's provenance names a version by (`@` of a scope encoded).
fn npm_purl(name: &str, version: &str) -> String {
    format!("pkg:npm/{}@{version}", name.replacen('@', "%40", 1))
}

/// DSSE's pre-authentication encoding: what the envelope's signature covers.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, b).as_ref())
}

/// Whether the entry the log recorded is this envelope: Rekor's `dsse` and `intoto` kinds
/// record the payload's hash and the signature; a log that records the submitted envelope
/// itself (`proposedContent`) must have recorded this one.
fn body_matches(body: &Value, payload_b64: &str, payload: &[u8], sig_b64: &str) -> bool {
    let spec = &body["spec"];
    let hash = sha256_hex(payload);
    let sig_in = |sigs: &Value, field: &str| {
        sigs.as_array().into_iter().flatten().any(|s| {
            s[field].as_str().is_some_and(|v| {
                v == sig_b64
                    // intoto 0.0.2 encodes the (base64) signature once more.
                    || b64(v).is_ok_and(|d| d == sig_b64.as_bytes())
            })
        })
    };
    match body["kind"].as_str() {
        Some("dsse") => {
            if let Some(env) = spec["proposedContent"]["envelope"].as_str() {
                let Ok(env) = serde_json::from_str::<Value>(env) else {
                    return false;
                };
                return env["payload"] == payload_b64 && sig_in(&env["signatures"], "sig");
            }
            spec["payloadHash"]["value"] == hash.as_str()
                && sig_in(&spec["signatures"], "signature")
        }
        Some("intoto") => {
            let content = &spec["content"];
            content["payloadHash"]["value"] == hash.as_str()
                && sig_in(&content["envelope"]["signatures"], "sig")
        }
        _ => false,
    }
}

/// Checks one provenance bundle for `name@version` whose tarball has `integrity`
/// (`sha512-…`). Returns what was verified, for the log.
pub(crate) fn verify_npm(
    root: &TrustRoot,
    bundle: &Value,
    name: &str,
    version: &str,
    integrity: &str,
) -> Result<String, String> {
    let (statement, index) = verify_bundle(root, bundle)?;
    let want_name = npm_purl(name, version);
    let want_digest = integrity
        .strip_prefix("sha512-")
        .and_then(|b| b64(b).ok())
        .map(hex::encode)
        .ok_or("the pinned integrity is not sha512")?;
    if !names(&statement, &want_name, "sha512", &want_digest) {
        return Err(format!(
            "the provenance does not attest {want_name} with the pinned sha512"
        ));
    }
    Ok(format!(
        "{} (log index {index})",
        statement["predicateType"].as_str().unwrap_or("provenance")
    ))
}

/// Checks a PyPI release file's provenance (PEP 740: attestation bundles of Sigstore-signed
/// in-toto statements) for the file `filename` with hex `sha256`: one attestation must
/// verify and name that file with that hash. Returns what was verified, for the log.
pub(crate) fn verify_pypi(
    root: &TrustRoot,
    provenance: &Value,
    filename: &str,
    sha256: &str,
) -> Result<String, String> {
    let mut last = "the provenance holds no attestation".to_owned();
    let attestations = provenance["attestation_bundles"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["attestations"].as_array().into_iter().flatten());
    for a in attestations {
        // The same parts as a Sigstore bundle, laid out as PEP 740 writes them.
        let bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": a["verification_material"]["certificate"]},
                "tlogEntries": a["verification_material"]["transparency_entries"],
            },
            "dsseEnvelope": {
                "payload": a["envelope"]["statement"],
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": a["envelope"]["signature"]}],
            },
        });
        match verify_bundle(root, &bundle) {
            Ok((statement, index)) if names(&statement, filename, "sha256", sha256) => {
                return Ok(format!(
                    "{} (log index {index})",
                    statement["predicateType"].as_str().unwrap_or("attestation")
                ));
            }
            Ok(_) => last = format!("no attestation names {filename} with the pinned sha256"),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether an in-toto statement has the subject `name` with digest `algorithm` = `hex`.
fn names(statement: &Value, name: &str, algorithm: &str, hex: &str) -> bool {
    statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["name"] == name
                && s["digest"][algorithm]
                    .as_str()
                    .is_some_and(|d| d.eq_ignore_ascii_case(hex))
        })
}

/// Verifies a Sigstore bundle holding a DSSE envelope with an in-toto statement: log
/// promise, certificate chain at the logged time, envelope signature. Returns the statement
/// and the log index.
fn verify_bundle(root: &TrustRoot, bundle: &Value) -> Result<(Value, i64), String> {
    if !bundle["mediaType"]
        .as_str()
        .is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.bundle"))
    {
        return Err("not a Sigstore bundle".into());
    }
    let material = &bundle["verificationMaterial"];
    let mut chain: Vec<Vec<u8>> = match material["certificate"]["rawBytes"].as_str() {
        Some(c) => vec![b64(c)?],
        None => material["x509CertificateChain"]["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["rawBytes"].as_str())
            .map(b64)
            .collect::<Result<_, _>>()?,
    };
    if chain.is_empty() {
        return Err("the bundle has no signing certificate".into());
    }
    let leaf = CertificateDer::from(chain.remove(0));
    let envelope = &bundle["dsseEnvelope"];
    let (Some(payload_b64), Some(payload_type), Some(sig_b64)) = (
        envelope["payload"].as_str(),
        envelope["payloadType"].as_str(),
        envelope["signatures"][0]["sig"].as_str(),
    ) else {
        return Err("the bundle has no signed DSSE envelope".into());
    };
    let payload = b64(payload_b64)?;
    let sig = b64(sig_b64)?;

    // The log's promise, and the time it gives the signature.
    let mut logged = None;
    for entry in material["tlogEntries"].as_array().into_iter().flatten() {
        let (Some(body_b64), Some(set), Some(id)) = (
            entry["canonicalizedBody"].as_str(),
            entry["inclusionPromise"]["signedEntryTimestamp"].as_str(),
            entry["logId"]["keyId"].as_str(),
        ) else {
            continue;
        };
        let number = |k: &str| -> Option<i64> {
            entry[k]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| entry[k].as_i64())
        };
        let (Some(time), Some(index)) = (number("integratedTime"), number("logIndex")) else {
            continue;
        };
        let id = b64(id)?;
        let Some(log) = root.logs.iter().find(|l| l.id == id) else {
            continue;
        };
        // What the log signed: these four fields as canonical JSON (keys sorted, no spaces).
        let signed = format!(
            r#"{{"body":{},"integratedTime":{time},"logID":"{}","logIndex":{index}}}"#,
            Value::String(body_b64.to_owned()),
            hex::encode(&id)
        );
        let promise = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &log.point,
        );
        if promise.verify(signed.as_bytes(), &b64(set)?).is_err() {
            return Err("the transparency log's signed entry timestamp does not verify".into());
        }
        let body: Value = serde_json::from_slice(&b64(body_b64)?)
            .map_err(|_| "the logged entry is not JSON".to_owned())?;
        if !body_matches(&body, payload_b64, &payload, sig_b64) {
            return Err("the transparency log recorded another envelope".into());
        }
        // A log trusted only for a period vouches for nothing it says it logged outside it.
        if !u64::try_from(time).is_ok_and(|t| log.valid.contains(t)) {
            return Err("the transparency log was not trusted at the time it gives".into());
        }
        logged = Some((time, index));
        break;
    }
    let (time, index) =
        logged.ok_or("no entry of a trusted transparency log promises this bundle")?;

    // The certificate, at the time the log recorded the signature.
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| format!("the signing certificate is unreadable: {e:?}"))?;
    let secs = u64::try_from(time).map_err(|_| "a negative log time")?;
    // Only the authorities that were issuing at that time.
    let current: Vec<&Authority> = root
        .authorities
        .iter()
        .filter(|a| a.valid.contains(secs))
        .collect();
    let anchors: Vec<TrustAnchor<'static>> = current.iter().map(|a| a.anchor.clone()).collect();
    let mut intermediates: Vec<CertificateDer<'static>> = current
        .iter()
        .flat_map(|a| a.intermediates.iter().cloned())
        .collect();
    intermediates.extend(chain.into_iter().map(CertificateDer::from));
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let algs = [
        webpki::aws_lc_rs::ECDSA_P256_SHA256,
        webpki::aws_lc_rs::ECDSA_P256_SHA384,
        webpki::aws_lc_rs::ECDSA_P384_SHA256,
        webpki::aws_lc_rs::ECDSA_P384_SHA384,
    ];
    ee.verify_for_usage(
        &algs,
        &anchors,
        &intermediates,
        at,
        KeyUsage::required(CODE_SIGNING),
        None,
        None,
    )
    .map_err(|e| format!("the signing certificate does not chain to the trust root: {e:?}"))?;
    let message = pae(payload_type, &payload);
    if !algs
        .iter()
        .any(|a| ee.verify_signature(*a, &message, &sig).is_ok())
    {
        return Err("the envelope's signature does not verify".into());
    }

    // What was attested: this version, these bytes.
    if payload_type != "application/vnd.in-toto+json" {
        return Err(format!(
            "the envelope holds {payload_type}, not an in-toto statement"
        ));
    }
    let statement: Value =
        serde_json::from_slice(&payload).map_err(|_| "the statement is not JSON".to_owned())?;
    Ok((statement, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_public_good_root_is_read() {
        let root = TrustRoot::public_good().expect("root");
        assert_eq!(root.authorities.len(), 2, "Fulcio's two roots");
        let intermediates: usize = root.authorities.iter().map(|a| a.intermediates.len()).sum();
        assert_eq!(intermediates, 1, "and its intermediate");
        // The first Fulcio root was retired at the end of 2022.
        assert_eq!(root.authorities[0].valid.end, Some(1_672_531_199));
        assert_eq!(rfc3339_secs("2021-03-07T03:20:29Z"), Some(1_615_087_229));
        assert_eq!(rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert!(rfc3339_secs("2021-13-07T03:20:29Z").is_none());
        assert_eq!(root.logs.len(), 1, "Rekor's P-256 log");
    }

    /// Bundles made by sigstore-js against two mock Sigstores (see the file's comment).
    fn fixture() -> Value {
        serde_json::from_str(include_str!(
            "../../../../testdata/provenance/sigstore-mock.json"
        ))
        .expect("fixture")
    }

    fn integrity() -> String {
        let d = digest::digest(&digest::SHA512, b"fixture tarball");
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(d.as_ref())
        )
    }

    fn check(root: &Value, bundle: &Value) -> Result<String, String> {
        let root = TrustRoot::from_json(&root.to_string())?;
        verify_npm(&root, bundle, "@fixture/pkg", "1.0.0", &integrity())
    }

    #[test]
    fn a_bundle_verifies_only_under_its_own_root_for_its_own_bytes() {
        let f = fixture();
        let ok = check(&f["trusted_root"], &f["bundle"]).expect("verifies");
        assert!(ok.starts_with("https://slsa.dev/provenance/v1"), "{ok}");
        // Another Sigstore's bundle: no trusted log promised it.
        let e = check(&f["trusted_root"], &f["other_bundle"]).expect_err("other log");
        assert!(e.contains("no entry of a trusted transparency log"), "{e}");
        // Other bytes, another version, another name.
        let root = TrustRoot::from_json(&f["trusted_root"].to_string()).expect("root");
        let other = format!("sha512-{}", "A".repeat(86) + "==");
        for (name, version, pin) in [
            ("@fixture/pkg", "1.0.0", other.as_str()),
            ("@fixture/pkg", "1.0.1", integrity().as_str()),
            ("@fixture/pkh", "1.0.0", integrity().as_str()),
        ] {
            let e = verify_npm(&root, &f["bundle"], name, version, pin).expect_err("subject");
            assert!(e.contains("does not attest"), "{e}");
        }
    }

    #[test]
    fn each_link_of_the_chain_is_checked() {
        let f = fixture();
        // The right log, another certificate authority: the certificate does not chain.
        let mut root = f["trusted_root"].clone();
        root["certificateAuthorities"] = f["other_root"]["certificateAuthorities"].clone();
        let e = check(&root, &f["bundle"]).expect_err("foreign CA");
        assert!(e.contains("does not chain"), "{e}");
        // The right CA and log, each trusted only for a period the signature falls outside.
        let mut root = f["trusted_root"].clone();
        root["certificateAuthorities"][0]["validFor"] =
            json!({"start": "2000-01-01T00:00:00Z", "end": "2001-01-01T00:00:00Z"});
        let e = check(&root, &f["bundle"]).expect_err("retired CA");
        assert!(e.contains("does not chain"), "{e}");
        let mut root = f["trusted_root"].clone();
        root["tlogs"][0]["publicKey"]["validFor"] =
            json!({"start": "2000-01-01T00:00:00Z", "end": "2001-01-01T00:00:00Z"});
        let e = check(&root, &f["bundle"]).expect_err("retired log");
        assert!(e.contains("not trusted at the time"), "{e}");
        // A promise the log did not sign.
        let mut b = f["bundle"].clone();
        let entry = &mut b["verificationMaterial"]["tlogEntries"][0];
        entry["logIndex"] = json!("1");
        let e = check(&f["trusted_root"], &b).expect_err("index changed");
        assert!(e.contains("signed entry timestamp"), "{e}");
        // The logged time moved outside the certificate's ten minutes: the promise breaks.
        let mut b = f["bundle"].clone();
        let entry = &mut b["verificationMaterial"]["tlogEntries"][0];
        entry["integratedTime"] = json!("4102444800");
        assert!(check(&f["trusted_root"], &b).is_err());
        // Another signature in the envelope than the one logged.
        let mut b = f["bundle"].clone();
        b["dsseEnvelope"]["signatures"][0]["sig"] =
            f["other_bundle"]["dsseEnvelope"]["signatures"][0]["sig"].clone();
        let e = check(&f["trusted_root"], &b).expect_err("sig swapped");
        assert!(e.contains("recorded another envelope"), "{e}");
        // Not a bundle; a bundle without its log entries.
        assert!(check(&f["trusted_root"], &json!({"mediaType": "text/plain"})).is_err());
        let mut b = f["bundle"].clone();
        b["verificationMaterial"]["tlogEntries"] = json!([]);
        assert!(check(&f["trusted_root"], &b).is_err());
    }

    #[test]
    fn pypi_attestations_verify_for_the_file_they_name() {
        let f = fixture();
        let root = TrustRoot::from_json(&f["pypi_root"].to_string()).expect("root");
        let file = "fixture_pkg-1.0.0-py3-none-any.whl";
        let sha = hex::encode(digest::digest(&digest::SHA256, b"fixture wheel").as_ref());
        let ok = verify_pypi(&root, &f["pypi_provenance"], file, &sha).expect("verifies");
        assert!(
            ok.starts_with("https://docs.pypi.org/attestations/publish/v1"),
            "{ok}"
        );
        // Another file of the release, other bytes, another Sigstore, no attestation.
        let e = verify_pypi(
            &root,
            &f["pypi_provenance"],
            "fixture_pkg-1.0.0.tar.gz",
            &sha,
        )
        .expect_err("other file");
        assert!(e.contains("no attestation names"), "{e}");
        assert!(verify_pypi(&root, &f["pypi_provenance"], file, &"0".repeat(64)).is_err());
        let other = TrustRoot::from_json(&f["trusted_root"].to_string()).expect("root");
        let e = verify_pypi(&other, &f["pypi_provenance"], file, &sha).expect_err("root");
        assert!(e.contains("no entry of a trusted transparency log"), "{e}");
        let e = verify_pypi(
            &root,
            &json!({"version": 1, "attestation_bundles": []}),
            file,
            &sha,
        )
        .expect_err("empty");
        assert!(e.contains("no attestation"), "{e}");
    }

    #[test]
    fn statements_name_versions_as_npm_does() {
        assert_eq!(
            npm_purl("@scope/pkg", "1.2.3"),
            "pkg:npm/%40scope/pkg@1.2.3"
        );
        assert_eq!(npm_purl("pkg", "1.2.3"), "pkg:npm/pkg@1.2.3");
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    }
}
