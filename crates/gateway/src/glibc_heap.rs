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

use std::time::Duration;

/// How often a `vnfm` process gives its heap's free pages back ([`trim_every`]).
pub const HEAP_TRIM_INTERVAL: Duration = Duration::from_secs(60);

/// Returns the heap's whole free pages to the system (glibc's `malloc_trim(0)`; elsewhere
/// nothing). It takes the allocator's locks while it walks the heaps (3 ms on a gateway of
/// 20,000 VNFs), so it runs after a load and then every [`HEAP_TRIM_INTERVAL`] on a blocking
/// thread, never on a request's path.
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
/// chunk freed goes back to the arena it came from, so what one thread frees the others do
/// not reuse. On the build before VNFs were slimmed, a gateway that loaded 20,000 VNFs' rows
/// on its two workers held 15.0 MB freed and kept next to 38.8 MB in use; with one arena,
/// 3.7 MB (one run each of `ops/bench monitor-cold-start 20000 3 --no-replay`, its "Tables
/// loaded" line). Each thread still keeps a small cache of its own (glibc's tcache), so small
/// allocations take no lock.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` has no preconditions; an arena limit applies to arenas made later.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the heap's whole free pages back every `period`, for as long as the runtime runs.
///
/// Why: glibc returns on its own only the top of its heap, and what a burst frees below live
/// allocations stays resident. A gateway holding 20,000 VNFs, trimmed after its load with
/// 4.4 MB freed and kept, held 25.3 MB so after two minutes of running (76 MB resident, 33.7
/// MB of it in use; `ops/bench-fleet --vdus 20000 --monitors 4`); trimmed every minute, 54 MB.
pub async fn trim_every(period: Duration) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(e) = tokio::task::spawn_blocking(trim).await {
            tracing::warn!(error = %e, "Giving the heap's free pages back failed.");
        }
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

    /// This process's resident memory, in bytes (Linux's `/proc/self/statm`, in pages).
    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn trim_gives_back_the_pages_a_burst_freed_below_live_allocations() {
        const CHUNKS: usize = 64 * 1024;
        const CHUNK_BYTES: usize = 1024;
        // A burst of small allocations, touched, then one that stays above them all.
        let burst: Vec<Vec<u8>> = (0..CHUNKS).map(|_| vec![1_u8; CHUNK_BYTES]).collect();
        let live = vec![1_u8; CHUNK_BYTES];
        drop(std::hint::black_box(burst));
        let freed = resident();
        trim();
        let trimmed = resident();
        std::hint::black_box(&live);
        // 64 MiB were freed; most of it in whole pages.
        assert!(
            trimmed + 32 * 1024 * 1024 < freed,
            "resident {freed} bytes before the trim, {trimmed} after"
        );
    }

    #[test]
    fn a_live_allocation_counts_in_use_and_once_freed_it_is_not() {
        const BYTES: usize = 64 << 20;
        let before = usage().expect("glibc");
        let held = vec![1_u8; BYTES];
        std::hint::black_box(&held);
        let during = usage().expect("glibc");
        // The figures are the whole process's, and other tests allocate and free meanwhile:
        // half the allocation is the margin either way.
        assert!(
            during.in_use > before.in_use + (BYTES as u64) / 2,
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
