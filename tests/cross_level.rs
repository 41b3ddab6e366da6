//! Every level built from the same seed computes the same numbers as level01, the loops a reader
//! can check by hand: forward values, loss, every gradient, and the weights after a few SGD
//! steps, in f64, to a relative error below 1e-12 (only the order of the additions differs).
//!
//! One case is held to 1e-10 instead: at MNIST width, dL/dinput sums 32 products of about 1e-4
//! that cancel to about 1e-8, and matrixmultiply (fused multiply-add) rounds each step
//! differently from level01's `sum += a * b`; the relative error of such an entry reaches
//! 4.5e-12 while every large entry agrees to 1e-15.

use backprop_core::optim::{Adam, AnyOptimizer, Sgd};
use backprop_core::{
    Activation, ImageShape, LayerSpec, Level, LossKind, MlpSpec, Model, NetSpec, Norm, NormMut,
    Targets,
};
use backprop_harness::expect::{close, close_scalar, parameter_gradients};
use backprop_harness::fixtures::{classes, uniform};
use level01::Level01;
use level02::Level02;
use level03::Level03;
use ndarray::{Array1, Array2};

const AGREEMENT: f64 = 1e-12;
/// For sums whose terms cancel by five orders of magnitude (see the module docs).
const AGREEMENT_CANCELLING: f64 = 1e-10;

/// `(batch, sizes, activation, loss)` of every case.
const CASES: [(usize, &[usize], Activation, LossKind); 5] = [
    (1, &[3, 2], Activation::Relu, LossKind::SoftmaxCrossEntropy),
    (
        4,
        &[5, 7, 3],
        Activation::Relu,
        LossKind::SoftmaxCrossEntropy,
    ),
    (
        8,
        &[10, 16, 12, 4],
        Activation::Tanh,
        LossKind::SoftmaxCrossEntropy,
    ),
    (5, &[6, 5, 3], Activation::Sigmoid, LossKind::Mse),
    (3, &[2, 9, 9, 9, 1], Activation::Tanh, LossKind::Mse),
];

/// One forward, loss and backward of both models, compared output by output.
fn compare_models(
    case: &str,
    reference: &mut impl Model<f64>,
    other: &mut impl Model<f64>,
    input: &Array2<f64>,
    targets: Targets<'_, f64>,
    tolerance: f64,
) {
    reference.zero_grad();
    other.zero_grad();
    let logits = (reference.forward(input.view()), other.forward(input.view()));
    close(case, "logits", logits.1.view(), logits.0.view(), tolerance);
    let loss = (reference.loss(targets), other.loss(targets));
    close_scalar(case, "loss", loss.1, loss.0, tolerance);
    let grad_input = (reference.backward(), other.backward());
    close(
        case,
        "dL/dinput",
        grad_input.1.view(),
        grad_input.0.view(),
        tolerance,
    );
    let grads = (parameter_gradients(reference), parameter_gradients(other));
    for ((name, expected), (_, got)) in grads.0.iter().zip(&grads.1) {
        close(
            case,
            &format!("dL/d{name}"),
            got.view(),
            expected.view(),
            tolerance,
        );
    }
}

/// Every weight and bias of `other` against level01's, to [`AGREEMENT`].
fn compare_weights(case: &str, loops: &mut impl Model<f64>, other: &mut impl Model<f64>) {
    for ((weight, bias), (other_weight, other_bias)) in
        loops.linear_params().iter().zip(&other.linear_params())
    {
        close(
            case,
            "weight",
            other_weight.view(),
            weight.view(),
            AGREEMENT,
        );
        close(case, "bias", other_bias.view(), bias.view(), AGREEMENT);
    }
}

fn agrees_with_level01_on_forward_loss_and_gradients<L: Level<f64>>() {
    for (index, &(batch, sizes, activation, loss)) in CASES.iter().enumerate() {
        let seed = 1000 + index as u64;
        let spec = MlpSpec {
            activation,
            loss,
            ..MlpSpec::classifier(sizes, seed)
        };
        let case = format!(
            "{} vs level01, {activation} MLP {sizes:?}, batch {batch}",
            L::NAME
        );
        let input = uniform(batch, sizes[0], seed + 1);
        let outputs = *sizes.last().unwrap();
        let class_targets = classes(batch, outputs, seed + 2);
        let value_targets = uniform(batch, outputs, seed + 3);
        let targets = match loss {
            LossKind::SoftmaxCrossEntropy => Targets::Classes(&class_targets),
            LossKind::Mse => Targets::Values(value_targets.view()),
        };
        let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
        let mut other = L::mlp_from_spec(&spec);
        compare_models(&case, &mut loops, &mut other, &input, targets, AGREEMENT);
    }
}

