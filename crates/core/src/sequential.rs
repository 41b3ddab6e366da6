//! `Sequential`: a network assembled from any level's own layers and loss, in the order of a
//! [`NetSpec`].
//!
//! Composing layers is the same code in every level (the chain rule in reverse order), so levels
//! that do not fuse layers (levels 1 and 2, a learner's first crate) use this model as their
//! `Level::Network`; level03 uses it for every network that is not a plain MLP. Each layer's
//! output and each input gradient live in a buffer reused from step to step (reallocated only
//! when the batch size changes), and the layers are called through their `*_into` forms: the
//! model adds no allocation of its own to a training step.

use std::fmt;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::flow::{Signals, max_abs, sum_of_squares};
use crate::network::{LayerPlan, NetSpec};
use crate::optim::Optimizer;
use crate::{
    Activation, Float, Layer, Level, LinearLayer, LinearMut, LinearParams, Loss, LossKind, Model,
    Norm, NormLayer, NormMut, Targets,
};

/// One layer of the list, as level `L` implements it.
enum Node<F: Float, L: Level<F>> {
    Linear(L::Linear),
    Conv2d(L::Conv2d),
    MaxPool2d(L::MaxPool2d),
    Relu(L::Relu),
    Sigmoid(L::Sigmoid),
    Tanh(L::Tanh),
    BatchNorm(L::BatchNorm),
    LayerNorm(L::LayerNorm),
    Dropout(L::Dropout),
}

impl<F: Float, L: Level<F>> Node<F, L> {
    fn layer(&mut self) -> &mut dyn Layer<F> {
        match self {
            Node::Linear(layer) => layer,
            Node::Conv2d(layer) => layer,
            Node::MaxPool2d(layer) => layer,
            Node::Relu(layer) => layer,
            Node::Sigmoid(layer) => layer,
            Node::Tanh(layer) => layer,
            Node::BatchNorm(layer) => layer,
            Node::LayerNorm(layer) => layer,
            Node::Dropout(layer) => layer,
        }
    }

    fn norm(&mut self) -> Option<&mut dyn NormLayer<F>> {
        match self {
            Node::BatchNorm(layer) => Some(layer),
            Node::LayerNorm(layer) => Some(layer),
            _ => None,
        }
    }

    fn is_activation(&self) -> bool {
        self.activation_kind().is_some()
    }

    fn activation_kind(&self) -> Option<Activation> {
        match self {
            Node::Relu(_) => Some(Activation::Relu),
            Node::Sigmoid(_) => Some(Activation::Sigmoid),
            Node::Tanh(_) => Some(Activation::Tanh),
            _ => None,
        }
    }

    fn has_weights(&self) -> bool {
        matches!(self, Node::Linear(_) | Node::Conv2d(_))
    }

    fn weights(&mut self) -> Option<&mut dyn LinearLayer<F>> {
        match self {
            Node::Linear(layer) => Some(layer),
            Node::Conv2d(layer) => Some(layer),
            _ => None,
        }
    }
}

/// The layers of a [`NetSpec`] (`Flatten` computes nothing and has no node), then the loss.
///
/// Buffers, one per node: `outputs[i]` `(batch, width after node i)`, and `grads[i]`
/// `(batch, width before node i)` = dL/d(input of node i); `grad_logits` holds dL/d(output of the
/// last node).
pub struct Sequential<F: Float, L: Level<F>> {
    spec: NetSpec,
    nodes: Vec<Node<F, L>>,
    /// `widths[i]` enters node i; `widths[nodes.len()]` leaves the last.
    widths: Vec<usize>,
    loss: LossLayer<F, L>,
    outputs: Vec<Array2<F>>,
    grads: Vec<Array2<F>>,
    grad_logits: Array2<F>,
    /// A forward has run since the model was built.
    has_forward: bool,
    /// The loss has run since the last forward.
    has_loss: bool,
    /// ‖dL/d(input of weight layer i)‖ from the last `backward`.
    input_grad_norms: Vec<Option<f64>>,
}

enum LossLayer<F: Float, L: Level<F>> {
    SoftmaxCrossEntropy(L::SoftmaxCrossEntropy),
    Mse(L::Mse),
}

