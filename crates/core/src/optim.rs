//! Optimizers: SGD (plain, momentum, Nesterov, weight decay) and Adam, outside the model.
//!
//! An optimizer owns its state (velocities, moment estimates) and updates a model's parameters
//! from their gradients through [`Model::visit_params`] (every `Linear`'s weight and bias, then
//! every normalization layer's gamma and beta), so one optimizer serves every level.
//! The formulas are PyTorch's (`torch.optim.SGD` and `torch.optim.Adam`, order of operations
//! included but for one reciprocal in Adam), and the harness's gate 4 checks three steps of each
//! against PyTorch.
//!
//! `Sgd::new(0.1).with_momentum(0.9).with_nesterov()` and `Adam::new(1e-3)` each step any
//! level's model with `model.train_step(inputs, targets, &mut optimizer)` (runnable in level02's
//! crate docs).
//!
//! Each update is one elementwise pass per tensor over the parameter, its gradient and the
//! optimizer's state (a loop over slices, vectorized), cut into one piece per rayon thread when
//! the tensor is large (the first layer of an MNIST MLP). Cutting changes no result: every
//! element is computed on its own.

use multiversion::multiversion;
use ndarray::{Array, ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut2, Axis, Dimension};

use crate::{Float, LinearMut, LinearParams, Model};

/// Tensors with at least this many elements are updated on rayon (when the pool has more than
/// one thread). Measured for level03: a pass over a 128 x 256 hidden layer (32,768 elements)
/// costs more to hand off than to do; the first layer's 200,704 weights pay for it.
const PARALLEL_ELEMENTS: usize = 1 << 17;

/// Updates parameters from their gradients.
pub trait Optimizer<F: Float> {
    /// One update of every parameter of `model` from the gradients its last backward pass left.
    ///
    /// # Panics
    /// If the model's layer shapes differ from those of the model the optimizer stepped before
    /// (its state belongs to one model).
    fn step(&mut self, model: &mut impl Model<F>);

    /// Starts a step that the model applies itself, tensor by tensor and piece by piece, right
    /// where its backward pass leaves each gradient (level03 updates each half of its first
    /// weight on the thread that computed that half of the gradient): see [`FusedStep`]. The
    /// result is the same, bit for bit, as [`step`](Optimizer::step). `None`, the default, for
    /// an optimizer without that path: the model then calls `step`.
    fn fused_step(&mut self) -> Option<FusedStep<'_, F>> {
        None
    }
}

/// One tensor of optimizer state per parameter of a `Linear` layer.
#[derive(Debug, Clone)]
struct LayerState<F> {
    weight: Array<F, ndarray::Ix2>,
    bias: Array<F, ndarray::Ix1>,
}

impl<F: Float> LayerState<F> {
    /// The state of parameter group `index`, created as zeros on the first step.
    #[track_caller]
    fn of(states: &mut Vec<Self>, index: usize, weight: (usize, usize), bias: usize) -> &mut Self {
        if index == states.len() {
            states.push(LayerState {
                weight: Array::zeros(weight),
                bias: Array::zeros(bias),
            });
        }
        assert!(
            index < states.len(),
            "optimizer state of parameter group {index} asked before group {}: prepare every \
             group in order",
            states.len()
        );
        let state = &mut states[index];
        assert!(
            state.weight.dim() == weight && state.bias.len() == bias,
            "optimizer state of layer {index} is for a weight {:?}, but the model's is {weight:?}: \
             an optimizer belongs to one model",
            state.weight.dim(),
        );
        state
    }

    /// One of the two tensors, as a matrix (a bias as one row).
    fn tensor(&mut self, tensor: Tensor) -> ArrayViewMut2<'_, F> {
        match tensor {
            Tensor::Weight => self.weight.view_mut(),
            Tensor::Bias => self.bias.view_mut().insert_axis(Axis(0)),
        }
    }
}

/// The names of the optimizers' state buffers, as checkpoints store them.
pub mod buffer {
    /// SGD with momentum's velocity.
    pub const VELOCITY: &str = "velocity";
    /// Adam's running mean of the gradient.
    pub const FIRST_MOMENT: &str = "first_moment";
    /// Adam's running mean of the squared gradient.
    pub const SECOND_MOMENT: &str = "second_moment";
}

