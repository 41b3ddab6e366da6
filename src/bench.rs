//! The training-throughput tables: every level's step of MLP [784, 256, 10] in f32 against the
//! GEMM floor, then whole shuffled epochs. `cargo bench --bench train_throughput` prints them
//! for the built-in levels; a learner's crate prints them with its own level beside level02 and
//! level03 through [`main`]:
//!
//! ```no_run
//! // The body of `fn main` in crates/my-level/benches/throughput.rs (harness = false), run as
//! // `cargo bench -p my-level`; your marker type in place of Level02:
//! backprop::bench::main::<level02::Level02>();
//! ```
//!
//! For each batch size and thread count (a rayon pool of 1 or 2 threads): the median time of a
//! training step on MNIST images, samples/s, GFLOP/s, and the step's speed as a fraction of the
//! *GEMM floor*: the same five matrix products alone, through matrixmultiply's sgemm (ndarray's
//! `general_mat_mul`, a direct call), cut as level03 cuts them: the first layer's forward
//! product as two products over the halves of its sum (on one thread too), its gradient in
//! halves when the pool has two threads, and the products of both halves computed on the
//! two threads. The floor and each level run with the pool's other workers polling for work
//! ([`with_workers_awake`], as in `train`). Then whole shuffled epochs over the 60,000
//! training images at batch 128 (batch gathering included: the next batch gathered beside the
//! step, as `train` does, on 1 thread by a helper thread, on 2 by the other rayon worker
//! between the step's forks) against the floor of the same epoch's products.
//!
//! The floor and the levels are measured in turns (floor, level02, level03, floor, ...), so a
//! machine whose speed drifts (a shared virtual machine) slows them alike; each figure is the
//! median of its turns.
//!
//! FLOPs per step, counting what level03 computes (no input gradient for the first layer):
//! forward 2B(784·256 + 256·10), backward dW0 2B·784·256, dW1 2B·256·10, dL/dh 2B·10·256:
//! 818,176 · B in all.
//!
//! As with criterion, `-- --save-baseline NAME` keeps the run's medians (in
//! `target/backprop-baselines/`) and `-- --baseline NAME` prints each row's change against them;
//! `-- --json PATH` writes them to PATH and `-- --turns N` sets the number of turns
//! (`reference/bench_side_by_side.py` runs one turn at a time, in turns with PyTorch).
//!
//! Run without `--bench` (as `cargo test --benches` does), every table shrinks to one quick
//! turn at batch 64 on one thread and an epoch of 2,048 images: a smoke test, not a
//! measurement.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::levels::{BuiltinLevel, WithLevel};
use backprop_core::network::{LayerPlan, NetSpec};
use backprop_core::optim::Sgd;
use backprop_core::{Level, MlpSpec, Model, Targets};
use backprop_data::batches::Batches;
use backprop_data::mnist::{Dataset, load_mnist};
use backprop_data::workers::with_workers_awake;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};

/// FLOPs of one step per sample (see the module docs).
pub const FLOPS_PER_SAMPLE: f64 = 818_176.0;
/// The batch of the epoch table.
pub const EPOCH_BATCH: usize = 128;

/// The median of `times`.
///
/// # Panics
/// If `times` is empty.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Runs `work` in a new rayon pool of `threads` threads, its other workers polling for work
/// while it runs ([`with_workers_awake`], as each epoch of `train` does): the floor and every
/// level of a table run in the same pool, so they pay alike for handing work to a thread.
pub fn in_pool<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(|| with_workers_awake(work))
}

/// How long `action` takes.
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

