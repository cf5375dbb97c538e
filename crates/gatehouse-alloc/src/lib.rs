//! Gatehouse's global allocator: mimalloc (glibc malloc's arena locks showed up as
//! contention under load), built without transparent huge pages (they held tens of MB of
//! resident memory for no measurable CPU gain), wrapped to count allocations, bytes
//! allocated and bytes freed once `enable` is called (the binary calls it when
//! `GATEHOUSE_COUNT_ALLOCATIONS` is set; `/metrics` exports the counts). Off, each
//! allocation pays one relaxed load of a flag that never changes. The workspace's only
//! unsafe code: the `GlobalAlloc` impl, which forwards every call unchanged, two calls
//! into mimalloc (one option set at start, one sweep that returns freed memory to the
//! system), and one `madvise` that lets the kernel drop pages of code run only at start.

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

/// How long freed pages stay with mimalloc before they go back to the system: 10 ms
/// instead of its 1,000. Under load a gateway frees as fast as it allocates, and with the
/// default the pages freed in the last second stay resident: the production config at 32
/// connections held 26.7-27.2 MB anonymous against 24.2-24.4 MB with 10 ms, at the same
/// CPU per call (three interleaved runs; 1 ms kept 23-24 MB but read a little more CPU).
/// An operator's `MIMALLOC_PURGE_DELAY` wins.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Sets the allocator's options; call it first thing in `main`, before threads start.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` takes no pointers; it stores a number the allocator reads
    // when it next purges, and may be called at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// `mi_option_purge_delay`: its index in mimalloc's option enum (the Rust bindings name
/// no constant for it; a test checks the index by the option's default).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Asks the kernel to reclaim the pages of `len` bytes at `addr` now (`MADV_PAGEOUT`).
/// Nothing the program sees changes: a clean file-backed page (the executable's code and
/// constants) is dropped and read again when next touched. For the start-up code of an
/// idle gateway: about 20 MB of its resident set is the binary's code, most of it run once
/// (parsing the configuration, building detectors and policies). `addr` must be page
/// aligned; Linux only (elsewhere it does nothing).
pub fn page_out(addr: usize, len: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: MADV_PAGEOUT is advice that never changes the contents of memory as the
        // program sees them (pages come back on their next access, from the file or the
        // swap), so it is sound for any range; one not mapped is refused (ENOMEM), one not
        // page aligned too (EINVAL).
        #[allow(unsafe_code)]
        let r = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, len);
    Ok(())
}

/// Lets the kernel reclaim the executable's code and constants once the program has
/// settled, in two steps: every read-only private mapping of its own file is paged out
/// ([`page_out`]; pages another process maps too are skipped by the kernel), then this
/// process's mappings of those that were never written are dropped (`MADV_DONTNEED`), so
/// that a second process started from the same file does not keep them resident in both.
/// The bytes stay in the page cache and are mapped again on their next use. Only a mapping
/// none of whose pages was ever written is dropped: a relocated page (`Anonymous`, or
/// swapped out) would read back the file's original bytes, so a mapping holding one is
/// left whole. Both read from one `/proc/self/smaps`. The number of bytes paged out and
/// dropped; Linux only (elsewhere it does nothing).
pub fn settle_own_code() -> std::io::Result<(usize, usize)> {
    #[cfg(target_os = "linux")]
    {
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let exe = std::fs::read_link("/proc/self/exe")?;
        let mappings = own_read_only_mappings(&smaps, &exe.to_string_lossy());
        let mut paged = 0;
        for &(start, len, _) in &mappings {
            // A range the kernel refuses is left as it is: advice only.
            if page_out(start, len).is_ok() {
                paged += len;
            }
        }
        let mut dropped = 0;
        for &(start, len, _) in mappings.iter().filter(|m| m.2) {
            // SAFETY: the range is a non-writable private mapping of this program's own
            // file with no anonymous (written, copied) or swapped page: every page of it
            // equals the file's bytes, which the kernel maps again on the next access, so
            // nothing the program reads changes. Nothing writes it meanwhile: it is not
            // writable, and the running executable cannot be written (ETXTBSY).
            #[allow(unsafe_code)]
            let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            dropped += len;
        }
        Ok((paged, dropped))
    }
    #[cfg(not(target_os = "linux"))]
    Ok((0, 0))
}

