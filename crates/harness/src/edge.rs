//! Edge cases: the inputs where backward passes usually break.

use backprop_core::gradcheck::model_gradients;
use backprop_core::{
    Activation, Layer, Level, LinearLayer, Loss, LossKind, MlpSpec, Model, Targets,
};
use ndarray::{Array1, Array2, array};

use crate::basic::check_model_against_reference;
use crate::expect::{self, close, gradients_pass, panics_with};
use crate::fixtures::{classes, uniform};
use crate::reference;
use crate::tolerance::{EXACT_F64, FINITE_DIFFERENCE_NETWORK, REFERENCE_F64};

fn relu_mlp<L: Level<f64>>(sizes: &[usize], seed: u64) -> L::Mlp {
    L::mlp_from_spec(&MlpSpec::classifier(sizes, seed))
}

/// A batch of one row: the batch sums and means still hold.
pub fn batch_of_one<L: Level<f64>>() {
    let input = uniform(1, 4, 70);
    for activation in Activation::ALL {
        let spec = MlpSpec {
            activation,
            ..MlpSpec::classifier(&[4, 6, 3], 71)
        };
        let mut model = L::mlp_from_spec(&spec);
        let check = format!("batch of one, {activation} MLP");
        check_model_against_reference(
            &check,
            &mut model,
            LossKind::SoftmaxCrossEntropy,
            &input,
            Targets::Classes(&[2]),
            REFERENCE_F64,
        );
        let reports = model_gradients(&mut model, input.view(), Targets::Classes(&[2]));
        gradients_pass(&check, &reports, FINITE_DIFFERENCE_NETWORK);
    }
}

/// Layers take a batch of 0 rows and return 0 rows; parameter gradients stay zero.
///
/// This is the documented behaviour for layers; losses panic instead (see
/// [`empty_batch_loss_panics`]).
pub fn empty_batch_layers_give_empty_outputs<L: Level<f64>>() {
    let check = "empty batch";
    let mut linear = L::linear(uniform(3, 2, 72), array![0.5, -0.5]);
    let output = linear.forward(Array2::zeros((0, 3)).view());
    assert_eq!(output.dim(), (0, 2), "{check}: Linear(3, 2) output shape");
    let grad_input = linear.backward(Array2::zeros((0, 2)).view());
    assert_eq!(
        grad_input.dim(),
        (0, 3),
        "{check}: Linear(3, 2) dL/dinput shape"
    );
    for (name, _, grad) in linear.params_mut().tensors() {
        assert!(
            grad.iter().all(|&g| g == 0.0),
            "{check}: dL/d{name} should stay zero after an empty batch, got {grad}"
        );
    }
    let empty = Array2::<f64>::zeros((0, 4));
    let shapes = [
        L::relu().forward(empty.view()).dim(),
        L::sigmoid().forward(empty.view()).dim(),
        L::tanh().forward(empty.view()).dim(),
    ];
    assert_eq!(
        shapes,
        [(0, 4); 3],
        "{check}: activation output shapes (relu, sigmoid, tanh)"
    );
}

/// A loss over an empty batch has no mean: it must panic saying so, not return NaN.
pub fn empty_batch_loss_panics<L: Level<f64>>() {
    let empty = Array2::<f64>::zeros((0, 3));
    panics_with("empty batch, softmax cross-entropy", "empty batch", || {
        L::softmax_cross_entropy().forward(empty.view(), Targets::Classes(&[]));
    });
    panics_with("empty batch, mse", "empty batch", || {
        L::mse().forward(empty.view(), Targets::Values(empty.view()));
    });
}

