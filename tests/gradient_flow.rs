//! The physics of gradient flow on fixed seeds: sigmoid vanishes over 20 layers, ReLU with He
//! init does not, a 10x init explodes and clipping by global norm keeps the loss finite.
//!
//! Each network is `[32, 64 x 19, 10]` (20 `Linear` layers) on one fixed batch of 64 Gaussian
//! inputs with random classes; the ratio is ‖dL/dW_first‖ / ‖dL/dW_last‖ after one backward.

use backprop_core::flow::{StepStats, clip_grad_norm, step_stats, weights_of};
use backprop_core::init::{seeded_rng, standard_normal};
use backprop_core::optim::{Optimizer, Sgd};
use backprop_core::{Activation, Init, Level, LossKind, MlpSpec, Model, Targets};
use level02::Level02;
use level03::Level03;
use ndarray::Array2;
use rand::RngExt;

const DEPTH: usize = 20;
const WIDTH: usize = 64;
const BATCH: usize = 64;

fn spec(activation: Activation, init: Init) -> MlpSpec {
    let mut sizes = vec![32];
    sizes.extend([WIDTH; DEPTH - 1]);
    sizes.push(10);
    MlpSpec {
        sizes,
        activation,
        loss: LossKind::SoftmaxCrossEntropy,
        init,
        seed: 42,
        ..MlpSpec::classifier(&[], 0)
    }
}

fn batch() -> (Array2<f32>, Vec<usize>) {
    let mut rng = seeded_rng(7);
    let inputs = Array2::from_shape_simple_fn((BATCH, 32), || standard_normal(&mut rng) as f32);
    let classes = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    (inputs, classes)
}

/// One forward, backward and SGD step (lr 0.1) from the initial weights (scaled by `scale`),
/// and its statistics.
fn first_step<L: Level<f32>>(activation: Activation, init: Init, scale: f32) -> (f32, StepStats) {
    let spec = spec(activation, init);
    let mut params = spec.initial_params::<f32>();
    for (weight, _) in &mut params {
        *weight *= scale;
    }
    let mut model = L::mlp(params, activation, spec.loss);
    let (inputs, classes) = batch();
    model.zero_grad();
    model.forward(inputs.view());
    let loss = model.loss(Targets::Classes(&classes));
    model.backward();
    let mut stats = step_stats(&mut model);
    // The update ratio of an SGD step with lr 0.1.
    let before = weights_of(&mut model);
    Sgd::new(0.1).step(&mut model);
    stats.measure_update(&mut model, &before);
    (loss, stats)
}

/// Level 3 keeps its signals in shared buffers, level 2 in its layers: the same network gives
/// the same statistics (f32, different summation order: 1e-4 relative).
#[test]
fn levels_2_and_3_report_the_same_statistics() {
    for activation in Activation::ALL {
        let init = if activation == Activation::Relu {
            Init::He
        } else {
            Init::Xavier
        };
        let (_, stacked) = first_step::<Level02>(activation, init, 1.0);
        let (_, fused) = first_step::<Level03>(activation, init, 1.0);
        // Equal covers -inf: a deep sigmoid's first-layer step too small to move any f32 weight.
        let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-4 * a.abs().max(b.abs());
        for (index, (a, b)) in stacked.layers.iter().zip(&fused.layers).enumerate() {
            let context = format!("{activation} layer {index}: {a:?} vs {b:?}");
            assert!(close(a.weight_grad_norm, b.weight_grad_norm), "{context}");
            assert!(
                close(a.update_ratio_log10, b.update_ratio_log10),
                "{context}"
            );
            let (a_input, b_input) = (a.input_grad_norm.unwrap(), b.input_grad_norm.unwrap());
            assert!(close(a_input, b_input), "{context}");
            assert_eq!(a.dead_fraction, b.dead_fraction, "{context}");
            assert_eq!(a.saturated_fraction, b.saturated_fraction, "{context}");
        }
        let (a, b) = (stacked.max_abs_logit.unwrap(), fused.max_abs_logit.unwrap());
        assert!(close(a, b), "{activation}: max |logit| {a} vs {b}");
    }
}

