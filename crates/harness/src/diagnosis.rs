//! Failure messages that teach: when a gradient is wrong, name the mistake behind it, with the
//! numbers and the hint file to read, but only when the evidence singles that mistake out.
//! Otherwise the message says what differs and where, and names no cause (a wrong cause, stated
//! with confidence, is worse than none).
//!
//! The evidence is what the check knows beyond the two tensors ([`Evidence`]): the layer, its
//! input, the upstream gradient, the weight, the targets, which backward this is and whether the
//! tensors compared before this one matched. [`expect::close_with`](crate::expect::close_with)
//! and [`expect::close_to_pytorch`](crate::expect::close_to_pytorch) append the diagnosis to their
//! message. Three kinds of evidence, tried in this order:
//!
//! 1. **Non-finite values** where the reference is finite, in softmax cross-entropy: NaN is
//!    named [`Mistake::NoMaxShift`] only when e^z of the check's own logits overflows without the
//!    shift; an infinity is named [`Mistake::LogOfUnderflow`] only when a target's shifted
//!    probability underflows to 0.
//! 2. **A known wrong formula, recomputed**: each mistake a learner makes in this layer is
//!    computed from the check's input, upstream gradient and weight (g W for g W^T, g y for
//!    sigmoid's g y (1 - y), p / N for (p - onehot) / N, ...). A mistake is named when ours equals
//!    its result at every entry, it differs from the reference, and no other candidate matches.
//!    The normalization layers too: batch norm's and layer norm's dL/dx without a path through
//!    the mean or the variance, the N - 1 variance, dgamma without x̂, batch statistics in
//!    evaluation; the running statistics replayed over the check's batches (no momentum, the
//!    momentum reversed, the biased variance); dropout without its scale or its mask; softmax
//!    shifted by the whole batch's max.
//! 3. **One constant factor** between ours and the reference: -1 (a flipped sign), 1/2 after a
//!    second backward of the same batch (`=` for `+=`), the batch size N or 1/N (N >= 3, from
//!    the evidence), N on the loss value alone (a sum for the mean). A weight gradient equal to
//!    the transposed reference is `g^T x`. A wrong bias gradient after the layer's input and
//!    weight gradients matched on one fresh backward is not the sum over rows.
//!
//! Any other difference is described without a cause; for batch norm's and layer norm's dL/dx,
//! with the sum it breaks (Σ dL/dx = 0 and Σ dL/dx x̂ = 0 over each feature's batch).

use backprop_core::{Activation, Targets};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, Axis, Ix2};

pub use backprop_core::hints::{HINTS_BY_CHECK, Mistake, hint_for, page};

/// What a failed comparison tells: a named mistake, or only what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The mistake, when the evidence singles it out.
    pub mistake: Option<Mistake>,
    /// The numbers: what ours is, against the reference.
    pub text: String,
    /// The hint file, relative to the repository root: the mistake's, or the page of the layer
    /// the check is about (none for a whole network).
    pub hint: Option<&'static str>,
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mistake {
            Some(mistake) => write!(
                f,
                "likely mistake: {}: {} (read {})",
                mistake.headline(),
                self.text,
                mistake.hint()
            ),
            None => match self.hint {
                Some(hint) => write!(f, "what differs: {} (read {hint})", self.text),
                None => write!(f, "what differs: {}", self.text),
            },
        }
    }
}

/// The layer or loss a check exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// `y = x W + b`.
    Linear,
    /// An elementwise activation.
    Activation(Activation),
    /// Mean softmax cross-entropy.
    SoftmaxCrossEntropy,
    /// Mean squared error.
    Mse,
    /// Batch norm, in training or in evaluation.
    BatchNorm {
        /// Normalizing with the batch's statistics (training) or the running ones.
        training: bool,
    },
    /// Layer norm.
    LayerNorm,
    /// Dropout with a known mask ([`Evidence::dropout`]).
    Dropout,
}

impl Subject {
    /// The hint page about this layer or loss.
    pub fn hint(self) -> &'static str {
        match self {
            Subject::Linear => page::LINEAR_BACKWARD,
            Subject::Activation(_) => page::CHAIN_RULE,
            Subject::SoftmaxCrossEntropy | Subject::Mse => page::MATH_REFRESH,
            Subject::BatchNorm { .. } | Subject::LayerNorm | Subject::Dropout => {
                page::NORMALIZATION
            }
        }
    }
}

/// Which backward pass produced the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pass {
    /// Not known (a whole network, several steps).
    #[default]
    Unknown,
    /// The first backward of a fresh layer.
    First,
    /// A second backward of the same batch without `zero_grad`, compared with twice the first.
    SecondWithoutZeroGrad,
}

/// What a check knows beyond the two tensors. Every field is optional: a check fills in what it
/// has, and a mistake is only named from evidence that is there.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The layer or loss the tensors belong to.
    pub subject: Option<Subject>,
    /// The layer's input x (a loss's logits or predictions), `(batch, features)`.
    pub input: Option<ArrayView2<'a, f64>>,
    /// The upstream gradient g handed to `backward`, `(batch, out)`.
    pub upstream: Option<ArrayView2<'a, f64>>,
    /// A `Linear` layer's weight, `(in, out)`.
    pub weight: Option<ArrayView2<'a, f64>>,
    /// A loss's targets.
    pub targets: Option<Targets<'a, f64>>,
    /// The batch size N, where no input says it (a whole network).
    pub batch: Option<usize>,
    /// Which backward this is.
    pub pass: Pass,
    /// Whether every tensor of this layer compared before this one matched (for a loss value:
    /// its input, and in a loss check its gradient).
    pub earlier_matched: bool,
    /// The level computed in `f32`: recomputed mistakes match to 1e-4 instead of 1e-9.
    pub single_precision: bool,
    /// A normalization layer's gamma and beta, per feature.
    pub affine: Option<(ArrayView1<'a, f64>, ArrayView1<'a, f64>)>,
    /// Dropout's mask (true: kept) and drop probability p.
    pub dropout: Option<(ArrayView2<'a, bool>, f64)>,
    /// The batches a fresh batch norm took in training, in order (running statistics start at
    /// mean 0 and variance 1).
    pub training_batches: Option<&'a [Array2<f64>]>,
}

