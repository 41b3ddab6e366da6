//! Numerical gradients: central differences in `f64`, compared entry by entry.
//!
//! The numeric derivative of a scalar loss L with respect to one entry θ is
//!
//! ```text
//! dL/dθ ≈ (L(θ + h) - L(θ - h)) / 2h        h = 1e-5, error O(h²)
//! ```
//!
//! and analytic `a` and numeric `n` agree when the relative error
//! `|a - n| / max(1e-8, |a| + |n|)` is small: about 1e-10 for one `Linear` layer, 1e-7 or less
//! for a small net. Above 1e-2 the backward pass is wrong.
//!
//! ReLU is not differentiable at 0. When a perturbation of ±h moves some ReLU input across 0,
//! the difference quotient measures a blend of two slopes; such an entry is a **kink**, reported
//! and left out of the worst-entry search rather than failed.
//!
//! Run these checks in `f64` only: in `f32` the rounding error of L (about 1e-7 · |L|) divided by
//! 2h swamps the derivative, and correct code fails.

use std::fmt;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Dimension};

use crate::{
    Activation, Layer, LinearLayer, LinearMut, LinearParams, Loss, Model, NormLayer, Targets,
};

/// The finite-difference step h.
pub const STEP: f64 = 1e-5;

/// `|a - n| / max(1e-8, |a| + |n|)`; NaN or infinite inputs give infinity.
pub fn relative_error(analytic: f64, numeric: f64) -> f64 {
    let error = (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(1e-8);
    if error.is_finite() {
        error
    } else {
        f64::INFINITY
    }
}

/// The comparison of one tensor's analytic gradient with its numeric one.
#[derive(Debug, Clone, PartialEq)]
pub struct GradReport {
    /// Which tensor: `"input"`, `"weight"`, `"linear1.bias"`.
    pub tensor: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The largest relative error over the entries that are not kinks.
    pub relative_error: f64,
    /// Where it occurs.
    pub worst_index: Vec<usize>,
    /// dL/dθ from `backward` at that entry.
    pub analytic: f64,
    /// dL/dθ from central differences at that entry.
    pub numeric: f64,
    /// Entries where a ReLU input crossed 0 within ±h (skipped).
    pub kinks: Vec<Vec<usize>>,
}

impl GradReport {
    /// Compares `analytic` with `numeric` entry by entry, skipping entries marked in `kinks`.
    ///
    /// # Panics
    /// If the three arrays differ in shape.
    #[track_caller]
    pub fn compare(
        tensor: &str,
        analytic: ArrayViewD<'_, f64>,
        numeric: ArrayViewD<'_, f64>,
        kinks: ArrayViewD<'_, bool>,
    ) -> Self {
        assert_eq!(
            analytic.shape(),
            numeric.shape(),
            "{tensor}: analytic vs numeric shape"
        );
        assert_eq!(
            analytic.shape(),
            kinks.shape(),
            "{tensor}: analytic vs kink mask shape"
        );
        let mut report = GradReport {
            tensor: tensor.to_string(),
            shape: analytic.shape().to_vec(),
            relative_error: 0.0,
            worst_index: vec![0; analytic.ndim()],
            analytic: analytic.iter().next().copied().unwrap_or(0.0),
            numeric: numeric.iter().next().copied().unwrap_or(0.0),
            kinks: Vec::new(),
        };
        for ((index, &a), (&n, &kink)) in analytic.indexed_iter().zip(numeric.iter().zip(&kinks)) {
            if kink {
                report.kinks.push(index.slice().to_vec());
                continue;
            }
            let error = relative_error(a, n);
            if error > report.relative_error {
                report.relative_error = error;
                report.worst_index = index.slice().to_vec();
                report.analytic = a;
                report.numeric = n;
            }
        }
        report
    }

    /// True when the worst non-kink entry is within `tolerance`.
    pub fn passes(&self, tolerance: f64) -> bool {
        self.relative_error <= tolerance
    }
}

impl fmt::Display for GradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dL/d{} {:?}: worst entry {:?}: analytic {:.10e}, numeric {:.10e}, relative error {:.2e}",
            self.tensor,
            self.shape,
            self.worst_index,
            self.analytic,
            self.numeric,
            self.relative_error
        )?;
        if !self.kinks.is_empty() {
            write!(
                f,
                "; {} ReLU kink(s) skipped, first at {:?}",
                self.kinks.len(),
                self.kinks[0]
            )?;
        }
        Ok(())
    }
}

