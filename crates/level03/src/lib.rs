//! # level03: the backward pass in place
//!
//! The level an engineer would ship: the same contract and the same harness as level01 and
//! level02, but a training step at a steady batch size allocates no buffer of its own, and the
//! time goes into the matrix products.
//!
//! - **Buffers once.** Every activation, gradient and cache lives in a buffer sized for the
//!   largest batch seen and reused (see [`Mlp`] for the list).
//! - **Products in place.** `C <- alpha A B + beta C` through matrixmultiply (ndarray's
//!   `general_mat_mul`) straight into those buffers; `x^T g` and `g W^T` read `x` and `W`
//!   through transposed strides, never copies.
//! - **Fused, in place.** The activation overwrites `x W + b`; ReLU's backward reads the sign of
//!   the output it already wrote and zeroes the incoming gradient in place; softmax
//!   cross-entropy writes `(softmax - onehot) / N` over the logits in the same pass as the loss.
//! - **No input gradient when training.** [`Model::train_step`] and
//!   [`Model::backward_params_only`] skip the first layer's `g W^T`; [`Model::backward`]
//!   computes it (the harness asks for it).
//! - **The update inside the backward pass.** [`Model::train_step`] runs forward, loss and
//!   backward straight from the caller's batch (no copy of it) and applies the optimizer's
//!   update as it goes ([`backprop_core::optim::FusedStep`]: SGD, momentum, Nesterov, Adam):
//!   layer i > 0 right after `g W_i^T` has read its old weights, a normalization layer right
//!   after its backward, and the first weight half by half inside its own gradient product, each
//!   half on the thread that computed it while it is still in that core's cache. The result is
//!   bit-identical to backward then `optimizer.step` (`tests/fused_update.rs`).
//! - **rayon where it pays.** The two big products of a step (the first layer's forward and its
//!   weight gradient) are cut into two halves along the same axis of the weight (by its rows,
//!   unless the layer is at least 4x wider than its input): the gradient by rows of dW, the
//!   forward by cutting its sum over the input features in two and adding the halves, so each
//!   thread reads the half of the weight it updated itself and that half stays in its core's
//!   cache; the first layer's update runs in the halves of its gradient product; other large
//!   elementwise passes run on rayon. Each output element is computed the same way whatever the
//!   number of threads (the forward's sum is cut on one thread too), so 1 and 2 threads give
//!   bit-identical weights (tested over 100 steps, and for every optimizer in
//!   `tests/fused_update.rs`).
//! - **No unsafe.** Splitting a product is `ArrayViewMut::split_at`; nothing needed more.
//! - **Any other network** ([`Network`]): a CNN or any list of layers that is not a plain MLP
//!   runs as `Sequential` over this level's layers, each computing into the model's reused
//!   buffers; [`Conv2d`] writes im2col for the whole batch into a buffer sized once, makes
//!   three products over the batch through matrixmultiply (forward, dW, and dx unless it is the
//!   network's first layer), and puts the samples on rayon for im2col, col2im and the layout
//!   changes; [`MaxPool2d`] keeps its winners in a reused index buffer. Allocation-bounded and
//!   bit-identical on 1 and 2 threads; 1.3-1.4x PyTorch's CNN step (README, "A CNN").
//!
//! ## Allocations
//!
//! matrixmultiply allocates one packing buffer per product (freed at its end). A training step
//! of [784, 256, 10] makes 6 products on one thread (forward: the first layer's in two halves of
//! its sum, and the second; backward: dW1, dL/dh, dW0), 7 on two, where dW0 is cut in halves
//! too: that is the whole count, whatever the batch size and the number of steps. The harness's `stress::allocations_per_training_step` counts it with a
//! counting global allocator.
//!
//! ## Memory
//!
//! Measured with the harness's counting allocator (`cargo run --release --features tools --example memory`),
//! MLP [784, 256, 10] in f32, one thread, one training step after two warm-up steps:
//!
//! | bytes                                   | level02                     | level03                  |
//! |-----------------------------------------|-----------------------------|--------------------------|
//! | per parameter (value + gradient)        | 8                           | 8                        |
//! | held between steps, per sample of batch | 5,283 (every layer's caches)| 2,088 (hidden output, its gradient, logits: 522 floats) |
//! | allocated during a step, batch 64 / 128 / 256 | 3.02 / 3.93 / 5.75 MB | 0.85 / 0.95 / 1.16 MB (matrixmultiply's packing buffers) |
//! | peak transient during a step, batch 64 / 128 / 256 | 1.13 / 1.40 / 1.93 MB | 0.33 / 0.33 / 0.33 MB |
//!
//! The 203,530 parameters and their gradients take 1.63 MB in both. level03's buffers grow only
//! when a larger batch arrives; its transient memory is matrixmultiply's packing, which does not
//! grow with the batch. level02 allocates fresh arrays for every activation, cache and gradient
//! of every step (50 allocations a step against level03's 5 to 7).
//!
//! ```
//! use backprop_core::optim::Sgd;
//! use backprop_core::{Level, Model, MlpSpec, Targets};
//! use level03::Level03;
//!
//! let mut model = <Level03 as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[4, 8, 3], 1));
//! let x = ndarray::Array2::<f32>::from_elem((6, 4), 0.5);
//! let classes = [0, 1, 2, 0, 1, 2];
//! let mut sgd = Sgd::new(0.1).with_momentum(0.9);
//! let first = model.train_step(x.view(), Targets::Classes(&classes), &mut sgd);
//! let second = model.train_step(x.view(), Targets::Classes(&classes), &mut sgd);
//! assert!(first.is_finite() && second.is_finite());
//! ```
#![warn(missing_docs)]

