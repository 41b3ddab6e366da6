//! Elementwise passes, on rayon when they are large enough to pay for it.
//!
//! Each element is computed on its own, so splitting the work changes no result: 1 and 2 threads
//! give bit-identical numbers.

use backprop_core::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// Passes with at least this many elements run on rayon. Measured on 2 cores: a ReLU pass over a
/// 128 x 256 hidden layer (32,768 elements) took 14 us on one thread and 71 us split on two with
/// the second worker asleep between forks (the hand-off costs more than the work). With the
/// workers kept awake (`backprop_data::workers`, as in training and the benches), ReLU's forward
/// and backward cut in row halves still measured no faster: 567-578 us per step against 555-587
/// uncut (`examples/profile_step 128 3000 2`, three runs each). So only passes as big as the
/// first layer's SGD update (200,704 weights) are split.
pub(crate) const PARALLEL_ELEMENTS: usize = 1 << 17;

/// `f(x)` on every element.
pub(crate) fn for_each<F: Float>(values: ArrayViewMut2<'_, F>, f: impl Fn(&mut F) + Sync + Send) {
    if values.len() >= PARALLEL_ELEMENTS && rayon::current_num_threads() > 1 {
        Zip::from(values).par_for_each(f);
    } else {
        Zip::from(values).for_each(f);
    }
}

/// `f(a, b)` on every pair of elements.
pub(crate) fn for_each_pair<F: Float>(
    target: ArrayViewMut2<'_, F>,
    source: ArrayView2<'_, F>,
    f: impl Fn(&mut F, &F) + Sync + Send,
) {
    if target.len() >= PARALLEL_ELEMENTS && rayon::current_num_threads() > 1 {
        Zip::from(target).and(source).par_for_each(f);
    } else {
        Zip::from(target).and(source).for_each(f);
    }
}
