//! `Conv2d`: im2col into a reused buffer laid out for the product, the products through
//! matrixmultiply, the samples of a batch on rayon.

use backprop_core::{Conv2dGeometry, Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, s};

use crate::gemm::gemm;

/// A 2-D convolution as matrix products over reused buffers (see [`backprop_core::conv`]).
///
/// With P = OH OW output positions per sample, K = C kh kw, and the weight W `(K, out)`:
///
/// ```text
/// cols  (K, batch P)   <- im2col(x): sample n's windows are columns n P .. (n + 1) P
/// ycat  (out, batch P) <- W^T cols           one product over the batch
/// y_n   (out, P)       <- ycat_n + b         each sample's block into its NCHW output row
/// gcat  (out, batch P) <- dL/dy, the samples' (out, P) blocks side by side
/// dW   += cols gcat^T  (K, out)              one product over the batch
/// db   += Σ_columns gcat
/// dcols (K, batch P)   <- W gcat             one product over the batch
/// dx_n                 <- col2im(dcols_n)    per sample
/// ```
///
/// Laid out this way, an image channel's row is a contiguous run of a `cols` row (im2col and
/// col2im are copies and adds of runs, not gathers), a sample's block of a product is its NCHW
/// row channel by channel (copies of runs, no transpose), and each product spans the whole
/// batch, so matrixmultiply packs each operand once per step.
///
/// Every buffer is sized for the largest batch seen and reused, so a steady batch size
/// allocates nothing but the three products' packing buffers. Each output element is computed
/// by one thread in a fixed order whatever the number of threads (products are cut by rows or
/// columns of their result, never along the sum), so 1 and 2 threads give bit-identical
/// results.
#[derive(Debug, Clone)]
pub struct Conv2d<F> {
    geometry: Conv2dGeometry,
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// im2col of the last forward's input `(K, batch P)`, which dW reads.
    cols: ColumnBuffer<F>,
    /// The forward product `(out, batch P)`, then dL/dy in the same layout.
    blocks: ColumnBuffer<F>,
    /// dL/dcols `(K, batch P)`.
    grad_cols: ColumnBuffer<F>,
    /// The batch of the last forward.
    batch: usize,
}

/// A `(rows, capacity)` matrix whose first `columns` columns are live, grown (one allocation)
/// only when more columns than ever before are asked for.
#[derive(Debug, Clone)]
struct ColumnBuffer<F> {
    data: Array2<F>,
    columns: usize,
}

impl<F: Float> ColumnBuffer<F> {
    fn new(rows: usize) -> Self {
        ColumnBuffer {
            data: Array2::zeros((rows, 0)),
            columns: 0,
        }
    }

    fn resize(&mut self, columns: usize) {
        if columns > self.data.ncols() {
            self.data = Array2::zeros((self.data.nrows(), columns));
        }
        self.columns = columns;
    }

    fn view(&self) -> ArrayView2<'_, F> {
        self.data.slice(s![.., ..self.columns])
    }

    fn view_mut(&mut self) -> ArrayViewMut2<'_, F> {
        self.data.slice_mut(s![.., ..self.columns])
    }
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
            cols: ColumnBuffer::new(geometry.fan_in()),
            blocks: ColumnBuffer::new(geometry.out_channels),
            grad_cols: ColumnBuffer::new(geometry.fan_in()),
            batch: 0,
        }
    }

    /// Backward phases 1 and 2: `gcat` from dL/dy, then dW and db.
    fn accumulate_params(&mut self, grad_output: ArrayView2<'_, F>) {
        let positions = self.positions();
        let (batch, out_channels) = (self.batch, self.geometry.out_channels);
        // Phase 1: each sample's (out, P) gradient into its block of gcat.
        self.blocks.resize(batch * positions);
        self.blocks
            .view_mut()
            .axis_chunks_iter_mut(Axis(1), positions)
            .into_par_iter()
            .zip(grad_output.axis_iter(Axis(0)))
            .for_each(|(mut block, row)| block.assign(&as_channels(row, out_channels)));
        // Phase 2: dW += cols gcat^T over the whole batch, db += each channel's sum.
        let grad_blocks = self.blocks.view();
        gemm(
            F::one(),
            self.cols.view(),
            grad_blocks.t(),
            F::one(),
            self.grad_weight.view_mut(),
        );
        for (grad_bias, channel) in self.grad_bias.iter_mut().zip(grad_blocks.rows()) {
            *grad_bias += channel.sum();
        }
    }

    /// Output positions per sample.
    fn positions(&self) -> usize {
        let out = self.geometry.output();
        out.height * out.width
    }
}