mod activation;
mod buffer;
mod conv2d;
mod dropout;
mod gemm;
mod linear;
mod max_pool;
mod mlp;
mod mse;
mod network;
mod norm;
mod parallel;
mod relu;
mod sigmoid;
mod softmax_cross_entropy;
mod tanh;

pub use activation::ActivationLayer;
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use linear::Linear;
pub use max_pool::MaxPool2d;
pub use mlp::Mlp;
pub use mse::Mse;
pub use network::Network;
pub use norm::NormalizationLayer;
pub use softmax_cross_entropy::SoftmaxCrossEntropy;

#[cfg(doc)]
use backprop_core::Model;
use backprop_core::{
    Activation, Conv2dGeometry, Float, Level, LinearParams, NetSpec, Norm, Pool2dGeometry,
};
use ndarray::{Array1, Array2};

/// The level-3 marker: names this crate's types for the harness, the CLI and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Level03;

impl<F: Float> Level<F> for Level03 {
    const NAME: &'static str = "level03";
    const ALLOCATION_BOUNDED: bool = true;

    type Linear = Linear<F>;
    type Relu = ActivationLayer<F>;
    type Sigmoid = ActivationLayer<F>;
    type Tanh = ActivationLayer<F>;
    type SoftmaxCrossEntropy = SoftmaxCrossEntropy<F>;
    type Mse = Mse<F>;
    type BatchNorm = NormalizationLayer<F>;
    type LayerNorm = NormalizationLayer<F>;
    type Dropout = Dropout<F>;
    type Conv2d = Conv2d<F>;
    type MaxPool2d = MaxPool2d;
    type Network = Network<F>;

    fn linear(weight: Array2<F>, bias: Array1<F>) -> Linear<F> {
        Linear::new(weight, bias)
    }
    fn relu() -> ActivationLayer<F> {
        ActivationLayer::new(Activation::Relu)
    }
    fn sigmoid() -> ActivationLayer<F> {
        ActivationLayer::new(Activation::Sigmoid)
    }
    fn tanh() -> ActivationLayer<F> {
        ActivationLayer::new(Activation::Tanh)
    }
    fn softmax_cross_entropy() -> SoftmaxCrossEntropy<F> {
        SoftmaxCrossEntropy::default()
    }
    fn mse() -> Mse<F> {
        Mse::default()
    }
    fn batch_norm(features: usize) -> NormalizationLayer<F> {
        NormalizationLayer::new(Norm::Batch, features)
    }
    fn layer_norm(features: usize) -> NormalizationLayer<F> {
        NormalizationLayer::new(Norm::Layer, features)
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
    fn network(params: LinearParams<F>, spec: &NetSpec) -> Network<F> {
        Network::new(params, spec)
    }
}
