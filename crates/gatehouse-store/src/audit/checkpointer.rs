//! Checkpoints of the store file's write-ahead log, off the commit path. SQLite's own
//! automatic checkpoint runs inside the commit that crosses 1,000 log pages: that commit,
//! and the request waiting for its audit record, copied the log into the database file and
//! fsynced twice (milliseconds, every few hundred calls at low load: the p99 of a write
//! call). The audit connection turns it off; its commit hook tells this thread, on a
//! connection of its own, when the log holds [`PASSIVE_AT`] pages, and the thread runs a
//! passive checkpoint (it never blocks a writer or a reader): as many page copies as
//! before, none on a request's path.
//!
//! While commits keep coming back to back, a passive checkpoint cannot rewind the log
//! (the writer always has newer pages when it starts), and a restarting checkpoint from
//! another connection starves behind it. So once the log holds more than [`RESTART_AT`]
//! pages the thread takes the writer's own connection for a restarting checkpoint: the
//! commits queued meanwhile wait for it once, and the log starts over. Until then the
//! next passive checkpoint waits for [`PASSIVE_AT`] more pages: run again at every commit
//! past the bound, it copied the same few index pages and synced both files each time
//! (one checkpoint per six calls at c=1, docs/benchmarks.md).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use rusqlite::Connection;

use super::Conn;

/// Log pages (4 KiB each) that start a passive checkpoint: SQLite's own default.
pub(super) const PASSIVE_AT: i64 = 1000;
/// Log pages past which the log is rewound under the writer's lock: 16 MiB.
pub(super) const RESTART_AT: i64 = 4096;
/// At most this long between checkpoints while anything is in the log (what a quiet
/// store wrote reaches the database file too).
const IDLE: Duration = Duration::from_secs(1);

/// When to checkpoint: at `passive` pages in the log, and rewind past `restart`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) passive: i64,
    pub(super) restart: i64,
}

pub(super) const DEFAULT: Bounds = Bounds {
    passive: PASSIVE_AT,
    restart: RESTART_AT,
};

/// What the commit hook and the thread share.
struct Signal {
    /// Pages in the log after the last commit.
    pages: i64,
    /// Something was committed since the last checkpoint.
    fresh: bool,
    /// Pages in the log at which the next passive checkpoint runs.
    next: i64,
    /// Checkpoints run so far (passive and restarting), for tests.
    runs: u64,
    stop: bool,
}

impl Signal {
    fn new(bounds: Bounds) -> Signal {
        Signal {
            pages: 0,
            fresh: false,
            next: bounds.passive,
            runs: 0,
            stop: false,
        }
    }
}

type Shared = Arc<(Mutex<Signal>, Condvar)>;

/// The running checkpointer; it stops when this is dropped.
pub(super) struct Checkpointer {
    shared: Shared,
}

impl Checkpointer {
    /// Starts checkpointing the file of `writer`'s connection and hooks its commits;
    /// `None` (the caller keeps SQLite's automatic checkpoint) when the thread or its
    /// connection cannot be had.
    pub(super) fn start(
        path: &Path,
        bounds: Bounds,
        writer: &Arc<Mutex<Conn>>,
    ) -> Option<Checkpointer> {
        let conn = Connection::open(path).ok()?;
        let shared: Shared = Arc::new((Mutex::new(Signal::new(bounds)), Condvar::new()));
        let (flag, weak) = (shared.clone(), Arc::downgrade(writer));
        std::thread::Builder::new()
            .name("gatehouse-wal".into())
            .spawn(move || run(&conn, &flag, bounds, &weak))
            .ok()?;
        let hook = shared.clone();
        let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
        let hooked =
            w.db.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
                let pages = i64::from(pages);
                let (signal, wake) = &*hook;
                let mut s = signal.lock().unwrap_or_else(PoisonError::into_inner);
                if pages < s.pages {
                    // The log was rewound: count from its start again.
                    s.next = bounds.passive;
                }
                s.pages = pages;
                s.fresh = true;
                if pages >= s.next {
                    wake.notify_one();
                }
                Ok(())
            }));
        drop(w);
        match hooked {
            Ok(()) => Some(Checkpointer { shared }),
            Err(_) => {
                // Stops the thread again; the caller turns SQLite's own checkpoint back on.
                drop(Checkpointer { shared });
                None
            }
        }
    }

    /// Checkpoints run so far.
    #[cfg(test)]
    pub(super) fn runs(&self) -> u64 {
        self.shared
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .runs
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (signal, wake) = &*self.shared;
        signal.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
    }
}

fn run(conn: &Connection, shared: &Shared, bounds: Bounds, writer: &Weak<Mutex<Conn>>) {
    let (signal, wake) = &**shared;
    let mut s = signal.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if s.stop {
            return;
        }
        if s.pages < s.next || !s.fresh {
            let timeout;
            (s, timeout) = wake
                .wait_timeout(s, IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            // Nothing new, or woken early without enough pages: wait again. A quiet second
            // with something new checkpoints whatever the log holds.
            if s.stop || !s.fresh || (!timeout.timed_out() && s.pages < s.next) {
                continue;
            }
        }
        s.fresh = false;
        s.runs += 1;
        drop(s);
        // (busy, pages in the log) of a checkpoint. A failed checkpoint leaves the pages in
        // the log, where every reader still finds them; a later one tries again.
        let counts = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
        let mut log = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], counts)
            .map_or(0, |(_, log)| log);
        if log > bounds.restart {
            let Some(writer) = writer.upgrade() else {
                return;
            };
            // On the writer's connection, under its lock: no commit of this store runs
            // meanwhile (readers and other stores' writers get the connection's busy wait).
            // Done, the writer's next commit starts the log over.
            let w = writer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Ok((0, _)) = w.db.query_row("PRAGMA wal_checkpoint(RESTART)", [], counts) {
                log = 0;
            }
        }
        s = signal.lock().unwrap_or_else(PoisonError::into_inner);
        // What this checkpoint could not rewind waits for `passive` pages more; a log that
        // starts over (the commit hook sees it shrink) counts from its start.
        s.next = if log > 0 {
            log + bounds.passive
        } else {
            bounds.passive
        };
    }
}
