//! `Tanh`: y = tanh x, in place.

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::buffer::RowBuffer;
use crate::parallel::{for_each, for_each_pair};

/// The hyperbolic tangent: `y = tanh x`, gradient `1 - y^2`. It keeps its output.
#[derive(Debug, Clone, Default)]
pub struct Tanh<F> {
    output: RowBuffer<F>,
}

/// `z <- tanh z` in place.
pub(crate) fn tanh_inplace<F: Float>(values: ArrayViewMut2<'_, F>) {
    for_each(values, |z| *z = z.tanh());
}

/// `g <- g (1 - y^2)` in place, from the tanh output y.
pub(crate) fn tanh_backward_inplace<F: Float>(
    grad: ArrayViewMut2<'_, F>,
    output: ArrayView2<'_, F>,
) {
    for_each_pair(grad, output, |g, &y| *g *= F::one() - y * y);
}

impl<F: Float> Layer<F> for Tanh<F> {
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
        assert_same_shape("Tanh forward_into output", output.dim(), input.dim());
        self.output.resize(input.nrows(), input.ncols());
        let mut kept = self.output.view_mut();
        kept.assign(&input);
        tanh_inplace(kept.view_mut());
        output.assign(&kept);
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let output = self.output.view();
        assert_same_shape("Tanh backward grad_output", grad_output.dim(), output.dim());
        assert_same_shape(
            "Tanh backward_into grad_input",
            grad_input.dim(),
            output.dim(),
        );
        grad_input.assign(&grad_output);
        tanh_backward_inplace(grad_input, output);
    }
}
