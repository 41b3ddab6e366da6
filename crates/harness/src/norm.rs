//! The normalization checks, the group a learner climbs after gate 4: batch norm, layer norm
//! and dropout, by hand, against the reference, against finite differences (batch norm through
//! its batch statistics), in evaluation mode, at their edges, and in a whole network.

use backprop_core::gradcheck::{model_gradients, norm_gradients};
use backprop_core::{
    Activation, DropoutLayer, Layer, Level, MlpSpec, Model, Norm, NormLayer, Targets,
};
use ndarray::{Array1, Array2, array};

use crate::diagnosis::{Evidence, Pass, Subject};
use crate::expect::{close, close_with, gradients_pass, panic_text, panics_naming};
use crate::fixtures::{classes, uniform};
use crate::reference::{self, NormPass};
use crate::tolerance::{
    EXACT_F64, FINITE_DIFFERENCE_LAYER, FINITE_DIFFERENCE_NETWORK, REFERENCE_F64,
};

/// gamma and beta that are not 1 and 0 (a check with the initial ones hides a missing gamma).
fn affine(features: usize, seed: u64) -> (Array1<f64>, Array1<f64>) {
    let gamma = uniform(1, features, seed).row(0).mapv(|v| 1.0 + v);
    let beta = uniform(1, features, seed + 1).row(0).to_owned();
    (gamma, beta)
}

fn set_affine<N: NormLayer<f64> + ?Sized>(
    layer: &mut N,
    (gamma, beta): &(Array1<f64>, Array1<f64>),
) {
    let mut params = layer.params_mut();
    params.gamma.assign(gamma);
    params.beta.assign(beta);
}

/// One forward and backward of `layer` (a `subject`, with gamma and beta `affine`) against the
/// reference pass `expected`; a failure's diagnosis sees the layer, x, g and gamma.
#[track_caller]
fn compare_pass<N: NormLayer<f64> + ?Sized>(
    (check, subject): (&str, Subject),
    layer: &mut N,
    (x, g): (&Array2<f64>, &Array2<f64>),
    expected: &NormPass,
) {
    let (gamma, beta) = {
        let params = layer.params_mut();
        (params.gamma.to_owned(), params.beta.to_owned())
    };
    let evidence = Evidence::normalization(subject, x.view(), Some(g.view()), (&gamma, &beta));
    let compare = |tensor: &str,
                   got: ndarray::ArrayViewD<'_, f64>,
                   reference: ndarray::ArrayViewD<'_, f64>| {
        close_with(check, tensor, got, reference, REFERENCE_F64, &evidence)
    };
    layer.zero_grad();
    let output = layer.forward(x.view());
    compare(
        "output",
        output.view().into_dyn(),
        expected.output.view().into_dyn(),
    );
    let grad_input = layer.backward(g.view());
    compare(
        "dL/dinput",
        grad_input.view().into_dyn(),
        expected.grad_input.view().into_dyn(),
    );
    let params = layer.params_mut();
    let (grad_gamma, grad_beta) = (params.grad_gamma, params.grad_beta);
    compare(
        "dL/dgamma",
        grad_gamma.view().into_dyn(),
        expected.grad_gamma.view().into_dyn(),
    );
    compare(
        "dL/dbeta",
        grad_beta.view().into_dyn(),
        expected.grad_beta.view().into_dyn(),
    );
}

