//! The contracts of the layers that normalize and drop: batch norm, layer norm and dropout, and
//! the conventions every level shares for them (PyTorch's).
//!
//! | PyTorch                                   | backprop                                    |
//! |-------------------------------------------|---------------------------------------------|
//! | `nn.BatchNorm1d(n)` (eps 1e-5, momentum 0.1) | [`Level::batch_norm`] |
//! | `nn.LayerNorm(n)` (eps 1e-5)              | [`Level::layer_norm`] |
//! | `nn.Dropout(p)`                           | [`Level::dropout`]   |
//! | `bn.weight`, `bn.bias`                    | [`NormMut::gamma`], [`NormMut::beta`]       |
//! | `bn.running_mean`, `bn.running_var`       | [`NormMut::running`]                        |
//! | `model.train()`, `model.eval()`           | [`Layer::set_training`], [`Model::set_training`] |
//!
//! **Batch norm**, per feature j over the N rows of the batch, in training:
//! mu = mean_i x_ij, var = mean_i (x_ij - mu)^2 (biased), x̂ = (x - mu) / sqrt(var + eps),
//! y = gamma x̂ + beta; then running_mean <- (1 - m) running_mean + m mu and running_var <-
//! (1 - m) running_var + m var N / (N - 1) (unbiased), m = 0.1. In evaluation it normalizes with
//! the running statistics instead and updates nothing. A training batch of one row has no
//! variance: the layer panics, as PyTorch raises.
//!
//! **Layer norm**: the same over the features of each row (its own mean and biased variance),
//! no running statistics, identical in training and evaluation.
//!
//! **Dropout(p)**, inverted: in training y = x m / (1 - p) with m_ij = 1 kept, 0 dropped; in
//! evaluation y = x. The mask is drawn by [`draw_keep_mask`] from the layer's own seeded
//! generator, one uniform per entry in row-major order (kept when u >= p), so every level draws
//! the same masks from the same seed; [`DropoutLayer::fix_mask`] replaces it (finite
//! differences, PyTorch's fixtures).

use ndarray::{Array2, ArrayViewMut1, Axis};
use rand::RngExt;

use crate::Float;
use crate::init::SeededRng;
use crate::layer::{Layer, LinearMut};
#[cfg(doc)]
use crate::{Level, Model};

/// PyTorch's eps for both normalizations.
pub const NORM_EPS: f64 = 1e-5;
/// PyTorch's momentum for batch norm's running statistics.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// A normalization layer's parameters and their gradients, as views.
#[derive(Debug)]
pub struct NormMut<'a, F> {
    /// gamma `(features,)`, the scale (PyTorch's `weight`, initially 1).
    pub gamma: ArrayViewMut1<'a, F>,
    /// beta `(features,)`, the shift (PyTorch's `bias`, initially 0).
    pub beta: ArrayViewMut1<'a, F>,
    /// dL/dgamma, accumulated until `zero_grad`.
    pub grad_gamma: ArrayViewMut1<'a, F>,
    /// dL/dbeta, accumulated until `zero_grad`.
    pub grad_beta: ArrayViewMut1<'a, F>,
    /// Batch norm's running mean and unbiased running variance (initially 0 and 1); `None`
    /// for layer norm.
    pub running: Option<(ArrayViewMut1<'a, F>, ArrayViewMut1<'a, F>)>,
}

impl<'a, F> NormMut<'a, F> {
    /// gamma and beta as a one-row weight `(1, features)` and a bias, the shape optimizers and
    /// checkpoints handle (PyTorch names them `weight` and `bias` too).
    pub fn into_linear(self) -> LinearMut<'a, F> {
        LinearMut {
            weight: self.gamma.insert_axis(Axis(0)),
            bias: self.beta,
            grad_weight: self.grad_gamma.insert_axis(Axis(0)),
            grad_bias: self.grad_beta,
        }
    }
}

/// Batch norm or layer norm: a layer with gamma and beta.
pub trait NormLayer<F: Float>: Layer<F> {
    /// Views of gamma, beta, their gradients and (batch norm) the running statistics.
    fn params_mut(&mut self) -> NormMut<'_, F>;

    /// Sets dL/dgamma and dL/dbeta to zero.
    fn zero_grad(&mut self) {
        let params = self.params_mut();
        let (mut grad_gamma, mut grad_beta) = (params.grad_gamma, params.grad_beta);
        grad_gamma.fill(F::zero());
        grad_beta.fill(F::zero());
    }
}

/// Dropout: a layer whose training forward draws a mask that its backward must reuse.
pub trait DropoutLayer<F: Float>: Layer<F> {
    /// With `Some(keep)`, every training forward from now on uses `keep` (true: kept) as its
    /// mask instead of drawing one; `None` goes back to drawing.
    ///
    /// # Panics
    /// A later forward panics if the input's shape is not the mask's.
    fn fix_mask(&mut self, keep: Option<Array2<bool>>);
}

/// Draws a dropout mask of `shape` from `rng`: one uniform u in [0, 1) per entry, row-major,
/// kept when u >= p.
pub fn draw_keep_mask(rng: &mut SeededRng, p: f64, shape: (usize, usize)) -> Array2<bool> {
    Array2::from_shape_simple_fn(shape, || rng.random::<f64>() >= p)
}

/// One entry of [`draw_keep_mask`], for levels that fill their own buffer in row-major order.
pub fn draw_keep(rng: &mut SeededRng, p: f64) -> bool {
    rng.random::<f64>() >= p
}

/// The normalization after each hidden `Linear` of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Norm {
    /// No normalization.
    #[default]
    None,
    /// Batch norm over each feature.
    Batch,
    /// Layer norm over each row.
    Layer,
}

impl Norm {
    /// Every choice, in `--help` order.
    pub const ALL: [Norm; 3] = [Norm::None, Norm::Batch, Norm::Layer];

    /// `none`, `batch` or `layer`.
    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::Batch => "batch",
            Norm::Layer => "layer",
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Norm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Norm::ALL
            .into_iter()
            .find(|norm| norm.name() == text)
            .ok_or_else(|| format!("unknown normalization {text:?}: expected none, batch or layer"))
    }
}
