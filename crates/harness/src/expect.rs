//! Assertions whose failure messages teach: the check, the tensor, its shape, the worst entry,
//! what the level gave and what was expected.

use std::panic::{AssertUnwindSafe, catch_unwind};

use backprop_core::gradcheck::GradReport;
use backprop_core::{Float, Model};
use ndarray::{ArrayD, ArrayView, ArrayViewD, Dimension, arr0};

use crate::diagnosis::Evidence;

/// Panics unless `got` matches `expected` entry by entry within `tolerance`: each entry must
/// satisfy approx's `relative_eq!(got, expected, epsilon = tolerance * 1e-8, max_relative =
/// tolerance)`, that is `|got - expected| <= tolerance * max(1e-8, |got|, |expected|)`. The
/// message reports the entry with the largest relative error.
///
/// # Panics
/// `"{check}: dL/dweight [3, 2]: worst entry [2, 0]: got 4.5, expected 9 (relative error
/// 5.0e-1 > tolerance 1e-12)"`, or a message naming both shapes when they differ.
#[track_caller]
pub fn close<D: Dimension>(
    check: &str,
    tensor: &str,
    got: ArrayView<'_, f64, D>,
    expected: ArrayView<'_, f64, D>,
    tolerance: f64,
) {
    close_with(
        check,
        tensor,
        got,
        expected,
        tolerance,
        &Evidence::default(),
    );
}

/// [`close`] with what the check knows beyond the two tensors, so that the failure message can
/// name the mistake the evidence singles out (see [`diagnosis`](crate::diagnosis)).
#[track_caller]
pub fn close_with<D: Dimension>(
    check: &str,
    tensor: &str,
    got: ArrayView<'_, f64, D>,
    expected: ArrayView<'_, f64, D>,
    tolerance: f64,
    evidence: &Evidence<'_>,
) {
    let (got, expected) = (got.into_dyn(), expected.into_dyn());
    if got.shape() != expected.shape() {
        let mut reversed = expected.shape().to_vec();
        reversed.reverse();
        let hint = if got.shape() == reversed.as_slice() && got.ndim() == 2 {
            " (transposed: was x^T g written as g^T x? read hints/hint-2-linear-backward.md)"
        } else {
            ""
        };
        panic!(
            "{check}: {tensor} has shape {:?} but expected {:?}{hint}",
            got.shape(),
            expected.shape()
        );
    }
    let mut worst: Option<(f64, Vec<usize>, f64, f64)> = None;
    let mut all_equal = true;
    for ((index, &ours), &theirs) in got.indexed_iter().zip(expected.iter()) {
        all_equal &= approx::relative_eq!(
            ours,
            theirs,
            epsilon = tolerance * 1e-8,
            max_relative = tolerance
        );
        let error = relative_error(ours, theirs);
        if worst
            .as_ref()
            .is_none_or(|(worst_error, ..)| error > *worst_error)
        {
            worst = Some((error, index.slice().to_vec(), ours, theirs));
        }
    }
    if let Some((error, index, ours, theirs)) = worst
        && !all_equal
    {
        panic!(
            "{check}: {tensor} {:?}: worst entry {index:?}: got {ours:.10e}, expected \
             {theirs:.10e} (relative error {error:.1e} > tolerance {tolerance:.0e}){}",
            got.shape(),
            explain(check, tensor, got.view(), expected.view(), evidence)
        );
    }
}

