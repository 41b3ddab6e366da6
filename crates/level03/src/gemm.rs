//! Matrix products straight into preallocated outputs.

use backprop_core::Float;
use backprop_core::optim::TensorUpdate;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::buffer::RowBuffer;
use crate::parallel::for_each_pair;

/// Products of at least this many multiply-adds are split in two on rayon (when it has more than
/// one thread). A 32 x 784 x 256 forward product is 6.4 million.
const SPLIT_AT_MULTIPLY_ADDS: usize = 1 << 20;

/// `C <- alpha A B + beta C` through matrixmultiply (ndarray's `general_mat_mul`), reading A and B
/// through their strides, so a transpose (`x.t()`) costs no copy.
///
/// Shapes: A `(m, k)`, B `(k, n)`, C `(m, n)`. When rayon has more than one thread and the
/// product is large, C is cut into two halves computed by `rayon::join`: by rows (each half
/// packs half of A and all of B), or by columns when A has at most a quarter as many rows as B
/// has columns (each half packs all of A and half of B). Each element of C is still the same
/// sum in the same order (the cut does not change the k loop), so the result is bit-identical
/// on 1 and 2 threads. A layer's forward product goes through [`layer_forward_gemm`] instead,
/// which cuts its weight the way the weight's gradient is cut.
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
    let cut = if 4 * m > n { Axis(0) } else { Axis(1) };
    gemm_cut(alpha, (a, b), beta, c, cut, companion, then);
}

/// [`gemm_then`] cut along `cut` of C (a large product, more than one rayon thread).
fn gemm_cut<F: Float, S: CutAlong>(
    alpha: F,
    (a, b): (ArrayView2<'_, F>, ArrayView2<'_, F>),
    beta: F,
    c: ArrayViewMut2<'_, F>,
    cut: Axis,
    companion: S,
    then: impl Fn(ArrayView2<'_, F>, S) + Sync,
) {
    // Rows of C cut A's rows; columns of C cut B's columns. The other operand is read whole.
    let at = c.len_of(cut) / 2;
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

/// `C <- A W + C`, a layer's forward product: A its input `(batch, fan_in)`, W its weight
/// `(fan_in, fan_out)`, C its output (holding the bias).
///
/// A large product is cut on rayon along the axis of W along which [`gemm_then`] cuts W's
/// gradient `x^T g` (rows, unless the layer is at least 4x wider than its input) and with it
/// the update of W, so each thread reads the half of W that it wrote itself in the last step:
///
/// - cut by W's rows, the sum over `fan_in` is cut in two: `C += A[:, ..h] W[..h, :]` on this
///   thread and `S = A[:, h..] W[h.., :]` on the other (S in `sum_rest`, any buffer of C's
///   width), then `C += S`. Each thread packs half of A and half of W. The sum is cut this way
///   on one thread too (the two halves one after the other), so 1 and 2 threads give the same
///   bits;
/// - cut by W's columns, C's columns are cut, each element the same sum as uncut.
///
/// Cutting C's rows instead (each thread packs all of W) made both threads read the whole
/// weight, half of which the other core had just updated: its lines crossed between the cores
/// twice a step. Measured on 2 threads (`examples/profile_step`, MLP [784, 256, 10]): this
/// product 270 -> 206 us at batch 128 and 90 -> 62 us at batch 32, and the first layer's
/// gradient product with its update 226 -> 198 us and 94 -> 62 us (the update's stores no
/// longer wait on the other core); on 1 thread no slower (381-383 us against 387-397 at batch
/// 128).
pub(crate) fn layer_forward_gemm<F: Float>(
    input: ArrayView2<'_, F>,
    weight: ArrayView2<'_, F>,
    mut output: ArrayViewMut2<'_, F>,
    sum_rest: &mut RowBuffer<F>,
) {
    let ((batch, fan_in), fan_out) = (input.dim(), weight.ncols());
    let one = F::one();
    let large = fan_in >= 2 && batch * fan_in * fan_out >= SPLIT_AT_MULTIPLY_ADDS;
    if !large {
        general_mat_mul(one, &input, &weight, one, &mut output);
        return;
    }
    if 4 * fan_in <= fan_out {
        // The gradient's cut: columns.
        if rayon::current_num_threads() == 1 {
            general_mat_mul(one, &input, &weight, one, &mut output);
        } else {
            gemm_cut(one, (input, weight), one, output, Axis(1), (), |_, ()| {});
        }
        return;
    }
    let half = fan_in / 2;
    let (input_first, input_rest) = input.split_at(Axis(1), half);
    let (weight_first, weight_rest) = weight.split_at(Axis(0), half);
    sum_rest.resize(batch, fan_out);
    let mut rest = sum_rest.view_mut();
    {
        let mut first_half = || general_mat_mul(one, &input_first, &weight_first, one, &mut output);
        let mut rest_half =
            || general_mat_mul(one, &input_rest, &weight_rest, F::zero(), &mut rest);
        if rayon::current_num_threads() == 1 {
            first_half();
            rest_half();
        } else {
            rayon::join(first_half, rest_half);
        }
    }
    for_each_pair(output, rest.view(), |c, &s| *c += s);
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
