//! `Relu`: y = max(0, x), in loops.

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2};

/// The rectifier: `y = max(0, x)`, gradient `1` where `x > 0` and `0` elsewhere.
///
/// At exactly `x = 0` the gradient is 0, as in PyTorch's `F.relu`. A NaN input stays NaN in the
/// output, so the loss becomes NaN instead of a silently wrong number.
#[derive(Debug, Clone, Default)]
pub struct Relu<F> {
    /// x from the last forward; backward needs its sign.
    input: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for Relu<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let (batch, width) = input.dim();
        // y = x if x > 0, else 0 (NaN is not <= 0, so it passes through)
        let mut output = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                let x = input[[row, col]];
                output[[row, col]] = if x <= F::zero() { F::zero() } else { x };
            }
        }
        self.input = Some(input.to_owned());
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let input = self
            .input
            .as_ref()
            .expect("ReLU backward called before forward");
        assert_same_shape("ReLU backward grad_output", grad_output.dim(), input.dim());
        let (batch, width) = input.dim();
        // dx = g if x > 0, else 0 (strict: the gradient at exactly 0 is 0)
        let mut grad_input = Array2::zeros((batch, width));
        for row in 0..batch {
            for col in 0..width {
                if input[[row, col]] > F::zero() {
                    grad_input[[row, col]] = grad_output[[row, col]];
                }
            }
        }
        grad_input
    }
}
