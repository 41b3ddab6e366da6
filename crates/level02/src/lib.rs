//! # level02: the backward pass, vectorised with ndarray
//!
//! The same math as level01, written as whole-array operations: `dot` for the matrix products,
//! broadcasting for the bias, `sum_axis` for the batch sums, `mapv` for elementwise functions.
//! No per-element loops in the hot paths. Each layer sits in its own file with its derivative
//! beside its forward:
//!
//! | file                        | forward                     | backward                                  |
//! |-----------------------------|-----------------------------|-------------------------------------------|
//! | `linear.rs`                 | `y = x.dot(W) + b`          | `dW += x^T.dot(g)`, `db += g.sum_axis(0)`, `dx = g.dot(W^T)` |
//! | `relu.rs`                   | `y = max(0, x)`             | `dx = g * (x > 0)`                        |
//! | `sigmoid.rs`                | `y = 1 / (1 + e^-x)`        | `dx = g * y (1 - y)`                      |
//! | `tanh.rs`                   | `y = tanh x`                | `dx = g * (1 - y^2)`                      |
//! | `softmax_cross_entropy.rs`  | `L = mean(lse(z) - z[t])`   | `dz = (softmax(z) - onehot(t)) / N`       |
//! | `mse.rs`                    | `L = mean((p - t)^2)`       | `dp = 2 (p - t) / (N M)`                  |
//! | `batch_norm.rs`             | `y = gamma x̂ + beta`, x̂ over the batch | `dx = (N dx̂ - Σ dx̂ - x̂ Σ dx̂ x̂) / (N σ)` |
//! | `layer_norm.rs`             | `y = gamma x̂ + beta`, x̂ over the row   | the same, the sums over the row      |
//! | `dropout.rs`                | `y = x m / (1 - p)`         | `dx = g m / (1 - p)`, the same mask       |
//! | `conv2d.rs`                 | `y = im2col(x).dot(W) + b`  | `dW += cols^T.dot(g)`, `dx = col2im(g.dot(W^T))` |
//! | `max_pool.rs`               | each window's max, by strided views | `dx[winner] += g`                 |
//!
//! The model is [`backprop_core::Sequential`] over these layers.
//!
//! ```
//! use backprop_core::optim::Sgd;
//! use backprop_core::{Level, Model, MlpSpec, Targets};
//! use level02::Level02;
//!
//! let mut model = <Level02 as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[4, 3, 2], 1));
//! let x = ndarray::Array2::<f32>::ones((5, 4));
//! let loss = model.train_step(x.view(), Targets::Classes(&[0, 1, 0, 1, 1]), &mut Sgd::new(0.1));
//! assert!(loss.is_finite());
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

/// The level-2 marker: names this crate's types for the harness, the CLI and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Level02;

impl<F: Float> Level<F> for Level02 {
    const NAME: &'static str = "level02";

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
    type Network = Sequential<F, Level02>;

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
