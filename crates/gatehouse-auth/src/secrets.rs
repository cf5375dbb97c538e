//! The encrypted local secret store: a file of named secrets, each sealed with AES-256-GCM
//! under a master key (itself given by reference), the name bound as associated data so a
//! value cannot be moved to another name. Written atomically (temp file + rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Largest secrets file read.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// The gateway's own secret sources: the local encrypted file (`secret:` references) and,
/// when configured, Vault (`vault:` references). Either may be absent.
pub struct LocalSecrets {
    path: PathBuf,
    /// `None` when only Vault is configured.
    key: Option<LessSafeKey>,
    vault: Option<crate::vault::Vault>,
}

impl std::fmt::Debug for LocalSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSecrets")
            .field("path", &self.path)
            .finish()
    }
}

impl LocalSecrets {
    /// `master_key` must decode (base64) to 32 bytes.
    pub fn new(path: &Path, master_key_b64: &str) -> Result<LocalSecrets, String> {
        let key = STANDARD
            .decode(master_key_b64.trim())
            .map_err(|_| "master key is not base64".to_owned())?;
        let unbound = UnboundKey::new(&AES_256_GCM, &key)
            .map_err(|_| "master key must be 32 bytes".to_owned())?;
        Ok(LocalSecrets {
            path: path.to_owned(),
            key: Some(LessSafeKey::new(unbound)),
            vault: None,
        })
    }

    /// Only Vault: `secret:` references fail.
    pub fn vault_only(vault: crate::vault::Vault) -> LocalSecrets {
        LocalSecrets {
            path: PathBuf::new(),
            key: None,
            vault: Some(vault),
        }
    }

    /// Adds Vault for `vault:` references.
    pub fn with_vault(mut self, vault: crate::vault::Vault) -> LocalSecrets {
        self.vault = Some(vault);
        self
    }

    pub(crate) fn vault(&self) -> Option<&crate::vault::Vault> {
        self.vault.as_ref()
    }

    fn key(&self) -> Result<&LessSafeKey, String> {
        self.key
            .as_ref()
            .ok_or_else(|| "no local secret store is configured (the secrets section)".to_owned())
    }

    fn load(&self) -> Result<BTreeMap<String, String>, String> {
        use std::io::Read;
        self.key()?;
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        let mut text = String::new();
        f.take(MAX_FILE)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Writes the whole store: a new file created 0600 (never readable by others, not
    /// even for a moment), written, synced, then renamed over the old one and the
    /// directory synced, so a crash leaves either the old store or the new one.
    fn save(&self, map: &BTreeMap<String, String>) -> Result<(), String> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(map).map_err(|e| e.to_string())?;
        let err = |e: std::io::Error| format!("{}: {e}", tmp.display());
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Stores (or replaces) a secret.
    pub fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_owned())?;
        let mut sealed = value.as_bytes().to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| "encryption failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        let mut map = self.load()?;
        map.insert(name.to_owned(), STANDARD.encode(out));
        self.save(&map)
    }

    /// Reads a secret. Errors name the secret, never its value.
    pub fn get(&self, name: &str) -> Result<String, String> {
        let map = self.load()?;
        let b64 = map
            .get(name)
            .ok_or_else(|| format!("no secret named {name}"))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| format!("secret {name} is damaged"))?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(format!("secret {name} is damaged"));
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| format!("secret {name} is damaged"))?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut sealed)
            .map_err(|_| format!("secret {name} cannot be decrypted with this master key"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| format!("secret {name} is not text"))
    }

    pub fn names(&self) -> Result<Vec<String>, String> {
        Ok(self.load()?.into_keys().collect())
    }

    pub fn delete(&self, name: &str) -> Result<bool, String> {
        let mut map = self.load()?;
        let had = map.remove(name).is_some();
        if had {
            self.save(&map)?;
        }
        Ok(had)
    }
}

impl crate::secret_ref::SecretRef {
    /// The secret's value. Errors name the reference, never the value. `store` is the local
    /// secret store, needed for `secret:` and `vault:` references.
    pub fn resolve(&self, store: Option<&LocalSecrets>) -> Result<String, String> {
        use crate::secret_ref::SecretRef;
        match self {
            SecretRef::Store(name) => store
                .ok_or_else(|| format!("secret:{name} needs the secrets store"))?
                .get(name),
            SecretRef::Vault { path, field } => store
                .and_then(LocalSecrets::vault)
                .ok_or_else(|| format!("vault:{path}#{field} needs the vault section"))?
                .get(path, field),
            SecretRef::Env(_) | SecretRef::File(_) => self.resolve_plain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::LocalSecrets;

    fn key(b: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    #[test]
    fn secrets_round_trip_encrypted_and_bound_to_their_name() {
        let dir = std::env::temp_dir().join(format!("gatehouse-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.json");
        let _ = std::fs::remove_file(&path);
        let s = LocalSecrets::new(&path, &key(1)).unwrap();
        s.set("db", "hunter2").unwrap();
        s.set("api", "tok").unwrap();
        assert_eq!(s.get("db").unwrap(), "hunter2");
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(!file.contains("hunter2"), "stored encrypted");
        // A value moved under another name does not decrypt.
        let mut map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&file).unwrap();
        let db = map["db"].clone();
        map.insert("api".into(), db);
        std::fs::write(&path, serde_json::to_string(&map).unwrap()).unwrap();
        assert!(s.get("api").is_err());
        // Another master key reads nothing.
        assert!(
            LocalSecrets::new(&path, &key(2))
                .unwrap()
                .get("db")
                .is_err()
        );
        assert!(LocalSecrets::new(&path, "c2hvcnQ=").is_err());
        assert!(s.delete("db").unwrap());
        assert_eq!(s.names().unwrap(), vec!["api".to_owned()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The store is written through a new 0600 file: a planted `.tmp` (a symlink to a file
    /// others can read) receives nothing, and the store ends up 0600.
    #[cfg(unix)]
    #[test]
    fn saving_never_writes_through_a_planted_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("gatehouse-secrets-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.json");
        let public = dir.join("public.txt");
        std::fs::write(&public, "nothing here").unwrap();
        std::os::unix::fs::symlink(&public, dir.join("secrets.tmp")).unwrap();
        let s = LocalSecrets::new(&path, &key(1)).unwrap();
        s.set("db", "hunter2").unwrap();
        assert_eq!(std::fs::read_to_string(&public).unwrap(), "nothing here");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(s.get("db").unwrap(), "hunter2");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
