//! A counting global allocator, for the allocation check of the stress suite.
//!
//! [`suite!`](crate::suite) installs [`CountingAllocator`] in the level's test binary. It counts
//! the allocations made on threads that asked to be counted ([`count_this_thread`]), so checks
//! running in parallel on other threads do not disturb the count. The count is one total over
//! every counted thread, so two checks that count must not run at the same time: each holds
//! [`exclusive`] while it counts.
#![allow(unsafe_code)] // implementing GlobalAlloc is unsafe by definition; this is the only place

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // const-initialised and without a destructor: reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting every allocation (and reallocation) made on a counted thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

fn note_allocation(size: usize) {
    if counted() {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(size, Ordering::Relaxed);
        let live = LIVE_BYTES.fetch_add(size, Ordering::Relaxed) + size;
        PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
    }
}

fn note_deallocation(size: usize) {
    if counted() {
        // Saturating: memory allocated before counting started may be freed while counting.
        let _ = LIVE_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
            Some(live.saturating_sub(size))
        });
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only atomics
// and a const thread-local, none of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_deallocation(layout.size());
        note_allocation(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System` underneath.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_deallocation(layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

static COUNTING: Mutex<()> = Mutex::new(());

/// Held by a check while it counts: the counted threads of two checks would add into one total.
/// (A check that panicked while holding it leaves it usable: the guard protects no data.)
pub fn exclusive() -> MutexGuard<'static, ()> {
    COUNTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The allocations that `steps` calls of `step` make on counted threads, at steady state: the
/// least count over `windows` consecutive windows of `steps` calls each.
///
/// Why the least: a worker thread that runs some code path for the first time (which worker
/// steals which half of a split is up to rayon's scheduler, and on a loaded machine one worker
/// can miss the whole warm-up) may allocate once for that thread (a thread-local set up on first
/// use). Such one-time allocations land in whichever window the first use falls in, and with
/// more windows than worker threads at least one window holds none; a level that allocates on
/// every step shows it in every window.
pub fn steady_allocations(windows: usize, steps: usize, mut step: impl FnMut()) -> usize {
    (0..windows)
        .map(|_| {
            let before = allocations();
            for _ in 0..steps {
                step();
            }
            allocations() - before
        })
        .min()
        .unwrap_or(0)
}

/// Counts the allocations this thread makes from now on.
pub fn count_this_thread() {
    COUNTED.with(|counted| counted.set(true));
}

/// The allocations counted so far, on every counted thread.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes allocated so far on counted threads (every allocation's size, summed).
pub fn allocated_bytes() -> usize {
    ALLOCATED_BYTES.load(Ordering::Relaxed)
}

/// Bytes allocated on counted threads and not yet freed.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Restarts the peak of [`live_bytes`] from its current value.
pub fn reset_peak() {
    PEAK_LIVE_BYTES.store(live_bytes(), Ordering::Relaxed);
}

/// The largest [`live_bytes`] since the last [`reset_peak`].
pub fn peak_live_bytes() -> usize {
    PEAK_LIVE_BYTES.load(Ordering::Relaxed)
}
