//! Config hot reload: watch the file, validate the new text fully, swap atomically. A bad
//! edit is logged and the running config keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::gateway::Gateway;

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
        let mut last = std::fs::read(&path).ok();
        while rx.recv().await.is_some() {
            // Let a burst of events from one save settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let now = std::fs::read(&path).ok();
            if now == last {
                continue;
            }
            last = now;
            match Config::load(&path) {
                Ok(cfg) => {
                    tracing::info!(target: "gatehouse::audit", path = %path.display(), "config reloaded");
                    gw.reload(cfg);
                }
                Err(e) => {
                    tracing::error!(target: "gatehouse::audit", error = %e, "config change rejected; previous config still active")
                }
            }
        }
    });
    Some(watcher)
}
