//! Which hint file explains which check: one table, read by the harness's failure messages and
//! by `backprop check`.

/// The hint file for each group of checks, keyed by the start of the check's name or of the
/// label its failure messages start with ("gate 4 (PyTorch parity), fixture ..."); the first
/// match wins.
pub const HINTS_BY_CHECK: [(&str, &str); 16] = [
    ("gate 1 ", "hints/hint-2-linear-backward.md"),
    ("gate 2 ", "hints/hint-3-full-network.md"),
    ("gate 3 ", "hints/gate3-finite-differences.md"),
    ("gate 4 ", "hints/gate4-pytorch.md"),
    ("normalization group", "hints/hint-4-normalization.md"),
    ("convolution group", "hints/hint-5-convolution.md"),
    ("basic::gate1", "hints/hint-2-linear-backward.md"),
    ("basic::gate2", "hints/hint-3-full-network.md"),
    ("basic::gate3", "hints/gate3-finite-differences.md"),
    ("basic::gate4", "hints/gate4-pytorch.md"),
    ("basic::", "hints/basic.md"),
    ("edge::", "hints/edge.md"),
    ("norm::", "hints/hint-4-normalization.md"),
    ("conv::", "hints/hint-5-convolution.md"),
    ("stress::", "hints/stress.md"),
    ("", "hints/README.md"),
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
        .map_or("hints/README.md", |(_, hint)| hint)
}
