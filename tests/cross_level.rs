//! level01 (loops) and level02 (ndarray) built from the same seed compute the same numbers:
//! forward values, loss, every gradient, and the weights after a few SGD steps, in f64, to a
//! relative error below 1e-12 (only the order of the additions differs).
//!
//! One case is held to 1e-10 instead: at MNIST width, dL/dinput sums 32 products of about 1e-4
//! that cancel to about 1e-8, and level02's matrix product (matrixmultiply, fused multiply-add)
//! rounds each step differently from level01's `sum += a * b`; the relative error of such an
//! entry reaches 4.5e-12 while every large entry agrees to 1e-15.

use backprop_core::{Activation, Level, LossKind, MlpSpec, Model, Targets};
use backprop_harness::expect::{close, close_scalar, model_gradients};
use backprop_harness::fixtures::{classes, uniform};
use level01::Level01;
use level02::Level02;
use ndarray::Array2;

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

fn compare_models(
    case: &str,
    loops: &mut <Level01 as Level<f64>>::Mlp,
    arrays: &mut <Level02 as Level<f64>>::Mlp,
    input: &Array2<f64>,
    targets: Targets<'_, f64>,
    tolerance: f64,
) {
    loops.zero_grad();
    arrays.zero_grad();
    let logits = (loops.forward(input.view()), arrays.forward(input.view()));
    close(case, "logits", logits.0.view(), logits.1.view(), tolerance);
    let loss = (loops.loss(targets), arrays.loss(targets));
    close_scalar(case, "loss", loss.0, loss.1, tolerance);
    let grad_input = (loops.backward(), arrays.backward());
    let (ours, theirs) = (grad_input.0.view(), grad_input.1.view());
    close(case, "dL/dinput", ours, theirs, tolerance);
    for ((name, ours), (_, theirs)) in model_gradients(loops).iter().zip(&model_gradients(arrays)) {
        close(
            case,
            &format!("dL/d{name}"),
            ours.view(),
            theirs.view(),
            tolerance,
        );
    }
}

#[test]
fn level01_and_level02_agree_on_forward_loss_and_gradients() {
    for (index, &(batch, sizes, activation, loss)) in CASES.iter().enumerate() {
        let seed = 1000 + index as u64;
        let spec = MlpSpec {
            activation,
            loss,
            ..MlpSpec::classifier(sizes, seed)
        };
        let case = format!("{activation} MLP {sizes:?}, batch {batch}, {loss:?}");
        let input = uniform(batch, sizes[0], seed + 1);
        let outputs = *sizes.last().unwrap();
        let class_targets = classes(batch, outputs, seed + 2);
        let value_targets = uniform(batch, outputs, seed + 3);
        let targets = match loss {
            LossKind::SoftmaxCrossEntropy => Targets::Classes(&class_targets),
            LossKind::Mse => Targets::Values(value_targets.view()),
        };
        let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
        let mut arrays = <Level02 as Level<f64>>::mlp_from_spec(&spec);
        compare_models(&case, &mut loops, &mut arrays, &input, targets, AGREEMENT);
    }
}

#[test]
fn level01_and_level02_agree_at_mnist_width() {
    let spec = MlpSpec {
        activation: Activation::Sigmoid,
        ..MlpSpec::classifier(&[784, 32, 10], 1500)
    };
    let input = uniform(16, 784, 1501).mapv(|x| x.abs());
    let targets = classes(16, 10, 1502);
    let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
    let mut arrays = <Level02 as Level<f64>>::mlp_from_spec(&spec);
    let case = "sigmoid MLP [784, 32, 10], batch 16";
    let targets = Targets::Classes(&targets);
    compare_models(
        case,
        &mut loops,
        &mut arrays,
        &input,
        targets,
        AGREEMENT_CANCELLING,
    );
}

#[test]
fn level01_and_level02_agree_after_three_sgd_steps() {
    let spec = MlpSpec::classifier(&[20, 16, 5], 2000);
    let input = uniform(12, 20, 2001);
    let targets = classes(12, 5, 2002);
    let mut loops = <Level01 as Level<f64>>::mlp_from_spec(&spec);
    let mut arrays = <Level02 as Level<f64>>::mlp_from_spec(&spec);
    for _ in 0..3 {
        loops.train_step(input.view(), Targets::Classes(&targets), 0.3);
        arrays.train_step(input.view(), Targets::Classes(&targets), 0.3);
    }
    for ((weight, bias), (other_weight, other_bias)) in
        loops.linear_params().iter().zip(&arrays.linear_params())
    {
        let case = "weights after 3 SGD steps";
        close(
            case,
            "weight",
            weight.view(),
            other_weight.view(),
            AGREEMENT,
        );
        close(case, "bias", bias.view(), other_bias.view(), AGREEMENT);
    }
    let targets = Targets::Classes(&targets);
    compare_models(
        "after 3 SGD steps",
        &mut loops,
        &mut arrays,
        &input,
        targets,
        AGREEMENT,
    );
}
