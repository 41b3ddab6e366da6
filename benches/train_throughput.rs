//! One table: every level's SGD step of MLP [784, 256, 10] in f32, against the GEMM floor.
//!
//! ```sh
//! cargo bench --bench train_throughput
//! ```
//!
//! For each batch size and thread count (a rayon pool of 1 or 2 threads): the median time of a
//! training step on MNIST images, samples/s, GFLOP/s, and the step's speed as a fraction of the
//! *GEMM floor*: the same five matrix products alone, through matrixmultiply's sgemm (ndarray's
//! `general_mat_mul`, a direct call), with the two big ones split in two halves on rayon when
//! the pool has two threads, as level03 does. Then whole shuffled epochs over the 60,000
//! training images at batch 128 (batch gathering included) against the floor of the same
//! epoch's products.
//!
//! The floor and the levels are measured in turns (floor, level02, level03, floor, ...), so a
//! machine whose speed drifts (a shared virtual machine) slows them alike; each figure is the
//! median of its turns.
//!
//! FLOPs per step, counting what level03 computes (no input gradient for the first layer):
//! forward 2B(784·256 + 256·10), backward dW0 2B·784·256, dW1 2B·256·10, dL/dh 2B·10·256:
//! 818,176 · B in all.

mod common;

use std::time::Duration;

use common::{in_turns, pool, timed};

use backprop_core::init::seeded_rng;
use backprop_core::mnist::{Dataset, load_mnist};
use backprop_core::{Level, MlpSpec, Model, Targets};
use level01::Level01;
use level02::Level02;
use level03::Level03;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rand::seq::SliceRandom;

const FLOPS_PER_SAMPLE: f64 = 818_176.0;
const STEP_TURNS: usize = 10;
const STEPS_PER_TURN: usize = 11;
const EPOCH_TURNS: usize = 5;
const EPOCH_BATCH: usize = 128;

/// `C <- A B` (beta 0), split in halves by rows on rayon when asked.
fn sgemm(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    split: bool,
) {
    if split {
        let middle = a.nrows() / 2;
        let (a_top, a_bottom) = a.split_at(Axis(0), middle);
        let (mut c_top, mut c_bottom) = c.split_at(Axis(0), middle);
        rayon::join(
            || general_mat_mul(1.0, &a_top, &b, 0.0, &mut c_top),
            || general_mat_mul(1.0, &a_bottom, &b, 0.0, &mut c_bottom),
        );
    } else {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    }
}

/// The five products of a step, alone, on buffers of the step's shapes.
struct GemmFloor {
    x: Array2<f32>,
    w0: Array2<f32>,
    w1: Array2<f32>,
    hidden: Array2<f32>,
    logits: Array2<f32>,
    grad_w0: Array2<f32>,
    grad_w1: Array2<f32>,
    grad_hidden: Array2<f32>,
}

impl GemmFloor {
    fn new(images: &Array2<f32>, batch: usize) -> Self {
        GemmFloor {
            x: images.slice(s![..batch, ..]).to_owned(),
            w0: Array2::from_elem((784, 256), 0.01),
            w1: Array2::from_elem((256, 10), 0.01),
            hidden: Array2::zeros((batch, 256)),
            logits: Array2::zeros((batch, 10)),
            grad_w0: Array2::zeros((784, 256)),
            grad_w1: Array2::zeros((256, 10)),
            grad_hidden: Array2::zeros((batch, 256)),
        }
    }

    /// One step's products on the first `batch` rows.
    fn products(&mut self, batch: usize) {
        let split = rayon::current_num_threads() > 1;
        let x = self.x.slice(s![..batch, ..]);
        let mut hidden = self.hidden.slice_mut(s![..batch, ..]);
        sgemm(x, self.w0.view(), hidden.view_mut(), split); //                  x W0      (B, 256)
        let mut logits = self.logits.slice_mut(s![..batch, ..]);
        sgemm(hidden.view(), self.w1.view(), logits.view_mut(), false); //      h W1      (B, 10)
        sgemm(hidden.t(), logits.view(), self.grad_w1.view_mut(), false); //    h^T g1    (256, 10)
        let mut grad_hidden = self.grad_hidden.slice_mut(s![..batch, ..]);
        sgemm(logits.view(), self.w1.t(), grad_hidden.view_mut(), false); //    g1 W1^T   (B, 256)
        sgemm(x.t(), grad_hidden.view(), self.grad_w0.view_mut(), split); //    x^T g0    (784, 256)
    }
}

