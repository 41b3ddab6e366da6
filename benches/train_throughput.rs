//! One table: every built-in level's SGD step of MLP [784, 256, 10] in f32, against the GEMM
//! floor, then whole shuffled epochs (the tables and how they are measured:
//! `backprop::bench`).
//!
//! ```sh
//! cargo bench --bench train_throughput                  # every table
//! cargo bench --bench train_throughput -- level03/128   # only the rows whose name has it
//! cargo bench --bench train_throughput -- step/level03 epoch/level03   # either text
//! cargo bench --bench train_throughput -- --save-baseline before
//! cargo bench --bench train_throughput -- --baseline before   # each row's change
//! cargo bench --bench train_throughput -- --turns 1 --json out.json   # one turn, medians out
//! ```
//!
//! Row names: `step/LEVEL/BATCH/THREADS`, `epoch/LEVEL/128/THREADS`,
//! `optimizer/level03/128/THREADS`, `norm/level03/128/THREADS` (the step with batch norm, layer
//! norm, batch norm + dropout 0.2), `cnn/LEVEL/64/THREADS` (the `--arch lenet` step; level01 on
//! one thread only); a kept row brings its floor along.

use std::time::Duration;

use backprop::arch::Arch;
use backprop::bench::{
    Contestant, ContestantOf, FLOPS_PER_SAMPLE, NetworkFloor, Plan, finish, floor_cell, in_pool,
    in_turns, mnist_train, network_flops_per_sample, quick_row, record, tables, timed,
};
use backprop::levels::BuiltinLevel;
use backprop_core::optim::{Adam, AnyOptimizer, Sgd};
use backprop_core::{ImageShape, Level, MlpSpec, Model, Norm, Targets};
use backprop_data::mnist::Dataset;
use level01::Level01;
use level02::Level02;
use level03::Level03;
use ndarray::s;

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
        .map(|level| level.dispatch(ContestantOf))
        .collect();
    tables(&plan, &data, &contestants);
    if plan.runs("step/level01/32/1") {
        println!("The loops level, once (1 turn of 4 steps) against the floor:");
        backprop::bench::header("us / step");
        for level in loops {
            quick_row(&plan, &data, level.dispatch(ContestantOf), 32);
        }
        println!();
    }
    optimizer_table(&plan, &data, 128);
    layout_table(&plan, &data, 128);
    cnn_table(&plan, &data, 64);
    finish(&plan);
}

/// The CNN preset (`--arch lenet`): level02's and level03's SGD step in turns with the GEMM
/// floor of the same network (its im2col products alone, [`NetworkFloor`]), then level01's
/// once. Rows `cnn/LEVEL/BATCH/THREADS`.
fn cnn_table(plan: &Plan, data: &Dataset, batch: usize) {
    let runs = |level: &str, threads: usize| plan.runs(&format!("cnn/{level}/{batch}/{threads}"));
    let levels = ["level02", "level03"];
    if !plan
        .threads
        .iter()
        .any(|&threads| levels.iter().any(|level| runs(level, threads)) || runs("level01", threads))
    {
        return;
    }
    let spec = "lenet"
        .parse::<Arch>()
        .and_then(|arch| arch.classifier(ImageShape::new(1, data.rows, data.cols), 10))
        .expect("the lenet preset fits MNIST")
        .with_seed(1);
    let flops = network_flops_per_sample(&spec) * batch as f64;
    println!(
        "CNN lenet ({}), f32, batch {batch}, one SGD step; floor = its products alone \
         ({:.1} MFLOP a step)",
        spec.layers()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        flops / 1e6
    );
    println!("| level    | threads |    us / step | GFLOP/s | floor / time |");
    println!("|----------|--------:|-------------:|--------:|-------------:|");
    let images = data.images.slice(s![..batch, ..]);
    let targets = Targets::Classes(&data.labels[..batch]);
    let print_row = |level: &str, threads: usize, time: Duration, floor: Duration| {
        let name = format!("cnn/{level}/{batch}/{threads}");
        record(name.clone(), time);
        let seconds = time.as_secs_f64();
        println!(
            "| {level:<8} | {threads:>7} | {:>12.1} | {:>7.1} | {:>12} |",
            seconds * 1e6,
            flops / seconds / 1e9,
            floor_cell(&name, floor, time)
        );
    };
    for &threads in &plan.threads {
        in_pool(threads, || {
            let mut floor = NetworkFloor::new(&spec, batch);
            let mut level02 = <Level02 as Level<f32>>::network_from_spec(&spec);
            let mut level03 = <Level03 as Level<f32>>::network_from_spec(&spec);
            let (mut sgd02, mut sgd03) = (Sgd::new(0.01), Sgd::new(0.01));
            let mut timers: Vec<Box<dyn FnMut() -> Duration + '_>> = vec![
                Box::new(|| timed(|| floor.step())),
                Box::new(|| {
                    timed(|| {
                        level02.train_step(images, targets, &mut sgd02);
                    })
                }),
                Box::new(|| {
                    timed(|| {
                        level03.train_step(images, targets, &mut sgd03);
                    })
                }),
            ];
            let mut contestants: Vec<&mut dyn FnMut() -> Duration> =
                timers.iter_mut().map(|timer| timer.as_mut() as _).collect();
            let medians = in_turns(plan.step_turns.0, plan.step_turns.1, &mut contestants);
            for (level, time) in levels.iter().zip(&medians[1..]) {
                if runs(level, threads) {
                    print_row(level, threads, *time, medians[0]);
                }
            }
            print_row("floor", threads, medians[0], medians[0]);
        });
    }
    if runs("level01", 1) {
        // The loops level once: 1 turn of 2 steps (the first a warm-up) on one thread.
        in_pool(1, || {
            let mut floor = NetworkFloor::new(&spec, batch);
            let mut level01 = <Level01 as Level<f32>>::network_from_spec(&spec);
            let mut sgd = Sgd::new(0.01);
            let mut timers: Vec<Box<dyn FnMut() -> Duration + '_>> = vec![
                Box::new(|| timed(|| floor.step())),
                Box::new(|| {
                    timed(|| {
                        level01.train_step(images, targets, &mut sgd);
                    })
                }),
            ];
            let mut contestants: Vec<&mut dyn FnMut() -> Duration> =
                timers.iter_mut().map(|timer| timer.as_mut() as _).collect();
            let medians = in_turns(1, 2, &mut contestants);
            print_row("level01", 1, medians[1], medians[0]);
        });
    }
    println!();
}

