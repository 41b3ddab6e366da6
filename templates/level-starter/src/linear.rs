//! `Linear`: y = x W + b.

use backprop_core::{Float, Layer, LinearLayer, LinearMut};
use ndarray::{Array1, Array2, ArrayView2};

/// A fully connected layer: `y = x W + b`.
///
/// Shapes: input x `(batch, fan_in)`, weight W `(fan_in, fan_out)`, bias b `(fan_out,)`,
/// output y `(batch, fan_out)`.
#[derive(Debug, Clone)]
pub struct Linear<F> {
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// x from the last forward: dL/dW needs it.
    input: Option<Array2<F>>,
}

impl<F: Float> Linear<F> {
    /// A layer owning `weight` `(fan_in, fan_out)` and `bias` `(fan_out,)`, gradients zero.
    pub fn new(weight: Array2<F>, bias: Array1<F>) -> Self {
        Linear {
            grad_weight: Array2::zeros(weight.raw_dim()),
            grad_bias: Array1::zeros(bias.raw_dim()),
            weight,
            bias,
            input: None,
        }
    }
}

impl<F: Float> Layer<F> for Linear<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: return x W + b (the bias added to every row), and keep a copy of x in
        // `self.input`: backward needs it. Hint: hints/hint-2-linear-backward.md
        let _ = input;
        todo!("Linear::forward: y = x W + b, keep x for backward (hints/hint-2-linear-backward.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: g = grad_output is dL/dy, shape (batch, fan_out); forward kept x (batch, fan_in).
        // Compute three gradients of L, each from y = x W + b with the chain rule:
        // - dL/dW, shaped like W (fan_in, fan_out): ADD it to grad_weight;
        // - dL/db, one number per output: ADD it to grad_bias (add, never assign: gradients
        //   accumulate over backward passes until zero_grad);
        // - dL/dx, shaped like x: return it, for the layer below.
        // The shapes alone leave one way to multiply each pair. Hint:
        // hints/hint-2-linear-backward.md
        let _ = grad_output;
        todo!("Linear::backward: add dL/dW and dL/db to the gradients, return dL/dx (hints/hint-2-linear-backward.md)")
    }
}

/// Plumbing, done for you: the optimizers, `zero_grad` and the checks reach W, b and their
/// gradients through these views.
impl<F: Float> LinearLayer<F> for Linear<F> {
    fn params_mut(&mut self) -> LinearMut<'_, F> {
        LinearMut {
            weight: self.weight.view_mut(),
            bias: self.bias.view_mut(),
            grad_weight: self.grad_weight.view_mut(),
            grad_bias: self.grad_bias.view_mut(),
        }
    }
}