/// An optimizer's state between two steps, for a checkpoint: its step count and its buffers by
/// name, one `(weight, bias)` pair per layer (no pair before the first step). Restored into a
/// fresh optimizer of the same kind and settings ([`AnyOptimizer::restore`]), it continues a run
/// exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<F> {
    /// Steps taken (Adam's bias correction reads it; SGD keeps 0).
    pub steps: u32,
    /// `("velocity", ..)` for SGD, `("first_moment", ..)` and `("second_moment", ..)` for Adam.
    pub buffers: Vec<(&'static str, LinearParams<F>)>,
}

impl<F: Float> LayerState<F> {
    fn to_params(states: &[Self]) -> LinearParams<F> {
        states
            .iter()
            .map(|state| (state.weight.clone(), state.bias.clone()))
            .collect()
    }

    fn from_params(params: LinearParams<F>) -> Vec<Self> {
        params
            .into_iter()
            .map(|(weight, bias)| LayerState { weight, bias })
            .collect()
    }
}

/// Runs `kernel(params, grads, states)` over a parameter, its gradient and `N` state tensors of
/// the same shape, given as matching slices: the kernel is one loop over zipped slices, which the
/// compiler vectorizes.
///
/// When every tensor is contiguous in the same memory order (every built-in level's are), the
/// kernel gets whole slices, and large tensors are cut into one contiguous piece per rayon
/// thread (`rayon::join`, no allocation). Otherwise it gets one element at a time, in logical
/// order. Every element is computed on its own, so the cut changes no result.
fn update_elements<F: Float, D: Dimension, const N: usize>(
    mut param: ArrayViewMut<'_, F, D>,
    grad: ArrayView<'_, F, D>,
    mut states: [ArrayViewMut<'_, F, D>; N],
    kernel: impl Fn(&mut [F], &[F], [&mut [F]; N]) + Sync,
) {
    let strides = param.strides();
    let same_layout =
        grad.strides() == strides && states.iter().all(|state| state.strides() == strides);
    let grad_slice = grad.as_slice_memory_order();
    match (same_layout, param.as_slice_memory_order_mut(), grad_slice) {
        (true, Some(param), Some(grad)) => {
            let states = states.each_mut().map(|state| {
                state
                    .as_slice_memory_order_mut()
                    .expect("the same strides as the contiguous parameter")
            });
            let pieces = if param.len() >= PARALLEL_ELEMENTS {
                rayon::current_num_threads()
            } else {
                1
            };
            in_pieces(pieces, param, grad, states, &kernel);
        }
        _ => {
            // Lane by lane along the last axis (a piece of a matrix cut by columns has
            // contiguous rows), each lane as slices when all are contiguous, else element by
            // element; every tensor in logical order.
            let last = Axis(param.ndim().saturating_sub(1));
            let mut state_lanes = states
                .each_mut()
                .map(|state| state.lanes_mut(last).into_iter());
            for (mut param, grad) in param.lanes_mut(last).into_iter().zip(grad.lanes(last)) {
                let mut states = state_lanes
                    .each_mut()
                    .map(|lanes| lanes.next().expect("same shape"));
                let all_slices = grad.as_slice().is_some()
                    && states.iter().all(|state| state.as_slice().is_some());
                match (all_slices, param.as_slice_mut()) {
                    (true, Some(param)) => {
                        let states = states
                            .each_mut()
                            .map(|state| state.as_slice_mut().expect("checked to be contiguous"));
                        kernel(param, grad.as_slice().expect("checked"), states);
                    }
                    _ => {
                        let mut states = states.each_mut().map(|state| state.iter_mut());
                        for (p, g) in param.iter_mut().zip(&grad) {
                            let states = states
                                .each_mut()
                                .map(|state| state.next().expect("same shape"));
                            let states = states.map(std::slice::from_mut);
                            kernel(std::slice::from_mut(p), std::slice::from_ref(g), states);
                        }
                    }
                }
            }
        }
    }
}

/// `kernel` over matching slices, cut into `pieces` contiguous parts run by `rayon::join`.
fn in_pieces<F: Float, const N: usize>(
    pieces: usize,
    param: &mut [F],
    grad: &[F],
    states: [&mut [F]; N],
    kernel: &(impl Fn(&mut [F], &[F], [&mut [F]; N]) + Sync),
) {
    if pieces <= 1 {
        kernel(param, grad, states);
        return;
    }
    let middle = param.len() * (pieces / 2) / pieces;
    let (param_first, param_rest) = param.split_at_mut(middle);
    let (grad_first, grad_rest) = grad.split_at(middle);
    let mut halves = states.map(|state| {
        let (first, rest) = state.split_at_mut(middle);
        (Some(first), Some(rest))
    });
    let states_first = halves
        .each_mut()
        .map(|half| half.0.take().expect("just split"));
    let states_rest = halves
        .each_mut()
        .map(|half| half.1.take().expect("just split"));
    rayon::join(
        || in_pieces(pieces / 2, param_first, grad_first, states_first, kernel),
        || {
            in_pieces(
                pieces - pieces / 2,
                param_rest,
                grad_rest,
                states_rest,
                kernel,
            )
        },
    );
}

/// Which tensor of a parameter group (a `Linear`'s weight and bias; a normalization layer's
/// gamma and beta, in [`Model::visit_params`]' order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensor {
    /// The weight (gamma for a normalization layer).
    Weight,
    /// The bias (beta), a matrix of one row here.
    Bias,
}

