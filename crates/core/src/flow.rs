//! Gradient flow: what one training step did to each layer, and clipping by global norm.
//!
//! A deep network learns only if the gradient reaches its first layers at a useful size. The
//! backward pass multiplies dL/dz by `W^T` and by the activation's derivative once per layer,
//!
//! ```text
//! dL/dz_{i-1} = (dL/dz_i W_i^T) * act'(z_{i-1})
//! ```
//!
//! so a factor below 1 per layer *vanishes* over depth (sigmoid: act' <= 1/4) and a factor above
//! 1 *explodes*. [`step_stats`] measures it after a backward pass, for any level:
//!
//! | statistic | what it says | healthy |
//! |---|---|---|
//! | `weight_grad_norm` = ‖dL/dW_i‖ | how hard layer i is pushed | above 10^-2 ([`LAGGING_RATIO`]) and below 10^3 ([`EXPLODING`]) times the last layer's |
//! | `input_grad_norm` = ‖dL/dh_{i-1}‖ | the gradient layer i passes down | no steady shrink or growth |
//! | `update_ratio_log10` = log10(‖ΔW_i‖ / ‖W_i‖) | the relative size of the step the optimizer took | near -3 |
//! | `dead_fraction` (ReLU) | units whose output is 0 for every sample of the batch | near 0 |
//! | `saturated_fraction` (sigmoid, tanh) | outputs within 1% of an asymptote (act' ~ 0) | small |
//! | `max_abs_logit` | how confident the last layer is | tens, not thousands |
//!
//! The update ratio is measured, not derived from the gradient: [`weights_of`] before the
//! optimizer's step, [`StepStats::measure_update`] after it, so momentum, Adam, weight decay and
//! clipping are all in it (with plain SGD it is lr ‖dL/dW‖ / ‖W‖).
//!
//! [`clip_grad_norm`] rescales every gradient by one factor so that their joint norm is at most
//! `max_norm`, as PyTorch's `torch.nn.utils.clip_grad_norm_`.

use ndarray::{Array2, ArrayBase, ArrayView2, Data, Dimension};

use crate::{Activation, Float, Model};

/// An output within this distance of a sigmoid or tanh asymptote counts as saturated: the
/// derivative there is below 0.01 (sigmoid) or 0.02 (tanh).
pub const SATURATION_MARGIN: f64 = 0.01;

// ---------------------------------------------------------------------------------------------
// The thresholds of every verdict: `Health` (one layer at one step, for `--watch-gradients`) and
// `Verdict` (a whole run, for `backprop diagnose`). Each says why it sits where it does.

/// A gradient norm below this has vanished outright: with learning rates around 0.1, a step
/// moves no weight by more than about 1e-4.
pub const VANISHING: f64 = 1e-3;
/// A first-to-last gradient ratio below this means the first layer is pushed a hundred times
/// less than the last: the shrink per layer that compounds over depth (sigmoid's derivative is
/// at most 1/4, so two sigmoid layers already give 1/16).
pub const LAGGING_RATIO: f64 = 1e-2;
/// A gradient ratio or norm above this is exploding: a thousand times the last layer's push, or
/// a norm that makes even a small learning rate's step overshoot.
pub const EXPLODING: f64 = 1e3;
/// A log10 update ratio (‖ΔW‖ / ‖W‖) below this moves the weights by less than 1e-4 of
/// their size per step: over the few hundred steps of a diagnose run they change by a few
/// percent in all and keep their random init. The healthy guide is about -3 (Karpathy, CS231n),
/// ten times more.
pub const FROZEN_UPDATE_LOG10: f64 = -4.0;
/// A final loss at or above this fraction of ln(classes), the loss of a uniform guess, means the
/// network learned nothing (5% of slack for the noise of a mean over the last batches).
pub const NOT_LEARNING_FRACTION: f64 = 0.95;
/// A final loss below this fraction of ln(classes) means the network clearly learned (the
/// probability it gives the right class is then above classes^-0.7, 0.2 for 10 classes, where
/// chance is 0.1).
pub const LEARNED_FRACTION: f64 = 0.7;

/// Where a layer's gradient stands against the healthy band, at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Neither vanishing nor exploding.
    Healthy,
    /// The gradient is small (ratio below [`LAGGING_RATIO`] or norm below [`VANISHING`]) *and*
    /// the weights barely move (update ratio below [`FROZEN_UPDATE_LOG10`]).
    Vanishing,
    /// Too large: the ratio or the norm above [`EXPLODING`], or not finite.
    Exploding,
}

