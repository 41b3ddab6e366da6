//! `SoftmaxCrossEntropy`: L = mean over rows of (log-sum-exp(z) - z[target]).

use backprop_core::{Float, Loss, Targets};
use ndarray::{Array2, ArrayView2};

/// Softmax followed by cross-entropy against class indices, mean over the batch (PyTorch's
/// `F.cross_entropy(reduction="mean")`).
#[derive(Debug, Clone, Default)]
pub struct SoftmaxCrossEntropy<F> {
    /// softmax(z) and the targets from the last forward.
    probs: Option<Array2<F>>,
    targets: Vec<usize>,
}

impl<F: Float> Loss<F> for SoftmaxCrossEntropy<F> {
    fn forward(&mut self, logits: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        // TODO: `targets.expect_classes(logits.dim())` gives the class of each row (and rejects
        // bad ones). Subtract each row's max from its logits before exp (exp(1000) is infinite),
        // compute log-softmax, and return -(1/N) Σ_i log p[i, t_i]. Keep softmax(z) and the
        // targets for backward. Hint: hints/math-refresh.md (softmax + cross-entropy)
        let _ = (logits, targets);
        todo!("SoftmaxCrossEntropy::forward: mean of -log softmax(z)[t], max-shifted (hints/math-refresh.md)")
    }

    fn backward(&mut self) -> Array2<F> {
        // TODO: dL/dz, shaped like the logits: differentiate the batch mean of
        // -log softmax(z)[t] with respect to each logit (two cases: the target's column and
        // the others; and the mean divides by the batch size). Hint: hints/math-refresh.md
        todo!("SoftmaxCrossEntropy::backward: dL/dlogits, shaped like the logits (hints/math-refresh.md)")
    }
}
