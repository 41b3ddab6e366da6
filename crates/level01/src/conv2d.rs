//! `Conv2d`: a 2-D convolution in six nested loops, and its backward derived in the comments.

use backprop_core::{Conv2dGeometry, Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::{Array1, Array2, ArrayView2};

/// A 2-D convolution (PyTorch's: a cross-correlation, the kernel not flipped).
///
/// For each sample n, output channel o and output position (i, j):
///
/// ```text
/// y[n, o, i, j] = b[o] + Σ_c Σ_p Σ_q x[n, c, i s + p - pad, j s + q - pad] W[(c, p, q), o]
/// ```
///
/// x read as 0 in the padding. Shapes: input rows `(batch, C H W)`, weight
/// `(C kh kw, out_channels)` (row `(c kh + p) kw + q`), bias `(out_channels,)`, output rows
/// `(batch, out_channels OH OW)`; see [`backprop_core::conv`].
#[derive(Debug, Clone)]
pub struct Conv2d<F> {
    geometry: Conv2dGeometry,
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// x from the last forward: dL/dW needs it.
    input: Option<Array2<F>>,
}

impl<F: Float> Conv2d<F> {
    /// A convolution owning `weight` `(C kh kw, out_channels)` and `bias` `(out_channels,)`.
    ///
    /// # Panics
    /// If the shapes are not `geometry`'s.
    #[track_caller]
    pub fn new(weight: Array2<F>, bias: Array1<F>, geometry: Conv2dGeometry) -> Self {
        assert_same_shape("Conv2d weight", weight.dim(), geometry.weight_shape());
        assert_same_shape("Conv2d bias", (bias.len(), 1), (geometry.out_channels, 1));
        Conv2d {
            geometry,
            grad_weight: Array2::zeros(weight.raw_dim()),
            grad_bias: Array1::zeros(bias.raw_dim()),
            weight,
            bias,
            input: None,
        }
    }
}

impl<F: Float> Layer<F> for Conv2d<F> {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let geometry = self.geometry;
        let out = geometry.output();
        let (kh, kw) = geometry.kernel;
        let batch = input.nrows();
        assert_same_shape(
            "Conv2d forward input",
            input.dim(),
            (batch, geometry.input.len()),
        );

        // y[n, o, i, j] = b[o] + Σ_c Σ_p Σ_q x[n, c, i s + p - pad, j s + q - pad] W[(c,p,q), o]
        let mut output = Array2::zeros((batch, out.len()));
        for n in 0..batch {
            for o in 0..out.channels {
                for i in 0..out.height {
                    for j in 0..out.width {
                        let mut sum = self.bias[o];
                        for c in 0..geometry.input.channels {
                            for p in 0..kh {
                                for q in 0..kw {
                                    // Entries in the zero padding add nothing.
                                    if let Some((row, col)) = geometry.source(i, j, p, q) {
                                        sum += input[[n, geometry.input_index(c, row, col)]]
                                            * self.weight[[geometry.weight_row(c, p, q), o]];
                                    }
                                }
                            }
                        }
                        output[[n, (o * out.height + i) * out.width + j]] = sum;
                    }
                }
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
            .expect("Conv2d backward called before forward");
        let geometry = self.geometry;
        let out = geometry.output();
        let (kh, kw) = geometry.kernel;
        let batch = input.nrows();
        assert_same_shape(
            "Conv2d backward grad_output",
            grad_output.dim(),
            (batch, out.len()),
        );

        // Each weight W[(c,p,q), o] multiplies x[n, c, i s + p - pad, j s + q - pad] in every
        // output y[n, o, i, j], so by the chain rule its gradient sums over every sample and
        // every output position that used it:
        //
        //   dL/dW[(c,p,q), o] += Σ_n Σ_i Σ_j g[n, o, i, j] x[n, c, i s + p - pad, j s + q - pad]
        //
        // a correlation of the input with the upstream gradient (with stride 1 and no padding,
        // "slide g over x"). The bias is added to every output of its channel:
        //
        //   dL/db[o] += Σ_n Σ_i Σ_j g[n, o, i, j]
        //
        // And each input x[n, c, r, t] reaches every output whose window covers it, through the
        // kernel entry (p, q) with r = i s + p - pad and t = j s + q - pad:
        //
        //   dL/dx[n, c, r, t] = Σ_o Σ_{(i,p): i s + p - pad = r} Σ_{(j,q): j s + q - pad = t}
        //                         g[n, o, i, j] W[(c,p,q), o]
        //
        // With stride 1 this is a "full" convolution of g with the kernel flipped (p -> kh-1-p):
        // the output gradient padded by kh - 1 and slid over by the rotated kernel. Below, the
        // same sum is written by scattering: each (n, o, i, j, c, p, q) adds its one term to the
        // input entry it came from, which handles stride and padding with no extra case.
        let mut grad_input = Array2::zeros((batch, geometry.input.len()));
        for n in 0..batch {
            for o in 0..out.channels {
                for i in 0..out.height {
                    for j in 0..out.width {
                        let g = grad_output[[n, (o * out.height + i) * out.width + j]];
                        self.grad_bias[o] += g;
                        for c in 0..geometry.input.channels {
                            for p in 0..kh {
                                for q in 0..kw {
                                    let Some((row, col)) = geometry.source(i, j, p, q) else {
                                        continue; // a padding zero: no input to send to
                                    };
                                    let x_index = geometry.input_index(c, row, col);
                                    let w_row = geometry.weight_row(c, p, q);
                                    self.grad_weight[[w_row, o]] += g * input[[n, x_index]];
                                    grad_input[[n, x_index]] += g * self.weight[[w_row, o]];
                                }
                            }
                        }
                    }
                }
            }
        }
        grad_input
    }
}

impl<F: Float> LinearLayer<F> for Conv2d<F> {
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
    use backprop_core::ImageShape;
    use ndarray::array;

    /// One 3x3 image, one 2x2 filter, stride 1, no padding: every number by hand.
    #[test]
    fn forward_and_backward_match_a_hand_computation() {
        let geometry = Conv2dGeometry::new(ImageShape::new(1, 3, 3), 1, (2, 2), 1, 0).unwrap();
        // W = [[1, 2], [3, 4]] as the column (1, 2, 3, 4); b = 1.
        let mut layer = Conv2d::new(array![[1.0], [2.0], [3.0], [4.0]], array![1.0], geometry);
        let x = array![[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
        // y[0,0] = 1 + (1 1 + 2 2 + 3 4 + 4 5) = 38; y[0,1] = 1 + (2 + 6 + 15 + 24) = 48;
        // y[1,0] = 1 + (4 + 10 + 21 + 32) = 68;      y[1,1] = 1 + (5 + 12 + 24 + 36) = 78.
        let y = layer.forward(x.view());
        assert_abs_diff_eq!(y, array![[38.0, 48.0, 68.0, 78.0]], epsilon = 1e-12);
        let g = array![[1.0, 0.0, 0.0, 2.0]];
        let grad_input = layer.backward(g.view());
        // dx: the kernel placed at (0,0) times 1 plus at (1,1) times 2:
        // [[1, 2, 0], [3, 4 + 2, 4], [0, 6, 8]].
        assert_abs_diff_eq!(
            grad_input,
            array![[1.0, 2.0, 0.0, 3.0, 6.0, 4.0, 0.0, 6.0, 8.0]],
            epsilon = 1e-12
        );
        let params = layer.params_mut();
        // dW[p,q] = x[p,q] 1 + x[p+1,q+1] 2: [1 + 10, 2 + 12, 4 + 16, 5 + 18]; db = 3.
        assert_abs_diff_eq!(
            params.grad_weight,
            array![[11.0], [14.0], [20.0], [23.0]],
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(params.grad_bias, array![3.0], epsilon = 1e-12);
    }
}
