//! Shuffled mini-batches, gathered into one reused buffer: the batch loop of every training run
//! (`backprop train`, `backprop diagnose`, the epoch benches).

use std::ops::{ControlFlow, Range};
use std::sync::mpsc;

use ndarray::{Array2, ArrayView2, ArrayViewMut1, Zip, s};
use rand::seq::SliceRandom;

use backprop_core::init::{SeededRng, seeded_rng};

use crate::mnist::Dataset;
use crate::workers::with_workers_awake;

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
        let range = self.next_range()?;
        let indices = &self.order[range.clone()];
        let parallel = rayon::current_num_threads() > 1;
        gather(
            self.data,
            indices,
            (&mut self.images, &mut self.labels),
            parallel,
        );
        Some((
            self.images.slice(s![..range.len(), ..]),
            &self.labels[..range.len()],
        ))
    }

    /// Where the next batch lies in `order`, moving past it (shuffling first if the epoch has
    /// not started), or `None` when the epoch is over; the call after `None` starts the next
    /// epoch.
    fn next_range(&mut self) -> Option<Range<usize>> {
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
        Some(start..start + rows)
    }

    /// The rest of the current epoch (a whole one if none has started), each batch handed to
    /// `step` in the order [`next_batch`](Batches::next_batch) gives them, the same rows and
    /// labels; `ControlFlow::Break` stops it after that batch, and the next call goes on from
    /// the batch after it. The epoch is over when it returns `Continue`.
    ///
    /// While `step` runs on batch k, batch k + 1 is gathered into a second buffer, so the copy
    /// of random rows out of a large array waits on memory beside the step instead of before
    /// it:
    ///
    /// - in a rayon pool of one thread, by a helper thread that only copies rows (every
    ///   computation stays on the calling thread);
    /// - with more rayon threads, by a job on the pool's other workers, a few rows at a time,
    ///   the worker taking any job the step has forked before its next rows: the copy fills the
    ///   time the worker would otherwise wait between the step's forks. The other workers poll
    ///   for work through the epoch instead of sleeping ([`with_workers_awake`]).
    pub fn for_each_batch<B>(
        &mut self,
        mut step: impl FnMut(ArrayView2<'_, f32>, &[usize]) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        // The rest of the epoch's batches, cut as next_batch cuts them (which ends the epoch).
        let ranges: Vec<_> = std::iter::from_fn(|| self.next_range()).collect();
        let Some(first) = ranges.first() else {
            return ControlFlow::Continue(());
        };
        let pooled = rayon::current_num_threads() > 1;
        let (data, order) = (self.data, &self.order);
        let mut current = (&mut self.images, &mut self.labels);
        gather(data, &order[first.clone()], (current.0, current.1), pooled);
        let epoch = Epoch {
            data,
            order,
            ranges: &ranges,
        };
        let stopped_after = if pooled {
            with_workers_awake(|| epoch.run_gathering_between_jobs(&mut current, &mut step))
        } else {
            epoch.run_with_helper(&mut current, &mut step)
        };
        // The ranges moved `position` to the epoch's end; a stop goes back to the batch after it.
        match stopped_after {
            Some((end, value)) => {
                self.position = Some(end);
                ControlFlow::Break(value)
            }
            None => ControlFlow::Continue(()),
        }
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

/// A batch's images `(batch_size, features)` and labels.
type Buffers = (Array2<f32>, Vec<usize>);

/// The batch buffers [`Batches`] hands to the step.
type Current<'b> = (&'b mut Array2<f32>, &'b mut Vec<usize>);

/// The rest of an epoch for [`Batches::for_each_batch`]: its batches' ranges of `order`.
struct Epoch<'e> {
    data: &'e Dataset,
    order: &'e [usize],
    ranges: &'e [Range<usize>],
}

impl Epoch<'_> {
    /// Empty buffers the size of `current`, for the next batch.
    fn spare(current: &Current<'_>) -> Buffers {
        (Array2::zeros(current.0.raw_dim()), vec![0; current.1.len()])
    }

    /// Batch `index` of `current` (its first rows) handed to `step`.
    fn step_on<B>(
        &self,
        index: usize,
        current: &Current<'_>,
        step: &mut impl FnMut(ArrayView2<'_, f32>, &[usize]) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let rows = self.ranges[index].len();
        step(current.0.slice(s![..rows, ..]), &current.1[..rows])
    }

    /// Every batch (the first already in `current`), the next one gathered by a job on the
    /// rayon pool while the step runs; the end of the batch `step` stopped after, if it did.
    fn run_gathering_between_jobs<B>(
        &self,
        current: &mut Current<'_>,
        step: &mut impl FnMut(ArrayView2<'_, f32>, &[usize]) -> ControlFlow<B>,
    ) -> Option<(usize, B)> {
        let mut spare = Self::spare(current);
        for (index, range) in self.ranges.iter().enumerate() {
            let next = self.ranges.get(index + 1);
            let flow = rayon::in_place_scope(|scope| {
                if let Some(next) = next {
                    let (spare, rows) = (&mut spare, &self.order[next.clone()]);
                    scope.spawn(move |_| gather_between_jobs(self.data, rows, spare));
                }
                self.step_on(index, current, step)
            });
            if next.is_some() {
                std::mem::swap(current.0, &mut spare.0);
                std::mem::swap(current.1, &mut spare.1);
            }
            if let ControlFlow::Break(value) = flow {
                return Some((range.end, value));
            }
        }
        None
    }

    /// Every batch (the first already in `current`), the next one gathered by a helper thread
    /// while the step runs; the end of the batch `step` stopped after, if it did.
    fn run_with_helper<B>(
        &self,
        current: &mut Current<'_>,
        step: &mut impl FnMut(ArrayView2<'_, f32>, &[usize]) -> ControlFlow<B>,
    ) -> Option<(usize, B)> {
        let mut spare = Self::spare(current);
        let (data, order) = (self.data, self.order);
        std::thread::scope(|scope| {
            let (to_helper, helper_inbox) = mpsc::channel::<(Buffers, Range<usize>)>();
            let (helper_outbox, from_helper) = mpsc::channel::<Buffers>();
            scope.spawn(move || {
                for ((mut images, mut labels), range) in helper_inbox {
                    gather(data, &order[range], (&mut images, &mut labels), false);
                    if helper_outbox.send((images, labels)).is_err() {
                        return;
                    }
                }
            });
            for (index, range) in self.ranges.iter().enumerate() {
                // The next batch into the spare buffers, beside this step.
                let next = self.ranges.get(index + 1);
                if let Some(next) = next {
                    let buffers = std::mem::take(&mut spare);
                    to_helper
                        .send((buffers, next.clone()))
                        .expect("the gathering thread is running");
                }
                let flow = self.step_on(index, current, step);
                if next.is_some() {
                    spare = from_helper
                        .recv()
                        .expect("the gathering thread sends back what it gathered");
                    std::mem::swap(current.0, &mut spare.0);
                    std::mem::swap(current.1, &mut spare.1);
                }
                if let ControlFlow::Break(value) = flow {
                    return Some((range.end, value));
                }
            }
            None
        })
    }
}

/// Rows gathered between jobs: [`ROWS_BETWEEN_JOBS`] rows (about 12 KB of MNIST) take a few
/// microseconds, so a product the step forks waits at most that long for the worker.
const ROWS_BETWEEN_JOBS: usize = 4;

/// [`gather`] on a rayon worker, [`ROWS_BETWEEN_JOBS`] rows at a time, running one waiting job
/// of the pool (a half of the step's product) between them ([`rayon::yield_now`]).
fn gather_between_jobs(data: &Dataset, indices: &[usize], (images, labels): &mut Buffers) {
    for (chunk, rows) in indices.chunks(ROWS_BETWEEN_JOBS).enumerate() {
        let start = chunk * ROWS_BETWEEN_JOBS;
        let mut chunk_images = images.slice_mut(s![start..start + rows.len(), ..]);
        for (mut row, &index) in chunk_images.rows_mut().into_iter().zip(rows) {
            row.assign(&data.images.row(index));
        }
        rayon::yield_now();
    }
    for (label, &index) in labels.iter_mut().zip(indices) {
        *label = data.labels[index];
    }
}

/// Copies rows `indices` of `data` and their labels into the first rows of the buffers: random
/// rows of a large array, so the copy waits on memory; with `parallel`, each rayon thread takes
/// a share.
fn gather(
    data: &Dataset,
    indices: &[usize],
    (images, labels): (&mut Array2<f32>, &mut Vec<usize>),
    parallel: bool,
) {
    let mut batch_images = images.slice_mut(s![..indices.len(), ..]);
    let rows = Zip::from(batch_images.rows_mut()).and(indices);
    let copy_row = |mut row: ArrayViewMut1<'_, f32>, &index: &usize| {
        row.assign(&data.images.row(index));
    };
    if parallel {
        rows.par_for_each(copy_row);
    } else {
        rows.for_each(copy_row);
    }
    for (label, &index) in labels.iter_mut().zip(indices) {
        *label = data.labels[index];
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

    /// `for_each_batch` gives the batches `next_batch` gives, rows and labels, with its helper
    /// thread (a pool of one thread) and without (two), and goes on after a `Break` from the
    /// batch after it (after the last batch: the next call ends the epoch, and no batch of the
    /// next one comes with it).
    #[test]
    fn for_each_batch_gives_next_batchs_batches_and_resumes_after_a_break() {
        let data = numbered(23);
        let one_epoch = |batches: &mut Batches| {
            let mut seen = Vec::new();
            while let Some((images, labels)) = batches.next_batch() {
                seen.push((images.to_owned(), labels.to_vec()));
            }
            seen
        };
        let mut reference = Batches::new(&data, 4, 3).min_rows(2);
        let expected: Vec<_> = (0..3).map(|_| one_epoch(&mut reference)).collect();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            pool.expect("a rayon pool").install(|| {
                let mut batches = Batches::new(&data, 4, 3).min_rows(2);
                for (epoch, expected) in expected.iter().enumerate() {
                    let mut seen = Vec::new();
                    let mut visit = |stop_at: Option<usize>| {
                        batches.for_each_batch(|images, labels| {
                            seen.push((images.to_owned(), labels.to_vec()));
                            match Some(seen.len()) == stop_at {
                                true => ControlFlow::Break(()),
                                false => ControlFlow::Continue(()),
                            }
                        })
                    };
                    // The second epoch stops after its second batch, then goes on; the third
                    // after its last, and the call after that only ends it.
                    match epoch {
                        1 => assert_eq!(visit(Some(2)), ControlFlow::Break(())),
                        2 => assert_eq!(visit(Some(expected.len())), ControlFlow::Break(())),
                        _ => {}
                    }
                    assert_eq!(visit(None), ControlFlow::Continue(()));
                    assert_eq!(&seen, expected, "{threads} thread(s), epoch {epoch}");
                }
            });
        }
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
