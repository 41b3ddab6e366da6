//! Basic checks: hand-checkable values for every layer and loss, and success-level gates 1-3.
//!
//! Backward passes are driven by a non-uniform upstream gradient g (never all ones: a plain sum
//! hides transposes and broadcasting bugs).

use backprop_core::gradcheck::{
    layer_gradients, linear_gradients, loss_gradients, model_gradients,
};
use backprop_core::{
    Activation, Layer, Level, LinearLayer, Loss, LossKind, MlpSpec, Model, Targets,
};
use ndarray::{Array1, Array2, arr0, array};

use crate::diagnosis::{Evidence, Subject};
use crate::expect::{self, close, close_with, gradients_pass};
use crate::fixtures::{classes, uniform};
use crate::reference;
use crate::tolerance::{
    EXACT_F64, FINITE_DIFFERENCE_LAYER, FINITE_DIFFERENCE_NETWORK, REFERENCE_F64,
};

/// What a layer should give: its output and dL/d(input).
struct Expected<'a> {
    output: &'a Array2<f64>,
    grad_input: &'a Array2<f64>,
}

/// Runs `layer` (a `subject`) forward on `input` and backward under `upstream`, and compares the
/// output and dL/d(input) with the expected values.
#[track_caller]
fn check_layer<Ly: Layer<f64> + ?Sized>(
    (check, subject): (&str, Subject),
    layer: &mut Ly,
    (input, upstream): (&Array2<f64>, &Array2<f64>),
    expected: Expected<'_>,
    tolerance: f64,
) {
    let output = layer.forward(input.view());
    close(
        check,
        "output",
        output.view(),
        expected.output.view(),
        tolerance,
    );
    let grad_input = layer.backward(upstream.view());
    let evidence = Evidence {
        earlier_matched: true,
        ..Evidence::layer(subject, input.view(), upstream.view())
    };
    close_with(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.grad_input.view(),
        tolerance,
        &evidence,
    );
}

/// [`check_layer`] for a fresh `Linear` layer, then dL/dW and dL/db against `grad_weight` and
/// `grad_bias`.
#[track_caller]
fn check_linear<Ly: LinearLayer<f64>>(
    check: &str,
    layer: &mut Ly,
    (input, upstream): (&Array2<f64>, &Array2<f64>),
    expected: Expected<'_>,
    (grad_weight, grad_bias): (&Array2<f64>, &Array1<f64>),
    tolerance: f64,
) {
    let weight = layer.params_mut().weight.to_owned();
    let linear = (check, Subject::Linear);
    check_layer(linear, layer, (input, upstream), expected, tolerance);
    // The output and dL/dinput matched (else check_layer stopped): evidence for the next two.
    let evidence = Evidence {
        weight: Some(weight.view()),
        earlier_matched: true,
        ..Evidence::layer(Subject::Linear, input.view(), upstream.view())
    };
    let params = layer.params_mut();
    let ours = params.grad_weight.view();
    close_with(
        check,
        "dL/dweight",
        ours,
        grad_weight.view(),
        tolerance,
        &evidence,
    );
    let ours = params.grad_bias.view();
    close_with(
        check,
        "dL/dbias",
        ours,
        grad_bias.view(),
        tolerance,
        &evidence,
    );
}

/// Compares a loss value and its gradient with the expected ones.
#[track_caller]
fn check_loss<'a, Lo: Loss<f64>>(
    (check, subject): (&str, Subject),
    loss: &mut Lo,
    (input, targets): (&'a Array2<f64>, Targets<'a, f64>),
    expected_loss: f64,
    expected_grad: &Array2<f64>,
    tolerance: f64,
) {
    let value = loss.forward(input.view(), targets);
    let grad = loss.backward();
    let evidence = Evidence::loss(subject, input.view(), targets);
    close_with(
        check,
        "dL/dlogits",
        grad.view(),
        expected_grad.view(),
        tolerance,
        &evidence,
    );
    let evidence = Evidence {
        earlier_matched: true,
        ..evidence
    };
    let (value, expected_loss) = (arr0(value), arr0(expected_loss));
    close_with(
        check,
        "loss",
        value.view(),
        expected_loss.view(),
        tolerance,
        &evidence,
    );
}

