//! `Mlp`: the whole network over shared, preallocated buffers.

use backprop_core::flow::{Signals, max_abs, sum_of_squares};
use backprop_core::optim::{FusedStep, Tensor};
use backprop_core::{
    Activation, Float, Layout, LinearMut, LinearParams, LossKind, Model, Norm, NormMut, Optimizer,
    Targets,
};
use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::activation::{activation_backward_inplace, activation_inplace};
use crate::buffer::RowBuffer;
use crate::dropout::DropoutState;
use crate::gemm::gemm;
use crate::linear::{linear_forward, linear_param_grads};
use crate::mse::mse_inplace;
use crate::norm::NormState;
use crate::softmax_cross_entropy::softmax_cross_entropy_inplace;

/// Where the model is in the `forward -> loss -> backward` sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// No forward yet, or a training step has updated the weights since (its gradients belong
    /// to the old weights).
    Empty,
    /// The last layer's buffer holds the logits.
    Forward,
    /// The last layer's buffer holds dL/dlogits (the loss overwrote the logits in place).
    Loss,
}

/// A multi-layer perceptron that trains without allocating.
///
/// Buffers, each sized for the largest batch seen and reused at every step:
///
/// - `outputs[i]` `(batch, sizes[i + 1])`: layer i's output, after its activation, written in
///   place over `x W + b`. The activations' backward passes read it (ReLU: its sign; sigmoid and
///   tanh: their derivative in terms of the output). The last one holds the logits, then, once
///   the loss has run, dL/dlogits in their place;
/// - `grads[i]` `(batch, sizes[i + 1])` for hidden layers: dL/d(pre-activation), written by the
///   product `g W^T` and then multiplied in place by the activation's derivative; during the
///   forward pass, half of layer i's product when its sum is cut in two
///   (`gemm::layer_forward_gemm`);
/// - the input gradient `(batch, sizes[0])`, only when [`Model::backward`] asks for it: training
///   ([`Model::train_step`], [`Model::backward_params_only`]) skips the first layer's `g W^T`;
/// - with normalization, each hidden layer's `NormState` (x̂ and its statistics), applied in
///   place over `outputs[i]` between `x W + b` and the activation, and in backward over
///   `grads[i]` after the activation's derivative;
/// - with dropout, `dropped[i]`: `outputs[i]` times the layer's mask, which the next `Linear`
///   reads (forward and its weight gradient), while `outputs[i]` keeps the activation's output
///   for its derivative.
///
/// For [`Model::signals`] (gradient statistics) the hidden `outputs` are read as they are; the
/// backward pass also records each layer's input-gradient norm (one pass over a buffer it just
/// wrote) and the loss the largest |logit| before overwriting the logits.
///
/// `zero_grad` only marks the gradients as zero: the next backward then writes them with
/// `beta = 0` instead of reading and adding. The result is the documented rule (accumulate until
/// `zero_grad`) without a pass over 200,000 gradients per step.
#[derive(Debug, Clone)]
pub struct Mlp<F> {
    sizes: Vec<usize>,
    activation: Activation,
    loss_kind: LossKind,
    weights: Vec<Array2<F>>,
    biases: Vec<Array1<F>>,
    grad_weights: Vec<Array2<F>>,
    grad_biases: Vec<Array1<F>>,
    /// True after `zero_grad`: the stored gradients are stale and mean zero.
    grads_are_zero: bool,
    /// `forward` keeps its input here for `backward` (`train_step` reads the caller's directly).
    input_copy: RowBuffer<F>,
    outputs: Vec<RowBuffer<F>>,
    grads: Vec<RowBuffer<F>>,
    grad_input: RowBuffer<F>,
    /// Half of the last layer's forward sum when it is cut (grads[i] serves the others).
    last_sum_rest: RowBuffer<F>,
    /// One per hidden layer, or none.
    norms: Vec<NormState<F>>,
    dropouts: Vec<DropoutState<F>>,
    dropped: Vec<RowBuffer<F>>,
    stage: Stage,
    loss: F,
    /// ‖dL/d(input of Linear i)‖ of the last backward (`None` where it was skipped), and the
    /// largest |logit| of the last loss: the two signals the buffers do not keep.
    input_grad_norms: Vec<Option<f64>>,
    max_abs_logit: f64,
}