/// Central difference of `loss_at(delta)` around delta = 0; also tells whether the ReLU
/// pattern that `loss_at` returns differs between +h and -h (a kink).
fn central_difference(mut loss_at: impl FnMut(f64) -> (f64, Vec<bool>)) -> (f64, bool) {
    let (plus, pattern_plus) = loss_at(STEP);
    let (minus, pattern_minus) = loss_at(-STEP);
    loss_at(0.0); // restore the entry (and every cache) to the unperturbed point
    ((plus - minus) / (2.0 * STEP), pattern_plus != pattern_minus)
}

/// Checks a layer without parameters (an activation) under the scalar loss
/// `L = Σ upstream ⊙ layer(input)`, so that dL/d(output) = `upstream` (pick it non-uniform: a
/// plain sum hides transposes).
///
/// Returns the report for `input`. With `kink_at_zero`, input entries within ±h of 0 are kinks
/// (for ReLU).
pub fn layer_gradients<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    input: ArrayView2<'_, f64>,
    upstream: ArrayView2<'_, f64>,
    kink_at_zero: bool,
) -> GradReport {
    let input_kinks = input.mapv(|x| kink_at_zero && x.abs() <= STEP);
    let mut reports = upstream_reports(layer, input, upstream, input_kinks, no_params);
    reports.remove(0)
}

/// Checks a `Linear` layer like [`layer_gradients`]: one report for `input`, then `weight` and
/// `bias`.
pub fn linear_gradients<L: LinearLayer<f64>>(
    layer: &mut L,
    input: ArrayView2<'_, f64>,
    upstream: ArrayView2<'_, f64>,
) -> Vec<GradReport> {
    layer.zero_grad();
    let no_kinks = Array2::from_elem(input.dim(), false);
    let visit: VisitLinears<L> = |layer, visit| visit(None, layer.params_mut());
    upstream_reports(layer, input, upstream, no_kinks, visit)
}

/// Checks a normalization layer (batch norm in training: its statistics are recomputed at
/// every perturbed forward, so the whole batch moves with one entry) like [`layer_gradients`]:
/// one report for `input`, then `gamma` and `beta`.
pub fn norm_gradients<L: NormLayer<f64>>(
    layer: &mut L,
    input: ArrayView2<'_, f64>,
    upstream: ArrayView2<'_, f64>,
) -> Vec<GradReport> {
    layer.zero_grad();
    let no_kinks = Array2::from_elem(input.dim(), false);
    let visit: VisitLinears<L> = |layer, visit| visit(None, layer.params_mut().into_linear());
    let mut reports = upstream_reports(layer, input, upstream, no_kinks, visit);
    for (report, name) in reports[1..].iter_mut().zip(["gamma", "beta"]) {
        report.tensor = name.to_string();
    }
    reports
}

/// Both layer checks: analytic gradients from one forward and one backward under `upstream`,
/// then central differences of `L = Σ upstream ⊙ layer(input)`.
fn upstream_reports<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    input: ArrayView2<'_, f64>,
    upstream: ArrayView2<'_, f64>,
    input_kinks: Array2<bool>,
    visit: VisitLinears<L>,
) -> Vec<GradReport> {
    layer.forward(input);
    let grad_input = layer.backward(upstream);
    let objective = |layer: &mut L, input: ArrayView2<'_, f64>| {
        ((&layer.forward(input) * &upstream).sum(), Vec::new())
    };
    central_difference_reports(layer, input, grad_input, input_kinks, visit, objective)
}

/// Checks dL/d(input) of a loss against central differences.
pub fn loss_gradients<L: Loss<f64> + ?Sized>(
    loss: &mut L,
    input: ArrayView2<'_, f64>,
    targets: Targets<'_, f64>,
) -> GradReport {
    loss.forward(input, targets);
    let analytic = loss.backward();
    let no_kinks = Array2::from_elem(input.dim(), false);
    let evaluate =
        |loss: &mut L, input: ArrayView2<'_, f64>| (loss.forward(input, targets), Vec::new());
    let mut reports =
        central_difference_reports(loss, input, analytic, no_kinks, no_params, evaluate);
    reports.remove(0)
}

