//! A JSON-lines (or CEF/LEEF lines) file, synced after each batch, rotated by size:
//! `audit.jsonl` → `audit.jsonl.1` → … → `audit.jsonl.KEEP`, the oldest dropped.

use std::path::{Path, PathBuf};

use gatehouse_store::Pending;
use tokio::io::AsyncWriteExt;

use super::{Failure, format};
use gatehouse_proxy::config::{RawSinkFormat, SinkKind};

pub(super) struct JsonLines {
    path: PathBuf,
    format: RawSinkFormat,
    max_bytes: u64,
    keep: u32,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl JsonLines {
    pub(super) fn new(kind: &SinkKind) -> JsonLines {
        match kind {
            SinkKind::File {
                path,
                format,
                max_bytes,
                keep,
            } => JsonLines {
                path: path.clone(),
                format: *format,
                max_bytes: *max_bytes,
                keep: *keep,
            },
            _ => JsonLines {
                path: PathBuf::from("/dev/null"),
                format: RawSinkFormat::Json,
                max_bytes: u64::MAX,
                keep: 1,
            },
        }
    }

    async fn rotate(&self) -> std::io::Result<()> {
        let _ = tokio::fs::remove_file(numbered(&self.path, self.keep)).await;
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if tokio::fs::try_exists(&from).await.unwrap_or(false) {
                tokio::fs::rename(&from, numbered(&self.path, n + 1)).await?;
            }
        }
        tokio::fs::rename(&self.path, numbered(&self.path, 1)).await
    }

    pub(super) async fn send(&mut self, batch: &[Pending]) -> Result<(), Failure> {
        let io = |e: std::io::Error| Failure::Transient(format!("{}: {e}", self.path.display()));
        let mut out = Vec::new();
        for p in batch {
            out.extend_from_slice(format::body(p, self.format).as_bytes());
            out.push(b'\n');
        }
        let size = tokio::fs::metadata(&self.path).await.map_or(0, |m| m.len());
        if size > 0 && size + out.len() as u64 > self.max_bytes {
            self.rotate().await.map_err(io)?;
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(io)?;
        f.write_all(&out).await.map_err(io)?;
        f.sync_data().await.map_err(io)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_rotate_by_size_and_keep_a_bounded_history() {
        let dir = std::env::temp_dir().join(format!("gatehouse-jsonl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let mut sink = JsonLines {
            path: path.clone(),
            format: RawSinkFormat::Json,
            max_bytes: 4096,
            keep: 2,
        };
        for i in 0..40u64 {
            let p = Pending {
                chain: "default".into(),
                seq: i + 1,
                hash: "h".into(),
                body: serde_json::json!({"v": 1, "method": "x".repeat(300)}).to_string(),
            };
            sink.send(&[p]).await.unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.len() <= 4096, "{}", current.len());
        assert!(numbered(&path, 1).exists() && numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists(), "keep bounds the history");
        // The newest event is in the current file, each line whole JSON.
        let last: serde_json::Value =
            serde_json::from_str(current.lines().last().unwrap()).unwrap();
        assert_eq!(last["seq"], 40);
        for line in current.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
