//! `Conv2d`: im2col into a reused buffer, the products through matrixmultiply, the samples of a
//! batch on rayon.

use backprop_core::{Conv2dGeometry, Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

use crate::buffer::RowBuffer;
use crate::gemm::gemm;

/// A 2-D convolution as one matrix product over reused buffers (see [`backprop_core::conv`]).
///
/// With P = OH OW output positions and K = C kh kw:
///
/// ```text
/// cols (batch P, K)   <- im2col(x)           one row per window, each sample on its own thread
/// prod (batch P, out) <- cols W + b          one product (gemm, cut in two on two threads)
/// y    (batch, out P) <- prod, transposed per sample into NCHW rows
/// g    (batch P, out) <- dL/dy, transposed back
/// dW  += cols^T g,  db += Σ_rows g,  dcols = g W^T,  dx <- col2im(dcols) per sample
/// ```
///
/// Every buffer is sized for the largest batch seen and reused, so a steady batch size
/// allocates nothing but matrixmultiply's packing buffers. Each output element is computed by
/// one thread in a fixed order whatever the number of threads (no sum is split across
/// threads), so 1 and 2 threads give bit-identical results.
#[derive(Debug, Clone)]
pub struct Conv2d<F> {
    geometry: Conv2dGeometry,
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// im2col of the last forward's input `(batch P, K)`, which dW reads.
    cols: RowBuffer<F>,
    /// The product `(batch P, out)` in forward; dL/d(product) in backward.
    product: RowBuffer<F>,
    /// dL/dcols `(batch P, K)`.
    grad_cols: RowBuffer<F>,
    /// The batch of the last forward.
    batch: usize,
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
            cols: RowBuffer::default(),
            product: RowBuffer::default(),
            grad_cols: RowBuffer::default(),
            batch: 0,
        }
    }

    /// Output positions per sample.
    fn positions(&self) -> usize {
        let out = self.geometry.output();
        out.height * out.width
    }
}

/// One sample's windows: `cols[(i, j), (c, p, q)] = x[c, i s + p - pad, j s + q - pad]` (0 in
/// the padding).
fn im2col_sample<F: Float>(
    geometry: &Conv2dGeometry,
    image: ArrayView1<'_, F>,
    mut cols: ArrayViewMut2<'_, F>,
) {
    let out = geometry.output();
    let (kh, kw) = geometry.kernel;
    for i in 0..out.height {
        for j in 0..out.width {
            let mut row = cols.row_mut(i * out.width + j);
            for c in 0..geometry.input.channels {
                for p in 0..kh {
                    for q in 0..kw {
                        row[geometry.weight_row(c, p, q)] = match geometry.source(i, j, p, q) {
                            Some((r, t)) => image[geometry.input_index(c, r, t)],
                            None => F::zero(),
                        };
                    }
                }
            }
        }
    }
}

/// One sample's col2im: `dx[c, r, t] = Σ` of the window entries that read it.
fn col2im_sample<F: Float>(
    geometry: &Conv2dGeometry,
    grad_cols: ArrayView2<'_, F>,
    mut grad_image: ArrayViewMut1<'_, F>,
) {
    let out = geometry.output();
    let (kh, kw) = geometry.kernel;
    grad_image.fill(F::zero());
    for i in 0..out.height {
        for j in 0..out.width {
            let row = grad_cols.row(i * out.width + j);
            for c in 0..geometry.input.channels {
                for p in 0..kh {
                    for q in 0..kw {
                        if let Some((r, t)) = geometry.source(i, j, p, q) {
                            grad_image[geometry.input_index(c, r, t)] +=
                                row[geometry.weight_row(c, p, q)];
                        }
                    }
                }
            }
        }
    }
}

