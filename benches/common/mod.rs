//! Timing helpers shared by the bench binaries: medians of runs taken in turns.

use std::time::{Duration, Instant};

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

pub fn timed(action: impl FnOnce()) -> Duration {
    let start = Instant::now();
    action();
    start.elapsed()
}

/// Runs the contestants in turns, each `runs_per_turn` times in a row (its first run of a turn
/// is a warm-up, so every contestant is timed with its own data in cache), `turns` times, and
/// returns each one's median.
pub fn in_turns(
    turns: usize,
    runs_per_turn: usize,
    contestants: &mut [&mut dyn FnMut() -> Duration],
) -> Vec<Duration> {
    let mut times = vec![Vec::new(); contestants.len()];
    for _ in 0..turns {
        for (contestant, record) in contestants.iter_mut().zip(&mut times) {
            contestant();
            record.extend((1..runs_per_turn).map(|_| contestant()));
        }
    }
    times.into_iter().map(median).collect()
}
