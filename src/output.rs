//! What a run leaves on disk: `metrics.csv`, the plots and every other file, each written to a
//! temporary name in the same folder and renamed ([`write_atomically`]), so an interrupted run
//! never leaves a half-written file under the final name.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::plots::{Series, line_chart};

/// A file or folder that could not be written (or, for a model, read).
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct OutputError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub problem: String,
}

impl OutputError {
    /// An error about `path`.
    pub fn new(path: &Path, problem: impl Into<String>) -> Self {
        OutputError {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// Creates `folder` (and its parents) if needed.
///
/// # Errors
/// When it cannot be created; the message names it.
pub fn create_folder(folder: &Path) -> Result<(), OutputError> {
    fs::create_dir_all(folder).map_err(|error| {
        OutputError::new(folder, format!("cannot create the output folder: {error}"))
    })
}

/// Writes `bytes` to `path` durably and in one piece: a temporary file in the same folder
/// (`.NAME.PID-N.partial`, created with `create_new`, so an existing file or symlink of that name
/// is never followed), `fsync`, a rename over `path`, then an `fsync` of the folder. An
/// interrupted run never leaves a half-written file under the final name; on error the
/// temporary file is removed.
///
/// # Errors
/// The I/O error of the write, the sync or the rename, naming `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("output");
    let temporary = path.with_file_name(format!(
        ".{file_name}.{}-{}{PARTIAL}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let output_error = |error: std::io::Error| OutputError::new(path, error.to_string());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(output_error)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temporary, path));
    drop(file);
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(output_error(error));
    }
    sync_folder(path.parent().unwrap_or(Path::new("."))).map_err(output_error)
}

/// The suffix of [`write_atomically`]'s temporary files.
pub const PARTIAL: &str = ".partial";

/// Makes a rename in `folder` durable (a no-op where folders cannot be opened as files).
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    match fs::File::open(folder) {
        Ok(handle) if cfg!(unix) => handle.sync_all(),
        _ => Ok(()),
    }
}

/// One epoch's row of `metrics.csv`.
#[derive(Debug, Clone)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// The mean loss over the epoch's steps.
    pub train_loss: f64,
    /// Accuracy on the first 10,000 training images after the epoch.
    pub train_accuracy: f64,
    /// Accuracy on the test split after the epoch.
    pub test_accuracy: f64,
    /// ‖dL/dW‖ of each layer, the mean over the epoch's steps.
    pub grad_norms: Vec<f64>,
}

/// `metrics.csv`: one row per epoch, a gradient-norm column per layer.
///
/// # Errors
/// As [`write_atomically`].
pub fn write_metrics(
    out: &Path,
    history: &[EpochMetrics],
    layers: usize,
) -> Result<(), OutputError> {
    let mut csv = String::from("epoch,train_loss,train_accuracy,test_accuracy");
    for layer in 0..layers {
        write!(csv, ",grad_norm_linear{layer}").expect("writing to a String");
    }
    csv.push('\n');
    for metrics in history {
        write!(
            csv,
            "{},{:.6},{:.6},{:.6}",
            metrics.epoch, metrics.train_loss, metrics.train_accuracy, metrics.test_accuracy
        )
        .expect("writing to a String");
        for norm in &metrics.grad_norms {
            write!(csv, ",{norm:.6e}").expect("writing to a String");
        }
        csv.push('\n');
    }
    write_atomically(&out.join("metrics.csv"), csv.as_bytes())
}

/// `loss.svg`, `accuracy.svg` and `grad_norms.svg` (log10 of the norm, one line per layer).
///
/// # Errors
/// What the plotting library or the file system said, naming the file.
pub fn write_training_plots(out: &Path, history: &[EpochMetrics]) -> Result<(), OutputError> {
    let points = |value: &dyn Fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|metrics| (metrics.epoch as f64, value(metrics)))
            .collect()
    };
    let loss = points(&|m| m.train_loss);
    let train = points(&|m| 100.0 * m.train_accuracy);
    let test = points(&|m| 100.0 * m.test_accuracy);
    let layers = history
        .first()
        .map_or(0, |metrics| metrics.grad_norms.len());
    let norms: Vec<Vec<(f64, f64)>> = (0..layers)
        .map(|layer| points(&|m| m.grad_norms[layer].log10()))
        .collect();
    let series = |label: &str, points| Series {
        label: label.to_string(),
        points,
    };
    let charts = [
        (
            "loss.svg",
            "Training loss",
            "mean cross-entropy",
            vec![series("train", &loss)],
        ),
        (
            "accuracy.svg",
            "Accuracy",
            "% correct",
            vec![
                series("train (first 10,000)", &train),
                series("test", &test),
            ],
        ),
        (
            "grad_norms.svg",
            "Weight gradient norm per layer (mean over the epoch)",
            "log10 ||dL/dW||",
            norms
                .iter()
                .enumerate()
                .map(|(layer, points)| series(&format!("linear{layer}"), points))
                .collect(),
        ),
    ];
    for (file, title, y_label, lines) in charts {
        write_svg(&out.join(file), line_chart(title, y_label, lines))?;
    }
    Ok(())
}

/// Writes a drawn SVG (or reports why it could not be drawn), naming the file.
///
/// # Errors
/// The plotting library's message, or as [`write_atomically`].
pub fn write_svg(path: &Path, svg: Result<String, String>) -> Result<(), OutputError> {
    let svg = svg.map_err(|problem| OutputError::new(path, problem))?;
    write_atomically(path, svg.as_bytes())
}
