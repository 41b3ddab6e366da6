//! `checkpoint.npz`: everything a training run needs to go on after its last finished epoch,
//! written (atomically) at the end of every epoch and read by `train --resume DIR`.
//!
//! It holds the model (`weight{i}`, `bias{i}`, `activation`, `norm` and `norm{i}.*`, as
//! `model.npz`), the optimizer's buffers (`optimizer.{buffer}.weight{i}` / `.bias{i}`, one per
//! parameter group: each `Linear`, then each norm's gamma and beta), `progress` = `[epochs done,
//! steps taken, optimizer steps]`, the history that `metrics.csv` is rewritten from
//! (`history.train_loss`, `history.train_accuracy`, `history.test_accuracy`,
//! `history.grad_norms` (epochs, layers), and `last_norms`), and `settings`: the settings that
//! shape the run, as JSON, compared with `config.json` on `--resume`; and `digest`, of all of
//! these values, checked on reading. The batch order needs no array: it is the seed's, replayed
//! ([`backprop_data::batches::Batches::skip_epochs`]).

use std::path::Path;

use backprop_core::optim::OptimizerState;
use ndarray::{Array1, Array2};

use crate::model_file::{NpzFile, SavedModel, add_model, npz_bytes, read_model, text_entry};
use crate::output::{EpochMetrics, OutputError, write_atomically};

/// The state of a run after `epochs_done` epochs.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Finished epochs.
    pub epochs_done: usize,
    /// Optimizer steps taken over those epochs.
    pub step: usize,
    /// The model: layers, activation, normalization.
    pub model: SavedModel,
    /// The optimizer's state.
    pub optimizer: OptimizerState<f32>,
    /// One row of `metrics.csv` per finished epoch.
    pub history: Vec<EpochMetrics>,
    /// ‖dL/dW‖ per layer at the last step.
    pub last_norms: Vec<f64>,
    /// The settings that shape the run (JSON: optimizer, batch size, seed, data digest, ...),
    /// compared with `config.json` on `--resume`; `None` in checkpoints from before they were
    /// recorded.
    pub settings: Option<String>,
}

/// Writes `checkpoint` to `path` in one piece.
///
/// # Errors
/// As [`write_atomically`].
pub fn save_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), OutputError> {
    let history = &checkpoint.history;
    let column =
        |value: fn(&EpochMetrics) -> f64| history.iter().map(value).collect::<Array1<f64>>();
    let layers = checkpoint.last_norms.len();
    let grad_norms = Array2::from_shape_fn((history.len(), layers), |(epoch, layer)| {
        history[epoch].grad_norms[layer]
    });
    let progress = Array1::from_vec(vec![
        checkpoint.epochs_done as u64,
        checkpoint.step as u64,
        u64::from(checkpoint.optimizer.steps),
    ]);
    let bytes = npz_bytes(|npz| {
        add_model(npz, &checkpoint.model)?;
        for (buffer, layers) in &checkpoint.optimizer.buffers {
            for (index, (weight, bias)) in layers.iter().enumerate() {
                npz.add_array(format!("optimizer.{buffer}.weight{index}"), weight)?;
                npz.add_array(format!("optimizer.{buffer}.bias{index}"), bias)?;
            }
        }
        npz.add_array("progress", &progress)?;
        npz.add_array("history.train_loss", &column(|m| m.train_loss))?;
        npz.add_array("history.train_accuracy", &column(|m| m.train_accuracy))?;
        npz.add_array("history.test_accuracy", &column(|m| m.test_accuracy))?;
        npz.add_array("history.grad_norms", &grad_norms)?;
        npz.add_array("digest", &Array1::from_vec(vec![digest_of(checkpoint)]))?;
        if let Some(settings) = &checkpoint.settings {
            npz.add_array("settings", &Array1::from_vec(settings.as_bytes().to_vec()))?;
        }
        npz.add_array(
            "last_norms",
            &Array1::from_vec(checkpoint.last_norms.clone()),
        )
    })
    .map_err(|problem| OutputError::new(path, problem))?;
    write_atomically(path, &bytes)
}