impl Health {
    /// The ratio or the norm above [`EXPLODING`], or a norm that is not finite.
    pub fn exploding(ratio: f64, norm: f64) -> bool {
        ratio > EXPLODING || norm > EXPLODING || !norm.is_finite()
    }

    /// The verdict for a layer's gradient norm, its ratio to the last layer's, and the log10
    /// update ratio of its step.
    ///
    /// The norm counts beside the ratio because ReLU is positively homogeneous
    /// (ReLU(a x) = a ReLU(x) for a > 0): scaling every weight scales every layer's weight
    /// gradient alike, so a too small or too large init moves all norms together and leaves the
    /// ratio near 1. The update ratio counts because a small gradient on small weights can
    /// still move them: vanishing means the layer does not learn.
    pub fn of(ratio: f64, norm: f64, update_ratio_log10: f64) -> Health {
        if Health::exploding(ratio, norm) {
            Health::Exploding
        } else if (ratio < LAGGING_RATIO || norm < VANISHING)
            && update_ratio_log10 < FROZEN_UPDATE_LOG10
        {
            Health::Vanishing
        } else {
            Health::Healthy
        }
    }
}

/// What a whole training run did, for [`Verdict::of`]: medians over its steps, and its losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// The 1-based step whose loss was not finite, if any.
    pub diverged_at: Option<usize>,
    /// The number of classes (ln of it is the loss of a uniform guess).
    pub classes: usize,
    /// The mean loss of the last steps.
    pub final_loss: f64,
    /// The median over the steps of ‖dL/dW_first‖ / ‖dL/dW_last‖.
    pub ratio: f64,
    /// The median over the steps of the first layer's ‖dL/dW‖.
    pub first_norm: f64,
    /// The median over the steps of the largest layer's ‖dL/dW‖.
    pub max_norm: f64,
    /// The median over the steps of the first layer's log10 update ratio (of the step taken).
    pub first_update_log10: f64,
}

/// The verdict on a whole run, from its gradients and its outcome together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The loss stopped being finite at this step.
    Diverged(usize),
    /// Some layer's gradient is out of band on the high side ([`Health::Exploding`]).
    Exploding,
    /// The first layer's gradient is small and its weights stay put ([`Health::Vanishing`]).
    Vanishing,
    /// No gradient pathology, but the final loss is still at chance
    /// ([`NOT_LEARNING_FRACTION`] x ln(classes) or more).
    NotLearning,
    /// Learning, but not clearly yet (final loss above [`LEARNED_FRACTION`] x ln(classes)), or
    /// the first layer lags the last by more than [`LAGGING_RATIO`].
    Slow,
    /// The loss fell below [`LEARNED_FRACTION`] x ln(classes) and every gradient is in band.
    Healthy,
}

impl Verdict {
    /// Diverged, then the gradient pathologies, then the outcome: see each variant.
    pub fn of(run: &RunSummary) -> Verdict {
        if let Some(step) = run.diverged_at {
            return Verdict::Diverged(step);
        }
        if Health::exploding(run.ratio, run.max_norm) {
            return Verdict::Exploding;
        }
        if Health::of(run.ratio, run.first_norm, run.first_update_log10) == Health::Vanishing {
            return Verdict::Vanishing;
        }
        let chance = (run.classes as f64).ln();
        if run.final_loss >= NOT_LEARNING_FRACTION * chance {
            Verdict::NotLearning
        } else if run.final_loss >= LEARNED_FRACTION * chance || run.ratio < LAGGING_RATIO {
            Verdict::Slow
        } else {
            Verdict::Healthy
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Diverged(step) => write!(f, "diverged@{step}"),
            Verdict::Exploding => f.write_str("exploding"),
            Verdict::Vanishing => f.write_str("vanishing"),
            Verdict::NotLearning => f.write_str("not learning"),
            Verdict::Slow => f.write_str("slow"),
            Verdict::Healthy => f.write_str("healthy"),
        }
    }
}

/// Weights with at least this many entries get the two norms of their step on two rayon tasks.
const PARALLEL_ELEMENTS: usize = 1 << 16;

/// What the last forward and backward passes left behind inside a model, for [`step_stats`].
///
/// A [`Model`] hands it out through [`Model::signals`]; models that do not keep these return
/// `None` and their statistics show only the parameter-based columns.
#[derive(Debug, Clone)]
pub struct Signals<'a, F> {
    /// The output of every hidden activation in the last forward, `(batch, sizes[i + 1])` for
    /// layers `0..depth - 1` (the last `Linear` has no activation).
    pub hidden_outputs: Vec<ArrayView2<'a, F>>,
    /// ‖dL/d(input of Linear i)‖ from the last backward, one per layer; `None` where the pass
    /// skipped it (layer 0's input gradient in training).
    pub input_grad_norms: Vec<Option<f64>>,
    /// The largest |logit| of the last forward.
    pub max_abs_logit: f64,
}