impl<F: Float, L: Level<F>> Sequential<F, L> {
    /// Builds each layer of `spec` with level `L`'s constructors, handing the `Linear` and
    /// `Conv2d` layers their `(weight, bias)` from `params`, in order.
    ///
    /// # Panics
    /// If `params` does not hold one `(weight, bias)` of the spec's shape per weight layer; the
    /// message names the layer.
    #[track_caller]
    pub fn new(params: LinearParams<F>, spec: &NetSpec) -> Self {
        let shapes = spec.weight_shapes();
        assert_eq!(
            params.len(),
            shapes.len(),
            "{} (weight, bias) pairs for a network with {} Linear or Conv2d layers",
            params.len(),
            shapes.len()
        );
        for (index, ((weight, bias), shape)) in params.iter().zip(&shapes).enumerate() {
            assert!(
                weight.dim() == *shape && bias.len() == shape.1,
                "weight layer {index}: weight {:?} and bias ({},) but the spec needs {shape:?} \
                 and ({},)",
                weight.dim(),
                bias.len(),
                shape.1
            );
        }
        // Phase 1: one node per computing layer, each with its own parameters.
        let mut params = params.into_iter();
        let mut nodes = Vec::new();
        let mut widths = vec![spec.input().len()];
        for (index, layer) in spec.plan().into_iter().enumerate() {
            let node = match layer {
                LayerPlan::Linear { .. } => {
                    let (weight, bias) = params.next().expect("counted above");
                    Node::Linear(L::linear(weight, bias))
                }
                LayerPlan::Conv2d(geometry) => {
                    let (weight, bias) = params.next().expect("counted above");
                    Node::Conv2d(L::conv2d(weight, bias, geometry))
                }
                LayerPlan::MaxPool2d(geometry) => Node::MaxPool2d(L::max_pool2d(geometry)),
                LayerPlan::Flatten => continue,
                LayerPlan::Activation(Activation::Relu) => Node::Relu(L::relu()),
                LayerPlan::Activation(Activation::Sigmoid) => Node::Sigmoid(L::sigmoid()),
                LayerPlan::Activation(Activation::Tanh) => Node::Tanh(L::tanh()),
                LayerPlan::Norm { norm, features } => match norm {
                    Norm::Layer => Node::LayerNorm(L::layer_norm(features)),
                    _ => Node::BatchNorm(L::batch_norm(features)),
                },
                LayerPlan::Dropout { p, seed } => Node::Dropout(L::dropout(p, seed)),
            };
            nodes.push(node);
            widths.push(spec.shape_before(index + 1).len());
        }
        let loss = match spec.loss() {
            LossKind::SoftmaxCrossEntropy => {
                LossLayer::SoftmaxCrossEntropy(L::softmax_cross_entropy())
            }
            LossKind::Mse => LossLayer::Mse(L::mse()),
        };
        Sequential {
            spec: spec.clone(),
            outputs: widths[1..].iter().map(|&w| Array2::zeros((0, w))).collect(),
            grads: widths[..nodes.len()]
                .iter()
                .map(|&w| Array2::zeros((0, w)))
                .collect(),
            grad_logits: Array2::zeros((0, widths[nodes.len()])),
            nodes,
            widths,
            loss,
            has_forward: false,
            has_loss: false,
            input_grad_norms: Vec::new(),
        }
    }

    /// The spec this network was built from.
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Resizes every buffer to `batch` rows (keeping them when the batch size is unchanged).
    fn ensure_batch(&mut self, batch: usize) {
        if self.grad_logits.nrows() == batch {
            return;
        }
        let last = self.nodes.len();
        for (index, output) in self.outputs.iter_mut().enumerate() {
            *output = Array2::zeros((batch, self.widths[index + 1]));
        }
        for (index, grad) in self.grads.iter_mut().enumerate() {
            *grad = Array2::zeros((batch, self.widths[index]));
        }
        self.grad_logits = Array2::zeros((batch, self.widths[last]));
    }

    /// Forward through every node into its output buffer; the logits end in the last.
    #[track_caller]
    fn forward_pass(&mut self, input: ArrayView2<'_, F>) {
        assert_eq!(
            input.ncols(),
            self.widths[0],
            "network input has shape {:?} but the first layer takes {} features ({})",
            input.dim(),
            self.widths[0],
            self.spec.input()
        );
        self.ensure_batch(input.nrows());
        for index in 0..self.nodes.len() {
            let (before, after) = self.outputs.split_at_mut(index);
            let node_input = match before.last() {
                Some(previous) => previous.view(),
                None => input,
            };
            self.nodes[index]
                .layer()
                .forward_into(node_input, after[0].view_mut());
        }
        self.has_forward = true;
        self.has_loss = false;
    }

