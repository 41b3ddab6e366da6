//! The rayon pool's other workers kept awake through a training loop.
//!
//! A step of level03 on two threads forks twice (the two large products, cut in halves) and runs
//! the small passes in between on one thread. Left alone, rayon's idle worker spins briefly, then
//! sleeps, and the next fork must wake it: on a virtual machine that is a system call and an
//! interrupt to a halted core, tens of microseconds per fork. Measured on the project's 2-core
//! machine (`examples/profile_step 128 3000 2`, MLP [784, 256, 10]): 693 us per step with the
//! worker sleeping between forks, 579 us with it kept awake; the profile of the first showed 12%
//! of both threads' time in the kernel's scheduler (waking and switching).
//!
//! [`with_workers_awake`] runs a loop with every other worker of the pool polling for work
//! instead, as an OpenMP runtime's threads spin between parallel regions (libgomp's
//! `GOMP_SPINCOUNT`, Intel's `KMP_BLOCKTIME`). The idle cores are busy for that time. A poller
//! that finds nothing gives its core away (`std::thread::yield_now`) rather than spinning in
//! place: as fast on 2 threads (532-546 us per step against 532-554), and a pool larger than the
//! machine stays usable (8 threads on the 2 cores: 551 us per step, against 9,375 us with pollers
//! spinning in place). The work is cut exactly as before, so results are bit-identical.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// This thread is inside [`with_workers_awake`] already.
    static KEEPING_AWAKE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` on this thread while every other worker of the current rayon pool polls for the
/// jobs `work` forks ([`rayon::yield_now`]) instead of sleeping between them.
///
/// Outside a rayon pool, on a pool of one thread, or nested in another call, it only runs
/// `work`. Used by [`Batches::for_each_batch`](crate::Batches::for_each_batch) for each epoch
/// and by the benches around each table (the floor and the levels alike).
///
/// ```
/// use backprop_data::workers::with_workers_awake;
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let sums = pool.install(|| {
///     with_workers_awake(|| {
///         (0..100u64)
///             .map(|step| rayon::join(|| step, || step * step))
///             .fold(0, |sum, (a, b)| sum + a + b)
///     })
/// });
/// assert_eq!(sums, (0..100u64).map(|step| step + step * step).sum::<u64>());
/// ```
pub fn with_workers_awake<R>(work: impl FnOnce() -> R) -> R {
    let Some(caller) = rayon::current_thread_index() else {
        return work();
    };
    if rayon::current_num_threads() < 2 || KEEPING_AWAKE.get() {
        return work();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|scope| {
        // One poller per worker. The caller's copy returns at once: were the caller to run a
        // poller while it waits inside `work` (for a job another worker took), the poller
        // would wait for `work` to end, which waits under it.
        scope.spawn_broadcast(|_, worker| {
            if worker.index() == caller {
                return;
            }
            while !done.load(Ordering::Acquire) {
                if let Some(rayon::Yield::Idle) = rayon::yield_now() {
                    std::thread::yield_now();
                }
            }
        });
        // `done` is set however `work` ends: a panic in it would otherwise leave the scope
        // waiting for the pollers forever.
        let _stop = SetOnDrop(&done);
        KEEPING_AWAKE.set(true);
        let _unmark = ResetOnDrop(&KEEPING_AWAKE);
        work()
    })
}

/// Sets the flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Clears this thread's [`KEEPING_AWAKE`] when dropped.
struct ResetOnDrop(&'static std::thread::LocalKey<Cell<bool>>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool")
    }

    #[test]
    fn forks_inside_run_and_the_call_returns_on_any_pool_size() {
        for threads in [1, 2, 3, 4] {
            let ran = AtomicUsize::new(0);
            let result = pool(threads).install(|| {
                with_workers_awake(|| {
                    for _ in 0..200 {
                        rayon::join(
                            || ran.fetch_add(1, Ordering::Relaxed),
                            || ran.fetch_add(1, Ordering::Relaxed),
                        );
                    }
                    // Nested: runs in place.
                    with_workers_awake(|| 7)
                })
            });
            assert_eq!((result, ran.into_inner()), (7, 400), "{threads} threads");
        }
        assert_eq!(with_workers_awake(|| 3), 3, "outside any pool");
    }

    #[test]
    fn a_panic_in_the_work_ends_the_pollers_and_reaches_the_caller() {
        let (panicked, marked_after) = pool(2).install(|| {
            let outcome =
                std::panic::catch_unwind(|| with_workers_awake(|| panic!("a step failed")));
            (outcome.is_err(), KEEPING_AWAKE.get())
        });
        // The scope returned (the pollers stopped), and the thread no longer counts as inside
        // a call.
        assert!(panicked && !marked_after);
    }
}
