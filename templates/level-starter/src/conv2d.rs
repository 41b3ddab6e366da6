//! `Conv2d`: a 2-D convolution over images kept as rows.

use backprop_core::{Conv2dGeometry, Float, Layer, LinearLayer, LinearMut};
use ndarray::{Array1, Array2, ArrayView2};

/// A 2-D convolution, PyTorch's (a cross-correlation: the kernel is not flipped):
///
/// ```text
/// y[n, o, i, j] = b[o] + Σ_c Σ_p Σ_q x[n, c, i s + p - pad, j s + q - pad] W[(c kh + p) kw + q, o]
/// ```
///
/// x is 0 in the padding. Shapes: input rows `(batch, C H W)` (value (c, i, j) of an image at
/// column `(c H + i) W + j`: `geometry.input_index(c, i, j)`), weight `(C kh kw, out)` (row
/// `geometry.weight_row(c, p, q)`), bias `(out,)`, output rows `(batch, out OH OW)` with
/// `geometry.output()` giving `out x OH x OW`. `geometry.source(i, j, p, q)` says which input
/// (row, column) kernel entry (p, q) of window (i, j) reads, or `None` in the padding.
#[derive(Debug, Clone)]
pub struct Conv2d<F> {
    geometry: Conv2dGeometry,
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// x from the last forward: dL/dW needs it.
    input: Option<Array2<F>>,
}

impl<F: Float> Conv2d<F> {
    /// A convolution owning `weight` `(C kh kw, out)` and `bias` `(out,)`, gradients zero.
    pub fn new(weight: Array2<F>, bias: Array1<F>, geometry: Conv2dGeometry) -> Self {
        Conv2d {
            geometry,
            grad_weight: Array2::zeros(weight.raw_dim()),
            grad_bias: Array1::zeros(bias.raw_dim()),
            weight,
            bias,
            input: None,
        }
    }
}

impl<F: Float> Layer<F> for Conv2d<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: for every sample, output channel and output position, the bias plus the sum of
        // the window's inputs times the kernel (padding entries add nothing); keep a copy of x
        // in `self.input`. Hint: hints/hint-5-convolution.md
        let _ = (input, &self.geometry, &self.weight, &self.bias, &self.input);
        todo!("Conv2d::forward: slide the kernel over each image, keep x (hints/hint-5-convolution.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: g = grad_output is dL/dy, shape (batch, out OH OW). Every output used each
        // weight once and each input once per window that covers it, so:
        // - dL/dW: ADD, for each weight, g times the input it multiplied, summed over every
        //   sample and position;
        // - dL/db: ADD the sum of g over samples and positions, per output channel;
        // - dL/dx: return it; each input gets g times the weight it met, from every window
        //   that read it (stride and padding decide which).
        // Hint: hints/hint-5-convolution.md
        let _ = grad_output;
        todo!("Conv2d::backward: add dL/dW and dL/db, return dL/dx (hints/hint-5-convolution.md)")
    }
}

/// Plumbing, done for you: the optimizers, `zero_grad` and the checks reach W, b and their
/// gradients through these views, exactly as for `Linear`.
impl<F: Float> LinearLayer<F> for Conv2d<F> {
    fn params_mut(&mut self) -> LinearMut<'_, F> {
        LinearMut {
            weight: self.weight.view_mut(),
            bias: self.bias.view_mut(),
            grad_weight: self.grad_weight.view_mut(),
            grad_bias: self.grad_bias.view_mut(),
        }
    }
}
