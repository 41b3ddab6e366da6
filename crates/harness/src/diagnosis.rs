//! Failure messages that teach: when a gradient is wrong, name the mistake behind the pattern,
//! with the numbers, and the hint file to read; but only when the pattern and the check's own
//! circumstances single the mistake out. Otherwise the message says what differs and where, and
//! names no cause (a wrong cause, stated with confidence, is worse than none).
//!
//! [`expect::close`](crate::expect::close) and
//! [`expect::close_to_pytorch`](crate::expect::close_to_pytorch) append the diagnosis to their
//! message. The patterns, tried in this order:
//!
//! | pattern in ours vs the reference | and the check | named mistake |
//! |---|---|---|
//! | NaN where the reference is finite | a softmax / logits tensor | exp overflowed (no max shift): inf / inf |
//! | an infinity where the reference is finite | a softmax / logits tensor | ln of a probability that underflowed to 0 |
//! | ours is the reference transposed (square, not symmetric) | any | `g^T x` for `x^T g` |
//! | wrong only where the reference is exactly 0 | a ReLU check | the mask at x = 0 (`>=` for `>`) |
//! | ours / reference = -1 everywhere | any | a flipped sign |
//! | ours / reference = 1/2 everywhere | a second backward | `=` where `+=` belongs |
//! | ours / reference = 1/2 everywhere | an MSE check | the 2 of d(p - t)^2/dp |
//! | ours / reference = N, the tensor's rows | any | a missing 1/N (sum for mean) |
//! | ours / reference = 1/N | any | a 1/N taken twice |
//! | only a bias gradient wrong | gate 1 (one fresh layer, one backward) | dL/db not summed over rows |
//!
//! Any other constant factor, or a NaN elsewhere, is described without a cause.

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

