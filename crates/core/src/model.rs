//! The model contract: a multi-layer perceptron with its loss, trained by SGD.

use std::fmt::{self, Debug};
use std::str::FromStr;

use ndarray::{Array1, Array2, ArrayView2};

use crate::flow::Signals;
use crate::{Float, Param, Targets};

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
            .ok_or_else(|| format!("unknown activation {text:?}: expected relu, sigmoid or tanh"))
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

/// The weight `(fan_in, fan_out)` and bias `(fan_out,)` of every `Linear` layer, input first.
pub type LinearParams<F> = Vec<(Array2<F>, Array1<F>)>;

/// A multi-layer perceptron with its loss: `Linear, act, Linear, act, ..., Linear, loss`.
///
/// The activation sits between every two `Linear` layers, never after the last one (the last
/// layer's output is the logits). One step of training:
///
/// ```text
/// zero_grad -> forward(x) -> loss(targets) -> backward -> update(lr)
/// ```
///
/// Parameter gradients accumulate until `zero_grad` (see [the gradient rule](crate::layer)).
pub trait Model<F: Float>: Debug {
    /// `[in, hidden.., out]`: the width of every layer boundary.
    fn layer_sizes(&self) -> &[usize];

    /// The activation between the `Linear` layers.
    fn activation(&self) -> Activation;

    /// The logits (or predictions) for `input` of shape `(batch, layer_sizes[0])`, caching every
    /// activation that `backward` needs.
    ///
    /// # Panics
    /// If the input width is not `layer_sizes[0]`.
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F>;

    /// The loss of the last `forward` against `targets`.
    ///
    /// # Panics
    /// If called before `forward`, or as [`Loss::forward`](crate::Loss::forward) panics.
    fn loss(&mut self, targets: Targets<'_, F>) -> F;

    /// Backpropagates the last `loss` through every layer, *adding* into every parameter
    /// gradient, and returns dL/d(input) of shape `(batch, layer_sizes[0])`.
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

    /// Every parameter with its gradient: `linear0.weight, linear0.bias, linear1.weight, ...`.
    fn params_mut(&mut self) -> Vec<Param<'_, F>>;

    /// Sets every parameter gradient to zero.
    fn zero_grad(&mut self) {
        for param in self.params_mut() {
            let mut grad = param.grad;
            grad.fill(F::zero());
        }
    }

    /// One plain SGD step on every parameter: `p <- p - learning_rate * dL/dp`.
    fn update(&mut self, learning_rate: F) {
        for param in self.params_mut() {
            let mut value = param.value;
            value.scaled_add(-learning_rate, &param.grad);
        }
    }

    /// One full training step on a batch; returns the loss before the update.
    fn train_step(&mut self, input: ArrayView2<'_, F>, targets: Targets<'_, F>, lr: F) -> F {
        self.zero_grad();
        self.forward(input);
        let loss = self.loss(targets);
        self.backward_params_only();
        self.update(lr);
        loss
    }

    /// A copy of every `(weight, bias)` pair, input layer first.
    fn linear_params(&mut self) -> LinearParams<F> {
        let params = self.params_mut();
        params
            .chunks(2)
            .map(|pair| {
                let weight = pair[0]
                    .value
                    .view()
                    .into_dimensionality()
                    .expect("weight is 2-D");
                let bias = pair[1]
                    .value
                    .view()
                    .into_dimensionality()
                    .expect("bias is 1-D");
                (weight.to_owned(), bias.to_owned())
            })
            .collect()
    }
}