/// `steps` SGD steps (lr 0.1) on the fixed batch, clipping to `max_norm` if given; the losses.
fn train<L: Level<f32>>(
    activation: Activation,
    init: Init,
    scale: f32,
    max_norm: Option<f64>,
    steps: usize,
) -> Vec<f32> {
    let spec = spec(activation, init);
    let mut params = spec.initial_params::<f32>();
    for (weight, _) in &mut params {
        *weight *= scale;
    }
    let mut model = L::mlp(params, activation, spec.loss);
    let (inputs, classes) = batch();
    let mut losses = Vec::new();
    let mut sgd = Sgd::new(0.1);
    for _ in 0..steps {
        model.zero_grad();
        model.forward(inputs.view());
        losses.push(model.loss(Targets::Classes(&classes)));
        model.backward_params_only();
        if let Some(max_norm) = max_norm {
            clip_grad_norm(&mut model, max_norm);
        }
        sgd.step(&mut model);
    }
    losses
}

fn sigmoid_vanishes_over_20_layers<L: Level<f32>>() {
    let (_, stats) = first_step::<L>(Activation::Sigmoid, Init::PytorchDefault, 1.0);
    let ratio = stats.first_to_last_ratio();
    assert!(
        ratio < 1e-4,
        "{}: 20-layer sigmoid, PyTorch init: ‖dW_first‖ / ‖dW_last‖ = {ratio:e}, expected < 1e-4",
        L::NAME
    );
    // Every layer passes down less than it receives: the shrink is steady, layer by layer.
    for pair in stats.layers.windows(2) {
        assert!(
            pair[0].weight_grad_norm < pair[1].weight_grad_norm,
            "{pair:?}"
        );
    }
}

fn relu_with_he_init_keeps_the_gradient_within_100x<L: Level<f32>>() {
    let (_, stats) = first_step::<L>(Activation::Relu, Init::He, 1.0);
    let norms: Vec<f64> = stats
        .layers
        .iter()
        .map(|layer| layer.weight_grad_norm)
        .collect();
    let ratio = stats.first_to_last_ratio();
    assert!(
        (1e-2..=1e2).contains(&ratio),
        "{}: 20-layer ReLU, He init: ratio {ratio:e}, expected within a factor 100: {norms:?}",
        L::NAME
    );
    let (smallest, largest) = norms
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(low, high), &n| {
            (low.min(n), high.max(n))
        });
    assert!(largest / smallest < 1e2, "{norms:?}");
}

fn init_scaled_by_10_explodes_and_clipping_keeps_the_loss_finite<L: Level<f32>>() {
    // tanh saturates, so its forward pass stays bounded while the backward pass multiplies by
    // 10x-too-large weights at every layer: the first layer's gradient dwarfs the last one's.
    let (loss, stats) = first_step::<L>(Activation::Tanh, Init::Xavier, 10.0);
    let ratio = stats.first_to_last_ratio();
    assert!(
        loss.is_finite() && ratio > 1e3,
        "{}: tanh, Xavier x10: ratio {ratio:e}",
        L::NAME
    );

    // ReLU is linear for positive inputs, so every layer's gradient grows alike (the ratio hides
    // it) but 10^20-sized logits and gradients overflow f32 within a few SGD steps.
    let unclipped = train::<L>(Activation::Relu, Init::He, 10.0, None, 10);
    let blow_up = unclipped.iter().position(|loss| !loss.is_finite());
    assert!(
        blow_up.is_some(),
        "{}: ReLU, He x10, no clipping: expected a non-finite loss within 10 steps: {unclipped:?}",
        L::NAME
    );
    let clipped = train::<L>(Activation::Relu, Init::He, 10.0, Some(1.0), 10);
    assert!(
        clipped.iter().all(|loss| loss.is_finite()),
        "{}: ReLU, He x10, clipped to norm 1: {clipped:?}",
        L::NAME
    );
}

macro_rules! for_levels {
    ($($check:ident),*) => {
        mod level02_checks { $( #[test] fn $check() { super::$check::<super::Level02>(); } )* }
        mod level03_checks { $( #[test] fn $check() { super::$check::<super::Level03>(); } )* }
    };
}

for_levels!(
    sigmoid_vanishes_over_20_layers,
    relu_with_he_init_keeps_the_gradient_within_100x,
    init_scaled_by_10_explodes_and_clipping_keeps_the_loss_finite
);
