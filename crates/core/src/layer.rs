//! The layer and loss contracts, and the view of a `Linear` layer's parameters.
//!
//! # The gradient rule
//!
//! Every level follows one rule, the one PyTorch follows:
//!
//! - **outputs are overwritten**: `forward` and `backward` return fresh arrays, and the `*_into`
//!   forms overwrite every element of the caller's buffer (they never read it);
//! - **parameter gradients accumulate**: each `backward` *adds* dL/dW and dL/db into the stored
//!   gradients, which keep growing until [`LinearLayer::zero_grad`] sets them back to zero.
//!
//! So a training step is `zero_grad`, `forward`, `loss`, `backward`, then an optimizer's `step`; calling
//! `backward` twice without `zero_grad` in between doubles the gradients, and the harness tests
//! exactly that.

use std::fmt::Debug;

use ndarray::{Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, ArrayViewMutD};

use crate::Float;

/// A `Linear` layer's parameters and their gradients, borrowed for writing.
///
/// Shapes: `weight` and `grad_weight` `(fan_in, fan_out)`, `bias` and `grad_bias` `(fan_out,)`.
/// Optimizers, gradient clipping, gradient statistics and the checks all reach the parameters
/// through this view, one layer at a time ([`LinearLayer::params_mut`],
/// [`Model::visit_linears`](crate::Model::visit_linears)).
#[derive(Debug)]
pub struct LinearMut<'a, F> {
    /// W, `(fan_in, fan_out)`: writable (optimizers and gradient checks change it).
    pub weight: ArrayViewMut2<'a, F>,
    /// b, `(fan_out,)`.
    pub bias: ArrayViewMut1<'a, F>,
    /// dL/dW, accumulated by `backward` since the last `zero_grad`.
    pub grad_weight: ArrayViewMut2<'a, F>,
    /// dL/db, accumulated likewise.
    pub grad_bias: ArrayViewMut1<'a, F>,
}

impl<'a, F> LinearMut<'a, F> {
    /// `[("weight", W, dL/dW), ("bias", b, dL/db)]` as dimension-free views, for code that
    /// treats every tensor alike (clipping, norms, gradient checks). The names are for display.
    pub fn tensors(self) -> [(&'static str, ArrayViewMutD<'a, F>, ArrayViewMutD<'a, F>); 2] {
        [
            (
                "weight",
                self.weight.into_dyn(),
                self.grad_weight.into_dyn(),
            ),
            ("bias", self.bias.into_dyn(), self.grad_bias.into_dyn()),
        ]
    }
}

/// A differentiable layer acting on a batch: one sample per row.
///
/// Inputs have shape `(batch, in_features)` and outputs `(batch, out_features)`. `forward`
/// caches what `backward` needs (the input for `Linear`, the output for `Sigmoid`), so
/// `backward` always refers to the latest `forward`.
///
/// A NaN in the input propagates to the output (ReLU passes it through rather than turning it
/// into 0), so a NaN input ends as a NaN loss, never as a silently wrong number.
///
/// Levels 1 and 2 implement the allocating `forward`/`backward`; the provided `*_into` forms copy
/// their result into the caller's buffer. Level 3 overrides the `*_into` forms to compute in
/// place. See the [module docs](self) for the gradient rule.
pub trait Layer<F: Float>: Debug {
    /// Computes the output for `input` of shape `(batch, in_features)` and caches what
    /// `backward` needs.
    ///
    /// # Panics
    /// If the input width does not fit the layer; the message names both shapes.
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F>;

    /// Takes dL/d(output) of shape `(batch, out_features)`, *adds* the parameter gradients into
    /// the stored ones, and returns dL/d(input) of shape `(batch, in_features)`.
    ///
    /// # Panics
    /// If called before `forward`, or if `grad_output` does not match the last output's shape.
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F>;

    /// Training mode (`true`) or evaluation mode, as PyTorch's `train()` and `eval()`; only
    /// batch norm and dropout behave differently. Layers start in training mode. The default
    /// does nothing.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// [`forward`](Layer::forward), writing every element of `output` (never reading it).
    ///
    /// # Panics
    /// If `output` is not `(batch, out_features)`.
    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, mut output: ArrayViewMut2<'_, F>) {
        let result = self.forward(input);
        crate::assert_same_shape("forward_into output", output.dim(), result.dim());
        output.assign(&result);
    }

    /// [`backward`](Layer::backward), writing dL/d(input) into `grad_input`.
    ///
    /// # Panics
    /// If `grad_input` is not `(batch, in_features)`.
    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let result = self.backward(grad_output);
        crate::assert_same_shape("backward_into grad_input", grad_input.dim(), result.dim());
        grad_input.assign(&result);
    }
}

