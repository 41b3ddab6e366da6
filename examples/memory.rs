//! Memory of a training step of MLP [784, 256, 10] in f32, measured with the harness's counting
//! allocator: `cargo run --release --features tools --example memory`.
//!
//! For each level and batch size, after two warm-up steps: the bytes allocated during one step,
//! the peak of bytes live during it above what was live before it (the step's transient memory),
//! and the bytes the model holds between steps beyond its parameters (level03's buffers).

use backprop_core::optim::Sgd;
use backprop_core::{Level, MlpSpec, Model, Targets};
use backprop_harness::alloc;
use backprop_harness::fixtures::{classes, uniform};
use level02::Level02;
use level03::Level03;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;

const SIZES: [usize; 3] = [784, 256, 10];

/// (bytes allocated in a step, peak transient bytes in a step, bytes held after it).
fn measure<L: Level<f32>>(batch: usize) -> (usize, usize, usize) {
    alloc::count_this_thread();
    let input = uniform(batch, 784, 1).mapv(|x| x.abs() as f32);
    let targets = classes(batch, 10, 2);
    let held_before = alloc::live_bytes();
    let mut model = L::mlp_from_spec(&MlpSpec::classifier(&SIZES, 3));
    let mut sgd = Sgd::new(0.01);
    for _ in 0..2 {
        model.train_step(input.view(), Targets::Classes(&targets), &mut sgd);
    }
    let (allocated, live) = (alloc::allocated_bytes(), alloc::live_bytes());
    alloc::reset_peak();
    model.train_step(input.view(), Targets::Classes(&targets), &mut sgd);
    let step_bytes = alloc::allocated_bytes() - allocated;
    let transient = alloc::peak_live_bytes() - live;
    let held = alloc::live_bytes() - held_before;
    drop(model);
    (step_bytes, transient, held)
}

fn main() {
    let parameters: usize = SIZES
        .windows(2)
        .map(|pair| pair[0] * pair[1] + pair[1])
        .sum();
    let parameter_bytes = 2 * parameters * 4; // each parameter and its gradient, f32
    println!(
        "MLP {SIZES:?}: {parameters} parameters; with their gradients {parameter_bytes} bytes (8 per parameter)"
    );
    println!(
        "| level   | batch | allocated per step | peak transient per step | held beyond parameters |"
    );
    println!(
        "|---------|------:|-------------------:|------------------------:|-----------------------:|"
    );
    // Single-threaded (rayon's global pool is not used for counting here: count this thread).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for batch in [64, 128, 256] {
            let (allocated, transient, held) = measure::<Level02>(batch);
            println!(
                "| level02 | {batch:>5} | {allocated:>18} | {transient:>23} | {:>22} |",
                held - parameter_bytes
            );
            let (allocated, transient, held) = measure::<Level03>(batch);
            println!(
                "| level03 | {batch:>5} | {allocated:>18} | {transient:>23} | {:>22} |",
                held - parameter_bytes
            );
        }
    });
}