fn step_of<'a, L: Level<f32>>(data: &'a Dataset, batch: usize) -> impl FnMut() -> Duration + 'a {
    let mut model = L::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));
    let images = data.images.slice(s![..batch, ..]);
    let targets = &data.labels[..batch];
    move || {
        timed(|| {
            model.train_step(images, Targets::Classes(targets), 0.01);
        })
    }
}

/// A shuffled epoch, gathering each batch's rows into one reused buffer.
fn epoch_of<'a, L: Level<f32>>(data: &'a Dataset) -> impl FnMut() -> Duration + 'a {
    let mut model = L::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = seeded_rng(5);
    let mut images = Array2::<f32>::zeros((EPOCH_BATCH, 784));
    let mut labels = vec![0; EPOCH_BATCH];
    move || {
        timed(|| {
            order.shuffle(&mut rng);
            for chunk in order.chunks(EPOCH_BATCH) {
                for (row, &index) in chunk.iter().enumerate() {
                    images.row_mut(row).assign(&data.images.row(index));
                    labels[row] = data.labels[index];
                }
                let rows = chunk.len();
                let batch = images.slice(s![..rows, ..]);
                model.train_step(batch, Targets::Classes(&labels[..rows]), 0.01);
            }
        })
    }
}

fn row(level: &str, batch: usize, threads: usize, time: Duration, samples: usize, floor: Duration) {
    let seconds = time.as_secs_f64();
    println!(
        "| {level:<8} | {batch:>5} | {threads:>7} | {:>12.1} | {:>9.0} | {:>7.1} | {:>12.2} |",
        seconds * 1e6,
        samples as f64 / seconds,
        FLOPS_PER_SAMPLE * samples as f64 / seconds / 1e9,
        floor.as_secs_f64() / seconds,
    );
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a list of tests: there are none
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let data = load_mnist(&dir)
        .unwrap_or_else(|error| panic!("{error}"))
        .train;
    println!("MLP [784, 256, 10], f32, one SGD step on MNIST; floor = the same 5 products alone");
    println!("| level    | batch | threads |    us / step | samples/s | GFLOP/s | floor / time |");
    println!("|----------|------:|--------:|-------------:|----------:|--------:|-------------:|");
    for threads in [1, 2] {
        for batch in [32, 64, 128, 256] {
            pool(threads).install(|| {
                let mut floor = GemmFloor::new(&data.images, batch);
                let mut floor_step = || timed(|| floor.products(batch));
                let mut level02 = step_of::<Level02>(&data, batch);
                let mut level03 = step_of::<Level03>(&data, batch);
                let medians = in_turns(
                    STEP_TURNS,
                    STEPS_PER_TURN,
                    &mut [&mut floor_step, &mut level02, &mut level03],
                );
                row("floor", batch, threads, medians[0], batch, medians[0]);
                row("level02", batch, threads, medians[1], batch, medians[0]);
                row("level03", batch, threads, medians[2], batch, medians[0]);
                if batch == 32 && threads == 1 {
                    let level01 = in_turns(1, 4, &mut [&mut step_of::<Level01>(&data, batch)]);
                    row("level01", batch, threads, level01[0], batch, medians[0]);
                }
            });
        }
    }
    println!();
    println!(
        "Epoch: {} shuffled images at batch {EPOCH_BATCH}, median of {EPOCH_TURNS} timed epochs \
         (each after a warm-up epoch)",
        data.len()
    );
    println!("| level    | batch | threads |   us / epoch | samples/s | GFLOP/s | floor / time |");
    println!("|----------|------:|--------:|-------------:|----------:|--------:|-------------:|");
    for threads in [1, 2] {
        pool(threads).install(|| {
            let mut floor = GemmFloor::new(&data.images, EPOCH_BATCH);
            let mut floor_epoch = || {
                timed(|| {
                    for start in (0..data.len()).step_by(EPOCH_BATCH) {
                        floor.products(EPOCH_BATCH.min(data.len() - start));
                    }
                })
            };
            let mut level02 = epoch_of::<Level02>(&data);
            let mut level03 = epoch_of::<Level03>(&data);
            let medians = in_turns(
                EPOCH_TURNS,
                2,
                &mut [&mut floor_epoch, &mut level02, &mut level03],
            );
            let samples = data.len();
            row(
                "floor",
                EPOCH_BATCH,
                threads,
                medians[0],
                samples,
                medians[0],
            );
            row(
                "level02",
                EPOCH_BATCH,
                threads,
                medians[1],
                samples,
                medians[0],
            );
            row(
                "level03",
                EPOCH_BATCH,
                threads,
                medians[2],
                samples,
                medians[0],
            );
        });
    }
}
