//! `SoftmaxCrossEntropy`: the loss and its gradient in one pass, in place.

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::buffer::RowBuffer;

/// Softmax then cross-entropy against class indices, mean over the batch.
///
/// ```text
/// L     = (1/N) Σ_i (ln Σ_j e^(z_ij - m_i) + m_i - z_i,t_i)     m_i = max_j z_ij
/// dL/dz = (softmax(z) - onehot(t)) / N
/// ```
#[derive(Debug, Clone, Default)]
pub struct SoftmaxCrossEntropy<F> {
    /// The gradient of the last forward, computed with the loss.
    gradient: RowBuffer<F>,
}

/// Returns the mean loss of `logits` against `targets` and overwrites `logits` with
/// dL/dz = (softmax(z) - onehot(t)) / N. One pass per row: max, exponentials (kept in place),
/// their sum, then scale.
pub(crate) fn softmax_cross_entropy_inplace<F: Float>(
    mut logits: ArrayViewMut2<'_, F>,
    targets: &[usize],
) -> F {
    let scale = F::one() / F::of(logits.nrows() as f64);
    let mut total = F::zero();
    for (mut row, &target) in logits.rows_mut().into_iter().zip(targets) {
        let max = row.fold(F::neg_infinity(), |m, &z| m.max(z));
        let target_shifted = row[target] - max;
        // z_j <- e^(z_j - m), summed
        let mut sum = F::zero();
        for z in row.iter_mut() {
            *z = (*z - max).exp();
            sum += *z;
        }
        // the row's loss: ln Σ e^(z - m) - (z_t - m)
        total += sum.ln() - target_shifted;
        // z_j <- (p_j - [j = t]) / N
        let to_gradient = scale / sum;
        row.mapv_inplace(|e| e * to_gradient);
        row[target] -= scale;
    }
    total * scale
}

impl<F: Float> Loss<F> for SoftmaxCrossEntropy<F> {
    #[track_caller]
    fn forward(&mut self, logits: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        let targets = targets.expect_classes(logits.dim());
        self.gradient.resize(logits.nrows(), logits.ncols());
        let mut gradient = self.gradient.view_mut();
        gradient.assign(&logits);
        softmax_cross_entropy_inplace(gradient, targets)
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