/// One layer's statistics after a backward pass; see the [module docs](self) for the healthy
/// ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// ‖dL/dW‖ (Frobenius).
    pub weight_grad_norm: f64,
    /// ‖dL/d(layer input)‖, when the model recorded it.
    pub input_grad_norm: Option<f64>,
    /// log10(‖ΔW‖ / ‖W‖) of the step taken (NaN until [`StepStats::measure_update`]): -3 means
    /// the step moved the weights by a thousandth of their size.
    pub update_ratio_log10: f64,
    /// ReLU hidden layers: the fraction of units that output 0 for every sample of the batch.
    pub dead_fraction: Option<f64>,
    /// Sigmoid and tanh hidden layers: the fraction of outputs within [`SATURATION_MARGIN`] of
    /// an asymptote.
    pub saturated_fraction: Option<f64>,
}

/// Every layer's statistics for one step, input layer first.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// One entry per `Linear` layer.
    pub layers: Vec<LayerStats>,
    /// The largest |logit| of the last forward (`None` if the model keeps no signals).
    pub max_abs_logit: Option<f64>,
}

impl StepStats {
    /// ‖dL/dW_first‖ / ‖dL/dW_last‖: below [`LAGGING_RATIO`] (1e-2) the first layer lags (it
    /// vanishes when its step is frozen too), above [`EXPLODING`] (1e3) it is thrown around.
    pub fn first_to_last_ratio(&self) -> f64 {
        match (self.layers.first(), self.layers.last()) {
            (Some(first), Some(last)) => first.weight_grad_norm / last.weight_grad_norm,
            _ => f64::NAN,
        }
    }
}

/// Σ x² over every element.
///
/// Squares are summed in `F` over sixteen lanes (so the loop vectorises) within blocks of 4,096
/// elements, and the blocks' sums in `f64`: an `f32` sum of 200,000 squares keeps about six
/// significant digits, plenty for a norm that is compared on a log scale.
pub fn sum_of_squares<F: Float, S: Data<Elem = F>, D: Dimension>(values: &ArrayBase<S, D>) -> f64 {
    let Some(slice) = values.as_slice_memory_order() else {
        return values
            .iter()
            .map(|value| value.as_f64() * value.as_f64())
            .sum();
    };
    let mut total = 0.0f64;
    for block in slice.chunks(4096) {
        let mut lanes = [F::zero(); 16];
        let chunks = block.chunks_exact(lanes.len());
        let tail = chunks
            .remainder()
            .iter()
            .fold(F::zero(), |sum, &v| sum + v * v);
        for chunk in chunks {
            for (lane, &value) in lanes.iter_mut().zip(chunk) {
                *lane += value * value;
            }
        }
        total += lanes.iter().map(|lane| lane.as_f64()).sum::<f64>() + tail.as_f64();
    }
    total
}

/// The largest |x| (NaN if any element is NaN).
pub fn max_abs<F: Float, S: Data<Elem = F>, D: Dimension>(values: &ArrayBase<S, D>) -> f64 {
    values.iter().fold(0.0f64, |largest, value| {
        let magnitude = value.as_f64().abs();
        if magnitude > largest || magnitude.is_nan() {
            magnitude
        } else {
            largest
        }
    })
}

/// The statistics of the step whose backward pass just ran, before or after the update; the
/// update ratios are NaN until [`StepStats::measure_update`] gives them.
///
/// Costs one pass over the weights and their gradients and one over the hidden activations.
pub fn step_stats<F: Float>(model: &mut impl Model<F>) -> StepStats {
    let activation = model.activation();
    // Phase 1: each weight gradient's norm.
    let mut layers = Vec::new();
    model.visit_linears(|_, layer| {
        layers.push(LayerStats {
            weight_grad_norm: sum_of_squares(&layer.grad_weight).sqrt(),
            input_grad_norm: None,
            update_ratio_log10: f64::NAN,
            dead_fraction: None,
            saturated_fraction: None,
        });
    });
    // Phase 2: what the forward and backward passes left inside the model.
    let Some(signals) = model.signals() else {
        return StepStats {
            layers,
            max_abs_logit: None,
        };
    };
    for (layer, norm) in layers.iter_mut().zip(&signals.input_grad_norms) {
        layer.input_grad_norm = *norm;
    }
    for (layer, output) in layers.iter_mut().zip(&signals.hidden_outputs) {
        match activation {
            Activation::Relu => layer.dead_fraction = Some(dead_fraction(output)),
            Activation::Sigmoid => {
                layer.saturated_fraction = Some(saturated_fraction(output, |s| s.min(1.0 - s)));
            }
            Activation::Tanh => {
                layer.saturated_fraction = Some(saturated_fraction(output, |t| 1.0 - t.abs()));
            }
        }
    }
    StepStats {
        layers,
        max_abs_logit: Some(signals.max_abs_logit),
    }
}