/// Checks every parameter of `model` and its input against central differences of
/// `model.loss(targets)`.
///
/// Returns one report for `input` and one per parameter: `linear0.weight`, `linear0.bias`,
/// `linear1.weight`, ... For a ReLU model, an entry is a kink when its ±h perturbation flips
/// the sign of any hidden pre-activation (recomputed here from the parameters, independently of
/// the model's code).
pub fn model_gradients<M: Model<f64>>(
    model: &mut M,
    input: ArrayView2<'_, f64>,
    targets: Targets<'_, f64>,
) -> Vec<GradReport> {
    // Phase 1: analytic gradients.
    model.zero_grad();
    model.forward(input);
    model.loss(targets);
    let grad_input = model.backward();
    // Phases 2 and 3: numeric gradients of the loss, watching the ReLU pattern for kinks.
    // Kinks are recomputed for a plain ReLU MLP only: its weights chain from the input's width
    // and no normalization layer sits between them (the recomputation runs Linear and ReLU
    // alone). In other networks (normalization, convolutions, max pooling) none is flagged, so
    // pick inputs away from ties.
    let mut norms = 0;
    model.visit_norms(|_, _| norms += 1);
    let watch_relu = model.activation() == Activation::Relu
        && norms == 0
        && crate::model::chain_break(&model.linear_params(), Some(input.ncols())).is_none();
    // Dropout in training (or any randomness) gives each forward its own loss: differences of
    // two such losses mean nothing.
    let loss_of = |model: &mut M| {
        model.forward(input);
        model.loss(targets)
    };
    let (once, again) = (loss_of(model), loss_of(model));
    assert!(
        once == again || (once.is_nan() && again.is_nan()),
        "finite differences need a deterministic network: two forwards of the same input gave \
         losses {once} and {again} (dropout in training? check in evaluation mode)"
    );
    let evaluate = |model: &mut M, input: ArrayView2<'_, f64>| {
        model.forward(input);
        let loss = model.loss(targets);
        let pattern = if watch_relu {
            relu_pattern(&model.linear_params(), input)
        } else {
            Vec::new()
        };
        (loss, pattern)
    };
    let no_kinks = Array2::from_elem(input.dim(), false);
    // Every parameter: each Linear's weight and bias, then each normalization layer's gamma and
    // beta (moving them moves the loss through the statistics too).
    let visit: VisitLinears<M> = |model, visit| {
        model.visit_linears(|index, layer| visit(Some(("linear", index)), layer));
        model.visit_norms(|index, norm| visit(Some(("norm", index)), norm.into_linear()));
    };
    central_difference_reports(model, input, grad_input, no_kinks, visit, evaluate)
}

