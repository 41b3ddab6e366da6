//! `Dropout`: inverted dropout, the mask kept for backward.

use backprop_core::norm::DropoutMasks;
use backprop_core::{DropoutLayer, Float, Layer};
use ndarray::{Array2, ArrayView2};

/// Inverted dropout with probability p: in training `y = x m / (1 - p)`, m_ij = 1 for a kept
/// unit and 0 for a dropped one; in evaluation `y = x`.
#[derive(Debug, Clone)]
pub struct Dropout<F> {
    p: f64,
    masks: DropoutMasks,
    training: bool,
    /// A mask to use instead of drawing one ([`DropoutLayer::fix_mask`]).
    fixed: Option<Array2<bool>>,
    /// What backward needs from forward.
    mask: Option<Array2<F>>,
}

impl<F: Float> Dropout<F> {
    /// Dropout with probability `p`, masks from the generator seeded `seed`.
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout {
            p,
            // Panics unless 0 <= p < 1.
            masks: DropoutMasks::new(p, seed),
            training: true,
            fixed: None,
            mask: None,
        }
    }
}

impl<F: Float> Layer<F> for Dropout<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: in evaluation (or with p = 0), return x unchanged. In training, take the fixed
        // mask if there is one, else draw the next one with self.masks.draw(input.dim()) (true:
        // kept); scale the kept units so their expected value is unchanged; keep what backward
        // needs. Hint: hints/hint-4-normalization.md
        let _ = (input, &self.mask, &mut self.masks, self.p, self.training);
        todo!("Dropout::forward: drop, scale, remember the mask (hints/hint-4-normalization.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: dL/dx, shaped like x: which units reached the loss, and by how much were they
        // scaled? Hint: hints/hint-4-normalization.md
        let _ = grad_output;
        todo!("Dropout::backward: the forward's own mask (hints/hint-4-normalization.md)")
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Plumbing, done for you: the checks fix the mask to compare with finite differences and
/// PyTorch.
impl<F: Float> DropoutLayer<F> for Dropout<F> {
    fn fix_mask(&mut self, keep: Option<Array2<bool>>) {
        self.fixed = keep;
    }
}
