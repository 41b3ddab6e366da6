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
//! ## Training a tiny MLP
//!
//! Build a network from an [`MlpSpec`](backprop_core::MlpSpec) (sizes, activation, loss, init,
//! seed), then repeat `zero_grad -> forward -> loss -> backward -> optimizer step`:
//!
//! ```
//! use backprop_core::optim::{Optimizer, Sgd};
//! use backprop_core::{Level, Model, MlpSpec, Targets};
//! use level02::Level02;
//! use ndarray::array;
//!
//! // Four points in 2-D, two classes: the sign of x0 * x1 (XOR).
//! let inputs = array![[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]];
//! let classes = [0, 1, 1, 0];
//!
//! // [2, 8, 2]: Linear(2, 8), ReLU, Linear(8, 2), softmax cross-entropy.
//! let mut model = <Level02 as Level<f64>>::mlp_from_spec(&MlpSpec::classifier(&[2, 8, 2], 7));
//!
//! let mut sgd = Sgd::new(0.5);
//! let mut first_loss = None;
//! for _step in 0..200 {
//!     model.zero_grad();                         // gradients accumulate: clear them first
//!     model.forward(inputs.view());              // logits (4, 2); caches each layer's input
//!     let loss = model.loss(Targets::Classes(&classes));
//!     model.backward();                          // dL/dW and dL/db for every layer
//!     sgd.step(&mut model);                      // W <- W - 0.5 dL/dW
//!     first_loss.get_or_insert(loss);
//! }
//! model.forward(inputs.view());
//! let last_loss = model.loss(Targets::Classes(&classes));
//! assert!(last_loss < 0.1 * first_loss.unwrap(), "{first_loss:?} -> {last_loss}");
//! ```
//!
//! ## Optimizers and parameters
//!
//! `train_step` is that loop's body; any of core's optimizers steps the model, and
//! `visit_linears` hands out every weight layer in order:
//!
//! ```
//! use backprop_core::optim::{Adam, Sgd};
//! use backprop_core::{Level, Model, MlpSpec, Targets};
//! use level02::Level02;
//! use ndarray::array;
//!
//! let mut model = <Level02 as Level<f64>>::mlp_from_spec(&MlpSpec::classifier(&[2, 4, 2], 0));
//! let inputs = array![[0.5, -1.0], [1.5, 2.0]];
//! let mut sgd = Sgd::new(0.1).with_momentum(0.9).with_nesterov();
//! model.train_step(inputs.view(), Targets::Classes(&[0, 1]), &mut sgd);
//! let mut adam = Adam::new(1e-3);
//! let loss = model.train_step(inputs.view(), Targets::Classes(&[0, 1]), &mut adam);
//! assert!(loss.is_finite());
//!
//! let mut shapes = Vec::new();
//! model.visit_linears(|index, layer| shapes.push((index, layer.weight.dim())));
//! assert_eq!(shapes, [(0, (2, 4)), (1, (4, 2))]);
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