/// One step's per-element rule and its scalars, already in `F`.
#[derive(Debug, Clone, Copy)]
enum Rule<F> {
    /// `p <- p - lr (g + decay p)`; `decay` `None` reads p once less.
    Plain { lr: F, decay: Option<F> },
    /// Momentum or Nesterov over one velocity.
    Momentum {
        lr: F,
        decay: F,
        momentum: F,
        nesterov: bool,
    },
    /// Adam over two moment estimates.
    Adam {
        step_size: F,
        inverse_correction2_sqrt: F,
        one_minus_beta1: F,
        beta2: F,
        one_minus_beta2: F,
        eps: F,
        decay: F,
    },
}

impl<F: Float> Rule<F> {
    /// State tensors per parameter: 0, 1 (velocity) or 2 (first and second moments).
    fn states(self) -> usize {
        match self {
            Rule::Plain { .. } => 0,
            Rule::Momentum { .. } => 1,
            Rule::Adam { .. } => 2,
        }
    }

    /// The update of one tensor (or piece of one) and its state.
    ///
    /// The kernels are `move` closures over the loops below: the scalars are copied into them,
    /// so the loops keep them in registers. Captured by reference, they might alias the state
    /// slices for all the compiler knows; it then reloads them at every element and does not
    /// vectorize (Nesterov ran 4x slower that way).
    fn apply(
        self,
        param: ArrayViewMut2<'_, F>,
        grad: ArrayView2<'_, F>,
        [first, second]: [Option<ArrayViewMut2<'_, F>>; 2],
    ) {
        match self {
            Rule::Plain { lr, decay } => update_elements(param, grad, [], move |ps, gs, []| {
                plain_loop(ps, gs, lr, decay);
            }),
            Rule::Momentum {
                lr,
                decay,
                momentum,
                nesterov,
            } => {
                let velocity = [first.expect("a velocity")];
                update_elements(param, grad, velocity, move |ps, gs, [vs]| {
                    momentum_loop(ps, gs, vs, [lr, decay, momentum], nesterov);
                });
            }
            Rule::Adam { .. } => {
                let moments = [first, second].map(|moment| moment.expect("two moments"));
                update_elements(param, grad, moments, move |ps, gs, [ms, vs]| {
                    adam_loop(ps, gs, [ms, vs], self);
                });
            }
        }
    }
}

// The loops, each compiled twice (multiversion): for the baseline instruction set and for AVX2,
// picked at run time by the processor. Both compute every element with the same operations in
// the same order (no fused multiply-add is formed from separate `*` and `+`), so the results are
// the same on any processor.

/// `p <- p - lr (g + decay p)`, or `p <- p - lr g` without decay (one read of p less).
#[multiversion(targets("x86_64+avx2+fma"))]
fn plain_loop<F: Float>(params: &mut [F], grads: &[F], lr: F, decay: Option<F>) {
    match decay {
        None => {
            for (p, &g) in params.iter_mut().zip(grads) {
                *p -= lr * g;
            }
        }
        Some(decay) => {
            for (p, &g) in params.iter_mut().zip(grads) {
                *p -= lr * (g + decay * *p);
            }
        }
    }
}

/// Momentum or Nesterov, one loop per variant (a branch inside would keep it from vectorizing).
#[multiversion(targets("x86_64+avx2+fma"))]
fn momentum_loop<F: Float>(
    params: &mut [F],
    grads: &[F],
    velocities: &mut [F],
    [lr, decay, momentum]: [F; 3],
    nesterov: bool,
) {
    let elements = params.iter_mut().zip(grads).zip(velocities);
    if nesterov {
        for ((p, &g), v) in elements {
            let g = g + decay * *p;
            *v = momentum * *v + g;
            *p -= lr * (g + momentum * *v);
        }
    } else {
        for ((p, &g), v) in elements {
            *v = momentum * *v + (g + decay * *p);
            *p -= lr * *v;
        }
    }
}

/// Adam's update of one piece and its two moments.
#[multiversion(targets("x86_64+avx2+fma"))]
fn adam_loop<F: Float>(
    params: &mut [F],
    grads: &[F],
    [firsts, seconds]: [&mut [F]; 2],
    rule: Rule<F>,
) {
    let Rule::Adam {
        step_size,
        inverse_correction2_sqrt,
        one_minus_beta1,
        beta2,
        one_minus_beta2,
        eps,
        decay,
    } = rule
    else {
        unreachable!("called for Adam only")
    };
    let elements = params.iter_mut().zip(grads).zip(firsts).zip(seconds);
    for (((p, &g), m), v) in elements {
        let g = g + decay * *p;
        *m += one_minus_beta1 * (g - *m);
        *v = *v * beta2 + one_minus_beta2 * g * g;
        let denominator = v.sqrt() * inverse_correction2_sqrt + eps;
        *p -= step_size * (*m / denominator);
    }
}

/// A step that the model applies itself, from [`Optimizer::fused_step`].
///
/// The model first calls [`prepare`](FusedStep::prepare) for every parameter group in
/// [`Model::visit_params`]' order (the state is created on the first step), then, in any order,
/// takes each tensor's [`TensorUpdate`], cuts it as it cuts the tensor and applies each piece
/// once the piece's gradient is final (and after the last read of the old value). Every element
/// is updated by the same formula as in [`Optimizer::step`].
///
/// ```
/// use backprop_core::optim::{Optimizer, Sgd, Tensor};
/// use ndarray::{Axis, array};
///
/// let mut sgd = Sgd::<f64>::new(0.5).with_momentum(0.9);
/// let mut fused = sgd.fused_step().expect("SGD has a fused step");
/// fused.prepare(0, (2, 2), 2); // one Linear(2, 2)
/// let (mut weight, grad) = (array![[1.0, 2.0], [3.0, 4.0]], array![[2.0, 2.0], [4.0, 4.0]]);
/// let (top, bottom) = fused.tensor(0, Tensor::Weight).split_at(Axis(0), 1);
/// let (weight_top, weight_bottom) = weight.view_mut().split_at(Axis(0), 1);
/// top.apply(weight_top, grad.slice(ndarray::s![..1, ..]));
/// bottom.apply(weight_bottom, grad.slice(ndarray::s![1.., ..]));
/// assert_eq!(weight, array![[0.0, 1.0], [1.0, 2.0]]);
/// ```
#[derive(Debug)]
pub struct FusedStep<'o, F> {
    rule: Rule<F>,
    /// The velocities, or the first and second moments.
    states: [Option<&'o mut Vec<LayerState<F>>>; 2],
}

impl<'o, F: Float> FusedStep<'o, F> {
    fn new(rule: Rule<F>, states: [Option<&'o mut Vec<LayerState<F>>>; 2]) -> Self {
        FusedStep { rule, states }
    }

    /// Makes parameter group `index` ready: a weight of shape `weight` and a bias of `bias`
    /// entries (a normalization layer's gamma `(1, features)` and beta `features`).
    ///
    /// # Panics
    /// If the groups are not prepared in order, or a group's shapes differ from the model the
    /// optimizer stepped before.
    #[track_caller]
    pub fn prepare(&mut self, index: usize, weight: (usize, usize), bias: usize) {
        for states in self.states.iter_mut().flatten() {
            LayerState::of(states, index, weight, bias);
        }
    }

    /// The update of `tensor` of parameter group `index` (prepared before).
    ///
    /// # Panics
    /// If the group was not prepared.
    #[track_caller]
    pub fn tensor(&mut self, index: usize, tensor: Tensor) -> TensorUpdate<'_, F> {
        let states = self.states.each_mut().map(|states| {
            states.as_mut().map(|states| {
                let state = states
                    .get_mut(index)
                    .unwrap_or_else(|| panic!("parameter group {index} was not prepared"));
                state.tensor(tensor)
            })
        });
        debug_assert_eq!(states.iter().flatten().count(), self.rule.states());
        TensorUpdate {
            rule: self.rule,
            states,
        }
    }