/// Each weight layer's weight, copied: take it before the optimizer's step, then
/// [`StepStats::measure_update`] compares the weights after it.
pub fn weights_of<F: Float>(model: &mut impl Model<F>) -> Vec<Array2<F>> {
    let mut weights = Vec::new();
    model.visit_linears(|_, layer| weights.push(layer.weight.to_owned()));
    weights
}

impl StepStats {
    /// Sets each layer's update ratio to log10(‖W_now - W_before‖ / ‖W_before‖): the step the
    /// optimizer took since `before` ([`weights_of`]), whatever the optimizer.
    ///
    /// # Panics
    /// If `before` does not hold one weight of each layer's shape.
    pub fn measure_update<F: Float>(&mut self, model: &mut impl Model<F>, before: &[Array2<F>]) {
        let mut ratios = Vec::with_capacity(before.len());
        model.visit_linears(|_, layer| {
            let old = &before[ratios.len()];
            assert_eq!(old.dim(), layer.weight.dim(), "weights_of another model");
            let step = || -> f64 {
                old.iter()
                    .zip(layer.weight.iter())
                    .map(|(&a, &b)| (b.as_f64() - a.as_f64()).powi(2))
                    .sum()
            };
            // Two independent passes over large arrays: one per thread when there are two.
            let (step, size) = if old.len() >= PARALLEL_ELEMENTS {
                rayon::join(step, || sum_of_squares(old))
            } else {
                (step(), sum_of_squares(old))
            };
            ratios.push((step.sqrt() / size.sqrt()).log10());
        });
        assert_eq!(ratios.len(), before.len(), "weights_of another model");
        for (layer, ratio) in self.layers.iter_mut().zip(ratios) {
            layer.update_ratio_log10 = ratio;
        }
    }
}

/// The fraction of columns (units) that are 0 in every row (sample).
fn dead_fraction<F: Float>(outputs: &ArrayView2<'_, F>) -> f64 {
    let units = outputs.ncols();
    if units == 0 || outputs.nrows() == 0 {
        return 0.0;
    }
    // A unit is alive if any sample gives it a positive output: walk the rows in memory order
    // and mark the columns.
    let mut alive = vec![false; units];
    for row in outputs.rows() {
        match row.as_slice() {
            Some(row) => mark_positive(&mut alive, row),
            None => mark_positive(&mut alive, &row.to_vec()),
        }
    }
    let dead = alive.iter().filter(|&&alive| !alive).count();
    dead as f64 / units as f64
}

fn mark_positive<F: Float>(alive: &mut [bool], row: &[F]) {
    for (alive, &value) in alive.iter_mut().zip(row) {
        *alive |= value > F::zero();
    }
}

/// The fraction of outputs whose `distance_to_asymptote` is below [`SATURATION_MARGIN`].
fn saturated_fraction<F: Float>(
    outputs: &ArrayView2<'_, F>,
    distance_to_asymptote: impl Fn(f64) -> f64,
) -> f64 {
    if outputs.is_empty() {
        return 0.0;
    }
    let saturated = outputs
        .iter()
        .filter(|value| distance_to_asymptote(value.as_f64()) < SATURATION_MARGIN)
        .count();
    saturated as f64 / outputs.len() as f64
}

/// The factor [`clip_grad_norm`] scales every gradient by, for gradients of joint norm `total`:
/// `min(1, max_norm / (total + 1e-6))`.
pub fn clip_coefficient(total: f64, max_norm: f64) -> f64 {
    (max_norm / (total + 1e-6)).min(1.0)
}

