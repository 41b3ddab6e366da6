//! `Linear`: y = x W + b.

use backprop_core::{Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2, Axis};

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
    /// A layer owning `weight` `(fan_in, fan_out)` and `bias` `(fan_out,)`.
    ///
    /// # Panics
    /// If `bias.len() != weight.ncols()`.
    #[track_caller]
    pub fn new(weight: Array2<F>, bias: Array1<F>) -> Self {
        assert_eq!(
            bias.len(),
            weight.ncols(),
            "bias of {} for weight {:?}",
            bias.len(),
            weight.dim()
        );
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
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        assert_same_shape(
            "Linear forward input",
            input.dim(),
            (input.nrows(), self.weight.nrows()),
        );
        // y = x W + b: (batch, fan_in) . (fan_in, fan_out), b broadcast over the rows.
        let output = input.dot(&self.weight) + &self.bias;
        self.input = Some(input.to_owned());
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let input = self
            .input
            .as_ref()
            .expect("Linear backward called before forward");
        assert_same_shape(
            "Linear backward grad_output",
            grad_output.dim(),
            (input.nrows(), self.weight.ncols()),
        );
        // dL/dW = x^T g: (fan_in, batch) . (batch, fan_out), accumulated.
        self.grad_weight += &input.t().dot(&grad_output);
        // dL/db = sum of g over the batch rows, accumulated.
        self.grad_bias += &grad_output.sum_axis(Axis(0));
        // dL/dx = g W^T: (batch, fan_out) . (fan_out, fan_in).
        grad_output.dot(&self.weight.t())
    }
}

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
