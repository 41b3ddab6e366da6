//! `Tanh`: y = tanh x, in loops.

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2};

/// The hyperbolic tangent: `y = tanh x`, gradient `1 - y^2`.
#[derive(Debug, Clone, Default)]
pub struct Tanh<F> {
    /// y from the last forward: the gradient is written in terms of it.
    output: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for Tanh<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let (batch, width) = input.dim();
        // y = tanh x
        let mut output = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                output[[row, col]] = input[[row, col]].tanh();
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
            .expect("Tanh backward called before forward");
        assert_same_shape("Tanh backward grad_output", grad_output.dim(), output.dim());
        let (batch, width) = output.dim();
        // dx = g * (1 - y^2)
        let mut grad_input = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                let y = output[[row, col]];
                grad_input[[row, col]] = grad_output[[row, col]] * (F::one() - y * y);
            }
        }
        grad_input
    }
}
