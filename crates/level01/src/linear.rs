//! `Linear`: y = x W + b, in loops.

use backprop_core::{Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2};

/// A fully connected layer: `y = x W + b`.
///
/// Shapes: input x `(batch, fan_in)`, weight W `(fan_in, fan_out)`, bias b `(fan_out,)`,
/// output y `(batch, fan_out)`.
#[derive(Debug, Clone)]
pub struct Linear<F> {
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// x from the last forward: dL/dW needs it.
    input: Option<Array2<F>>,
}

impl<F: Float> Linear<F> {
    /// A layer owning `weight` `(fan_in, fan_out)` and `bias` `(fan_out,)`.
    ///
    /// # Panics
    /// If `bias.len() != weight.ncols()`.
    #[track_caller]
    pub fn new(weight: Array2<F>, bias: Array1<F>) -> Self {
        assert_eq!(
            bias.len(),
            weight.ncols(),
            "bias of {} for weight {:?}",
            bias.len(),
            weight.dim()
        );
        Linear {
            grad_weight: Array2::zeros(weight.raw_dim()),
            grad_bias: Array1::zeros(bias.raw_dim()),
            weight,
            bias,
            input: None,
        }
    }
}

impl<F: Float> Layer<F> for Linear<F> {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let (fan_in, fan_out) = self.weight.dim();
        let batch = input.nrows();
        assert_same_shape("Linear forward input", input.dim(), (batch, fan_in));

        // y[r][j] = b[j] + Σ_k x[r][k] W[k][j]
        let mut output = Array2::zeros((batch, fan_out));
        for row in 0..batch {
            for out in 0..fan_out {
                let mut sum = self.bias[out];
                for k in 0..fan_in {
                    sum += input[[row, k]] * self.weight[[k, out]];
                }
                output[[row, out]] = sum;
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
            .expect("Linear backward called before forward");
        let (fan_in, fan_out) = self.weight.dim();
        let batch = input.nrows();
        assert_same_shape(
            "Linear backward grad_output",
            grad_output.dim(),
            (batch, fan_out),
        );

        // dL/dW[k][j] += Σ_r x[r][k] g[r][j]          (x^T g)
        for k in 0..fan_in {
            for out in 0..fan_out {
                let mut sum = F::zero();
                for row in 0..batch {
                    sum += input[[row, k]] * grad_output[[row, out]];
                }
                self.grad_weight[[k, out]] += sum;
            }
        }

        // dL/db[j] += Σ_r g[r][j]                      (the bias is added to every row)
        for out in 0..fan_out {
            let mut sum = F::zero();
            for row in 0..batch {
                sum += grad_output[[row, out]];
            }
            self.grad_bias[out] += sum;
        }

        // dL/dx[r][k] = Σ_j g[r][j] W[k][j]            (g W^T)
        let mut grad_input = Array2::zeros((batch, fan_in));
        for row in 0..batch {
            for k in 0..fan_in {
                let mut sum = F::zero();
                for out in 0..fan_out {
                    sum += grad_output[[row, out]] * self.weight[[k, out]];
                }
                grad_input[[row, k]] = sum;
            }
        }
        grad_input
    }
}

impl<F: Float> LinearLayer<F> for Linear<F> {
    fn params_mut(&mut self) -> LinearMut<'_, F> {
        LinearMut {
            weight: self.weight.view_mut(),
            bias: self.bias.view_mut(),
            grad_weight: self.grad_weight.view_mut(),
            grad_bias: self.grad_bias.view_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    /// y = x W + b and its backward on numbers small enough to check by hand.
    #[test]
    fn forward_and_backward_match_a_hand_computation() {
        let mut layer = Linear::new(array![[1.0, -1.0], [2.0, 0.5]], array![0.5, 0.0]);
        let x = array![[1.0, 2.0], [-1.0, 0.0]];
        // row 0: [1 + 4, -1 + 1] + b = [5.5, 0]; row 1: [-1, 1] + b = [-0.5, 1]
        let y = layer.forward(x.view());
        assert_abs_diff_eq!(y, array![[5.5, 0.0], [-0.5, 1.0]], epsilon = 1e-12);
        let g = array![[1.0, 0.0], [0.0, 2.0]];
        let grad_input = layer.backward(g.view());
        // dL/dx = g W^T: row 0 = W's row sums weighted by [1, 0]: [1, 2]; row 1 = 2 [-1, 0.5]
        assert_abs_diff_eq!(grad_input, array![[1.0, 2.0], [-2.0, 1.0]], epsilon = 1e-12);
        let params = layer.params_mut();
        // dL/dW = x^T g = [[1, -2], [2, 0]]; dL/db = column sums of g = [1, 2]
        assert_abs_diff_eq!(
            params.grad_weight,
            array![[1.0, -2.0], [2.0, 0.0]],
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(params.grad_bias, array![1.0, 2.0], epsilon = 1e-12);
    }
}
