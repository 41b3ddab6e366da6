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
/// product is large, C is cut into two halves computed by `rayon::join`: by rows (each half
/// packs half of A and all of B), or by columns when A has at most a quarter as many rows as B
/// has columns (each half packs all of A and half of B). The forward product of a batch of 32
/// or 64, `(B, 784) x (784, 256)`, is cut by columns, so W's halves are packed once each instead
/// of W twice; from batch 128 on, rows measured faster on 2 cores. Each element of C is still
/// the same sum in the same order (the cut does not change the k loop), so the result is
/// bit-identical on 1 and 2 threads.
///
/// matrixmultiply allocates one packing buffer per call (two when cut): the only allocations of
/// a training step.
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
    let large = m.max(n) >= 2 && m * k * n >= SPLIT_AT_MULTIPLY_ADDS;
    if !large || rayon::current_num_threads() == 1 {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
    } else if 4 * m > n {
        let (a_top, a_bottom) = a.split_at(Axis(0), m / 2);
        let (mut c_top, mut c_bottom) = c.split_at(Axis(0), m / 2);
        rayon::join(
            || general_mat_mul(alpha, &a_top, &b, beta, &mut c_top),
            || general_mat_mul(alpha, &a_bottom, &b, beta, &mut c_bottom),
        );
    } else {
        let (b_left, b_right) = b.split_at(Axis(1), n / 2);
        let (mut c_left, mut c_right) = c.split_at(Axis(1), n / 2);
        rayon::join(
            || general_mat_mul(alpha, &a, &b_left, beta, &mut c_left),
            || general_mat_mul(alpha, &a, &b_right, beta, &mut c_right),
        );
    }
}
