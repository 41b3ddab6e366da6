//! `LayerNorm`: each row normalized over its features, in loops.

use backprop_core::norm::NORM_EPS;
use backprop_core::{Float, Layer, NormLayer, NormMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2};

/// Layer normalization, as PyTorch's `LayerNorm` over the last axis (eps 1e-5).
///
/// For one row with features x_1..x_M:
///
/// ```text
/// mu  = (1/M) Σ_j x_j,  var = (1/M) Σ_j (x_j - mu)^2,  s = 1 / sqrt(var + eps)
/// x̂_j = (x_j - mu) s,   y_j = gamma_j x̂_j + beta_j
/// ```
///
/// The same in training and evaluation: each row only ever sees itself.
#[derive(Debug, Clone)]
pub struct LayerNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    grad_gamma: Array1<F>,
    grad_beta: Array1<F>,
    /// From the last forward: x̂ `(batch, features)` and s per row.
    cache: Option<(Array2<F>, Array1<F>)>,
}

impl<F: Float> LayerNorm<F> {
    /// Over rows of `features` features: gamma 1, beta 0.
    pub fn new(features: usize) -> Self {
        LayerNorm {
            gamma: Array1::ones(features),
            beta: Array1::zeros(features),
            grad_gamma: Array1::zeros(features),
            grad_beta: Array1::zeros(features),
            cache: None,
        }
    }
}

impl<F: Float> Layer<F> for LayerNorm<F> {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let (batch, features) = input.dim();
        assert_same_shape("LayerNorm input", input.dim(), (batch, self.gamma.len()));
        let width = F::of(features as f64);
        let mut normalized = Array2::zeros((batch, features));
        let mut inv_std = Array1::zeros(batch);
        let mut output = Array2::zeros((batch, features));
        for row in 0..batch {
            let mut sum = F::zero();
            for col in 0..features {
                sum += input[[row, col]];
            }
            let mean = sum / width;
            let mut squares = F::zero();
            for col in 0..features {
                let centered = input[[row, col]] - mean;
                squares += centered * centered;
            }
            let s = F::one() / (squares / width + F::of(NORM_EPS)).sqrt();
            inv_std[row] = s;
            for col in 0..features {
                let x_hat = (input[[row, col]] - mean) * s;
                normalized[[row, col]] = x_hat;
                output[[row, col]] = self.gamma[col] * x_hat + self.beta[col];
            }
        }
        self.cache = Some((normalized, inv_std));
        output
    }

    /// Batch norm's derivation with rows and columns swapped: gamma and beta are per feature,
    /// so their gradients sum over the rows; mu and var are per row, so with d_j = g_j gamma_j
    /// the input gradient of a row is `(s / M) (M d_j - Σ_k d_k - x̂_j Σ_k d_k x̂_k)`, the sums
    /// over that row's features.
    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let (normalized, inv_std) = self
            .cache
            .as_ref()
            .expect("LayerNorm backward called before forward");
        assert_same_shape(
            "LayerNorm backward grad_output",
            grad_output.dim(),
            normalized.dim(),
        );
        let (batch, features) = normalized.dim();
        let width = F::of(features as f64);
        let mut grad_input = Array2::zeros((batch, features));
        for row in 0..batch {
            let (mut sum, mut sum_with_normalized) = (F::zero(), F::zero());
            for col in 0..features {
                let g = grad_output[[row, col]];
                self.grad_beta[col] += g;
                self.grad_gamma[col] += g * normalized[[row, col]];
                let d = g * self.gamma[col];
                sum += d;
                sum_with_normalized += d * normalized[[row, col]];
            }
            let s = inv_std[row];
            for col in 0..features {
                let d = grad_output[[row, col]] * self.gamma[col];
                let x_hat = normalized[[row, col]];
                grad_input[[row, col]] =
                    s / width * (width * d - sum - x_hat * sum_with_normalized);
            }
        }
        grad_input
    }
}

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