/// `y = x W + b` on a 2x3 batch, worked out by hand.
pub fn linear_forward_matches_hand_computation<L: Level<f64>>() {
    let x = array![[1.0, 2.0, 3.0], [-1.0, 0.0, 2.0]];
    let weight = array![[0.5, -1.0], [2.0, 0.0], [-1.0, 1.0]];
    let mut layer = L::linear(weight, array![0.1, -0.2]);
    // row 0: [1*0.5 + 2*2 + 3*(-1), 1*(-1) + 2*0 + 3*1] + b = [1.5, 2] + [0.1, -0.2]
    // row 1: [-1*0.5 + 0*2 + 2*(-1), -1*(-1) + 0*0 + 2*1] + b = [-2.5, 3] + [0.1, -0.2]
    let expected = array![[1.6, 1.8], [-2.4, 2.8]];
    let output = layer.forward(x.view());
    close(
        "linear forward",
        "output",
        output.view(),
        expected.view(),
        EXACT_F64,
    );
}

/// dL/dW = x^T g, dL/db = Σ_rows g, dL/dx = g W^T on the same batch, by hand.
pub fn linear_backward_matches_hand_computation<L: Level<f64>>() {
    let x = array![[1.0, 2.0, 3.0], [-1.0, 0.0, 2.0]];
    let weight = array![[0.5, -1.0], [2.0, 0.0], [-1.0, 1.0]];
    let upstream = array![[1.0, 2.0], [3.0, -1.0]];
    // dW = x^T g = [[1,-1],[2,0],[3,2]] . [[1,2],[3,-1]]
    //    = [[1-3, 2+1], [2, 4], [3+6, 6-2]]
    let grad_weight = array![[-2.0, 3.0], [2.0, 4.0], [9.0, 4.0]];
    // db = [1 + 3, 2 - 1]
    let grad_bias = array![4.0, 1.0];
    // dx = g W^T: row 0 = 1*[0.5, 2, -1] + 2*[-1, 0, 1]; row 1 = 3*[0.5, 2, -1] - [-1, 0, 1]
    let grad_input = array![[-1.5, 2.0, 1.0], [2.5, 6.0, -4.0]];
    check_linear(
        "linear backward",
        &mut L::linear(weight, array![0.1, -0.2]),
        (&x, &upstream),
        Expected {
            output: &array![[1.6, 1.8], [-2.4, 2.8]],
            grad_input: &grad_input,
        },
        (&grad_weight, &grad_bias),
        EXACT_F64,
    );
}

/// ReLU passes positive inputs and their gradients, and blocks the rest (0 included).
pub fn relu_matches_hand_computation<L: Level<f64>>() {
    let x = array![[-1.0, 0.0, 2.0], [3.0, -0.5, 0.25]];
    let upstream = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    // y = max(0, x); dx = g where x > 0
    let output = array![[0.0, 0.0, 2.0], [3.0, 0.0, 0.25]];
    let grad_input = array![[0.0, 0.0, 3.0], [4.0, 0.0, 6.0]];
    check_layer(
        ("relu", Subject::Activation(Activation::Relu)),
        &mut L::relu(),
        (&x, &upstream),
        Expected {
            output: &output,
            grad_input: &grad_input,
        },
        EXACT_F64,
    );
}

/// Sigmoid at 0 and ±ln 3, where it takes exact values.
pub fn sigmoid_matches_hand_computation<L: Level<f64>>() {
    let ln3 = 3f64.ln();
    let x = array![[0.0, ln3, -ln3]];
    let upstream = array![[1.0, 2.0, -4.0]];
    // s(0) = 1/2; s(ln 3) = 1/(1 + 1/3) = 3/4; s(-ln 3) = 1/(1 + 3) = 1/4
    let output = array![[0.5, 0.75, 0.25]];
    // s(1 - s) = [1/4, 3/16, 3/16], times g = [1, 2, -4]
    let grad_input = array![[0.25, 0.375, -0.75]];
    check_layer(
        ("sigmoid", Subject::Activation(Activation::Sigmoid)),
        &mut L::sigmoid(),
        (&x, &upstream),
        Expected {
            output: &output,
            grad_input: &grad_input,
        },
        EXACT_F64,
    );
}

