//! Every tolerance of the suite, in one place.
//!
//! Two relative errors: comparisons with a reference decide by approx's `max_relative`,
//! `|ours - expected| / max(1e-8, |ours|, |expected|)` ([`crate::expect::relative_error`]); the
//! finite-difference checks by CS231n's `|a - n| / max(1e-8, |a| + |n|)`
//! ([`backprop_core::gradcheck::relative_error`]).

/// Against values derived by hand in `f64`: only the rounding of a few operations may differ.
pub const EXACT_F64: f64 = 1e-12;

/// Against the harness's [`reference`](mod@crate::reference) pass in `f64`: the same math summed in
/// another order. Over a 1024-term sum whose terms cancel, entries of 4e-9 already differ by
/// 1e-11 relative, so the bound is the one the PyTorch parity gate uses for `f64`.
pub const REFERENCE_F64: f64 = 1e-10;

/// A single layer against central differences (h = 1e-5, f64): the truncation error is O(h²),
/// about 1e-10 relative for these smooth functions.
pub const FINITE_DIFFERENCE_LAYER: f64 = 1e-7;

/// A whole network against central differences: errors compound through the layers.
pub const FINITE_DIFFERENCE_NETWORK: f64 = 1e-5;

/// An `f32` run against the same run in `f64`: about 1e-7 relative rounding per operation,
/// grown over a few layers and sums of a few hundred terms.
pub const F32_AGAINST_F64: f64 = 1e-4;

/// Gate 4 in `f64`: relative error against PyTorch's autograd. Only the order of floating-point
/// operations differs (PyTorch's BLAS against ours), as in [`REFERENCE_F64`].
pub const PYTORCH_F64: f64 = 1e-10;

/// Gate 4 in `f32`: `torch.testing.assert_close`'s defaults, `|ours - torch| <= atol + rtol
/// |torch|` entry by entry.
pub const PYTORCH_F32_RTOL: f64 = 1.3e-6;

/// See [`PYTORCH_F32_RTOL`].
pub const PYTORCH_F32_ATOL: f64 = 1e-5;
