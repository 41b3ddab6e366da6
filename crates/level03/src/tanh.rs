//! Tanh: y = tanh x, in place, and its derivative beside it.

use backprop_core::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::parallel::{for_each, for_each_pair};

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
