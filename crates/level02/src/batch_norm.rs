//! `BatchNorm`: each feature normalized over the batch, then scaled and shifted.

use backprop_core::norm::{BATCH_NORM_MOMENTUM, NORM_EPS};
use backprop_core::{Float, Layer, NormLayer, NormMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Batch normalization, as PyTorch's `BatchNorm1d` (eps 1e-5, momentum 0.1).
///
/// Training, per feature over the N rows: `x̂ = (x - mean) / sqrt(var + eps)` with the batch's
/// mean and biased variance, `y = gamma x̂ + beta`, and the running statistics move 10% of the way
/// to the batch's (the unbiased variance). Evaluation normalizes with the running statistics.
///
/// Backward in training: every x of a feature moved that feature's mean and variance, so
/// `dx = (1 / (N sqrt(var + eps))) (N dx̂ - Σ dx̂ - x̂ Σ (dx̂ x̂))` with `dx̂ = g gamma`, the sums
/// over the rows; `dgamma += Σ g x̂`, `dbeta += Σ g`.
#[derive(Debug, Clone)]
pub struct BatchNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    grad_gamma: Array1<F>,
    grad_beta: Array1<F>,
    running_mean: Array1<F>,
    running_var: Array1<F>,
    training: bool,
    /// From the last forward: x̂ `(batch, features)`, 1 / sqrt(var + eps) per feature, and
    /// whether those were the batch's own statistics (training) or the running ones.
    cache: Option<(Array2<F>, Array1<F>, bool)>,
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
            cache: None,
        }
    }
}

impl<F: Float> Layer<F> for BatchNorm<F> {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let features = self.gamma.len();
        assert_same_shape("BatchNorm input", input.dim(), (input.nrows(), features));
        let (mean, var) = if self.training {
            let batch = input.nrows();
            assert!(
                batch > 1,
                "BatchNorm in training needs more than one row per batch (got {batch}): one row \
                 has no variance, as PyTorch says too; use evaluation mode or a larger batch"
            );
            let rows = F::of(batch as f64);
            let mean = input.sum_axis(Axis(0)) / rows;
            let var = (&input - &mean).mapv(|d| d * d).sum_axis(Axis(0)) / rows;
            // Running statistics: 10% of the way to this batch's, the variance unbiased.
            let (momentum, keep) = (F::of(BATCH_NORM_MOMENTUM), F::of(1.0 - BATCH_NORM_MOMENTUM));
            let unbiased = &var * (rows / (rows - F::one()));
            self.running_mean = &self.running_mean * keep + &mean * momentum;
            self.running_var = &self.running_var * keep + unbiased * momentum;
            (mean, var)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        };
        let inv_std = var.mapv(|v| F::one() / (v + F::of(NORM_EPS)).sqrt());
        let normalized = (&input - &mean) * &inv_std;
        let output = &normalized * &self.gamma + &self.beta;
        self.cache = Some((normalized, inv_std, self.training));
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let (normalized, inv_std, batch_statistics) = self
            .cache
            .as_ref()
            .expect("BatchNorm backward called before forward");
        assert_same_shape(
            "BatchNorm backward grad_output",
            grad_output.dim(),
            normalized.dim(),
        );
        self.grad_gamma += &(&grad_output * normalized).sum_axis(Axis(0));
        self.grad_beta += &grad_output.sum_axis(Axis(0));
        let grad_normalized = &grad_output * &self.gamma;
        if !batch_statistics {
            // The running statistics are constants: only the direct path.
            return grad_normalized * inv_std;
        }
        // Through x̂ directly, through the mean and through the variance.
        let rows = F::of(normalized.nrows() as f64);
        let sum = grad_normalized.sum_axis(Axis(0));
        let sum_with_normalized = (&grad_normalized * normalized).sum_axis(Axis(0));
        (grad_normalized * rows - &sum - normalized * &sum_with_normalized) * &(inv_std / rows)
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

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
