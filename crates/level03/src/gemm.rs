//! Matrix products straight into preallocated outputs.

use backprop_core::Float;
use backprop_core::optim::TensorUpdate;
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
    c: ArrayViewMut2<'_, F>,
) {
    gemm_then(alpha, a, b, beta, c, (), |_, ()| {});
}

/// [`gemm`], then `then(piece of C, piece of companion)` on each piece of C by the thread that
/// computed it, the companion cut as C is (the weight and its optimizer update, for the first
/// layer's gradient: each half is updated while it is still in that core's cache).
pub(crate) fn gemm_then<F: Float, S: CutAlong>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    mut c: ArrayViewMut2<'_, F>,
    companion: S,
    then: impl Fn(ArrayView2<'_, F>, S) + Sync,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let large = m.max(n) >= 2 && m * k * n >= SPLIT_AT_MULTIPLY_ADDS;
    if !large || rayon::current_num_threads() == 1 {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        then(c.view(), companion);
        return;
    }
    // Rows of C cut A's rows; columns of C cut B's columns. The other operand is read whole.
    let (cut, at) = if 4 * m > n {
        (Axis(0), m / 2)
    } else {
        (Axis(1), n / 2)
    };
    let ((a_first, a_rest), (b_first, b_rest)) = if cut == Axis(0) {
        (a.split_at(cut, at), (b, b))
    } else {
        ((a, a), b.split_at(cut, at))
    };
    let (mut c_first, mut c_rest) = c.split_at(cut, at);
    let (companion_first, companion_rest) = companion.cut(cut, at);
    rayon::join(
        || {
            general_mat_mul(alpha, &a_first, &b_first, beta, &mut c_first);
            then(c_first.view(), companion_first);
        },
        || {
            general_mat_mul(alpha, &a_rest, &b_rest, beta, &mut c_rest);
            then(c_rest.view(), companion_rest);
        },
    );
}

/// What [`gemm_then`] cuts along with C.
pub(crate) trait CutAlong: Sized + Send {
    /// The pieces before and after `index` along `axis`.
    fn cut(self, axis: Axis, index: usize) -> (Self, Self);
}

impl CutAlong for () {
    fn cut(self, _: Axis, _: usize) -> ((), ()) {
        ((), ())
    }
}

impl<T: CutAlong> CutAlong for Option<T> {
    fn cut(self, axis: Axis, index: usize) -> (Self, Self) {
        self.map(|both| both.cut(axis, index)).unzip()
    }
}

/// A weight and its optimizer update, cut together.
impl<F: Float> CutAlong for (ArrayViewMut2<'_, F>, TensorUpdate<'_, F>) {
    fn cut(self, axis: Axis, index: usize) -> (Self, Self) {
        let (weight, update) = self;
        let (weight_first, weight_rest) = weight.split_at(axis, index);
        let (update_first, update_rest) = update.split_at(axis, index);
        ((weight_first, update_first), (weight_rest, update_rest))
    }
}
