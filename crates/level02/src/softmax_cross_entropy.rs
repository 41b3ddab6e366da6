//! `SoftmaxCrossEntropy`: L = mean over rows of (log-sum-exp(z) - z[target]).

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2, Axis};

/// Softmax followed by cross-entropy against class indices, mean over the batch (PyTorch's
/// `F.cross_entropy(reduction="mean")`).
///
/// For logits z `(batch, classes)` and targets t:
///
/// ```text
/// m_i     = max_j z_ij                           (the shift that keeps exp finite)
/// log p_ij = (z_ij - m_i) - ln Σ_k exp(z_ik - m_i)
/// L       = -(1/N) Σ_i log p_i,t_i
/// dL/dz   = (softmax(z) - onehot(t)) / N         (the fused gradient)
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
        // Shift each row by its max, then log-softmax = shifted - log-sum-exp(shifted).
        let row_max = logits.map_axis(Axis(1), |row| row.fold(F::neg_infinity(), |m, &z| m.max(z)));
        let shifted = &logits - &row_max.insert_axis(Axis(1));
        let log_sum_exp = shifted.mapv(F::exp).sum_axis(Axis(1)).mapv(F::ln);
        let log_probs = shifted - &log_sum_exp.insert_axis(Axis(1));
        // L = -mean_i log p[i, t_i]
        let picked: F = targets
            .iter()
            .enumerate()
            .map(|(row, &t)| log_probs[[row, t]])
            .sum();
        self.probs = Some(log_probs.mapv(F::exp));
        self.targets = targets.to_vec();
        -picked / F::of(targets.len() as f64)
    }

    fn backward(&mut self) -> Array2<F> {
        let probs = self
            .probs
            .as_ref()
            .expect("SoftmaxCrossEntropy backward called before forward");
        // dL/dz = (softmax(z) - onehot(t)) / N
        let mut grad = probs.clone();
        for (row, &target) in self.targets.iter().enumerate() {
            grad[[row, target]] -= F::one();
        }
        grad / F::of(self.targets.len() as f64)
    }
}
