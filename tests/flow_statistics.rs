//! `backprop_core::flow`: clipping against values computed by hand, and the statistics of a
//! tiny network (here, beside a level: backprop-core depends on no level, not even in tests).

use backprop_core::flow::{clip_grad_norm, step_stats, weights_of};
use backprop_core::optim::{Adam, Optimizer, Sgd};
use backprop_core::{Activation, Level, LossKind, Model, Targets};
use level02::Level02;
use ndarray::array;

/// A [1, 2, 2] ReLU model, W0 = [[1, -1]], W1 = I, biases 0, with gradients set by hand:
/// dL/dW0 = [[3, 4]], every other gradient 0.
fn model_with_gradient_3_4() -> impl Model<f64> {
    let layers = vec![
        (array![[1.0, -1.0]], array![0.0, 0.0]),
        (array![[1.0, 0.0], [0.0, 1.0]], array![0.0, 0.0]),
    ];
    let mut model = Level02::mlp(layers, Activation::Relu, LossKind::SoftmaxCrossEntropy);
    model.zero_grad();
    model.visit_linears(|index, mut layer| {
        if index == 0 {
            layer.grad_weight.assign(&array![[3.0, 4.0]]);
        }
    });
    model
}

fn gradients(model: &mut impl Model<f64>) -> Vec<f64> {
    let mut values = Vec::new();
    model.visit_linears(|_, layer| {
        values.extend(layer.grad_weight.iter().chain(layer.grad_bias.iter()));
    });
    values
}

#[test]
fn clipping_scales_every_gradient_by_max_norm_over_the_total() {
    // total = sqrt(3^2 + 4^2) = 5; coefficient = 1 / (5 + 1e-6), as PyTorch's clip_grad_norm_.
    let mut model = model_with_gradient_3_4();
    let total = clip_grad_norm(&mut model, 1.0);
    assert_eq!(total, 5.0);
    let coefficient = 1.0 / (5.0 + 1e-6);
    let mut expected = vec![0.0; 10];
    expected[0] = 3.0 * coefficient;
    expected[1] = 4.0 * coefficient;
    assert_eq!(gradients(&mut model), expected);
}

#[test]
fn clipping_leaves_gradients_below_max_norm_alone() {
    let mut model = model_with_gradient_3_4();
    assert_eq!(clip_grad_norm(&mut model, 10.0), 5.0);
    assert_eq!(gradients(&mut model)[..2], [3.0, 4.0]);
}

#[test]
#[should_panic(expected = "max_norm must be above 0")]
fn clipping_to_zero_is_refused() {
    clip_grad_norm(&mut model_with_gradient_3_4(), 0.0);
}

#[test]
fn statistics_count_dead_units_and_read_the_update_ratio() {
    // Input x through W0 = [1, -1]: hidden [1, 0] for x = 1 and [0, 2] for x = -2, so no hidden
    // unit is 0 for both samples; x = 1 alone leaves unit 1 dead.
    let mut model = model_with_gradient_3_4();
    model.forward(array![[1.0], [-2.0]].view());
    model.loss(Targets::Classes(&[0, 1]));
    model.zero_grad();
    model.backward();
    let both = step_stats(&mut model);
    assert_eq!(both.layers[0].dead_fraction, Some(0.0));
    assert_eq!(both.layers[1].dead_fraction, None); // the last Linear has no activation
    assert_eq!(both.max_abs_logit, Some(2.0));

    model.forward(array![[1.0]].view());
    model.loss(Targets::Classes(&[0]));
    model.zero_grad();
    model.backward();
    let mut one = step_stats(&mut model);
    // The update ratio of the step SGD takes with lr 0.5: ‖0.5 dL/dW‖ / ‖W‖.
    let before = weights_of(&mut model);
    Sgd::new(0.5).step(&mut model);
    one.measure_update(&mut model, &before);
    assert_eq!(one.layers[0].dead_fraction, Some(0.5));
    // Layer 1 (W1 = I, ‖W1‖ = sqrt 2): logits = h = [1, 0], p = [e/(e+1), 1/(e+1)], y = [1, 0],
    // dL/dW1 = h^T (p - y) has one non-zero row [-1/(e+1), 1/(e+1)]: norm sqrt 2 / (e + 1).
    let e = std::f64::consts::E;
    let grad_norm = 2.0f64.sqrt() / (e + 1.0);
    let expected_ratio = (0.5 * grad_norm / 2.0f64.sqrt()).log10();
    assert!((one.layers[1].weight_grad_norm - grad_norm).abs() < 1e-12);
    assert!((one.layers[1].update_ratio_log10 - expected_ratio).abs() < 1e-12);
    // dL/dh = (p - y) W1^T = p - y: norm sqrt 2 / (e + 1) as well.
    let input_grad = one.layers[1].input_grad_norm.expect("recorded by backward");
    assert!((input_grad - grad_norm).abs() < 1e-12);
}

