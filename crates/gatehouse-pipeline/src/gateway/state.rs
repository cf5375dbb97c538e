//! What the gateway opens from its configuration at start: the stores (API keys, directory,
//! audit, OAuth), the secret sources, the identity checkers, and the background tasks that
//! keep them fresh (directory refresh, OAuth purge, audit retention).

use super::*;

/// API keys as configured at start (the pepper and store change only on restart).
pub(super) enum KeysState {
    Off,
    Ready(Box<ApiKeys>),
    Broken(String),
}

impl KeysState {
    pub(super) fn open(cfg: &Config) -> KeysState {
        let Some(pepper) = &cfg.api_key_pepper else {
            return KeysState::Off;
        };
        match cfg.backend(StoreKind::ApiKeys).api_keys() {
            Ok(store) => KeysState::Ready(Box::new(ApiKeys::new(pepper, store))),
            Err(e) => {
                tracing::error!(path = %cfg.store_path.display(), error = %e, "API key store unavailable: every API key will be refused");
                KeysState::Broken(e.to_string())
            }
        }
    }
}

/// The token checker and, when configured, the authorization-server façade whose tokens it
/// also accepts. A façade that cannot start (store or signing key unusable) is left out: its
/// endpoints answer 503 and no gateway token is accepted, never one unchecked.
pub(super) fn identity(
    cfg: &Config,
    secrets: Option<Arc<LocalSecrets>>,
) -> (Option<Arc<Authenticator>>, Option<Arc<AuthorizationServer>>) {
    let Some(a) = cfg.auth.as_ref() else {
        return (None, None);
    };
    let authn = Authenticator::new(a.issuers.clone());
    let Some(f) = a.facade.clone() else {
        return (Some(Arc::new(authn)), None);
    };
    let store = cfg
        .backend(StoreKind::OAuth)
        .oauth()
        .map_err(|e| e.to_string());
    let server = store.and_then(|store| {
        let key = std::path::PathBuf::from(format!("{}.oauth-key.pem", cfg.store_path.display()));
        AuthorizationServer::new(f, &key, store, secrets)
    });
    match server {
        Ok(s) => {
            let authn = authn.with_own_tokens(&s);
            (Some(Arc::new(authn)), Some(Arc::new(s)))
        }
        Err(e) => {
            tracing::error!(error = %e, "the authorization server cannot start; its endpoints answer 503");
            (Some(Arc::new(authn)), None)
        }
    }
}

/// Opens the secret sources: the local store (without its master key, `secret:` references
/// fail, and so whatever needs them is refused) and Vault for `vault:` references.
pub(super) fn open_secrets(cfg: &Config) -> Option<Arc<LocalSecrets>> {
    let vault = cfg.vault.clone().map(gatehouse_auth::Vault::new);
    let Some(s) = cfg.secrets.as_ref() else {
        return vault.map(|v| Arc::new(LocalSecrets::vault_only(v)));
    };
    let opened = s
        .master_key
        .resolve(None)
        .and_then(|k| LocalSecrets::new(&s.file, &k));
    match (opened, vault) {
        (Ok(l), Some(v)) => Some(Arc::new(l.with_vault(v))),
        (Ok(l), None) => Some(Arc::new(l)),
        (Err(e), vault) => {
            tracing::error!(error = %e, "secret store unavailable: secret: references will fail");
            vault.map(|v| Arc::new(LocalSecrets::vault_only(v)))
        }
    }
}

/// Prunes the audit record hourly (see `SqliteAudit::prune`).
pub(super) async fn retention(
    path: std::path::PathBuf,
    postgres: Option<String>,
    keep: Duration,
    sinks: Vec<String>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (path, sinks, postgres) = (path.clone(), sinks.clone(), postgres.clone());
        let cutoff = crate::audit::now_ms().saturating_sub(keep.as_millis() as u64);
        let done = tokio::task::spawn_blocking(move || {
            gatehouse_store::Backend::new(&path, postgres.as_deref())
                .audit()
                .and_then(|s| s.prune(cutoff, &sinks))
        })
        .await;
        match done {
            Ok(Ok(pruned)) => {
                for (chain, upto) in pruned {
                    tracing::info!(target: "gatehouse::audit", chain, upto, "audit retention: records pruned to a checkpointed anchor");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "audit retention failed"),
            Err(_) => return,
        }
    }
}

