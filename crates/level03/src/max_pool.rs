//! `MaxPool2d`: each window's maximum straight into the caller's buffer, its winner kept in a
//! reused index buffer.

use std::hint::select_unpredictable;

use backprop_core::conv::replaces_max;
use backprop_core::{Float, Layer, Pool2dGeometry, assert_same_shape};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip, s};

/// Max pooling: `y[n, c, i, j] = max_{p, q} x[n, c, i s + p, j s + q]`, ties to the first
/// maximum in row-major order (PyTorch's rule), NaN winning.
///
/// The winners' input columns live in a `(batch, C OH OW)` index buffer sized for the largest
/// batch seen; backward scatters each output gradient to its winner. One sample per rayon task.
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    geometry: Pool2dGeometry,
    /// Rows `..batch` hold the last forward's winners.
    argmax: Array2<u32>,
    batch: usize,
}

impl MaxPool2d {
    /// A max pool with `geometry`'s input, window and stride.
    ///
    /// # Panics
    /// If an image has more than `u32::MAX` values.
    #[track_caller]
    pub fn new(geometry: Pool2dGeometry) -> Self {
        assert!(
            u32::try_from(geometry.input.len()).is_ok(),
            "MaxPool2d input {} is too large to index with u32",
            geometry.input
        );
        MaxPool2d {
            geometry,
            argmax: Array2::zeros((0, geometry.output().len())),
            batch: 0,
        }
    }
}

/// One sample's forward: each window's maximum into `output`, its column into `winners`.
fn pool_sample<F: Float>(
    geometry: &Pool2dGeometry,
    image: ArrayView1<'_, F>,
    mut output: ArrayViewMut1<'_, F>,
    mut winners: ArrayViewMut1<'_, u32>,
) {
    let out = geometry.output();
    let (kh, kw) = geometry.kernel;
    let (height, width, stride) = (geometry.input.height, geometry.input.width, geometry.stride);
    let image = image.as_slice().expect("an input row is contiguous");
    let output = output.as_slice_mut().expect("an output row is contiguous");
    let winners = winners.as_slice_mut().expect("a winners row is contiguous");
    let windows = output
        .chunks_exact_mut(out.width)
        .zip(winners.chunks_exact_mut(out.width))
        .enumerate();
    for (channel_row, (output_row, winners_row)) in windows {
        let (c, i) = (channel_row / out.height, channel_row % out.height);
        let top = (c * height + i * stride) * width;
        if (kh, kw) == (2, 2) {
            // The common window as a tournament, (a, b) and (c, d) then their winners: the
            // same winner as row-major order (the rule keeps the earlier of equal values and
            // the later of NaNs, whichever way the entries are paired), and a shorter chain.
            for (j, (value, winner)) in output_row
                .iter_mut()
                .zip(winners_row.iter_mut())
                .enumerate()
            {
                let first = top + j * stride;
                let second = first + width;
                let pick = |left: (usize, F), right: (usize, F)| {
                    select_unpredictable(replaces_max(right.1, left.1), right, left)
                };
                let upper = pick((first, image[first]), (first + 1, image[first + 1]));
                let lower = pick((second, image[second]), (second + 1, image[second + 1]));
                let (best, best_value) = pick(upper, lower);
                *value = best_value;
                *winner = best as u32; // fits: checked in `new`
            }
            continue;
        }
        // The window's entries in row-major order, the running best chosen by
        // `select_unpredictable` rather than a branch: which entry wins is data.
        for (j, (value, winner)) in output_row
            .iter_mut()
            .zip(winners_row.iter_mut())
            .enumerate()
        {
            let corner = top + j * stride;
            let (mut best, mut best_value) = (corner, image[corner]);
            for p in 0..kh {
                for q in 0..kw {
                    let index = corner + p * width + q;
                    let candidate = image[index];
                    let replaces = replaces_max(candidate, best_value);
                    best = select_unpredictable(replaces, index, best);
                    best_value = select_unpredictable(replaces, candidate, best_value);
                }
            }
            *value = best_value;
            *winner = best as u32; // fits: checked in `new`
        }
    }
}

impl<F: Float> Layer<F> for MaxPool2d {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = Array2::zeros((input.nrows(), self.geometry.output().len()));
        self.forward_into(input, output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad_input = Array2::zeros((self.batch, self.geometry.input.len()));
        self.backward_into(grad_output, grad_input.view_mut());
        grad_input
    }

    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, mut output: ArrayViewMut2<'_, F>) {
        let geometry = self.geometry;
        let batch = input.nrows();
        let outputs = geometry.output().len();
        assert_same_shape(
            "MaxPool2d forward input",
            input.dim(),
            (batch, geometry.input.len()),
        );
        assert_same_shape(
            "MaxPool2d forward_into output",
            output.dim(),
            (batch, outputs),
        );
        if batch > self.argmax.nrows() {
            self.argmax = Array2::zeros((batch, outputs));
        }
        self.batch = batch;
        Zip::from(input.rows())
            .and(output.rows_mut())
            .and(self.argmax.slice_mut(s![..batch, ..]).rows_mut())
            .par_for_each(|image, output, winners| pool_sample(&geometry, image, output, winners));
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let batch = self.batch;
        assert_same_shape(
            "MaxPool2d backward grad_output",
            grad_output.dim(),
            (batch, self.geometry.output().len()),
        );
        assert_same_shape(
            "MaxPool2d backward_into grad_input",
            grad_input.dim(),
            (batch, self.geometry.input.len()),
        );
        // Each output's gradient to its winner; overlapping windows add.
        Zip::from(grad_input.rows_mut())
            .and(grad_output.rows())
            .and(self.argmax.slice(s![..batch, ..]).rows())
            .par_for_each(|mut grad_image, grads, winners| {
                let grad_image = grad_image
                    .as_slice_mut()
                    .expect("a gradient row is contiguous");
                grad_image.fill(F::zero());
                for (&grad, &winner) in grads.iter().zip(winners) {
                    grad_image[winner as usize] += grad;
                }
            });
    }
}
