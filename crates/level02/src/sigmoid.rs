//! `Sigmoid`: y = 1 / (1 + e^-x).

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2};

/// The logistic function: `y = 1 / (1 + e^-x)`, gradient `y (1 - y)` (at most 1/4).
#[derive(Debug, Clone, Default)]
pub struct Sigmoid<F> {
    /// y from the last forward: the gradient is written in terms of it.
    output: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for Sigmoid<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        // For very negative x, e^-x overflows to inf and y = 1/inf = 0: still correct.
        let output = input.mapv(|x| F::one() / (F::one() + (-x).exp()));
        self.output = Some(output.clone());
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let output = self
            .output
            .as_ref()
            .expect("Sigmoid backward called before forward");
        assert_same_shape(
            "Sigmoid backward grad_output",
            grad_output.dim(),
            output.dim(),
        );
        // dL/dx = g * y (1 - y)
        &grad_output * &output.mapv(|y| y * (F::one() - y))
    }
}
