//! Gatehouse's global allocator: mimalloc (glibc malloc's arena locks showed up as
//! contention under load), built without transparent huge pages (they held tens of MB of
//! resident memory for no measurable CPU gain), wrapped to count allocations, bytes
//! allocated and bytes freed once `enable` is called (the binary calls it when
//! `GATEHOUSE_COUNT_ALLOCATIONS` is set; `/metrics` exports the counts). Off, each
//! allocation pays one relaxed load of a flag that never changes. The workspace's only
//! unsafe code: the `GlobalAlloc` impl, which forwards every call unchanged, and one call
//! into mimalloc that returns freed memory to the system.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// Wraps the allocator `A`, counting through it when enabled.
pub struct Counting<A>(pub A);

/// The allocator the binary installs: `#[global_allocator] static A: Global = GLOBAL;`.
pub type Global = Counting<mimalloc::MiMalloc>;
/// Its one value.
pub const GLOBAL: Global = Counting(mimalloc::MiMalloc);

/// Returns the memory freed so far to the system now. mimalloc returns freed pages only
/// after a delay, and only when it is next called; start-up frees tens of MB (parsing the
/// configuration, building the detectors) that an idle gateway would otherwise keep
/// resident. Call it once the gateway has started, not per request (it is a sweep).
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers; it sweeps the calling thread's heap and
    // purges the arenas' free pages, and may be called from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// Starts counting (call it first thing in `main`, so that live bytes mean something).
pub fn enable() {
    ON.store(true, Relaxed);
}

/// The counters, when counting is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Allocations (a reallocation counts as one).
    pub allocations: u64,
    /// Bytes requested by those allocations.
    pub allocated_bytes: u64,
    /// Bytes requested and not yet freed (allocations made before `enable` are not seen,
    /// so this can read a little low).
    pub live_bytes: u64,
}

/// The counts so far, or `None` when counting is off.
pub fn counts() -> Option<Counts> {
    if !ON.load(Relaxed) {
        return None;
    }
    let allocated = ALLOCATED.load(Relaxed);
    Some(Counts {
        allocations: ALLOCATIONS.load(Relaxed),
        allocated_bytes: allocated,
        live_bytes: allocated.saturating_sub(FREED.load(Relaxed)),
    })
}

#[inline]
fn allocated(size: usize) {
    if ON.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED.fetch_add(size as u64, Relaxed);
    }
}

#[inline]
fn freed(size: usize) {
    if ON.load(Relaxed) {
        FREED.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator and its pointer
// returned unchanged; counting only reads the layouts and touches static atomics, so it
// never allocates or re-enters the allocator.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocated(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocated(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        freed(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        freed(layout.size());
        allocated(new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn counts_what_passes_through_once_enabled() {
        let a = Counting(std::alloc::System);
        let layout = Layout::from_size_align(100, 8).expect("layout");
        // Off: nothing counted (other tests in this process never enable it).
        let before = (ALLOCATIONS.load(Relaxed), ALLOCATED.load(Relaxed));
        // SAFETY: a valid layout; freed below with the same layout.
        unsafe {
            let p = a.alloc(layout);
            a.dealloc(p, layout);
        }
        assert_eq!(before, (ALLOCATIONS.load(Relaxed), ALLOCATED.load(Relaxed)));
        assert_eq!(counts(), None);

        enable();
        let c0 = counts().expect("on");
        // SAFETY: as above; the reallocation keeps the alignment.
        unsafe {
            let p = a.alloc(layout);
            let p = a.realloc(p, layout, 300);
            let c1 = counts().expect("on");
            assert_eq!(c1.allocations - c0.allocations, 2);
            assert_eq!(c1.allocated_bytes - c0.allocated_bytes, 400);
            a.dealloc(p, Layout::from_size_align(300, 8).expect("layout"));
        }
        let c2 = counts().expect("on");
        assert_eq!(c2.allocated_bytes - c0.allocated_bytes, 400);
        assert_eq!(c2.live_bytes, c0.live_bytes);
    }
}
