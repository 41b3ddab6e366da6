//! `MaxPool2d`: the largest value of each window.

use backprop_core::{Float, Layer, Pool2dGeometry};
use ndarray::{Array2, ArrayView2};

/// Max pooling: `y[n, c, i, j] = max_{p, q} x[n, c, i s + p, j s + q]`.
///
/// Shapes: input rows `(batch, C H W)`, output rows `(batch, C OH OW)` (`geometry.output()`).
/// `geometry.source(c, i, j, p, q)` is the input column of entry (p, q) of channel c's window
/// (i, j). On ties, PyTorch takes the *first* maximum in row-major order inside the window.
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
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: each window's largest value; remember where it came from in `self.argmax`
        // (backward needs it). Hint: hints/hint-5-convolution.md
        let _ = (input, &self.geometry, &self.argmax);
        todo!("MaxPool2d::forward: each window's maximum, and where it was (hints/hint-5-convolution.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: y is one of the window's inputs: which input does each output's gradient reach,
        // and what do the others get? Windows may overlap. Hint: hints/hint-5-convolution.md
        let _ = grad_output;
        todo!("MaxPool2d::backward: route each gradient to its window's maximum (hints/hint-5-convolution.md)")
    }
}
