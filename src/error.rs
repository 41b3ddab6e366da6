//! Why a command failed: one error type for the whole CLI, each message naming the file, flag
//! or step concerned.

use std::path::PathBuf;

use backprop_data::mnist::DataError;

use crate::output::OutputError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A flag combination that cannot run; the message names the flag (exit status 2).
    #[error("{0}")]
    Flag(String),
    /// A command's argument that cannot be used: a package name, a hint topic; the message
    /// names it (exit status 2).
    #[error("{0}")]
    Argument(String),
    /// The run folder a flag names cannot be used as asked: it holds a run (without
    /// `--force`) or, for `--resume`, none (exit status 2).
    #[error("{flag} {}: {problem}", path.display())]
    RunFolder {
        /// `--out` or `--resume`.
        flag: &'static str,
        /// The folder.
        path: PathBuf,
        /// What is in the way.
        problem: String,
    },
    /// The machine refused what a correct command asked for (threads that cannot start); the
    /// message names what was asked (exit status 1).
    #[error("{what}: {problem}")]
    System {
        /// What was asked, as a flag or a step: `--threads 4`.
        what: String,
        /// The operating system's answer.
        problem: String,
    },
    /// The data set could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An output could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A saved model could not be read, or does not fit the data.
    #[error("{}: {problem}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The loss stopped being finite.
    #[error(
        "training stopped at step {step} (epoch {epoch}): the loss is {loss}; the largest \
         gradient norm is in {layer} ({norm:e} at the last finite step); {cause}"
    )]
    NonFinite {
        /// The global step (1-based) that produced it.
        step: usize,
        /// The epoch (1-based).
        epoch: usize,
        /// The loss.
        loss: f32,
        /// The parameter with the largest gradient norm.
        layer: String,
        /// Its gradient norm.
        norm: f32,
        /// What the evidence points at: the starting weights when no update had been taken,
        /// else the learning rate.
        cause: String,
    },
}