impl<'a> Evidence<'a> {
    /// A layer's forward input and upstream gradient, on its first backward.
    pub fn layer(
        subject: Subject,
        input: ArrayView2<'a, f64>,
        upstream: ArrayView2<'a, f64>,
    ) -> Self {
        Evidence {
            subject: Some(subject),
            input: Some(input),
            upstream: Some(upstream),
            pass: Pass::First,
            ..Evidence::default()
        }
    }

    /// A loss's input and targets.
    pub fn loss(subject: Subject, input: ArrayView2<'a, f64>, targets: Targets<'a, f64>) -> Self {
        Evidence {
            subject: Some(subject),
            input: Some(input),
            targets: Some(targets),
            pass: Pass::First,
            ..Evidence::default()
        }
    }

    /// A normalization layer's input, upstream gradient (`None` where only the output is
    /// compared) and gamma and beta, on its first backward.
    pub fn normalization(
        subject: Subject,
        input: ArrayView2<'a, f64>,
        upstream: Option<ArrayView2<'a, f64>>,
        (gamma, beta): (&'a Array1<f64>, &'a Array1<f64>),
    ) -> Self {
        Evidence {
            subject: Some(subject),
            input: Some(input),
            upstream,
            affine: Some((gamma.view(), beta.view())),
            pass: Pass::First,
            ..Evidence::default()
        }
    }

    /// A whole network on a batch of `batch` rows.
    pub fn network(batch: usize) -> Self {
        Evidence {
            batch: Some(batch),
            ..Evidence::default()
        }
    }

    /// The batch size: stated, or the input's rows.
    fn batch_size(&self) -> Option<usize> {
        self.batch.or(self.input.map(|input| input.nrows()))
    }

    /// How closely a recomputed mistake must match ours.
    fn precision(&self) -> f64 {
        if self.single_precision { 1e-4 } else { 1e-9 }
    }
}

/// What a compared tensor is, read from its name once, here: the names the checks give
/// (`"output"`, `"output in evaluation"`, `"loss"`, `"dL/dinput"`, `"dL/dlogits"`,
/// `"dL/dlinear0.weight"`, `"dL/dbias"`, `"dL/dgamma"`, `"running mean after ..."`, ...). The
/// candidates of each mistake are chosen from this, never from the name's letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// A layer's output (or a network's logits).
    Output,
    /// A loss value.
    Loss,
    /// The gradient with respect to a layer's (or a loss's) input.
    InputGradient,
    /// A weight's gradient.
    WeightGradient,
    /// A bias's gradient.
    BiasGradient,
    /// A normalization layer's gamma gradient.
    GammaGradient,
    /// A normalization layer's beta gradient.
    BetaGradient,
    /// Batch norm's running mean.
    RunningMean,
    /// Batch norm's running variance.
    RunningVariance,
    /// Anything else (a sequence of losses, an input gradient in evaluation, ...).
    Other,
}

impl Quantity {
    /// The quantity a check's tensor name denotes.
    pub fn of(tensor: &str) -> Quantity {
        if tensor == "loss" {
            return Quantity::Loss;
        }
        if tensor.starts_with("output") || tensor == "logits" {
            return Quantity::Output;
        }
        if tensor.starts_with("running mean") {
            return Quantity::RunningMean;
        }
        if tensor.starts_with("running variance") {
            return Quantity::RunningVariance;
        }
        let Some(of) = tensor.strip_prefix("dL/d") else {
            return Quantity::Other;
        };
        match of {
            "input" | "logits" | "x" => Quantity::InputGradient,
            _ if of.ends_with("weight") => Quantity::WeightGradient,
            _ if of.ends_with("bias") => Quantity::BiasGradient,
            _ if of.ends_with("gamma") => Quantity::GammaGradient,
            _ if of.ends_with("beta") => Quantity::BetaGradient,
            _ => Quantity::Other,
        }
    }
}

/// Recognises the pattern of `ours` against `reference` (same shape), given the check's
/// `evidence`, or `None` when nothing stands out.
pub fn diagnose(
    tensor: &str,
    ours: ArrayViewD<'_, f64>,
    reference: ArrayViewD<'_, f64>,
    evidence: &Evidence<'_>,
) -> Option<Diagnosis> {
    let (ours, reference) = (&ours, &reference);
    non_finite(tensor, ours, reference, evidence)
        .or_else(|| recomputed_mistake(tensor, ours, reference, evidence))
        .or_else(|| transposed(tensor, ours, reference))
        .or_else(|| constant_factor(tensor, ours, reference, evidence))
        .or_else(|| normalization_sums(tensor, ours, evidence))
        .or_else(|| only_the_bias(tensor, evidence))
}

fn named(mistake: Mistake, text: String) -> Option<Diagnosis> {
    Some(Diagnosis {
        mistake: Some(mistake),
        text,
        hint: Some(mistake.hint()),
    })
}

fn described(evidence: &Evidence<'_>, text: String) -> Option<Diagnosis> {
    Some(Diagnosis {
        mistake: None,
        text,
        hint: evidence.subject.map(Subject::hint),
    })
}

