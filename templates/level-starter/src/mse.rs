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
        // TODO: dL/dp = 2 (p - t) / (N M): every entry of the mean counts once.
        todo!("Mse::backward: 2 (p - t) / (N M) (hints/math-refresh.md)")
    }
}
