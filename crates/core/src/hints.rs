//! Which hint file explains which check: one table, read by the harness's failure messages and
//! by `backprop check`.

/// Every hint page, by what it explains: the one place their paths are written (relative to
/// the repository root).
pub mod page {
    /// `hints/hint-1-chain-rule.md`.
    pub const CHAIN_RULE: &str = "hints/hint-1-chain-rule.md";
    /// `hints/hint-2-linear-backward.md`.
    pub const LINEAR_BACKWARD: &str = "hints/hint-2-linear-backward.md";
    /// `hints/hint-3-full-network.md`.
    pub const FULL_NETWORK: &str = "hints/hint-3-full-network.md";
    /// `hints/hint-4-normalization.md`.
    pub const NORMALIZATION: &str = "hints/hint-4-normalization.md";
    /// `hints/hint-5-convolution.md`.
    pub const CONVOLUTION: &str = "hints/hint-5-convolution.md";
    /// `hints/gate3-finite-differences.md`.
    pub const FINITE_DIFFERENCES: &str = "hints/gate3-finite-differences.md";
    /// `hints/gate4-pytorch.md`.
    pub const PYTORCH_PARITY: &str = "hints/gate4-pytorch.md";
    /// `hints/math-refresh.md`.
    pub const MATH_REFRESH: &str = "hints/math-refresh.md";
    /// `hints/edge.md`.
    pub const EDGE: &str = "hints/edge.md";
    /// `hints/basic.md`.
    pub const BASIC: &str = "hints/basic.md";
    /// `hints/stress.md`.
    pub const STRESS: &str = "hints/stress.md";
    /// `hints/README.md`.
    pub const INDEX: &str = "hints/README.md";
}

/// The hint file for each group of checks, keyed by the start of the check's name or of the
/// label its failure messages start with ("gate 4 (PyTorch parity), fixture ..."); the first
/// match wins.
pub const HINTS_BY_CHECK: [(&str, &str); 16] = [
    ("gate 1 ", page::LINEAR_BACKWARD),
    ("gate 2 ", page::FULL_NETWORK),
    ("gate 3 ", page::FINITE_DIFFERENCES),
    ("gate 4 ", page::PYTORCH_PARITY),
    ("normalization group", page::NORMALIZATION),
    ("convolution group", page::CONVOLUTION),
    ("basic::gate1", page::LINEAR_BACKWARD),
    ("basic::gate2", page::FULL_NETWORK),
    ("basic::gate3", page::FINITE_DIFFERENCES),
    ("basic::gate4", page::PYTORCH_PARITY),
    ("basic::", page::BASIC),
    ("edge::", page::EDGE),
    ("norm::", page::NORMALIZATION),
    ("conv::", page::CONVOLUTION),
    ("stress::", page::STRESS),
    ("", page::INDEX),
];

/// The hint file for a check such as `basic::gate1_single_layer_backward`, relative to the
/// repository root.
///
/// ```
/// assert_eq!(backprop_core::hints::hint_for("edge::empty_batch"), "hints/edge.md");
/// let label = "gate 4 (PyTorch parity), fixture sgd_3_steps_relu_f64 (torch 2.5)";
/// assert_eq!(backprop_core::hints::hint_for(label), "hints/gate4-pytorch.md");
/// ```
pub fn hint_for(check: &str) -> &'static str {
    HINTS_BY_CHECK
        .iter()
        .find(|(prefix, _)| check.starts_with(prefix))
        .map_or(page::INDEX, |(_, hint)| hint)
}

/// A mistake the harness's diagnoses can name, with its headline and its page: here, beside the
/// pages, so that `backprop check` (which reads a test's message from another process) maps a
/// named mistake to its page through the same table the harness wrote it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mistake {
    /// Softmax as e^z / Σ e^z without subtracting the row's largest logit.
    NoMaxShift,
    /// ln(p) of a probability that underflowed to 0.
    LogOfUnderflow,
    /// dL/dW = g^T x where x^T g belongs.
    TransposedProduct,
    /// dL/dx = g W where g W^T belongs.
    TransposedWeight,
    /// ReLU's mask `x >= 0`: gradient 1 at exactly 0.
    ReluMaskAtZero,
    /// ReLU's mask on the sign of the upstream gradient instead of the input.
    ReluMaskOnUpstream,
    /// An activation's derivative evaluated at the input x where it is written in the output y.
    DerivativeFromInput,
    /// An activation's derivative written wrong (sigmoid' as y, tanh' as 1 - y, ...).
    WrongLocalDerivative,
    /// The local derivative returned without multiplying by the upstream gradient.
    UpstreamNotMultiplied,
    /// Every entry of the gradient has the wrong sign.
    SignFlip,
    /// A second backward overwrote (`=`) where it must add (`+=`).
    Overwrite,
    /// MSE's gradient without the 2 of d(p - t)^2/dp.
    MseMissingTwo,
    /// The loss gradient without the mean's 1/N (or 1/(N M) for MSE).
    MissingMean,
    /// The mean's 1/N applied twice.
    MeanTwice,
    /// The loss value summed where it is the mean, its gradient right.
    LossNotMean,
    /// Softmax cross-entropy's gradient without the one-hot subtracted.
    OnehotNotSubtracted,
    /// The bias gradient is not the sum of g over the batch rows.
    BiasNotSummed,
    /// Softmax shifted by the largest logit of the whole batch, not of each row.
    BatchMaxShift,
    /// Batch norm's or layer norm's dL/dx without its path through the mean or the variance.
    NormPathMissing,
    /// Normalized with the unbiased variance (over N - 1) where the biased one (over N) belongs.
    NormUnbiasedVariance,
    /// dL/dgamma summed without x̂.
    GammaGradWithoutNormalized,
    /// The running statistics set without the momentum's blend.
    RunningWithoutMomentum,
    /// The running variance moved toward the biased batch variance, not the unbiased one.
    BiasedRunningVariance,
    /// Batch norm in evaluation normalizing with the batch's statistics, not the running ones.
    BatchStatisticsInEvaluation,
    /// Dropout's kept units not scaled by 1 / (1 - p).
    DropoutWithoutScale,
    /// Dropout's gradient scaled but not masked: dropped units get a gradient.
    DropoutWithoutMask,
}

