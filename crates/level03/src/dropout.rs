//! Dropout in place: the mask drawn into a reused buffer and applied again in backward.

use backprop_core::init::{SeededRng, seeded_rng};
use backprop_core::norm::draw_keep;
use backprop_core::{DropoutLayer, Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::buffer::RowBuffer;

/// Inverted dropout's state: probability, generator, and the last training forward's mask
/// m / (1 - p) (0 for a dropped unit) in a buffer that grows only for a larger batch.
#[derive(Debug, Clone)]
pub(crate) struct DropoutState<F> {
    p: f64,
    rng: SeededRng,
    pub(crate) training: bool,
    fixed: Option<Array2<bool>>,
    scaled_mask: RowBuffer<F>,
    /// Whether the last forward dropped anything (training with p > 0).
    active: bool,
}

impl<F: Float> DropoutState<F> {
    /// Probability `p`, masks from the generator seeded `seed`.
    ///
    /// # Panics
    /// Unless 0 <= p < 1.
    #[track_caller]
    pub(crate) fn new(p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout probability {p} is not in [0, 1)"
        );
        DropoutState {
            p,
            rng: seeded_rng(seed),
            training: true,
            fixed: None,
            scaled_mask: RowBuffer::default(),
            active: false,
        }
    }

    /// `values <- values m / (1 - p)` with a fresh mask (drawn row-major, as every level draws),
    /// or the fixed one; nothing in evaluation.
    #[track_caller]
    pub(crate) fn forward_inplace(&mut self, values: ArrayViewMut2<'_, F>) {
        self.active = self.training && self.p > 0.0;
        if !self.active {
            return;
        }
        let (batch, width) = values.dim();
        self.scaled_mask.resize(batch, width);
        let scale = F::of(1.0 / (1.0 - self.p));
        let mut mask = self.scaled_mask.view_mut();
        match &self.fixed {
            Some(keep) => {
                assert_same_shape("Dropout mask", keep.dim(), (batch, width));
                Zip::from(&mut mask)
                    .and(keep)
                    .for_each(|m, &kept| *m = if kept { scale } else { F::zero() });
            }
            None => {
                for m in mask.iter_mut() {
                    *m = if draw_keep(&mut self.rng, self.p) {
                        scale
                    } else {
                        F::zero()
                    };
                }
            }
        }
        Zip::from(values).and(&mask).for_each(|x, &m| *x *= m);
    }

    /// `grad <- grad m / (1 - p)` with the forward's mask.
    #[track_caller]
    pub(crate) fn backward_inplace(&self, grad: ArrayViewMut2<'_, F>) {
        if self.active {
            let mask = self.scaled_mask.view();
            assert_same_shape("Dropout backward grad", grad.dim(), mask.dim());
            Zip::from(grad).and(&mask).for_each(|g, &m| *g *= m);
        }
    }
}

/// Dropout as a layer of its own over the same in-place state the `Mlp` keeps per layer.
#[derive(Debug, Clone)]
pub struct Dropout<F> {
    state: DropoutState<F>,
}

impl<F: Float> Dropout<F> {
    /// Dropout with probability `p`, masks from the generator seeded `seed`.
    ///
    /// # Panics
    /// Unless 0 <= p < 1.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout {
            state: DropoutState::new(p, seed),
        }
    }
}

impl<F: Float> Layer<F> for Dropout<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = input.to_owned();
        self.state.forward_inplace(output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad = grad_output.to_owned();
        self.state.backward_inplace(grad.view_mut());
        grad
    }

    fn set_training(&mut self, training: bool) {
        self.state.training = training;
    }
}

impl<F: Float> DropoutLayer<F> for Dropout<F> {
    fn fix_mask(&mut self, keep: Option<Array2<bool>>) {
        self.state.fixed = keep;
    }
}