    /// Updates the whole of parameter group `index` (prepared before) from its gradients.
    #[track_caller]
    pub fn update_group(&mut self, index: usize, layer: LinearMut<'_, F>) {
        let weight_grad = layer.grad_weight.view();
        self.tensor(index, Tensor::Weight)
            .apply(layer.weight, weight_grad);
        let bias_grad = layer.grad_bias.view().insert_axis(Axis(0));
        self.tensor(index, Tensor::Bias)
            .apply(layer.bias.insert_axis(Axis(0)), bias_grad);
    }

    /// Applies the whole step to `model` (what [`Optimizer::step`] does).
    #[track_caller]
    fn apply_to(mut self, model: &mut impl Model<F>) {
        model.visit_params(|index, layer| {
            self.prepare(index, layer.weight.dim(), layer.bias.len());
            self.update_group(index, layer);
        });
    }
}

/// The update of one tensor, or of a piece of one: [`split_at`](TensorUpdate::split_at) cuts
/// it as the model cuts the tensor, [`apply`](TensorUpdate::apply) runs it.
#[derive(Debug)]
pub struct TensorUpdate<'s, F> {
    rule: Rule<F>,
    states: [Option<ArrayViewMut2<'s, F>>; 2],
}

impl<'s, F: Float> TensorUpdate<'s, F> {
    /// The two pieces before and after `index` along `axis`.
    pub fn split_at(self, axis: Axis, index: usize) -> (Self, Self) {
        let [first, second] = self
            .states
            .map(|state| state.map(|state| state.split_at(axis, index)).unzip());
        let rule = self.rule;
        (
            TensorUpdate {
                rule,
                states: [first.0, second.0],
            },
            TensorUpdate {
                rule,
                states: [first.1, second.1],
            },
        )
    }

