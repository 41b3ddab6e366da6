//! The scalar type every level is generic over: `f32` for training speed, `f64` for checks.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};

/// A floating-point element type: `f32` or `f64`.
///
/// It bundles what the levels need from a float (arithmetic, `exp`, `ln`, `tanh`, ndarray's
/// matrix products and scalar broadcasting) and two lossless-enough conversions through `f64`,
/// which is the type the gradient checks and the initialisers compute in.
pub trait Float:
    num_traits::Float
    + LinalgScalar
    + ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// `"f32"` or `"f64"`, for messages.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest for `f32`: `F::of(0.5)`.
    fn of(value: f64) -> Self;

    /// Widens (or keeps) the value as an `f64`.
    fn as_f64(self) -> f64;
}

impl Float for f32 {
    const NAME: &'static str = "f32";

    fn of(value: f64) -> Self {
        value as f32
    }

    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";

    fn of(value: f64) -> Self {
        value
    }

    fn as_f64(self) -> f64 {
        self
    }
}