impl<F: Float> Mlp<F> {
    /// An MLP over the given `(weight (fan_in, fan_out), bias)` layers.
    ///
    /// # Panics
    /// If `layers` is empty or consecutive shapes do not chain.
    #[track_caller]
    pub fn new(layers: LinearParams<F>, layout: &Layout) -> Self {
        assert!(!layers.is_empty(), "an MLP needs at least one Linear layer");
        let mut sizes = vec![layers[0].0.nrows()];
        for (index, (weight, bias)) in layers.iter().enumerate() {
            assert_eq!(
                weight.nrows(),
                sizes[index],
                "layer {index}: weight {:?} does not take the previous layer's {} outputs",
                weight.dim(),
                sizes[index]
            );
            assert_eq!(
                bias.len(),
                weight.ncols(),
                "layer {index}: bias of {} for weight {:?}",
                bias.len(),
                weight.dim()
            );
            sizes.push(weight.ncols());
        }
        let depth = layers.len();
        let hidden = &sizes[1..depth];
        let norms = match layout.norm {
            Norm::None => Vec::new(),
            kind => hidden
                .iter()
                .map(|&width| NormState::new(kind, width))
                .collect(),
        };
        let dropouts: Vec<_> = (0..hidden.len() as u64)
            .filter(|_| layout.dropout > 0.0)
            .map(|index| DropoutState::new(layout.dropout, layout.seed.wrapping_add(index)))
            .collect();
        let (weights, biases): (Vec<_>, Vec<_>) = layers.into_iter().unzip();
        Mlp {
            dropped: vec![RowBuffer::default(); dropouts.len()],
            norms,
            dropouts,
            grad_weights: weights.iter().map(|w| Array2::zeros(w.raw_dim())).collect(),
            grad_biases: biases.iter().map(|b| Array1::zeros(b.raw_dim())).collect(),
            weights,
            biases,
            sizes,
            activation: layout.activation,
            loss_kind: layout.loss,
            grads_are_zero: false,
            input_copy: RowBuffer::default(),
            outputs: vec![RowBuffer::default(); depth],
            grads: vec![RowBuffer::default(); depth - 1],
            grad_input: RowBuffer::default(),
            last_sum_rest: RowBuffer::default(),
            stage: Stage::Empty,
            loss: F::zero(),
            input_grad_norms: vec![None; depth],
            max_abs_logit: f64::NAN,
        }
    }

    /// Bytes held by the activation and gradient buffers (their capacity), not counting the
    /// parameters and their gradients.
    pub fn buffer_bytes(&self) -> usize {
        let buffers = self
            .outputs
            .iter()
            .chain(&self.grads)
            .chain(&self.dropped)
            .chain([&self.input_copy, &self.grad_input, &self.last_sum_rest]);
        buffers.map(RowBuffer::bytes).sum()
    }