/// `C <- A B` (beta 0), cut in halves on rayon when asked, as level03 cuts its products other
/// than a layer's forward product: by rows, or by columns when A has at most a quarter as many
/// rows as B has columns.
fn sgemm(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    split: bool,
) {
    let (m, n) = c.dim();
    if !split {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        return;
    }
    let (cut, at) = if 4 * m > n {
        (Axis(0), m / 2)
    } else {
        (Axis(1), n / 2)
    };
    let ((a_first, a_rest), (b_first, b_rest)) = if cut == Axis(0) {
        (a.split_at(cut, at), (b, b))
    } else {
        ((a, a), b.split_at(cut, at))
    };
    let (mut c_first, mut c_rest) = c.split_at(cut, at);
    rayon::join(
        || general_mat_mul(1.0, &a_first, &b_first, 0.0, &mut c_first),
        || general_mat_mul(1.0, &a_rest, &b_rest, 0.0, &mut c_rest),
    );
}

/// The five products of a step, alone, on buffers of the step's shapes.
struct GemmFloor {
    x: Array2<f32>,
    w0: Array2<f32>,
    w1: Array2<f32>,
    hidden: Array2<f32>,
    /// The second half of the first product's sum.
    hidden_rest: Array2<f32>,
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
            hidden_rest: Array2::zeros((batch, 256)),
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
        // x W0 (B, 256) as level03 computes it: its sum over the 784 inputs cut in halves, one
        // into `hidden`, one into `hidden_rest` (on 1 thread as well; the addition of the two
        // is not a product, so the floor leaves it out).
        let (x_first, x_rest) = x.split_at(Axis(1), 392);
        let (w0_first, w0_rest) = self.w0.view().split_at(Axis(0), 392);
        let mut hidden_rest = self.hidden_rest.slice_mut(s![..batch, ..]);
        let mut first_half = || sgemm(x_first, w0_first, hidden.view_mut(), false);
        let mut rest_half = || sgemm(x_rest, w0_rest, hidden_rest.view_mut(), false);
        if split {
            rayon::join(first_half, rest_half);
        } else {
            first_half();
            rest_half();
        }
        let mut logits = self.logits.slice_mut(s![..batch, ..]);
        sgemm(hidden.view(), self.w1.view(), logits.view_mut(), false); //      h W1      (B, 10)
        sgemm(hidden.t(), logits.view(), self.grad_w1.view_mut(), false); //    h^T g1    (256, 10)
        let mut grad_hidden = self.grad_hidden.slice_mut(s![..batch, ..]);
        sgemm(logits.view(), self.w1.t(), grad_hidden.view_mut(), false); //    g1 W1^T   (B, 256)
        sgemm(x.t(), grad_hidden.view(), self.grad_w0.view_mut(), split); //    x^T g0    (784, 256)
    }

    /// One epoch's products over `samples` images.
    fn epoch(&mut self, samples: usize) {
        for start in (0..samples).step_by(EPOCH_BATCH) {
            self.products(EPOCH_BATCH.min(samples - start));
        }
    }
}

/// FLOPs of one training step of `spec` per sample, counting what a step must compute: each
/// weight layer's forward product and dW (2 multiply-adds' worth each), and its input gradient
/// except for a weight layer that reads the input itself (nothing needs dL/dinput).
pub fn network_flops_per_sample(spec: &NetSpec) -> f64 {
    let mut multiply_adds = 0usize;
    for (index, layer) in spec.plan().into_iter().enumerate() {
        let layer_adds = match layer {
            LayerPlan::Linear { fan_in, fan_out } => fan_in * fan_out,
            LayerPlan::Conv2d(geometry) => geometry.multiply_adds(),
            _ => continue,
        };
        let products = if index == 0 { 2 } else { 3 };
        multiply_adds += products * layer_adds;
    }
    2.0 * multiply_adds as f64
}

/// The matrix products of a network's training step alone, in the shapes level03 computes them
/// (a convolution's as its im2col products over the whole batch: `W^T cols`, `cols gcat^T`,
/// `W gcat`), on buffers of those shapes: the GEMM floor of the CNN table.
#[derive(Debug)]
pub struct NetworkFloor {
    /// Per weight layer: `(A, B, C)` of each product, as owned buffers.
    products: Vec<(Array2<f32>, Array2<f32>, Array2<f32>)>,
}

