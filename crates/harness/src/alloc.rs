//! A counting global allocator, for the allocation check of the stress suite.
//!
//! [`suite!`](crate::suite) installs [`CountingAllocator`] in the level's test binary. It counts
//! the allocations made on threads that asked to be counted ([`count_this_thread`]), so checks
//! running in parallel on other threads do not disturb the count.
#![allow(unsafe_code)] // implementing GlobalAlloc is unsafe by definition; this is the only place

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // const-initialised and without a destructor: reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting every allocation (and reallocation) made on a counted thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

fn note_allocation() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only an atomic
// and a const thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System` underneath.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Counts the allocations this thread makes from now on.
pub fn count_this_thread() {
    COUNTED.with(|counted| counted.set(true));
}

/// The allocations counted so far, on every counted thread.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}
