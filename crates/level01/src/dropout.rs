//! `Dropout`: inverted dropout in loops, the mask kept for backward.

use backprop_core::norm::DropoutMasks;
use backprop_core::{DropoutLayer, Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2};

/// Inverted dropout with probability p.
///
/// In training each unit is kept with probability 1 - p and scaled by 1 / (1 - p), so its
/// expected value is unchanged: `y = x m / (1 - p)`, m = 1 kept, 0 dropped, a fresh mask per
/// forward. In evaluation `y = x`.
///
/// Backward: y_ij = x_ij m_ij / (1 - p) is linear in x_ij, so dL/dx_ij = g_ij m_ij / (1 - p),
/// with the *same* m the forward drew. A dropped unit never reached the loss.
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
        let (batch, width) = input.dim();
        if let Some(keep) = &self.fixed {
            assert_same_shape("Dropout mask", keep.dim(), (batch, width));
        }
        let scale = F::of(1.0 / (1.0 - self.p));
        let mut scaled_mask = Array2::zeros((batch, width));
        let mut output = Array2::zeros((batch, width));
        // The stream's next mask: entry (row, col) is its draw number row * width + col.
        let mask = self.masks.next_mask(batch * width);
        for row in 0..batch {
            for col in 0..width {
                let kept = match &self.fixed {
                    Some(keep) => keep[[row, col]],
                    None => mask.keeps(row * width + col),
                };
                if kept {
                    scaled_mask[[row, col]] = scale;
                    output[[row, col]] = input[[row, col]] * scale;
                }
            }
        }
        self.scaled_mask = Some(scaled_mask);
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let Some(mask) = &self.scaled_mask else {
            return grad_output.to_owned();
        };
        assert_same_shape(
            "Dropout backward grad_output",
            grad_output.dim(),
            mask.dim(),
        );
        let (batch, width) = mask.dim();
        let mut grad_input = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                grad_input[[row, col]] = grad_output[[row, col]] * mask[[row, col]];
            }
        }
        grad_input
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