/// A boxed layer is a layer: `Vec<Box<dyn Layer<F>>>` holds any mix of them.
impl<F: Float, T: Layer<F> + ?Sized> Layer<F> for Box<T> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        (**self).forward(input)
    }
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        (**self).backward(grad_output)
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, output: ArrayViewMut2<'_, F>) {
        (**self).forward_into(input, output)
    }
    #[track_caller]
    fn backward_into(&mut self, grad_output: ArrayView2<'_, F>, grad_input: ArrayViewMut2<'_, F>) {
        (**self).backward_into(grad_output, grad_input)
    }
}

/// A layer with a weight and a bias: `Linear` (`y = x W + b`) and `Conv2d` (`y = cols(x) W + b`,
/// its weight the `(C kh kw, out)` matrix of the im2col product, see [`crate::conv`]).
///
/// Beyond [`Layer`], one method: a view of the weight, the bias and their gradients. Everything
/// that reads or changes parameters (optimizers, [`zero_grad`](LinearLayer::zero_grad),
/// clipping, the checks) goes through it.
pub trait LinearLayer<F: Float>: Layer<F> {
    /// The weight, the bias and their gradients, writable.
    fn params_mut(&mut self) -> LinearMut<'_, F>;

    /// Sets dL/dW and dL/db to zero.
    fn zero_grad(&mut self) {
        let mut params = self.params_mut();
        params.grad_weight.fill(F::zero());
        params.grad_bias.fill(F::zero());
    }

    /// [`backward`](Layer::backward) for a layer whose dL/d(input) nobody reads (the first
    /// layer of a network in a training step): *adds* dL/dW and dL/db, the same values as
    /// `backward` adds. The default calls `backward` and drops dL/d(input); a level may skip
    /// computing it (level03's convolution skips its last product and col2im).
    #[track_caller]
    fn backward_params_only(&mut self, grad_output: ArrayView2<'_, F>) {
        let _ = self.backward(grad_output);
    }
}

/// What a loss compares its input against.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a, F> {
    /// One class index per row, each below the number of columns (softmax cross-entropy).
    Classes(&'a [usize]),
    /// One target value per element, same shape as the prediction (mean squared error).
    Values(ArrayView2<'a, F>),
}

impl<'a, F: Float> Targets<'a, F> {
    /// The class indices, checked against logits of shape `(batch, classes)`.
    ///
    /// # Panics
    /// On an empty batch, on [`Targets::Values`], on a count other than `batch`, or on a class
    /// index `>= classes`; the message says which and where.
    #[track_caller]
    pub fn expect_classes(self, (batch, classes): (usize, usize)) -> &'a [usize] {
        assert!(
            batch > 0,
            "empty batch: the mean loss over 0 rows is undefined"
        );
        let Targets::Classes(targets) = self else {
            panic!("softmax cross-entropy takes Targets::Classes (one class index per row)");
        };
        assert!(
            targets.len() == batch,
            "{} class targets for logits of shape ({batch}, {classes})",
            targets.len()
        );
        if let Some((row, &class)) = targets.iter().enumerate().find(|(_, c)| **c >= classes) {
            panic!("target class {class} at row {row} is out of range for {classes} classes");
        }
        targets
    }

    /// The dense targets, checked against predictions of shape `shape`.
    ///
    /// # Panics
    /// On an empty batch, on [`Targets::Classes`], or on a shape other than `shape`.
    #[track_caller]
    pub fn expect_values(self, shape: (usize, usize)) -> ArrayView2<'a, F> {
        assert!(
            shape.0 > 0,
            "empty batch: the mean loss over 0 rows is undefined"
        );
        let Targets::Values(targets) = self else {
            panic!("mean squared error takes Targets::Values (one target per output)");
        };
        crate::assert_same_shape("MSE targets", targets.dim(), shape);
        targets
    }
}

/// A scalar loss over a batch, with the gradient with respect to its input.
///
/// `forward` returns the loss and caches what `backward` needs; `backward` returns dL/d(input)
/// of the same shape as the input. Losses have no parameters.
pub trait Loss<F: Float>: Debug {
    /// The mean loss of `input` (shape `(batch, outputs)`) against `targets`.
    ///
    /// # Panics
    /// On an empty batch (the mean over no rows is undefined), on a target kind this loss does
    /// not take, on a class index out of range, or on mismatched shapes.
    fn forward(&mut self, input: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F;

    /// dL/d(input) for the last `forward`.
    ///
    /// # Panics
    /// If called before `forward`.
    fn backward(&mut self) -> Array2<F>;

    /// [`backward`](Loss::backward), overwriting `grad_input`.
    ///
    /// # Panics
    /// If `grad_input` does not have the input's shape.
    #[track_caller]
    fn backward_into(&mut self, mut grad_input: ArrayViewMut2<'_, F>) {
        let result = self.backward();
        crate::assert_same_shape("backward_into grad_input", grad_input.dim(), result.dim());
        grad_input.assign(&result);
    }
}
