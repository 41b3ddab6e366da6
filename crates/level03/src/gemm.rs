//! Matrix products straight into preallocated outputs.

use backprop_core::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Products of at least this many multiply-adds are split in two on rayon (when it has more than
/// one thread). A 32 x 784 x 256 forward product is 6.4 million.
const SPLIT_AT_MULTIPLY_ADDS: usize = 1 << 20;

/// `C <- alpha A B + beta C` through matrixmultiply (ndarray's `general_mat_mul`), reading A and B
/// through their strides, so a transpose (`x.t()`) costs no copy.
///
/// Shapes: A `(m, k)`, B `(k, n)`, C `(m, n)`. When rayon has more than one thread and the
/// product is large, C's rows (and A's) are split into two halves computed by `rayon::join`.
/// Each element of C is still the same sum in the same order (splitting rows does not change
/// the k loop), so the result is bit-identical on 1 and 2 threads.
///
/// matrixmultiply allocates one packing buffer per call (two when split): the only allocations
/// of a training step.
///
/// # Panics
/// If the shapes do not chain (ndarray's message names them).
pub(crate) fn gemm<F: Float>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    mut c: ArrayViewMut2<'_, F>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m >= 2 && m * k * n >= SPLIT_AT_MULTIPLY_ADDS && rayon::current_num_threads() > 1 {
        let middle = m / 2;
        let (a_top, a_bottom) = a.split_at(Axis(0), middle);
        let (mut c_top, mut c_bottom) = c.split_at(Axis(0), middle);
        rayon::join(
            || general_mat_mul(alpha, &a_top, &b, beta, &mut c_top),
            || general_mat_mul(alpha, &a_bottom, &b, beta, &mut c_bottom),
        );
    } else {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
    }
}
