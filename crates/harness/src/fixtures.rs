//! Deterministic inputs for the checks: the same numbers on every run and every level.

use std::path::PathBuf;
use std::sync::OnceLock;

use backprop_core::init::seeded_rng;
use backprop_data::mnist::{Dataset, load_split};
use ndarray::Array2;
use rand::RngExt;

/// A `(rows, cols)` batch with entries from U(-1, 1), decided by `seed`.
pub fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = seeded_rng(seed);
    Array2::from_shape_simple_fn((rows, cols), || 2.0 * rng.random::<f64>() - 1.0)
}

/// `rows` class indices below `classes`, decided by `seed`.
pub fn classes(rows: usize, classes: usize, seed: u64) -> Vec<usize> {
    let mut rng = seeded_rng(seed);
    (0..rows).map(|_| rng.random_range(0..classes)).collect()
}

/// True when `BACKPROP_STRESS=full` asks for the big stress sizes.
pub fn full_stress() -> bool {
    std::env::var("BACKPROP_STRESS").is_ok_and(|value| value == "full")
}

/// The workspace's `data/mnist` folder (or `BACKPROP_MNIST_DIR` when set).
pub fn mnist_dir() -> PathBuf {
    std::env::var_os("BACKPROP_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"))
}

/// The first `count` MNIST training images. The split is read (and checked) once per test
/// process and kept: every later call copies its first rows.
///
/// # Panics
/// If the data cannot be loaded; the message names the file, the problem and
/// `BACKPROP_MNIST_DIR` (the default folder exists only inside this repository).
pub fn mnist_train(count: usize) -> Dataset {
    static TRAIN: OnceLock<Result<Dataset, String>> = OnceLock::new();
    let train = TRAIN.get_or_init(|| {
        let dir = mnist_dir();
        load_split(&dir, "train").map_err(|error| {
            format!(
                "MNIST for the stress suite: {error} (set BACKPROP_MNIST_DIR to a folder with \
                 train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])"
            )
        })
    });
    match train {
        Ok(train) => train.first(count),
        Err(message) => panic!("{message}"),
    }
}
