//! # backprop-core: the contract every level implements
//!
//! A *level* is one implementation of the backward pass of a neural network: level01
//! with explicit loops, level02 with ndarray, level03 in place. They all implement the traits
//! here, so one test harness, one CLI and one bench suite serve them all.
//!
//! | PyTorch / NumPy                        | backprop                                      |
//! |----------------------------------------|-----------------------------------------------|
//! | `nn.Linear(fan_in, fan_out)`           | [`Level::linear`]`(weight (fan_in, fan_out), bias)` (y = x W + b, W not transposed) |
//! | `F.relu`, `torch.sigmoid`, `torch.tanh`| [`Level::relu`], [`Level::sigmoid`], [`Level::tanh`] |
//! | `F.cross_entropy(reduction="mean")`    | [`Level::softmax_cross_entropy`] with [`Targets::Classes`] |
//! | `F.mse_loss(reduction="mean")`         | [`Level::mse`] with [`Targets::Values`]        |
//! | `loss.backward()`                      | [`Model::backward`] (after [`Model::loss`])   |
//! | `linear.weight.grad`, `model.zero_grad()` | [`LinearMut::grad_weight`] via [`Model::visit_linears`], [`Model::zero_grad`] |
//! | `optim.SGD(lr, momentum).step()`       | [`optim::Sgd`] with [`Optimizer::step`]       |
//! | `optim.Adam(lr).step()`                | [`optim::Adam`]                               |
//! | `torch.manual_seed(s)`                 | [`MlpSpec::seed`], [`init::seeded_rng`]       |
//! | `nn.BatchNorm1d`, `nn.LayerNorm`, `nn.Dropout` | [`Level::batch_norm`], [`Level::layer_norm`], [`Level::dropout`] (see [`norm`]) |
//! | `nn.Conv2d`, `nn.MaxPool2d`, `nn.Flatten` | [`Level::conv2d`], [`Level::max_pool2d`], [`LayerSpec::Flatten`] (see [`conv`]) |
//! | `nn.Sequential(...)`                   | [`NetSpec`], built by [`Level::network_from_spec`] |
//!
//! ## Training a tiny MLP
//!
//! Every level names its types through a zero-sized marker that implements [`Level`]. Build a
//! network from an [`MlpSpec`] (sizes, activation, loss, init, seed), then repeat
//! `zero_grad -> forward -> loss -> backward -> optimizer step`:
//!
//! ```text
//! model = L::mlp_from_spec(&MlpSpec::classifier(&[2, 8, 2], 7))   // Linear, ReLU, Linear, loss
//! for each step:
//!     model.zero_grad()                     // gradients accumulate: clear them first
//!     model.forward(inputs)                 // logits; caches each layer's input
//!     loss = model.loss(Targets::Classes(&classes))
//!     model.backward()                      // dL/dW and dL/db for every layer
//!     sgd.step(&mut model)                  // W <- W - lr dL/dW
//! ```
//!
//! This crate implements no layer, so the loop runs in a level's crate docs: level02's trains
//! XOR this way.
//!
//! ## The gradient rule
//!
//! Outputs (`forward`, `backward`, and the buffers of the `*_into` forms) are always
//! overwritten. Parameter gradients **accumulate** across `backward` calls until `zero_grad`,
//! as in PyTorch. The [`layer`] module says it in full; every level follows it and the harness
//! tests it.
//!
//! ## What else lives here
//!
//! - [`optim`]: SGD (momentum, Nesterov, weight decay) and Adam, as PyTorch defines them;
//! - [`init`]: PyTorch's `nn.Linear` default, He and Xavier initialisers over a seeded
//!   ChaCha8 generator, so one seed gives one network in every level;
//! - [`flow`]: per-layer gradient statistics of a training step (norms, update ratio, dead and
//!   saturated units) and clipping by global norm, for watching gradients vanish or explode;
//! - [`gradcheck`]: central differences in `f64` and reports that name the tensor, the worst
//!   entry, analytic against numeric, and the ReLU kinks they skipped;
//! - [`network`]: a network as a list of layers ([`NetSpec`]), checked once; the MLP is one
//!   preset of it, a small CNN another; [`conv`]: the geometry of convolution and pooling over
//!   images kept as rows;
//! - [`Sequential`]: any [`NetSpec`] assembled from a level's own layers, for levels that need
//!   no fused model of their own.
#![warn(missing_docs)]

pub mod conv;
pub mod float;
pub mod flow;
pub mod gradcheck;
pub mod hints;
pub mod init;
pub mod layer;
pub mod level;
pub mod model;
pub mod network;
pub mod norm;
pub mod optim;
pub mod sequential;

pub use conv::{Conv2dGeometry, ImageShape, Pool2dGeometry};
pub use float::Float;
pub use init::{Init, MlpSpec};
pub use layer::{Layer, LinearLayer, LinearMut, Loss, Targets};
pub use level::Level;
pub use model::{Activation, ChainBreak, Layout, LinearParams, LossKind, Model};
pub use network::{LayerSpec, NetSpec, SpecError};
pub use norm::{DropoutLayer, Norm, NormLayer, NormMut};
pub use optim::Optimizer;
pub use sequential::Sequential;

/// Panics unless `got == expected`, naming `what` and both shapes.
///
/// Shape errors are programmer errors: every level reports them the same way, at the caller's
/// line.
///
/// # Panics
/// When the shapes differ: `"Linear forward input: shape (4, 3) but expected (4, 5)"`.
#[track_caller]
pub fn assert_same_shape(what: &str, got: (usize, usize), expected: (usize, usize)) {
    assert!(
        got == expected,
        "{what}: shape {got:?} but expected {expected:?}"
    );
}
