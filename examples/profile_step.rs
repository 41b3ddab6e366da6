//! Runs level03 training steps in a loop, for a profiler:
//! `cargo run --release --example profile_step -- BATCH STEPS THREADS` (default 128 1000 1).
use backprop_core::mnist::load_mnist;
use backprop_core::optim::Sgd;
use backprop_core::{Level, MlpSpec, Model, Targets};
use level03::Level03;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|arg| arg.parse::<usize>().expect("a number"));
    let batch = args.next().unwrap_or(128);
    let steps = args.next().unwrap_or(1000);
    let threads = args.next().unwrap_or(1);
    let data = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
        .unwrap()
        .train;
    let images = data.images.slice(ndarray::s![..batch, ..]);
    let mut model =
        <Level03 as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 1));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut sgd = Sgd::new(0.01);
    pool.install(|| {
        for _ in 0..steps {
            model.train_step(images, Targets::Classes(&data.labels[..batch]), &mut sgd);
        }
    });
}
