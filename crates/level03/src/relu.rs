//! `Relu`: y = max(0, x), in place.

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::parallel::for_each_pair;

/// The rectifier: `y = max(0, x)`, gradient 1 where `x > 0` and 0 elsewhere (0 at exactly 0, as
/// PyTorch). NaN passes through.
///
/// It keeps one byte per element, the mask `x > 0`, and nothing else.
#[derive(Debug, Clone, Default)]
pub struct Relu {
    mask: Vec<bool>,
    shape: (usize, usize),
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

impl<F: Float> Layer<F> for Relu {
    fn out_features(&self, in_features: usize) -> usize {
        in_features
    }

    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = Array2::zeros(input.dim());
        self.forward_into(input, output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad_input = Array2::zeros(self.shape);
        self.backward_into(grad_output, grad_input.view_mut());
        grad_input
    }

    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, mut output: ArrayViewMut2<'_, F>) {
        assert_same_shape("ReLU forward_into output", output.dim(), input.dim());
        self.shape = input.dim();
        self.mask.clear();
        self.mask.extend(input.iter().map(|&x| x > F::zero()));
        output.assign(&input);
        relu_inplace(output);
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        assert_same_shape("ReLU backward grad_output", grad_output.dim(), self.shape);
        assert_same_shape(
            "ReLU backward_into grad_input",
            grad_input.dim(),
            self.shape,
        );
        // dx = g where x > 0, else 0
        let mut mask = self.mask.iter();
        Zip::from(&mut grad_input)
            .and(&grad_output)
            .for_each(|dx, &g| {
                *dx = if *mask.next().expect("mask covers the batch") {
                    g
                } else {
                    F::zero()
                };
            });
    }
}