    #[track_caller]
    fn forward_pass(&mut self, input: ArrayView2<'_, F>) {
        assert_eq!(
            input.ncols(),
            self.sizes[0],
            "MLP input has shape {:?} but the first layer takes {} features",
            input.dim(),
            self.sizes[0]
        );
        let batch = input.nrows();
        for (output, &width) in self.outputs.iter_mut().zip(&self.sizes[1..]) {
            output.resize(batch, width);
        }
        let depth = self.weights.len();
        for index in 0..depth {
            let (earlier, rest) = self.outputs.split_at_mut(index);
            let layer_input = match (index, self.dropped.get(index.wrapping_sub(1))) {
                (0, _) => input,
                (_, Some(dropped)) => dropped.view(),
                (_, None) => earlier[index - 1].view(),
            };
            // outputs[i] <- activation(norm(h W_i + b_i)), each in place. The product's sum cut
            // in two keeps one half in grads[i], free until backward, or for the last layer in
            // a buffer of its own.
            let (weight, bias) = (self.weights[index].view(), &self.biases[index]);
            let sum_rest = match self.grads.get_mut(index) {
                Some(grad) => grad,
                None => &mut self.last_sum_rest,
            };
            linear_forward(layer_input, weight, bias, rest[0].view_mut(), sum_rest);
            if index + 1 == depth {
                break;
            }
            if let Some(norm) = self.norms.get_mut(index) {
                norm.forward_inplace(rest[0].view_mut());
            }
            activation_inplace(self.activation, rest[0].view_mut());
            // dropped[i] <- outputs[i] m / (1 - p), for the next Linear.
            if let (Some(dropout), Some(dropped)) =
                (self.dropouts.get_mut(index), self.dropped.get_mut(index))
            {
                dropped.resize(batch, rest[0].view().ncols());
                dropout.forward_into(rest[0].view(), dropped.view_mut());
            }
        }
        self.stage = Stage::Forward;
    }

    #[track_caller]
    fn loss_pass(&mut self, targets: Targets<'_, F>) -> F {
        assert!(
            self.stage == Stage::Forward,
            "level03 Mlp: loss needs a forward first (the last loss already turned the logits \
             into their gradient, in place)"
        );
        let logits = self
            .outputs
            .last_mut()
            .expect("at least one layer")
            .view_mut();
        let shape = logits.dim();
        self.max_abs_logit = max_abs(&logits); // the loss overwrites them with their gradient
        self.loss = match self.loss_kind {
            LossKind::SoftmaxCrossEntropy => {
                softmax_cross_entropy_inplace(logits, targets.expect_classes(shape))
            }
            LossKind::Mse => mse_inplace(logits, targets.expect_values(shape)),
        };
        self.stage = Stage::Loss;
        self.loss
    }

    /// The chain rule, last layer first, from dL/dlogits in the last output buffer.
    ///
    /// With `fused` (training, no input gradient), each parameter group is updated as soon as
    /// its gradient is final and its old value has been read for the last time: layer i > 0
    /// right after `g W_i^T`, a normalization layer right after its backward, and the first
    /// weight piece by piece inside its own gradient product.
    #[track_caller]
    fn backward_pass(
        &mut self,
        input: ArrayView2<'_, F>,
        want_grad_input: bool,
        mut fused: Option<&mut FusedStep<'_, F>>,
    ) {
        assert!(
            self.stage == Stage::Loss,
            "level03 Mlp: backward needs a loss first"
        );
        debug_assert!(
            !(want_grad_input && fused.is_some()),
            "g W0^T reads the old W0"
        );
        let batch = input.nrows();
        for (grad, &width) in self.grads.iter_mut().zip(&self.sizes[1..]) {
            grad.resize(batch, width);
        }
        let overwrite = self.grads_are_zero;
        for index in (0..self.weights.len()).rev() {
            self.layer_param_grads(input, index, overwrite, fused.as_deref_mut());
            if index > 0 {
                self.backward_below(index, overwrite, fused.as_deref_mut());
            } else if want_grad_input {
                // dL/dx = g W^T, only when asked for.
                self.grad_input.resize(batch, self.sizes[0]);
                let grad = match self.weights.len() == 1 {
                    true => self.outputs[0].view(),
                    false => self.grads[0].view(),
                };
                let weight_t = self.weights[0].t();
                gemm(
                    F::one(),
                    grad,
                    weight_t,
                    F::zero(),
                    self.grad_input.view_mut(),
                );
                self.input_grad_norms[0] = Some(sum_of_squares(&self.grad_input.view()).sqrt());
            } else {
                self.input_grad_norms[0] = None;
            }
        }
        self.grads_are_zero = false;
    }