impl NetworkFloor {
    /// The products of `spec`'s step at `batch` rows.
    pub fn new(spec: &NetSpec, batch: usize) -> Self {
        let mut products = Vec::new();
        let mut add = |a: (usize, usize), b: (usize, usize)| {
            products.push((
                Array2::from_elem(a, 0.01f32),
                Array2::from_elem(b, 0.01f32),
                Array2::zeros((a.0, b.1)),
            ));
        };
        for (index, layer) in spec.plan().into_iter().enumerate() {
            let (rows, columns, outputs) = match layer {
                // x (B, in) W (in, out); dW = x^T g; dx = g W^T.
                LayerPlan::Linear { fan_in, fan_out } => (batch, fan_in, fan_out),
                // cols (K, B P) read as A^T = (B P, K) times W (K, out): the same shapes.
                LayerPlan::Conv2d(geometry) => {
                    let output = geometry.output();
                    (
                        batch * output.height * output.width,
                        geometry.fan_in(),
                        geometry.out_channels,
                    )
                }
                _ => continue,
            };
            add((rows, columns), (columns, outputs)); //   forward (rows, out)
            add((columns, rows), (rows, outputs)); //      dW (in, out)
            if index > 0 {
                add((rows, outputs), (outputs, columns)); // input gradient (rows, in)
            }
        }
        NetworkFloor { products }
    }

    /// Every product once, each cut in two on rayon when level03 would cut it.
    pub fn step(&mut self) {
        let threads = rayon::current_num_threads();
        for (a, b, c) in &mut self.products {
            let large = a.nrows() * a.ncols() * b.ncols() >= 1 << 20;
            sgemm(a.view(), b.view(), c.view_mut(), threads > 1 && large);
        }
    }
}

/// A timed action built for one data set and batch size.
type Timed<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// A row of the tables: a level's name, its step and its epoch.
#[derive(Debug, Clone, Copy)]
pub struct Contestant {
    /// The level's name.
    pub name: &'static str,
    step: for<'a> fn(&'a Dataset, usize) -> Timed<'a>,
    epoch: for<'a> fn(&'a Dataset) -> Timed<'a>,
}

impl Contestant {
    /// Level `L`'s row.
    pub fn of<L: Level<f32>>() -> Self {
        Contestant {
            name: L::NAME,
            step: step_of::<L>,
            epoch: epoch_of::<L>,
        }
    }
}

/// One plain SGD step of level `L` on the first `batch` images.
fn step_of<L: Level<f32>>(data: &Dataset, batch: usize) -> Timed<'_> {
    let mut model = L::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));
    let mut sgd = Sgd::new(0.01);
    let images = data.images.slice(s![..batch, ..]);
    let targets = &data.labels[..batch];
    Box::new(move || {
        timed(|| {
            model.train_step(images, Targets::Classes(targets), &mut sgd);
        })
    })
}

/// A shuffled epoch of level `L`, batches gathered as `train` gathers them
/// ([`Batches::for_each_batch`]: beside the step, by a helper thread on one rayon thread, by
/// the other workers between the step's forks on more).
fn epoch_of<L: Level<f32>>(data: &Dataset) -> Timed<'_> {
    let mut model = L::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));
    let mut sgd = Sgd::new(0.01);
    let mut batches = Batches::new(data, EPOCH_BATCH, 5);
    Box::new(move || {
        timed(|| {
            let _: ControlFlow<()> = batches.for_each_batch(|images, labels| {
                model.train_step(images, Targets::Classes(labels), &mut sgd);
                ControlFlow::Continue(())
            });
        })
    })
}

