//! What watching the gradients costs: level03's SGD step of MLP [784, 256, 10] in f32 at batch
//! 128, alone and watched as `train --watch-gradients` does ([`weights_of`] before the step,
//! [`step_stats`] and the update ratio measured after it: every layer's norms, update ratio, dead
//! units and largest logit), and with [`clip_grad_norm`] before the update.
//!
//! ```sh
//! cargo bench --bench gradient_stats            # 1 and 2 threads
//! cargo bench --bench gradient_stats -- stats/2 # 2 threads only
//! ```
//!
//! The contestants run in turns (see `backprop::bench::in_turns`); each figure is a median. The input
//! gradient norms are taken inside level03's backward pass in every contestant (one pass over a
//! `(128, 256)` buffer); the last row times that pass alone.

use std::hint::black_box;
use std::time::Duration;

use backprop::bench::{FLOPS_PER_SAMPLE, Plan, in_pool, in_turns, mnist_train, timed};
use backprop_core::flow::{clip_grad_norm, step_stats, sum_of_squares, weights_of};
use backprop_core::optim::{Optimizer, Sgd};
use backprop_core::{Level, MlpSpec, Model, Targets};
use level03::Level03;
use ndarray::{Array2, s};

const BATCH: usize = 128;
const LEARNING_RATE: f64 = 0.01;
const TURNS: usize = 30;
const STEPS_PER_TURN: usize = 11;

fn row(what: &str, threads: usize, time: Duration, baseline: Duration) {
    let micros = time.as_secs_f64() * 1e6;
    let gflops = FLOPS_PER_SAMPLE * BATCH as f64 / time.as_secs_f64() / 1e9;
    let overhead = 100.0 * (time.as_secs_f64() / baseline.as_secs_f64() - 1.0);
    println!("| {what:<36} | {threads:>7} | {micros:>10.1} | {gflops:>7.1} | {overhead:>+7.1}% |");
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a list of tests: there are none
    }
    let data = mnist_train();
    let images = data.images.slice(s![..BATCH, ..]);
    let targets = Targets::Classes(&data.labels[..BATCH]);
    let new_model = || Level03::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));

    println!("level03, MLP [784, 256, 10], f32, batch {BATCH}: one SGD step on MNIST");
    println!(
        "| step                                 | threads |  us / step | GFLOP/s | overhead |"
    );
    println!(
        "|--------------------------------------|--------:|-----------:|--------:|---------:|"
    );
    // Under `cargo bench` (`--bench`): 1 and 2 threads, in turns of 11 steps; as a test, one
    // short turn. A filter argument keeps the thread counts whose name has it (`stats/2`).
    let plan = Plan::from_args();
    let turns = if plan.threads.len() > 1 { TURNS } else { 1 };
    for threads in [1, 2] {
        if !plan.runs(&format!("stats/{threads}")) || (turns == 1 && threads > 1) {
            continue;
        }
        in_pool(threads, || {
            let (mut plain, mut watched, mut clipped) = (new_model(), new_model(), new_model());
            let (mut sgd_plain, mut sgd_watched, mut sgd_clipped) = (
                Sgd::new(LEARNING_RATE),
                Sgd::new(LEARNING_RATE),
                Sgd::new(LEARNING_RATE),
            );
            let mut train_step = || {
                timed(|| {
                    plain.train_step(images, targets, &mut sgd_plain);
                })
            };
            let mut with_stats = || {
                timed(|| {
                    // As `train --watch-gradients` does: the weights before the step, then the
                    // statistics and the update ratio measured on the step taken.
                    let before = weights_of(&mut watched);
                    watched.train_step(images, targets, &mut sgd_watched);
                    let mut stats = step_stats(&mut watched);
                    stats.measure_update(&mut watched, &before);
                    black_box(stats);
                })
            };
            let mut with_clipping = || {
                timed(|| {
                    clipped.zero_grad();
                    clipped.forward(images);
                    clipped.loss(targets);
                    clipped.backward_params_only();
                    clip_grad_norm(&mut clipped, 1.0);
                    sgd_clipped.step(&mut clipped);
                })
            };
            let hidden_grad = Array2::<f32>::from_elem((BATCH, 256), 0.5);
            let mut norm_alone = || {
                timed(|| {
                    black_box(sum_of_squares(&hidden_grad).sqrt());
                })
            };
            let medians = in_turns(
                turns,
                STEPS_PER_TURN,
                &mut [
                    &mut train_step,
                    &mut with_stats,
                    &mut with_clipping,
                    &mut norm_alone,
                ],
            );
            row("train_step", threads, medians[0], medians[0]);
            row("train_step + step_stats", threads, medians[1], medians[0]);
            row(
                "backward, clip_grad_norm, update",
                threads,
                medians[2],
                medians[0],
            );
            let norm = medians[3].as_secs_f64() * 1e6;
            let share = 100.0 * medians[3].as_secs_f64() / medians[0].as_secs_f64();
            println!(
                "| (inside backward) ‖dL/dh‖, one layer | {threads:>7} | {norm:>10.1} |       - | {share:>6.1}%* |"
            );
        });
    }
    println!("* of the plain train_step, which already includes it");
}
