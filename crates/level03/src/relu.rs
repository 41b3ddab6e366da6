//! `Relu`: y = max(0, x), in place.

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::buffer::RowBuffer;

use crate::parallel::for_each_pair;

/// The rectifier: `y = max(0, x)`, gradient 1 where `x > 0` and 0 elsewhere (0 at exactly 0, as
/// PyTorch). NaN passes through.
///
/// It keeps a copy of its output, whose sign (`y > 0` exactly where `x > 0`) is all the
/// backward pass reads. (Inside [`Mlp`](crate::Mlp) it keeps nothing: the output buffer it wrote
/// in place serves.)
#[derive(Debug, Clone, Default)]
pub struct Relu<F> {
    output: RowBuffer<F>,
}

/// `z <- max(0, z)` in place (`z <= 0` is false for NaN, so NaN stays). The store is
/// unconditional, so the loop compiles to a vector compare and blend.
pub(crate) fn relu_inplace<F: Float>(values: ArrayViewMut2<'_, F>) {
    crate::parallel::for_each(values, |z| {
        *z = if *z <= F::zero() { F::zero() } else { *z }
    });
}

/// `g <- g` where the ReLU output `y > 0`, else 0, in place. `y > 0` exactly where its input was
/// `> 0`, so the output the forward pass wrote is all the backward pass needs.
pub(crate) fn relu_backward_inplace<F: Float>(
    grad: ArrayViewMut2<'_, F>,
    output: ArrayView2<'_, F>,
) {
    // (y > 0) is false for y = 0 and for NaN: both block the gradient. Unconditional store, as
    // in the forward pass, so the loop vectorises.
    for_each_pair(grad, output, |g, &y| {
        *g = if y > F::zero() { *g } else { F::zero() }
    });
}

impl<F: Float> Layer<F> for Relu<F> {
    fn out_features(&self, in_features: usize) -> usize {
        in_features
    }

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
        assert_same_shape("ReLU forward_into output", output.dim(), input.dim());
        output.assign(&input);
        relu_inplace(output.view_mut());
        self.output.resize(input.nrows(), input.ncols());
        self.output.view_mut().assign(&output);
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let output = self.output.view();
        assert_same_shape("ReLU backward grad_output", grad_output.dim(), output.dim());
        assert_same_shape(
            "ReLU backward_into grad_input",
            grad_input.dim(),
            output.dim(),
        );
        grad_input.assign(&grad_output);
        relu_backward_inplace(grad_input, output);
    }
}