/// How much to measure: the full tables under `cargo bench`, a smoke run otherwise.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Batch sizes of the step table.
    pub batches: Vec<usize>,
    /// Thread counts of both tables.
    pub threads: Vec<usize>,
    /// Turns and runs per turn of a step.
    pub step_turns: (usize, usize),
    /// Turns of an epoch (2 runs each: a warm-up and a timed one).
    pub epoch_turns: usize,
    /// Training images per epoch.
    pub epoch_samples: usize,
    /// Only rows whose name (`step/level03/128/2`, `epoch/level03/128/1`: table, level, batch,
    /// threads) contains one of these texts (every row when empty); the floor of a row's table
    /// and size runs with it.
    pub filters: Vec<String>,
    /// `--save-baseline NAME`: keep this run's medians under NAME.
    pub save_baseline: Option<String>,
    /// `--baseline NAME`: compare this run's medians with those saved under NAME.
    pub baseline: Option<String>,
    /// `--json PATH`: write this run's medians (seconds, by row name) to PATH.
    pub json: Option<std::path::PathBuf>,
}

/// A bench binary's command line, as `cargo bench --bench NAME -- ARGS` passes it.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench",
    about = "Times the levels against the GEMM floor; every argument that is not a flag keeps \
             the rows whose name contains it (step/level03/128/2: table, level, batch, threads)"
)]
struct BenchArgs {
    /// Passed by `cargo bench`: the full plan (else a quick one, as under `cargo test`).
    #[arg(long)]
    bench: bool,
    /// Turns of steps and of epochs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    turns: Option<u64>,
    /// Steps per turn (the first a warm-up; at least 2).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,
    /// Write this run's medians (seconds, by row name) to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<std::path::PathBuf>,
    /// Keep this run's medians under this name.
    #[arg(long, value_name = "NAME")]
    save_baseline: Option<String>,
    /// Compare this run's medians with those saved under this name.
    #[arg(long, value_name = "NAME")]
    baseline: Option<String>,
    /// libtest's flags, which `cargo test --benches` may pass: accepted and ignored.
    #[arg(long, hide = true)]
    nocapture: bool,
    #[arg(long, hide = true)]
    exact: bool,
    #[arg(long, hide = true)]
    ignored: bool,
    #[arg(long, hide = true)]
    include_ignored: bool,
    #[arg(long, hide = true)]
    test_threads: Option<String>,
    #[arg(long, hide = true)]
    color: Option<String>,
    /// Only the rows whose name contains one of these texts (every row when none).
    filters: Vec<String>,
}

impl Plan {
    /// The full plan when the binary runs under `cargo bench` (which passes `--bench`), the
    /// quick one otherwise. Every argument that is not a flag filters the rows
    /// (`cargo bench --bench train_throughput -- step/level03 epoch/level03`); `--turns N` sets
    /// the number of turns (of steps and of epochs), `--runs N` the steps per turn (the first a
    /// warm-up), `--json PATH` writes the medians. A bad flag or value prints clap's error,
    /// naming it, and exits with status 2.
    pub fn from_args() -> Plan {
        Plan::parse(std::env::args()).unwrap_or_else(|error| error.exit())
    }

    /// The plan for these arguments (the program's name first).
    ///
    /// # Errors
    /// An unknown flag, a flag without its value, or `--turns` or `--runs` not a positive
    /// number.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Plan, clap::Error> {
        use clap::Parser as _;
        let args = BenchArgs::try_parse_from(args)?;
        let mut plan = if args.bench {
            Plan {
                batches: vec![32, 64, 128, 256],
                threads: vec![1, 2],
                step_turns: (10, 11),
                epoch_turns: 5,
                epoch_samples: 60_000,
                filters: Vec::new(),
                save_baseline: None,
                baseline: None,
                json: None,
            }
        } else {
            Plan {
                batches: vec![64],
                threads: vec![1],
                step_turns: (1, 2),
                epoch_turns: 1,
                epoch_samples: 2_048,
                filters: Vec::new(),
                save_baseline: None,
                baseline: None,
                json: None,
            }
        };
        if let Some(turns) = args.turns {
            (plan.step_turns.0, plan.epoch_turns) = (turns as usize, turns as usize);
        }
        if let Some(runs) = args.runs {
            plan.step_turns.1 = (runs as usize).max(2);
        }
        plan.filters = args.filters;
        (plan.json, plan.save_baseline, plan.baseline) =
            (args.json, args.save_baseline, args.baseline);
        Ok(plan)
    }

    /// Whether the row named `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|filter| name.contains(filter.as_str()))
    }
}

