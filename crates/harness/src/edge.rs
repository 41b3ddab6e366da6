//! Edge cases: the inputs where backward passes usually break.

use backprop_core::gradcheck::model_gradients;
use backprop_core::{
    Activation, Float, Layer, Level, LinearLayer, Loss, LossKind, MlpSpec, Model, Targets,
};
use ndarray::{Array1, Array2, ArrayView2, ShapeBuilder, arr0, array, s};

use crate::basic::check_model_against_reference;
use crate::diagnosis::{Evidence, Pass, Subject};
use crate::expect::{self, close, close_with, gradients_pass, panics_naming, panics_with};
use crate::fixtures::{classes, uniform};
use crate::reference;
use crate::tolerance::{EXACT_F64, FINITE_DIFFERENCE_NETWORK, REFERENCE_F64};

fn relu_mlp<L: Level<f64>>(sizes: &[usize], seed: u64) -> L::Network {
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

/// A loss over an empty batch has no mean: it must panic saying so (in any words: empty, no
/// rows, 0 rows), not return NaN.
pub fn empty_batch_loss_panics<L: Level<f64>>() {
    let empty = Array2::<f64>::zeros((0, 3));
    let (problem, words) = (
        "the empty batch",
        &["empty", "no rows", "0 rows", "zero rows"][..],
    );
    panics_naming("empty batch, softmax cross-entropy", problem, words, || {
        L::softmax_cross_entropy().forward(empty.view(), Targets::Classes(&[]));
    });
    panics_naming("empty batch, mse", problem, words, || {
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
    let relu_layer = Subject::Activation(Activation::Relu);
    close_with(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.view(),
        EXACT_F64,
        &Evidence::layer(relu_layer, x.view(), upstream.view()),
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
        let evidence = Evidence::loss(
            Subject::SoftmaxCrossEntropy,
            logits.view(),
            Targets::Classes(&targets),
        );
        close_with(
            &check,
            "dL/dlogits",
            grad.view(),
            expected_grad.view(),
            REFERENCE_F64,
            &evidence,
        );
        // L = (0 + 2 scale) / 2
        assert_eq!(expected_loss, scale, "the reference's own loss");
        let evidence = Evidence {
            earlier_matched: true,
            ..evidence
        };
        let (value, expected_loss) = (arr0(value), arr0(expected_loss));
        close_with(
            &check,
            "loss",
            value.view(),
            expected_loss.view(),
            EXACT_F64,
            &evidence,
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

/// A class index >= the number of classes panics and says so (in any words naming the range,
/// the class or the target: Rust's own "index out of bounds" names none of them).
pub fn out_of_range_target_panics<L: Level<f64>>() {
    let logits = uniform(2, 3, 79);
    let words = ["out of range", "class", "target", "label"];
    panics_naming(
        "target out of range",
        "the class index 3 of 3 classes",
        &words,
        || {
            L::softmax_cross_entropy().forward(logits.view(), Targets::Classes(&[1, 3]));
        },
    );
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
pub(crate) fn compare_into_forms<Ly: Layer<f64>>(
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
    let pass = |model: &mut L::Network| {
        model.forward(input.view());
        model.loss(Targets::Classes(&targets));
        model.backward();
    };
    model.zero_grad();
    pass(&mut model);
    let once = expect::parameter_gradients(&mut model);
    pass(&mut model);
    let twice = expect::parameter_gradients(&mut model);
    for ((name, single), (_, double)) in once.iter().zip(&twice) {
        let check = "second backward without zero_grad (gradients accumulate: += not =)";
        let evidence = Evidence {
            pass: Pass::SecondWithoutZeroGrad,
            ..Evidence::network(input.nrows())
        };
        close_with(
            check,
            &format!("dL/d{name}"),
            double.view(),
            (single * 2.0).view(),
            EXACT_F64,
            &evidence,
        );
    }
    model.zero_grad();
    for (name, grad) in expect::parameter_gradients(&mut model) {
        assert!(
            grad.iter().all(|&g| g == 0.0),
            "after zero_grad: dL/d{name} is {grad}, not 0"
        );
    }
    pass(&mut model);
    for ((name, again), (_, single)) in expect::parameter_gradients(&mut model).iter().zip(&once) {
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

/// Activations at |x| up to 1e4, in f32 and f64: outputs within [0, 1] (sigmoid) or [-1, 1]
/// (tanh) and gradients finite and right, where a naive e^x / (1 + e^x) is inf / inf = NaN past
/// x = 88.7 (f32) or 709.8 (f64).
pub fn activations_stay_finite_at_large_inputs<L: Level<f32> + Level<f64>>() {
    activations_at_large_inputs::<f32, L>("f32", 1e-6);
    activations_at_large_inputs::<f64, L>("f64", 1e-12);
}

fn activations_at_large_inputs<F: Float, L: Level<F>>(float: &str, tolerance: f64) {
    let values = [
        -1e4, -1e3, -710.0, -100.0, -89.0, -20.0, 0.5, 20.0, 89.0, 100.0, 710.0, 1e3, 1e4,
    ];
    let input = Array2::from_shape_fn((1, values.len()), |(_, col)| values[col]);
    let upstream = Array2::from_elem(input.dim(), 0.5);
    for activation in Activation::ALL {
        let mut layer = L::activation(activation);
        let output = layer.forward(input.mapv(F::of).view());
        let grad_input = layer.backward(upstream.mapv(F::of).view());
        let expected_output = reference::activation_forward(activation, input.view());
        let expected_grad =
            reference::activation_backward(activation, input.view(), upstream.view());
        let pairs = [
            ("output", &output, &expected_output),
            ("dL/dinput", &grad_input, &expected_grad),
        ];
        for (name, ours, expected) in pairs {
            for (col, (&ours, &expected)) in ours.iter().zip(expected.iter()).enumerate() {
                let ours = ours.to_f64().unwrap_or(f64::NAN);
                // Only a non-finite value says overflow; a finite wrong one says no more.
                let why = match ours.is_finite() {
                    true => "",
                    false => " (e^x overflows at this |x|: compute from e^-|x| instead)",
                };
                assert!(
                    ours.is_finite() && (ours - expected).abs() <= tolerance,
                    "{activation} in {float} at x = {:e}: {name} is {ours:e}, expected \
                     {expected:e}{why}\n  hint: {}",
                    values[col],
                    crate::diagnosis::hint_for("edge::activations_stay_finite")
                );
            }
        }
    }
}

/// A NaN input gives a NaN output in every activation (the contract: NaN propagates, never
/// becomes a number). `x.max(0)` turns NaN into 0.
pub fn activations_propagate_nan<L: Level<f64>>() {
    let mut input = uniform(2, 3, 96);
    input[[1, 1]] = f64::NAN;
    for activation in Activation::ALL {
        let output = L::activation(activation).forward(input.view());
        assert!(
            output[[1, 1]].is_nan(),
            "{activation} of NaN gave {}, not NaN (a NaN must propagate: f64::max(NaN, 0.0) is \
             0.0; compare with `if x > 0.0 {{ x }} else {{ 0.0 }}` or keep NaN explicitly)",
            output[[1, 1]]
        );
    }
}

/// Every layer and loss gives the same outputs and gradients for an input in standard layout,
/// in column-major layout (the transpose of a transpose) and as a strided slice: a layer must
/// index its input, not read its memory as row-major.
pub fn layers_accept_any_memory_layout<L: Level<f64>>() {
    let (input, upstream) = (uniform(5, 4, 97), uniform(5, 3, 98));
    let targets = classes(5, 3, 99);
    let mse_targets = uniform(5, 3, 100);
    let standard =
        outputs_for_layout::<L>(&targets, input.view(), upstream.view(), mse_targets.view());
    // The same values in column-major memory, and as every other column of a wider array.
    let column_major = |array: &Array2<f64>| {
        let mut fortran = Array2::zeros(array.dim().f());
        fortran.assign(array);
        fortran
    };
    let (input_t, upstream_t, targets_t) = (
        column_major(&input),
        column_major(&upstream),
        column_major(&mse_targets),
    );
    let strided = |array: &Array2<f64>| {
        let mut wide = Array2::from_elem((array.nrows(), 2 * array.ncols()), f64::NAN);
        wide.slice_mut(s![.., ..;2]).assign(array);
        wide
    };
    let (input_s, upstream_s, targets_s) =
        (strided(&input), strided(&upstream), strided(&mse_targets));
    let layouts = [
        (
            "column-major",
            outputs_for_layout::<L>(
                &targets,
                input_t.view(),
                upstream_t.view(),
                targets_t.view(),
            ),
        ),
        (
            "strided (a slice with step 2)",
            outputs_for_layout::<L>(
                &targets,
                input_s.slice(s![.., ..;2]),
                upstream_s.slice(s![.., ..;2]),
                targets_s.slice(s![.., ..;2]),
            ),
        ),
    ];
    for (layout, outputs) in layouts {
        for ((name, ours), (_, expected)) in outputs.iter().zip(&standard) {
            let check = format!("{name} with a {layout} input");
            close(&check, name, ours.view(), expected.view(), EXACT_F64);
        }
    }
}

/// Every output and gradient of a Linear, the activations and both losses for one input `x`,
/// upstream gradient `g` (also the activations' and losses' input) and MSE targets `t`.
fn outputs_for_layout<L: Level<f64>>(
    targets: &[usize],
    x: ArrayView2<'_, f64>,
    g: ArrayView2<'_, f64>,
    t: ArrayView2<'_, f64>,
) -> Vec<(&'static str, Array2<f64>)> {
    let mut linear = L::linear(uniform(4, 3, 101), array![0.1, -0.2, 0.3]);
    let mut outputs = vec![("Linear(4, 3) output", linear.forward(x))];
    outputs.push(("Linear(4, 3) dL/dinput", linear.backward(g)));
    let params = linear.params_mut();
    outputs.push(("Linear(4, 3) dL/dweight", params.grad_weight.to_owned()));
    let grad_bias = params.grad_bias.to_owned().insert_axis(ndarray::Axis(0));
    outputs.push(("Linear(4, 3) dL/dbias", grad_bias));
    for activation in Activation::ALL {
        let mut layer = L::activation(activation);
        let name: &'static str = activation.name();
        outputs.push((name, layer.forward(g)));
        outputs.push((name, layer.backward(g)));
    }
    let mut cross_entropy = L::softmax_cross_entropy();
    let loss = cross_entropy.forward(g, Targets::Classes(targets));
    outputs.push((
        "softmax cross-entropy loss",
        Array2::from_elem((1, 1), loss),
    ));
    outputs.push(("softmax cross-entropy dL/dlogits", cross_entropy.backward()));
    let mut mse = L::mse();
    let loss = mse.forward(g, Targets::Values(t));
    outputs.push(("MSE loss", Array2::from_elem((1, 1), loss)));
    outputs.push(("MSE dL/dpredictions", mse.backward()));
    outputs
}

/// A standalone `Linear`'s `zero_grad` clears both parameter gradients and leaves the
/// parameters alone.
pub fn linear_zero_grad_clears_both_gradients<L: Level<f64>>() {
    let (weight, bias) = (uniform(4, 3, 102), array![0.5, -0.5, 0.25]);
    let mut linear = L::linear(weight.clone(), bias.clone());
    linear.forward(uniform(5, 4, 103).view());
    linear.backward(uniform(5, 3, 104).view());
    linear.zero_grad();
    let params = linear.params_mut();
    for (name, grad) in [
        ("dL/dweight", params.grad_weight.view().into_dyn()),
        ("dL/dbias", params.grad_bias.view().into_dyn()),
    ] {
        assert!(
            grad.iter().all(|&g| g == 0.0),
            "Linear(4, 3) after backward then zero_grad: {name} is {grad}, not 0"
        );
    }
    assert!(
        params.weight == weight && params.bias == bias,
        "zero_grad changed a parameter"
    );
}

/// A loss refuses targets of another shape than its predictions instead of broadcasting them.
pub fn loss_targets_must_match_the_predictions<L: Level<f64>>() {
    let predictions = uniform(4, 3, 105);
    for wrong in [(4, 1), (1, 3), (3, 3)] {
        let targets = Array2::zeros(wrong);
        let check = format!("MSE of (4, 3) predictions against {wrong:?} targets");
        panics_with(&check, "", || {
            L::mse().forward(predictions.view(), Targets::Values(targets.view()));
        });
    }
    panics_with("softmax cross-entropy of 4 rows with 3 targets", "", || {
        L::softmax_cross_entropy().forward(predictions.view(), Targets::Classes(&[0, 1, 2]));
    });
}
