//! A secret reference as the config writes it (`env:`, `file:`, `secret:`, `vault:`), and
//! the references that need nothing else to resolve (environment and files). A leaf:
//! `secrets` resolves the rest, `vault` and `upstream` name secrets through it.

use std::path::PathBuf;

/// Where a secret comes from. Secrets are never written in the config itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`
    Env(String),
    /// `file:/path` — read at each use, so a rotated file takes effect without a restart.
    File(PathBuf),
    /// `secret:NAME` — from the encrypted local secret store (`gatehouse secrets set`).
    Store(String),
    /// `vault:PATH#FIELD` — a field of a Vault KV secret (`secret/data/app#password` for KV v2).
    Vault { path: String, field: String },
}

const MAX_SECRET_BYTES: u64 = 64 * 1024;

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(name) = s.strip_prefix("env:").filter(|n| !n.is_empty()) {
            return Ok(SecretRef::Env(name.to_owned()));
        }
        if let Some(path) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        if let Some(name) = s.strip_prefix("secret:").filter(|n| !n.is_empty()) {
            return Ok(SecretRef::Store(name.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("vault:") {
            return match rest.split_once('#') {
                Some((path, field))
                    if vault_path_ok(path)
                        && !field.is_empty()
                        && field.len() <= 256 =>
                {
                    Ok(SecretRef::Vault {
                        path: path.to_owned(),
                        field: field.to_owned(),
                    })
                }
                _ => Err("a Vault reference is `vault:PATH#FIELD`, e.g. `vault:secret/data/gatehouse#client_secret`".into()),
            };
        }
        Err("secrets are references: `env:NAME`, `file:/path`, `secret:NAME` or `vault:PATH#FIELD`, never the secret itself".into())
    }

    /// The value of an `env:` or `file:` reference; the others need the secret store
    /// (`LocalSecrets`, which resolves every kind). Errors name the reference, never the
    /// value.
    pub fn resolve_plain(&self) -> Result<String, String> {
        match self {
            SecretRef::Store(name) => Err(format!("secret:{name} needs the secrets store")),
            SecretRef::Vault { path, field } => {
                Err(format!("vault:{path}#{field} needs the vault section"))
            }
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
            }
            SecretRef::File(path) => {
                use std::io::Read;
                let f =
                    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut s = String::new();
                f.take(MAX_SECRET_BYTES)
                    .read_to_string(&mut s)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(s.trim_end_matches(['\n', '\r']).to_owned())
            }
        }
    }
}

/// A path as Vault's API takes it: segments of `[A-Za-z0-9_.-]`, no `..`.
pub(crate) fn vault_path_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 512
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != ".."
                && seg != "."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}
