//! `LayerNorm`: each row normalized over its features, then scaled and shifted.

use backprop_core::norm::NORM_EPS;
use backprop_core::{Float, Layer, NormLayer, NormMut};
use ndarray::{Array1, Array2, ArrayView2};

/// Layer normalization, as PyTorch's `LayerNorm`: per row over its features, `x̂ = (x - mean) /
/// sqrt(var + eps)` (biased variance), `y = gamma x̂ + beta` with gamma and beta per feature. The
/// same in training and evaluation.
#[derive(Debug, Clone)]
pub struct LayerNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    grad_gamma: Array1<F>,
    grad_beta: Array1<F>,
    /// What backward needs from forward: add the fields you choose.
    normalized: Option<Array2<F>>,
}

impl<F: Float> LayerNorm<F> {
    /// Over rows of `features` features: gamma 1, beta 0.
    pub fn new(features: usize) -> Self {
        LayerNorm {
            gamma: Array1::ones(features),
            beta: Array1::zeros(features),
            grad_gamma: Array1::zeros(features),
            grad_beta: Array1::zeros(features),
            normalized: None,
        }
    }
}

impl<F: Float> Layer<F> for LayerNorm<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: each row's mean and biased variance over its features, x̂, y = gamma x̂ + beta;
        // keep what backward needs. Hint: hints/hint-4-normalization.md
        let _ = (input, NORM_EPS, &self.normalized);
        todo!("LayerNorm::forward: normalize each row over its features (hints/hint-4-normalization.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: ADD dL/dgamma and dL/dbeta (summed over the rows) and return dL/dx: batch norm's
        // three paths, over a row instead of a column. Hint: hints/hint-4-normalization.md
        let _ = grad_output;
        todo!("LayerNorm::backward: through x̂, the row's mean and variance (hints/hint-4-normalization.md)")
    }
}

/// Plumbing, done for you.
impl<F: Float> NormLayer<F> for LayerNorm<F> {
    fn params_mut(&mut self) -> NormMut<'_, F> {
        NormMut {
            gamma: self.gamma.view_mut(),
            beta: self.beta.view_mut(),
            grad_gamma: self.grad_gamma.view_mut(),
            grad_beta: self.grad_beta.view_mut(),
            running: None,
        }
    }
}