    /// Updates `param` from `grad` (both of this piece's shape) and this piece's state.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn apply(self, param: ArrayViewMut2<'_, F>, grad: ArrayView2<'_, F>) {
        for state in self.states.iter().flatten() {
            assert_eq!(
                state.dim(),
                param.dim(),
                "optimizer state of shape {:?} for a parameter of shape {:?}",
                state.dim(),
                param.dim()
            );
        }
        assert_eq!(
            grad.dim(),
            param.dim(),
            "gradient and parameter shapes differ"
        );
        self.rule.apply(param, grad, self.states);
    }
}

/// Stochastic gradient descent, as `torch.optim.SGD(lr, momentum, nesterov, weight_decay)`
/// (dampening 0):
///
/// ```text
/// g <- dL/dp + weight_decay p
/// v <- momentum v + g                      (v starts at 0, so the first v is g)
/// d <- g + momentum v   (Nesterov)   or   v   (momentum)   or   g   (plain, momentum 0)
/// p <- p - lr d
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<F> {
    /// The learning rate.
    pub lr: f64,
    /// The momentum factor, in `[0, 1)`; 0 is plain SGD.
    pub momentum: f64,
    /// Nesterov's look-ahead (needs a momentum above 0).
    pub nesterov: bool,
    /// L2 penalty added to the gradient: `g + weight_decay p`.
    pub weight_decay: f64,
    velocity: Vec<LayerState<F>>,
}

