//! Optimizers: SGD (plain, momentum, Nesterov, weight decay) and Adam, outside the model.
//!
//! An optimizer owns its state (velocities, moment estimates) and updates a model's parameters
//! from their gradients through [`Model::visit_params`] (every `Linear`'s weight and bias, then
//! every normalization layer's gamma and beta), so one optimizer serves every level.
//! The formulas are PyTorch's (`torch.optim.SGD` and `torch.optim.Adam`, order of operations
//! included but for one reciprocal in Adam), and the harness's gate 4 checks three steps of each
//! against PyTorch.
//!
//! ```
//! use backprop_core::optim::{Adam, Sgd};
//! use backprop_core::{Level, Model, MlpSpec, Targets};
//! use level02::Level02;
//! use ndarray::array;
//!
//! let mut model = <Level02 as Level<f64>>::mlp_from_spec(&MlpSpec::classifier(&[2, 4, 2], 0));
//! let inputs = array![[0.5, -1.0], [1.5, 2.0]];
//! let mut sgd = Sgd::new(0.1).with_momentum(0.9).with_nesterov();
//! model.train_step(inputs.view(), Targets::Classes(&[0, 1]), &mut sgd);
//! let mut adam = Adam::new(1e-3);
//! model.train_step(inputs.view(), Targets::Classes(&[0, 1]), &mut adam);
//! ```
//!
//! Each update is one elementwise pass per tensor over the parameter, its gradient and the
//! optimizer's state (a loop over slices, vectorized), cut into one piece per rayon thread when
//! the tensor is large (the first layer of an MNIST MLP). Cutting changes no result: every
//! element is computed on its own.

use ndarray::{Array, ArrayView, ArrayViewMut, Dimension};

use crate::layer::LinearMut;
use crate::{Float, LinearParams, Model};

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
}

/// One tensor of optimizer state per parameter of a `Linear` layer.
#[derive(Debug, Clone)]
struct LayerState<F> {
    weight: Array<F, ndarray::Ix2>,
    bias: Array<F, ndarray::Ix1>,
}

impl<F: Float> LayerState<F> {
    /// The state of layer `index`, created as zeros on the first step.
    #[track_caller]
    fn of<'s>(states: &'s mut Vec<Self>, index: usize, layer: &LinearMut<'_, F>) -> &'s mut Self {
        if index == states.len() {
            states.push(LayerState {
                weight: Array::zeros(layer.weight.raw_dim()),
                bias: Array::zeros(layer.bias.raw_dim()),
            });
        }
        let state = &mut states[index];
        assert!(
            state.weight.dim() == layer.weight.dim(),
            "optimizer state of layer {index} is for a weight {:?}, but the model's is {:?}: \
             an optimizer belongs to one model",
            state.weight.dim(),
            layer.weight.dim()
        );
        state
    }
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
            // Every tensor in logical order, element by element.
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

    /// `p <- p - lr (g + weight_decay p)`.
    fn plain<D: Dimension>(&self, param: ArrayViewMut<'_, F, D>, grad: ArrayView<'_, F, D>) {
        let (lr, decay) = (F::of(self.lr), F::of(self.weight_decay));
        // Without decay, the pass reads p once less per element (it runs at every step).
        if self.weight_decay == 0.0 {
            update_elements(param, grad, [], |params, grads, []| {
                for (p, &g) in params.iter_mut().zip(grads) {
                    *p -= lr * g;
                }
            });
        } else {
            update_elements(param, grad, [], |params, grads, []| {
                for (p, &g) in params.iter_mut().zip(grads) {
                    *p -= lr * (g + decay * *p);
                }
            });
        }
    }

    /// The momentum (or Nesterov) update of one tensor and its velocity.
    fn with_velocity<D: Dimension>(
        &self,
        param: ArrayViewMut<'_, F, D>,
        grad: ArrayView<'_, F, D>,
        velocity: ArrayViewMut<'_, F, D>,
    ) {
        let (lr, decay) = (F::of(self.lr), F::of(self.weight_decay));
        let (momentum, nesterov) = (F::of(self.momentum), self.nesterov);
        // One loop per variant: a branch inside would keep the loop from vectorizing.
        update_elements(param, grad, [velocity], |params, grads, [velocities]| {
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
        });
    }
}

