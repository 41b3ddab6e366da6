//! `RowBuffer`: a matrix allocated once for the largest batch seen, then reused.

use backprop_core::Float;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, s};

/// A `(capacity, width)` matrix whose first `batch` rows are the live data.
///
/// It grows (one allocation) only when a batch larger than any before arrives; a steady batch
/// size never allocates.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowBuffer<F> {
    data: Array2<F>,
    batch: usize,
}

impl<F: Float> RowBuffer<F> {
    /// Makes room for `batch` rows of `width` columns and marks them live. The contents of a
    /// freshly grown buffer are zero; otherwise they are whatever was written last.
    pub(crate) fn resize(&mut self, batch: usize, width: usize) {
        if batch > self.data.nrows() || width != self.data.ncols() {
            self.data = Array2::zeros((batch.max(self.data.nrows()), width));
        }
        self.batch = batch;
    }

    /// The live rows.
    pub(crate) fn view(&self) -> ArrayView2<'_, F> {
        self.data.slice(s![..self.batch, ..])
    }

    /// The live rows, writable.
    pub(crate) fn view_mut(&mut self) -> ArrayViewMut2<'_, F> {
        self.data.slice_mut(s![..self.batch, ..])
    }

    /// Bytes held (capacity, not just the live rows).
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<F>()
    }
}

/// A row (or gamma, beta) as a slice: the buffers and the inputs the in-place passes read are
/// in standard layout.
///
/// # Panics
/// If the row is not contiguous.
pub(crate) fn contiguous<'a, F>(row: &'a ArrayView1<'_, F>) -> &'a [F] {
    row.as_slice()
        .expect("an in-place pass's rows are contiguous (standard layout)")
}

/// A mutable row as a slice (see [`contiguous`]).
pub(crate) fn contiguous_mut<'a, F>(row: &'a mut ArrayViewMut1<'_, F>) -> &'a mut [F] {
    row.as_slice_mut()
        .expect("an in-place pass's rows are contiguous (standard layout)")
}
