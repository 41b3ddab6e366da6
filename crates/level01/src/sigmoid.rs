//! `Sigmoid`: y = 1 / (1 + e^-x), in loops.

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
        let (batch, width) = input.dim();
        // y = 1 / (1 + e^-x)
        let mut output = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                output[[row, col]] = F::one() / (F::one() + (-input[[row, col]]).exp());
            }
        }
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
        let (batch, width) = output.dim();
        // dx = g * y (1 - y)
        let mut grad_input = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                let y = output[[row, col]];
                grad_input[[row, col]] = grad_output[[row, col]] * y * (F::one() - y);
            }
        }
        grad_input
    }
}
