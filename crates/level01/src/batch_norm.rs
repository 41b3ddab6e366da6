//! `BatchNorm`: each feature normalized over the batch, in loops, with the backward derived.

use backprop_core::norm::{BATCH_NORM_MOMENTUM, NORM_EPS};
use backprop_core::{Float, Layer, NormLayer, NormMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2};

/// Batch normalization, as PyTorch's `BatchNorm1d` (eps 1e-5, momentum 0.1).
///
/// For one feature (one column) with values x_1..x_N over the batch, in training:
///
/// ```text
/// mu  = (1/N) Σ_i x_i
/// var = (1/N) Σ_i (x_i - mu)^2            (biased: what normalizes this batch)
/// s   = 1 / sqrt(var + eps)
/// x̂_i = (x_i - mu) s
/// y_i = gamma x̂_i + beta
/// ```
///
/// and the running statistics move 10% of the way to mu and to var N / (N - 1) (unbiased).
/// Evaluation uses the running mean and variance in place of mu and var, and updates nothing.
#[derive(Debug, Clone)]
pub struct BatchNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    grad_gamma: Array1<F>,
    grad_beta: Array1<F>,
    running_mean: Array1<F>,
    running_var: Array1<F>,
    training: bool,
    /// From the last forward: x̂ `(batch, features)`, s per feature, and whether mu and var
    /// were the batch's own (training) or the running ones (constants).
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
        let (batch, features) = input.dim();
        assert_same_shape("BatchNorm input", input.dim(), (batch, self.gamma.len()));
        assert!(
            !self.training || batch > 1,
            "BatchNorm in training needs more than one row per batch (got {batch}): one row has \
             no variance, as PyTorch says too; use evaluation mode or a larger batch"
        );
        let rows = F::of(batch as f64);
        let mut normalized = Array2::zeros((batch, features));
        let mut inv_std = Array1::zeros(features);
        let mut output = Array2::zeros((batch, features));
        for col in 0..features {
            let (mean, var) = if self.training {
                let mut sum = F::zero();
                for row in 0..batch {
                    sum += input[[row, col]];
                }
                let mean = sum / rows;
                let mut squares = F::zero();
                for row in 0..batch {
                    let centered = input[[row, col]] - mean;
                    squares += centered * centered;
                }
                let var = squares / rows;
                // Running statistics: 10% of the way to this batch's, the variance unbiased.
                let (momentum, keep) =
                    (F::of(BATCH_NORM_MOMENTUM), F::of(1.0 - BATCH_NORM_MOMENTUM));
                let unbiased = var * (rows / (rows - F::one()));
                let (old_mean, old_var) = (self.running_mean[col], self.running_var[col]);
                self.running_mean[col] = old_mean * keep + mean * momentum;
                self.running_var[col] = old_var * keep + unbiased * momentum;
                (mean, var)
            } else {
                (self.running_mean[col], self.running_var[col])
            };
            let s = F::one() / (var + F::of(NORM_EPS)).sqrt();
            inv_std[col] = s;
            for row in 0..batch {
                let x_hat = (input[[row, col]] - mean) * s;
                normalized[[row, col]] = x_hat;
                output[[row, col]] = self.gamma[col] * x_hat + self.beta[col];
            }
        }
        self.cache = Some((normalized, inv_std, self.training));
        output
    }

    /// For one feature, with g_i = dL/dy_i:
    ///
    /// ```text
    /// dL/dbeta  = Σ_i g_i                      (beta is added to every y_i)
    /// dL/dgamma = Σ_i g_i x̂_i                  (gamma multiplies every x̂_i)
    /// dL/dx̂_i   = g_i gamma =: d_i
    /// ```
    ///
    /// Every x_j moved x̂_i of every row i: directly (i = j), through mu, and through var. With
    /// d mu / d x_j = 1/N, d var / d x_j = (2/N)(x_j - mu) and d s / d var = -s^3 / 2:
    ///
    /// ```text
    /// dL/dvar = Σ_i d_i (x_i - mu) (-s^3 / 2) = -(s^2 / 2) Σ_i d_i x̂_i
    /// dL/dmu  = -s Σ_i d_i          (var's own path through mu is 0: Σ_i (x_i - mu) = 0)
    /// dL/dx_j = d_j s + dL/dmu / N + dL/dvar (2/N)(x_j - mu)
    ///         = (s / N) (N d_j - Σ_i d_i - x̂_j Σ_i d_i x̂_i)
    /// ```
    ///
    /// In evaluation mu and var are constants: dL/dx_j = d_j s.
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
        let (batch, features) = normalized.dim();
        let rows = F::of(batch as f64);
        let mut grad_input = Array2::zeros((batch, features));
        for col in 0..features {
            // The sums over the batch: Σ g, Σ g x̂ (and Σ d, Σ d x̂ are gamma times them).
            let (mut sum, mut sum_with_normalized) = (F::zero(), F::zero());
            for row in 0..batch {
                sum += grad_output[[row, col]];
                sum_with_normalized += grad_output[[row, col]] * normalized[[row, col]];
            }
            self.grad_beta[col] += sum;
            self.grad_gamma[col] += sum_with_normalized;
            let (gamma, s) = (self.gamma[col], inv_std[col]);
            for row in 0..batch {
                let d = grad_output[[row, col]] * gamma;
                grad_input[[row, col]] = if *batch_statistics {
                    let x_hat = normalized[[row, col]];
                    s / rows * (rows * d - gamma * sum - x_hat * gamma * sum_with_normalized)
                } else {
                    d * s
                };
            }
        }
        grad_input
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
