//! `Tanh`: y = tanh x.

use backprop_core::{Float, Layer};
use ndarray::{Array2, ArrayView2};

/// `y = tanh x`, whose derivative is written with the output: 1 - y^2.
#[derive(Debug, Clone, Default)]
pub struct Tanh<F> {
    /// y from the last forward: the derivative needs only the output.
    output: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for Tanh<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: y = tanh x elementwise; keep y for backward. Hint: hints/hint-1-chain-rule.md
        let _ = input;
        todo!("Tanh::forward: y = tanh x, keep y (hints/hint-1-chain-rule.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: dL/dx = g times tanh's derivative, entry by entry, written with the y kept by
        // forward (the derivative of tanh has a form in terms of tanh itself).
        // Hint: hints/math-refresh.md
        let _ = grad_output;
        todo!("Tanh::backward: dL/dx from g and the kept output (hints/math-refresh.md)")
    }
}