    /// Layer `index`'s dW and db; with `fused`, the first layer's W and b are updated here.
    fn layer_param_grads(
        &mut self,
        input: ArrayView2<'_, F>,
        index: usize,
        overwrite: bool,
        fused: Option<&mut FusedStep<'_, F>>,
    ) {
        // g = dL/dz_i: the loss gradient for the last layer, grads[i] below it.
        let grad = match index + 1 == self.weights.len() {
            true => self.outputs[index].view(),
            false => self.grads[index].view(),
        };
        let layer_input = match (index, self.dropped.get(index.wrapping_sub(1))) {
            (0, _) => input,
            (_, Some(dropped)) => dropped.view(),
            (_, None) => self.outputs[index - 1].view(),
        };
        let grads = (
            self.grad_weights[index].view_mut(),
            self.grad_biases[index].view_mut(),
        );
        let Some(fused) = fused.filter(|_| index == 0) else {
            linear_param_grads(layer_input, grad, grads, overwrite, None);
            return;
        };
        let weight_update = (self.weights[0].view_mut(), fused.tensor(0, Tensor::Weight));
        linear_param_grads(layer_input, grad, grads, overwrite, Some(weight_update));
        let bias = self.biases[0].view_mut().insert_axis(Axis(0));
        let grad_bias = self.grad_biases[0].view().insert_axis(Axis(0));
        fused.tensor(0, Tensor::Bias).apply(bias, grad_bias);
    }

    /// `grads[index - 1]` from layer `index`'s output gradient: `g W^T`, then back through
    /// dropout, the activation and the normalization, each in place. With `fused`, layer
    /// `index` and the normalization are updated once their old values are read.
    fn backward_below(
        &mut self,
        index: usize,
        overwrite: bool,
        mut fused: Option<&mut FusedStep<'_, F>>,
    ) {
        let depth = self.weights.len();
        let (lower, upper) = self.grads.split_at_mut(index);
        let grad = match index + 1 == depth {
            true => self.outputs[index].view(),
            false => upper[0].view(),
        };
        let below = &mut lower[index - 1];
        gemm(
            F::one(),
            grad,
            self.weights[index].t(),
            F::zero(),
            below.view_mut(),
        );
        if let Some(fused) = fused.as_deref_mut() {
            let layer = LinearMut {
                weight: self.weights[index].view_mut(),
                bias: self.biases[index].view_mut(),
                grad_weight: self.grad_weights[index].view_mut(),
                grad_bias: self.grad_biases[index].view_mut(),
            };
            fused.update_group(index, layer);
        }
        self.input_grad_norms[index] = Some(sum_of_squares(&below.view()).sqrt());
        if let Some(dropout) = self.dropouts.get(index - 1) {
            dropout.backward_inplace(below.view_mut());
        }
        let output = self.outputs[index - 1].view();
        activation_backward_inplace(self.activation, below.view_mut(), output);
        if let Some(norm) = self.norms.get_mut(index - 1) {
            norm.backward_inplace(below.view_mut(), overwrite);
            if let Some(fused) = fused {
                fused.update_group(depth + index - 1, norm.params_mut().into_linear());
            }
        }
    }

    /// Makes every parameter group ready for a fused step, in `visit_params`' order.
    fn prepare(&self, fused: &mut FusedStep<'_, F>) {
        for (index, weight) in self.weights.iter().enumerate() {
            fused.prepare(index, weight.dim(), weight.ncols());
        }
        let depth = self.weights.len();
        for (index, norm) in self.norms.iter().enumerate() {
            let features = norm.grad_gamma.len();
            fused.prepare(depth + index, (1, features), features);
        }
    }

    /// The marked zeros become real ones before anybody reads the gradients.
    fn materialize_zero_grads(&mut self) {
        if !self.grads_are_zero {
            return;
        }
        let linear = self
            .grad_weights
            .iter_mut()
            .map(|grad| grad.view_mut().into_dyn());
        let biases = self
            .grad_biases
            .iter_mut()
            .map(|grad| grad.view_mut().into_dyn());
        let norms = self.norms.iter_mut().flat_map(|norm| {
            [
                norm.grad_gamma.view_mut().into_dyn(),
                norm.grad_beta.view_mut().into_dyn(),
            ]
        });
        linear
            .chain(biases)
            .chain(norms)
            .for_each(|mut grad| grad.fill(F::zero()));
        self.grads_are_zero = false;
    }

