//! `Linear`: y = x W + b, straight into the caller's buffer.

use backprop_core::optim::TensorUpdate;
use backprop_core::{Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::buffer::RowBuffer;
use crate::gemm::{gemm, gemm_then, layer_forward_gemm};
use crate::parallel::add_rows;

/// A fully connected layer: `y = x W + b`.
///
/// Shapes: input x `(batch, fan_in)`, weight W `(fan_in, fan_out)`, bias b `(fan_out,)`,
/// output y `(batch, fan_out)`. It keeps a copy of its input (dL/dW needs it) in a buffer sized
/// for the largest batch seen, and, once a forward product is large enough to cut its sum in
/// two, a buffer of the output's shape for one half of the sum.
#[derive(Debug, Clone)]
pub struct Linear<F> {
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    input: RowBuffer<F>,
    sum_rest: RowBuffer<F>,
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
            input: RowBuffer::default(),
            sum_rest: RowBuffer::default(),
        }
    }
}

/// `y <- x W + b`: the bias broadcast into every row, then `y <- x W + y`
/// ([`layer_forward_gemm`], `sum_rest` its buffer for half of a sum cut in two).
pub(crate) fn linear_forward<F: Float>(
    input: ArrayView2<'_, F>,
    weight: ArrayView2<'_, F>,
    bias: &Array1<F>,
    mut output: ArrayViewMut2<'_, F>,
    sum_rest: &mut RowBuffer<F>,
) {
    output.assign(bias);
    layer_forward_gemm(input, weight, output, sum_rest);
}

/// `dW (+)= x^T g` and `db (+)= Σ_rows g`; with `overwrite`, `=` instead of `+=` (the gradients
/// were just zeroed, so this is the same value without reading them). With `weight_update`, each
/// piece of dW the product computes updates the same piece of W at once, on its thread.
pub(crate) fn linear_param_grads<F: Float>(
    input: ArrayView2<'_, F>,
    grad_output: ArrayView2<'_, F>,
    (grad_weight, grad_bias): (ArrayViewMut2<'_, F>, ArrayViewMut1<'_, F>),
    overwrite: bool,
    weight_update: Option<(ArrayViewMut2<'_, F>, TensorUpdate<'_, F>)>,
) {
    let beta = if overwrite { F::zero() } else { F::one() };
    // x^T is a strided view of x: no copy.
    let (x_t, one) = (input.t(), F::one());
    gemm_then(
        one,
        x_t,
        grad_output,
        beta,
        grad_weight,
        weight_update,
        |grad, update| {
            if let Some((weight, update)) = update {
                update.apply(weight, grad);
            }
        },
    );
    add_rows(grad_bias, grad_output, overwrite);
}

impl<F: Float> Layer<F> for Linear<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = Array2::zeros((input.nrows(), self.weight.ncols()));
        self.forward_into(input, output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad_input = Array2::zeros(self.input.view().dim());
        self.backward_into(grad_output, grad_input.view_mut());
        grad_input
    }

    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, output: ArrayViewMut2<'_, F>) {
        let (fan_in, fan_out) = self.weight.dim();
        let batch = input.nrows();
        assert_same_shape("Linear forward input", input.dim(), (batch, fan_in));
        assert_same_shape("Linear forward_into output", output.dim(), (batch, fan_out));
        self.input.resize(batch, fan_in);
        self.input.view_mut().assign(&input);
        let sum_rest = &mut self.sum_rest;
        linear_forward(input, self.weight.view(), &self.bias, output, sum_rest);
    }

    #[track_caller]
    fn backward_into(&mut self, grad_output: ArrayView2<'_, F>, grad_input: ArrayViewMut2<'_, F>) {
        let input = self.input.view();
        let (batch, fan_out) = (input.nrows(), self.weight.ncols());
        assert_same_shape(
            "Linear backward grad_output",
            grad_output.dim(),
            (batch, fan_out),
        );
        assert_same_shape(
            "Linear backward_into grad_input",
            grad_input.dim(),
            input.dim(),
        );
        let (grad_weight, grad_bias) = (self.grad_weight.view_mut(), self.grad_bias.view_mut());
        linear_param_grads(input, grad_output, (grad_weight, grad_bias), false, None);
        // dL/dx = g W^T, W^T as a strided view.
        gemm(
            F::one(),
            grad_output,
            self.weight.t(),
            F::zero(),
            grad_input,
        );
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
