//! Config hot reload: poll the file, validate the new text fully, swap atomically. A bad
//! edit is logged and the running config keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use gatehouse_pipeline::gateway::Gateway;

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

/// How often the config file (and the policy files it names) is read for changes.
const POLL: Duration = Duration::from_secs(1);

/// The running watch; dropping it stops watching.
pub struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts watching `path`. The file is read once a second rather than watched through
/// inotify: a directory watch woke the gateway on every write to every file beside the
/// config (a SQLite store there meant a wake-up per audited call), and polling also sees
/// policy files elsewhere and the symlink swaps of a Kubernetes ConfigMap.
pub fn watch(path: PathBuf, gw: Arc<Gateway>) -> Option<Watch> {
    let task = tokio::spawn(async move {
        let mut last = fingerprint(&path, Some(&gw.config()));
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if fingerprint(&path, Some(&gw.config())) == last {
                continue;
            }
            // Let a save in progress settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
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
    Some(Watch(task))
}
