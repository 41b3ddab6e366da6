//! The geometry of images, convolutions and pooling, shared by every level.
//!
//! Images travel as rows of the same `(batch, features)` arrays as everything else: one row is
//! one image, its `channels x height x width` values in NCHW order (channel, then row, then
//! column), exactly PyTorch's `x.reshape(batch, -1)`. Value `(c, i, j)` of an image sits at
//! column `(c * height + i) * width + j`.
//!
//! | PyTorch                                             | backprop                          |
//! |-----------------------------------------------------|-----------------------------------|
//! | `nn.Conv2d(c_in, c_out, (kh, kw), stride, padding)` | [`Level::conv2d`] with a [`Conv2dGeometry`] |
//! | `conv.weight` `(c_out, c_in, kh, kw)`                | weight `(c_in kh kw, c_out)`: `conv.weight.reshape(c_out, -1).T` |
//! | `nn.MaxPool2d((kh, kw), stride)`                     | [`Level::max_pool2d`] with a [`Pool2dGeometry`] |
//! | `nn.Flatten()`                                       | nothing to compute: the rows are already flat |
//!
//! **Convolution** (PyTorch's, a cross-correlation: the kernel is *not* flipped), for output
//! channel o at output position (i, j):
//!
//! ```text
//! y[o, i, j] = b[o] + Σ_c Σ_p Σ_q x[c, i s + p - pad, j s + q - pad] W[(c, p, q), o]
//! ```
//!
//! with x read as 0 outside the image. The weight is stored as the matrix of the im2col
//! product: row `(c kh + p) kw + q`, column `o`. So `y = cols(x) W + b`, where `cols(x)` has one
//! row per output position and one column per `(c, p, q)`: "a convolution is a matrix product",
//! and a `Conv2d` layer hands its weight to optimizers exactly as `Linear` does, as a
//! `(fan_in, fan_out)` matrix with `fan_in = c_in kh kw`.
//!
//! **Max pooling** takes the largest value of each window; on ties the first in row-major
//! order inside the window wins (PyTorch's CPU kernel compares with `>`), and a NaN wins over
//! any number. Its backward sends each output's gradient to that one entry, adding where
//! windows overlap.
//!
//! Output size along each axis (PyTorch's, `floor` rounding):
//! `out = (in + 2 padding - kernel) / stride + 1`.

use std::fmt;

#[cfg(doc)]
use crate::Level;

/// The shape of one sample: `channels x height x width`. A flat vector of `n` features is
/// `n x 1 x 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// C.
    pub channels: usize,
    /// H.
    pub height: usize,
    /// W.
    pub width: usize,
}

impl ImageShape {
    /// `channels x height x width`.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        ImageShape {
            channels,
            height,
            width,
        }
    }

    /// `features x 1 x 1`: a flat vector.
    pub const fn flat(features: usize) -> Self {
        ImageShape::new(features, 1, 1)
    }

    /// The number of values in one sample: C H W (saturating: shapes come from checked specs).
    pub fn len(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// True when the sample holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for a flat vector (`n x 1 x 1`).
    pub fn is_flat(&self) -> bool {
        self.height == 1 && self.width == 1
    }

    /// The same values seen as a flat vector.
    pub fn flattened(&self) -> Self {
        ImageShape::flat(self.len())
    }
}

impl fmt::Display for ImageShape {
    /// `784 features` for a flat vector, `1x28x28` for an image.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_flat() {
            write!(f, "{} features", self.channels)
        } else {
            write!(f, "{}x{}x{}", self.channels, self.height, self.width)
        }
    }
}

