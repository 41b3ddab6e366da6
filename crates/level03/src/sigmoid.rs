//! Sigmoid: y = 1 / (1 + e^-x), in place, and its derivative beside it.

use backprop_core::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::parallel::{for_each, for_each_pair};

/// `z <- 1 / (1 + e^-z)` in place.
pub(crate) fn sigmoid_inplace<F: Float>(values: ArrayViewMut2<'_, F>) {
    for_each(values, |z| *z = F::one() / (F::one() + (-*z).exp()));
}

/// `g <- g y (1 - y)` in place, from the sigmoid output y.
pub(crate) fn sigmoid_backward_inplace<F: Float>(
    grad: ArrayViewMut2<'_, F>,
    output: ArrayView2<'_, F>,
) {
    for_each_pair(grad, output, |g, &y| *g *= y * (F::one() - y));
}
