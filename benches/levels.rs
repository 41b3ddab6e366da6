//! Every level on the same work, f32: forward + backward of Linear(784, 256) and of ReLU, and a
//! full SGD step of MLP [784, 256, 10], at batch 32, 64, 128 and 256 (level01 at batch 32 only:
//! it takes about 0.1 s a step). Throughput is set, so criterion prints samples/s.
//!
//! ```sh
//! cargo bench --bench levels
//! cargo bench --bench levels -- sgd_step      # one group
//! ```
//!
//! Runs on rayon's global pool (all cores); `train_throughput` separates 1 and 2 threads.

use std::hint::black_box;
use std::time::Duration;

use backprop::levels::{BuiltinLevel, WithLevel};
use backprop_core::optim::Sgd;
use backprop_core::{Layer, Level, MlpSpec, Model, Targets};
use backprop_harness::fixtures::{classes, uniform};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

const BATCHES: [usize; 4] = [32, 64, 128, 256];

fn inputs(batch: usize, width: usize) -> Array2<f32> {
    uniform(batch, width, 1).mapv(|x| x.abs() as f32)
}

fn batches_for(level: &str) -> &'static [usize] {
    if level == "level01" {
        &BATCHES[..1]
    } else {
        &BATCHES
    }
}

/// Forward then backward of one layer from `make_layer`.
fn bench_layer<L: Layer<f32>>(
    criterion: &mut Criterion,
    group_name: &str,
    level: &str,
    (fan_in, fan_out): (usize, usize),
    mut make_layer: impl FnMut() -> L,
) {
    let mut group = criterion.benchmark_group(group_name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    for &batch in batches_for(level) {
        let input = inputs(batch, fan_in);
        let upstream = inputs(batch, fan_out);
        let mut layer = make_layer();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new(level, batch), &batch, |bencher, _| {
            bencher.iter(|| {
                layer.forward(black_box(input.view()));
                black_box(layer.backward(upstream.view()))
            })
        });
    }
    group.finish();
}

fn bench_level<L: Level<f32>>(criterion: &mut Criterion) {
    let (weight, bias) = MlpSpec::classifier(&[784, 256], 3)
        .initial_params::<f32>()
        .remove(0);
    let linear = || L::linear(weight.clone(), bias.clone());
    bench_layer(
        criterion,
        "linear_784x256_forward_backward",
        L::NAME,
        (784, 256),
        linear,
    );
    bench_layer(
        criterion,
        "relu_256_forward_backward",
        L::NAME,
        (256, 256),
        L::relu,
    );

    let mut group = criterion.benchmark_group("sgd_step_784_256_10");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    for &batch in batches_for(L::NAME) {
        let input = inputs(batch, 784);
        let targets = classes(batch, 10, 2);
        let mut model = L::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 4));
        let mut sgd = Sgd::new(0.01);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new(L::NAME, batch), &batch, |bencher, _| {
            bencher.iter(|| {
                model.train_step(
                    black_box(input.view()),
                    Targets::Classes(&targets),
                    &mut sgd,
                )
            })
        });
    }
    group.finish();
}

/// One built-in level's benches.
struct BenchLevel<'c>(&'c mut Criterion);

impl WithLevel for BenchLevel<'_> {
    type Output = ();
    fn run<L: Level<f32> + Level<f64>>(self) {
        bench_level::<L>(self.0);
    }
}

fn levels(criterion: &mut Criterion) {
    for level in BuiltinLevel::ALL {
        level.dispatch(BenchLevel(criterion));
    }
}

criterion_group!(benches, levels);
criterion_main!(benches);