/// The subject index key: configured, else derived from a configured session key (stable
/// across restarts and replicas), else none (a per-process key would make the index useless).
pub fn subject_key(cfg: &Config) -> Option<gatehouse_detect::SubjectKey> {
    let audit = cfg.audit.as_ref()?;
    if let Some(r) = &audit.subject_key {
        return match r.resolve(open_secrets(cfg).as_deref()) {
            Ok(k) => Some(gatehouse_detect::SubjectKey::new(k.trim().as_bytes())),
            Err(e) => {
                tracing::error!(error = %e, "audit.subject_key unreadable: no subject index");
                None
            }
        };
    }
    let session = cfg.session_key?;
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &session);
    Some(gatehouse_detect::SubjectKey::new(
        aws_lc_rs::hmac::sign(&k, b"gatehouse audit subjects").as_ref(),
    ))
}

/// A key for DLP tokens derived from the session key (so replicas agree), never the key
/// itself.
pub(super) fn dlp_secret(session_key: &[u8; 32]) -> [u8; 32] {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, session_key);
    let tag = aws_lc_rs::hmac::sign(&k, b"gatehouse dlp tokens");
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The SCIM directory as configured at start.
pub(super) enum DirectoryState {
    Off,
    Ready(Arc<dyn DirectoryStore>),
    Broken(String),
}

/// Other gateway processes sharing the store file write to the directory too (their SCIM
/// and admin calls): their deprovisionings reach this process within a second.
pub(super) async fn refresh_directory(dir: std::sync::Weak<dyn DirectoryStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(d) = dir.upgrade() else { return };
        match tokio::task::spawn_blocking(move || d.refresh()).await {
            Ok(Ok(true)) => tracing::info!("directory changed by another process: reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "directory refresh failed"),
            Err(_) => return,
        }
    }
}

impl DirectoryState {
    pub(super) fn open(cfg: &Config) -> DirectoryState {
        if cfg.scim_token.is_none() && cfg.admin_token.is_none() {
            return DirectoryState::Off;
        }
        let opened = cfg.backend(StoreKind::Directory).directory();
        match opened {
            Ok(d) => DirectoryState::Ready(d),
            Err(e) => {
                tracing::error!(path = %cfg.store_path.display(), postgres = cfg.postgres_for(StoreKind::Directory).is_some(), error = %e, "directory store unavailable: every caller will be refused");
                DirectoryState::Broken(e.to_string())
            }
        }
    }
}

/// Drops expired sign-ins, codes and refresh tokens every ten minutes.
pub(super) async fn purge_oauth(gw: std::sync::Weak<Gateway>) {
    loop {
        tokio::time::sleep(Duration::from_secs(600)).await;
        let Some(gw) = gw.upgrade() else { return };
        if let Some(s) = gw.oauth() {
            tokio::task::spawn_blocking(move || s.purge());
        }
    }
}

/// Opens the audit store named by config. A store that cannot be opened still yields a
/// writer: every commit through it fails, so durable requests fail closed.
pub(super) fn open_audit(config: &Config) -> Option<crate::audit::AuditWriter> {
    use base64::Engine as _;
    let settings = config.audit.as_ref()?;
    let broken = |reason: String| -> Arc<dyn gatehouse_audit::AuditStore> {
        tracing::error!(path = %config.store_path.display(), error = %reason, "audit store unavailable: durable requests will be refused");
        Arc::new(crate::audit::BrokenStore(reason))
    };
    // A configured signing key that cannot be used fails closed like a broken store:
    // records without the promised checkpoints would be weaker than configured.
    let signer = match &settings.signing_key {
        None => Ok(None),
        Some(r) => r
            .resolve(open_secrets(config).as_deref())
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| "audit.signing_key is not base64".to_owned())
            })
            .and_then(|seed| {
                (seed.len() == 32)
                    .then(|| gatehouse_audit::Signer::from_seed(&seed))
                    .flatten()
                    .ok_or_else(|| "audit.signing_key is not a 32-byte Ed25519 seed".to_owned())
            })
            .map(Some),
    };
    // Without fsync, a checkpoint inside a commit is the only disk wait on a write call's
    // path, so a thread of the store runs them (no-config c=1 p99 4.4 ms -> 1.1 ms). With
    // fsync every such commit waits for the disk anyway, and the thread's fsyncs beside the
    // writer's cost more than they save (production CPU per call +7%: docs/benchmarks.md).
    // Decided at start; a reload that changes `fsync` keeps it.
    let backend = config.backend(StoreKind::Audit);
    let opened = if settings.fsync {
        backend.audit()
    } else {
        backend.audit_writer()
    };
    let (store, checkpoints) = match (signer, opened) {
        (Err(e), _) => (broken(e), None),
        (Ok(_), Err(e)) => (broken(e.to_string()), None),
        (Ok(signer), Ok(s)) => (
            Arc::new(s) as Arc<dyn gatehouse_audit::AuditStore>,
            signer.map(|signer| crate::audit::Checkpoints {
                signer,
                every: settings.checkpoint_every,
            }),
        ),
    };
    Some(crate::audit::AuditWriter::start(
        store,
        checkpoints,
        settings.fsync,
    ))
}
