//! The model contract: a network with its loss (an MLP, a CNN: see [`crate::network`]), trained
//! by an optimizer.

use std::fmt::{self, Debug};
use std::str::FromStr;

use ndarray::{Array1, Array2, ArrayView2};

use crate::layer::LinearMut;
use crate::norm::{Norm, NormMut};
use crate::optim::Optimizer;

use crate::flow::Signals;
use crate::{Float, Targets};

/// The nonlinearity between two `Linear` layers of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(0, x); gradient 1 where x > 0 and 0 elsewhere, including at exactly 0 (as PyTorch).
    Relu,
    /// 1 / (1 + e^-x); gradient s (1 - s).
    Sigmoid,
    /// tanh x; gradient 1 - t^2.
    Tanh,
}

impl Activation {
    /// Every activation, in a fixed order (for tests and `--help`).
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Sigmoid, Activation::Tanh];

    /// The lowercase name: `relu`, `sigmoid`, `tanh`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Activation::ALL
            .into_iter()
            .find(|activation| activation.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Activation::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown activation {text:?}: the activations are {}",
                    names.join(", ")
                )
            })
    }
}

/// The loss an MLP ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Softmax then cross-entropy against class indices, mean over the batch.
    SoftmaxCrossEntropy,
    /// Mean squared error against dense targets, mean over every element.
    Mse,
}

/// What an MLP puts between its `Linear` layers, and the loss at its end: each hidden `Linear`
/// is followed by the normalization, the activation, then dropout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// The activation after each hidden `Linear` (and its normalization).
    pub activation: Activation,
    /// The loss after the last `Linear`.
    pub loss: LossKind,
    /// Batch norm, layer norm or none, between each hidden `Linear` and its activation.
    pub norm: Norm,
    /// The dropout probability after each hidden activation; 0 puts no dropout layer.
    pub dropout: f64,
    /// The dropout masks' seed: hidden layer i draws from the generator seeded `seed + i`.
    pub seed: u64,
}

impl Layout {
    /// `activation` between the layers, `loss` at the end, no normalization, no dropout.
    pub fn plain(activation: Activation, loss: LossKind) -> Self {
        Layout {
            activation,
            loss,
            norm: Norm::None,
            dropout: 0.0,
            seed: 0,
        }
    }
}

/// The weight `(fan_in, fan_out)` and bias `(fan_out,)` of every `Linear` layer, input first.
pub type LinearParams<F> = Vec<(Array2<F>, Array1<F>)>;

/// Where an MLP's `(weight, bias)` pairs stop fitting together ([`chain_break`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainBreak {
    /// The layer that does not fit, from 0.
    pub layer: usize,
    /// Its weight's shape `(fan_in, fan_out)`.
    pub weight: (usize, usize),
    /// Its bias's length.
    pub bias: usize,
    /// What it should take: the previous layer's outputs (or the input's width), when its
    /// weight is what does not fit.
    pub inputs: Option<usize>,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (layer, weight) = (self.layer, self.weight);
        match self.inputs {
            Some(inputs) => write!(
                f,
                "layer {layer}: weight {weight:?} does not take the {inputs} {}",
                if layer == 0 {
                    "input features"
                } else {
                    "outputs of the layer before"
                }
            ),
            None => write!(
                f,
                "layer {layer}: weight {weight:?} and bias {} do not fit (one bias per output)",
                self.bias
            ),
        }
    }
}

/// The first layer of `layers` whose weight does not take the previous layer's outputs (the
/// first layer: `inputs` features, when given) or whose bias is not one number per output;
/// `None` when they chain.
///
/// ```
/// use backprop_core::model::chain_break;
/// use ndarray::{Array1, Array2};
///
/// let layers = vec![
///     (Array2::<f32>::zeros((4, 8)), Array1::zeros(8)),
///     (Array2::zeros((6, 3)), Array1::zeros(3)),
/// ];
/// let broken = chain_break(&layers, Some(4)).unwrap();
/// assert_eq!(broken.to_string(), "layer 1: weight (6, 3) does not take the 8 outputs of the layer before");
/// ```
pub fn chain_break<F>(
    layers: &[(Array2<F>, Array1<F>)],
    inputs: Option<usize>,
) -> Option<ChainBreak> {
    let mut expected = inputs;
    for (layer, (weight, bias)) in layers.iter().enumerate() {
        let broken = |inputs| ChainBreak {
            layer,
            weight: weight.dim(),
            bias: bias.len(),
            inputs,
        };
        if let Some(inputs) = expected.filter(|&inputs| inputs != weight.nrows()) {
            return Some(broken(Some(inputs)));
        }
        if bias.len() != weight.ncols() {
            return Some(broken(None));
        }
        expected = Some(weight.ncols());
    }
    None
}

