//! `MaxPool2d`: the largest value of each window, in loops; the gradient goes back to it.

use backprop_core::conv::replaces_max;
use backprop_core::{Float, Layer, Pool2dGeometry, assert_same_shape};
use ndarray::{Array2, ArrayView2};

/// Max pooling: `y[n, c, i, j] = max_{p, q} x[n, c, i s + p, j s + q]`.
///
/// Shapes: input rows `(batch, C H W)`, output rows `(batch, C OH OW)`. On ties the first
/// maximum in row-major order inside the window is taken (PyTorch's rule), and a NaN wins.
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    geometry: Pool2dGeometry,
    /// For each output entry of the last forward, the input column its maximum came from.
    argmax: Option<Array2<usize>>,
}

impl MaxPool2d {
    /// A max pool with `geometry`'s input, window and stride.
    pub fn new(geometry: Pool2dGeometry) -> Self {
        MaxPool2d {
            geometry,
            argmax: None,
        }
    }
}

impl<F: Float> Layer<F> for MaxPool2d {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let geometry = self.geometry;
        let out = geometry.output();
        let (kh, kw) = geometry.kernel;
        let batch = input.nrows();
        assert_same_shape(
            "MaxPool2d forward input",
            input.dim(),
            (batch, geometry.input.len()),
        );

        let mut output = Array2::zeros((batch, out.len()));
        let mut argmax = Array2::zeros((batch, out.len()));
        for n in 0..batch {
            for c in 0..out.channels {
                for i in 0..out.height {
                    for j in 0..out.width {
                        // Scan the window row by row; a later entry replaces the best only if
                        // it is strictly larger (or NaN), so the first of tied maxima stays.
                        let mut best_index = geometry.source(c, i, j, 0, 0);
                        for p in 0..kh {
                            for q in 0..kw {
                                let index = geometry.source(c, i, j, p, q);
                                if replaces_max(input[[n, index]], input[[n, best_index]]) {
                                    best_index = index;
                                }
                            }
                        }
                        let out_index = (c * out.height + i) * out.width + j;
                        output[[n, out_index]] = input[[n, best_index]];
                        argmax[[n, out_index]] = best_index;
                    }
                }
            }
        }
        self.argmax = Some(argmax);
        output
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let argmax = self
            .argmax
            .as_ref()
            .expect("MaxPool2d backward called before forward");
        assert_same_shape(
            "MaxPool2d backward grad_output",
            grad_output.dim(),
            argmax.dim(),
        );
        // y = x[argmax]: dy/dx is 1 at the winning entry and 0 at the others, so each output's
        // gradient goes to its one winner. Overlapping windows can share a winner: add.
        let batch = grad_output.nrows();
        let mut grad_input = Array2::zeros((batch, self.geometry.input.len()));
        for n in 0..batch {
            for out_index in 0..argmax.ncols() {
                grad_input[[n, argmax[[n, out_index]]]] += grad_output[[n, out_index]];
            }
        }
        grad_input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_core::ImageShape;
    use ndarray::array;

    #[test]
    fn ties_go_to_the_first_maximum_and_overlaps_add() {
        // A 3x3 image of ties, pooled 2x2 with stride 1: four windows, each with its maximum
        // 5 at its first position that holds it.
        let geometry = Pool2dGeometry::new(ImageShape::new(1, 3, 3), (2, 2), 1).unwrap();
        let mut pool = MaxPool2d::new(geometry);
        let x = array![[5.0, 5.0, 1.0, 5.0, 5.0, 1.0, 0.0, 0.0, 0.0]];
        let y = pool.forward(x.view());
        assert_eq!(y, array![[5.0, 5.0, 5.0, 5.0]]);
        let grad_input = pool.backward(array![[1.0, 10.0, 100.0, 1000.0]].view());
        // Window (0,0) -> x[0]; (0,1) -> x[1]; (1,0) -> x[3]; (1,1) -> x[4].
        assert_eq!(
            grad_input,
            array![[1.0, 10.0, 0.0, 100.0, 1000.0, 0.0, 0.0, 0.0, 0.0]]
        );
    }
}
