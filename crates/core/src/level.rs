//! The `Level` trait: the one thing a level crate exports for the harness.

use ndarray::{Array1, Array2};

use crate::conv::{Conv2dGeometry, Pool2dGeometry};
use crate::network::NetSpec;
use crate::{
    Activation, DropoutLayer, Float, Layer, Layout, LinearLayer, LinearParams, Loss, LossKind,
    MlpSpec, Model, NormLayer,
};

/// Names a level's layer, loss and model types and builds them.
///
/// A level crate defines a zero-sized marker type and implements `Level<F>` for the float types
/// it supports (usually `impl<F: Float> Level<F> for Level02`). The harness, the `backprop`
/// command and the bench tables are generic over this trait and nothing else, so a level crate
/// plugs into each with one line of its own, and no edit outside it:
///
/// - tests: `backprop_harness::suite!(my_level::MyLevel);` in `tests/harness.rs`;
/// - the command: `backprop::cli::main::<my_level::MyLevel>()` in `examples/backprop.rs`, run
///   as `cargo run -p my-level --release --example backprop -- train` (also `eval`,
///   `diagnose`, `graph`, with every flag of the built-in levels);
/// - the benches: `backprop::bench::main::<my_level::MyLevel>()` in `benches/throughput.rs`,
///   run as `cargo bench -p my-level` (its rows beside level02, level03 and the GEMM floor).
///
/// `backprop new-level my-level` writes all three. The built-in levels are listed once, in the
/// `backprop` package's `levels` module, which feeds `--level 1|2|3`.
///
/// Weights are always made by [`crate::init`] and handed in, so the same seed gives the same
/// network in every level.
pub trait Level<F: Float>: 'static {
    /// A short name for messages and bench groups: `"level02"`.
    const NAME: &'static str;

    /// True when a training step at a steady batch size makes a bounded number of heap
    /// allocations, whatever the batch size and the number of steps. The stress suite then
    /// counts them.
    const ALLOCATION_BOUNDED: bool = false;

    /// `y = x W + b`.
    type Linear: LinearLayer<F>;
    /// `y = max(0, x)`.
    type Relu: Layer<F> + 'static;
    /// `y = 1 / (1 + e^-x)`.
    type Sigmoid: Layer<F> + 'static;
    /// `y = tanh x`.
    type Tanh: Layer<F> + 'static;
    /// Softmax then cross-entropy, mean over the batch.
    type SoftmaxCrossEntropy: Loss<F>;
    /// Mean squared error, mean over every element.
    type Mse: Loss<F>;
    /// Batch normalization over each feature (see [`crate::norm`]).
    type BatchNorm: NormLayer<F> + 'static;
    /// Layer normalization over each row.
    type LayerNorm: NormLayer<F> + 'static;
    /// Inverted dropout.
    type Dropout: DropoutLayer<F> + 'static;
    /// A 2-D convolution (see [`crate::conv`]); its weight `(C kh kw, out_channels)` and bias
    /// are reached through the same view as a `Linear` layer's.
    type Conv2d: LinearLayer<F> + 'static;
    /// Max pooling over windows of an image.
    type MaxPool2d: Layer<F> + 'static;
    /// A network built from a [`NetSpec`]: the MLP, a CNN, any list of the layers above.
    type Network: Model<F>;

    /// A `Linear` layer owning `weight` `(fan_in, fan_out)` and `bias` `(fan_out,)`, with zero
    /// gradients.
    ///
    /// # Panics
    /// If `bias.len() != weight.ncols()`.
    fn linear(weight: Array2<F>, bias: Array1<F>) -> Self::Linear;
    /// A ReLU layer.
    fn relu() -> Self::Relu;
    /// A sigmoid layer.
    fn sigmoid() -> Self::Sigmoid;
    /// A tanh layer.
    fn tanh() -> Self::Tanh;
    /// The softmax cross-entropy loss.
    fn softmax_cross_entropy() -> Self::SoftmaxCrossEntropy;
    /// The mean squared error loss.
    fn mse() -> Self::Mse;
    /// Batch norm over `features` features: gamma 1, beta 0, running mean 0 and variance 1.
    fn batch_norm(features: usize) -> Self::BatchNorm;
    /// Layer norm over rows of `features` features: gamma 1, beta 0.
    fn layer_norm(features: usize) -> Self::LayerNorm;
    /// Dropout with probability `p` (0 <= p < 1), its masks drawn from the generator seeded
    /// `seed`.
    fn dropout(p: f64, seed: u64) -> Self::Dropout;
    /// A convolution over images of `geometry.input`, owning `weight` `(C kh kw, out_channels)`
    /// (row `(c kh + p) kw + q`: PyTorch's `conv.weight.reshape(out, -1).T`) and `bias`
    /// `(out_channels,)`, with zero gradients.
    ///
    /// # Panics
    /// If the weight or bias shape is not `geometry`'s.
    fn conv2d(weight: Array2<F>, bias: Array1<F>, geometry: Conv2dGeometry) -> Self::Conv2d;
    /// A max pool with `geometry`'s input, window and stride.
    fn max_pool2d(geometry: Pool2dGeometry) -> Self::MaxPool2d;
    /// The network `spec` describes, its `Linear` and `Conv2d` layers owning `params` (one
    /// `(weight, bias)` per weight layer, first layer first, shaped as
    /// [`NetSpec::weight_shapes`]).
    ///
    /// # Panics
    /// If `params` does not fit the spec.
    fn network(params: LinearParams<F>, spec: &NetSpec) -> Self::Network;

    /// The network `spec` describes, initialised from its init and seed.
    fn network_from_spec(spec: &NetSpec) -> Self::Network {
        Self::network(spec.initial_params(), spec)
    }

    /// An MLP from the `(weight, bias)` of each `Linear` layer, input layer first, with
    /// `layout`'s activation, normalization, dropout and loss: the preset [`NetSpec::mlp`].
    ///
    /// # Panics
    /// If `layers` is empty or two consecutive layers' shapes do not chain.
    #[track_caller]
    fn mlp_with(layers: LinearParams<F>, layout: &Layout) -> Self::Network {
        assert!(!layers.is_empty(), "an MLP needs at least one Linear layer");
        if let Some(broken) = crate::model::chain_break(&layers, None) {
            panic!("{broken}");
        }
        let sizes: Vec<usize> = std::iter::once(layers[0].0.nrows())
            .chain(layers.iter().map(|(weight, _)| weight.ncols()))
            .collect();
        let spec = NetSpec::mlp(&sizes, layout)
            .unwrap_or_else(|error| panic!("MLP sizes {sizes:?}: {error}"));
        Self::network(layers, &spec)
    }

    /// A plain MLP: `activation` between the layers, `loss` at the end.
    ///
    /// # Panics
    /// As [`Level::mlp_with`].
    fn mlp(layers: LinearParams<F>, activation: Activation, loss: LossKind) -> Self::Network {
        Self::mlp_with(layers, &Layout::plain(activation, loss))
    }

    /// The layer for `activation`, boxed so that one type holds any of the three.
    fn activation(activation: Activation) -> Box<dyn Layer<F>> {
        match activation {
            Activation::Relu => Box::new(Self::relu()),
            Activation::Sigmoid => Box::new(Self::sigmoid()),
            Activation::Tanh => Box::new(Self::tanh()),
        }
    }

    /// An MLP initialised from `spec` (its seed decides every weight and dropout mask).
    fn mlp_from_spec(spec: &MlpSpec) -> Self::Network {
        Self::network_from_spec(&spec.net_spec())
    }
}
