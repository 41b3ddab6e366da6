//! `Mse`: L = mean((p - t)^2) over every element, in loops.

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2};

/// Mean squared error over every element (PyTorch's `F.mse_loss(reduction="mean")`).
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
        let (batch, outputs) = predictions.dim();
        // L = Σ (p - t)^2 / (N M)
        let mut difference = Array2::zeros((batch, outputs));
        let mut total = F::zero();
        for row in 0..batch {
            for col in 0..outputs {
                let d = predictions[[row, col]] - targets[[row, col]];
                difference[[row, col]] = d;
                total += d * d;
            }
        }
        self.difference = Some(difference);
        total / F::of((batch * outputs) as f64)
    }

    fn backward(&mut self) -> Array2<F> {
        let difference = self
            .difference
            .as_ref()
            .expect("Mse backward called before forward");
        let (batch, outputs) = difference.dim();
        let scale = F::of(2.0 / (batch * outputs) as f64);
        // dL/dp = 2 (p - t) / (N M)
        let mut grad = Array2::zeros((batch, outputs));
        for row in 0..batch {
            for col in 0..outputs {
                grad[[row, col]] = difference[[row, col]] * scale;
            }
        }
        grad
    }
}
