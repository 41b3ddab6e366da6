//! Failure messages that teach: when a gradient is wrong, name the usual mistake behind the
//! pattern, with the numbers, and the hint file to read.
//!
//! [`expect::close`](crate::expect::close) and
//! [`expect::close_to_pytorch`](crate::expect::close_to_pytorch) append the diagnosis to their
//! message. The patterns, tried in this order:
//!
//! | pattern in ours vs the reference | usual mistake |
//! |---|---|
//! | NaN or infinity where the reference is finite | softmax without the max shift: exp overflowed |
//! | ours is the reference transposed (square tensors) | `g^T x` for `x^T g` |
//! | wrong only where the reference is exactly 0 | the ReLU mask at x = 0 (`>=` for `>`) |
//! | ours / reference = -1 everywhere | a flipped sign (`y - p` for `p - y`) |
//! | ours / reference = 1/2 everywhere | the second backward overwrote (`=` for `+=`) |
//! | ours / reference = an integer N >= 2 everywhere | a missing 1/N: a sum where the loss takes a mean |
//! | a bias gradient wrong after the weight passed | the bias gradient not summed over the batch |

use ndarray::ArrayViewD;

/// One recognised mistake: what it is, in words with the numbers, and where to read about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The explanation.
    pub text: String,
    /// The hint file, relative to the repository root.
    pub hint: &'static str,
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "likely mistake: {} (read {})", self.text, self.hint)
    }
}

pub use backprop_core::hints::{HINTS_BY_CHECK, hint_for};

/// Recognises the pattern of `ours` against `reference` (same shape), or `None`.
pub fn diagnose(
    tensor: &str,
    ours: ArrayViewD<'_, f64>,
    reference: ArrayViewD<'_, f64>,
) -> Option<Diagnosis> {
    let diagnosis = |text: String, hint| Some(Diagnosis { text, hint });
    let pairs = || ours.iter().copied().zip(reference.iter().copied());
    let wrong = |a: f64, b: f64| (a - b).abs() > 1e-9 * (1.0 + b.abs()) || !a.is_finite();

    // NaN or infinity where the reference is finite.
    if let Some((a, b)) = pairs().find(|&(a, b)| !a.is_finite() && b.is_finite()) {
        return diagnosis(
            format!(
                "{tensor} holds {a} where the reference is {b:.4e}: exp overflowed. Subtract each \
                 row's largest logit before exp (softmax is unchanged by the shift)"
            ),
            "hints/edge.md",
        );
    }
    // The transpose (only visible when the tensor is square and not symmetric).
    if ours.ndim() == 2 && ours.shape()[0] == ours.shape()[1] && ours.shape()[0] > 1 {
        let transposed = reference.t();
        let symmetric = reference
            .iter()
            .zip(transposed.iter())
            .all(|(a, b)| !wrong(*a, *b));
        if !symmetric
            && ours
                .iter()
                .zip(transposed.iter())
                .all(|(a, b)| !wrong(*a, *b))
        {
            return diagnosis(
                format!(
                    "{tensor} equals the reference transposed: x^T g written as g^T x (or W \
                     where W^T belongs). dL/dW has W's shape (fan_in, fan_out) = x^T (batch, \
                     fan_in)^T . g (batch, fan_out)"
                ),
                "hints/hint-2-linear-backward.md",
            );
        }
    }
    // Wrong only where the reference is exactly 0.
    let wrong_entries = pairs().filter(|&(a, b)| wrong(a, b)).count();
    let wrong_at_zero = pairs().filter(|&(a, b)| b == 0.0 && wrong(a, b)).count();
    if wrong_entries > 0 && wrong_entries == wrong_at_zero && !tensor.contains("bias") {
        return diagnosis(
            format!(
                "{tensor} is wrong only at the {wrong_entries} of {} entries where the reference \
                 is exactly 0: with ReLU, the input was exactly 0 there and the gradient must be \
                 0 (mask x > 0, not x >= 0)",
                ours.len()
            ),
            "hints/edge.md",
        );
    }
    // One constant factor between ours and the reference.
    let ratios: Vec<f64> = pairs()
        .filter(|&(_, b)| b.abs() > 1e-12)
        .map(|(a, b)| a / b)
        .collect();
    if let (Some(&first), true) = (ratios.first(), ratios.len() > 1) {
        let constant = ratios
            .iter()
            .all(|r| (r - first).abs() <= 1e-6 * first.abs().max(1e-12));
        let near = |value: f64| (first - value).abs() <= 1e-6 * value.abs();
        if constant && near(-1.0) {
            return diagnosis(
                format!(
                    "{tensor} is exactly -1 x the reference at every entry: a flipped sign, \
                     typically onehot - p where the gradient of cross-entropy is p - onehot"
                ),
                "hints/math-refresh.md",
            );
        }
        if constant && near(0.5) {
            return diagnosis(
                format!(
                    "{tensor} is 1/2 of the reference at every entry after a second backward: \
                     the second pass overwrote the gradient (=) where it must add to it (+=) \
                     until zero_grad"
                ),
                "hints/edge.md",
            );
        }
        let rounded = first.round();
        if constant && rounded >= 2.0 && near(rounded) {
            return diagnosis(
                format!(
                    "{tensor} is {rounded} x the reference at every entry: the batch size? A \
                     sum where the loss takes the mean: divide the loss gradient by N (the batch \
                     size; for MSE by N x M)"
                ),
                "hints/math-refresh.md",
            );
        }
    }
    if tensor.contains("bias") {
        return diagnosis(
            format!(
                "only {tensor} is wrong (the weight gradient, checked before it, passed): \
                 dL/db is the sum of g over the batch rows, one number per output"
            ),
            "hints/hint-2-linear-backward.md",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn text(ours: ndarray::Array2<f64>, reference: ndarray::Array2<f64>) -> String {
        diagnose("dL/dx", ours.view().into_dyn(), reference.view().into_dyn())
            .map(|d| d.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn each_pattern_is_named() {
        let reference = array![[1.0, -2.0], [0.5, 4.0]];
        assert!(text(&reference * 4.0, reference.clone()).contains("4 x the reference"));
        assert!(text(-&reference, reference.clone()).contains("flipped sign"));
        assert!(text(&reference * 0.5, reference.clone()).contains("overwrote"));
        assert!(text(reference.t().to_owned(), reference.clone()).contains("transposed"));
        let masked = array![[1.0, 0.0], [0.5, 4.0]];
        assert!(text(reference.clone(), masked).contains("exactly 0"));
        assert!(
            text(array![[f64::NAN, 1.0], [0.5, 4.0]], reference.clone()).contains("exp overflowed")
        );
        // Unrelated numbers: no guess.
        assert_eq!(text(array![[3.0, 1.0], [-7.0, 2.0]], reference), "");
    }

    #[test]
    fn checks_map_to_their_hint_files() {
        assert_eq!(
            hint_for("basic::gate1_single_layer_backward"),
            "hints/hint-2-linear-backward.md"
        );
        assert_eq!(
            hint_for("basic::relu_matches_hand_computation"),
            "hints/basic.md"
        );
        assert_eq!(hint_for("edge::empty_batch"), "hints/edge.md");
    }
}