/// The private, not writable mappings of the file `exe` in a `/proc/<pid>/smaps` text, as
/// (start, length, clean): clean when the mapping holds no anonymous or swapped page.
fn own_read_only_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize, bool)> {
    let mut current: Option<(usize, usize, bool)> = None;
    let mut out = Vec::new();
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line, exe) {
            out.extend(current.take());
            current = header;
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if matches!(key, "Anonymous" | "Swap")
            && let Some(m) = current.as_mut()
        {
            // A value that does not read as zero keeps the mapping.
            let kb = rest.trim().trim_end_matches("kB").trim();
            if kb != "0" {
                m.2 = false;
            }
        }
    }
    out.extend(current);
    out
}

/// For a mapping's header line: `Some(Some(..))` when it maps `exe` private and not
/// writable, `Some(None)` for any other mapping, `None` for a field line.
#[allow(clippy::option_option)]
fn mapping_header(line: &str, exe: &str) -> Option<Option<(usize, usize, bool)>> {
    let mut fields = line.split_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let (a, b) = range.split_once('-')?;
    let (a, b) = (
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    );
    if perms.len() != 4 {
        return None;
    }
    // offset, device, inode, then the path (which may hold spaces).
    let path = fields.nth(3).and_then(|p| line.find(p)).map(|i| &line[i..]);
    let ours =
        path == Some(exe) && perms.starts_with('r') && perms.ends_with('p') && !perms.contains('w');
    Some((ours && b > a).then_some((a, b - a, true)))
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
    fn only_read_only_mappings_of_the_executable_are_settled_and_only_clean_ones_dropped() {
        let smaps = "\
55d0c0000000-55d0c0400000 r--p 00000000 fe:01 123 /usr/bin/gate house
Rss:                4096 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0c0400000-55d0c2400000 r-xp 00400000 fe:01 123 /usr/bin/gate house
Rss:               17000 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0c2400000-55d0c2500000 r--p 02400000 fe:01 123 /usr/bin/gate house
Rss:                 980 kB
Anonymous:           980 kB
Swap:                  0 kB
55d0c2500000-55d0c2510000 r--p 02500000 fe:01 123 /usr/bin/gate house
Anonymous:             0 kB
Swap:                  4 kB
55d0c2510000-55d0c2600000 rw-p 02510000 fe:01 123 /usr/bin/gate house
Anonymous:             0 kB
55d0c2600000-55d0c2700000 r-xp 00000000 fe:01 456 /usr/bin/gate house-other
Anonymous:             0 kB
55d0c2700000-55d0c2800000 r-xs 00000000 fe:01 123 /usr/bin/gate house
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:01 789 /usr/lib/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 rwxp 00000000 00:00 0
Anonymous:          1024 kB
";
        assert_eq!(
            own_read_only_mappings(smaps, "/usr/bin/gate house"),
            [
                (0x55d0c0000000, 0x400000, true),
                (0x55d0c0400000, 0x2000000, true),
                (0x55d0c2400000, 0x100000, false),
                (0x55d0c2500000, 0x10000, false)
            ]
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn code_dropped_runs_the_same() {
        fn work(n: u64) -> u64 {
            (0..n).fold(7u64, |h, i| h.rotate_left(5) ^ i.wrapping_mul(0x9e37_79b9))
        }
        let before = work(std::hint::black_box(10_000));
        assert!(settle_own_code().expect("settled").1 > 0);
        assert_eq!(work(std::hint::black_box(10_000)), before);
        // Again, with code running on other threads meanwhile.
        let t =
            std::thread::spawn(move || (0..200).fold(0u64, |s, _| s ^ work(1000).rotate_left(1)));
        settle_own_code().expect("settled");
        let expected = (0..200).fold(0u64, |s, _| s ^ work(1000).rotate_left(1));
        assert_eq!(t.join().expect("thread"), expected);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn paged_out_memory_reads_back_unchanged() {
        let buf: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        // A whole number of 64 KiB blocks inside it: aligned for any page size Linux uses.
        let block = 1 << 16;
        let start = (buf.as_ptr() as usize).next_multiple_of(block);
        page_out(start, 8 * block).expect("paged out");
        assert!(buf.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        // Misaligned or unmapped ranges are refused, not half done.
        assert!(page_out(start + 1, block).is_err());
        assert!(page_out(0, block).is_err());
    }

    /// The option as mimalloc sees it.
    #[allow(unsafe_code)]
    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: reads an option; no pointers.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
    }

    #[test]
    fn the_purge_delay_is_set_on_mimallocs_own_option() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // mimalloc's default for this option is 1,000 ms (no neighbouring option defaults
        // to that): the index is the purge delay's. Only this test configures.
        assert_eq!(purge_delay(), 1000);
        configure();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }

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