    /// Runs `pass` with the input kept by `forward`.
    fn with_input_copy(&mut self, pass: impl FnOnce(&mut Self, ArrayView2<'_, F>)) {
        let input_copy = std::mem::take(&mut self.input_copy);
        pass(self, input_copy.view());
        self.input_copy = input_copy;
    }
}

impl<F: Float> Model<F> for Mlp<F> {
    fn activation(&self) -> Activation {
        self.activation
    }

    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.input_copy.resize(input.nrows(), input.ncols());
        self.input_copy.view_mut().assign(&input);
        self.with_input_copy(|model, input| model.forward_pass(input));
        self.outputs
            .last()
            .expect("at least one layer")
            .view()
            .to_owned()
    }

    #[track_caller]
    fn loss(&mut self, targets: Targets<'_, F>) -> F {
        self.loss_pass(targets)
    }

    #[track_caller]
    fn backward(&mut self) -> Array2<F> {
        self.with_input_copy(|model, input| model.backward_pass(input, true, None));
        self.grad_input.view().to_owned()
    }

    #[track_caller]
    fn backward_params_only(&mut self) {
        self.with_input_copy(|model, input| model.backward_pass(input, false, None));
    }

    fn signals(&self) -> Option<Signals<'_, F>> {
        let hidden = &self.outputs[..self.outputs.len() - 1];
        Some(Signals {
            hidden_outputs: hidden.iter().map(RowBuffer::view).collect(),
            input_grad_norms: self.input_grad_norms.clone(),
            max_abs_logit: self.max_abs_logit,
        })
    }

    fn visit_linears(&mut self, mut visit: impl FnMut(usize, LinearMut<'_, F>)) {
        self.materialize_zero_grads();
        let layers = self.weights.iter_mut().zip(&mut self.biases);
        let grads = self.grad_weights.iter_mut().zip(&mut self.grad_biases);
        for (index, ((weight, bias), (grad_weight, grad_bias))) in layers.zip(grads).enumerate() {
            visit(
                index,
                LinearMut {
                    weight: weight.view_mut(),
                    bias: bias.view_mut(),
                    grad_weight: grad_weight.view_mut(),
                    grad_bias: grad_bias.view_mut(),
                },
            );
        }
    }

    fn visit_norms(&mut self, mut visit: impl FnMut(usize, NormMut<'_, F>)) {
        self.materialize_zero_grads();
        for (index, norm) in self.norms.iter_mut().enumerate() {
            visit(index, norm.params_mut());
        }
    }

    fn set_training(&mut self, training: bool) {
        self.norms
            .iter_mut()
            .for_each(|norm| norm.training = training);
        self.dropouts
            .iter_mut()
            .for_each(|dropout| dropout.training = training);
    }

    fn zero_grad(&mut self) {
        self.grads_are_zero = true;
    }

    /// One step straight from the caller's batch: no copy of the input, no gradient for it.
    #[track_caller]
    fn train_step(
        &mut self,
        input: ArrayView2<'_, F>,
        targets: Targets<'_, F>,
        optimizer: &mut impl Optimizer<F>,
    ) -> F {
        self.zero_grad();
        self.forward_pass(input);
        let loss = self.loss_pass(targets);
        // The update inside the backward pass when the optimizer offers it, else after it.
        if let Some(mut fused) = optimizer.fused_step() {
            self.prepare(&mut fused);
            self.backward_pass(input, false, Some(&mut fused));
        } else {
            self.backward_pass(input, false, None);
            optimizer.step(self);
        }
        self.stage = Stage::Empty; // the gradient buffers now belong to the old weights
        loss
    }
}
