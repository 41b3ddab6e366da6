//! The folder of a training run: one run per folder, one process at a time.
//!
//! - Without `--out`, each run gets a new folder: `runs/seed0-level03`, else `-2`, `-3`, ...
//!   (made with `create_dir`, so two runs started together never share one).
//! - With `--out DIR`, a folder that already holds a run is refused unless `--force` (which
//!   removes that run's files first); `--resume DIR` continues the run there.
//! - A run holds an OS lock on `DIR/.lock` while it writes (released by the OS when the process
//!   ends, even by SIGKILL), so a second run into the same folder is refused, not mixed in.
//! - Temporary files an interrupted run left behind (`.NAME.PID-N.partial`) are removed when the
//!   next run takes the folder.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use backprop_data::files::check_regular_or_missing;

use crate::error::RunError;
use crate::output::{OutputError, PARTIAL, create_folder};

/// The files a training run writes.
pub const RUN_FILES: [&str; 7] = [
    "config.json",
    "metrics.csv",
    "loss.svg",
    "accuracy.svg",
    "grad_norms.svg",
    "model.npz",
    "checkpoint.npz",
];

/// The lock file's name.
pub const LOCK_FILE: &str = ".lock";

/// Where a run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A new folder named after `base` (no `--out`).
    Fresh(PathBuf),
    /// `--out DIR`, replacing a run there only when `force`.
    Given {
        /// The folder.
        path: PathBuf,
        /// `--force`.
        force: bool,
    },
    /// `--resume DIR`.
    Resume(PathBuf),
}

/// The error for `--resume DIR` where DIR holds no `config.json`.
pub fn nothing_to_resume(path: &Path) -> RunError {
    RunError::RunFolder {
        flag: "--resume",
        path: path.to_path_buf(),
        problem: "no config.json there, so no run to continue (a run stopped before its data \
                  loaded has nothing to resume: start it again with --out)"
            .into(),
    }
}

/// A run's folder, locked for this process while the value lives.
#[derive(Debug)]
pub struct RunFolder {
    /// The folder.
    pub path: PathBuf,
    /// Holds the lock on `.lock`; dropping it releases the lock.
    _lock: fs::File,
}

impl RunFolder {
    /// Takes the folder `destination` names: creates it (or a fresh one), locks it and clears
    /// temporary files left by an interrupted run.
    ///
    /// # Errors
    /// A folder that cannot be created, is locked by another run, holds a run (without
    /// `--force`) or, for `--resume`, holds none.
    pub fn claim(destination: &Destination) -> Result<Self, RunError> {
        match destination {
            Destination::Fresh(base) => Self::fresh(base),
            Destination::Given { path, force } => {
                create_folder(path)?;
                let folder = Self::lock(path)?;
                let existing = folder.run_files();
                if !existing.is_empty() && !force {
                    return Err(RunError::RunFolder {
                        flag: "--out",
                        path: path.clone(),
                        problem: format!(
                            "holds a run already ({}); pass --force to replace it, or --resume \
                             {} to continue it",
                            existing.join(", "),
                            path.display()
                        ),
                    });
                }
                // Only files are removed, and only once all of them can be: a folder (or
                // anything else) under a run file's name leaves the old run whole.
                if let Some(odd) = existing.iter().find(|file| {
                    path.join(file)
                        .symlink_metadata()
                        .is_ok_and(|metadata| metadata.is_dir())
                }) {
                    return Err(OutputError::new(
                        &path.join(odd),
                        "is a folder, not a run's file: --force replaces files only; nothing \
                         was removed",
                    )
                    .into());
                }
                // config.json last: an error part-way leaves a run that names its settings.
                for file in existing.into_iter().rev() {
                    let file = path.join(file);
                    fs::remove_file(&file).map_err(|error| {
                        OutputError::new(
                            &file,
                            format!("cannot remove the old run's file: {error}"),
                        )
                    })?;
                }
                Ok(folder)
            }
            Destination::Resume(path) => {
                if !path.join("config.json").is_file() {
                    return Err(nothing_to_resume(path));
                }
                Self::lock(path)
            }
        }
    }

    /// `base` if it does not exist yet, else the first free `base-2`, `base-3`, ...
    fn fresh(base: &Path) -> Result<Self, RunError> {
        if let Some(parent) = base
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            create_folder(parent)?;
        }
        for number in 1usize.. {
            let candidate = match number {
                1 => base.to_path_buf(),
                _ => PathBuf::from(format!("{}-{number}", base.display())),
            };
            match fs::create_dir(&candidate) {
                Ok(()) => return Self::lock(&candidate),
                Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
                Err(error) => {
                    let problem = format!("cannot create the output folder: {error}");
                    return Err(OutputError::new(&candidate, problem).into());
                }
            }
        }
        unreachable!("some numbered folder is free")
    }

    /// Locks `path/.lock` for this process, then removes stale temporary files.
    fn lock(path: &Path) -> Result<Self, RunError> {
        let lock_path = path.join(LOCK_FILE);
        let problem = |text: String| RunError::from(OutputError::new(path, text));
        // Opening a FIFO for writing would block until something reads it.
        check_regular_or_missing(&lock_path, true)
            .map_err(|error| problem(format!("cannot open the lock file {LOCK_FILE}: {error}")))?;
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|error| problem(format!("cannot open the lock file {LOCK_FILE}: {error}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(problem(
                    "another run is writing to this folder (it holds the lock on .lock); wait \
                     for it to end or choose another --out"
                        .into(),
                ));
            }
            Err(fs::TryLockError::Error(error)) => {
                return Err(problem(format!("cannot lock {LOCK_FILE}: {error}")));
            }
        }
        let folder = RunFolder {
            path: path.to_path_buf(),
            _lock: lock,
        };
        folder.remove_partials()?;
        Ok(folder)
    }

    /// The run files present in the folder.
    pub fn run_files(&self) -> Vec<&'static str> {
        RUN_FILES
            .into_iter()
            .filter(|file| self.path.join(file).symlink_metadata().is_ok())
            .collect()
    }

    /// Removes `.*.partial` files: what an interrupted write leaves (never a result).
    fn remove_partials(&self) -> Result<(), RunError> {
        let entries = fs::read_dir(&self.path)
            .map_err(|error| OutputError::new(&self.path, format!("cannot list: {error}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(PARTIAL) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}