/// Tanh at 0 and ±ln 2, where it takes exact values.
pub fn tanh_matches_hand_computation<L: Level<f64>>() {
    let ln2 = 2f64.ln();
    let x = array![[0.0, ln2, -ln2]];
    let upstream = array![[1.0, 2.0, -4.0]];
    // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6
    let output = array![[0.0, 0.6, -0.6]];
    // 1 - t^2 = [1, 0.64, 0.64], times g = [1, 2, -4]
    let grad_input = array![[1.0, 1.28, -2.56]];
    check_layer(
        ("tanh", Subject::Activation(Activation::Tanh)),
        &mut L::tanh(),
        (&x, &upstream),
        Expected {
            output: &output,
            grad_input: &grad_input,
        },
        EXACT_F64,
    );
}

/// Softmax cross-entropy on logits whose exponentials are small integers.
pub fn softmax_cross_entropy_matches_hand_computation<L: Level<f64>>() {
    let (ln2, ln3, ln5) = (2f64.ln(), 3f64.ln(), 5f64.ln());
    // row 0: e^z = [1, 2, 5], p = [1/8, 2/8, 5/8], target 2: -ln(5/8)
    // row 1: e^z = [3, 1, 1], p = [3/5, 1/5, 1/5], target 1: -ln(1/5)
    let logits = array![[0.0, ln2, ln5], [ln3, 0.0, 0.0]];
    // L = (ln(8/5) + ln 5) / 2 = ln(8) / 2 = 1.5 ln 2
    let loss = 1.5 * ln2;
    // dL/dz = (p - onehot) / 2
    let grad = array![[1.0 / 16.0, 1.0 / 8.0, -3.0 / 16.0], [0.3, -0.4, 0.1]];
    let mut layer = L::softmax_cross_entropy();
    check_loss(
        ("softmax cross-entropy", Subject::SoftmaxCrossEntropy),
        &mut layer,
        (&logits, Targets::Classes(&[2, 1])),
        loss,
        &grad,
        EXACT_F64,
    );
}

/// Mean squared error over all four elements.
pub fn mse_matches_hand_computation<L: Level<f64>>() {
    let predictions = array![[1.0, 2.0], [3.0, 4.0]];
    let targets = array![[0.0, 2.0], [5.0, 4.0]];
    // p - t = [[1, 0], [-2, 0]]: L = (1 + 4) / 4; dL/dp = 2 (p - t) / 4
    let grad = array![[0.5, 0.0], [-1.0, 0.0]];
    let mut layer = L::mse();
    check_loss(
        ("mse", Subject::Mse),
        &mut layer,
        (&predictions, Targets::Values(targets.view())),
        1.25,
        &grad,
        EXACT_F64,
    );
}

/// **Success level 1**: each layer's and loss's backward on random data matches the reference
/// formulas (a square `Linear` first, so a transposed weight cannot hide behind a shape error).
pub fn gate1_single_layer_backward<L: Level<f64>>() {
    let check = "gate 1 (single layer backward)";
    // Linear, square then rectangular.
    for (batch, fan_in, fan_out, seed) in [(5, 4, 4, 1), (6, 5, 3, 2)] {
        let x = uniform(batch, fan_in, seed);
        let weight = uniform(fan_in, fan_out, seed + 10);
        let bias = uniform(1, fan_out, seed + 20).row(0).to_owned();
        let upstream = uniform(batch, fan_out, seed + 30);
        let (grad_input, grad_weight, grad_bias) =
            reference::linear_backward(x.view(), &weight, upstream.view());
        check_linear(
            &format!("{check}, Linear({fan_in}, {fan_out})"),
            &mut L::linear(weight.clone(), bias.clone()),
            (&x, &upstream),
            Expected {
                output: &reference::linear_forward(x.view(), &weight, &bias),
                grad_input: &grad_input,
            },
            (&grad_weight, &grad_bias),
            REFERENCE_F64,
        );
    }
    // Activations, elementwise.
    let x = uniform(6, 5, 3) * 3.0;
    let upstream = uniform(6, 5, 4);
    for activation in Activation::ALL {
        let output = reference::activation_forward(activation, x.view());
        let grad_input = reference::activation_backward(activation, x.view(), upstream.view());
        let context = format!("{check}, {activation}");
        let expected = Expected {
            output: &output,
            grad_input: &grad_input,
        };
        let mut layer = L::activation(activation);
        let subject = Subject::Activation(activation);
        let inputs = (&x, &upstream);
        check_layer(
            (&context, subject),
            &mut layer,
            inputs,
            expected,
            REFERENCE_F64,
        );
    }
    // Losses.
    let logits = uniform(6, 4, 5) * 4.0;
    let targets = classes(6, 4, 6);
    let (loss, grad) = reference::softmax_cross_entropy(logits.view(), &targets);
    check_loss(
        (
            &format!("{check}, softmax cross-entropy"),
            Subject::SoftmaxCrossEntropy,
        ),
        &mut L::softmax_cross_entropy(),
        (&logits, Targets::Classes(&targets)),
        loss,
        &grad,
        REFERENCE_F64,
    );
    let values = uniform(6, 4, 7);
    let (loss, grad) = reference::mse(logits.view(), values.view());
    check_loss(
        (&format!("{check}, mse"), Subject::Mse),
        &mut L::mse(),
        (&logits, Targets::Values(values.view())),
        loss,
        &grad,
        REFERENCE_F64,
    );
}

