//! # level01: the backward pass in explicit loops
//!
//! The code a learner reads in one sitting. Every product and sum is a plain `for` loop over
//! rows, columns and the inner dimension, with the formula beside it; ndarray is used only to
//! store numbers and index them (`x[[row, col]]`). Each layer sits in its own file with its
//! derivative right under its forward:
//!
//! - `linear.rs`: y = x W + b, and dW = x^T g, db = Σ_rows g, dx = g W^T;
//! - `relu.rs`, `sigmoid.rs`, `tanh.rs`: elementwise, dx = g * f'(x);
//! - `softmax_cross_entropy.rs`: the stable log-softmax and the fused (p - onehot) / N;
//! - `mse.rs`: mean((p - t)^2) and 2 (p - t) / (N M);
//! - `batch_norm.rs`, `layer_norm.rs`: normalization over the batch or the row, the backward
//!   through the mean and the variance derived step by step in the comments;
//! - `dropout.rs`: the mask drawn in forward and reused in backward;
//! - `conv2d.rs`: the six nested loops of a convolution, dW as a correlation of the input with
//!   the upstream gradient and dx as a full convolution with the flipped kernel, derived in the
//!   comments; `max_pool.rs`: each window's maximum, and its gradient sent back to it.
//!
//! The model is [`backprop_core::Sequential`] over these layers. Read level02 next to see the
//! same math as whole-array operations.
//!
//! ```
//! use backprop_core::optim::Sgd;
//! use backprop_core::{Level, Model, MlpSpec, Targets};
//! use level01::Level01;
//!
//! let mut model = <Level01 as Level<f64>>::mlp_from_spec(&MlpSpec::classifier(&[3, 4, 2], 5));
//! let x = ndarray::array![[0.5, -1.0, 2.0]];
//! let before = model.train_step(x.view(), Targets::Classes(&[1]), &mut Sgd::new(0.1));
//! model.forward(x.view());
//! assert!(model.loss(Targets::Classes(&[1])) < before);
//! ```
#![warn(missing_docs)]

mod batch_norm;
mod conv2d;
mod dropout;
mod layer_norm;
mod linear;
mod max_pool;
mod mse;
mod relu;
mod sigmoid;
mod softmax_cross_entropy;
mod tanh;

pub use batch_norm::BatchNorm;
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use max_pool::MaxPool2d;
pub use mse::Mse;
pub use relu::Relu;
pub use sigmoid::Sigmoid;
pub use softmax_cross_entropy::SoftmaxCrossEntropy;
pub use tanh::Tanh;

use backprop_core::{
    Conv2dGeometry, Float, Level, LinearParams, NetSpec, Pool2dGeometry, Sequential,
};
use ndarray::{Array1, Array2};

/// The level-1 marker: names this crate's types for the harness, the CLI and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Level01;

impl<F: Float> Level<F> for Level01 {
    const NAME: &'static str = "level01";

    type Linear = Linear<F>;
    type Relu = Relu<F>;
    type Sigmoid = Sigmoid<F>;
    type Tanh = Tanh<F>;
    type SoftmaxCrossEntropy = SoftmaxCrossEntropy<F>;
    type Mse = Mse<F>;
    type BatchNorm = BatchNorm<F>;
    type LayerNorm = LayerNorm<F>;
    type Dropout = Dropout<F>;
    type Conv2d = Conv2d<F>;
    type MaxPool2d = MaxPool2d;
    type Network = Sequential<F, Level01>;

    fn linear(weight: Array2<F>, bias: Array1<F>) -> Linear<F> {
        Linear::new(weight, bias)
    }
    fn relu() -> Relu<F> {
        Relu::default()
    }
    fn sigmoid() -> Sigmoid<F> {
        Sigmoid::default()
    }
    fn tanh() -> Tanh<F> {
        Tanh::default()
    }
    fn softmax_cross_entropy() -> SoftmaxCrossEntropy<F> {
        SoftmaxCrossEntropy::default()
    }
    fn mse() -> Mse<F> {
        Mse::default()
    }
    fn batch_norm(features: usize) -> BatchNorm<F> {
        BatchNorm::new(features)
    }
    fn layer_norm(features: usize) -> LayerNorm<F> {
        LayerNorm::new(features)
    }
    fn dropout(p: f64, seed: u64) -> Dropout<F> {
        Dropout::new(p, seed)
    }
    fn conv2d(weight: Array2<F>, bias: Array1<F>, geometry: Conv2dGeometry) -> Conv2d<F> {
        Conv2d::new(weight, bias, geometry)
    }
    fn max_pool2d(geometry: Pool2dGeometry) -> MaxPool2d {
        MaxPool2d::new(geometry)
    }
    fn network(params: LinearParams<F>, spec: &NetSpec) -> Self::Network {
        Sequential::new(params, spec)
    }
}
