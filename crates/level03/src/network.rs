//! `Network`: the fused [`Mlp`] for a network that is an MLP, [`Sequential`] over this level's
//! layers for any other.

use backprop_core::flow::Signals;
use backprop_core::{
    Activation, Float, LinearMut, LinearParams, Model, NetSpec, NormMut, Optimizer, Sequential,
    Targets,
};
use ndarray::{Array2, ArrayView2};

use crate::{Level03, Mlp};

/// Level 3's model for any [`NetSpec`].
///
/// An MLP (the spec's [`NetSpec::as_mlp`]) gets the fused [`Mlp`], whose buffers are shared
/// across layers and whose update runs inside its backward pass. Any other network (a CNN)
/// gets [`Sequential`] over this level's layers: each layer computes in place into the
/// model's reused buffers (im2col and products into preallocated buffers for `Conv2d`), so it
/// too is allocation-bounded; it is not fused.
#[derive(Debug)]
pub enum Network<F: Float> {
    /// `Linear, [norm], act, [dropout], ..., Linear`, fused.
    Mlp(Mlp<F>),
    /// Any other list of layers.
    Layers(Sequential<F, Level03>),
}

impl<F: Float> Network<F> {
    /// The model for `spec` with `params` (one `(weight, bias)` per weight layer).
    ///
    /// # Panics
    /// If `params` does not fit the spec.
    #[track_caller]
    pub fn new(params: LinearParams<F>, spec: &NetSpec) -> Self {
        match spec.as_mlp() {
            Some((_, layout)) => Network::Mlp(Mlp::new(params, &layout)),
            None => Network::Layers(Sequential::new(params, spec)),
        }
    }
}

/// Calls the same method on whichever model this is.
macro_rules! either {
    ($self:expr, $model:ident => $call:expr) => {
        match $self {
            Network::Mlp($model) => $call,
            Network::Layers($model) => $call,
        }
    };
}

impl<F: Float> Model<F> for Network<F> {
    fn activation(&self) -> Activation {
        either!(self, model => model.activation())
    }
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        either!(self, model => model.forward(input))
    }
    #[track_caller]
    fn loss(&mut self, targets: Targets<'_, F>) -> F {
        either!(self, model => model.loss(targets))
    }
    #[track_caller]
    fn backward(&mut self) -> Array2<F> {
        either!(self, model => model.backward())
    }
    fn backward_params_only(&mut self) {
        either!(self, model => model.backward_params_only())
    }
    fn signals(&self) -> Option<Signals<'_, F>> {
        either!(self, model => model.signals())
    }
    fn visit_linears(&mut self, visit: impl FnMut(usize, LinearMut<'_, F>)) {
        either!(self, model => model.visit_linears(visit))
    }
    fn visit_norms(&mut self, visit: impl FnMut(usize, NormMut<'_, F>)) {
        either!(self, model => model.visit_norms(visit))
    }
    fn set_training(&mut self, training: bool) {
        either!(self, model => model.set_training(training))
    }
    fn zero_grad(&mut self) {
        either!(self, model => model.zero_grad())
    }
    fn train_step(
        &mut self,
        input: ArrayView2<'_, F>,
        targets: Targets<'_, F>,
        optimizer: &mut impl Optimizer<F>,
    ) -> F {
        either!(self, model => model.train_step(input, targets, optimizer))
    }
}