/// The Linear layers `visit_linears` gave (`params`) must chain from the input's `features` to
/// the `logits_width` the network's forward gives: the reference pass is built from them.
#[track_caller]
fn visited_layers_make_the_network(
    check: &str,
    params: &backprop_core::LinearParams<f64>,
    features: usize,
    logits_width: usize,
) {
    let chained = backprop_core::model::chain_break(params, Some(features)).is_none();
    let ends = params.last().map(|(weight, _)| weight.ncols()) == Some(logits_width);
    if chained && ends {
        return;
    }
    let shapes: Vec<String> = params
        .iter()
        .map(|(weight, _)| format!("{:?}", weight.shape()))
        .collect();
    panic!(
        "{check}: visit_linears visited {} Linear layer(s) with weights [{}], but forward takes \
         {features} input features to {logits_width} logits: the visited layers do not make \
         that network. visit_linears must hand every Linear layer to its callback, in order \
         (the optimizers and every check reach the weights through it), and forward must run \
         exactly those layers (read hints/hint-3-full-network.md)",
        params.len(),
        shapes.join(", ")
    );
}

/// Runs one forward/loss/backward of `model` and compares everything with the reference pass.
#[track_caller]
pub(crate) fn check_model_against_reference<M: Model<f64>>(
    check: &str,
    model: &mut M,
    loss_kind: LossKind,
    input: &Array2<f64>,
    targets: Targets<'_, f64>,
    tolerance: f64,
) {
    let params = model.linear_params();
    let logits_width = model.forward(input.view()).ncols();
    visited_layers_make_the_network(check, &params, input.ncols(), logits_width);
    let expected = reference::mlp(
        &params,
        model.activation(),
        loss_kind,
        input.view(),
        targets,
    );
    let evidence = Evidence::network(input.nrows());
    model.zero_grad();
    let logits = model.forward(input.view());
    close_with(
        check,
        "logits",
        logits.view(),
        expected.logits.view(),
        tolerance,
        &evidence,
    );
    let loss = model.loss(targets);
    let after_logits = Evidence {
        earlier_matched: true,
        ..evidence
    };
    let (loss, expected_loss) = (arr0(loss), arr0(expected.loss));
    close_with(
        check,
        "loss",
        loss.view(),
        expected_loss.view(),
        tolerance,
        &after_logits,
    );
    let grad_input = model.backward();
    let grads = expect::parameter_gradients(model);
    assert_eq!(
        grads.len(),
        2 * expected.grad_params.len(),
        "{check}: visit_linears should visit each of the {} Linear layers once",
        expected.grad_params.len()
    );
    for (pair, (grad_weight, grad_bias)) in grads.chunks(2).zip(&expected.grad_params) {
        let (weight_name, weight_grad) = &pair[0];
        let (bias_name, bias_grad) = &pair[1];
        let expected_weight = grad_weight.view().into_dyn();
        close_with(
            check,
            &format!("dL/d{weight_name}"),
            weight_grad.view(),
            expected_weight,
            tolerance,
            &evidence,
        );
        let expected_bias = grad_bias.view().into_dyn();
        close_with(
            check,
            &format!("dL/d{bias_name}"),
            bias_grad.view(),
            expected_bias,
            tolerance,
            &evidence,
        );
    }
    close_with(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.grad_input.view(),
        tolerance,
        &evidence,
    );
}

