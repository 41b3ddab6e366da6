//! # level-starter: your own backward pass
//!
//! Every layer and loss of the contract is here with its forward and backward left to write:
//! each `todo!()` says what to compute and which hint to read. Work through them in the order
//! of the gates:
//!
//! 1. `linear.rs`, `relu.rs`, `sigmoid.rs`, `tanh.rs`, `softmax_cross_entropy.rs`, `mse.rs`:
//!    gate 1 checks each one alone (`cargo test -p level-starter gate1`);
//! 2. nothing new: gate 2 chains your layers into an MLP (the model is
//!    [`backprop_core::Sequential`], which calls your layers in order and in reverse);
//! 3. gate 3 compares every gradient with central differences;
//! 4. gate 4 with PyTorch's autograd, in `f64` and `f32`;
//! 5. then `batch_norm.rs`, `layer_norm.rs`, `dropout.rs`: the normalization checks
//!    (`cargo test -p level-starter norm::`), after reading hints/hint-4-normalization.md;
//! 6. last, `conv2d.rs` and `max_pool.rs`: the convolution checks
//!    (`cargo test -p level-starter conv::`), after reading hints/hint-5-convolution.md. Until
//!    then every other check passes without them, and `check` names them as the next step.
//!
//! From the repository root, `cargo run --release -- check level-starter --watch` reruns the
//! gates each time you save a file here; `cargo run --release -- hint gate1` gives gate 1's hint
//! one tier at a time (the idea; with `--more` the shapes and a worked example; with `--more
//! --more` the formula).
//!
//! The plumbing below (the `Level` impl that names your types) is done for you.
//!
//! Once the gates pass, your level does everything the built-in ones do, with no edit outside
//! this crate:
//!
//! ```sh
//! cargo run -p level-starter --release --example backprop -- train            # MNIST, every flag
//! cargo run -p level-starter --release --example backprop -- eval --model runs/seed0-level-starter/model.npz
//! cargo run -p level-starter --release --example backprop -- diagnose --synthetic
//! cargo bench -p level-starter       # your step and epoch beside level02, level03, the floor
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

/// This level's marker: names its types for the harness, the CLI and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct MyLevel;

impl<F: Float> Level<F> for MyLevel {
    const NAME: &'static str = "level-starter";

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
    type Network = Sequential<F, MyLevel>;

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
