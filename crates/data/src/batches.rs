//! Shuffled mini-batches, gathered into one reused buffer: the batch loop of every training run
//! (`backprop train`, `backprop diagnose`, the epoch benches).

use ndarray::{Array2, ArrayView2, ArrayViewMut1, Zip, s};
use rand::seq::SliceRandom;

use backprop_core::init::{SeededRng, seeded_rng};

use crate::mnist::Dataset;

/// Walks a [`Dataset`] in shuffled batches of `batch_size` rows.
///
/// Each epoch shuffles the order (continuing from the last epoch's order with one seeded
/// generator, so a seed gives one sequence of batches) and copies each batch's rows into a
/// buffer of `batch_size` rows allocated once. The last batch of an epoch may be smaller,
/// unless [`drop_last`](Batches::drop_last) asks for full batches only, or
/// [`min_rows`](Batches::min_rows) for at least so many rows.
///
/// ```
/// use backprop_data::batches::Batches;
/// use backprop_data::mnist::Dataset;
/// use ndarray::Array2;
///
/// let data = Dataset { images: Array2::zeros((10, 4)), labels: vec![0; 10], rows: 2, cols: 2 };
/// let mut batches = Batches::new(&data, 4, 7);
/// let mut sizes = Vec::new();
/// while let Some((images, labels)) = batches.next_batch() {
///     assert_eq!(images.nrows(), labels.len());
///     sizes.push(labels.len());
/// }
/// assert_eq!(sizes, [4, 4, 2]);
/// ```
#[derive(Debug)]
pub struct Batches<'d> {
    data: &'d Dataset,
    order: Vec<usize>,
    rng: SeededRng,
    batch_size: usize,
    /// Where the next batch starts in `order`; `None` before the epoch's shuffle.
    position: Option<usize>,
    /// A last batch of fewer rows is skipped.
    min_rows: usize,
    images: Array2<f32>,
    labels: Vec<usize>,
}