/// Batch norm on two rows, by hand: each feature's two values normalize to -a and +a with
/// a = 1 / sqrt(1 + eps) (their variance is 1), and with g = (1, 0) in a column
/// dL/dx = (s / 2) (2 g - Σ g - x̂ Σ g x̂) = (s / 2) (±(1 - a^2)): almost nothing, because with two
/// rows, moving one value moves the mean and the variance so that x̂ barely changes. The
/// classic wrong answer (gamma g s, the direct path alone) gives about 1 there.
pub fn batch_norm_matches_hand_computation<L: Level<f64>>() {
    let x = array![[1.0, 10.0], [3.0, 12.0]];
    let g = array![[1.0, 0.0], [0.0, 2.0]];
    let eps = backprop_core::norm::NORM_EPS;
    let (a, s) = (1.0 / (1.0 + eps).sqrt(), 1.0 / (1.0 + eps).sqrt());
    let mut layer = L::batch_norm(2);
    let (gamma, beta) = (Array1::ones(2), Array1::zeros(2));
    let training = Subject::BatchNorm { training: true };
    let evidence = Evidence::normalization(training, x.view(), Some(g.view()), (&gamma, &beta));
    let output = layer.forward(x.view());
    let expected = array![[-a, -a], [a, a]];
    close_with(
        "batch norm by hand",
        "output",
        output.view(),
        expected.view(),
        EXACT_F64,
        &evidence,
    );
    let grad_input = layer.backward(g.view());
    // Column 0: Σg = 1, Σ g x̂ = -a; column 1: Σg = 2, Σ g x̂ = 2a.
    // 1 - a^2 = eps / (1 + eps), written so that the expected value has no cancellation; the
    // level's own sums cancel to 1e-5 of their terms, hence REFERENCE_F64 below.
    let small = s / 2.0 * (eps / (1.0 + eps));
    let expected = array![[small, -2.0 * small], [-small, 2.0 * small]];
    close_with(
        "batch norm by hand",
        "dL/dinput",
        grad_input.view(),
        expected.view(),
        REFERENCE_F64,
        &evidence,
    );
    let expected_gamma = array![-a, 2.0 * a];
    close_with(
        "batch norm by hand",
        "dL/dgamma",
        layer.params_mut().grad_gamma.view(),
        expected_gamma.view(),
        EXACT_F64,
        &evidence,
    );
    // 0.9 * 0 + 0.1 * mean; 0.9 * 1 + 0.1 * (1 * 2 / 1) (the unbiased variance of two rows).
    let (mean, var) = (array![0.2, 1.1], array![1.1, 1.1]);
    let check = "batch norm by hand";
    compare_running(check, &mut layer, (&mean, &var), (EXACT_F64, &[x]));
}

/// Batch norm (training, then evaluation after three training steps), layer norm and dropout
/// against the reference passes on random data.
pub fn normalization_matches_reference<L: Level<f64>>() {
    let (x, g) = (uniform(6, 5, 300) * 3.0, uniform(6, 5, 301));
    let params = affine(5, 302);
    // Batch norm, training.
    let mut batch_norm = L::batch_norm(5);
    set_affine(&mut batch_norm, &params);
    let expected = reference::batch_norm(x.view(), &params.0, &params.1, g.view());
    compare_pass(
        (
            "batch norm (training)",
            Subject::BatchNorm { training: true },
        ),
        &mut batch_norm,
        (&x, &g),
        &expected,
    );
    // Two more training forwards: three in all, each moving the running statistics 10% of the
    // way to its batch's mean and unbiased variance.
    let batches = [
        x.clone(),
        uniform(6, 5, 310) * 2.0 + 0.5,
        uniform(6, 5, 311) - 1.0,
    ];
    let (mut mean, mut var) = (Array1::zeros(5), Array1::ones(5));
    for (step, batch) in batches.iter().enumerate() {
        if step > 0 {
            batch_norm.forward(batch.view());
        }
        let pass = reference::batch_norm(batch.view(), &params.0, &params.1, g.view());
        mean = &mean * 0.9 + &pass.mean * 0.1;
        var = &var * 0.9 + &pass.var * (0.1 * 6.0 / 5.0);
    }
    let check = "batch norm running statistics after 3 training forwards";
    compare_running(
        check,
        &mut batch_norm,
        (&mean, &var),
        (REFERENCE_F64, &batches),
    );
    batch_norm.set_training(false);
    let expected =
        reference::batch_norm_eval(x.view(), &params.0, &params.1, (&mean, &var), g.view());
    compare_pass(
        (
            "batch norm (evaluation)",
            Subject::BatchNorm { training: false },
        ),
        &mut batch_norm,
        (&x, &g),
        &expected,
    );
    let check = "batch norm running statistics after a forward in evaluation (unchanged)";
    compare_running(check, &mut batch_norm, (&mean, &var), (EXACT_F64, &batches));
    // Layer norm.
    let mut layer_norm = L::layer_norm(5);
    set_affine(&mut layer_norm, &params);
    let expected = reference::layer_norm(x.view(), &params.0, &params.1, g.view());
    compare_pass(
        ("layer norm", Subject::LayerNorm),
        &mut layer_norm,
        (&x, &g),
        &expected,
    );
    dropout_matches_its_mask::<L>(&x, &g);
}

/// Batch norm's running mean and variance against `expected`, after the layer took
/// `batches` in training (fresh: mean 0, variance 1), which a failure's diagnosis replays.
#[track_caller]
fn compare_running<N: NormLayer<f64> + ?Sized>(
    check: &str,
    layer: &mut N,
    (mean, var): (&Array1<f64>, &Array1<f64>),
    (tolerance, batches): (f64, &[Array2<f64>]),
) {
    let (running_mean, running_var) = layer
        .params_mut()
        .running
        .expect("batch norm keeps running statistics");
    let evidence = Evidence {
        training_batches: Some(batches),
        ..Evidence::default()
    };
    close_with(
        check,
        "running mean",
        running_mean.view(),
        mean.view(),
        tolerance,
        &evidence,
    );
    close_with(
        check,
        "running variance",
        running_var.view(),
        var.view(),
        tolerance,
        &evidence,
    );
}