impl<F: Float> Optimizer<F> for Sgd<F> {
    #[track_caller]
    fn step(&mut self, model: &mut impl Model<F>) {
        let mut velocity = std::mem::take(&mut self.velocity);
        model.visit_params(|index, layer| {
            if self.momentum == 0.0 {
                self.plain(layer.weight, layer.grad_weight.view());
                self.plain(layer.bias, layer.grad_bias.view());
            } else {
                let state = LayerState::of(&mut velocity, index, &layer);
                self.with_velocity(
                    layer.weight,
                    layer.grad_weight.view(),
                    state.weight.view_mut(),
                );
                self.with_velocity(layer.bias, layer.grad_bias.view(), state.bias.view_mut());
            }
        });
        self.velocity = velocity;
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

    /// The update of one tensor and its two moment estimates at step `self.steps`.
    fn update<D: Dimension>(
        &self,
        param: ArrayViewMut<'_, F, D>,
        grad: ArrayView<'_, F, D>,
        first: ArrayViewMut<'_, F, D>,
        second: ArrayViewMut<'_, F, D>,
    ) {
        // The scalars in f64, as PyTorch computes them in Python floats.
        let (beta1, beta2) = self.betas;
        let step = f64::from(self.steps);
        let step_size = F::of(self.lr / (1.0 - beta1.powf(step)));
        // PyTorch divides by sqrt(1 - beta2^t); multiplying by its reciprocal (one division in
        // f64 here) saves a division per parameter, the costliest part of the pass.
        let inverse_correction2_sqrt = F::of(1.0 / (1.0 - beta2.powf(step)).sqrt());
        let (one_minus_beta1, beta2_f, one_minus_beta2) =
            (F::of(1.0 - beta1), F::of(beta2), F::of(1.0 - beta2));
        let (eps, decay) = (F::of(self.eps), F::of(self.weight_decay));
        update_elements(
            param,
            grad,
            [first, second],
            |params, grads, [firsts, seconds]| {
                let elements = params.iter_mut().zip(grads).zip(firsts).zip(seconds);
                for (((p, &g), m), v) in elements {
                    let g = g + decay * *p;
                    *m += one_minus_beta1 * (g - *m);
                    *v = *v * beta2_f + one_minus_beta2 * g * g;
                    let denominator = v.sqrt() * inverse_correction2_sqrt + eps;
                    *p -= step_size * (*m / denominator);
                }
            },
        );
    }
}

impl<F: Float> Optimizer<F> for Adam<F> {
    #[track_caller]
    fn step(&mut self, model: &mut impl Model<F>) {
        self.steps += 1;
        let (mut first, mut second) = (
            std::mem::take(&mut self.first_moment),
            std::mem::take(&mut self.second_moment),
        );
        model.visit_params(|index, layer| {
            let m = LayerState::of(&mut first, index, &layer);
            let v = LayerState::of(&mut second, index, &layer);
            self.update(
                layer.weight,
                layer.grad_weight.view(),
                m.weight.view_mut(),
                v.weight.view_mut(),
            );
            self.update(
                layer.bias,
                layer.grad_bias.view(),
                m.bias.view_mut(),
                v.bias.view_mut(),
            );
        });
        (self.first_moment, self.second_moment) = (first, second);
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
                buffers: vec![("velocity", LayerState::to_params(&sgd.velocity))],
            },
            AnyOptimizer::Adam(adam) => OptimizerState {
                steps: adam.steps,
                buffers: vec![
                    ("first_moment", LayerState::to_params(&adam.first_moment)),
                    ("second_moment", LayerState::to_params(&adam.second_moment)),
                ],
            },
        }
    }

    /// Puts back a state taken by [`state`](AnyOptimizer::state) from an optimizer of the
    /// same kind; a buffer it lacks starts empty (as before a first step).
    pub fn restore(&mut self, state: OptimizerState<F>) {
        let mut buffers = state.buffers;
        let mut take = |name: &str| {
            buffers
                .iter_mut()
                .find(|(buffer, _)| *buffer == name)
                .map(|(_, params)| LayerState::from_params(std::mem::take(params)))
                .unwrap_or_default()
        };
        match self {
            AnyOptimizer::Sgd(sgd) => sgd.velocity = take("velocity"),
            AnyOptimizer::Adam(adam) => {
                adam.steps = state.steps;
                adam.first_moment = take("first_moment");
                adam.second_moment = take("second_moment");
            }
        }
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
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    /// A parameter stored transposed (a learner's level may keep any layout) takes the
    /// element-by-element path; contiguous ones the slice path, cut in pieces on 2 threads.
    /// Three momentum steps give the same numbers on every path.
    #[test]
    fn every_memory_layout_and_thread_count_gives_the_same_update() {
        let shape = (400, 400); // 160,000 elements: cut in pieces on 2 threads
        let grad = Array2::from_shape_fn(shape, |(row, col)| ((row * 7 + col * 3) % 11) as f64);
        let sgd = Sgd::<f64>::new(0.1).with_momentum(0.9).with_nesterov();
        let run = |threads: usize, transposed: bool| {
            let mut param = Array2::from_shape_fn(shape, |(row, col)| (row + 2 * col) as f64);
            if transposed {
                param = param.t().as_standard_layout().into_owned().reversed_axes();
            }
            let mut velocity = Array2::zeros(shape);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            pool.expect("a rayon pool").install(|| {
                for _ in 0..3 {
                    sgd.with_velocity(param.view_mut(), grad.view(), velocity.view_mut());
                }
            });
            (param.as_standard_layout().into_owned(), velocity)
        };
        let expected = run(1, false);
        assert_ne!(expected.0[[1, 2]], 5.0, "the update ran");
        assert_eq!(run(2, false), expected, "cut in two pieces on 2 threads");
        assert_eq!(
            run(1, true),
            expected,
            "a transposed parameter, element by element"
        );
    }
}