/// A network with its loss, built from a [`NetSpec`](crate::NetSpec): the MLP preset
/// `Linear, act, Linear, act, ..., Linear, loss`, a CNN, any list of layers. The last layer's
/// output is the logits. One step of training:
///
/// ```text
/// zero_grad -> forward(x) -> loss(targets) -> backward -> optimizer.step(model)
/// ```
///
/// What a model must provide: the passes, and [`visit_linears`](Model::visit_linears), the one
/// way to its parameters. Zeroing, optimizers ([`crate::optim`]), clipping and statistics
/// ([`crate::flow`]) are built on it.
///
/// Parameter gradients accumulate until `zero_grad` (see [the gradient rule](crate::layer)).
pub trait Model<F: Float>: Debug {
    /// The activation between the `Linear` layers (for other networks, the first activation of
    /// the list).
    fn activation(&self) -> Activation;

    /// The logits (or predictions) for `input` of shape `(batch, layer_sizes[0])`, caching every
    /// activation that `backward` needs.
    ///
    /// # Panics
    /// If the input width is not the first layer's `fan_in`.
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F>;

    /// The loss of the last `forward` against `targets`.
    ///
    /// # Panics
    /// If called before `forward`, or as [`Loss::forward`](crate::Loss::forward) panics.
    fn loss(&mut self, targets: Targets<'_, F>) -> F;

    /// Backpropagates the last `loss` through every layer, *adding* into every parameter
    /// gradient, and returns dL/d(input), the input's shape.
    ///
    /// # Panics
    /// If called before `loss`.
    fn backward(&mut self) -> Array2<F>;

    /// Like [`backward`](Model::backward) when nobody needs dL/d(input), as in training: a level
    /// may then skip the first layer's input gradient. The default calls `backward`.
    fn backward_params_only(&mut self) {
        let _ = self.backward();
    }

    /// The hidden activations, input-gradient norms and largest logit that the last forward and
    /// backward passes left behind, for [`flow::step_stats`](crate::flow::step_stats). The
    /// default, `None`, leaves those columns empty; the parameter statistics still work.
    fn signals(&self) -> Option<Signals<'_, F>> {
        None
    }

    /// Calls `visit(index, layer)` for every layer with a weight (`Linear`, and `Conv2d` with
    /// its `(C kh kw, out)` weight matrix), input layer first, with its weight, bias and their
    /// gradients: for `MlpSpec::classifier(&[4, 8, 3], _)`, `(0, weight (4, 8))` then
    /// `(1, weight (8, 3))` (runnable in level02's crate docs).
    fn visit_linears(&mut self, visit: impl FnMut(usize, LinearMut<'_, F>))
    where
        Self: Sized;

    /// Calls `visit(index, norm)` for every normalization layer, first hidden layer first. The
    /// default visits none (a model without normalization).
    fn visit_norms(&mut self, visit: impl FnMut(usize, NormMut<'_, F>))
    where
        Self: Sized,
    {
        let _ = visit;
    }

    /// Every trainable parameter group, as optimizers see them: each `Linear`'s weight and
    /// bias (indices `0..linears`), then each normalization layer's gamma and beta as a
    /// one-row weight and a bias ([`NormMut::into_linear`]).
    fn visit_params(&mut self, mut visit: impl FnMut(usize, LinearMut<'_, F>))
    where
        Self: Sized,
    {
        let mut count = 0;
        self.visit_linears(|_, layer| {
            visit(count, layer);
            count += 1;
        });
        self.visit_norms(|_, norm| {
            visit(count, norm.into_linear());
            count += 1;
        });
    }

    /// Training mode (batch statistics, dropout on) or evaluation mode (running statistics,
    /// dropout off), as PyTorch's `model.train()` and `model.eval()`. Models start in training
    /// mode. The default does nothing, right for a model with neither.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// Sets every parameter gradient to zero.
    fn zero_grad(&mut self)
    where
        Self: Sized,
    {
        self.visit_params(|_, mut layer| {
            layer.grad_weight.fill(F::zero());
            layer.grad_bias.fill(F::zero());
        });
    }

    /// One full training step on a batch: `zero_grad`, `forward`, `loss`, the backward pass
    /// without the input gradient, then `optimizer.step`. Returns the loss before the update.
    ///
    /// An override may apply the update inside its backward pass through
    /// [`Optimizer::fused_step`] (level03 does), as long as the parameters and gradients it
    /// leaves are the ones this sequence leaves.
    fn train_step(
        &mut self,
        input: ArrayView2<'_, F>,
        targets: Targets<'_, F>,
        optimizer: &mut impl Optimizer<F>,
    ) -> F
    where
        Self: Sized,
    {
        self.zero_grad();
        self.forward(input);
        let loss = self.loss(targets);
        self.backward_params_only();
        optimizer.step(self);
        loss
    }

    /// A copy of every `(weight, bias)` pair, input layer first.
    fn linear_params(&mut self) -> LinearParams<F>
    where
        Self: Sized,
    {
        let mut layers = Vec::new();
        self.visit_linears(|_, layer| {
            layers.push((layer.weight.to_owned(), layer.bias.to_owned()))
        });
        layers
    }
}