/// One table row: `| level | batch | threads | us | samples/s | GFLOP/s | floor / time |`,
/// recorded as `TABLE/LEVEL/BATCH/THREADS` for the baselines.
pub fn row(
    (table, level): (&str, &str),
    batch: usize,
    threads: usize,
    time: Duration,
    samples: usize,
    floor: Duration,
) {
    let seconds = time.as_secs_f64();
    let name = format!("{table}/{level}/{batch}/{threads}");
    record(name.clone(), time);
    println!(
        "| {level:<8} | {batch:>5} | {threads:>7} | {:>12.1} | {:>9.0} | {:>7.1} | {:>12} |",
        seconds * 1e6,
        samples as f64 / seconds,
        FLOPS_PER_SAMPLE * samples as f64 / seconds / 1e9,
        floor_cell(&name, floor, time),
    );
}

/// Above this floor / time a row beat the products it is made of: the floor's run was slowed
/// by something else on the machine, and the row's ratio means nothing.
pub const DISTURBED_FLOOR: f64 = 1.05;

/// Rows whose floor / time is above [`DISTURBED_FLOOR`], with the ratio, for [`finish`].
static DISTURBED: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());

/// The floor / time cell of row `name`: the ratio, marked `!` and kept for [`finish`]'s note
/// when it is above [`DISTURBED_FLOOR`].
pub fn floor_cell(name: &str, floor: Duration, time: Duration) -> String {
    let ratio = floor.as_secs_f64() / time.as_secs_f64();
    if ratio <= DISTURBED_FLOOR {
        return format!("{ratio:.2}");
    }
    DISTURBED
        .lock()
        .expect("no panic while recording")
        .push((name.to_string(), ratio));
    format!("{ratio:.2} !")
}

