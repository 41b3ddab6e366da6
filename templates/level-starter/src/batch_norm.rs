//! `BatchNorm`: each feature normalized over the batch, then scaled and shifted.

use backprop_core::norm::{BATCH_NORM_MOMENTUM, NORM_EPS};
use backprop_core::{Float, Layer, NormLayer, NormMut};
use ndarray::{Array1, Array2, ArrayView2};

/// Batch normalization, as PyTorch's `BatchNorm1d`: per feature over the rows of the batch,
/// `x̂ = (x - mean) / sqrt(var + eps)` (biased variance, eps = [`NORM_EPS`]), `y = gamma x̂ +
/// beta`. In training the running mean and variance move [`BATCH_NORM_MOMENTUM`] of the way to
/// the batch's (the variance unbiased: times N / (N - 1)); in evaluation they replace the
/// batch's statistics.
#[derive(Debug, Clone)]
pub struct BatchNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    grad_gamma: Array1<F>,
    grad_beta: Array1<F>,
    running_mean: Array1<F>,
    running_var: Array1<F>,
    training: bool,
    /// What backward needs from forward: add the fields you choose (x̂? 1 / sqrt(var + eps)?).
    normalized: Option<Array2<F>>,
}

impl<F: Float> BatchNorm<F> {
    /// Over `features` features: gamma 1, beta 0, running mean 0 and variance 1.
    pub fn new(features: usize) -> Self {
        BatchNorm {
            gamma: Array1::ones(features),
            beta: Array1::zeros(features),
            grad_gamma: Array1::zeros(features),
            grad_beta: Array1::zeros(features),
            running_mean: Array1::zeros(features),
            running_var: Array1::ones(features),
            training: true,
            normalized: None,
        }
    }
}

impl<F: Float> Layer<F> for BatchNorm<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: in training, each column's mean and biased variance over the rows (panic for a
        // batch of one row, with a message that says why in your words: the check accepts any
        // that names the row, the batch or the variance), x̂, y = gamma x̂ + beta, and
        // the running statistics; in evaluation, x̂ from the running ones. Keep what backward
        // needs. Hint: hints/hint-4-normalization.md
        let _ = (input, BATCH_NORM_MOMENTUM, NORM_EPS, &self.normalized);
        todo!("BatchNorm::forward: normalize each feature over the batch (hints/hint-4-normalization.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: ADD dL/dgamma and dL/dbeta (one number per feature) to the gradients, and return
        // dL/dx, shaped like x. Every x of a column moved that column's mean and variance: the
        // chain rule has three paths. Hint: hints/hint-4-normalization.md
        let _ = grad_output;
        todo!("BatchNorm::backward: through x̂, the mean and the variance (hints/hint-4-normalization.md)")
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Plumbing, done for you: the optimizers and checks reach gamma, beta and the running
/// statistics through these views.
impl<F: Float> NormLayer<F> for BatchNorm<F> {
    fn params_mut(&mut self) -> NormMut<'_, F> {
        NormMut {
            gamma: self.gamma.view_mut(),
            beta: self.beta.view_mut(),
            grad_gamma: self.grad_gamma.view_mut(),
            grad_beta: self.grad_beta.view_mut(),
            running: Some((self.running_mean.view_mut(), self.running_var.view_mut())),
        }
    }
}
