//! Runs level03 training steps in a loop, for a profiler:
//! `cargo run --release --features tools --example profile_step -- BATCH STEPS THREADS [ARCH]` (default 128 1000
//! 1, the MLP [784, 256, 10]); ARCH is `--arch` text, e.g. `lenet`, or `mlp:NORM:P` for that MLP
//! with a normalization (`none`, `batch`, `layer`) and dropout P, e.g. `mlp:batch:0.2`. Prints the
//! mean step time.
use backprop::arch::Arch;
use backprop_core::optim::Sgd;
use backprop_core::{ImageShape, Level, MlpSpec, Model, Targets};
use backprop_data::mnist::load_mnist;
use backprop_data::workers::with_workers_awake;
use level03::Level03;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |at: usize, default: usize| {
        args.get(at)
            .map_or(default, |arg| arg.parse().expect("a number"))
    };
    let (batch, steps, threads) = (number(0, 128), number(1, 1000), number(2, 1));
    let data = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
        .unwrap()
        .train;
    let images = data.images.slice(ndarray::s![..batch, ..]);
    let spec = match args.get(3) {
        Some(mlp) if mlp.starts_with("mlp:") => {
            let mut parts = mlp.split(':').skip(1);
            let norm = parts.next().unwrap_or("none");
            let dropout = parts.next().unwrap_or("0");
            MlpSpec {
                norm: norm
                    .parse()
                    .unwrap_or_else(|error| panic!("{mlp:?}: {error}")),
                dropout: dropout.parse().expect("a dropout probability"),
                ..MlpSpec::classifier(&[784, 256, 10], 1)
            }
            .net_spec()
        }
        Some(arch) => arch
            .parse::<Arch>()
            .and_then(|arch| arch.classifier(ImageShape::new(1, data.rows, data.cols), 10))
            .unwrap_or_else(|error| panic!("ARCH {arch:?}: {error}")),
        None => MlpSpec::classifier(&[784, 256, 10], 1).net_spec(),
    };
    let mut model = <Level03 as Level<f32>>::network_from_spec(&spec);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut sgd = Sgd::new(0.01);
    let started = std::time::Instant::now();
    // As each epoch of `train` does: the other workers poll for work between the step's forks.
    pool.install(|| {
        with_workers_awake(|| {
            for _ in 0..steps {
                model.train_step(images, Targets::Classes(&data.labels[..batch]), &mut sgd);
            }
        })
    });
    let step = started.elapsed().as_secs_f64() / steps.max(1) as f64;
    println!("{:.1} us / step (mean of {steps})", step * 1e6);
}
