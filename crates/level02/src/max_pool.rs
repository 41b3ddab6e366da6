//! `MaxPool2d`: each window's maximum, by strided views; the gradient scattered to it.

use backprop_core::conv::replaces_max;
use backprop_core::{Float, Layer, Pool2dGeometry, assert_same_shape};
use ndarray::{Array2, Array4, ArrayView2, Zip, s};

/// Max pooling: `y[n, c, i, j] = max_{p, q} x[n, c, i s + p, j s + q]`.
///
/// The window is swept as `kh kw` strided views of the whole batch: view `(p, q)` holds entry
/// `(p, q)` of every window, and an elementwise `Zip` keeps the running maximum and where it
/// came from. Entries are visited in row-major order and replace the best only when strictly
/// larger (or NaN), so ties go to the first, as in PyTorch.
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    geometry: Pool2dGeometry,
    /// For each output entry of the last forward, the input column its maximum came from.
    argmax: Option<Array2<usize>>,
}

impl MaxPool2d {
    /// A max pool with `geometry`'s input, window and stride.
    pub fn new(geometry: Pool2dGeometry) -> Self {
        MaxPool2d {
            geometry,
            argmax: None,
        }
    }
}

impl<F: Float> Layer<F> for MaxPool2d {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let geometry = self.geometry;
        let (image, out) = (geometry.input, geometry.output());
        let batch = input.nrows();
        assert_same_shape("MaxPool2d forward input", input.dim(), (batch, image.len()));
        let images = input
            .to_owned()
            .into_shape_clone((batch, image.channels, image.height, image.width))
            .expect("the sizes match");
        let (kh, kw) = geometry.kernel;
        let stride = geometry.stride;
        let shape = (batch, out.channels, out.height, out.width);
        let mut best = Array4::from_elem(shape, F::neg_infinity());
        let mut best_index = Array4::zeros(shape);
        // Every input column (c H + i s + p) W + j s + q, for window (c, i, j), as an array.
        let columns = |p: usize, q: usize| {
            Array4::from_shape_fn(shape, |(_, c, i, j)| geometry.source(c, i, j, p, q))
        };
        for p in 0..kh {
            for q in 0..kw {
                let entries = images.slice(s![
                    ..,
                    ..,
                    p..p + stride * (out.height - 1) + 1;stride,
                    q..q + stride * (out.width - 1) + 1;stride
                ]);
                let first = p == 0 && q == 0;
                Zip::from(&mut best)
                    .and(&mut best_index)
                    .and(&entries)
                    .and(&columns(p, q))
                    .for_each(|best, index, &entry, &column| {
                        if first || replaces_max(entry, *best) {
                            *best = entry;
                            *index = column;
                        }
                    });
            }
        }
        self.argmax = Some(
            best_index
                .into_shape_with_order((batch, out.len()))
                .expect("standard layout"),
        );
        best.into_shape_with_order((batch, out.len()))
            .expect("standard layout")
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let argmax = self
            .argmax
            .as_ref()
            .expect("MaxPool2d backward called before forward");
        assert_same_shape(
            "MaxPool2d backward grad_output",
            grad_output.dim(),
            argmax.dim(),
        );
        // dL/dx is g at each window's winner, 0 elsewhere; overlapping windows add.
        let mut grad_input = Array2::zeros((grad_output.nrows(), self.geometry.input.len()));
        Zip::from(grad_input.rows_mut())
            .and(grad_output.rows())
            .and(argmax.rows())
            .for_each(|mut grad_row, grads, winners| {
                for (&grad, &winner) in grads.iter().zip(winners) {
                    grad_row[winner] += grad;
                }
            });
        grad_input
    }
}