/// The update ratio is the step the optimizer took, not lr ‖dL/dW‖ / ‖W‖: Adam's first step
/// moves every weight with a gradient by about lr whatever the gradient's size.
#[test]
fn the_update_ratio_is_measured_on_the_step_taken() {
    let mut model = model_with_gradient_3_4();
    let mut stats = step_stats(&mut model);
    let before = weights_of(&mut model);
    Adam::new(0.01).step(&mut model);
    stats.measure_update(&mut model, &before);
    // W0 = [1, -1] moves by 0.01 in each entry (m / sqrt(v) = ±1 on the first step):
    // ‖ΔW0‖ / ‖W0‖ = 0.01 sqrt 2 / sqrt 2 = 0.01, where lr ‖g‖ / ‖W‖ = 0.01 * 5 / sqrt 2.
    assert!(
        (stats.layers[0].update_ratio_log10 - (-2.0)).abs() < 1e-6,
        "{stats:?}"
    );
    // W1 has no gradient: Adam leaves it where it was.
    assert_eq!(stats.layers[1].update_ratio_log10, f64::NEG_INFINITY);
}

/// A CNN's convolution weights reach the statistics and the clipping like a Linear's: one
/// statistics row per weight layer, and the joint norm clipped to max_norm.
#[test]
fn statistics_and_clipping_reach_a_cnns_convolutions() {
    use backprop_core::{ImageShape, LayerSpec, NetSpec};
    let spec = NetSpec::new(
        ImageShape::new(1, 6, 6),
        vec![
            LayerSpec::conv2d(1, 2, 3, 1, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::max_pool2d(2, 2),
            LayerSpec::Flatten,
            LayerSpec::Linear {
                in_features: 18,
                out_features: 3,
            },
        ],
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap()
    .with_seed(4);
    let mut model = <Level02 as Level<f64>>::network_from_spec(&spec);
    let input =
        ndarray::Array2::from_shape_fn((4, 36), |(n, i)| ((n * 7 + i * 5) % 11) as f64 - 5.0);
    model.zero_grad();
    model.forward(input.view());
    model.loss(Targets::Classes(&[0, 1, 2, 1]));
    model.backward();
    let stats = step_stats(&mut model);
    assert_eq!(stats.layers.len(), 2);
    assert!(
        stats
            .layers
            .iter()
            .all(|layer| layer.weight_grad_norm > 0.0)
    );
    // The ReLU after the convolution is the one hidden activation the statistics read.
    assert!(stats.layers[0].dead_fraction.is_some());
    let total = clip_grad_norm(&mut model, 1e-3);
    assert!(total > 1e-3, "{total}");
    let clipped: f64 = gradients(&mut model)
        .iter()
        .map(|g| g * g)
        .sum::<f64>()
        .sqrt();
    assert!((clipped - 1e-3).abs() < 1e-9, "{clipped}");
}

/// The hidden outputs a network lists for the dead and saturated fractions: one per weight
/// layer but the last when each is followed by an activation of the network's kind, none when
/// the activations are mixed (a positional list would read a tanh output as ReLU's).
#[test]
fn hidden_outputs_are_listed_only_where_each_belongs_to_its_layer() {
    use backprop_core::{ImageShape, LayerSpec, MlpSpec, NetSpec};
    let count = |spec: &NetSpec, width: usize| {
        let mut model = <Level02 as Level<f64>>::network_from_spec(spec);
        model.forward(ndarray::Array2::from_elem((2, width), 0.5).view());
        model.signals().map(|signals| signals.hidden_outputs.len())
    };
    assert_eq!(
        count(&MlpSpec::classifier(&[4, 5, 6, 3], 1).net_spec(), 4),
        Some(2)
    );
    let conv = |second: Activation| {
        NetSpec::new(
            ImageShape::new(1, 4, 4),
            vec![
                LayerSpec::conv2d(1, 2, 3, 1, 1),
                LayerSpec::Activation(Activation::Relu),
                LayerSpec::conv2d(2, 2, 3, 1, 0),
                LayerSpec::Activation(second),
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    in_features: 8,
                    out_features: 3,
                },
            ],
            LossKind::SoftmaxCrossEntropy,
        )
        .unwrap()
    };
    assert_eq!(count(&conv(Activation::Relu), 16), Some(2));
    assert_eq!(count(&conv(Activation::Tanh), 16), Some(0));
}