/// Compares `ours` with PyTorch's values: relative error within
/// [`PYTORCH_F64`](crate::tolerance::PYTORCH_F64) for an `f64` fixture, `torch.testing.assert_close`'s
/// rule (`|ours - torch| <= atol + rtol |torch|`) for an `f32` one. `evidence` feeds the
/// diagnosis, as in [`close_with`].
///
/// # Panics
/// `"{check}: dL/dlinear0.weight [784, 256]: worst entry [12, 3]: ours 1.2e-3, PyTorch 1.1e-3 (...)"`.
#[track_caller]
pub fn close_to_pytorch(
    check: &str,
    tensor: &str,
    ours: ArrayViewD<'_, f64>,
    pytorch: ArrayViewD<'_, f64>,
    dtype: &str,
    evidence: &Evidence<'_>,
) {
    use crate::tolerance::{PYTORCH_F32_ATOL, PYTORCH_F32_RTOL, PYTORCH_F64};
    assert!(
        ours.shape() == pytorch.shape(),
        "{check}: {tensor} has shape {:?} but PyTorch's has {:?}",
        ours.shape(),
        pytorch.shape()
    );
    // Each entry through approx: relative_eq! in f64 (as `close`), abs_diff_eq! with
    // assert_close's allowance atol + rtol |torch| in f32.
    let equal = |a: f64, b: f64| match dtype {
        "f64" => approx::relative_eq!(
            a,
            b,
            epsilon = PYTORCH_F64 * 1e-8,
            max_relative = PYTORCH_F64
        ),
        _ => approx::abs_diff_eq!(
            a,
            b,
            epsilon = PYTORCH_F32_ATOL + PYTORCH_F32_RTOL * b.abs()
        ),
    };
    // The excess of each entry over its allowance, to find the worst one: relative error /
    // tolerance in f64, |ours - torch| / (atol + rtol |torch|) in f32.
    let excess = |a: f64, b: f64| match dtype {
        "f64" => relative_error(a, b) / PYTORCH_F64,
        _ => {
            let ratio = (a - b).abs() / (PYTORCH_F32_ATOL + PYTORCH_F32_RTOL * b.abs());
            if ratio.is_finite() {
                ratio
            } else {
                f64::INFINITY
            }
        }
    };
    let mut worst: Option<(f64, Vec<usize>, f64, f64)> = None;
    let mut all_equal = true;
    for ((index, &a), &b) in ours.indexed_iter().zip(pytorch.iter()) {
        all_equal &= equal(a, b);
        let over = excess(a, b);
        if worst.as_ref().is_none_or(|(most, ..)| over > *most) {
            worst = Some((over, index.slice().to_vec(), a, b));
        }
    }
    if let Some((_, index, a, b)) = worst
        && !all_equal
    {
        let rule = match dtype {
            "f64" => format!(
                "relative error {:.1e} > {PYTORCH_F64:.0e}",
                relative_error(a, b)
            ),
            _ => format!(
                "|ours - PyTorch| = {:.1e} > {PYTORCH_F32_ATOL:.0e} + {PYTORCH_F32_RTOL:.1e} |PyTorch|",
                (a - b).abs()
            ),
        };
        panic!(
            "{check}: {tensor} {:?}: worst entry {index:?}: ours {a:.10e}, PyTorch {b:.10e} ({rule}){}",
            ours.shape(),
            explain(check, tensor, ours.view(), pytorch.view(), evidence)
        );
    }
}

/// The diagnosis of a failed comparison, or the check's hint file, as the message's last line.
fn explain(
    check: &str,
    tensor: &str,
    ours: ArrayViewD<'_, f64>,
    reference: ArrayViewD<'_, f64>,
    evidence: &Evidence<'_>,
) -> String {
    match crate::diagnosis::diagnose(tensor, ours, reference, evidence) {
        Some(diagnosis) => format!("\n  {diagnosis}"),
        None => format!("\n  hint: {}", crate::diagnosis::hint_for(check)),
    }
}

/// [`close`] for one number, such as a loss.
#[track_caller]
pub fn close_scalar(check: &str, name: &str, got: f64, expected: f64, tolerance: f64) {
    close(
        check,
        name,
        arr0(got).view(),
        arr0(expected).view(),
        tolerance,
    );
}

/// Panics with the first report whose worst entry exceeds `tolerance`.
#[track_caller]
pub fn gradients_pass(check: &str, reports: &[GradReport], tolerance: f64) {
    if let Some(report) = reports.iter().find(|report| !report.passes(tolerance)) {
        panic!(
            "{check}: {report} > tolerance {tolerance:.0e} (central differences, h = 1e-5)\n  \
             hint: {}",
            crate::diagnosis::hint_for("basic::gate3")
        );
    }
}

/// Runs `action` and requires it to panic with a message containing `fragment`.
#[track_caller]
pub fn panics_with(check: &str, fragment: &str, action: impl FnOnce()) {
    let outcome = catch_unwind(AssertUnwindSafe(action));
    let payload = match outcome {
        Ok(()) if fragment.is_empty() => panic!("{check}: expected a panic, but it returned"),
        Ok(()) => panic!("{check}: expected a panic mentioning {fragment:?}, but it returned"),
        Err(payload) => payload,
    };
    let message = panic_text(payload.as_ref());
    assert!(
        message.contains(fragment),
        "{check}: panicked with {message:?}, but the message should mention {fragment:?}"
    );
}