/// Recognises the pattern of `ours` against `reference` (same shape) in `check`, or `None`.
pub fn diagnose(
    check: &str,
    tensor: &str,
    ours: ArrayViewD<'_, f64>,
    reference: ArrayViewD<'_, f64>,
) -> Option<Diagnosis> {
    let diagnosis = |text: String, hint| Some(Diagnosis { text, hint });
    let pairs = || ours.iter().copied().zip(reference.iter().copied());
    let wrong = |a: f64, b: f64| (a - b).abs() > 1e-9 * (1.0 + b.abs()) || !a.is_finite();

    let context = format!("{check} {tensor}").to_lowercase();
    let about_softmax = context.contains("softmax") || context.contains("logits");
    // NaN or infinity where the reference is finite.
    if let Some((a, b)) = pairs().find(|&(a, b)| !a.is_finite() && b.is_finite()) {
        let text = match (about_softmax, a.is_nan()) {
            (true, true) => format!(
                "{tensor} holds NaN where the reference is {b:.4e}: exp overflowed to infinity \
                 and inf / inf is NaN. Subtract each row's largest logit before exp (softmax is \
                 unchanged by the shift)"
            ),
            (true, false) => format!(
                "{tensor} holds {a} where the reference is {b:.4e}: a logarithm of 0, from a \
                 probability that underflowed to 0. Take the log of the softmax as z - max - \
                 ln Σ e^(z - max) instead of ln(p)"
            ),
            (false, _) => format!("{tensor} holds {a} where the reference is {b:.4e}"),
        };
        return diagnosis(text, "hints/edge.md");
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
    if wrong_entries > 0
        && wrong_entries == wrong_at_zero
        && context.contains("relu")
        && !tensor.contains("bias")
    {
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
        let rows = if ours.ndim() == 2 {
            ours.shape()[0] as f64
        } else {
            0.0
        };
        let second_backward = context.contains("second backward");
        let text = if !constant || near(1.0) {
            None
        } else if near(0.5) && second_backward {
            return diagnosis(
                format!(
                    "{tensor} is 1/2 of the reference at every entry after a second backward: \
                     the second pass overwrote the gradient (=) where it must add to it (+=) \
                     until zero_grad"
                ),
                "hints/edge.md",
            );
        } else if near(0.5) && context.contains("mse") {
            Some(format!(
                "{tensor} is 1/2 of the reference at every entry: the 2 of d(p - t)^2/dp = \
                 2 (p - t) is missing"
            ))
        // A batch of 2 cannot tell 1/N from the many other factors of 2: from 3 rows on.
        } else if rows >= 3.0 && near(rows) && !second_backward {
            Some(format!(
                "{tensor} is {rows} x the reference at every entry, and {rows} is the batch \
                 size: a sum where the loss takes the mean. Divide the loss gradient by N \
                 (for MSE by N x M)"
            ))
        } else if rows >= 3.0 && near(1.0 / rows) {
            Some(format!(
                "{tensor} is 1/{rows} of the reference at every entry, and {rows} is the \
                 batch size: the mean's 1/N was applied twice (once in the loss, once more in \
                 a layer)"
            ))
        } else {
            Some(format!(
                "{tensor} is {first:.6} x the reference at every entry (one constant factor)"
            ))
        };
        if let Some(text) = text {
            return diagnosis(text, "hints/math-refresh.md");
        }
    }
    let single_backward = context.contains("single layer backward");
    if tensor.contains("bias") && single_backward {
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
        text_in("gate 1, relu", ours, reference)
    }

    fn text_in(check: &str, ours: ndarray::Array2<f64>, reference: ndarray::Array2<f64>) -> String {
        diagnose(
            check,
            "dL/dx",
            ours.view().into_dyn(),
            reference.view().into_dyn(),
        )
        .map(|d| d.to_string())
        .unwrap_or_default()
    }

    #[test]
    fn each_pattern_is_named() {
        let reference = array![[1.0, -2.0], [0.5, 4.0]];
        let three_rows = array![[1.0, -2.0], [0.5, 4.0], [3.0, 1.5]];
        let batch = text(&three_rows * 3.0, three_rows.clone());
        assert!(
            batch.contains("3 is the batch size: a sum where"),
            "{batch}"
        );
        let twice = text(&three_rows / 3.0, three_rows.clone());
        assert!(twice.contains("applied twice"), "{twice}");
        assert!(text(-&reference, reference.clone()).contains("flipped sign"));
        let second = "second backward without zero_grad";
        assert!(text_in(second, &reference * 0.5, reference.clone()).contains("overwrote"));
        assert!(text_in("gate 1, mse", &reference * 0.5, reference.clone()).contains("the 2 of"));
        assert!(text(&reference * 0.5, reference.clone()).contains("0.500000 x the reference"));
        assert!(text(reference.t().to_owned(), reference.clone()).contains("transposed"));
        let masked = array![[1.0, 0.0], [0.5, 4.0]];
        assert!(text(reference.clone(), masked).contains("exactly 0"));
        let softmax = "gate 1, softmax cross-entropy";
        let nan = array![[f64::NAN, 1.0], [0.5, 4.0]];
        assert!(text_in(softmax, nan, reference.clone()).contains("exp overflowed"));
        let infinite = array![[f64::INFINITY, 1.0], [0.5, 4.0]];
        assert!(text_in(softmax, infinite, reference.clone()).contains("a logarithm of 0"));
        // Unrelated numbers: no guess.
        assert_eq!(text(array![[3.0, 1.0], [-7.0, 2.0]], reference.clone()), "");
    }

    /// The patterns that used to name a cause on too little evidence now only describe.
    #[test]
    fn no_cause_is_named_without_the_evidence_for_it() {
        let reference = array![[1.0, -2.0], [0.5, 4.0]];
        // 1/2 on a first backward of something other than MSE: no "=" for "+=".
        let half = text_in("gate 1, Linear(2, 2)", &reference * 0.5, reference.clone());
        assert!(
            half.contains("0.500000 x the reference") && !half.contains("overwrote"),
            "{half}"
        );
        // Wrong only at zeros, outside a ReLU check: no mask story.
        let masked = array![[1.0, 0.0], [0.5, 4.0]];
        let zeros = text_in("gate 1, softmax cross-entropy", reference.clone(), masked);
        assert_eq!(zeros, "");
        // A NaN outside softmax: described, no exp story.
        let nan = text_in(
            "gate 1, tanh",
            array![[f64::NAN, 1.0], [0.5, 4.0]],
            reference.clone(),
        );
        assert!(nan.contains("holds NaN") && !nan.contains("exp"), "{nan}");
        // A wrong bias after more than one backward: no "sum over rows" story.
        let bias = diagnose(
            "gate 4 (PyTorch parity), fixture accumulate",
            "dL/dbias",
            (&reference * 3.7).view().into_dyn(),
            reference.view().into_dyn(),
        );
        assert!(bias.is_some_and(|d| !d.text.contains("sum of g")));
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