/// **Success level 2**: a whole MLP's backward matches the reference pass: [5, 7, 6, 4] with
/// each activation and softmax cross-entropy, and a sigmoid net with MSE.
pub fn gate2_multi_layer_backward<L: Level<f64>>() {
    let input = uniform(8, 5, 40);
    let targets = classes(8, 4, 41);
    for activation in Activation::ALL {
        let spec = MlpSpec {
            activation,
            ..MlpSpec::classifier(&[5, 7, 6, 4], 42)
        };
        check_model_against_reference(
            &format!("gate 2 (multi-layer backward), {activation} MLP [5, 7, 6, 4]"),
            &mut L::mlp_from_spec(&spec),
            LossKind::SoftmaxCrossEntropy,
            &input,
            Targets::Classes(&targets),
            REFERENCE_F64,
        );
    }
    let values = uniform(8, 3, 43);
    let spec = MlpSpec {
        activation: Activation::Sigmoid,
        loss: LossKind::Mse,
        ..MlpSpec::classifier(&[5, 6, 3], 44)
    };
    check_model_against_reference(
        "gate 2 (multi-layer backward), sigmoid MLP [5, 6, 3] with MSE",
        &mut L::mlp_from_spec(&spec),
        LossKind::Mse,
        &input,
        Targets::Values(values.view()),
        REFERENCE_F64,
    );
}

/// **Success level 3, layers**: every gradient of every layer and loss matches central
/// differences in f64 (tolerance 1e-7).
pub fn gate3_finite_differences_layers<L: Level<f64>>() {
    let check = "gate 3 (finite differences)";
    let x = uniform(4, 5, 50) * 2.0;
    let weight = uniform(5, 3, 51);
    let bias = Array1::from_vec(vec![0.1, -0.3, 0.2]);
    let upstream = uniform(4, 3, 52);
    let reports = linear_gradients(&mut L::linear(weight, bias), x.view(), upstream.view());
    gradients_pass(
        &format!("{check}, Linear(5, 3)"),
        &reports,
        FINITE_DIFFERENCE_LAYER,
    );

    let upstream = uniform(4, 5, 53);
    for activation in Activation::ALL {
        let is_relu = activation == Activation::Relu;
        let mut layer = L::activation(activation);
        let report = layer_gradients(&mut layer, x.view(), upstream.view(), is_relu);
        gradients_pass(
            &format!("{check}, {activation}"),
            &[report],
            FINITE_DIFFERENCE_LAYER,
        );
    }

    let targets = classes(4, 5, 54);
    let report = loss_gradients(
        &mut L::softmax_cross_entropy(),
        x.view(),
        Targets::Classes(&targets),
    );
    gradients_pass(
        &format!("{check}, softmax cross-entropy"),
        &[report],
        FINITE_DIFFERENCE_LAYER,
    );
    let values = uniform(4, 5, 55);
    let report = loss_gradients(&mut L::mse(), x.view(), Targets::Values(values.view()));
    gradients_pass(&format!("{check}, mse"), &[report], FINITE_DIFFERENCE_LAYER);
}

/// **Success level 3, networks**: a 3-layer MLP [4, 6, 5, 3] with each activation matches
/// central differences over every parameter and the input (tolerance 1e-5), and a tanh net
/// with MSE too.
pub fn gate3_finite_differences_mlp<L: Level<f64>>() {
    let input = uniform(5, 4, 60);
    let targets = classes(5, 3, 61);
    for activation in Activation::ALL {
        let spec = MlpSpec {
            activation,
            ..MlpSpec::classifier(&[4, 6, 5, 3], 62)
        };
        let reports = model_gradients(
            &mut L::mlp_from_spec(&spec),
            input.view(),
            Targets::Classes(&targets),
        );
        let check = format!("gate 3 (finite differences), {activation} MLP [4, 6, 5, 3]");
        gradients_pass(&check, &reports, FINITE_DIFFERENCE_NETWORK);
    }
    let values = uniform(5, 3, 63);
    let spec = MlpSpec {
        activation: Activation::Tanh,
        loss: LossKind::Mse,
        ..MlpSpec::classifier(&[4, 6, 5, 3], 64)
    };
    let reports = model_gradients(
        &mut L::mlp_from_spec(&spec),
        input.view(),
        Targets::Values(values.view()),
    );
    gradients_pass(
        "gate 3 (finite differences), tanh MLP with MSE",
        &reports,
        FINITE_DIFFERENCE_NETWORK,
    );
}
