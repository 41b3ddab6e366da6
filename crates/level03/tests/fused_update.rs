//! level03's fused step (the optimizer's update inside the backward pass, the first weight
//! updated half by half inside its gradient product) leaves the same parameters, bit for bit, as
//! forward, loss, backward and then `optimizer.step`, on 1 and 2 threads.

use backprop_core::optim::{Adam, AnyOptimizer, Optimizer, Sgd};
use backprop_core::{Level, MlpSpec, Model, Norm, Targets};
use backprop_harness::fixtures::mnist_train;
use level03::Level03;
use ndarray::{Array2, ArrayView2, Axis, s};

/// Every parameter tensor of `model` as bits, in `visit_params` order (biases as one row).
fn parameter_bits(model: &mut impl Model<f32>) -> Vec<Array2<u32>> {
    let mut bits = Vec::new();
    model.visit_params(|_, layer| {
        bits.push(layer.weight.mapv(f32::to_bits));
        bits.push(layer.bias.insert_axis(Axis(0)).mapv(f32::to_bits));
    });
    bits
}

/// Four steps of `optimizer` from `spec`'s weights; `fused` through `train_step`, else the
/// separate calls.
fn train(
    (spec, images, labels): (&MlpSpec, ArrayView2<'_, f32>, &[usize]),
    mut optimizer: AnyOptimizer<f32>,
    threads: usize,
    fused: bool,
) -> Vec<Array2<u32>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
    pool.build().expect("a rayon pool").install(|| {
        let mut model = <Level03 as Level<f32>>::mlp_from_spec(spec);
        for step in 0..4 {
            let half = images.nrows() / 2;
            let rows = (step % 2) * half..(step % 2 + 1) * half;
            let (batch, targets) = (images.slice(s![rows.clone(), ..]), &labels[rows]);
            if fused {
                model.train_step(batch, Targets::Classes(targets), &mut optimizer);
            } else {
                model.zero_grad();
                model.forward(batch);
                model.loss(Targets::Classes(targets));
                model.backward_params_only();
                optimizer.step(&mut model);
            }
        }
        parameter_bits(&mut model)
    })
}

#[test]
fn the_fused_step_matches_backward_then_step_bit_for_bit() {
    let mnist = mnist_train(128);
    // [16, 512, 10] at batch 256: the first weight's gradient product is cut by columns.
    let wide_images =
        Array2::from_shape_fn((512, 16), |(row, col)| ((row * 5 + col * 3) % 7) as f32);
    let wide_labels: Vec<usize> = (0..512).map(|row| row % 10).collect();
    let optimizers = [
        AnyOptimizer::Sgd(Sgd::new(0.05)),
        AnyOptimizer::Sgd(Sgd::new(0.05).with_momentum(0.9).with_weight_decay(0.01)),
        AnyOptimizer::Sgd(Sgd::new(0.05).with_momentum(0.8).with_nesterov()),
        AnyOptimizer::Adam(Adam::new(1e-2).with_weight_decay(0.01)),
    ];
    for norm in [Norm::None, Norm::Batch] {
        let deep = MlpSpec {
            norm,
            ..MlpSpec::classifier(&[784, 128, 64, 10], 3)
        };
        let wide = MlpSpec {
            norm,
            ..MlpSpec::classifier(&[16, 512, 10], 4)
        };
        let cases = [
            (&deep, mnist.images.view(), mnist.labels.as_slice()),
            (&wide, wide_images.view(), wide_labels.as_slice()),
        ];
        for (case, optimizer) in cases
            .iter()
            .flat_map(|case| optimizers.iter().map(move |o| (case, o)))
        {
            let initial = parameter_bits(&mut <Level03 as Level<f32>>::mlp_from_spec(case.0));
            let separate = train(*case, optimizer.clone(), 1, false);
            assert_ne!(separate, initial, "four steps move the parameters");
            for threads in [1, 2] {
                let fused = train(*case, optimizer.clone(), threads, true);
                assert!(
                    fused == separate,
                    "{optimizer:?} with {norm:?} norm on {threads} thread(s), sizes {:?}: the \
                     fused step's parameters differ from backward then step",
                    case.0.sizes
                );
            }
        }
    }
}