fn agrees_with_level01_at_mnist_width<L: Level<f64>>() {
    let spec = MlpSpec {
        activation: Activation::Sigmoid,
        ..MlpSpec::classifier(&[784, 32, 10], 1500)
    };
    let input = uniform(16, 784, 1501).mapv(f64::abs);
    let targets = classes(16, 10, 1502);
    let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
    let mut other = L::mlp_from_spec(&spec);
    let case = format!(
        "{} vs level01, sigmoid MLP [784, 32, 10], batch 16",
        L::NAME
    );
    let targets = Targets::Classes(&targets);
    compare_models(
        &case,
        &mut loops,
        &mut other,
        &input,
        targets,
        AGREEMENT_CANCELLING,
    );
}

fn agrees_with_level01_after_three_sgd_steps<L: Level<f64>>() {
    let optimizers: [(&str, AnyOptimizer<f64>); 3] = [
        ("SGD", AnyOptimizer::Sgd(Sgd::new(0.3))),
        (
            "Nesterov",
            AnyOptimizer::Sgd(Sgd::new(0.03).with_momentum(0.9).with_nesterov()),
        ),
        (
            "Adam",
            AnyOptimizer::Adam(Adam::new(0.01).with_weight_decay(0.1)),
        ),
    ];
    for (name, optimizer) in optimizers {
        let spec = MlpSpec::classifier(&[20, 16, 5], 2000);
        let input = uniform(12, 20, 2001);
        let targets = classes(12, 5, 2002);
        let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
        let mut other = L::mlp_from_spec(&spec);
        let (mut loops_optimizer, mut other_optimizer) = (optimizer.clone(), optimizer);
        for _ in 0..3 {
            loops.train_step(
                input.view(),
                Targets::Classes(&targets),
                &mut loops_optimizer,
            );
            other.train_step(
                input.view(),
                Targets::Classes(&targets),
                &mut other_optimizer,
            );
        }
        let case = format!("{} vs level01, weights after 3 {name} steps", L::NAME);
        compare_weights(&case, &mut loops, &mut other);
        let targets = Targets::Classes(&targets);
        compare_models(&case, &mut loops, &mut other, &input, targets, AGREEMENT);
    }
}