/// Reads a checkpoint written by [`save_checkpoint`]; `buffer_names` are the optimizer's
/// buffers to look for.
///
/// # Errors
/// A missing, corrupt or inconsistent file, naming it and the array.
pub fn load_checkpoint(
    path: &Path,
    buffer_names: &[&'static str],
) -> Result<Checkpoint, OutputError> {
    let mut npz = NpzFile::open(path)?;
    let problem = |text: String| OutputError::new(path, text);
    let model = read_model(&mut npz)?;
    let params = &model.params;
    for (index, (weight, bias)) in params.iter().enumerate() {
        let weights = weight.iter().map(|value| ("weight", value));
        let biases = bias.iter().map(|value| ("bias", value));
        if let Some((name, value)) = weights.chain(biases).find(|(_, value)| !value.is_finite()) {
            return Err(problem(format!(
                "{name}{index} holds {value}: a checkpoint's parameters are finite"
            )));
        }
    }
    // Phase 1: every buffer of this run's optimizer for every parameter group (each Linear,
    // then each norm's (gamma, beta)), of its group's shape, finite; no buffer of another.
    let norms = model
        .norms
        .iter()
        .map(|norm| ((1, norm.gamma.len()), norm.beta.len()));
    let shapes: Vec<_> = params
        .iter()
        .map(|(w, b)| (w.dim(), b.len()))
        .chain(norms)
        .collect();
    if let Some(stranger) = npz
        .names_starting_with("optimizer.")
        .into_iter()
        .find(|name| {
            !buffer_names
                .iter()
                .any(|buffer| name.starts_with(&format!("optimizer.{buffer}.")))
        })
    {
        return Err(problem(format!(
            "{stranger}: a buffer this run's optimizer does not have (it keeps {})",
            match buffer_names {
                [] => "none".to_string(),
                names => names.join(" and "),
            }
        )));
    }
    let mut buffers = Vec::new();
    for &buffer in buffer_names {
        let mut layers = Vec::new();
        for (index, &shape) in shapes.iter().enumerate() {
            let weight: Array2<f32> = npz.array(&format!("optimizer.{buffer}.weight{index}"))?;
            let bias: Array1<f32> = npz.array(&format!("optimizer.{buffer}.bias{index}"))?;
            if (weight.dim(), bias.len()) != shape {
                return Err(problem(format!(
                    "optimizer.{buffer}.weight{index} / bias{index} are {:?} / {}, but parameter \
                     group {index} is {:?} / {}",
                    weight.dim(),
                    bias.len(),
                    shape.0,
                    shape.1
                )));
            }
            if weight.iter().chain(&bias).any(|value| !value.is_finite()) {
                return Err(problem(format!(
                    "optimizer.{buffer}.weight{index} or bias{index} holds a value that is not \
                     finite"
                )));
            }
            layers.push((weight, bias));
        }
        if npz.contains(&format!("optimizer.{buffer}.weight{}", shapes.len())) {
            return Err(problem(format!(
                "optimizer.{buffer}.weight{}: more buffers than the model has parameter groups \
                 ({})",
                shapes.len(),
                shapes.len()
            )));
        }
        buffers.push((buffer, layers));
    }
    // Phase 2: the counters and the history.
    let progress: Array1<u64> = npz.array("progress")?;
    let history = read_history(&mut npz, model.params.len())?;
    let last_norms: Array1<f64> = npz.array("last_norms")?;
    let consistent = progress.len() == 3
        && progress[0] as usize == history.len()
        && last_norms.len() == params.len();
    if !consistent {
        return Err(inconsistent(path));
    }
    if let Some(norm) = last_norms
        .iter()
        .find(|norm| !(norm.is_finite() && **norm >= 0.0))
    {
        return Err(problem(format!(
            "last_norms holds {norm}: a gradient norm is finite and >= 0"
        )));
    }
    // Adam counts its steps (its bias correction reads the count); SGD and momentum keep 0.
    let counts_steps = buffer_names.contains(&backprop_core::optim::buffer::FIRST_MOMENT);
    let optimizer_steps = if counts_steps { progress[1] } else { 0 };
    if progress[2] != optimizer_steps {
        return Err(problem(format!(
            "progress: the optimizer's step counter is {} but {} steps were taken (expected {})",
            progress[2], progress[1], optimizer_steps
        )));
    }
    let checkpoint = Checkpoint {
        epochs_done: history.len(),
        step: usize::try_from(progress[1]).unwrap_or(usize::MAX),
        model,
        optimizer: OptimizerState {
            steps: u32::try_from(progress[2]).unwrap_or(u32::MAX),
            buffers,
        },
        history,
        last_norms: last_norms.to_vec(),
        settings: match npz.contains("settings") {
            true => Some(text_entry(&mut npz, "settings")?),
            false => None,
        },
    };
    // Phase 3: the digest of everything read against the one written with it: a value edited
    // into another valid one (a weight, a history entry, a renamed array) is caught here.
    let digest: Array1<u64> = npz.array("digest")?;
    if digest.as_slice() != Some(&[digest_of(&checkpoint)][..]) {
        return Err(problem(
            "its arrays do not match the digest written with them: edited or damaged since \
             the run wrote it"
                .into(),
        ));
    }
    Ok(checkpoint)
}

/// FNV-1a over 64-bit words: a digest of values, not a defence against forgery (it tells an
/// edit or damage from the file a run wrote).
#[derive(Debug, Clone, Copy)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    /// Mixes in one word.
    pub fn word(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// Mixes in `values`' bits, their count first.
    pub fn f32s<'v>(&mut self, values: impl ExactSizeIterator<Item = &'v f32>) {
        self.word(values.len() as u64);
        values.for_each(|value| self.word(u64::from(value.to_bits())));
    }

    /// Mixes in `values`' bits, their count first.
    pub fn f64s<'v>(&mut self, values: impl ExactSizeIterator<Item = &'v f64>) {
        self.word(values.len() as u64);
        values.for_each(|value| self.word(value.to_bits()));
    }

    /// Mixes in `text`, its length first.
    pub fn text(&mut self, text: &str) {
        self.word(text.len() as u64);
        text.bytes().for_each(|byte| self.word(u64::from(byte)));
    }

    /// The digest so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The digest of every value of `checkpoint`, in a fixed order.
