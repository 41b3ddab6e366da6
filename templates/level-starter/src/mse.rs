//! `Mse`: L = mean over every element of (p - t)^2.

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2};

/// Mean squared error against dense targets, mean over every element (PyTorch's
/// `F.mse_loss(reduction="mean")`).
#[derive(Debug, Clone, Default)]
pub struct Mse<F> {
    /// p - t from the last forward.
    difference: Option<Array2<F>>,
}

impl<F: Float> Loss<F> for Mse<F> {
    fn forward(&mut self, predictions: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        // TODO: `targets.expect_values(predictions.dim())` gives t (and rejects a wrong shape).
        // Return the mean of (p - t)^2 over all N x M entries; keep p - t for backward.
        // Hint: hints/math-refresh.md
        let _ = (predictions, targets);
        todo!("Mse::forward: mean of (p - t)^2 over every entry (hints/math-refresh.md)")
    }

    fn backward(&mut self) -> Array2<F> {
        // TODO: dL/dp, one entry per prediction: differentiate the mean of (p - t)^2 with respect
        // to one prediction (how many entries does the mean divide by?). Hint:
        // hints/math-refresh.md
        todo!("Mse::backward: dL/dp, shaped like the predictions (hints/math-refresh.md)")
    }
}
