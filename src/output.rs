//! What a run leaves on disk: the output folder, `config.json`, `metrics.csv`, the plots and
//! `model.npz`. Every file is written to a temporary name in the same folder and renamed, so an
//! interrupted run never leaves a half-written file under the final name.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use backprop_core::{Activation, LinearParams};
use ndarray::{Array1, Array2};
use ndarray_npy::{NpzReader, NpzWriter};

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

/// Writes `contents` to `path` through a temporary file in the same folder and a rename, so an
/// interrupted run never leaves a half-written file under the final name.
///
/// # Errors
/// The I/O error of the write or the rename, naming `path`.
pub fn write_atomically(
    path: &Path,
    contents: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("output");
    let temporary = path.with_file_name(format!(".{file_name}.partial"));
    let output_error = |error: std::io::Error| OutputError::new(path, error.to_string());
    contents(&temporary).map_err(output_error)?;
    fs::rename(&temporary, path).map_err(output_error)
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
    write_atomically(&out.join("metrics.csv"), |path| fs::write(path, csv))
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
    write_atomically(path, |temporary| fs::write(temporary, svg))
}

/// Saves `weight{i}` (fan_in, fan_out), `bias{i}` and `activation` (UTF-8 bytes) as `.npz`.
///
/// # Errors
/// As [`write_atomically`].
pub fn save_model(
    path: &Path,
    layers: &LinearParams<f32>,
    activation: Activation,
) -> Result<(), OutputError> {
    write_atomically(path, |temporary| {
        let to_io = |error: ndarray_npy::WriteNpzError| std::io::Error::other(error.to_string());
        let mut npz = NpzWriter::new(fs::File::create(temporary)?);
        for (index, (weight, bias)) in layers.iter().enumerate() {
            npz.add_array(format!("weight{index}"), weight)
                .map_err(to_io)?;
            npz.add_array(format!("bias{index}"), bias).map_err(to_io)?;
        }
        let name = Array1::from_vec(activation.name().as_bytes().to_vec());
        npz.add_array("activation", &name).map_err(to_io)?;
        npz.finish().map_err(to_io)?;
        Ok(())
    })
}

/// Loads a model saved by [`save_model`]: its layers and activation.
///
/// # Errors
/// A missing or unreadable file, or one without the expected arrays or whose layers do not
/// chain; the message names the file and the array.
pub fn load_model(path: &Path) -> Result<(LinearParams<f32>, Activation), OutputError> {
    let problem = |text: String| OutputError::new(path, text);
    let file = fs::File::open(path).map_err(|error| problem(format!("cannot open: {error}")))?;
    let mut npz =
        NpzReader::new(file).map_err(|error| problem(format!("not a model .npz: {error}")))?;
    let names = npz.names().map_err(|error| problem(error.to_string()))?;
    let layers = names
        .iter()
        .filter(|name| name.starts_with("weight"))
        .count();
    if layers == 0 {
        return Err(problem(
            "no weight0 array: not a model saved by backprop train".into(),
        ));
    }
    let mut params: LinearParams<f32> = Vec::with_capacity(layers);
    for index in 0..layers {
        let weight: Array2<f32> = npz
            .by_name(&format!("weight{index}"))
            .map_err(|error| problem(format!("weight{index}: {error}")))?;
        let bias: Array1<f32> = npz
            .by_name(&format!("bias{index}"))
            .map_err(|error| problem(format!("bias{index}: {error}")))?;
        let fan_in_expected = params.last().map(|(previous, _)| previous.ncols());
        if bias.len() != weight.ncols()
            || fan_in_expected.is_some_and(|fan_in| fan_in != weight.nrows())
        {
            return Err(problem(format!(
                "layer {index}: weight {:?} and bias {} do not chain",
                weight.dim(),
                bias.len()
            )));
        }
        params.push((weight, bias));
    }
    let activation: Array1<u8> = npz
        .by_name("activation")
        .map_err(|error| problem(format!("activation: {error}")))?;
    let activation = String::from_utf8_lossy(activation.as_slice().unwrap_or_default())
        .parse()
        .map_err(problem)?;
    Ok((params, activation))
}
