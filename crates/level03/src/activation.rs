//! `ActivationLayer`: ReLU, sigmoid or tanh as a standalone layer over the in-place kernels.

use backprop_core::{Activation, Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::buffer::RowBuffer;
use crate::relu::{relu_backward_inplace, relu_inplace};
use crate::sigmoid::{sigmoid_backward_inplace, sigmoid_inplace};
use crate::tanh::{tanh_backward_inplace, tanh_inplace};

/// `z <- f(z)` in place.
pub(crate) fn activation_inplace<F: Float>(activation: Activation, values: ArrayViewMut2<'_, F>) {
    match activation {
        Activation::Relu => relu_inplace(values),
        Activation::Sigmoid => sigmoid_inplace(values),
        Activation::Tanh => tanh_inplace(values),
    }
}

/// `g <- g f'(x)` in place, written in terms of the output y = f(x) (ReLU: `y > 0`; sigmoid:
/// `y (1 - y)`; tanh: `1 - y^2`).
pub(crate) fn activation_backward_inplace<F: Float>(
    activation: Activation,
    grad: ArrayViewMut2<'_, F>,
    output: ArrayView2<'_, F>,
) {
    match activation {
        Activation::Relu => relu_backward_inplace(grad, output),
        Activation::Sigmoid => sigmoid_backward_inplace(grad, output),
        Activation::Tanh => tanh_backward_inplace(grad, output),
    }
}

/// An elementwise activation as a layer of its own (the harness's single-layer checks use it;
/// [`Mlp`](crate::Mlp) calls the in-place kernels on its own buffers instead).
///
/// It keeps a copy of its output: every derivative here is written in terms of the output
/// (ReLU's gradient is 1 exactly where `y > 0`, which is where `x > 0`; at exactly 0 it is 0, as
/// in PyTorch). NaN passes through.
#[derive(Debug, Clone)]
pub struct ActivationLayer<F> {
    activation: Activation,
    output: RowBuffer<F>,
}

impl<F: Float> ActivationLayer<F> {
    /// A layer applying `activation`.
    pub fn new(activation: Activation) -> Self {
        ActivationLayer {
            activation,
            output: RowBuffer::default(),
        }
    }
}

impl<F: Float> Layer<F> for ActivationLayer<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = Array2::zeros(input.dim());
        self.forward_into(input, output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad_input = Array2::zeros(self.output.view().dim());
        self.backward_into(grad_output, grad_input.view_mut());
        grad_input
    }

    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, mut output: ArrayViewMut2<'_, F>) {
        let name = self.activation.name();
        assert_same_shape(
            &format!("{name} forward_into output"),
            output.dim(),
            input.dim(),
        );
        output.assign(&input);
        activation_inplace(self.activation, output.view_mut());
        self.output.resize(input.nrows(), input.ncols());
        self.output.view_mut().assign(&output);
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let (name, output) = (self.activation.name(), self.output.view());
        assert_same_shape(
            &format!("{name} backward grad_output"),
            grad_output.dim(),
            output.dim(),
        );
        assert_same_shape(
            &format!("{name} backward_into grad_input"),
            grad_input.dim(),
            output.dim(),
        );
        grad_input.assign(&grad_output);
        activation_backward_inplace(self.activation, grad_input, output);
    }
}
