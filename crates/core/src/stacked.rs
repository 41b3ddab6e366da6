//! `StackedMlp`: an MLP assembled from any level's own layers and loss.
//!
//! Composing layers is the same code in every level (the chain rule in reverse order), so levels
//! that do not fuse layers (levels 1 and 2, a learner's first crate) use this model as their
//! `Level::Mlp`. Level 3 brings its own, because it shares buffers across layers.

use std::fmt;

use ndarray::{Array2, ArrayView2};

use crate::flow::{Signals, max_abs, sum_of_squares};
use crate::{
    Activation, Float, Layer, Level, LinearLayer, LinearMut, LinearParams, Loss, LossKind, Model,
    Targets,
};

/// `Linear, act, Linear, act, ..., Linear, loss`, built from level `L`'s types.
pub struct StackedMlp<F: Float, L: Level<F>> {
    sizes: Vec<usize>,
    activation: Activation,
    /// `linears[i]` maps width `sizes[i]` to `sizes[i + 1]`.
    linears: Vec<L::Linear>,
    /// `activations[i]` follows `linears[i]`; the last `Linear` has none.
    activations: Vec<Box<dyn Layer<F>>>,
    loss: LossLayer<F, L>,
    /// The output of the last `forward`, which `loss` reads.
    logits: Option<Array2<F>>,
    /// Each activation's output in the last `forward` (moved here after the next `Linear` read
    /// it, so keeping them costs no copy), for [`Model::signals`].
    hidden_outputs: Vec<Array2<F>>,
    /// ‖dL/d(input of Linear i)‖ from the last `backward`.
    input_grad_norms: Vec<Option<f64>>,
}

enum LossLayer<F: Float, L: Level<F>> {
    SoftmaxCrossEntropy(L::SoftmaxCrossEntropy),
    Mse(L::Mse),
}

impl<F: Float, L: Level<F>> StackedMlp<F, L> {
    /// Wraps each `(weight, bias)` in `L::linear` and puts `activation` between them.
    ///
    /// # Panics
    /// If `layers` is empty or a layer's `fan_in` differs from the previous layer's `fan_out`.
    #[track_caller]
    pub fn new(layers: LinearParams<F>, activation: Activation, loss: LossKind) -> Self {
        assert!(!layers.is_empty(), "an MLP needs at least one Linear layer");
        let mut sizes = vec![layers[0].0.nrows()];
        for (index, (weight, _)) in layers.iter().enumerate() {
            assert_eq!(
                weight.nrows(),
                sizes[index],
                "layer {index}: weight {:?} does not take the previous layer's {} outputs",
                weight.dim(),
                sizes[index]
            );
            sizes.push(weight.ncols());
        }
        let hidden_layers = layers.len() - 1;
        let activations = (0..hidden_layers)
            .map(|_| L::activation(activation))
            .collect();
        let loss = match loss {
            LossKind::SoftmaxCrossEntropy => {
                LossLayer::SoftmaxCrossEntropy(L::softmax_cross_entropy())
            }
            LossKind::Mse => LossLayer::Mse(L::mse()),
        };
        let linears = layers
            .into_iter()
            .map(|(weight, bias)| L::linear(weight, bias))
            .collect();
        StackedMlp {
            sizes,
            activation,
            linears,
            activations,
            loss,
            logits: None,
            hidden_outputs: Vec::new(),
            input_grad_norms: Vec::new(),
        }
    }
}

impl<F: Float, L: Level<F>> Model<F> for StackedMlp<F, L> {
    fn activation(&self) -> Activation {
        self.activation
    }

    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        assert_eq!(
            input.ncols(),
            self.sizes[0],
            "MLP input has shape {:?} but the first layer takes {} features",
            input.dim(),
            self.sizes[0]
        );
        // Phase 1: Linear then activation, layer after layer; each caches its own input.
        self.hidden_outputs.clear();
        let mut hidden = self.linears[0].forward(input);
        for (linear, activation) in self.linears[1..].iter_mut().zip(&mut self.activations) {
            let activated = activation.forward(hidden.view());
            hidden = linear.forward(activated.view());
            self.hidden_outputs.push(activated);
        }
        // Phase 2: keep the logits for `loss`.
        self.logits = Some(hidden.clone());
        hidden
    }

    #[track_caller]
    fn loss(&mut self, targets: Targets<'_, F>) -> F {
        let logits = self
            .logits
            .as_ref()
            .expect("MLP loss called before forward");
        match &mut self.loss {
            LossLayer::SoftmaxCrossEntropy(loss) => loss.forward(logits.view(), targets),
            LossLayer::Mse(loss) => loss.forward(logits.view(), targets),
        }
    }

    fn backward(&mut self) -> Array2<F> {
        // The chain rule in reverse: dL/dlogits, then through each Linear and the activation
        // before it, down to dL/dinput.
        let mut grad = match &mut self.loss {
            LossLayer::SoftmaxCrossEntropy(loss) => loss.backward(),
            LossLayer::Mse(loss) => loss.backward(),
        };
        self.input_grad_norms = vec![None; self.linears.len()];
        for index in (0..self.linears.len()).rev() {
            grad = self.linears[index].backward(grad.view());
            self.input_grad_norms[index] = Some(sum_of_squares(&grad).sqrt());
            if index > 0 {
                grad = self.activations[index - 1].backward(grad.view());
            }
        }
        grad
    }

    fn signals(&self) -> Option<Signals<'_, F>> {
        Some(Signals {
            hidden_outputs: self
                .hidden_outputs
                .iter()
                .map(|output| output.view())
                .collect(),
            input_grad_norms: self.input_grad_norms.clone(),
            max_abs_logit: self.logits.as_ref().map_or(f64::NAN, max_abs),
        })
    }

    fn visit_linears(&mut self, mut visit: impl FnMut(usize, LinearMut<'_, F>)) {
        for (index, linear) in self.linears.iter_mut().enumerate() {
            visit(index, linear.params_mut());
        }
    }

    fn zero_grad(&mut self) {
        // Through each layer's own zero_grad, so the harness sees a learner's.
        self.linears.iter_mut().for_each(LinearLayer::zero_grad);
    }
}

impl<F: Float, L: Level<F>> fmt::Debug for StackedMlp<F, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackedMlp")
            .field("level", &L::NAME)
            .field("sizes", &self.sizes)
            .field("activation", &self.activation)
            .finish_non_exhaustive()
    }
}
