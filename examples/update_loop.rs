//! The optimizers' update loop alone, per parameter: what an SGD, Nesterov or Adam update costs
//! beside the products, and whether it is bound by memory or by arithmetic:
//! `cargo run --release --features tools --example update_loop -- [THREADS]` (default 1).
//!
//! For each optimizer and weight size, `FusedStep`'s `TensorUpdate::apply` on one `(rows, 256)`
//! weight, as level03 applies it inside its backward pass, repeated until about 4 million
//! parameters are updated; the median and the fastest of 7 such runs, in ns per parameter, on a
//! rayon pool of THREADS threads (a weight of at least 2^17 parameters is cut across them, as in
//! training). The sizes put the weight, its gradient and the optimizer's state in the first-level
//! cache (8 rows), the second-level cache (64 rows) and beyond it (784 rows: the first layer of
//! MLP [784, 256, 10]). A loop that costs the same per parameter at every size is bound by its
//! arithmetic, not by memory.

use std::time::Instant;

use backprop_core::optim::{Adam, Optimizer, Sgd, Tensor};
use ndarray::Array2;

const COLUMNS: usize = 256;
const ROWS: [usize; 3] = [8, 64, 784];
const RUNS: usize = 7;
const PARAMETERS_PER_RUN: usize = 1 << 22;

/// Median and fastest ns per parameter of `optimizer`'s update of a `(rows, COLUMNS)` weight.
fn time_update(optimizer: &mut impl Optimizer<f32>, rows: usize) -> (f64, f64) {
    let mut weight = Array2::<f32>::from_elem((rows, COLUMNS), 0.01);
    let grad = Array2::from_shape_fn((rows, COLUMNS), |(r, c)| {
        ((r * 31 + c * 7) % 13) as f32 * 1e-3 - 6e-3
    });
    let repeats = (PARAMETERS_PER_RUN / weight.len()).max(1);
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..repeats {
                let mut step = optimizer.fused_step().expect("a fused step");
                step.prepare(0, weight.dim(), COLUMNS);
                step.tensor(0, Tensor::Weight)
                    .apply(weight.view_mut(), grad.view());
            }
            start.elapsed().as_secs_f64() * 1e9 / (repeats * weight.len()) as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], times[0])
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .map_or(1, |arg| arg.parse().expect("THREADS: a number"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    println!(
        "update loop alone, {threads} thread(s): ns per parameter, median (fastest) of {RUNS}"
    );
    println!("| optimizer | parameters | KiB touched | median | fastest |");
    println!("|-----------|-----------:|------------:|-------:|--------:|");
    pool.install(|| {
        for rows in ROWS {
            let parameters = rows * COLUMNS;
            // Arrays read and written per parameter: weight and gradient, plus the state.
            let kib_of = |arrays: usize| parameters * 4 * arrays / 1024;
            let mut sgd = Sgd::<f32>::new(0.01);
            let mut nesterov = Sgd::<f32>::new(0.01).with_momentum(0.9).with_nesterov();
            let mut adam = Adam::<f32>::new(1e-3);
            let results = [
                ("sgd", kib_of(2), time_update(&mut sgd, rows)),
                ("nesterov", kib_of(3), time_update(&mut nesterov, rows)),
                ("adam", kib_of(4), time_update(&mut adam, rows)),
            ];
            for (name, kib, (median, fastest)) in results {
                println!(
                    "| {name:<9} | {parameters:>10} | {kib:>11} | {median:>6.3} | {fastest:>7.3} |"
                );
            }
        }
    });
}