/// Dropout with a fixed mask: y = x m / (1 - p), dL/dx = g m / (1 - p); identity in evaluation.
fn dropout_matches_its_mask<L: Level<f64>>(x: &Array2<f64>, g: &Array2<f64>) {
    let keep = uniform(6, 5, 320).mapv(|u| u > -0.2);
    let scaled = keep.mapv(|kept| if kept { 1.0 / (1.0 - 0.4) } else { 0.0 });
    let mut dropout = L::dropout(0.4, 7);
    dropout.fix_mask(Some(keep.clone()));
    let evidence = Evidence {
        subject: Some(Subject::Dropout),
        input: Some(x.view()),
        upstream: Some(g.view()),
        dropout: Some((keep.view(), 0.4)),
        pass: Pass::First,
        ..Evidence::default()
    };
    let output = dropout.forward(x.view());
    close_with(
        "dropout (fixed mask)",
        "output",
        output.view(),
        (x * &scaled).view(),
        EXACT_F64,
        &evidence,
    );
    let grad_input = dropout.backward(g.view());
    close_with(
        "dropout (fixed mask)",
        "dL/dinput",
        grad_input.view(),
        (g * &scaled).view(),
        EXACT_F64,
        &evidence,
    );
    dropout.set_training(false);
    let output = dropout.forward(x.view());
    close(
        "dropout (evaluation)",
        "output",
        output.view(),
        x.view(),
        EXACT_F64,
    );
    let grad_input = dropout.backward(g.view());
    close(
        "dropout (evaluation)",
        "dL/dinput",
        grad_input.view(),
        g.view(),
        EXACT_F64,
    );
}

/// Every gradient of batch norm (training: finite differences perturb one entry and the whole
/// batch's statistics move with it), layer norm and dropout (fixed mask) against central
/// differences of `L = Σ g ⊙ y`.
pub fn normalization_passes_finite_differences<L: Level<f64>>() {
    let (x, g) = (uniform(5, 4, 330) * 2.0, uniform(5, 4, 331));
    let params = affine(4, 332);
    let check = "finite differences (normalization)";
    let mut batch_norm = L::batch_norm(4);
    set_affine(&mut batch_norm, &params);
    gradients_pass(
        &format!("{check}, batch norm"),
        &norm_gradients(&mut batch_norm, x.view(), g.view()),
        FINITE_DIFFERENCE_LAYER,
    );
    let mut layer_norm = L::layer_norm(4);
    set_affine(&mut layer_norm, &params);
    gradients_pass(
        &format!("{check}, layer norm"),
        &norm_gradients(&mut layer_norm, x.view(), g.view()),
        FINITE_DIFFERENCE_LAYER,
    );
    let mut dropout = L::dropout(0.5, 9);
    dropout.fix_mask(Some(uniform(5, 4, 333).mapv(|u| u > 0.0)));
    let report = backprop_core::gradcheck::layer_gradients(&mut dropout, x.view(), g.view(), false);
    gradients_pass(
        &format!("{check}, dropout"),
        &[report],
        FINITE_DIFFERENCE_LAYER,
    );
}

/// A training batch of one row has no variance: batch norm refuses it, as PyTorch raises, with
/// a message that says so in the level's own words (a row, the batch, the variance); in
/// evaluation, with the running statistics, one row is fine.
pub fn batch_norm_refuses_one_row_in_training<L: Level<f64>>() {
    let row = array![[1.0, 2.0, 3.0]];
    let mut layer = L::batch_norm(3);
    panics_naming(
        "batch norm on one row in training",
        "the one-row batch (one row has no variance)",
        &["row", "batch", "variance", "sample"],
        || {
            layer.forward(row.view());
        },
    );
    let check = "batch norm on one row in evaluation";
    let mut layer = L::batch_norm(3);
    layer.set_training(false);
    let output =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layer.forward(row.view())))
            .unwrap_or_else(|payload| {
                panic!(
                    "{check}: panicked with {:?}. In evaluation batch norm normalizes with its \
                 running mean and variance, never the batch's, so a batch of one row is fine \
                 there (read hints/hint-4-normalization.md)",
                    panic_text(payload.as_ref())
                )
            });
    let expected = row.mapv(|x| x / (1.0 + backprop_core::norm::NORM_EPS).sqrt());
    let (gamma, beta) = (Array1::ones(3), Array1::zeros(3));
    let evaluation = Subject::BatchNorm { training: false };
    let evidence = Evidence::normalization(evaluation, row.view(), None, (&gamma, &beta));
    close_with(
        check,
        "output",
        output.view(),
        expected.view(),
        EXACT_F64,
        &evidence,
    );
}

