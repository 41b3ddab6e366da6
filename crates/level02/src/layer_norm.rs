//! `LayerNorm`: each row normalized over its features, then scaled and shifted.

use backprop_core::norm::NORM_EPS;
use backprop_core::{Float, Layer, NormLayer, NormMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Layer normalization, as PyTorch's `LayerNorm` over the last axis (eps 1e-5).
///
/// Per row over its M features: `x̂ = (x - mean) / sqrt(var + eps)` (biased variance),
/// `y = gamma x̂ + beta`; the same in training and evaluation.
///
/// Backward is batch norm's with rows and columns swapped: each x of a row moved that row's mean
/// and variance, so `dx = (1 / (M sqrt(var + eps))) (M dx̂ - Σ dx̂ - x̂ Σ (dx̂ x̂))` with
/// `dx̂ = g gamma`, the sums over the row's features; `dgamma += Σ_rows g x̂`,
/// `dbeta += Σ_rows g`.
#[derive(Debug, Clone)]
pub struct LayerNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    grad_gamma: Array1<F>,
    grad_beta: Array1<F>,
    /// From the last forward: x̂ `(batch, features)` and 1 / sqrt(var + eps) `(batch, 1)`.
    cache: Option<(Array2<F>, Array2<F>)>,
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
        let features = self.gamma.len();
        assert_same_shape("LayerNorm input", input.dim(), (input.nrows(), features));
        let width = F::of(features as f64);
        let mean = input.sum_axis(Axis(1)).insert_axis(Axis(1)) / width;
        let centered = &input - &mean;
        let var = centered
            .mapv(|d| d * d)
            .sum_axis(Axis(1))
            .insert_axis(Axis(1))
            / width;
        let inv_std = var.mapv(|v| F::one() / (v + F::of(NORM_EPS)).sqrt());
        let normalized = centered * &inv_std;
        let output = &normalized * &self.gamma + &self.beta;
        self.cache = Some((normalized, inv_std));
        output
    }

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
        self.grad_gamma += &(&grad_output * normalized).sum_axis(Axis(0));
        self.grad_beta += &grad_output.sum_axis(Axis(0));
        // Through x̂ directly, through the row's mean and through its variance.
        let grad_normalized = &grad_output * &self.gamma;
        let width = F::of(normalized.ncols() as f64);
        let sum = grad_normalized.sum_axis(Axis(1)).insert_axis(Axis(1));
        let sum_with_normalized = (&grad_normalized * normalized)
            .sum_axis(Axis(1))
            .insert_axis(Axis(1));
        (grad_normalized * width - &sum - normalized * &sum_with_normalized) * &(inv_std / width)
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