/// The note under the tables when a row came out faster than its floor, or nothing.
fn disturbed_note(rows: &[(String, f64)]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let listed: Vec<String> = rows
        .iter()
        .map(|(row, ratio)| format!("{row} ({ratio:.2})"))
        .collect();
    Some(format!(
        "! floor / time above {DISTURBED_FLOOR} in {}: a step cannot be faster than the products \
         it is made of, so the floor's run was disturbed (another process, a frequency change). \
         Rerun these rows on a quiet machine: cargo bench --bench train_throughput -- {}",
        listed.join(", "),
        rows.iter()
            .map(|(row, _)| row.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

/// The two header lines of a table whose time column is `unit`.
pub fn header(unit: &str) {
    println!("| level    | batch | threads | {unit:>12} | samples/s | GFLOP/s | floor / time |");
    println!("|----------|------:|--------:|-------------:|----------:|--------:|-------------:|");
}

/// The bundled MNIST training images.
///
/// # Panics
/// If they cannot be read (the message names the file).
pub fn mnist_train() -> Dataset {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    load_mnist(&dir)
        .unwrap_or_else(|error| panic!("{error}"))
        .train
}

/// Prints the step table and the epoch table for `contestants`, measured in turns with the
/// GEMM floor.
pub fn tables(plan: &Plan, data: &Dataset, contestants: &[Contestant]) {
    let kept = |table: &str, batches: &[usize]| {
        plan.threads.iter().any(|threads| {
            batches.iter().any(|batch| {
                contestants.iter().any(|contestant| {
                    plan.runs(&format!("{table}/{}/{batch}/{threads}", contestant.name))
                })
            })
        })
    };
    if kept("step", &plan.batches) {
        println!(
            "MLP [784, 256, 10], f32, one SGD step on MNIST; floor = the same 5 products alone"
        );
        header("us / step");
        for &threads in &plan.threads {
            for &batch in &plan.batches {
                in_pool(threads, || {
                    step_rows(plan, data, contestants, (batch, threads))
                });
            }
        }
        println!();
    }
    if kept("epoch", &[EPOCH_BATCH]) {
        let epoch_data = data.first(plan.epoch_samples);
        println!(
            "Epoch: {} shuffled images at batch {EPOCH_BATCH}, median of {} timed epochs \
             (each after a warm-up epoch); the next batch is gathered while the step runs, \
             as `train` does: on 1 thread by a second, helper thread, on 2 by the other rayon \
             worker between the step's forks",
            epoch_data.len(),
            plan.epoch_turns
        );
        header("us / epoch");
        for &threads in &plan.threads {
            in_pool(threads, || {
                epoch_rows(plan, &epoch_data, contestants, threads)
            });
        }
        println!();
    }
}

/// The floor's and each contestant's step at one batch size, in turns (only the contestants the
/// filter keeps, and the floor if any is kept).
fn step_rows(
    plan: &Plan,
    data: &Dataset,
    contestants: &[Contestant],
    (batch, threads): (usize, usize),
) {
    let contestants: Vec<Contestant> = contestants
        .iter()
        .filter(|contestant| plan.runs(&format!("step/{}/{batch}/{threads}", contestant.name)))
        .copied()
        .collect();
    if contestants.is_empty() {
        return;
    }
    let mut floor = GemmFloor::new(&data.images, batch);
    let mut timers: Vec<Timed<'_>> = vec![Box::new(|| timed(|| floor.products(batch)))];
    timers.extend(
        contestants
            .iter()
            .map(|contestant| (contestant.step)(data, batch)),
    );
    let medians = measure(plan.step_turns, &mut timers);
    row(
        ("step", "floor"),
        batch,
        threads,
        medians[0],
        batch,
        medians[0],
    );
    for (contestant, &time) in contestants.iter().zip(&medians[1..]) {
        row(
            ("step", contestant.name),
            batch,
            threads,
            time,
            batch,
            medians[0],
        );
    }
}

/// The floor's and each contestant's epoch over `data`, in turns (filtered as [`step_rows`]).
fn epoch_rows(plan: &Plan, data: &Dataset, contestants: &[Contestant], threads: usize) {
    let contestants: Vec<Contestant> = contestants
        .iter()
        .filter(|contestant| {
            plan.runs(&format!(
                "epoch/{}/{EPOCH_BATCH}/{threads}",
                contestant.name
            ))
        })
        .copied()
        .collect();
    if contestants.is_empty() {
        return;
    }
    let samples = data.len();
    let mut floor = GemmFloor::new(&data.images, EPOCH_BATCH);
    let mut timers: Vec<Timed<'_>> = vec![Box::new(|| timed(|| floor.epoch(samples)))];
    timers.extend(
        contestants
            .iter()
            .map(|contestant| (contestant.epoch)(data)),
    );
    let medians = measure((plan.epoch_turns, 2), &mut timers);
    row(
        ("epoch", "floor"),
        EPOCH_BATCH,
        threads,
        medians[0],
        samples,
        medians[0],
    );
    for (contestant, &time) in contestants.iter().zip(&medians[1..]) {
        row(
            ("epoch", contestant.name),
            EPOCH_BATCH,
            threads,
            time,
            samples,
            medians[0],
        );
    }
}

fn measure((turns, runs): (usize, usize), timers: &mut [Timed<'_>]) -> Vec<Duration> {
    let mut contestants: Vec<&mut dyn FnMut() -> Duration> = timers
        .iter_mut()
        .map(|timer| timer.as_mut() as &mut dyn FnMut() -> Duration)
        .collect();
    in_turns(turns, runs, &mut contestants)
}

/// One row measured once against the floor (1 turn of 4 steps): for level01, too slow for turns.
/// Its name for the filter: `step/level01/32/1`.
pub fn quick_row(plan: &Plan, data: &Dataset, contestant: Contestant, batch: usize) {
    if !plan.runs(&format!("step/{}/{batch}/1", contestant.name)) {
        return;
    }
    in_pool(1, || {
        let mut floor = GemmFloor::new(&data.images, batch);
        let mut timers: Vec<Timed<'_>> = vec![
            Box::new(|| timed(|| floor.products(batch))),
            (contestant.step)(data, batch),
        ];
        let medians = measure((1, 4), &mut timers);
        row(
            ("step", contestant.name),
            batch,
            1,
            medians[1],
            batch,
            medians[0],
        );
    });
}

/// Every row's median of this run, by name, in the order measured.
static RECORDED: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());

/// Keeps a row's median (seconds) for [`finish`].
pub fn record(name: String, time: Duration) {
    RECORDED
        .lock()
        .expect("no panic while recording")
        .push((name, time.as_secs_f64()));
}

/// Where baselines live: `backprop-baselines/` in the target folder.
fn baseline_path(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        Into::into,
    );
    target
        .join("backprop-baselines")
        .join(format!("{name}.json"))
}

/// Writes `text` to `path` whole or not at all (a temporary file beside it, then a rename).
///
/// # Panics
/// If the folder cannot be created or the file written (the message names it).
fn write_whole(path: &std::path::Path, text: &str) {
    let temporary = path.with_extension("json.tmp");
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))
        .and_then(|()| std::fs::write(&temporary, text))
        .and_then(|()| std::fs::rename(&temporary, path))
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
}