/// A CNN with every convolution case at once (stride 2 with padding, a rectangular kernel,
/// overlapping max pooling, dropout on images): three momentum steps from the same seed, then
/// every weight, and one more forward, loss and backward compared entry by entry.
fn agrees_with_level01_on_a_cnn_after_three_steps<L: Level<f64>>() {
    let spec = NetSpec::new(
        ImageShape::new(2, 9, 8),
        vec![
            LayerSpec::conv2d(2, 4, 3, 2, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::Conv2d {
                in_channels: 4,
                out_channels: 3,
                kernel: (2, 3),
                stride: 1,
                padding: 1,
            },
            LayerSpec::Activation(Activation::Tanh),
            LayerSpec::max_pool2d(3, 1),
            LayerSpec::Dropout { p: 0.25 },
            LayerSpec::Flatten,
            LayerSpec::Linear {
                in_features: 3 * 4 * 2,
                out_features: 6,
            },
        ],
        LossKind::SoftmaxCrossEntropy,
    )
    .expect("the layers fit")
    .with_seed(3000);
    let input = uniform(5, 2 * 9 * 8, 3001);
    let targets = classes(5, 6, 3002);
    let mut loops = <Level01 as Level<f64>>::network_from_spec(&spec);
    let mut other = L::network_from_spec(&spec);
    let (mut loops_sgd, mut other_sgd) = (
        Sgd::new(0.1).with_momentum(0.9),
        Sgd::new(0.1).with_momentum(0.9),
    );
    for _ in 0..3 {
        loops.train_step(input.view(), Targets::Classes(&targets), &mut loops_sgd);
        other.train_step(input.view(), Targets::Classes(&targets), &mut other_sgd);
    }
    let case = format!("{} vs level01, CNN after 3 momentum steps", L::NAME);
    compare_weights(&case, &mut loops, &mut other);
    let targets = Targets::Classes(&targets);
    compare_models(&case, &mut loops, &mut other, &input, targets, AGREEMENT);
}

/// Normalization and dropout inside the network: three momentum steps (the same masks, drawn
/// from the same seeds in the same order), then every parameter, gamma, beta and running
/// statistic, one more pass in training (layer norm), and the logits in evaluation mode. The
/// normalization backward subtracts each group's means from the gradient: cancelling sums.
fn agrees_with_level01_with_normalization_and_dropout<L: Level<f64>>() {
    for (norm, activation) in [
        (Norm::Batch, Activation::Sigmoid),
        (Norm::Layer, Activation::Relu),
    ] {
        let spec = MlpSpec {
            activation,
            norm,
            dropout: 0.3,
            ..MlpSpec::classifier(&[12, 10, 8, 4], 2100)
        };
        let input = uniform(9, 12, 2101);
        let targets = classes(9, 4, 2102);
        let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
        let mut other = L::mlp_from_spec(&spec);
        let optimizer = AnyOptimizer::Sgd(Sgd::new(0.2).with_momentum(0.9));
        let (mut loops_optimizer, mut other_optimizer) = (optimizer.clone(), optimizer);
        for _ in 0..3 {
            let targets = Targets::Classes(&targets);
            loops.train_step(input.view(), targets, &mut loops_optimizer);
            other.train_step(input.view(), targets, &mut other_optimizer);
        }
        let case = format!(
            "{} vs level01, {norm} norm, dropout 0.3, 3 momentum steps",
            L::NAME
        );
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        loops.visit_norms(|_, params| expected.push(norm_tensors(params)));
        other.visit_norms(|_, params| got.push(norm_tensors(params)));
        assert_eq!(expected.len(), 2, "{case}: two hidden layers, two norms");
        for (expected, got) in expected.iter().zip(&got) {
            for ((name, want), (_, have)) in expected.iter().zip(got) {
                close(&case, name, have.view(), want.view(), AGREEMENT_CANCELLING);
            }
        }
        for ((weight, bias), (other_weight, other_bias)) in
            loops.linear_params().iter().zip(&other.linear_params())
        {
            close(
                &case,
                "weight",
                other_weight.view(),
                weight.view(),
                AGREEMENT,
            );
            close(
                &case,
                "bias",
                other_bias.view(),
                bias.view(),
                AGREEMENT_CANCELLING,
            );
        }
        // A bias right before batch norm has gradient 0, so its computed value is rounding
        // noise (1e-17) that no relative tolerance can compare: the full pass is compared with
        // layer norm, the parameters above with both.
        if norm == Norm::Layer {
            let targets = Targets::Classes(&targets);
            compare_models(
                &case,
                &mut loops,
                &mut other,
                &input,
                targets,
                AGREEMENT_CANCELLING,
            );
        }
        loops.set_training(false);
        other.set_training(false);
        let case = format!("{case}, then evaluation mode");
        let (want, have) = (loops.forward(input.view()), other.forward(input.view()));
        close(
            &case,
            "logits",
            have.view(),
            want.view(),
            AGREEMENT_CANCELLING,
        );
    }
}

/// gamma, beta and their gradients (and the running statistics, if any), owned and named.
fn norm_tensors(params: NormMut<'_, f64>) -> Vec<(&'static str, Array1<f64>)> {
    let mut tensors = vec![
        ("gamma", params.gamma.to_owned()),
        ("beta", params.beta.to_owned()),
        ("dL/dgamma", params.grad_gamma.to_owned()),
        ("dL/dbeta", params.grad_beta.to_owned()),
    ];
    if let Some((mean, var)) = params.running {
        tensors.push(("running mean", mean.to_owned()));
        tensors.push(("running variance", var.to_owned()));
    }
    tensors
}

#[test]
fn level02_agrees_with_level01() {
    agrees_with_level01_on_forward_loss_and_gradients::<Level02>();
    agrees_with_level01_at_mnist_width::<Level02>();
    agrees_with_level01_after_three_sgd_steps::<Level02>();
    agrees_with_level01_with_normalization_and_dropout::<Level02>();
    agrees_with_level01_on_a_cnn_after_three_steps::<Level02>();
}

#[test]
fn level03_agrees_with_level01() {
    agrees_with_level01_on_forward_loss_and_gradients::<Level03>();
    agrees_with_level01_at_mnist_width::<Level03>();
    agrees_with_level01_after_three_sgd_steps::<Level03>();
    agrees_with_level01_with_normalization_and_dropout::<Level03>();
    agrees_with_level01_on_a_cnn_after_three_steps::<Level03>();
}
