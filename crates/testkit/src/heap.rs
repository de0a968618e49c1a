//! A unit-test allocator: the system's, counting the bytes each thread holds and the
//! allocations it makes, so that a test can measure what the structures it builds cost, or
//! what a path allocates (other tests, on other threads, do not count). A crate's tests
//! install it with
//! `#[cfg(test)] #[global_allocator] static COUNTING: testkit::heap::Counting = testkit::heap::Counting;`.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static CHUNKS: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The bytes glibc's malloc takes for an allocation of `size`: the size and its 8-byte header
/// rounded up to 16, at least 32 (allocations past its mmap threshold, 128 KiB, take whole
/// pages; none of the structures measured here makes one).
fn chunk(size: usize) -> isize {
    ((size + 8).next_multiple_of(16).max(32)).cast_signed()
}

fn count(bytes: isize, chunks: isize) {
    // During a thread's teardown its counters are gone; nothing to count then.
    let _ = HELD.try_with(|held| held.set(held.get() + bytes));
    let _ = CHUNKS.try_with(|held| held.set(held.get() + chunks));
}

// SAFETY: every call is passed to `System` unchanged; only the sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size().cast_signed(), chunk(layout.size()));
        let _ = ALLOCATIONS.try_with(|made| made.set(made.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-layout.size().cast_signed(), -chunk(layout.size()));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(
            new_size.cast_signed() - layout.size().cast_signed(),
            chunk(new_size) - chunk(layout.size()),
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The bytes this thread has allocated and not freed since it started.
pub fn held() -> isize {
    HELD.with(Cell::get)
}

/// How many allocations this thread has made since it started (reallocations not counted):
/// what a path's work costs malloc, whatever it frees again.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// What this thread's allocations not freed since it started take of glibc's heap, each
/// allocation with its header and rounding ([`chunk`]).
pub fn chunks() -> isize {
    CHUNKS.with(Cell::get)
}