impl<F: Float> Sgd<F> {
    /// Plain SGD: `p <- p - lr dL/dp`.
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            velocity: Vec::new(),
        }
    }

    /// With momentum (PyTorch's form: `v <- momentum v + g`, `p <- p - lr v`).
    pub fn with_momentum(self, momentum: f64) -> Self {
        Sgd { momentum, ..self }
    }

    /// With Nesterov momentum.
    pub fn with_nesterov(self) -> Self {
        Sgd {
            nesterov: true,
            ..self
        }
    }

    /// With an L2 penalty on every parameter (weights and biases, as PyTorch).
    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        Sgd {
            weight_decay,
            ..self
        }
    }

    /// This step's rule.
    fn rule(&self) -> Rule<F> {
        let (lr, decay) = (F::of(self.lr), F::of(self.weight_decay));
        if self.momentum == 0.0 {
            // Without decay, the pass reads p once less per element (it runs at every step).
            let decay = (self.weight_decay != 0.0).then_some(decay);
            Rule::Plain { lr, decay }
        } else {
            let (momentum, nesterov) = (F::of(self.momentum), self.nesterov);
            Rule::Momentum {
                lr,
                decay,
                momentum,
                nesterov,
            }
        }
    }

    /// Plain SGD keeps no state; momentum a velocity per parameter.
    fn begin(&mut self) -> FusedStep<'_, F> {
        let rule = self.rule();
        let velocity = (self.momentum != 0.0).then_some(&mut self.velocity);
        FusedStep::new(rule, [velocity, None])
    }
}

impl<F: Float> Optimizer<F> for Sgd<F> {
    #[track_caller]
    fn step(&mut self, model: &mut impl Model<F>) {
        self.begin().apply_to(model);
    }

    fn fused_step(&mut self) -> Option<FusedStep<'_, F>> {
        Some(self.begin())
    }
}

/// Adam, as `torch.optim.Adam(lr, betas, eps, weight_decay)` (not AMSGrad, not AdamW):
///
/// ```text
/// t <- t + 1;   g <- dL/dp + weight_decay p
/// m <- m + (1 - beta1) (g - m)             (m, v start at 0)
/// v <- beta2 v + (1 - beta2) g^2
/// p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// One difference in the order of operations: the division by `sqrt(1 - beta2^t)` is a
/// multiplication by its reciprocal (a division per parameter less; it can move the last bit).
#[derive(Debug, Clone)]
pub struct Adam<F> {
    /// The learning rate (PyTorch's default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment estimates (default 0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Steps taken so far.
    steps: u32,
    first_moment: Vec<LayerState<F>>,
    second_moment: Vec<LayerState<F>>,
}

impl<F: Float> Adam<F> {
    /// Adam with PyTorch's defaults but the learning rate: betas (0.9, 0.999), eps 1e-8, no
    /// weight decay.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            first_moment: Vec::new(),
            second_moment: Vec::new(),
        }
    }

    /// With an L2 penalty added to every gradient.
    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        Adam {
            weight_decay,
            ..self
        }
    }

    /// Counts the step and returns its rule, over the two moment estimates.
    fn begin(&mut self) -> FusedStep<'_, F> {
        self.steps += 1;
        // The scalars in f64, as PyTorch computes them in Python floats.
        let (beta1, beta2) = self.betas;
        let step = f64::from(self.steps);
        // PyTorch divides by sqrt(1 - beta2^t); multiplying by its reciprocal (one division in
        // f64 here) saves a division per parameter, the costliest part of the pass.
        let rule = Rule::Adam {
            step_size: F::of(self.lr / (1.0 - beta1.powf(step))),
            inverse_correction2_sqrt: F::of(1.0 / (1.0 - beta2.powf(step)).sqrt()),
            one_minus_beta1: F::of(1.0 - beta1),
            beta2: F::of(beta2),
            one_minus_beta2: F::of(1.0 - beta2),
            eps: F::of(self.eps),
            decay: F::of(self.weight_decay),
        };
        let moments = [Some(&mut self.first_moment), Some(&mut self.second_moment)];
        FusedStep::new(rule, moments)
    }
}

impl<F: Float> Optimizer<F> for Adam<F> {
    #[track_caller]
    fn step(&mut self, model: &mut impl Model<F>) {
        self.begin().apply_to(model);
    }

    fn fused_step(&mut self) -> Option<FusedStep<'_, F>> {
        Some(self.begin())
    }
}

/// One of the optimizers, chosen at run time (`backprop train --optimizer`, the fixtures).
#[derive(Debug, Clone)]
pub enum AnyOptimizer<F> {
    /// Plain, momentum or Nesterov SGD.
    Sgd(Sgd<F>),
    /// Adam.
    Adam(Adam<F>),
}