impl Mistake {
    /// Every mistake, in the order of the module docs.
    pub const ALL: [Mistake; 26] = [
        Mistake::NoMaxShift,
        Mistake::LogOfUnderflow,
        Mistake::TransposedProduct,
        Mistake::TransposedWeight,
        Mistake::ReluMaskAtZero,
        Mistake::ReluMaskOnUpstream,
        Mistake::DerivativeFromInput,
        Mistake::WrongLocalDerivative,
        Mistake::UpstreamNotMultiplied,
        Mistake::SignFlip,
        Mistake::Overwrite,
        Mistake::MseMissingTwo,
        Mistake::MissingMean,
        Mistake::MeanTwice,
        Mistake::LossNotMean,
        Mistake::OnehotNotSubtracted,
        Mistake::BiasNotSummed,
        Mistake::BatchMaxShift,
        Mistake::NormPathMissing,
        Mistake::NormUnbiasedVariance,
        Mistake::GammaGradWithoutNormalized,
        Mistake::RunningWithoutMomentum,
        Mistake::BiasedRunningVariance,
        Mistake::BatchStatisticsInEvaluation,
        Mistake::DropoutWithoutScale,
        Mistake::DropoutWithoutMask,
    ];

    /// The mistake in a few words; each headline appears in no other.
    pub fn headline(self) -> &'static str {
        match self {
            Mistake::NoMaxShift => "softmax without the max shift",
            Mistake::LogOfUnderflow => "the log of an underflowed probability",
            Mistake::TransposedProduct => "g^T x where x^T g belongs",
            Mistake::TransposedWeight => "g W where g W^T belongs",
            Mistake::ReluMaskAtZero => "the ReLU mask lets x = 0 through",
            Mistake::ReluMaskOnUpstream => "the ReLU mask tests g instead of x",
            Mistake::DerivativeFromInput => "the derivative evaluated at the input",
            Mistake::WrongLocalDerivative => "a wrong local derivative",
            Mistake::UpstreamNotMultiplied => "the upstream gradient not multiplied in",
            Mistake::SignFlip => "a flipped sign",
            Mistake::Overwrite => "= where += belongs",
            Mistake::MseMissingTwo => "MSE's factor 2 is missing",
            Mistake::MissingMean => "a sum where the mean belongs",
            Mistake::MeanTwice => "the mean's 1/N taken twice",
            Mistake::LossNotMean => "the loss value is a sum, not the mean",
            Mistake::OnehotNotSubtracted => "the one-hot not subtracted",
            Mistake::BiasNotSummed => "dL/db is not the sum of g over the batch rows",
            Mistake::BatchMaxShift => "softmax shifted by the whole batch's max, not each row's",
            Mistake::NormPathMissing => "a path through the mean or the variance is missing",
            Mistake::NormUnbiasedVariance => "the N - 1 variance where the biased one belongs",
            Mistake::GammaGradWithoutNormalized => "dL/dgamma without x̂",
            Mistake::RunningWithoutMomentum => "the running statistics without the momentum",
            Mistake::BiasedRunningVariance => "the running variance takes the biased variance",
            Mistake::BatchStatisticsInEvaluation => {
                "evaluation normalizes with the batch's statistics"
            }
            Mistake::DropoutWithoutScale => "dropout without the 1 / (1 - p) scale",
            Mistake::DropoutWithoutMask => "dropout's gradient without the mask",
        }
    }

    /// The hint file to read, relative to the repository root.
    pub fn hint(self) -> &'static str {
        match self {
            Mistake::NoMaxShift
            | Mistake::LogOfUnderflow
            | Mistake::ReluMaskAtZero
            | Mistake::Overwrite => page::EDGE,
            Mistake::TransposedProduct | Mistake::TransposedWeight | Mistake::BiasNotSummed => {
                page::LINEAR_BACKWARD
            }
            Mistake::ReluMaskOnUpstream
            | Mistake::DerivativeFromInput
            | Mistake::WrongLocalDerivative
            | Mistake::UpstreamNotMultiplied => page::CHAIN_RULE,
            Mistake::SignFlip
            | Mistake::MseMissingTwo
            | Mistake::MissingMean
            | Mistake::MeanTwice
            | Mistake::LossNotMean
            | Mistake::OnehotNotSubtracted
            | Mistake::BatchMaxShift => page::MATH_REFRESH,
            Mistake::NormPathMissing
            | Mistake::NormUnbiasedVariance
            | Mistake::GammaGradWithoutNormalized
            | Mistake::RunningWithoutMomentum
            | Mistake::BiasedRunningVariance
            | Mistake::BatchStatisticsInEvaluation
            | Mistake::DropoutWithoutScale
            | Mistake::DropoutWithoutMask => page::NORMALIZATION,
        }
    }

    /// The mistakes a failure message names ("likely mistake: HEADLINE").
    pub fn named_in(message: &str) -> Vec<Mistake> {
        Mistake::ALL
            .into_iter()
            .filter(|mistake| message.contains(&format!("likely mistake: {}", mistake.headline())))
            .collect()
    }
}
