//! `StackedMlp`: an MLP assembled from any level's own layers and loss, with optional
//! normalization and dropout between them.
//!
//! Composing layers is the same code in every level (the chain rule in reverse order), so levels
//! that do not fuse layers (levels 1 and 2, a learner's first crate) use this model as their
//! `Level::Mlp`. Level 3 brings its own, because it shares buffers across layers.

use std::fmt;

use ndarray::{Array2, ArrayView2};

use crate::flow::{Signals, max_abs, sum_of_squares};
use crate::{
    Activation, Float, Layer, Layout, Level, LinearLayer, LinearMut, LinearParams, Loss, LossKind,
    Model, Norm, NormLayer, NormMut, Targets,
};

/// `Linear, [norm], act, [dropout], ..., Linear, loss`, built from level `L`'s types.
pub struct StackedMlp<F: Float, L: Level<F>> {
    sizes: Vec<usize>,
    activation: Activation,
    /// `linears[i]` maps width `sizes[i]` to `sizes[i + 1]`.
    linears: Vec<L::Linear>,
    /// `norms[i]` follows `linears[i]` (empty without normalization).
    norms: Vec<Box<dyn NormLayer<F>>>,
    /// `activations[i]` follows `norms[i]`, or `linears[i]`; the last `Linear` has none.
    activations: Vec<Box<dyn Layer<F>>>,
    /// `dropouts[i]` follows `activations[i]` (empty without dropout).
    dropouts: Vec<L::Dropout>,
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
    /// Wraps each `(weight, bias)` in `L::linear` and puts `layout`'s normalization,
    /// activation and dropout after each hidden one.
    ///
    /// # Panics
    /// If `layers` is empty or a layer's `fan_in` differs from the previous layer's `fan_out`.
    #[track_caller]
    pub fn new(layers: LinearParams<F>, layout: &Layout) -> Self {
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
        let hidden = &sizes[1..sizes.len() - 1];
        let norms = hidden
            .iter()
            .filter_map(|&width| -> Option<Box<dyn NormLayer<F>>> {
                match layout.norm {
                    Norm::None => None,
                    Norm::Batch => Some(Box::new(L::batch_norm(width))),
                    Norm::Layer => Some(Box::new(L::layer_norm(width))),
                }
            })
            .collect();
        let dropouts = (0..hidden.len() as u64)
            .filter(|_| layout.dropout > 0.0)
            .map(|index| L::dropout(layout.dropout, layout.seed.wrapping_add(index)))
            .collect();
        let loss = match layout.loss {
            LossKind::SoftmaxCrossEntropy => {
                LossLayer::SoftmaxCrossEntropy(L::softmax_cross_entropy())
            }
            LossKind::Mse => LossLayer::Mse(L::mse()),
        };
        StackedMlp {
            activation: layout.activation,
            activations: hidden
                .iter()
                .map(|_| L::activation(layout.activation))
                .collect(),
            linears: layers
                .into_iter()
                .map(|(weight, bias)| L::linear(weight, bias))
                .collect(),
            sizes,
            norms,
            dropouts,
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
        // Phase 1: Linear, [norm], activation, [dropout], layer after layer; each caches its
        // own input.
        self.hidden_outputs.clear();
        let mut hidden = self.linears[0].forward(input);
        for index in 0..self.activations.len() {
            if let Some(norm) = self.norms.get_mut(index) {
                hidden = norm.forward(hidden.view());
            }
            let activated = self.activations[index].forward(hidden.view());
            hidden = match self.dropouts.get_mut(index) {
                Some(dropout) => {
                    let dropped = dropout.forward(activated.view());
                    self.linears[index + 1].forward(dropped.view())
                }
                None => self.linears[index + 1].forward(activated.view()),
            };
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
                if let Some(dropout) = self.dropouts.get_mut(index - 1) {
                    grad = dropout.backward(grad.view());
                }
                grad = self.activations[index - 1].backward(grad.view());
                if let Some(norm) = self.norms.get_mut(index - 1) {
                    grad = norm.backward(grad.view());
                }
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

    fn visit_norms(&mut self, mut visit: impl FnMut(usize, NormMut<'_, F>)) {
        for (index, norm) in self.norms.iter_mut().enumerate() {
            visit(index, norm.params_mut());
        }
    }

    fn set_training(&mut self, training: bool) {
        self.norms
            .iter_mut()
            .for_each(|norm| norm.set_training(training));
        self.dropouts
            .iter_mut()
            .for_each(|dropout| dropout.set_training(training));
    }

    fn zero_grad(&mut self) {
        // Through each layer's own zero_grad, so the harness sees a learner's.
        self.linears.iter_mut().for_each(LinearLayer::zero_grad);
        self.norms.iter_mut().for_each(|norm| norm.zero_grad());
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