/// `(in + 2 padding - kernel) / stride + 1`, or `None` when the window does not fit once
/// (kernel larger than the padded input), the stride is 0 or the sizes overflow.
pub fn output_len(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = input.checked_add(padding.checked_mul(2)?)?;
    if stride == 0 || kernel == 0 || kernel > padded {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

/// Everything a `Conv2d` layer needs to know about its input and its window.
///
/// Shapes: input rows `(batch, C H W)`, weight `(C kh kw, out_channels)`, bias
/// `(out_channels,)`, output rows `(batch, out_channels OH OW)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    /// The input image `C x H x W`.
    pub input: ImageShape,
    /// The number of output channels (filters).
    pub out_channels: usize,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// The step between two windows, the same along both axes.
    pub stride: usize,
    /// Zeros added on every side, the same along both axes.
    pub padding: usize,
}

impl Conv2dGeometry {
    /// The geometry, if the kernel fits inside the padded input and every size is positive.
    ///
    /// # Errors
    /// A sentence saying what does not fit: `"kernel 5x5 is larger than the padded input 3x3"`.
    pub fn new(
        input: ImageShape,
        out_channels: usize,
        kernel: (usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self, String> {
        let geometry = Conv2dGeometry {
            input,
            out_channels,
            kernel,
            stride,
            padding,
        };
        geometry.check().map(|_| geometry)
    }

    fn check(&self) -> Result<ImageShape, String> {
        let (kh, kw) = self.kernel;
        if self.input.is_empty() || self.out_channels == 0 || kh == 0 || kw == 0 {
            return Err(format!(
                "every size must be positive (input {}, {} output channels, kernel {kh}x{kw})",
                self.input, self.out_channels
            ));
        }
        if self.stride == 0 {
            return Err("stride must be at least 1".into());
        }
        let padded = |len: usize| len.saturating_add(self.padding.saturating_mul(2));
        match (
            output_len(self.input.height, kh, self.stride, self.padding),
            output_len(self.input.width, kw, self.stride, self.padding),
        ) {
            (Some(height), Some(width)) => Ok(ImageShape::new(self.out_channels, height, width)),
            _ => Err(format!(
                "kernel {kh}x{kw} is larger than the padded input {}x{} (input {}, padding {})",
                padded(self.input.height),
                padded(self.input.width),
                self.input,
                self.padding
            )),
        }
    }

    /// The output image `out_channels x OH x OW`.
    ///
    /// # Panics
    /// If the geometry does not fit (only possible when built field by field, not by `new`).
    #[track_caller]
    pub fn output(&self) -> ImageShape {
        self.check()
            .unwrap_or_else(|problem| panic!("Conv2d geometry {self:?}: {problem}"))
    }

    /// `C kh kw`: the rows of the weight, the columns of the im2col matrix.
    pub fn fan_in(&self) -> usize {
        self.input.channels * self.kernel.0 * self.kernel.1
    }

    /// The weight's shape `(C kh kw, out_channels)`.
    pub fn weight_shape(&self) -> (usize, usize) {
        (self.fan_in(), self.out_channels)
    }

    /// The column of input value `(channel, row, column)` in an image row: `(c H + i) W + j`.
    pub fn input_index(&self, channel: usize, row: usize, column: usize) -> usize {
        (channel * self.input.height + row) * self.input.width + column
    }

    /// The row of the weight for kernel entry `(channel, p, q)`: `(c kh + p) kw + q`.
    pub fn weight_row(&self, channel: usize, p: usize, q: usize) -> usize {
        (channel * self.kernel.0 + p) * self.kernel.1 + q
    }

    /// The input row and column that kernel entry `(p, q)` of the window at output position
    /// `(i, j)` reads, or `None` where it falls in the zero padding.
    #[inline]
    pub fn source(&self, i: usize, j: usize, p: usize, q: usize) -> Option<(usize, usize)> {
        let row = (i * self.stride + p).checked_sub(self.padding)?;
        let column = (j * self.stride + q).checked_sub(self.padding)?;
        (row < self.input.height && column < self.input.width).then_some((row, column))
    }

    /// Multiply-adds of one sample's forward product: `OH OW x C kh kw x out_channels`.
    pub fn multiply_adds(&self) -> usize {
        let output = self.output();
        output.height * output.width * self.fan_in() * self.out_channels
    }
}

/// Everything a `MaxPool2d` layer needs: its input and its window (no padding, PyTorch's
/// floor rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dGeometry {
    /// The input image `C x H x W`.
    pub input: ImageShape,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// The step between two windows, the same along both axes.
    pub stride: usize,
}

impl Pool2dGeometry {
    /// The geometry, if the window fits inside the input.
    ///
    /// # Errors
    /// A sentence saying what does not fit.
    pub fn new(input: ImageShape, kernel: (usize, usize), stride: usize) -> Result<Self, String> {
        let geometry = Pool2dGeometry {
            input,
            kernel,
            stride,
        };
        geometry.check().map(|_| geometry)
    }

    fn check(&self) -> Result<ImageShape, String> {
        let (kh, kw) = self.kernel;
        if self.input.is_empty() || kh == 0 || kw == 0 || self.stride == 0 {
            return Err(format!(
                "every size must be positive (input {}, window {kh}x{kw}, stride {})",
                self.input, self.stride
            ));
        }
        match (
            output_len(self.input.height, kh, self.stride, 0),
            output_len(self.input.width, kw, self.stride, 0),
        ) {
            (Some(height), Some(width)) => Ok(ImageShape::new(self.input.channels, height, width)),
            _ => Err(format!(
                "window {kh}x{kw} is larger than the input {}",
                self.input
            )),
        }
    }

    /// The output image `C x OH x OW`.
    ///
    /// # Panics
    /// If the geometry does not fit (only possible when built field by field).
    #[track_caller]
    pub fn output(&self) -> ImageShape {
        self.check()
            .unwrap_or_else(|problem| panic!("MaxPool2d geometry {self:?}: {problem}"))
    }

    /// The input column of entry `(p, q)` of channel `c`'s window at output position `(i, j)`.
    #[inline]
    pub fn source(&self, c: usize, i: usize, j: usize, p: usize, q: usize) -> usize {
        let row = i * self.stride + p;
        let column = j * self.stride + q;
        (c * self.input.height + row) * self.input.width + column
    }
}

/// True when `candidate` replaces `best` as a window's maximum: larger, or NaN (PyTorch's
/// `val > max || isnan(val)`), so the first of tied maxima stays.
#[inline]
pub fn replaces_max<F: crate::Float>(candidate: F, best: F) -> bool {
    (candidate > best) | candidate.is_nan()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        // 28 + 2 - 3 = 27, / 1 + 1 = 28 ("same" padding); 28 / 2 pooling = 14.
        let conv = Conv2dGeometry::new(ImageShape::new(1, 28, 28), 8, (3, 3), 1, 1).unwrap();
        assert_eq!(conv.output(), ImageShape::new(8, 28, 28));
        assert_eq!(conv.weight_shape(), (9, 8));
        // (7 - 3) / 2 + 1 = 3; (5 + 2 - 2) / 2 + 1 = 3 (floor).
        let strided = Conv2dGeometry::new(ImageShape::new(2, 7, 5), 3, (3, 2), 2, 1).unwrap();
        assert_eq!(strided.output(), ImageShape::new(3, 4, 3));
        let pool = Pool2dGeometry::new(ImageShape::new(8, 7, 7), (2, 2), 2).unwrap();
        assert_eq!(pool.output(), ImageShape::new(8, 3, 3));
    }

    #[test]
    fn a_kernel_larger_than_the_padded_input_is_refused() {
        let error = Conv2dGeometry::new(ImageShape::new(1, 3, 3), 1, (5, 5), 1, 0).unwrap_err();
        assert!(
            error.contains("kernel 5x5 is larger than the padded input 3x3"),
            "{error}"
        );
        // Padding 1 makes it 5x5: exactly one window.
        let fits = Conv2dGeometry::new(ImageShape::new(1, 3, 3), 1, (5, 5), 1, 1).unwrap();
        assert_eq!(fits.output(), ImageShape::new(1, 1, 1));
        assert!(Pool2dGeometry::new(ImageShape::new(1, 2, 2), (3, 3), 1).is_err());
        assert!(Conv2dGeometry::new(ImageShape::new(1, 3, 3), 1, (1, 1), 0, 0).is_err());
    }

    #[test]
    fn sources_skip_the_padding() {
        let conv = Conv2dGeometry::new(ImageShape::new(1, 4, 4), 1, (3, 3), 1, 1).unwrap();
        assert_eq!(conv.source(0, 0, 0, 0), None);
        assert_eq!(conv.source(0, 0, 1, 1), Some((0, 0)));
        assert_eq!(conv.source(3, 3, 2, 2), None);
        assert_eq!(conv.source(3, 3, 1, 1), Some((3, 3)));
    }
}