fn digest_of(checkpoint: &Checkpoint) -> u64 {
    let mut digest = Digest::default();
    let model = &checkpoint.model;
    digest.word(checkpoint.epochs_done as u64);
    digest.word(checkpoint.step as u64);
    digest.text(&model.describe());
    for (weight, bias) in &model.params {
        digest.word(weight.nrows() as u64);
        digest.f32s(weight.iter());
        digest.f32s(bias.iter());
    }
    for norm in &model.norms {
        digest.f32s(norm.gamma.iter());
        digest.f32s(norm.beta.iter());
        if let Some((mean, var)) = &norm.running {
            digest.f32s(mean.iter());
            digest.f32s(var.iter());
        }
    }
    digest.word(u64::from(checkpoint.optimizer.steps));
    // A buffer with no layers is not written (nor read back): it has no values.
    for (buffer, layers) in checkpoint
        .optimizer
        .buffers
        .iter()
        .filter(|(_, l)| !l.is_empty())
    {
        digest.text(buffer);
        for (weight, bias) in layers {
            digest.f32s(weight.iter());
            digest.f32s(bias.iter());
        }
    }
    for epoch in &checkpoint.history {
        let values = [epoch.train_loss, epoch.train_accuracy, epoch.test_accuracy];
        digest.f64s(values.iter());
        digest.f64s(epoch.grad_norms.iter());
    }
    digest.f64s(checkpoint.last_norms.iter());
    digest.text(checkpoint.settings.as_deref().unwrap_or(""));
    digest.finish()
}

/// The error for arrays that do not fit together.
fn inconsistent(path: &Path) -> OutputError {
    OutputError::new(
        path,
        "its arrays disagree on the number of epochs or layers: not a checkpoint of this run",
    )
}

/// The `history.*` arrays as `metrics.csv` rows, for a model of `layers` layers.
fn read_history(npz: &mut NpzFile, layers: usize) -> Result<Vec<EpochMetrics>, OutputError> {
    let losses: Array1<f64> = npz.array("history.train_loss")?;
    let train_accuracies: Array1<f64> = npz.array("history.train_accuracy")?;
    let test_accuracies: Array1<f64> = npz.array("history.test_accuracy")?;
    let grad_norms: Array2<f64> = npz.array("history.grad_norms")?;
    let epochs = losses.len();
    let lengths = [
        train_accuracies.len(),
        test_accuracies.len(),
        grad_norms.nrows(),
    ];
    if lengths != [epochs; 3] || grad_norms.ncols() != layers {
        return Err(inconsistent(npz.path()));
    }
    // Every value as a run writes it: a finite loss >= 0, accuracies in [0, 1], finite norms
    // >= 0 (they are copied into metrics.csv).
    let checks = [
        out_of_range(npz.path(), "train_loss", losses.iter(), f64::MAX),
        out_of_range(npz.path(), "train_accuracy", train_accuracies.iter(), 1.0),
        out_of_range(npz.path(), "test_accuracy", test_accuracies.iter(), 1.0),
        out_of_range(npz.path(), "grad_norms", grad_norms.iter(), f64::MAX),
    ];
    if let Some(error) = checks.into_iter().flatten().next() {
        return Err(error);
    }
    Ok((0..epochs)
        .map(|epoch| EpochMetrics {
            epoch: epoch + 1,
            train_loss: losses[epoch],
            train_accuracy: train_accuracies[epoch],
            test_accuracy: test_accuracies[epoch],
            grad_norms: grad_norms.row(epoch).to_vec(),
        })
        .collect())
}

/// The error for the first of `values` (history array `name`) outside `[0, high]` or not finite.
fn out_of_range<'v>(
    path: &Path,
    name: &str,
    mut values: impl Iterator<Item = &'v f64>,
    high: f64,
) -> Option<OutputError> {
    values
        .find(|value| !(value.is_finite() && (0.0..=high).contains(*value)))
        .map(|value| {
            OutputError::new(
                path,
                format!("history.{name} holds {value}: not a value a run writes"),
            )
        })
}