/// After the tables: `--json PATH` and `--save-baseline NAME` write this run's medians;
/// `--baseline NAME` prints each row's change against them (as criterion's flags of the same
/// names do).
///
/// # Panics
/// If the baseline file cannot be written, or read when asked for (the message names it).
pub fn finish(plan: &Plan) {
    let disturbed = DISTURBED.lock().expect("no panic while recording").clone();
    if let Some(note) = disturbed_note(&disturbed) {
        println!("{note}");
    }
    let recorded = RECORDED.lock().expect("no panic while recording").clone();
    let medians: serde_json::Map<String, serde_json::Value> = recorded
        .iter()
        .map(|(row, seconds)| (row.clone(), (*seconds).into()))
        .collect();
    let medians = serde_json::Value::Object(medians).to_string();
    if let Some(name) = &plan.save_baseline {
        let path = baseline_path(name);
        write_whole(&path, &medians);
        println!("\nbaseline {name:?} saved to {}", path.display());
    }
    if let Some(path) = &plan.json {
        write_whole(path, &medians);
    }
    if let Some(name) = &plan.baseline {
        let path = baseline_path(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!(
                "{}: {error} (save it with --save-baseline {name})",
                path.display()
            )
        });
        let saved: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: not a baseline: {error}", path.display()));
        println!("\nAgainst baseline {name:?} (medians; + is slower):");
        println!("| row                            |  baseline us |       now us |  change |");
        println!("|--------------------------------|-------------:|-------------:|--------:|");
        for (row, seconds) in &recorded {
            if let Some(before) = saved.get(row).and_then(serde_json::Value::as_f64) {
                println!(
                    "| {row:<30} | {:>12.1} | {:>12.1} | {:>+6.1}% |",
                    before * 1e6,
                    seconds * 1e6,
                    100.0 * (seconds / before - 1.0)
                );
            }
        }
    }
}

/// A built-in level's contestant ([`BuiltinLevel::dispatch`]).
#[derive(Debug)]
pub struct ContestantOf;

impl WithLevel for ContestantOf {
    type Output = Contestant;
    fn run<L: Level<f32> + Level<f64>>(self) -> Contestant {
        Contestant::of::<L>()
    }
}