/// NaN or an infinity where the reference is finite.
fn non_finite(
    tensor: &str,
    ours: &ArrayViewD<'_, f64>,
    reference: &ArrayViewD<'_, f64>,
    evidence: &Evidence<'_>,
) -> Option<Diagnosis> {
    let (value, expected) = ours
        .iter()
        .zip(reference.iter())
        .find(|(a, b)| !a.is_finite() && b.is_finite())?;
    let softmax_logits = match (evidence.subject, evidence.input) {
        (Some(Subject::SoftmaxCrossEntropy), Some(logits)) => Some(logits),
        _ => None,
    };
    let classes = match evidence.targets {
        Some(Targets::Classes(classes)) => Some(classes),
        _ => None,
    };
    if let (Some(logits), Some(classes)) = (softmax_logits, classes) {
        let precision = evidence.precision();
        let fits = |wrong: &Option<ArrayD<f64>>| {
            wrong
                .as_ref()
                .is_some_and(|wrong| same_up_to_overflow(ours, &wrong.view(), precision))
        };
        // On the loss alone, -ln p of an underflowed p can give the same infinity.
        let batch_max = batch_max_softmax(tensor, logits, classes);
        let log_of_p = (Quantity::of(tensor) == Quantity::Loss)
            .then(|| log_of_probability_loss(logits, classes));
        if fits(&batch_max) && !fits(&log_of_p) {
            return named(
                Mistake::BatchMaxShift,
                format!(
                    "{tensor} holds {value} where the reference is {expected:.4e}, and it is what \
                     softmax cross-entropy shifted by the largest logit of the whole batch gives \
                     (non-finite at the same entries, equal at the others): a row far below that \
                     max has every e^(z - max) underflow to 0. Subtract each row's own largest \
                     logit"
                ),
            );
        }
    }
    if let (Some(logits), true) = (softmax_logits, value.is_nan()) {
        // e^z / Σ e^z straight away: inf / inf or 0 / 0 on these very logits.
        let unshifted = logits.mapv(f64::exp);
        let sums = unshifted.sum_axis(Axis(1));
        if sums.iter().any(|&sum| !sum.is_finite() || sum == 0.0) {
            return named(
                Mistake::NoMaxShift,
                format!(
                    "{tensor} holds NaN where the reference is {expected:.4e}, and e^z of these \
                     logits overflows (or every e^z underflows to 0): inf / inf is NaN. Subtract \
                     each row's largest logit before exp (softmax is unchanged by the shift)"
                ),
            );
        }
    }
    // -ln p of a p that underflowed to 0 makes the loss +inf (its gradient p - onehot is
    // computed apart; a -inf or a NaN loss is something else).
    let plus_infinity = *value == f64::INFINITY && Quantity::of(tensor) == Quantity::Loss;
    if let (Some(logits), Some(classes), true) = (softmax_logits, classes, plus_infinity) {
        // ln p[target] with p[target] = e^(z - max) / Σ e^(z - max) = 0 in floating point.
        let underflows = logits.outer_iter().zip(classes).any(|(row, &target)| {
            let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
            let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
            (row[target] - max).exp() / sum == 0.0
        });
        if underflows {
            return named(
                Mistake::LogOfUnderflow,
                format!(
                    "{tensor} holds {value} where the reference is {expected:.4e}, and a \
                     target's probability underflows to 0 for these logits: ln 0 = -inf. Take \
                     the log of the softmax as z - max - ln Σ e^(z - max), never ln(p)"
                ),
            );
        }
    }
    described(
        evidence,
        format!("{tensor} holds {value} where the reference is {expected:.4e}"),
    )
}

/// Non-finite at the same entries (whichever of NaN and ±inf: 0 / 0 and e^(+inf) are the same
/// overflow written two ways) and equal at every other, with at least one non-finite entry.
fn same_up_to_overflow(a: &ArrayViewD<'_, f64>, b: &ArrayViewD<'_, f64>, precision: f64) -> bool {
    a.shape() == b.shape()
        && a.iter().any(|x| !x.is_finite())
        && a.iter()
            .zip(b.iter())
            .all(|(&x, &y)| match (x.is_finite(), y.is_finite()) {
                (true, true) => (x - y).abs() <= precision * (1.0 + y.abs()),
                (false, false) => true,
                _ => false,
            })
}

/// The loss as -mean ln p[target], p the row-shifted softmax: +inf once a p underflows.
fn log_of_probability_loss(logits: ArrayView2<'_, f64>, classes: &[usize]) -> ArrayD<f64> {
    let picked: f64 = logits
        .outer_iter()
        .zip(classes)
        .map(|(row, &class)| {
            let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
            let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
            row.get(class)
                .map_or(f64::NAN, |&z| ((z - max).exp() / sum).ln())
        })
        .sum();
    ndarray::arr0(-picked / logits.nrows() as f64).into_dyn()
}

/// Softmax cross-entropy's loss ("loss") or dL/dz (any other tensor) with every row shifted by
/// the largest logit of the whole batch: log p = z - max - ln Σ e^(z - max).
fn batch_max_softmax(
    tensor: &str,
    logits: ArrayView2<'_, f64>,
    classes: &[usize],
) -> Option<ArrayD<f64>> {
    let max = logits.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
    let exp = logits.mapv(|z| (z - max).exp());
    let sums = exp.sum_axis(Axis(1));
    let batch = logits.nrows() as f64;
    if Quantity::of(tensor) == Quantity::Loss {
        let picked: Option<f64> = classes
            .iter()
            .enumerate()
            .map(|(row, &class)| Some(logits.get([row, class])? - max - sums[row].ln()))
            .sum();
        return Some(ndarray::arr0(-picked? / batch).into_dyn());
    }
    let mut grad = &exp / &sums.insert_axis(Axis(1));
    for (row, &class) in classes.iter().enumerate() {
        *grad.get_mut([row, class])? -= 1.0;
    }
    Some((grad / batch).into_dyn())
}