/// Scales every parameter gradient by one factor so their joint norm is at most `max_norm`;
/// returns the joint norm *before* clipping.
///
/// PyTorch's `torch.nn.utils.clip_grad_norm_(params, max_norm)` (norm type 2):
///
/// ```text
/// total = sqrt(Σ_p ‖dL/dp‖²)        coefficient = min(1, max_norm / (total + 1e-6))
/// dL/dp <- coefficient · dL/dp      for every parameter p
/// ```
///
/// The direction of the step is kept; only its length is capped. A non-finite total (an
/// overflowed gradient) is returned as is and leaves no usable gradient (infinite entries
/// become NaN, as in PyTorch with its default `error_if_nonfinite=False`): stop training there.
///
/// # Panics
/// If `max_norm` is not a positive number.
#[track_caller]
pub fn clip_grad_norm<F: Float>(model: &mut impl Model<F>, max_norm: f64) -> f64 {
    assert!(
        max_norm > 0.0,
        "clip_grad_norm: max_norm must be above 0, got {max_norm}"
    );
    let mut squares = 0.0;
    model.visit_params(|_, layer| {
        squares += sum_of_squares(&layer.grad_weight) + sum_of_squares(&layer.grad_bias);
    });
    let total = squares.sqrt();
    let coefficient = clip_coefficient(total, max_norm);
    if coefficient < 1.0 || !total.is_finite() {
        let coefficient = F::of(coefficient);
        model.visit_params(|_, mut layer| {
            layer.grad_weight.mapv_inplace(|grad| grad * coefficient);
            layer.grad_bias.mapv_inplace(|grad| grad * coefficient);
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn health_looks_at_the_ratio_the_norm_and_the_update() {
        let frozen = FROZEN_UPDATE_LOG10 - 1.0;
        assert_eq!(Health::of(1.0, 0.5, -3.0), Health::Healthy);
        assert_eq!(Health::of(1e-3, 0.5, frozen), Health::Vanishing);
        assert_eq!(Health::of(1.0, 1e-4, frozen), Health::Vanishing); // all layers alike, all tiny
        // A small gradient that still moves its (small) weights is not vanishing.
        assert_eq!(Health::of(1e-3, 0.5, -3.0), Health::Healthy);
        assert_eq!(Health::of(1e4, 0.5, -3.0), Health::Exploding);
        assert_eq!(Health::of(1.0, 1e4, -3.0), Health::Exploding);
        assert_eq!(Health::of(f64::NAN, f64::INFINITY, 0.0), Health::Exploding);
    }

    #[test]
    fn a_run_is_healthy_only_when_its_loss_fell_clearly() {
        let chance = 10f64.ln();
        let run = |final_loss: f64, ratio: f64| RunSummary {
            diverged_at: None,
            classes: 10,
            final_loss,
            ratio,
            first_norm: 0.1,
            max_norm: 0.5,
            first_update_log10: -3.0,
        };
        assert_eq!(Verdict::of(&run(0.3, 0.5)), Verdict::Healthy);
        assert_eq!(Verdict::of(&run(0.99 * chance, 0.5)), Verdict::NotLearning);
        assert_eq!(Verdict::of(&run(0.8 * chance, 0.5)), Verdict::Slow);
        assert_eq!(Verdict::of(&run(0.3, 1e-3)), Verdict::Slow); // learned, first layer lagging
        let frozen = RunSummary {
            first_update_log10: -7.0,
            ..run(0.99 * chance, 1e-3)
        };
        assert_eq!(Verdict::of(&frozen), Verdict::Vanishing);
        let blown = RunSummary {
            diverged_at: Some(4),
            ..run(f64::NAN, 1.0)
        };
        assert_eq!(Verdict::of(&blown).to_string(), "diverged@4");
    }

    #[test]
    fn saturation_counts_outputs_near_an_asymptote() {
        let outputs = array![[0.995, 0.5], [0.002, 0.98]];
        assert_eq!(saturated_fraction(&outputs.view(), |s| s.min(1.0 - s)), 0.5);
        let tanh = array![[-0.999, 0.0, 0.5, 0.9999]];
        assert_eq!(saturated_fraction(&tanh.view(), |t| 1.0 - t.abs()), 0.5);
    }

    #[test]
    fn sum_of_squares_matches_the_plain_sum_on_strided_and_odd_lengths() {
        // Exact in f64 (integers), over several 4,096-blocks with a ragged tail.
        let values = ndarray::Array::from_shape_fn((97, 89), |(i, j)| (i * 89 + j) as f64 - 11.0);
        let plain: f64 = values.iter().map(|v| v * v).sum();
        assert_eq!(sum_of_squares(&values), plain);
        let column = values.column(2);
        let plain: f64 = column.iter().map(|v| v * v).sum();
        assert_eq!(sum_of_squares(&column), plain);
    }
}