impl<F: Float> AnyOptimizer<F> {
    /// A copy of the state: what a checkpoint saves.
    pub fn state(&self) -> OptimizerState<F> {
        match self {
            AnyOptimizer::Sgd(sgd) => OptimizerState {
                steps: 0,
                buffers: vec![(buffer::VELOCITY, LayerState::to_params(&sgd.velocity))],
            },
            AnyOptimizer::Adam(adam) => OptimizerState {
                steps: adam.steps,
                buffers: vec![
                    (
                        buffer::FIRST_MOMENT,
                        LayerState::to_params(&adam.first_moment),
                    ),
                    (
                        buffer::SECOND_MOMENT,
                        LayerState::to_params(&adam.second_moment),
                    ),
                ],
            },
        }
    }

    /// The buffers this optimizer keeps between steps ([`buffer`]): none for plain SGD.
    pub fn buffer_names(&self) -> &'static [&'static str] {
        match self {
            AnyOptimizer::Sgd(sgd) if sgd.momentum == 0.0 => &[],
            AnyOptimizer::Sgd(_) => &[buffer::VELOCITY],
            AnyOptimizer::Adam(_) => &[buffer::FIRST_MOMENT, buffer::SECOND_MOMENT],
        }
    }

    /// Puts back a state taken by [`state`](AnyOptimizer::state) from an optimizer of the
    /// same kind and settings.
    ///
    /// # Errors
    /// The state lacks a buffer this optimizer keeps ([`buffer_names`](Self::buffer_names)):
    /// the message names it.
    pub fn restore(&mut self, state: OptimizerState<F>) -> Result<(), String> {
        let mut buffers = state.buffers;
        if let Some(missing) = self
            .buffer_names()
            .iter()
            .find(|name| !buffers.iter().any(|(buffer, _)| buffer == *name))
        {
            return Err(format!("the optimizer state has no {missing} buffer"));
        }
        let mut take = |name: &str| {
            buffers
                .iter_mut()
                .find(|(buffer, _)| *buffer == name)
                .map(|(_, params)| LayerState::from_params(std::mem::take(params)))
                .unwrap_or_default()
        };
        match self {
            // Plain SGD keeps no velocity: its buffer, if any, is empty.
            AnyOptimizer::Sgd(sgd) => sgd.velocity = take(buffer::VELOCITY),
            AnyOptimizer::Adam(adam) => {
                adam.steps = state.steps;
                adam.first_moment = take(buffer::FIRST_MOMENT);
                adam.second_moment = take(buffer::SECOND_MOMENT);
            }
        }
        Ok(())
    }
}

impl<F: Float> Optimizer<F> for AnyOptimizer<F> {
    #[track_caller]
    fn step(&mut self, model: &mut impl Model<F>) {
        match self {
            AnyOptimizer::Sgd(sgd) => sgd.step(model),
            AnyOptimizer::Adam(adam) => adam.step(model),
        }
    }