/// A candidate: the mistake, what it computes in words, and what it computes on this data.
type Candidate = (Mistake, &'static str, ArrayD<f64>);

/// The one known wrong formula whose result on the check's own data equals ours.
fn recomputed_mistake(
    tensor: &str,
    ours: &ArrayViewD<'_, f64>,
    reference: &ArrayViewD<'_, f64>,
    evidence: &Evidence<'_>,
) -> Option<Diagnosis> {
    let precision = evidence.precision();
    let equal = |a: &ArrayViewD<'_, f64>, b: &ArrayViewD<'_, f64>| {
        a.shape() == b.shape()
            && a.iter()
                .zip(b.iter())
                .all(|(x, y)| (x - y).abs() <= precision * (1.0 + y.abs()))
    };
    let matching: Vec<Candidate> = candidates(tensor, evidence)
        .into_iter()
        .filter(|(_, _, wrong)| equal(ours, &wrong.view()) && !equal(reference, &wrong.view()))
        .collect();
    let (mistake, formula, _) = matching.first()?;
    if matching.iter().any(|(other, ..)| other != mistake) {
        return None; // two different mistakes fit: the numbers do not tell which
    }
    named(
        *mistake,
        format!("{tensor} equals {formula} (at every entry, on this check's own data)"),
    )
}

/// What each mistake in the evidence's subject would have computed for `tensor`.
fn candidates(tensor: &str, evidence: &Evidence<'_>) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    let mut add = |mistake, formula, value: ArrayD<f64>| found.push((mistake, formula, value));
    if let Some(batches) = evidence.training_batches {
        running_candidates(tensor, batches, &mut add);
    }
    let (Some(subject), Some(x)) = (evidence.subject, evidence.input) else {
        return found;
    };
    let is_loss = Quantity::of(tensor) == Quantity::Loss;
    match (subject, evidence.upstream, evidence.targets) {
        (Subject::BatchNorm { training }, g, _) => {
            norm_candidates(tensor, x, g, evidence.affine, Some(training), &mut add)
        }
        (Subject::LayerNorm, g, _) => {
            norm_candidates(tensor, x, g, evidence.affine, None, &mut add)
        }
        (Subject::Dropout, g, _) => {
            if let Some((keep, p)) = evidence.dropout {
                dropout_candidates(tensor, x, g, (keep, p), &mut add)
            }
        }
        (Subject::Linear, Some(g), _) => linear_candidates(tensor, x, g, evidence.weight, &mut add),
        (Subject::Activation(activation), Some(g), _) => {
            activation_candidates(activation, x, g, &mut add)
        }
        (Subject::SoftmaxCrossEntropy, _, Some(Targets::Classes(classes))) if !is_loss => {
            softmax_candidates(x, classes, &mut add)
        }
        (Subject::Mse, _, Some(Targets::Values(t))) if !is_loss => mse_candidates(x, t, &mut add),
        _ => {}
    }
    found
}

/// `Linear`'s mistakes, for dL/dW, dL/db or dL/dx.
fn linear_candidates(
    tensor: &str,
    x: ArrayView2<'_, f64>,
    g: ArrayView2<'_, f64>,
    weight: Option<ArrayView2<'_, f64>>,
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let batch = x.nrows() as f64;
    let quantity = Quantity::of(tensor);
    if quantity == Quantity::WeightGradient {
        let right = x.t().dot(&g);
        if right.is_square() {
            let transposed = right.t().to_owned().into_dyn();
            add(
                Mistake::TransposedProduct,
                "g^T x (the transpose of x^T g)",
                transposed,
            );
        }
        if batch >= 2.0 {
            add(Mistake::MeanTwice, "x^T g / N", (right / batch).into_dyn());
        }
    } else if quantity == Quantity::BiasGradient {
        let first_row = g.row(0).to_owned().into_dyn();
        add(Mistake::BiasNotSummed, "g's first row alone", first_row);
        if let (true, Some(mean)) = (batch >= 2.0, g.mean_axis(Axis(0))) {
            add(
                Mistake::MeanTwice,
                "the mean of g over the rows",
                mean.into_dyn(),
            );
        }
    } else if let Some(weight) = weight.filter(|w| w.is_square()) {
        add(
            Mistake::TransposedWeight,
            "g W (W not transposed)",
            g.dot(&weight).into_dyn(),
        );
    }
}

/// MSE's mistakes, for dL/dp.
fn mse_candidates(
    predictions: ArrayView2<'_, f64>,
    targets: ArrayView2<'_, f64>,
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let difference = (&predictions - &targets).into_dyn();
    let (count, batch) = (difference.len() as f64, predictions.nrows() as f64);
    add(
        Mistake::MseMissingTwo,
        "(p - t) / (N M), without the 2",
        &difference / count,
    );
    add(
        Mistake::MissingMean,
        "2 (p - t), with no mean",
        &difference * 2.0,
    );
    let rows_only = "2 (p - t) / N: the mean divides by all N x M entries";
    add(Mistake::MissingMean, rows_only, &difference * (2.0 / batch));
    add(
        Mistake::SignFlip,
        "2 (t - p) / (N M)",
        &difference * (-2.0 / count),
    );
}

/// An activation's mistakes, for dL/dx: wrong local slopes times g, the slope without g, and
/// ReLU masking on g.
fn activation_candidates(
    activation: Activation,
    x: ArrayView2<'_, f64>,
    g: ArrayView2<'_, f64>,
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let (wrong, (mistake, formula, right)) = local_slopes(activation, x);
    for (mistake, formula, slope) in wrong {
        add(mistake, formula, (&g * &slope).into_dyn());
    }
    add(mistake, formula, right.into_dyn());
    if activation == Activation::Relu {
        let masked_on_g = g.mapv(|g| if g > 0.0 { g } else { 0.0 }).into_dyn();
        add(Mistake::ReluMaskOnUpstream, "g where g > 0", masked_on_g);
    }
}

/// A known wrong local slope and what g times it computes.
type Slope = (Mistake, &'static str, Array2<f64>);

/// The wrong local slopes a learner writes for `activation` at `x`, and the right slope alone
/// (the result when g is left out).
fn local_slopes(activation: Activation, x: ArrayView2<'_, f64>) -> (Vec<Slope>, Slope) {
    use Mistake::{
        DerivativeFromInput, ReluMaskAtZero, UpstreamNotMultiplied, WrongLocalDerivative,
    };
    let step = |keep: fn(f64) -> bool| x.mapv(|x| if keep(x) { 1.0 } else { 0.0 });
    match activation {
        Activation::Relu => (
            vec![(ReluMaskAtZero, "g where x >= 0", step(|x| x >= 0.0))],
            (
                UpstreamNotMultiplied,
                "1 where x > 0, without g",
                step(|x| x > 0.0),
            ),
        ),
        Activation::Sigmoid => {
            let y = x.mapv(|x| 1.0 / (1.0 + (-x).exp()));
            let as_y = "g y (sigmoid' written as y)";
            let as_one_minus_y = "g (1 - y) (sigmoid' written as 1 - y)";
            let from_x = "g x (1 - x), from the input x";
            let wrong = vec![
                (WrongLocalDerivative, as_y, y.clone()),
                (WrongLocalDerivative, as_one_minus_y, y.mapv(|y| 1.0 - y)),
                (DerivativeFromInput, from_x, x.mapv(|x| x * (1.0 - x))),
            ];
            let right = y.mapv(|y| y * (1.0 - y));
            (
                wrong,
                (UpstreamNotMultiplied, "y (1 - y), without g", right),
            )
        }
        Activation::Tanh => {
            let y = x.mapv(f64::tanh);
            let as_one_minus_y = "g (1 - y) (tanh' written as 1 - y)";
            let as_one_plus_y2 = "g (1 + y^2) (tanh' written as 1 + y^2)";
            let from_x = "g (1 - x^2), from the input x";
            let wrong = vec![
                (WrongLocalDerivative, as_one_minus_y, y.mapv(|y| 1.0 - y)),
                (
                    WrongLocalDerivative,
                    as_one_plus_y2,
                    y.mapv(|y| 1.0 + y * y),
                ),
                (DerivativeFromInput, from_x, x.mapv(|x| 1.0 - x * x)),
            ];
            let right = y.mapv(|y| 1.0 - y * y);
            (wrong, (UpstreamNotMultiplied, "1 - y^2, without g", right))
        }
    }
}

/// Softmax cross-entropy's mistakes, for dL/dz.
fn softmax_candidates(
    logits: ArrayView2<'_, f64>,
    classes: &[usize],
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let batch = logits.nrows() as f64;
    let max = logits.fold_axis(Axis(1), f64::NEG_INFINITY, |m, &z| m.max(z));
    let exp = (&logits - &max.insert_axis(Axis(1))).mapv(f64::exp);
    let probs = (&exp / &exp.sum_axis(Axis(1)).insert_axis(Axis(1))).into_dyn();
    let mut onehot = ArrayD::zeros(probs.raw_dim());
    for (row, &class) in classes.iter().enumerate() {
        if let Some(entry) = onehot.get_mut([row, class].as_slice()) {
            *entry = 1.0;
        }
    }
    add(
        Mistake::OnehotNotSubtracted,
        "p / N, without the one-hot",
        &probs / batch,
    );
    add(
        Mistake::MissingMean,
        "p - onehot, without the 1/N",
        &probs - &onehot,
    );
    add(
        Mistake::SignFlip,
        "(onehot - p) / N",
        (&onehot - &probs) / batch,
    );
}

/// Each column's mean and variance over the rows (`unbiased`: over N - 1).
fn column_statistics(x: ArrayView2<'_, f64>, unbiased: bool) -> (Array1<f64>, Array1<f64>) {
    let rows = x.nrows() as f64;
    let mean = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    let divisor = if unbiased { rows - 1.0 } else { rows };
    let var = (&x - &mean).mapv(|d| d * d).sum_axis(Axis(0)) / divisor;
    (mean, var)
}

/// Batch norm's (`training` Some) or layer norm's (None) mistakes, for its output, dL/dx and
/// dL/dgamma. Layer norm is batch norm on the transpose: its statistics belong to a row.
fn norm_candidates(
    tensor: &str,
    x: ArrayView2<'_, f64>,
    g: Option<ArrayView2<'_, f64>>,
    affine: Option<(ArrayView1<'_, f64>, ArrayView1<'_, f64>)>,
    training: Option<bool>,
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let Some((gamma, beta)) = affine else {
        return;
    };
    let eps = backprop_core::norm::NORM_EPS;
    let layer_norm = training.is_none();
    // Statistics over axis 0 of `columns`: x itself for batch norm, its transpose for layer norm.
    let columns = if layer_norm { x.t() } else { x.view() };
    let back = |a: Array2<f64>| if layer_norm { a.reversed_axes() } else { a };
    let normalized = |unbiased: bool| {
        let (mean, var) = column_statistics(columns, unbiased);
        back((&columns - &mean) / &var.mapv(|v| (v + eps).sqrt()))
    };
    let affine_output = |xhat: Array2<f64>| (xhat * gamma + beta).into_dyn();
    let statistics_of_batch = training != Some(false);
    let quantity = Quantity::of(tensor);
    let output = quantity == Quantity::Output;
    if output && columns.nrows() >= 2 {
        let unbiased = affine_output(normalized(true));
        if statistics_of_batch {
            let formula = "gamma (x - mean) / sqrt(var + eps) + beta, var over N - 1";
            add(Mistake::NormUnbiasedVariance, formula, unbiased);
        } else {
            let formula = "gamma (x - batch mean) / sqrt(batch var + eps) + beta";
            add(
                Mistake::BatchStatisticsInEvaluation,
                formula,
                affine_output(normalized(false)),
            );
        }
    }
    if output && columns.nrows() == 1 && training == Some(false) {
        // One row: the batch's own statistics make x̂ = 0, so y = beta.
        let formula = "beta alone: a one-row batch normalized by its own mean";
        add(
            Mistake::BatchStatisticsInEvaluation,
            formula,
            affine_output(normalized(false)),
        );
    }
    let Some(g) = g.filter(|_| statistics_of_batch) else {
        return;
    };
    let xhat = normalized(false);
    if quantity == Quantity::GammaGradient {
        let formula = "Σ g over the rows, without x̂";
        add(
            Mistake::GammaGradWithoutNormalized,
            formula,
            g.sum_axis(Axis(0)).into_dyn(),
        );
        let formula = "Σ g x over the rows: the input x where x̂ belongs";
        add(
            Mistake::GammaGradWithoutNormalized,
            formula,
            (&g * &x).sum_axis(Axis(0)).into_dyn(),
        );
    }
    if quantity != Quantity::InputGradient {
        return;
    }
    // d = g gamma, then in the statistics' orientation: s d, s (d - mean d), s (d - x̂ mean(d x̂)).
    let d = &g * &gamma;
    let (d, xhat) = if layer_norm {
        (d.reversed_axes(), xhat.reversed_axes())
    } else {
        (d, xhat)
    };
    let (_, var) = column_statistics(columns, false);
    let s = var.mapv(|v| 1.0 / (v + eps).sqrt());
    let mean_d = d.mean_axis(Axis(0)).expect("rows");
    let mean_d_xhat = (&d * &xhat).mean_axis(Axis(0)).expect("rows");
    let direct = &d * &s;
    let no_variance = (&d - &mean_d) * &s;
    let no_mean = (&d - &(&xhat * &mean_d_xhat)) * &s;
    let paths = [
        (
            "g gamma / sqrt(var + eps): x̂'s direct path alone, none through the mean or the variance",
            direct,
        ),
        (
            "(g gamma - mean of g gamma) / sqrt(var + eps): no path through the variance",
            no_variance,
        ),
        (
            "(g gamma - x̂ mean(g gamma x̂)) / sqrt(var + eps): no path through the mean",
            no_mean,
        ),
    ];
    for (formula, value) in paths {
        add(Mistake::NormPathMissing, formula, back(value).into_dyn());
    }
}

/// Dropout's mistakes with a known mask, for its output and dL/dx.
fn dropout_candidates(
    tensor: &str,
    x: ArrayView2<'_, f64>,
    g: Option<ArrayView2<'_, f64>>,
    (keep, p): (ArrayView2<'_, bool>, f64),
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let mask = keep.mapv(|kept| if kept { 1.0 } else { 0.0 });
    let scale = 1.0 / (1.0 - p);
    let quantity = Quantity::of(tensor);
    if quantity == Quantity::Output {
        add(
            Mistake::DropoutWithoutScale,
            "x m, without the 1 / (1 - p)",
            (&x * &mask).into_dyn(),
        );
    }
    if let (Some(g), Quantity::InputGradient) = (g, quantity) {
        add(
            Mistake::DropoutWithoutScale,
            "g m, without the 1 / (1 - p)",
            (&g * &mask).into_dyn(),
        );
        add(
            Mistake::DropoutWithoutMask,
            "g / (1 - p) everywhere, the mask left out",
            (&g * scale).into_dyn(),
        );
    }
}

/// One step of a running average: (running, the batch's statistic) to the new running value.
type Blend<'a> = dyn Fn(&Array1<f64>, &Array1<f64>) -> Array1<f64> + 'a;

/// The running statistics' mistakes after `batches` in training from mean 0, variance 1.
fn running_candidates(
    tensor: &str,
    batches: &[Array2<f64>],
    add: &mut impl FnMut(Mistake, &'static str, ArrayD<f64>),
) {
    let variance = match Quantity::of(tensor) {
        Quantity::RunningMean => false,
        Quantity::RunningVariance => true,
        _ => return,
    };
    let Some(first) = batches.first() else {
        return;
    };
    let momentum = backprop_core::norm::BATCH_NORM_MOMENTUM;
    let start = || {
        if variance {
            Array1::ones(first.ncols())
        } else {
            Array1::zeros(first.ncols())
        }
    };
    // Runs the running average with `blend(running, batch statistic)` over every batch.
    let replay = |unbiased: bool, blend: &Blend<'_>| {
        batches.iter().fold(start(), |running, batch| {
            let (mean, var) = column_statistics(batch.view(), unbiased);
            blend(&running, if variance { &var } else { &mean })
        })
    };
    let replaced = replay(true, &|_, batch| batch.clone());
    add(
        Mistake::RunningWithoutMomentum,
        "the last batch's statistics, no running average",
        replaced.into_dyn(),
    );
    let reversed = replay(true, &|running, batch| {
        running * momentum + batch * (1.0 - momentum)
    });
    let formula = "0.1 running + 0.9 batch: the momentum on the wrong side";
    add(
        Mistake::RunningWithoutMomentum,
        formula,
        reversed.into_dyn(),
    );
    if variance {
        let biased = replay(false, &|running, batch| {
            running * (1.0 - momentum) + batch * momentum
        });
        let formula = "0.9 running + 0.1 batch variance over N, not N - 1";
        add(Mistake::BiasedRunningVariance, formula, biased.into_dyn());
    }
}

/// A weight gradient that is the reference transposed (square and not symmetric): `g^T x`.
fn transposed(
    tensor: &str,
    ours: &ArrayViewD<'_, f64>,
    reference: &ArrayViewD<'_, f64>,
) -> Option<Diagnosis> {
    let ours = ours.view().into_dimensionality::<Ix2>().ok()?;
    let reference = reference.view().into_dimensionality::<Ix2>().ok()?;
    let same = |a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>| {
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + y.abs()))
    };
    let fits =
        Quantity::of(tensor) == Quantity::WeightGradient && ours.is_square() && ours.nrows() > 1;
    if fits && !same(reference, reference.t()) && same(ours, reference.t()) {
        return named(
            Mistake::TransposedProduct,
            format!(
                "{tensor} equals the reference transposed. dL/dW has W's shape (fan_in, \
                 fan_out): the input's transpose (fan_in, batch) times g (batch, fan_out)"
            ),
        );
    }
    None
}

/// One constant factor between ours and the reference.
fn constant_factor(
    tensor: &str,
    ours: &ArrayViewD<'_, f64>,
    reference: &ArrayViewD<'_, f64>,
    evidence: &Evidence<'_>,
) -> Option<Diagnosis> {
    let ratios: Vec<f64> = ours
        .iter()
        .zip(reference.iter())
        .filter(|(_, b)| b.abs() > 1e-12)
        .map(|(a, b)| a / b)
        .collect();
    let first = *ratios.first()?;
    let constant = ratios
        .iter()
        .all(|r| (r - first).abs() <= 1e-6 * first.abs().max(1e-12));
    let zeros_agree = ours
        .iter()
        .zip(reference.iter())
        .all(|(a, b)| b.abs() > 1e-12 || a.abs() <= 1e-12);
    let near = |value: f64| (first - value).abs() <= 1e-6 * value.abs();
    if !constant || !zeros_agree || near(1.0) {
        return None;
    }
    let every = format!("{tensor} is {first:.6} x the reference at every entry");
    let batch = evidence.batch_size().filter(|&n| n >= 3).map(|n| n as f64);
    let loss_entries = evidence.input.map(|input| input.len() as f64);
    if near(-1.0) {
        return named(Mistake::SignFlip, every);
    }
    if near(0.5) && evidence.pass == Pass::SecondWithoutZeroGrad {
        return named(
            Mistake::Overwrite,
            format!(
                "{every}, after a second backward of the same batch without zero_grad: the \
                 second pass replaced the gradient instead of adding to it"
            ),
        );
    }
    if Quantity::of(tensor) == Quantity::Loss {
        let summed = [
            batch,
            loss_entries.filter(|_| evidence.subject == Some(Subject::Mse)),
        ];
        if summed.into_iter().flatten().any(near) && evidence.earlier_matched {
            return named(
                Mistake::LossNotMean,
                format!("{every}, the number of entries the mean runs over"),
            );
        }
        return described(evidence, every);
    }
    match batch {
        Some(n) if near(n) && evidence.pass != Pass::SecondWithoutZeroGrad => named(
            Mistake::MissingMean,
            format!("{every}, and {n} is the batch size: divide the loss gradient by N"),
        ),
        Some(n) if near(1.0 / n) => named(
            Mistake::MeanTwice,
            format!("{every}, and {n} is the batch size: once in the loss is enough"),
        ),
        _ => described(evidence, every),
    }
}

/// Batch norm's (training) or layer norm's dL/dx that breaks the two sums every right one
/// keeps: over each feature's batch (each row's features for layer norm), Σ dL/dx = 0 (the path
/// through the mean) and Σ dL/dx x̂ = 0 (the path through the variance). Said, not named: a
/// wrong formula of any kind can break them.
fn normalization_sums(
    tensor: &str,
    ours: &ArrayViewD<'_, f64>,
    evidence: &Evidence<'_>,
) -> Option<Diagnosis> {
    let layer_norm = match evidence.subject? {
        Subject::BatchNorm { training: true } => false,
        Subject::LayerNorm => true,
        _ => return None,
    };
    let x = evidence.input?;
    let ours = ours.view().into_dimensionality::<Ix2>().ok()?;
    if Quantity::of(tensor) != Quantity::InputGradient || ours.dim() != x.dim() || x.nrows() < 2 {
        return None;
    }
    let (ours, x) = if layer_norm {
        (ours.t(), x.t())
    } else {
        (ours, x)
    };
    let (mean, var) = column_statistics(x, false);
    let eps = backprop_core::norm::NORM_EPS;
    let xhat = (&x - &mean) / &var.mapv(|v| (v + eps).sqrt());
    let scale = ours.iter().fold(0.0f64, |m, v| m.max(v.abs())) * x.nrows() as f64;
    let sums = ours.sum_axis(Axis(0));
    let weighted = (&ours * &xhat).sum_axis(Axis(0));
    let worst = |sums: &Array1<f64>| {
        sums.indexed_iter()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(at, &sum)| (at, sum))
            .filter(|(_, sum)| sum.abs() > 1e-3 * scale.max(1e-12))
    };
    let over = if layer_norm { "row" } else { "feature" };
    let across = if layer_norm {
        "its features"
    } else {
        "the batch"
    };
    let text = match (worst(&sums), worst(&weighted)) {
        (Some((at, sum)), _) => format!(
            "{tensor} of {over} {at} sums to {sum:.4e} over {across}, where it must sum to 0: \
             moving every x of a {over} together moves the mean with it and leaves x̂ unchanged"
        ),
        (None, Some((at, sum))) => format!(
            "Σ {tensor} x̂ of {over} {at} is {sum:.4e} over {across}, where it must be 0: \
             scaling a {over}'s deviations from its mean moves the variance with them and \
             leaves x̂ unchanged"
        ),
        (None, None) => return None,
    };
    described(evidence, text)
}

