//! Giving the heap's free pages back to the system once the mirrors have loaded.
//!
//! Loading the tables passes every row through the NATS client's buffers and decodes each
//! with its VNFD's spec, which is then dropped for the one the mirror shares. glibc keeps what
//! is freed for later allocations and returns only the top of its heaps to the system on its
//! own, so a gateway that loaded 20,000 VNFs stayed at 76 MB resident with 14 MB of it free
//! (`ops/bench monitor-cold-start`). `malloc_trim(0)` returns every whole free page.

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
