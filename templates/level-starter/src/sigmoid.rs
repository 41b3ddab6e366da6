//! `Sigmoid`: y = 1 / (1 + e^-x).

use backprop_core::{Float, Layer};
use ndarray::{Array2, ArrayView2};

/// `y = 1 / (1 + e^-x)`, whose derivative is written with the output: y (1 - y).
#[derive(Debug, Clone, Default)]
pub struct Sigmoid<F> {
    /// y from the last forward: the derivative needs only the output.
    output: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for Sigmoid<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: y = 1 / (1 + e^-x) elementwise; keep y for backward. Hint: hints/hint-1-chain-rule.md
        let _ = input;
        todo!("Sigmoid::forward: y = 1 / (1 + e^-x), keep y (hints/hint-1-chain-rule.md)")
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        // TODO: dL/dx = g times the sigmoid's derivative, entry by entry. Differentiate
        // 1 / (1 + e^-x) and write the result with the y kept by forward (no exp needed).
        // Hint: hints/math-refresh.md
        let _ = grad_output;
        todo!("Sigmoid::backward: dL/dx from g and the kept output (hints/math-refresh.md)")
    }
}