/// Only a bias gradient is wrong, the layer's input and weight gradients having matched on one
/// fresh backward.
fn only_the_bias(tensor: &str, evidence: &Evidence<'_>) -> Option<Diagnosis> {
    let fits = Quantity::of(tensor) == Quantity::BiasGradient
        && evidence.subject == Some(Subject::Linear)
        && evidence.pass == Pass::First
        && evidence.earlier_matched;
    fits.then(|| Diagnosis {
        mistake: Some(Mistake::BiasNotSummed),
        text: format!(
            "only {tensor} is wrong: the output, dL/dinput and dL/dweight of this fresh layer \
             matched on this one backward. dL/db has one number per output"
        ),
        hint: Some(Mistake::BiasNotSummed.hint()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    fn diagnosis(
        tensor: &str,
        ours: &Array2<f64>,
        reference: &Array2<f64>,
        evidence: &Evidence<'_>,
    ) -> String {
        let (ours, reference) = (ours.view().into_dyn(), reference.view().into_dyn());
        diagnose(tensor, ours, reference, evidence)
            .map(|d| d.to_string())
            .unwrap_or_default()
    }

    fn named(text: &str) -> Vec<Mistake> {
        Mistake::named_in(text)
    }

    #[test]
    fn headlines_are_distinct_and_found_in_their_own_message() {
        for mistake in Mistake::ALL {
            let message = Diagnosis {
                mistake: Some(mistake),
                text: "x".into(),
                hint: Some(mistake.hint()),
            };
            assert_eq!(named(&message.to_string()), vec![mistake]);
        }
    }

    #[test]
    fn recomputed_mistakes_are_named_from_the_checks_own_data() {
        let x = array![[0.5, -1.0, 0.0], [2.0, 0.25, -0.5], [1.5, -2.0, 0.75]];
        let g = array![[1.0, -0.5, 2.0], [0.25, 1.5, -1.0], [-2.0, 0.5, 1.0]];
        let weight = array![[0.3, -0.2, 0.5], [1.0, 0.1, -0.4], [0.2, 0.6, 0.9]];
        let linear = Evidence {
            weight: Some(weight.view()),
            ..Evidence::layer(Subject::Linear, x.view(), g.view())
        };
        let right_dx = g.dot(&weight.t());
        assert_eq!(
            named(&diagnosis("dL/dinput", &g.dot(&weight), &right_dx, &linear)),
            [Mistake::TransposedWeight]
        );
        let right_dw = x.t().dot(&g);
        assert_eq!(
            named(&diagnosis(
                "dL/dweight",
                &right_dw.t().to_owned(),
                &right_dw,
                &linear
            )),
            [Mistake::TransposedProduct]
        );
        let tanh = Evidence::layer(Subject::Activation(Activation::Tanh), x.view(), g.view());
        let right = &g * &x.mapv(|x| 1.0 - x.tanh().powi(2));
        let one_minus_y = &g * &x.mapv(|x| 1.0 - x.tanh());
        assert_eq!(
            named(&diagnosis("dL/dinput", &one_minus_y, &right, &tanh)),
            [Mistake::WrongLocalDerivative]
        );
        // The same numbers without the evidence: no cause.
        let bare = diagnosis("dL/dinput", &one_minus_y, &right, &Evidence::default());
        assert!(!bare.contains("likely mistake"), "{bare}");
    }

    /// The mask story needs ours to equal g exactly where x = 0: a wrong value there is not it.
    #[test]
    fn the_relu_mask_is_named_only_when_ours_is_g_at_the_zero_inputs() {
        let x = array![[0.0, 1.0], [-1.0, 0.0]];
        let g = array![[0.5, 1.5], [2.5, 3.5]];
        let relu = Evidence::layer(Subject::Activation(Activation::Relu), x.view(), g.view());
        let right = array![[0.0, 1.5], [0.0, 0.0]];
        let passes_zero = array![[0.5, 1.5], [0.0, 3.5]];
        assert_eq!(
            named(&diagnosis("dL/dinput", &passes_zero, &right, &relu)),
            [Mistake::ReluMaskAtZero]
        );
        let something_else = array![[0.25, 1.5], [0.0, 7.0]];
        assert!(named(&diagnosis("dL/dinput", &something_else, &right, &relu)).is_empty());
    }

    #[test]
    fn constant_factors_need_their_circumstances() {
        let reference = array![[1.0, -2.0, 0.5], [4.0, 3.0, -1.5], [0.25, 2.0, 1.0]];
        let network = Evidence::network(3);
        let factor = |f: f64, evidence: &Evidence<'_>| {
            named(&diagnosis(
                "dL/dlinear0.weight",
                &(&reference * f),
                &reference,
                evidence,
            ))
        };
        assert_eq!(factor(3.0, &network), [Mistake::MissingMean]);
        assert_eq!(factor(1.0 / 3.0, &network), [Mistake::MeanTwice]);
        assert_eq!(factor(-1.0, &Evidence::default()), [Mistake::SignFlip]);
        // 1/2: "= for +=" only after a second backward.
        assert!(factor(0.5, &network).is_empty());
        let second = Evidence {
            pass: Pass::SecondWithoutZeroGrad,
            ..network
        };
        assert_eq!(factor(0.5, &second), [Mistake::Overwrite]);
        // N with no batch size in the evidence: described only.
        assert!(factor(3.0, &Evidence::default()).is_empty());
    }

    #[test]
    fn nan_and_infinity_are_told_apart_by_the_logits() {
        let reference = array![[0.5, -0.5], [0.25, -0.25]];
        let nan = array![[f64::NAN, -0.5], [0.25, -0.25]];
        let huge = array![[1e4, 0.0], [0.0, 1.0]];
        let modest = array![[1.0, 0.0], [0.0, 1.0]];
        let classes = [1, 0];
        let on_huge = Evidence::loss(
            Subject::SoftmaxCrossEntropy,
            huge.view(),
            Targets::Classes(&classes),
        );
        assert_eq!(
            named(&diagnosis("dL/dlogits", &nan, &reference, &on_huge)),
            [Mistake::NoMaxShift]
        );
        // A NaN on logits whose e^z is finite: not the max shift.
        let on_modest = Evidence::loss(
            Subject::SoftmaxCrossEntropy,
            modest.view(),
            Targets::Classes(&classes),
        );
        let text = diagnosis("dL/dlogits", &nan, &reference, &on_modest);
        assert!(
            named(&text).is_empty() && text.contains("holds NaN"),
            "{text}"
        );
        // An infinite loss where the target's probability underflows: ln 0.
        let (inf, finite) = (array![[f64::INFINITY]], array![[5e3]]);
        let loss = Evidence {
            earlier_matched: true,
            ..on_huge
        };
        assert_eq!(
            named(&diagnosis("loss", &inf, &finite, &loss)),
            [Mistake::LogOfUnderflow]
        );
    }

    #[test]
    fn each_checks_tensor_name_is_read_as_its_quantity() {
        use Quantity::*;
        let names = [
            ("output", Output),
            ("output in evaluation", Output),
            ("logits", Output),
            ("loss", Loss),
            ("loss at each step", Other),
            ("dL/dinput", InputGradient),
            ("dL/dlogits", InputGradient),
            ("dL/dinput in evaluation", Other),
            ("dL/dweight", WeightGradient),
            ("dL/dlinear2.weight", WeightGradient),
            ("dL/dbias", BiasGradient),
            ("dL/dlinear0.bias", BiasGradient),
            ("dL/dgamma", GammaGradient),
            ("dL/dbeta", BetaGradient),
            ("running mean after 3 training forwards", RunningMean),
            ("running variance", RunningVariance),
            ("weights of the update", Other),
        ];
        for (name, quantity) in names {
            assert_eq!(Quantity::of(name), quantity, "{name}");
        }
    }

    #[test]
    fn checks_map_to_their_hint_files() {
        assert_eq!(
            hint_for("basic::gate1_single_layer_backward"),
            "hints/hint-2-linear-backward.md"
        );
        assert_eq!(hint_for("edge::empty_batch"), "hints/edge.md");
    }
}