/// level03's step with each optimizer, in turns; the last column is plain SGD's time over this
/// one's (1.00: as fast as SGD).
fn optimizer_table(plan: &Plan, data: &Dataset, batch: usize) {
    let plain = MlpSpec::classifier(&[784, 256, 10], 1);
    let sgd = AnyOptimizer::Sgd(Sgd::new(0.01));
    let rows: [(&str, MlpSpec, AnyOptimizer<f32>); 4] = [
        ("sgd", plain.clone(), sgd),
        (
            "momentum",
            plain.clone(),
            AnyOptimizer::Sgd(Sgd::new(0.01).with_momentum(0.9)),
        ),
        (
            "nesterov",
            plain.clone(),
            AnyOptimizer::Sgd(Sgd::new(0.01).with_momentum(0.9).with_nesterov()),
        ),
        ("adam", plain, AnyOptimizer::Adam(Adam::new(1e-3))),
    ];
    let title = format!("level03, batch {batch}: one step with each optimizer (in turns)");
    level03_rows(plan, data, (batch, &title), ("optimizer", "sgd"), &rows);
}

/// level03's SGD step with normalization and dropout after the hidden layer, in turns; the
/// last column is the plain step's time over this one's.
fn layout_table(plan: &Plan, data: &Dataset, batch: usize) {
    let plain = MlpSpec::classifier(&[784, 256, 10], 1);
    let with = |norm: Norm, dropout: f64| MlpSpec {
        norm,
        dropout,
        ..plain.clone()
    };
    let sgd = AnyOptimizer::Sgd(Sgd::new(0.01));
    let rows: [(&str, MlpSpec, AnyOptimizer<f32>); 4] = [
        ("plain", plain.clone(), sgd.clone()),
        ("batch", with(Norm::Batch, 0.0), sgd.clone()),
        ("layer", with(Norm::Layer, 0.0), sgd.clone()),
        ("batch+dropout", with(Norm::Batch, 0.2), sgd),
    ];
    let title =
        format!("level03, batch {batch}: one SGD step with normalization and dropout (in turns)");
    level03_rows(plan, data, (batch, &title), ("norm", "plain"), &rows);
}

/// One table of level03 steps in turns under `title`: a row per `(name, network, optimizer)`,
/// named `{table}/level03/{name}/{batch}/{threads}`; the last column is the first row's time
/// over each row's. Nothing when the filter keeps no row.
fn level03_rows(
    plan: &Plan,
    data: &Dataset,
    (batch, title): (usize, &str),
    (table, first): (&str, &str),
    rows: &[(&str, MlpSpec, AnyOptimizer<f32>)],
) {
    let runs = |threads: &usize| plan.runs(&format!("{table}/level03/{batch}/{threads}"));
    if !plan.threads.iter().any(runs) {
        return;
    }
    println!("{title}");
    println!("| {table:<13} | threads |    us / step | GFLOP/s | {first} / time |");
    println!("|---------------|--------:|-------------:|--------:|-----------:|");
    let images = data.images.slice(s![..batch, ..]);
    let targets = Targets::Classes(&data.labels[..batch]);
    for &threads in plan.threads.iter().filter(|threads| runs(threads)) {
        in_pool(threads, || {
            let mut timers: Vec<Box<dyn FnMut() -> std::time::Duration>> = rows
                .iter()
                .map(|(_, spec, optimizer)| {
                    let mut optimizer = optimizer.clone();
                    let mut model = Level03::mlp_from_spec(spec);
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
            for ((name, ..), time) in rows.iter().zip(&medians) {
                record(format!("{table}/level03/{name}/{batch}/{threads}"), *time);
                let seconds = time.as_secs_f64();
                println!(
                    "| {name:<13} | {threads:>7} | {:>12.1} | {:>7.1} | {:>10.3} |",
                    seconds * 1e6,
                    FLOPS_PER_SAMPLE * batch as f64 / seconds / 1e9,
                    medians[0].as_secs_f64() / seconds
                );
            }
        });
    }
    println!();
}