impl<'d> Batches<'d> {
    /// Batches of at most `batch_size` rows of `data`, shuffled by a generator seeded with
    /// `seed`.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn new(data: &'d Dataset, batch_size: usize, seed: u64) -> Self {
        assert!(batch_size > 0, "a batch needs at least one row");
        let rows = batch_size.min(data.len());
        Batches {
            data,
            order: (0..data.len()).collect(),
            rng: seeded_rng(seed),
            batch_size,
            position: None,
            min_rows: 1,
            images: Array2::zeros((rows, data.images.ncols())),
            labels: vec![0; rows],
        }
    }

    /// Only full batches: the rows left over at the end of an epoch are skipped.
    pub fn drop_last(self) -> Self {
        let batch_size = self.batch_size;
        self.min_rows(batch_size)
    }

    /// Only batches of at least `rows` rows: a shorter last batch of an epoch is skipped (batch
    /// norm asks for 2, since one row has no variance).
    pub fn min_rows(self, rows: usize) -> Self {
        Batches {
            min_rows: rows.max(1),
            ..self
        }
    }

    /// The number of batches in one epoch.
    pub fn per_epoch(&self) -> usize {
        let leftover = self.data.len() % self.batch_size;
        self.data.len() / self.batch_size + usize::from(leftover >= self.min_rows)
    }

    /// Moves past `epochs` whole epochs without gathering a row: the order is shuffled as
    /// those epochs would have shuffled it, so the next batch is the one a run resumed after
    /// `epochs` epochs must see. Call it on a fresh `Batches`, before the first batch.
    pub fn skip_epochs(&mut self, epochs: usize) {
        for _ in 0..epochs {
            self.order.shuffle(&mut self.rng);
        }
        self.position = None;
    }

    /// The next batch of the current epoch (shuffling first if the epoch has not started), or
    /// `None` when the epoch is over; the call after `None` starts the next epoch.
    pub fn next_batch(&mut self) -> Option<(ArrayView2<'_, f32>, &[usize])> {
        if self.epoch_over() {
            self.position = None;
            return None;
        }
        let start = match self.position {
            Some(start) => start,
            None => {
                self.order.shuffle(&mut self.rng);
                0
            }
        };
        let rows = (self.order.len() - start).min(self.batch_size);
        if rows == 0 || rows < self.min_rows {
            return None; // an epoch too small for one batch
        }
        self.position = Some(start + rows);
        // Gather the rows of this batch into the reused buffer: random rows of a large array,
        // so the copy waits on memory; with more than one rayon thread each takes a share.
        let indices = &self.order[start..start + rows];
        let mut batch_images = self.images.slice_mut(s![..rows, ..]);
        let gather = Zip::from(batch_images.rows_mut()).and(indices);
        let copy_row = |mut row: ArrayViewMut1<'_, f32>, &index: &usize| {
            row.assign(&self.data.images.row(index));
        };
        if rayon::current_num_threads() > 1 {
            gather.par_for_each(copy_row);
        } else {
            gather.for_each(copy_row);
        }
        for (label, &index) in self.labels.iter_mut().zip(indices) {
            *label = self.data.labels[index];
        }
        Some((self.images.slice(s![..rows, ..]), &self.labels[..rows]))
    }

    /// The next batch, starting a new epoch whenever one ends (for a fixed number of steps).
    ///
    /// # Panics
    /// If an epoch has no batch at all (an empty data set, or fewer rows than `drop_last` or
    /// `min_rows` asks a batch to have).
    #[track_caller]
    pub fn next_cycling(&mut self) -> (ArrayView2<'_, f32>, &[usize]) {
        assert!(
            self.per_epoch() > 0,
            "{} rows make no batch of {}",
            self.data.len(),
            self.batch_size
        );
        if self.epoch_over() {
            self.position = None;
        }
        self.next_batch().expect("an epoch with at least one batch")
    }

    /// True when the current epoch has no batch left.
    fn epoch_over(&self) -> bool {
        self.position.is_some_and(|start| {
            let remaining = self.order.len() - start;
            remaining == 0 || remaining < self.min_rows
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(rows: usize) -> Dataset {
        Dataset {
            images: Array2::from_shape_fn((rows, 3), |(row, col)| (10 * row + col) as f32),
            labels: (0..rows).collect(),
            rows: 1,
            cols: 3,
        }
    }

    #[test]
    fn an_epoch_visits_every_row_once_with_its_own_label() {
        let data = numbered(11);
        let mut batches = Batches::new(&data, 4, 3);
        let mut seen = Vec::new();
        while let Some((images, labels)) = batches.next_batch() {
            for (image, &label) in images.rows().into_iter().zip(labels) {
                assert_eq!(image[0], (10 * label) as f32, "row gathered with its label");
                seen.push(label);
            }
        }
        assert_ne!(seen, (0..11).collect::<Vec<_>>(), "shuffled");
        seen.sort_unstable();
        assert_eq!(seen, (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn drop_last_and_cycling_give_only_full_batches_across_epochs() {
        let data = numbered(10);
        let mut batches = Batches::new(&data, 4, 3).drop_last();
        assert_eq!(batches.per_epoch(), 2);
        // Five cycling calls: epochs 1 and 2 whole, then the first batch of epoch 3.
        let mut cycled: Vec<Vec<usize>> = Vec::new();
        for _ in 0..5 {
            let (images, labels) = batches.next_cycling();
            assert_eq!((images.nrows(), labels.len()), (4, 4));
            cycled.push(labels.to_vec());
        }
        // The same batches, epoch by epoch, from next_batch (None between epochs).
        let mut by_epoch = Batches::new(&data, 4, 3).drop_last();
        let mut epochs: Vec<Vec<Vec<usize>>> = Vec::new();
        for _ in 0..3 {
            let mut epoch = Vec::new();
            while let Some((_, labels)) = by_epoch.next_batch() {
                epoch.push(labels.to_vec());
            }
            epochs.push(epoch);
        }
        assert_eq!(cycled[..2], epochs[0][..], "epoch 1");
        assert_eq!(cycled[2..4], epochs[1][..], "epoch 2");
        assert_eq!(cycled[4], epochs[2][0], "epoch 3 begins");
        for epoch in &epochs {
            // Two full batches of 8 distinct rows: the 2 left over are dropped.
            let mut rows: Vec<usize> = epoch.concat();
            rows.sort_unstable();
            rows.dedup();
            assert_eq!((epoch.len(), rows.len()), (2, 8), "{epoch:?}");
        }
        assert_ne!(epochs[0], epochs[1], "each epoch draws a new order");
    }

    #[test]
    fn min_rows_skips_only_a_shorter_last_batch() {
        let sizes = |rows: usize| {
            let data = numbered(rows);
            let mut batches = Batches::new(&data, 4, 3).min_rows(2);
            let mut sizes = Vec::new();
            for _ in 0..2 {
                while let Some((images, labels)) = batches.next_batch() {
                    assert_eq!(images.nrows(), labels.len());
                    sizes.push(labels.len());
                }
            }
            (batches.per_epoch(), sizes)
        };
        assert_eq!(
            sizes(9),
            (2, vec![4, 4, 4, 4]),
            "the row left over is skipped"
        );
        assert_eq!(
            sizes(10),
            (3, vec![4, 4, 2, 4, 4, 2]),
            "two rows make a batch"
        );
        assert_eq!(sizes(1), (0, vec![]), "one row makes no batch");
    }

    #[test]
    fn skipping_epochs_gives_the_batches_those_epochs_leave() {
        let data = numbered(9);
        let epoch = |batches: &mut Batches| {
            let mut labels = Vec::new();
            while let Some((_, batch)) = batches.next_batch() {
                labels.extend_from_slice(batch);
            }
            labels
        };
        let mut walked = Batches::new(&data, 2, 5);
        epoch(&mut walked);
        epoch(&mut walked);
        let mut skipped = Batches::new(&data, 2, 5);
        skipped.skip_epochs(2);
        assert_eq!(epoch(&mut skipped), epoch(&mut walked));
    }

    #[test]
    fn the_same_seed_gives_the_same_batches() {
        let data = numbered(9);
        let run = |seed| {
            let mut batches = Batches::new(&data, 2, seed);
            let mut labels = Vec::new();
            for _ in 0..2 {
                while let Some((_, batch)) = batches.next_batch() {
                    labels.extend_from_slice(batch);
                }
            }
            labels
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
