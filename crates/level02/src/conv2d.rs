//! `Conv2d` as a matrix product: im2col, `dot`, col2im.

use backprop_core::{Conv2dGeometry, Float, Layer, LinearLayer, LinearMut, assert_same_shape};
use ndarray::{Array1, Array2, Array4, ArrayView2, Axis, Ix3, SliceInfo, SliceInfoElem, s};

/// A 2-D convolution written as one matrix product (see [`backprop_core::conv`]).
///
/// im2col copies every window of the batch into one row of `cols` `(batch OH OW, C kh kw)`;
/// then, with `g` the output gradient laid out the same way `(batch OH OW, out_channels)`:
///
/// ```text
/// y    = cols W + b        (batch OH OW, C kh kw) . (C kh kw, out)
/// dW  += cols^T g          (C kh kw, batch OH OW) . (batch OH OW, out)
/// db  += Σ_rows g
/// dcols = g W^T            (batch OH OW, out) . (out, C kh kw), then col2im adds each window
///                          back where it was read: windows that overlap add up
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d<F> {
    geometry: Conv2dGeometry,
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    /// im2col of the last forward's input: dL/dW needs it.
    cols: Option<Array2<F>>,
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
            cols: None,
        }
    }

    /// The strided window of kernel entry `(p, q)` in the padded input: rows
    /// `p, p + s, ..., p + s (OH - 1)` and the same for columns.
    fn window(&self, p: usize, q: usize) -> Window {
        let out = self.geometry.output();
        let stride = self.geometry.stride;
        s![
            ..,
            p..p + stride * (out.height - 1) + 1;stride,
            q..q + stride * (out.width - 1) + 1;stride
        ]
    }
}

/// A slice of a `(batch, H, W)` channel: one entry of every window.
type Window = SliceInfo<[SliceInfoElem; 3], Ix3, Ix3>;

/// im2col: `(batch, C H W)` rows to `(batch OH OW, C kh kw)`, one row per window.
fn im2col<F: Float>(conv: &Conv2d<F>, input: ArrayView2<'_, F>) -> Array2<F> {
    let geometry = conv.geometry;
    let (image, out, pad) = (geometry.input, geometry.output(), geometry.padding);
    let batch = input.nrows();
    // The input with `pad` zeros around every image: (batch, C, H + 2 pad, W + 2 pad).
    let images = input
        .to_owned()
        .into_shape_clone((batch, image.channels, image.height, image.width))
        .expect("the sizes match");
    let mut padded = Array4::zeros((
        batch,
        image.channels,
        image.height + 2 * pad,
        image.width + 2 * pad,
    ));
    padded
        .slice_mut(s![.., .., pad..pad + image.height, pad..pad + image.width])
        .assign(&images);
    // Column (c, p, q) of cols is, for every window, the entry (p, q) of channel c.
    let (kh, kw) = geometry.kernel;
    let mut cols = Array4::zeros((batch, out.height, out.width, geometry.fan_in()));
    for c in 0..image.channels {
        let channel = padded.index_axis(Axis(1), c);
        for p in 0..kh {
            for q in 0..kw {
                cols.index_axis_mut(Axis(3), geometry.weight_row(c, p, q))
                    .assign(&channel.slice(conv.window(p, q)));
            }
        }
    }
    cols.into_shape_clone((batch * out.height * out.width, geometry.fan_in()))
        .expect("the sizes match")
}

/// col2im: the window gradients `(batch OH OW, C kh kw)` added back into `(batch, C H W)`.
fn col2im<F: Float>(conv: &Conv2d<F>, grad_cols: Array2<F>, batch: usize) -> Array2<F> {
    let geometry = conv.geometry;
    let (image, out, pad) = (geometry.input, geometry.output(), geometry.padding);
    let (kh, kw) = geometry.kernel;
    let grad_cols = grad_cols
        .into_shape_clone((batch, out.height, out.width, geometry.fan_in()))
        .expect("the sizes match");
    let mut padded = Array4::zeros((
        batch,
        image.channels,
        image.height + 2 * pad,
        image.width + 2 * pad,
    ));
    for c in 0..image.channels {
        let mut channel = padded.index_axis_mut(Axis(1), c);
        for p in 0..kh {
            for q in 0..kw {
                let mut window = channel.slice_mut(conv.window(p, q));
                window += &grad_cols.index_axis(Axis(3), geometry.weight_row(c, p, q));
            }
        }
    }
    // The padding's gradient goes nowhere: keep the inside.
    padded
        .slice(s![.., .., pad..pad + image.height, pad..pad + image.width])
        .to_owned()
        .into_shape_clone((batch, image.len()))
        .expect("the sizes match")
}

impl<F: Float> Layer<F> for Conv2d<F> {
    #[track_caller]
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let geometry = self.geometry;
        let batch = input.nrows();
        assert_same_shape(
            "Conv2d forward input",
            input.dim(),
            (batch, geometry.input.len()),
        );
        let out = geometry.output();
        let positions = out.height * out.width;
        let cols = im2col(self, input);
        // y = cols W + b: (batch OH OW, out), then to NCHW rows (batch, out OH OW).
        let product = cols.dot(&self.weight) + &self.bias;
        self.cols = Some(cols);
        product
            .into_shape_clone((batch, positions, out.channels))
            .expect("the sizes match")
            .permuted_axes([0, 2, 1])
            .into_shape_clone((batch, out.len()))
            .expect("the sizes match")
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let cols = self
            .cols
            .as_ref()
            .expect("Conv2d backward called before forward");
        let out = self.geometry.output();
        let positions = out.height * out.width;
        let batch = cols.nrows() / positions;
        assert_same_shape(
            "Conv2d backward grad_output",
            grad_output.dim(),
            (batch, out.len()),
        );
        // g from NCHW rows to one row per window: (batch OH OW, out).
        let grad = grad_output
            .to_owned()
            .into_shape_clone((batch, out.channels, positions))
            .expect("the sizes match")
            .permuted_axes([0, 2, 1])
            .into_shape_clone((batch * positions, out.channels))
            .expect("the sizes match");
        // dL/dW = cols^T g and dL/db = Σ_rows g, accumulated.
        self.grad_weight += &cols.t().dot(&grad);
        self.grad_bias += &grad.sum_axis(Axis(0));
        // dL/dcols = g W^T, then each window back to where it came from.
        let grad_cols = grad.dot(&self.weight.t());
        col2im(self, grad_cols, batch)
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
