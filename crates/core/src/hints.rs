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
