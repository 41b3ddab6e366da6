//! One table: every built-in level's SGD step of MLP [784, 256, 10] in f32, against the GEMM
//! floor, then whole shuffled epochs (the tables and how they are measured:
//! `backprop::bench`).
//!
//! ```sh
//! cargo bench --bench train_throughput                  # every table
//! cargo bench --bench train_throughput -- level03/128   # only the rows whose name has it
//! cargo bench --bench train_throughput -- --save-baseline before
//! cargo bench --bench train_throughput -- --baseline before   # each row's change
//! ```
//!
//! Row names: `step/LEVEL/BATCH/THREADS`, `epoch/LEVEL/128/THREADS`,
//! `optimizer/level03/128/THREADS`; a kept row brings its floor along.

use backprop::bench::{
    Contestant, FLOPS_PER_SAMPLE, Plan, finish, in_turns, mnist_train, pool, quick_row, record,
    tables, timed,
};
use backprop::levels::{BuiltinLevel, WithLevel};
use backprop_core::mnist::Dataset;
use backprop_core::optim::{Adam, AnyOptimizer, Sgd};
use backprop_core::{Level, MlpSpec, Model, Targets};
use level03::Level03;
use ndarray::s;

/// A built-in level's row.
struct RowOf;

impl WithLevel for RowOf {
    type Output = Contestant;
    fn run<L: Level<f32> + Level<f64>>(self) -> Contestant {
        Contestant::of::<L>()
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` under nextest asks for a list of tests: there are none
    }
    let (plan, data) = (Plan::from_args(), mnist_train());
    // level01 is too slow for turns: one row at batch 32 on one thread, after the tables.
    let (loops, fast): (Vec<BuiltinLevel>, Vec<BuiltinLevel>) = BuiltinLevel::ALL
        .into_iter()
        .partition(|&level| level == BuiltinLevel::Loops);
    let contestants: Vec<Contestant> = fast
        .into_iter()
        .map(|level| level.dispatch(RowOf))
        .collect();
    tables(&plan, &data, &contestants);
    println!();
    println!("The loops level, once (1 turn of 4 steps) against the floor:");
    backprop::bench::header("us / step");
    for level in loops {
        quick_row(&plan, &data, level.dispatch(RowOf), 32);
    }
    println!();
    optimizer_table(&plan, &data, 128);
    finish(&plan);
}

/// level03's step with each optimizer, in turns; the last column is plain SGD's time over this
/// one's (1.00: as fast as SGD).
fn optimizer_table(plan: &Plan, data: &Dataset, batch: usize) {
    println!("level03, batch {batch}: one step with each optimizer (in turns)");
    println!("| optimizer | threads |    us / step | GFLOP/s | sgd / time |");
    println!("|-----------|--------:|-------------:|--------:|-----------:|");
    let optimizers: [(&str, AnyOptimizer<f32>); 4] = [
        ("sgd", AnyOptimizer::Sgd(Sgd::new(0.01))),
        (
            "momentum",
            AnyOptimizer::Sgd(Sgd::new(0.01).with_momentum(0.9)),
        ),
        (
            "nesterov",
            AnyOptimizer::Sgd(Sgd::new(0.01).with_momentum(0.9).with_nesterov()),
        ),
        ("adam", AnyOptimizer::Adam(Adam::new(1e-3))),
    ];
    let images = data.images.slice(s![..batch, ..]);
    let targets = Targets::Classes(&data.labels[..batch]);
    for &threads in &plan.threads {
        if !plan.runs(&format!("optimizer/level03/{batch}/{threads}")) {
            continue;
        }
        pool(threads).install(|| {
            let mut timers: Vec<Box<dyn FnMut() -> std::time::Duration>> = optimizers
                .iter()
                .map(|(_, optimizer)| {
                    let mut optimizer = optimizer.clone();
                    let spec = MlpSpec::classifier(&[784, 256, 10], 1);
                    let mut model = Level03::mlp_from_spec(&spec);
                    Box::new(move || {
                        timed(|| {
                            model.train_step(images, targets, &mut optimizer);
                        })
                    }) as Box<dyn FnMut() -> std::time::Duration>
                })
                .collect();
            let mut contestants: Vec<&mut dyn FnMut() -> std::time::Duration> =
                timers.iter_mut().map(|timer| timer.as_mut() as _).collect();
            let medians = in_turns(plan.step_turns.0, plan.step_turns.1, &mut contestants);
            for ((name, _), time) in optimizers.iter().zip(&medians) {
                record(format!("optimizer/level03/{name}/{batch}/{threads}"), *time);
                let seconds = time.as_secs_f64();
                println!(
                    "| {name:<9} | {threads:>7} | {:>12.1} | {:>7.1} | {:>10.3} |",
                    seconds * 1e6,
                    FLOPS_PER_SAMPLE * batch as f64 / seconds / 1e9,
                    medians[0].as_secs_f64() / seconds
                );
            }
        });
    }
}
