//! Config hot reload: watch the file, validate the new text fully, swap atomically. A bad
//! edit is logged and the running config keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::gateway::Gateway;

/// The config file's bytes followed by those of the policy files it names, so an edit to
/// either reloads.
fn fingerprint(path: &std::path::Path, cfg: Option<&Config>) -> Option<Vec<u8>> {
    let mut v = std::fs::read(path).ok()?;
    for f in cfg
        .and_then(|c| c.authorization.as_ref())
        .map(|a| a.files.as_slice())
        .unwrap_or_default()
    {
        v.push(0);
        v.extend(std::fs::read(f).unwrap_or_default());
    }
    Some(v)
}

/// Starts watching; the watcher lives as long as the returned value.
pub fn watch(path: PathBuf, gw: Arc<Gateway>) -> Option<RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::error!(error = %e, "config watch unavailable"))
    .ok()?;
    // Watch the directory: editors replace files by rename, which a file watch would miss.
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| tracing::error!(error = %e, "config watch unavailable"))
        .ok()?;
    tokio::spawn(async move {
        let mut last = fingerprint(&path, Some(&gw.config()));
        while rx.recv().await.is_some() {
            // Let a burst of events from one save settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let now = fingerprint(&path, Some(&gw.config()));
            if now == last {
                continue;
            }
            last = now;
            // Who: the owner of the file as it now is (edits through a deployment tool
            // show that tool's account).
            let owner = {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(&path).map(|m| m.uid()).ok()
            };
            match Config::load(&path) {
                Ok(cfg) => {
                    let old = gw.config();
                    let policies = match &cfg.authorization {
                        Some(a) => a.diff(old.authorization.as_deref()),
                        None if old.authorization.is_some() => "authorization removed".into(),
                        None => String::new(),
                    };
                    tracing::info!(target: "gatehouse::audit", path = %path.display(), owner_uid = owner, policies, "config reloaded");
                    gw.audit_note(
                        gatehouse_audit::EventKind::Config,
                        "config reloaded",
                        format!(
                            "path {} owner_uid {owner:?} policies {policies}",
                            path.display()
                        ),
                    )
                    .await;
                    last = fingerprint(&path, Some(&cfg));
                    gw.reload(cfg);
                }
                Err(e) => {
                    tracing::error!(target: "gatehouse::audit", path = %path.display(), owner_uid = owner, error = %e, "config change rejected; previous config still active");
                    gw.audit_note(
                        gatehouse_audit::EventKind::Config,
                        "config change rejected",
                        format!("path {} owner_uid {owner:?} error {e}", path.display()),
                    )
                    .await;
                }
            }
        }
    });
    Some(watcher)
}