/// x = 0: the output is the bias on every row, dL/dW = x^T g = 0, dL/db = Σ g.
pub fn zero_inputs<L: Level<f64>>() {
    let check = "zero inputs";
    let weight = uniform(3, 2, 73);
    let bias = array![0.25, -0.75];
    let mut linear = L::linear(weight.clone(), bias.clone());
    let output = linear.forward(Array2::zeros((4, 3)).view());
    let expected = Array2::from_shape_fn((4, 2), |(_, col)| bias[col]);
    close(check, "output", output.view(), expected.view(), EXACT_F64);
    let upstream = uniform(4, 2, 74);
    let grad_input = linear.backward(upstream.view());
    let expected_grad_input = upstream.dot(&weight.t());
    close(
        check,
        "dL/dinput",
        grad_input.view(),
        expected_grad_input.view(),
        EXACT_F64,
    );
    let params = linear.params_mut();
    let zeros = Array2::<f64>::zeros((3, 2));
    close(
        check,
        "dL/dweight",
        params.grad_weight.view(),
        zeros.view(),
        EXACT_F64,
    );
    let column_sums = upstream.sum_axis(ndarray::Axis(0));
    close(
        check,
        "dL/dbias",
        params.grad_bias.view(),
        column_sums.view(),
        EXACT_F64,
    );
}

/// ReLU's gradient at exactly 0 is 0 (PyTorch's `F.relu`), alone and inside a net whose zero
/// input rows meet a zero bias.
pub fn relu_at_exactly_zero_has_zero_gradient<L: Level<f64>>() {
    let check = "ReLU at x = 0";
    let x = array![[0.0, 1.0, 0.0], [-1.0, 0.0, 2.0]];
    let upstream = array![[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]];
    let mut relu = L::relu();
    relu.forward(x.view());
    let grad_input = relu.backward(upstream.view());
    // dx = g where x > 0: the zeros at [0, 0], [0, 2], [1, 1] get no gradient.
    let expected = array![[0.0, 1.5, 0.0], [0.0, 0.0, 5.5]];
    close(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.view(),
        EXACT_F64,
    );

    // In a net: zero rows of x with a zero first bias give pre-activations of exactly 0.
    let mut layers = MlpSpec::classifier(&[3, 4, 2], 75).initial_params::<f64>();
    layers[0].1.fill(0.0);
    let mut model = L::mlp(layers, Activation::Relu, LossKind::SoftmaxCrossEntropy);
    let input = array![[0.0, 0.0, 0.0], [0.5, -1.0, 0.25], [0.0, 0.0, 0.0]];
    check_model_against_reference(
        "ReLU at x = 0, MLP [3, 4, 2] with zero rows and zero bias",
        &mut model,
        LossKind::SoftmaxCrossEntropy,
        &input,
        Targets::Classes(&[0, 1, 1]),
        REFERENCE_F64,
    );
}

/// Logits of ±1e3 and ±1e4 give a finite loss and gradient (the max shift at work).
pub fn huge_logits_give_finite_loss_and_gradient<L: Level<f64>>() {
    for scale in [1e3, 1e4] {
        let check = format!("logits of ±{scale:e}");
        // Row 0 is confident and right (loss 0); row 1 is confident and wrong (loss 2 scale).
        let logits = array![[1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]] * scale;
        let targets = [0, 0];
        let mut loss = L::softmax_cross_entropy();
        let value = loss.forward(logits.view(), Targets::Classes(&targets));
        let grad = loss.backward();
        let (expected_loss, expected_grad) =
            reference::softmax_cross_entropy(logits.view(), &targets);
        close(
            &check,
            "dL/dlogits",
            grad.view(),
            expected_grad.view(),
            REFERENCE_F64,
        );
        // L = (0 + 2 scale) / 2
        assert!(
            value.is_finite() && (value - scale).abs() <= EXACT_F64 * scale,
            "{check}: loss is {value}, expected {expected_loss} (subtract each row's max before exp)"
        );
    }
}

/// Every target the same class: the gradient of that column is negative, the rest positive.
pub fn all_targets_same_class<L: Level<f64>>() {
    let input = uniform(6, 4, 76);
    let targets = [2; 6];
    check_model_against_reference(
        "all targets class 2",
        &mut relu_mlp::<L>(&[4, 5, 3], 77),
        LossKind::SoftmaxCrossEntropy,
        &input,
        Targets::Classes(&targets),
        REFERENCE_F64,
    );
}

