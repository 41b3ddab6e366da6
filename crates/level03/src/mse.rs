//! `Mse`: mean squared error and its gradient in one pass, in place.

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::buffer::RowBuffer;

/// Mean squared error over every element: `L = Σ (p - t)^2 / (N M)`, `dL/dp = 2 (p - t) / (N M)`.
#[derive(Debug, Clone, Default)]
pub struct Mse<F> {
    gradient: RowBuffer<F>,
}

/// Returns the mean squared error and overwrites `predictions` with dL/dp = 2 (p - t) / (N M).
pub(crate) fn mse_inplace<F: Float>(
    mut predictions: ArrayViewMut2<'_, F>,
    targets: ArrayView2<'_, F>,
) -> F {
    let count = F::of(predictions.len() as f64);
    let to_gradient = F::of(2.0) / count;
    let mut total = F::zero();
    Zip::from(&mut predictions).and(&targets).for_each(|p, &t| {
        let difference = *p - t;
        total += difference * difference;
        *p = difference * to_gradient;
    });
    total / count
}

impl<F: Float> Loss<F> for Mse<F> {
    #[track_caller]
    fn forward(&mut self, predictions: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        let targets = targets.expect_values(predictions.dim());
        self.gradient
            .resize(predictions.nrows(), predictions.ncols());
        let mut gradient = self.gradient.view_mut();
        gradient.assign(&predictions);
        mse_inplace(gradient, targets)
    }

    fn backward(&mut self) -> Array2<F> {
        self.gradient.view().to_owned()
    }

    #[track_caller]
    fn backward_into(&mut self, mut grad_input: ArrayViewMut2<'_, F>) {
        let gradient = self.gradient.view();
        backprop_core::assert_same_shape(
            "backward_into grad_input",
            grad_input.dim(),
            gradient.dim(),
        );
        grad_input.assign(&gradient);
    }
}
