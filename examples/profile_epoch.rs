//! Runs whole shuffled epochs of level03 (MLP [784, 256, 10], f32, SGD, batches gathered by
//! `Batches::for_each_batch`, as `train` gathers them) for a profiler, and prints each epoch's time:
//! `cargo run --release --features tools --example profile_epoch -- EPOCHS THREADS BATCH` (default 3 1 128).
use std::ops::ControlFlow;

use backprop_core::optim::Sgd;
use backprop_core::{Level, MlpSpec, Model, Targets};
use backprop_data::batches::Batches;
use backprop_data::mnist::load_mnist;
use level03::Level03;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|arg| arg.parse::<usize>().expect("a number"));
    let epochs = args.next().unwrap_or(3);
    let threads = args.next().unwrap_or(1);
    let batch = args.next().unwrap_or(128);
    let data = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
        .unwrap()
        .train;
    let mut model =
        <Level03 as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut sgd = Sgd::new(0.01);
    let mut batches = Batches::new(&data, batch, 5);
    pool.install(|| {
        for epoch in 0..epochs {
            let start = std::time::Instant::now();
            let _: ControlFlow<()> = batches.for_each_batch(|images, labels| {
                model.train_step(images, Targets::Classes(labels), &mut sgd);
                ControlFlow::Continue(())
            });
            println!("epoch {epoch}: {:?}", start.elapsed());
        }
    });
}
