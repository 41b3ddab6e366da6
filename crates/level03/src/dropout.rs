//! Dropout in place: the mask drawn into a reused buffer, in the same pass that applies it, and
//! applied again in backward.

use backprop_core::norm::DropoutMasks;
use backprop_core::{DropoutLayer, Float, Layer, assert_same_shape};
use multiversion::multiversion;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

use crate::buffer::{RowBuffer, contiguous, contiguous_mut};
use crate::parallel::{PARALLEL_ELEMENTS, for_each_pair};

/// Inverted dropout's state: probability, mask stream, and the last training forward's mask
/// m / (1 - p) (0 for a dropped unit) in a buffer that grows only for a larger batch.
#[derive(Debug, Clone)]
pub(crate) struct DropoutState<F> {
    p: f64,
    masks: DropoutMasks,
    pub(crate) training: bool,
    fixed: Option<Array2<bool>>,
    scaled_mask: RowBuffer<F>,
    /// Whether the last forward dropped anything (training with p > 0).
    active: bool,
}

impl<F: Float> DropoutState<F> {
    /// Probability `p`, masks from the stream seeded `seed`.
    ///
    /// # Panics
    /// Unless 0 <= p < 1.
    #[track_caller]
    pub(crate) fn new(p: f64, seed: u64) -> Self {
        DropoutState {
            p,
            masks: DropoutMasks::new(p, seed),
            training: true,
            fixed: None,
            scaled_mask: RowBuffer::default(),
            active: false,
        }
    }

    /// `output <- input m / (1 - p)` with the stream's next mask (or the fixed one), drawn in
    /// the same pass: one read of `input`, one write of `output` and of the mask. Rows are
    /// independent (entry (r, c) is draw r width + c of the mask), so a large batch is split
    /// across the rayon threads with the same result. In evaluation, `output <- input`.
    ///
    /// # Panics
    /// If the shapes differ, or (training) if `input` or `output` is not in standard layout.
    #[track_caller]
    pub(crate) fn forward_into(
        &mut self,
        input: ArrayView2<'_, F>,
        mut output: ArrayViewMut2<'_, F>,
    ) {
        assert_same_shape("Dropout output", output.dim(), input.dim());
        self.active = self.training && self.p > 0.0;
        if !self.active {
            output.assign(&input);
            return;
        }
        let (batch, width) = input.dim();
        self.scaled_mask.resize(batch, width);
        let scale = F::of(1.0 / (1.0 - self.p));
        let mut mask_values = self.scaled_mask.view_mut();
        if let Some(keep) = &self.fixed {
            assert_same_shape("Dropout mask", keep.dim(), (batch, width));
            Zip::from(&mut mask_values)
                .and(keep)
                .and(&mut output)
                .and(&input)
                .for_each(|m, &kept, y, &x| {
                    *m = if kept { scale } else { F::zero() };
                    *y = x * *m;
                });
            return;
        }
        let mask = self.masks.next_mask(batch * width);
        let rows = Zip::indexed(mask_values.rows_mut())
            .and(output.rows_mut())
            .and(input.rows());
        // A row at a time: m = scale [kept] (core's vectorized draw), then y = x m.
        let fill_row = |row: usize,
                        mut m_row: ArrayViewMut1<'_, F>,
                        mut y_row: ArrayViewMut1<'_, F>,
                        x_row: ArrayView1<'_, F>| {
            let m_row = contiguous_mut(&mut m_row);
            mask.scaled_row(row * width, scale, m_row);
            masked_row(contiguous_mut(&mut y_row), contiguous(&x_row), m_row);
        };
        if batch * width >= PARALLEL_ELEMENTS && rayon::current_num_threads() > 1 {
            rows.par_for_each(fill_row);
        } else {
            rows.for_each(fill_row);
        }
    }

    /// `grad <- grad m / (1 - p)` with the forward's mask.
    #[track_caller]
    pub(crate) fn backward_inplace(&self, grad: ArrayViewMut2<'_, F>) {
        if self.active {
            let mask = self.scaled_mask.view();
            assert_same_shape("Dropout backward grad", grad.dim(), mask.dim());
            for_each_pair(grad, mask, |g, &m| *g *= m);
        }
    }
}

/// `y = x m` over a row, compiled for AVX-512, AVX2 and the baseline (the same bits in each).
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn masked_row<F: Float>(output: &mut [F], input: &[F], mask: &[F]) {
    for ((y, &x), &m) in output.iter_mut().zip(input).zip(mask) {
        *y = x * m;
    }
}

/// Dropout as a layer of its own over the same in-place state the `Mlp` keeps per layer.
#[derive(Debug, Clone)]
pub struct Dropout<F> {
    state: DropoutState<F>,
}

impl<F: Float> Dropout<F> {
    /// Dropout with probability `p`, masks from the stream seeded `seed`.
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
        let mut output = Array2::zeros(input.dim());
        let input = input.as_standard_layout();
        self.state.forward_into(input.view(), output.view_mut());
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