/// The built-in levels fast enough to be timed in turns: every one of
/// [`BuiltinLevel::ALL`] but the loops level (a step of its takes seconds).
pub fn timed_builtin_levels() -> Vec<BuiltinLevel> {
    BuiltinLevel::ALL
        .into_iter()
        .filter(|&level| level != BuiltinLevel::Loops)
        .collect()
}

/// The whole `main` of a learner's bench: the tables with the built-in levels that are timed
/// in turns (level02, level03) and `L`.
pub fn main<L: Level<f32>>() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` under nextest asks for a list of tests: there are none
    }
    let mut contestants: Vec<Contestant> = timed_builtin_levels()
        .into_iter()
        .map(|level| level.dispatch(ContestantOf))
        .collect();
    contestants.push(Contestant::of::<L>());
    let plan = Plan::from_args();
    tables(&plan, &mnist_train(), &contestants);
    finish(&plan);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        let program = std::iter::once("bench".to_string());
        Plan::parse(program.chain(args.iter().map(|arg| arg.to_string()))).unwrap()
    }

    fn refusal(args: &[&str]) -> String {
        let program = std::iter::once("bench".to_string());
        Plan::parse(program.chain(args.iter().map(|arg| arg.to_string())))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn flags_and_filters_are_read_wherever_they_stand() {
        let side_by_side = [
            "--bench",
            "--turns",
            "1",
            "--runs",
            "41",
            "--json",
            "out.json",
            "step/level03",
            "epoch/level03",
        ];
        let turn = plan(&side_by_side);
        assert_eq!((turn.step_turns, turn.epoch_turns), ((1, 41), 1));
        assert_eq!(turn.json.as_deref(), Some(std::path::Path::new("out.json")));
        assert_eq!(turn.filters, ["step/level03", "epoch/level03"]);
        assert!(turn.runs("step/level03/32/2") && turn.runs("epoch/level03/128/1"));
        assert!(!turn.runs("step/level02/32/2") && !turn.runs("optimizer/level03/128/1"));
        let quick = plan(&["--save-baseline", "before", "level03/128"]);
        assert_eq!((quick.batches, quick.step_turns), (vec![64], (1, 2)));
        assert_eq!(quick.save_baseline.as_deref(), Some("before"));
        assert_eq!(
            quick.filters,
            ["level03/128"],
            "a flag's value is not a filter"
        );
        assert!(plan(&["--bench"]).runs("anything"));
    }

    #[test]
    fn a_row_faster_than_its_floor_is_flagged_with_a_rerun_line() {
        let (floor, time) = (Duration::from_micros(132), Duration::from_micros(100));
        assert_eq!(floor_cell("epoch/level03/128/2", floor, time), "1.32 !");
        let at_the_floor = Duration::from_micros(104);
        assert_eq!(floor_cell("step/level03/128/1", at_the_floor, time), "1.04");
        assert_eq!(disturbed_note(&[]), None);
        let note = disturbed_note(&[("epoch/level03/128/2".into(), 1.32)]).unwrap();
        assert!(
            note.contains("above 1.05 in epoch/level03/128/2 (1.32)")
                && note.contains("disturbed")
                && note.ends_with("-- epoch/level03/128/2"),
            "{note}"
        );
    }

    #[test]
    fn bad_flags_are_refused_with_their_name() {
        let zero = refusal(&["--turns", "0"]);
        assert!(zero.contains("--turns") && zero.contains("'0'"), "{zero}");
        let bare = refusal(&["--json"]);
        assert!(bare.contains("--json"), "{bare}");
        let unknown = refusal(&["--turn", "3"]);
        assert!(unknown.contains("--turn"), "{unknown}");
        // What cargo test --benches may pass is accepted.
        assert!(
            plan(&["--nocapture", "--test-threads", "1"])
                .filters
                .is_empty()
        );
    }
}