/// The relative error the comparisons decide by, approx's `max_relative` measure:
/// `|got - expected| / max(1e-8, |got|, |expected|)`, so a factor-2 error is 0.5 (the finite
/// differences use CS231n's `|a - n| / (|a| + |n|)` instead, in their own reports). NaN or an
/// infinity gives infinity.
pub fn relative_error(got: f64, expected: f64) -> f64 {
    let error = (got - expected).abs() / got.abs().max(expected.abs()).max(1e-8);
    if error.is_finite() {
        error
    } else {
        f64::INFINITY
    }
}

/// Runs `action` and requires it to panic with a message that names `problem` in the level's
/// own words: any of `words` (case-insensitive), and not a `todo!()`'s "not yet implemented".
#[track_caller]
pub fn panics_naming(check: &str, problem: &str, words: &[&str], action: impl FnOnce()) {
    let message = match catch_unwind(AssertUnwindSafe(action)) {
        Ok(()) => panic!("{check}: expected a panic that names {problem}, but it returned"),
        Err(payload) => panic_text(payload.as_ref()),
    };
    let lower = message.to_lowercase();
    assert!(
        !lower.contains("not yet implemented"),
        "{check}: panicked with {message:?}: the code it runs is not written yet"
    );
    let names_it = words
        .iter()
        .any(|word| lower.contains(&word.to_lowercase()));
    assert!(
        names_it,
        "{check}: panicked with {message:?}, which does not name {problem}: say so in the \
         message (with any of the words {words:?})"
    );
}

/// The text of a panic's payload (a `String` or a `&str`; empty for anything else).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_default()
}

/// Widens any float array to `f64` for comparison.
pub fn widen<F: Float>(array: ArrayViewD<'_, F>) -> ArrayD<f64> {
    array.mapv(F::as_f64)
}

/// Every weight layer's gradients as `(name, gradient)` (`linear0.weight`, `linear0.bias`,
/// ...), widened to `f64`: what the model holds now. (The numeric gradients of the same
/// tensors are [`backprop_core::gradcheck::model_gradients`].)
pub fn parameter_gradients<F: Float, M: Model<F>>(model: &mut M) -> Vec<(String, ArrayD<f64>)> {
    let mut gradients = Vec::new();
    model.visit_linears(|index, layer| {
        for (name, _, grad) in layer.tensors() {
            gradients.push((format!("linear{index}.{name}"), grad.mapv(F::as_f64)));
        }
    });
    gradients
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The printed relative error is the one the rule decides by: a factor 2 is 0.5, and an
    /// entry just over the tolerance prints above it, never below.
    #[test]
    fn the_printed_relative_error_is_the_one_the_comparison_applies() {
        let failure = catch_unwind(|| {
            close(
                "factor two",
                "dL/dx",
                array![2.0, 1.0].view(),
                array![1.0, 1.0].view(),
                1e-12,
            )
        })
        .unwrap_err();
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("relative error 5.0e-1 > tolerance 1e-12"),
            "{message}"
        );
        assert!((relative_error(1.0, 1.0 + 1.5e-10) - 1.5e-10).abs() < 1e-15);
        assert_eq!(relative_error(f64::NAN, 1.0), f64::INFINITY);
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    /// A refusal in the level's own words passes; a todo!() or a bare index panic does not.
    #[test]
    fn a_panic_passes_when_it_names_the_problem_in_any_words() {
        let words = ["row", "batch", "variance"];
        let refuse = |message: &'static str| {
            catch_unwind(|| {
                panics_naming("one row", "the one-row batch", &words, || {
                    panic!("{message}")
                })
            })
        };
        assert!(refuse("a training batch needs at least 2 rows (got 1)").is_ok());
        assert!(refuse("BatchNorm in training needs more than one row per batch").is_ok());
        assert!(refuse("one sample has no Variance").is_ok());
        assert!(refuse("not yet implemented: BatchNorm::forward over the batch").is_err());
        assert!(refuse("index out of bounds: the len is 1 but the index is 1").is_err());
        assert!(catch_unwind(|| panics_naming("one row", "it", &words, || {})).is_err());
    }
}
