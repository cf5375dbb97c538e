//! Which request worker the current thread is (see the proxy's `worker` module, which
//! starts them): upstream clients keep one connection pool per worker, so a call never
//! hands its upstream connection to another thread.

use std::cell::Cell;

/// Most worker threads (and per-worker client slots).
pub const MAX: usize = 64;

thread_local! {
    /// This thread's worker number, 1-based; 0 on every other thread.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The current thread's slot: its worker number, or 0 off the workers.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Marks the current thread as request worker `n` (1-based; at most [`MAX`]).
pub fn enter(n: usize) {
    INDEX.with(|c| c.set(n.min(MAX)));
}
