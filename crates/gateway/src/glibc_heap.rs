//! The process's heap as glibc's malloc keeps it: one arena for every thread, its free pages
//! given back once the mirrors have loaded, and what it holds in live allocations and free
//! (the `/metrics` of every role).
//!
//! Loading the tables passes every row through the NATS client's buffers and decodes each
//! with its VNFD's spec, which is then dropped for the one the mirror shares. glibc keeps what
//! is freed for later allocations and returns only the top of its heaps to the system on its
//! own, so a gateway that loaded 20,000 VNFs stayed at 76 MB resident with 14 MB of it free
//! (`ops/bench monitor-cold-start`). `malloc_trim(0)` returns every whole free page.
//!
//! These are the crate's only `unsafe` calls outside its tests.

#![allow(unsafe_code)]

/// Returns the heap's whole free pages to the system (glibc's `malloc_trim(0)`; elsewhere
/// nothing). It takes the allocator's locks while it walks the heaps (3 ms on a gateway of
/// 20,000 VNFs), so it runs once, after the load, not on the request path.
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` has no preconditions; it takes the allocator's own locks and
    // gives back only pages that no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every thread allocate from glibc's one main arena (`mallopt(M_ARENA_MAX, 1)`;
/// elsewhere nothing). Called before the runtime starts its threads.
///
/// Why: by default each thread that contends for the heap gets an arena of its own, and a
/// chunk freed goes back to the arena it came from, where another thread's next allocation
/// cannot reuse it. A gateway that loaded 20,000 VNFs' rows on its two workers held 15.0 MB
/// freed and kept next to 38.8 MB in use; with one arena, 3.7 MB (`ops/bench
/// monitor-cold-start 20000 3 --no-replay`, its "Tables loaded" line). Each thread still keeps
/// a small cache of its own (glibc's tcache), so small allocations take no lock.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` has no preconditions; an arena limit applies to arenas made later.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Bytes of the process's heap, all of glibc's arenas together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// In live allocations, including those malloc maps on their own (past 128 KiB).
    pub in_use: u64,
    /// Freed and kept by malloc for later allocations: part of the resident memory unless
    /// trimmed (a whole free page given back stays counted here).
    pub free: u64,
}

/// The heap's usage (glibc's `mallinfo2`; `None` elsewhere). It takes each arena's lock in
/// turn and walks its free lists, so it is meant for a scrape, not a request's path.
pub fn usage() -> Option<HeapUsage> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` has no preconditions and answers a plain struct by value.
        let info = unsafe { libc::mallinfo2() };
        Some(HeapUsage {
            in_use: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_allocation_counts_in_use_and_once_freed_it_is_not() {
        const BYTES: usize = 64 << 20;
        let before = usage().expect("glibc");
        let held = vec![1_u8; BYTES];
        std::hint::black_box(&held);
        let during = usage().expect("glibc");
        assert!(
            during.in_use >= before.in_use + BYTES as u64,
            "{before:?} then {during:?}"
        );
        drop(held);
        let after = usage().expect("glibc");
        assert!(
            after.in_use + (BYTES as u64) / 2 < during.in_use,
            "{during:?} then {after:?}"
        );
    }
}