/// Where kernel entry `(p, q)` reads, for every output position: the input row of output row
/// `i` (`None` in the padding) and the output columns `j` whose input column is inside the
/// image, `first..end`, input column `j s + q - pad`.
struct Taps {
    stride: usize,
    padding: usize,
    height: usize,
    width: usize,
    out_width: usize,
}

impl Taps {
    fn of(geometry: &Conv2dGeometry) -> Self {
        Taps {
            stride: geometry.stride,
            padding: geometry.padding,
            height: geometry.input.height,
            width: geometry.input.width,
            out_width: geometry.output().width,
        }
    }

    /// The input row that output row `i` reads with kernel row `p`.
    fn row(&self, i: usize, p: usize) -> Option<usize> {
        (i * self.stride + p)
            .checked_sub(self.padding)
            .filter(|&row| row < self.height)
    }

    /// The output columns whose kernel column `q` falls inside the image.
    fn columns(&self, q: usize) -> (usize, usize) {
        // j s + q >= pad  and  j s + q - pad <= W - 1.
        let first = self.padding.saturating_sub(q).div_ceil(self.stride);
        let end = match (self.width + self.padding).checked_sub(q + 1) {
            Some(last) => (last / self.stride + 1).min(self.out_width),
            None => 0,
        };
        (first.min(end), end)
    }
}

/// One sample's im2col into its `(K, P)` block:
/// `cols[(c, p, q), (i, j)] = x[c, i s + p - pad, j s + q - pad]` (0 in the padding).
fn im2col_sample<F: Float>(
    geometry: &Conv2dGeometry,
    image: ArrayView1<'_, F>,
    mut cols: ArrayViewMut2<'_, F>,
) {
    let taps = Taps::of(geometry);
    let (kh, kw) = geometry.kernel;
    let (height, width) = (geometry.input.height, geometry.input.width);
    let image = image.as_slice().expect("an input row is contiguous");
    for c in 0..geometry.input.channels {
        let channel = &image[c * height * width..(c + 1) * height * width];
        for p in 0..kh {
            for q in 0..kw {
                let mut row = cols.row_mut(geometry.weight_row(c, p, q));
                let row = row.as_slice_mut().expect("a cols row is contiguous");
                let (first, end) = taps.columns(q);
                for (i, out_row) in row.chunks_exact_mut(taps.out_width).enumerate() {
                    let Some(input_row) = taps.row(i, p) else {
                        out_row.fill(F::zero());
                        continue;
                    };
                    let input_row = &channel[input_row * width..(input_row + 1) * width];
                    out_row[..first].fill(F::zero());
                    out_row[end..].fill(F::zero());
                    let start = first * taps.stride + q - taps.padding;
                    if taps.stride == 1 {
                        out_row[first..end].copy_from_slice(&input_row[start..start + end - first]);
                    } else {
                        for (value, &x) in out_row[first..end]
                            .iter_mut()
                            .zip(input_row[start..].iter().step_by(taps.stride))
                        {
                            *value = x;
                        }
                    }
                }
            }
        }
    }
}

