//! `Mse`: L = mean((p - t)^2) over every element.

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2};

/// Mean squared error over every element (PyTorch's `F.mse_loss(reduction="mean")`).
///
/// For predictions p and targets t of shape `(N, M)`:
///
/// ```text
/// L     = (1 / (N M)) Σ_ij (p_ij - t_ij)^2
/// dL/dp = 2 (p - t) / (N M)
/// ```
#[derive(Debug, Clone, Default)]
pub struct Mse<F> {
    /// p - t from the last forward.
    difference: Option<Array2<F>>,
}

impl<F: Float> Loss<F> for Mse<F> {
    #[track_caller]
    fn forward(&mut self, predictions: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        let targets = targets.expect_values(predictions.dim());
        let difference = &predictions - &targets;
        let loss = difference.mapv(|d| d * d).sum() / F::of(difference.len() as f64);
        self.difference = Some(difference);
        loss
    }

    fn backward(&mut self) -> Array2<F> {
        let difference = self
            .difference
            .as_ref()
            .expect("Mse backward called before forward");
        // dL/dp = 2 (p - t) / (N M)
        difference * F::of(2.0 / difference.len() as f64)
    }
}