    /// Backward from the loss through every node, down to `grads[0]` = dL/d(input); with
    /// `params_only`, a first layer with weights only adds its parameter gradients
    /// ([`LinearLayer::backward_params_only`]: `grads[0]` is not written, and its norm is `None`).
    #[track_caller]
    fn backward_pass(&mut self, params_only: bool) {
        assert!(self.has_loss, "network backward called before loss");
        match &mut self.loss {
            LossLayer::SoftmaxCrossEntropy(loss) => loss.backward_into(self.grad_logits.view_mut()),
            LossLayer::Mse(loss) => loss.backward_into(self.grad_logits.view_mut()),
        }
        // The chain rule in reverse: each node reads the gradient the node after it wrote.
        // The norms are gathered last layer first into the kept vector (no allocation once it
        // has room), then put in layer order.
        self.input_grad_norms.clear();
        for index in (0..self.nodes.len()).rev() {
            let (before, after) = self.grads.split_at_mut(index + 1);
            let grad_output = match after.first() {
                Some(next) => next.view(),
                None => self.grad_logits.view(),
            };
            let node = &mut self.nodes[index];
            if let (true, 0, Some(layer)) = (params_only, index, node.weights()) {
                layer.backward_params_only(grad_output);
                self.input_grad_norms.push(None);
                continue;
            }
            let grad_input: ArrayViewMut2<'_, F> = before[index].view_mut();
            node.layer().backward_into(grad_output, grad_input);
            if node.has_weights() {
                let norm = sum_of_squares(&self.grads[index]).sqrt();
                self.input_grad_norms.push(Some(norm));
            }
        }
        self.input_grad_norms.reverse();
    }

    fn logits(&self) -> ArrayView2<'_, F> {
        match self.outputs.last() {
            Some(logits) => logits.view(),
            None => self.grad_logits.view(),
        }
    }
}

impl<F: Float, L: Level<F>> Model<F> for Sequential<F, L> {
    fn activation(&self) -> Activation {
        self.spec.activation()
    }

    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.forward_pass(input);
        self.logits().to_owned()
    }

    #[track_caller]
    fn loss(&mut self, targets: Targets<'_, F>) -> F {
        assert!(self.has_forward, "network loss called before forward");
        let logits = self.outputs.last().expect("a network has a layer");
        self.has_loss = true;
        match &mut self.loss {
            LossLayer::SoftmaxCrossEntropy(loss) => loss.forward(logits.view(), targets),
            LossLayer::Mse(loss) => loss.forward(logits.view(), targets),
        }
    }

    #[track_caller]
    fn backward(&mut self) -> Array2<F> {
        self.backward_pass(false);
        self.grads[0].clone()
    }

    fn backward_params_only(&mut self) {
        self.backward_pass(true);
    }

    fn signals(&self) -> Option<Signals<'_, F>> {
        // The output of the first activation after each weight layer but the last, read as
        // `Model::activation`'s kind. Where a weight layer has none before the next one, or
        // another kind, no output is listed at all: a positional list would put it on the
        // wrong layer.
        let mut hidden_outputs = Vec::new();
        let mut expected = false;
        let mut consistent = true;
        for (node, output) in self.nodes.iter().zip(&self.outputs) {
            if node.has_weights() {
                consistent &= !expected;
                expected = true;
            } else if expected && node.is_activation() {
                consistent &= node.activation_kind() == Some(self.spec.activation());
                hidden_outputs.push(output.view());
                expected = false;
            }
        }
        if !consistent {
            hidden_outputs.clear();
        }
        Some(Signals {
            hidden_outputs,
            input_grad_norms: self.input_grad_norms.clone(),
            max_abs_logit: if self.has_forward {
                max_abs(&self.logits())
            } else {
                f64::NAN
            },
        })
    }

    fn visit_linears(&mut self, mut visit: impl FnMut(usize, LinearMut<'_, F>)) {
        let weight_layers = self.nodes.iter_mut().filter_map(Node::weights);
        for (index, layer) in weight_layers.enumerate() {
            visit(index, layer.params_mut());
        }
    }

    fn visit_norms(&mut self, mut visit: impl FnMut(usize, NormMut<'_, F>)) {
        let norms = self.nodes.iter_mut().filter_map(Node::norm);
        for (index, norm) in norms.enumerate() {
            visit(index, norm.params_mut());
        }
    }

    fn set_training(&mut self, training: bool) {
        for node in &mut self.nodes {
            node.layer().set_training(training);
        }
    }

    fn zero_grad(&mut self) {
        // Through each layer's own zero_grad, so the harness sees a learner's.
        for node in &mut self.nodes {
            if let Some(layer) = node.weights() {
                layer.zero_grad();
            } else if let Some(norm) = node.norm() {
                norm.zero_grad();
            }
        }
    }

    fn train_step(
        &mut self,
        input: ArrayView2<'_, F>,
        targets: Targets<'_, F>,
        optimizer: &mut impl Optimizer<F>,
    ) -> F {
        // As the default, without copying the logits out of their buffer.
        self.zero_grad();
        self.forward_pass(input);
        let loss = self.loss(targets);
        self.backward_params_only();
        optimizer.step(self);
        loss
    }
}

impl<F: Float, L: Level<F>> fmt::Debug for Sequential<F, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequential")
            .field("level", &L::NAME)
            .field("layers", &self.spec.layers())
            .finish_non_exhaustive()
    }
}