impl<F: Float> Layer<F> for Conv2d<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = Array2::zeros((input.nrows(), self.geometry.output().len()));
        self.forward_into(input, output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad_input = Array2::zeros((self.batch, self.geometry.input.len()));
        self.backward_into(grad_output, grad_input.view_mut());
        grad_input
    }

    #[track_caller]
    fn forward_into(&mut self, input: ArrayView2<'_, F>, mut output: ArrayViewMut2<'_, F>) {
        let geometry = self.geometry;
        let batch = input.nrows();
        let (positions, fan_in, out_channels) =
            (self.positions(), geometry.fan_in(), geometry.out_channels);
        assert_same_shape(
            "Conv2d forward input",
            input.dim(),
            (batch, geometry.input.len()),
        );
        assert_same_shape(
            "Conv2d forward_into output",
            output.dim(),
            (batch, geometry.output().len()),
        );
        self.batch = batch;
        // Phase 1: im2col, one sample per task.
        self.cols.resize(batch * positions, fan_in);
        self.cols
            .view_mut()
            .axis_chunks_iter_mut(Axis(0), positions)
            .into_par_iter()
            .zip(input.axis_iter(Axis(0)))
            .for_each(|(cols, image)| im2col_sample(&geometry, image, cols));
        // Phase 2: prod = cols W + b, the bias broadcast first and the product added (beta 1).
        self.product.resize(batch * positions, out_channels);
        let mut product = self.product.view_mut();
        product.assign(&self.bias);
        gemm(
            F::one(),
            self.cols.view(),
            self.weight.view(),
            F::one(),
            product,
        );
        // Phase 3: each sample's (P, out) block transposed into its NCHW row (out, P).
        output
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(self.product.view().axis_chunks_iter(Axis(0), positions))
            .for_each(|(row, block)| transpose_into(block, row));
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let geometry = self.geometry;
        let batch = self.batch;
        let (positions, fan_in) = (self.positions(), geometry.fan_in());
        assert_same_shape(
            "Conv2d backward grad_output",
            grad_output.dim(),
            (batch, geometry.output().len()),
        );
        assert_same_shape(
            "Conv2d backward_into grad_input",
            grad_input.dim(),
            (batch, geometry.input.len()),
        );
        // Phase 1: g from NCHW rows to one row per window, over the product's buffer.
        self.product
            .view_mut()
            .axis_chunks_iter_mut(Axis(0), positions)
            .into_par_iter()
            .zip(grad_output.axis_iter(Axis(0)))
            .for_each(|(block, row)| transpose_from(row, block));
        let grad = self.product.view();
        // Phase 2: dW += cols^T g (cols^T a strided view), db += Σ_rows g.
        gemm(
            F::one(),
            self.cols.view().t(),
            grad,
            F::one(),
            self.grad_weight.view_mut(),
        );
        for row in grad.rows() {
            self.grad_bias += &row;
        }
        // Phase 3: dcols = g W^T, then col2im, one sample per task.
        self.grad_cols.resize(batch * positions, fan_in);
        gemm(
            F::one(),
            grad,
            self.weight.t(),
            F::zero(),
            self.grad_cols.view_mut(),
        );
        grad_input
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(self.grad_cols.view().axis_chunks_iter(Axis(0), positions))
            .for_each(|(grad_image, grad_cols)| col2im_sample(&geometry, grad_cols, grad_image));
    }
}

/// `row[o P + pos] = block[pos, o]`: a sample's `(P, out)` product as an NCHW row.
fn transpose_into<F: Float>(block: ArrayView2<'_, F>, mut row: ArrayViewMut1<'_, F>) {
    let positions = block.nrows();
    for ((pos, o), &value) in block.indexed_iter() {
        row[o * positions + pos] = value;
    }
}

/// `block[pos, o] = row[o P + pos]`: an NCHW row as a sample's `(P, out)` block.
fn transpose_from<F: Float>(row: ArrayView1<'_, F>, mut block: ArrayViewMut2<'_, F>) {
    let positions = block.nrows();
    for ((pos, o), value) in block.indexed_iter_mut() {
        *value = row[o * positions + pos];
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
