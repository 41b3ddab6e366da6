//! `SoftmaxCrossEntropy`: L = mean over rows of (log-sum-exp(z) - z[target]), in loops.

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2};

/// Softmax followed by cross-entropy against class indices, mean over the batch (PyTorch's
/// `F.cross_entropy(reduction="mean")`).
///
/// ```text
/// m_i      = max_j z_ij                          (the shift that keeps exp finite)
/// log p_ij = (z_ij - m_i) - ln Σ_k exp(z_ik - m_i)
/// L        = -(1/N) Σ_i log p_i,t_i
/// dL/dz    = (p - onehot(t)) / N                 (the fused gradient)
/// ```
#[derive(Debug, Clone, Default)]
pub struct SoftmaxCrossEntropy<F> {
    /// softmax(z) and the targets from the last forward.
    probs: Option<Array2<F>>,
    targets: Vec<usize>,
}

impl<F: Float> Loss<F> for SoftmaxCrossEntropy<F> {
    #[track_caller]
    fn forward(&mut self, logits: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        let targets = targets.expect_classes(logits.dim());
        let (batch, classes) = logits.dim();
        let mut probs = Array2::zeros((batch, classes));
        let mut total = F::zero();
        for row in 0..batch {
            // m = max_j z[j]: subtracting it makes every exponent <= 0, so exp cannot overflow
            let mut row_max = F::neg_infinity();
            for class in 0..classes {
                row_max = row_max.max(logits[[row, class]]);
            }
            // s = Σ_j exp(z[j] - m)
            let mut sum_exp = F::zero();
            for class in 0..classes {
                sum_exp += (logits[[row, class]] - row_max).exp();
            }
            // log p[j] = (z[j] - m) - ln s,   p[j] = exp(log p[j])
            let log_sum_exp = sum_exp.ln();
            for class in 0..classes {
                probs[[row, class]] = (logits[[row, class]] - row_max - log_sum_exp).exp();
            }
            // the loss of this row is -log p[t]
            total += log_sum_exp - (logits[[row, targets[row]]] - row_max);
        }
        self.probs = Some(probs);
        self.targets = targets.to_vec();
        total / F::of(batch as f64)
    }

    fn backward(&mut self) -> Array2<F> {
        let probs = self
            .probs
            .as_ref()
            .expect("SoftmaxCrossEntropy backward called before forward");
        let (batch, classes) = probs.dim();
        let scale = F::one() / F::of(batch as f64);
        // dL/dz[r][j] = (p[r][j] - [j == t_r]) / N
        let mut grad = Array2::zeros((batch, classes));
        for row in 0..batch {
            for class in 0..classes {
                let onehot = if class == self.targets[row] {
                    F::one()
                } else {
                    F::zero()
                };
                grad[[row, class]] = (probs[[row, class]] - onehot) * scale;
            }
        }
        grad
    }
}