/// One sample's col2im: `dx[c, r, t] = Σ` of the `dcols` entries that read it.
fn col2im_sample<F: Float>(
    geometry: &Conv2dGeometry,
    grad_cols: ArrayView2<'_, F>,
    mut grad_image: ArrayViewMut1<'_, F>,
) {
    let taps = Taps::of(geometry);
    let (kh, kw) = geometry.kernel;
    let (height, width) = (geometry.input.height, geometry.input.width);
    let grad_image = grad_image
        .as_slice_mut()
        .expect("a gradient row is contiguous");
    grad_image.fill(F::zero());
    for c in 0..geometry.input.channels {
        let channel = &mut grad_image[c * height * width..(c + 1) * height * width];
        for p in 0..kh {
            for q in 0..kw {
                let row = grad_cols.row(geometry.weight_row(c, p, q));
                let row = row.as_slice().expect("a dcols row is contiguous");
                let (first, end) = taps.columns(q);
                for (i, out_row) in row.chunks_exact(taps.out_width).enumerate() {
                    let Some(input_row) = taps.row(i, p) else {
                        continue;
                    };
                    let input_row = &mut channel[input_row * width..(input_row + 1) * width];
                    let start = first * taps.stride + q - taps.padding;
                    let values = &out_row[first..end];
                    if taps.stride == 1 {
                        let run = &mut input_row[start..start + values.len()];
                        for (x, &value) in run.iter_mut().zip(values) {
                            *x += value;
                        }
                    } else {
                        let run = input_row[start..].iter_mut().step_by(taps.stride);
                        for (x, &value) in run.zip(values) {
                            *x += value;
                        }
                    }
                }
            }
        }
    }
}

/// A sample's NCHW row seen as its `(channels, positions)` matrix.
fn as_channels<F>(row: ArrayView1<'_, F>, channels: usize) -> ArrayView2<'_, F> {
    let positions = row.len() / channels;
    row.into_shape_with_order((channels, positions))
        .expect("an NCHW row is contiguous")
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
        let (positions, out_channels) = (self.positions(), geometry.out_channels);
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
        self.cols.resize(batch * positions);
        self.cols
            .view_mut()
            .axis_chunks_iter_mut(Axis(1), positions)
            .into_par_iter()
            .zip(input.axis_iter(Axis(0)))
            .for_each(|(cols, image)| im2col_sample(&geometry, image, cols));
        // Phase 2: ycat = W^T cols, one product over the batch.
        self.blocks.resize(batch * positions);
        gemm(
            F::one(),
            self.weight.t(),
            self.cols.view(),
            F::zero(),
            self.blocks.view_mut(),
        );
        // Phase 3: each sample's block plus the bias into its NCHW row.
        let bias = &self.bias;
        output
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(self.blocks.view().axis_chunks_iter(Axis(1), positions))
            .for_each(|(row, block)| {
                let mut y = row
                    .into_shape_with_order((out_channels, positions))
                    .expect("an output row is contiguous");
                for ((mut channel, block_row), &b) in
                    y.rows_mut().into_iter().zip(block.rows()).zip(bias)
                {
                    channel.zip_mut_with(&block_row, |y, &product| *y = product + b);
                }
            });
    }

    #[track_caller]
    fn backward_into(
        &mut self,
        grad_output: ArrayView2<'_, F>,
        mut grad_input: ArrayViewMut2<'_, F>,
    ) {
        let geometry = self.geometry;
        let batch = self.batch;
        let positions = self.positions();
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
        self.accumulate_params(grad_output);
        // Phase 3: dcols = W gcat over the batch, then col2im, one sample per task.
        let grad_blocks = self.blocks.view();
        self.grad_cols.resize(batch * positions);
        gemm(
            F::one(),
            self.weight.view(),
            grad_blocks,
            F::zero(),
            self.grad_cols.view_mut(),
        );
        grad_input
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(self.grad_cols.view().axis_chunks_iter(Axis(1), positions))
            .for_each(|(grad_image, grad_cols)| col2im_sample(&geometry, grad_cols, grad_image));
    }
}

impl<F: Float> LinearLayer<F> for Conv2d<F> {
    /// Phases 1 and 2 of backward only: no dcols product, no col2im.
    #[track_caller]
    fn backward_params_only(&mut self, grad_output: ArrayView2<'_, F>) {
        assert_same_shape(
            "Conv2d backward grad_output",
            grad_output.dim(),
            (self.batch, self.geometry.output().len()),
        );
        self.accumulate_params(grad_output);
    }

    fn params_mut(&mut self) -> LinearMut<'_, F> {
        LinearMut {
            weight: self.weight.view_mut(),
            bias: self.bias.view_mut(),
            grad_weight: self.grad_weight.view_mut(),
            grad_bias: self.grad_bias.view_mut(),
        }
    }
}