/// Where a checked parameter pair sits in a model: `("linear", 0)` for the first `Linear`,
/// `("norm", 1)` for the second normalization layer's gamma and beta; `None` for a layer
/// checked alone.
type Place = Option<(&'static str, usize)>;

/// Calls back with every parameter pair of a checked object (a `Linear` layer's weight and bias,
/// a normalization layer's gamma and beta as a one-row weight and a bias) and its [`Place`].
type VisitLinears<T> = fn(&mut T, &mut dyn FnMut(Place, LinearMut<'_, f64>));

fn no_params<T: ?Sized>(_: &mut T, _: &mut dyn FnMut(Place, LinearMut<'_, f64>)) {}

/// Runs `f` on tensor `tensor` (0: weight, 1: bias) of the `layer`-th `Linear` layer visited.
fn with_tensor<T: ?Sized>(
    target: &mut T,
    visit: VisitLinears<T>,
    (layer, tensor): (usize, usize),
    f: impl FnOnce(ndarray::ArrayViewMutD<'_, f64>),
) {
    let mut f = Some(f);
    let mut position = 0;
    visit(target, &mut |_, linear| {
        if position == layer {
            let [weight, bias] = linear.tensors();
            let (_, value, _) = if tensor == 0 { weight } else { bias };
            (f.take().expect("one layer at each position"))(value);
        }
        position += 1;
    });
}

/// Phases 2 and 3 of every check: the numeric gradient of `evaluate` with respect to each
/// entry of `input`, then of each parameter, compared with `grad_input` and with the gradients
/// the parameters hold now. An entry is a kink when `kinks` marks it (input only) or when the
/// pattern `evaluate` returns differs between +h and -h.
fn central_difference_reports<T: ?Sized>(
    target: &mut T,
    input: ArrayView2<'_, f64>,
    grad_input: Array2<f64>,
    mut input_kinks: Array2<bool>,
    visit: VisitLinears<T>,
    mut evaluate: impl FnMut(&mut T, ArrayView2<'_, f64>) -> (f64, Vec<bool>),
) -> Vec<GradReport> {
    // The analytic parameter gradients, named for display: `weight` or `linear1.weight`.
    let mut analytic_params: Vec<(String, (usize, usize), ArrayD<f64>)> = Vec::new();
    let mut layer = 0;
    visit(target, &mut |place, linear| {
        for (tensor, (name, _, grad)) in linear.tensors().into_iter().enumerate() {
            let name = match place {
                None => name.to_string(),
                Some(("norm", index)) => format!("norm{index}.{}", ["gamma", "beta"][tensor]),
                Some((kind, index)) => format!("{kind}{index}.{name}"),
            };
            analytic_params.push((name, (layer, tensor), grad.to_owned()));
        }
        layer += 1;
    });

    // Phase 2: the input, entry by entry, on a perturbed copy.
    let mut perturbed = input.to_owned();
    let mut numeric_input = Array2::zeros(input.dim());
    for (index, numeric) in numeric_input.indexed_iter_mut() {
        let original = input[index];
        let (slope, kink) = central_difference(|delta| {
            perturbed[index] = original + delta;
            evaluate(target, perturbed.view())
        });
        *numeric = slope;
        input_kinks[index] |= kink;
    }
    let mut reports = vec![GradReport::compare(
        "input",
        grad_input.view().into_dyn(),
        numeric_input.view().into_dyn(),
        input_kinks.view().into_dyn(),
    )];

    // Phase 3: every parameter, entry by entry, restored exactly after each evaluation (no
    // `+h - h` round-off).
    for (name, position, analytic) in &analytic_params {
        let mut numeric = ArrayD::zeros(analytic.raw_dim());
        let mut kinks = ArrayD::from_elem(analytic.raw_dim(), false);
        for (index, slot) in numeric.indexed_iter_mut() {
            let mut original = 0.0;
            with_tensor(target, visit, *position, |value| original = value[&index]);
            let (slope, kink) = central_difference(|delta| {
                with_tensor(target, visit, *position, |mut value| {
                    value[&index] = original + delta
                });
                let result = evaluate(target, input);
                with_tensor(target, visit, *position, |mut value| {
                    value[&index] = original
                });
                result
            });
            *slot = slope;
            kinks[&index] = kink;
        }
        reports.push(GradReport::compare(
            name,
            analytic.view(),
            numeric.view(),
            kinks.view(),
        ));
    }
    reports
}

/// The sign pattern `z > 0` of every hidden pre-activation `z = h W + b` of a ReLU MLP.
fn relu_pattern(layers: &LinearParams<f64>, input: ArrayView2<'_, f64>) -> Vec<bool> {
    let mut pattern = Vec::new();
    let mut hidden = input.to_owned();
    for (weight, bias) in &layers[..layers.len() - 1] {
        let pre_activation = hidden.dot(weight) + bias;
        pattern.extend(pre_activation.iter().map(|&z| z > 0.0));
        hidden = pre_activation.mapv(|z| z.max(0.0));
    }
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn relative_error_follows_the_cs231n_definition() {
        assert_eq!(relative_error(1.0, 1.0), 0.0);
        assert!((relative_error(1.0, 3.0) - 0.5).abs() < 1e-15); // |1-3| / (1+3)
        assert_eq!(relative_error(0.0, 0.0), 0.0); // 0 / max(1e-8, 0)
        assert_eq!(relative_error(f64::NAN, 1.0), f64::INFINITY);
    }

    #[test]
    fn report_names_the_worst_entry_and_skips_kinks() {
        let analytic = array![[1.0, 2.0], [3.0, 10.0]].into_dyn();
        let numeric = array![[1.0, 2.5], [3.0, -10.0]].into_dyn();
        let kinks = array![[false, false], [false, true]].into_dyn();
        let report = GradReport::compare("weight", analytic.view(), numeric.view(), kinks.view());
        assert_eq!(report.worst_index, vec![0, 1]);
        assert_eq!((report.analytic, report.numeric), (2.0, 2.5));
        assert_eq!(report.kinks, vec![vec![1, 1]]);
        let text = report.to_string();
        assert!(
            text.contains("dL/dweight [2, 2]") && text.contains("[0, 1]"),
            "{text}"
        );
    }
}