/// A feature (batch norm) or a row (layer norm) whose values are all equal has variance 0: eps
/// keeps x̂ = 0 and every gradient finite.
pub fn constant_features_stay_finite<L: Level<f64>>() {
    let x = array![[2.0, 1.0, 5.0], [2.0, -1.0, 5.0], [2.0, 0.5, 5.0]];
    let g = uniform(3, 3, 340);
    let params = affine(3, 341);
    let mut batch_norm = L::batch_norm(3);
    set_affine(&mut batch_norm, &params);
    let expected = reference::batch_norm(x.view(), &params.0, &params.1, g.view());
    compare_pass(
        (
            "batch norm with constant features",
            Subject::BatchNorm { training: true },
        ),
        &mut batch_norm,
        (&x, &g),
        &expected,
    );
    let rows = array![[3.0, 3.0, 3.0], [1.0, -2.0, 0.5]];
    let g = uniform(2, 3, 342);
    let mut layer_norm = L::layer_norm(3);
    set_affine(&mut layer_norm, &params);
    let expected = reference::layer_norm(rows.view(), &params.0, &params.1, g.view());
    compare_pass(
        ("layer norm with a constant row", Subject::LayerNorm),
        &mut layer_norm,
        (&rows, &g),
        &expected,
    );
}

/// Networks with batch norm or layer norm after each hidden `Linear`: every weight, bias, gamma
/// and beta gradient (`norm0.gamma`, ...) against central differences of the loss (tanh, so no
/// ReLU kinks).
pub fn normalized_mlp_passes_finite_differences<L: Level<f64>>() {
    let input = uniform(6, 5, 350);
    let targets = classes(6, 3, 351);
    for norm in [Norm::Batch, Norm::Layer] {
        let spec = MlpSpec {
            activation: Activation::Tanh,
            norm,
            ..MlpSpec::classifier(&[5, 7, 6, 3], 352)
        };
        let mut model = L::mlp_from_spec(&spec);
        let mut reports = model_gradients(&mut model, input.view(), Targets::Classes(&targets));
        let check = format!("finite differences, MLP [5, 7, 6, 3] tanh with {norm} norm");
        assert!(
            reports.iter().any(|report| report.tensor == "norm1.beta"),
            "{check}: gamma and beta of both normalization layers are checked"
        );
        if norm == Norm::Batch {
            // A bias right before batch norm shifts a whole feature, and the mean takes the shift
            // away: its gradient is exactly 0 (finite differences see only rounding there).
            for (name, grad) in crate::expect::parameter_gradients(&mut model) {
                let before_norm = name.ends_with(".bias") && !name.starts_with("linear2");
                let largest = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
                assert!(
                    !before_norm || largest <= 1e-12,
                    "{check}: dL/d{name} should be 0 (batch norm removes a shift), its largest \
                     entry is {largest:e}"
                );
            }
            reports.retain(|report| {
                !report.tensor.ends_with(".bias") || report.tensor.starts_with("linear2")
            });
        }
        gradients_pass(&check, &reports, FINITE_DIFFERENCE_NETWORK);
    }
}

/// In evaluation mode a network with dropout gives the same logits as the same network without
/// it, and the same logits on every call; in training mode two calls differ.
pub fn evaluation_mode_turns_dropout_off<L: Level<f64>>() {
    let input = uniform(4, 5, 360);
    let spec = MlpSpec::classifier(&[5, 8, 3], 361);
    let mut plain = L::mlp_from_spec(&spec);
    let mut dropped = L::mlp_from_spec(&MlpSpec {
        dropout: 0.5,
        ..spec.clone()
    });
    let first = dropped.forward(input.view());
    let second = dropped.forward(input.view());
    assert!(
        first != second,
        "dropout in training: two forwards gave the same logits, so no fresh mask was drawn"
    );
    dropped.set_training(false);
    let expected = plain.forward(input.view());
    let check = "MLP with dropout 0.5 in evaluation mode";
    close(
        check,
        "logits",
        dropped.forward(input.view()).view(),
        expected.view(),
        EXACT_F64,
    );
    close(
        check,
        "logits, again",
        dropped.forward(input.view()).view(),
        expected.view(),
        EXACT_F64,
    );
}
