//! `vault:` secret references: values read from a HashiCorp Vault-compatible KV engine
//! (v2, and v1), by path and field, with the gateway's Vault token. Values are cached for a
//! configured time, so a rotated secret is picked up without a restart; a Vault that cannot
//! answer fails whatever needed the secret. Errors name the reference, never a value.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::secret_ref::SecretRef;

/// Where Vault is and how the gateway signs in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSettings {
    /// `https://vault.example.com:8200`
    pub address: String,
    /// The gateway's Vault token, by `env:` or `file:` reference (a file lets an agent
    /// sidecar renew it).
    pub token: SecretRef,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// How long a read value is reused.
    pub cache: Duration,
}

/// Largest Vault answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// One secret's fields, as Vault returned them.
type Fields = serde_json::Map<String, Value>;

pub struct Vault {
    cfg: VaultSettings,
    /// Secret data by path, with when it was read.
    cache: Mutex<HashMap<String, (Fields, Instant)>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("address", &self.cfg.address)
            .finish()
    }
}

impl Vault {
    pub fn new(cfg: VaultSettings) -> Vault {
        Vault {
            cfg,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `field` at `path` (`secret/data/gatehouse/idp` for KV v2).
    pub fn get(&self, path: &str, field: &str) -> Result<String, String> {
        let name = format!("vault:{path}#{field}");
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .filter(|(_, at)| at.elapsed() < self.cfg.cache)
            .map(|(data, _)| data.clone());
        let data = match cached {
            Some(d) => d,
            None => {
                let d = self.read(path).map_err(|e| format!("{name}: {e}"))?;
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(path.to_owned(), (d.clone(), Instant::now()));
                d
            }
        };
        match data.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{name}: the field is not a string")),
            None => Err(format!("{name}: no such field")),
        }
    }

    /// Reads a path on a thread of its own with its own small runtime: references are
    /// resolved from synchronous code, some of it running on async workers.
    fn read(&self, path: &str) -> Result<Fields, String> {
        let token = self.cfg.token.resolve_plain()?;
        let url = format!("{}/v1/{path}", self.cfg.address.trim_end_matches('/'));
        let namespace = self.cfg.namespace.clone();
        let body = std::thread::scope(|s| {
            s.spawn(move || -> Result<(u16, Vec<u8>), String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    let client = reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(3))
                        .timeout(Duration::from_secs(5))
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(|e| e.to_string())?;
                    let mut rb = client.get(&url).header("X-Vault-Token", token);
                    if let Some(ns) = &namespace {
                        rb = rb.header("X-Vault-Namespace", ns);
                    }
                    let resp = rb.send().await.map_err(|e| e.without_url().to_string())?;
                    let status = resp.status().as_u16();
                    let body = crate::wire::read_limited(resp, MAX_ANSWER)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok((status, body))
                })
            })
            .join()
            .unwrap_or_else(|_| Err("vault reader failed".into()))
        })?;
        let (status, body) = body;
        if status != 200 {
            // Vault's error text may echo the request; only the status is reported.
            return Err(format!("Vault answered HTTP {status}"));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|_| "Vault's answer is not JSON".to_owned())?;
        let data = v
            .get("data")
            .and_then(Value::as_object)
            .ok_or("Vault's answer has no data")?;
        // KV v2 nests the secret under data.data (beside data.metadata); v1 does not.
        let secret = match (data.get("data"), data.get("metadata")) {
            (Some(Value::Object(inner)), Some(_)) => inner.clone(),
            _ => data.clone(),
        };
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    //! Against a stand-in that speaks Vault's KV HTTP API on loopback: no Vault server can be
    //! installed on the build machines. It checks the token and namespace headers and
    //! serves KV v2 and v1 shapes.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn stand_in() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let reads = Arc::new(AtomicUsize::new(0));
        let count = reads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (mut token, mut ns) = (String::new(), String::new());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("x-vault-token:") {
                        token = v.trim().to_owned();
                    }
                    if let Some(v) = lower.strip_prefix("x-vault-namespace:") {
                        ns = v.trim().to_owned();
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match (token.as_str(), ns.as_str(), path.as_str()) {
                    ("s.good", "team-a", "/v1/secret/data/gatehouse/idp") => (
                        200,
                        r#"{"data":{"data":{"client_secret":"kv2-value","n":1},"metadata":{"version":3}}}"#,
                    ),
                    ("s.good", "team-a", "/v1/kv1/gatehouse") => {
                        (200, r#"{"data":{"client_secret":"kv1-value"}}"#)
                    }
                    ("s.good", "team-a", _) => (404, r#"{"errors":[]}"#),
                    _ => (403, r#"{"errors":["permission denied"]}"#),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (addr, reads)
    }

    fn settings(address: &str, token_file: &std::path::Path, cache: u64) -> VaultSettings {
        VaultSettings {
            address: address.to_owned(),
            token: SecretRef::File(token_file.to_owned()),
            namespace: Some("team-a".into()),
            cache: Duration::from_secs(cache),
        }
    }

    #[test]
    fn kv_values_are_read_cached_and_errors_never_show_them() {
        let (addr, reads) = stand_in();
        let dir = std::env::temp_dir().join(format!("gatehouse-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let token = dir.join("token");
        std::fs::write(&token, "s.good\n").expect("token");
        let v = Vault::new(settings(&addr, &token, 60));
        assert_eq!(
            v.get("secret/data/gatehouse/idp", "client_secret")
                .as_deref(),
            Ok("kv2-value")
        );
        assert_eq!(
            v.get("secret/data/gatehouse/idp", "client_secret")
                .as_deref(),
            Ok("kv2-value")
        );
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "the second read came from the cache"
        );
        assert_eq!(
            v.get("kv1/gatehouse", "client_secret").as_deref(),
            Ok("kv1-value")
        );
        let e = v.get("secret/data/gatehouse/idp", "n").unwrap_err();
        assert!(e.contains("not a string"), "{e}");
        let e = v.get("secret/data/gatehouse/idp", "nope").unwrap_err();
        assert!(
            e.contains("no such field") && !e.contains("kv2-value"),
            "{e}"
        );
        let e = v.get("secret/data/missing", "x").unwrap_err();
        assert!(e.contains("HTTP 404"), "{e}");

        // A wrong (or revoked) token: refused, and the error shows neither token nor value.
        std::fs::write(&token, "s.bad\n").expect("token");
        let v = Vault::new(settings(&addr, &token, 0));
        let e = v
            .get("secret/data/gatehouse/idp", "client_secret")
            .unwrap_err();
        assert!(e.contains("HTTP 403") && !e.contains("s.bad"), "{e}");
        // Vault down: an error, not a value.
        let v = Vault::new(settings("http://127.0.0.1:9", &token, 0));
        assert!(v.get("secret/data/gatehouse/idp", "client_secret").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_cannot_climb_or_carry_queries() {
        assert!(crate::secret_ref::vault_path_ok(
            "secret/data/gatehouse/idp"
        ));
        for bad in [
            "",
            "secret/../sys/seal",
            "secret//x",
            "secret/data?list=true",
            "/secret",
            "a b",
        ] {
            assert!(!crate::secret_ref::vault_path_ok(bad), "{bad}");
        }
    }
}