    fn fused_step(&mut self) -> Option<FusedStep<'_, F>> {
        match self {
            AnyOptimizer::Sgd(sgd) => sgd.fused_step(),
            AnyOptimizer::Adam(adam) => adam.fused_step(),
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    /// A parameter stored transposed (a learner's level may keep any layout) takes the
    /// element-by-element path; pieces of a matrix cut by columns (as level03 cuts a product
    /// whose output is wide) the row-by-row path; contiguous ones the slice path, cut in pieces
    /// on 2 threads. Three momentum steps give the same numbers on every path.
    #[test]
    fn every_memory_layout_and_thread_count_gives_the_same_update() {
        let shape = (400, 400); // 160,000 elements: cut in pieces on 2 threads
        let grad = Array2::from_shape_fn(shape, |(row, col)| ((row * 7 + col * 3) % 11) as f64);
        let sgd = Sgd::<f64>::new(0.1).with_momentum(0.9).with_nesterov();
        let run = |threads: usize, layout: &str| {
            let mut param = Array2::from_shape_fn(shape, |(row, col)| (row + 2 * col) as f64);
            if layout == "transposed" {
                param = param.t().as_standard_layout().into_owned().reversed_axes();
            }
            let mut velocity = Array2::zeros(shape);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            pool.expect("a rayon pool").install(|| {
                for _ in 0..3 {
                    if layout == "column pieces" {
                        let (param, velocity) = (param.view_mut(), velocity.view_mut());
                        let (param_left, param_right) = param.split_at(Axis(1), 150);
                        let (velocity_left, velocity_right) = velocity.split_at(Axis(1), 150);
                        let (grad_left, grad_right) = grad.view().split_at(Axis(1), 150);
                        let left = [Some(velocity_left), None];
                        sgd.rule().apply(param_left, grad_left, left);
                        let right = [Some(velocity_right), None];
                        sgd.rule().apply(param_right, grad_right, right);
                    } else {
                        let state = [Some(velocity.view_mut()), None];
                        sgd.rule().apply(param.view_mut(), grad.view(), state);
                    }
                }
            });
            (param.as_standard_layout().into_owned(), velocity)
        };
        let expected = run(1, "standard");
        assert_ne!(expected.0[[1, 2]], 5.0, "the update ran");
        assert_eq!(
            run(2, "standard"),
            expected,
            "cut in two pieces on 2 threads"
        );
        assert_eq!(
            run(1, "transposed"),
            expected,
            "a transposed parameter, element by element"
        );
        assert_eq!(
            run(1, "column pieces"),
            expected,
            "pieces cut by columns, row by row"
        );
    }

    /// A state without a buffer the optimizer keeps is refused by name, never started empty;
    /// plain SGD keeps none and restores from nothing.
    #[test]
    fn a_state_without_a_kept_buffer_is_refused_by_name() {
        let mut adam = AnyOptimizer::<f64>::Adam(Adam::new(0.01));
        let mut state = adam.state();
        state
            .buffers
            .retain(|(name, _)| *name != buffer::SECOND_MOMENT);
        assert_eq!(
            adam.restore(state),
            Err("the optimizer state has no second_moment buffer".to_string())
        );
        let mut momentum = AnyOptimizer::<f64>::Sgd(Sgd::new(0.1).with_momentum(0.9));
        let bare = OptimizerState {
            steps: 0,
            buffers: Vec::new(),
        };
        assert!(
            momentum
                .restore(bare.clone())
                .unwrap_err()
                .contains(buffer::VELOCITY)
        );
        assert_eq!(
            AnyOptimizer::<f64>::Sgd(Sgd::new(0.1)).restore(bare),
            Ok(())
        );
    }

    /// The loops run in the processor's widest version (AVX2 where it has it) and must give
    /// the bits of the formula applied one element at a time.
    #[test]
    fn the_dispatched_loops_give_the_formulas_bits() {
        use rand::RngExt;
        let mut rng = crate::init::seeded_rng(11);
        let mut values = |count: usize| -> Vec<f32> {
            (0..count).map(|_| rng.random_range(-2.0f32..2.0)).collect()
        };
        let count = 1031; // not a multiple of any vector width
        let (params, grads, firsts) = (values(count), values(count), values(count));
        let seconds: Vec<f32> = values(count).iter().map(|v| v * v).collect();
        let adam = Adam::<f32>::new(0.01).with_weight_decay(0.1);
        let mut adam_with_steps = adam.clone();
        let rule = {
            adam_with_steps.steps = 2;
            adam_with_steps.begin().rule
        };
        let Rule::Adam {
            step_size,
            inverse_correction2_sqrt,
            one_minus_beta1,
            beta2,
            one_minus_beta2,
            eps,
            decay,
        } = rule
        else {
            unreachable!()
        };
        let (mut p, mut m, mut v) = (params.clone(), firsts.clone(), seconds.clone());
        adam_loop(&mut p, &grads, [&mut m, &mut v], rule);
        for at in 0..count {
            let g = grads[at] + decay * params[at];
            let first = firsts[at] + one_minus_beta1 * (g - firsts[at]);
            let second = seconds[at] * beta2 + one_minus_beta2 * g * g;
            let denominator = second.sqrt() * inverse_correction2_sqrt + eps;
            let param = params[at] - step_size * (first / denominator);
            assert_eq!(
                [p[at], m[at], v[at]].map(f32::to_bits),
                [param, first, second].map(f32::to_bits),
                "Adam at element {at}"
            );
        }
        let scalars = [0.1f32, 0.01, 0.9];
        let (mut p, mut velocity) = (params.clone(), firsts.clone());
        momentum_loop(&mut p, &grads, &mut velocity, scalars, true);
        for at in 0..count {
            let [lr, decay, momentum] = scalars;
            let g = grads[at] + decay * params[at];
            let v = momentum * firsts[at] + g;
            let param = params[at] - lr * (g + momentum * v);
            assert_eq!(
                [p[at], velocity[at]].map(f32::to_bits),
                [param, v].map(f32::to_bits)
            );
        }
    }
}