/// One output class: softmax is 1, so the loss and its gradient are exactly 0.
pub fn single_output_class<L: Level<f64>>() {
    let logits = uniform(4, 1, 78) * 10.0;
    let mut loss = L::softmax_cross_entropy();
    let value = loss.forward(logits.view(), Targets::Classes(&[0; 4]));
    let grad = loss.backward();
    assert_eq!(value, 0.0, "one class: loss should be exactly 0 (p = 1)");
    let zeros = Array2::<f64>::zeros((4, 1));
    close(
        "one class",
        "dL/dlogits",
        grad.view(),
        zeros.view(),
        EXACT_F64,
    );
}

/// A class index >= the number of classes panics and says so.
pub fn out_of_range_target_panics<L: Level<f64>>() {
    let logits = uniform(2, 3, 79);
    panics_with("target out of range", "out of range", || {
        L::softmax_cross_entropy().forward(logits.view(), Targets::Classes(&[1, 3]));
    });
}

/// A NaN in the input makes the loss NaN: documented propagation, never a silent number.
pub fn nan_input_propagates_to_the_loss<L: Level<f64>>() {
    let mut input = uniform(3, 4, 80);
    input[[1, 2]] = f64::NAN;
    for activation in Activation::ALL {
        let spec = MlpSpec {
            activation,
            ..MlpSpec::classifier(&[4, 5, 3], 81)
        };
        let mut model = L::mlp_from_spec(&spec);
        model.forward(input.view());
        let loss = model.loss(Targets::Classes(&[0, 1, 2]));
        assert!(
            loss.is_nan(),
            "NaN input, {activation} MLP: loss should be NaN, got {loss}"
        );
    }
}

/// `forward_into`/`backward_into` write every element (buffers pre-filled with NaN) and agree
/// with `forward`/`backward`.
pub fn into_forms_agree_with_allocating_forms<L: Level<f64>>() {
    let x = uniform(5, 4, 82);
    let weight = uniform(4, 3, 83);
    let bias = array![0.1, 0.2, -0.3];
    let upstream = uniform(5, 3, 84);
    let (mut allocating, mut into) = compare_into_forms(
        "Linear(4, 3)",
        L::linear(weight.clone(), bias.clone()),
        L::linear(weight, bias),
        &x,
        &upstream,
    );
    let pairs = into.params_mut().tensors().into_iter();
    for ((name, _, ours), (_, _, theirs)) in pairs.zip(allocating.params_mut().tensors()) {
        let check = "Linear(4, 3) *_into forms";
        close(
            check,
            &format!("dL/d{name}"),
            ours.view(),
            theirs.view(),
            0.0,
        );
    }
    let upstream = uniform(5, 4, 85);
    compare_into_forms("relu", L::relu(), L::relu(), &x, &upstream);
    compare_into_forms("sigmoid", L::sigmoid(), L::sigmoid(), &x, &upstream);
    compare_into_forms("tanh", L::tanh(), L::tanh(), &x, &upstream);

    let targets = classes(5, 4, 86);
    let mut allocating = L::softmax_cross_entropy();
    let mut into = L::softmax_cross_entropy();
    allocating.forward(x.view(), Targets::Classes(&targets));
    into.forward(x.view(), Targets::Classes(&targets));
    let expected = allocating.backward();
    let mut buffer = Array2::from_elem(x.dim(), f64::NAN);
    into.backward_into(buffer.view_mut());
    let check = "softmax cross-entropy backward_into";
    close(check, "dL/dlogits", buffer.view(), expected.view(), 0.0);
}

/// Runs both forms and compares outputs and input gradients; returns the two layers (a
/// `Linear`'s parameter gradients are compared by the caller).
fn compare_into_forms<Ly: Layer<f64>>(
    name: &str,
    mut allocating: Ly,
    mut into: Ly,
    input: &Array2<f64>,
    upstream: &Array2<f64>,
) -> (Ly, Ly) {
    let check = format!("{name} *_into forms");
    let output = allocating.forward(input.view());
    let mut output_buffer = Array2::from_elem(output.dim(), f64::NAN);
    into.forward_into(input.view(), output_buffer.view_mut());
    close(&check, "output", output_buffer.view(), output.view(), 0.0);

    let grad_input = allocating.backward(upstream.view());
    let mut grad_buffer = Array2::from_elem(input.dim(), f64::NAN);
    into.backward_into(upstream.view(), grad_buffer.view_mut());
    close(
        &check,
        "dL/dinput",
        grad_buffer.view(),
        grad_input.view(),
        0.0,
    );
    (allocating, into)
}

