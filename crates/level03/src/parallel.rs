//! Elementwise passes and sums over rows: loops over contiguous slices, each compiled for
//! AVX-512, AVX2 and the baseline (multiversion, picked at run time by the processor), on rayon
//! when they are large enough to pay for it.
//!
//! Each element is computed on its own, with the same operations in every build (no
//! multiply-add is fused from a separate `*` and `+`), so neither the instruction set nor the
//! split changes a result: 1 and 2 threads, AVX-512 and the baseline, give bit-identical
//! numbers. Compiled for the baseline alone (SSE2, 4 lanes), batch norm's passes took 4.1% of a
//! step with batch norm and dropout on one thread (`perf record` on `examples/profile_step 128
//! 1500 1 mlp:batch:0.2`).

use backprop_core::Float;
use multiversion::multiversion;
use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};
use rayon::prelude::*;

/// Passes with at least this many elements run on rayon. Measured on 2 cores: a ReLU pass over a
/// 128 x 256 hidden layer (32,768 elements) took 14 us on one thread and 71 us split on two with
/// the second worker asleep between forks (the hand-off costs more than the work). With the
/// workers kept awake (`backprop_data::workers`, as in training and the benches), ReLU's forward
/// and backward cut in row halves still measured no faster: 567-578 us per step against 555-587
/// uncut (`examples/profile_step 128 3000 2`, three runs each). So only passes as big as the
/// first layer's SGD update (200,704 weights) are split.
pub(crate) const PARALLEL_ELEMENTS: usize = 1 << 17;

/// Whether a pass over `elements` elements runs on rayon.
fn split(elements: usize) -> bool {
    elements >= PARALLEL_ELEMENTS && rayon::current_num_threads() > 1
}

/// The length of each thread's piece of a slice of `elements`, a multiple of 16 (whole
/// AVX-512 vectors of f32).
fn piece_length(elements: usize) -> usize {
    elements
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(16)
}

/// `f(x)` on every element.
pub(crate) fn for_each<F: Float>(
    mut values: ArrayViewMut2<'_, F>,
    f: impl Fn(&mut F) + Sync + Send,
) {
    let elements = values.len();
    match values.as_slice_mut() {
        Some(slice) if split(elements) => slice
            .par_chunks_mut(piece_length(elements))
            .for_each(|piece| each(piece, &f)),
        Some(slice) => each(slice, &f),
        None => Zip::from(values).for_each(f),
    }
}

/// `f(a, b)` on every pair of elements.
pub(crate) fn for_each_pair<F: Float>(
    mut target: ArrayViewMut2<'_, F>,
    source: ArrayView2<'_, F>,
    f: impl Fn(&mut F, &F) + Sync + Send,
) {
    let elements = target.len();
    let same_shape = target.dim() == source.dim();
    match (target.as_slice_mut(), source.as_slice()) {
        (Some(target), Some(source)) if same_shape && split(elements) => {
            let length = piece_length(elements);
            target
                .par_chunks_mut(length)
                .zip(source.par_chunks(length))
                .for_each(|(target, source)| each_pair(target, source, &f));
        }
        (Some(target), Some(source)) if same_shape => each_pair(target, source, &f),
        _ => Zip::from(target).and(source).for_each(f),
    }
}

/// `sums (+)= Σ_rows matrix`, per column, the rows added in order (`overwrite`: the sums start
/// from zero instead of their old values). `sums` has `matrix.ncols()` entries.
pub(crate) fn add_rows<F: Float>(
    mut sums: ArrayViewMut1<'_, F>,
    matrix: ArrayView2<'_, F>,
    overwrite: bool,
) {
    if overwrite {
        sums.fill(F::zero());
    }
    for row in matrix.rows() {
        match (sums.as_slice_mut(), row.as_slice()) {
            (Some(sums), Some(row)) => add_row(sums, row),
            _ => sums += &row,
        }
    }
}

/// `sums[j] += row[j]`.
pub(crate) fn add_row<F: Float>(sums: &mut [F], row: &[F]) {
    each_pair(sums, row, &|sum: &mut F, &x: &F| *sum += x);
}

/// `f(x)` on every element of a slice.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn each<F: Float, Op: Fn(&mut F)>(values: &mut [F], f: &Op) {
    values.iter_mut().for_each(f);
}

/// `f(a, b)` on every pair of two slices of one length.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn each_pair<F: Float, Op: Fn(&mut F, &F)>(target: &mut [F], source: &[F], f: &Op) {
    target.iter_mut().zip(source).for_each(|(a, b)| f(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// A `(rows, columns)` matrix of mixed signs and magnitudes, the same on every run.
    fn matrix(rows: usize, columns: usize, salt: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, columns), |(r, c)| {
            let mixed = (r * 7919 + c * 104_729 + salt * 15_485_863) % 2003;
            (mixed as f32 - 1001.0) / 37.0
        })
    }

    /// Each pass against the plain loop it stands for, bit for bit, for widths around the vector
    /// lengths (tails of every size) and a buffer large enough to be cut on two threads.
    #[test]
    fn passes_match_plain_loops_bit_for_bit_on_one_and_two_threads() {
        let shapes = [
            (1, 1),
            (3, 5),
            (2, 15),
            (4, 16),
            (5, 17),
            (7, 33),
            (3, 257),
            (520, 256),
        ];
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for (rows, columns) in shapes {
                    let (source, other) = (matrix(rows, columns, 1), matrix(rows, columns, 2));
                    let context = format!("{rows} x {columns} on {threads} thread(s)");

                    let mut values = source.clone();
                    for_each(values.view_mut(), |x| *x = *x * 1.5 - 0.25);
                    let expected = source.mapv(|x| x * 1.5 - 0.25);
                    assert_eq!(values, expected, "for_each, {context}");

                    let mut values = source.clone();
                    for_each_pair(values.view_mut(), other.view(), |a, &b| *a = *a * b - b);
                    let expected = ndarray::Zip::from(&source)
                        .and(&other)
                        .map_collect(|&a, &b| a * b - b);
                    assert_eq!(values, expected, "for_each_pair, {context}");

                    // The rows added one after the other onto `start`, element by element.
                    let plain_sums = |mut sums: Array1<f32>| {
                        for row in source.rows() {
                            sums.iter_mut().zip(row).for_each(|(s, &x)| *s += x);
                        }
                        sums
                    };
                    let mut sums = other.row(0).to_owned();
                    add_rows(sums.view_mut(), source.view(), false);
                    assert_eq!(
                        sums,
                        plain_sums(other.row(0).to_owned()),
                        "add_rows, {context}"
                    );
                    add_rows(sums.view_mut(), source.view(), true);
                    let from_zero = plain_sums(Array1::zeros(columns));
                    assert_eq!(sums, from_zero, "add_rows overwriting, {context}");
                }
            });
        }
    }
}
