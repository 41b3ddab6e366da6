//! ReLU: y = max(0, x), in place, and its derivative beside it.

use backprop_core::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::parallel::for_each_pair;

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
