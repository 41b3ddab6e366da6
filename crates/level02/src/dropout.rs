//! `Dropout`: inverted dropout, the mask kept for backward.

use backprop_core::norm::DropoutMasks;
use backprop_core::{DropoutLayer, Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2};

/// Inverted dropout with probability p: in training `y = x m / (1 - p)` with a fresh mask m of
/// kept (1) and dropped (0) units per forward; in evaluation `y = x`.
///
/// Backward reuses the forward's mask: a dropped unit did not reach the loss, so its gradient is
/// 0, and a kept one was scaled, so its gradient is too: `dx = g m / (1 - p)`.
#[derive(Debug, Clone)]
pub struct Dropout<F> {
    p: f64,
    masks: DropoutMasks,
    training: bool,
    fixed: Option<Array2<bool>>,
    /// m / (1 - p) of the last training forward; `None` after an identity forward.
    scaled_mask: Option<Array2<F>>,
}

impl<F: Float> Dropout<F> {
    /// Dropout with probability `p`, masks drawn from the generator seeded `seed`.
    ///
    /// # Panics
    /// Unless 0 <= p < 1.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout {
            p,
            masks: DropoutMasks::new(p, seed),
            training: true,
            fixed: None,
            scaled_mask: None,
        }
    }
}

impl<F: Float> Layer<F> for Dropout<F> {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        if !self.training || self.p == 0.0 {
            self.scaled_mask = None;
            return input.to_owned();
        }
        let keep = match &self.fixed {
            Some(keep) => keep.clone(),
            None => self.masks.draw(input.dim()),
        };
        assert_same_shape("Dropout mask", keep.dim(), input.dim());
        let scale = F::of(1.0 / (1.0 - self.p));
        let scaled_mask = keep.mapv(|kept| if kept { scale } else { F::zero() });
        let output = &input * &scaled_mask;
        self.scaled_mask = Some(scaled_mask);
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        match &self.scaled_mask {
            Some(mask) => {
                assert_same_shape(
                    "Dropout backward grad_output",
                    grad_output.dim(),
                    mask.dim(),
                );
                &grad_output * mask
            }
            None => grad_output.to_owned(),
        }
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl<F: Float> DropoutLayer<F> for Dropout<F> {
    fn fix_mask(&mut self, keep: Option<Array2<bool>>) {
        self.fixed = keep;
    }
}