/// The gradient rule: a second backward without `zero_grad` doubles every parameter gradient;
/// `zero_grad` sets them to 0; the next backward gives the single-pass gradient again.
pub fn gradients_accumulate_until_zero_grad<L: Level<f64>>() {
    let input = uniform(4, 3, 87);
    let targets = [0, 2, 1, 1];
    let mut model = relu_mlp::<L>(&[3, 5, 3], 88);
    let pass = |model: &mut L::Mlp| {
        model.forward(input.view());
        model.loss(Targets::Classes(&targets));
        model.backward();
    };
    model.zero_grad();
    pass(&mut model);
    let once = expect::model_gradients(&mut model);
    pass(&mut model);
    let twice = expect::model_gradients(&mut model);
    for ((name, single), (_, double)) in once.iter().zip(&twice) {
        let check = "second backward without zero_grad (gradients accumulate: += not =)";
        close(
            check,
            &format!("dL/d{name}"),
            double.view(),
            (single * 2.0).view(),
            EXACT_F64,
        );
    }
    model.zero_grad();
    for (name, grad) in expect::model_gradients(&mut model) {
        assert!(
            grad.iter().all(|&g| g == 0.0),
            "after zero_grad: dL/d{name} is {grad}, not 0"
        );
    }
    pass(&mut model);
    for ((name, again), (_, single)) in expect::model_gradients(&mut model).iter().zip(&once) {
        close(
            "backward after zero_grad",
            &format!("dL/d{name}"),
            again.view(),
            single.view(),
            EXACT_F64,
        );
    }
}

/// `backward` uses the caches of the latest `forward`, not of an earlier one.
pub fn backward_uses_the_latest_forward<L: Level<f64>>() {
    let stale = uniform(4, 3, 89) * 5.0;
    let input = uniform(4, 3, 90);
    let targets = [1, 0, 2, 1];
    let mut model = relu_mlp::<L>(&[3, 6, 3], 91);
    model.forward(stale.view());
    model.loss(Targets::Classes(&[0, 0, 0, 0]));
    model.backward();
    check_model_against_reference(
        "backward after a second forward (stale cache?)",
        &mut model,
        LossKind::SoftmaxCrossEntropy,
        &input,
        Targets::Classes(&targets),
        REFERENCE_F64,
    );
    // The same for one activation layer, forward twice before backward.
    let upstream = uniform(4, 3, 92);
    let mut sigmoid = L::sigmoid();
    sigmoid.forward(stale.view());
    sigmoid.forward(input.view());
    let grad_input = sigmoid.backward(upstream.view());
    let expected =
        reference::activation_backward(Activation::Sigmoid, input.view(), upstream.view());
    let check = "sigmoid backward after a second forward (stale cache?)";
    close(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.view(),
        REFERENCE_F64,
    );
}

/// Shape errors are programmer errors: a panic naming both shapes.
pub fn shape_mismatch_panics_with_both_shapes<L: Level<f64>>() {
    let weight = uniform(5, 3, 93);
    let bias = Array1::zeros(3);
    let wrong_input = uniform(4, 3, 94);
    let check = "Linear(5, 3) forward on a (4, 3) batch";
    panics_with(check, "(4, 3)", || {
        L::linear(weight.clone(), bias.clone()).forward(wrong_input.view());
    });
    panics_with(check, "5", || {
        L::linear(weight.clone(), bias.clone()).forward(wrong_input.view());
    });
    let check = "Linear(5, 3) backward with a (4, 2) grad_output";
    panics_with(check, "(4, 2)", || {
        let mut linear = L::linear(weight.clone(), bias.clone());
        linear.forward(uniform(4, 5, 95).view());
        linear.backward(Array2::zeros((4, 2)).view());
    });
}
