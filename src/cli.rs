//! The command line, generic over the level: `train`, `eval`, `diagnose` and `graph` with every
//! flag, for a built-in level (the `backprop` binary, `--level 1|2|3`) or for a learner's own
//! (their crate's one-line `examples/backprop.rs`).
//!
//! ```no_run
//! // The body of `fn main() -> ExitCode` in crates/my-level/examples/backprop.rs, run as
//! // `cargo run -p my-level --release --example backprop -- train`; your marker type in place
//! // of Level02:
//! let exit_code = backprop::cli::main::<level02::Level02>();
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backprop_core::{Activation, Init, Level, Norm};
use backprop_data::files::open_regular;
use clap::{Args, Parser, Subcommand};

use crate::arch::Arch;
use crate::diagnose::{DiagnoseConfig, diagnose};
use crate::error::RunError;
use crate::levels::BuiltinLevel;
use crate::limits::{
    MAX_DEPTH, MAX_EPOCHS, MAX_STEPS, MAX_THREADS, at_most, hidden_sizes, in_unit_interval,
    non_negative_finite, positive, positive_finite, positive_finite_f64,
};
use crate::run_folder::{Destination, nothing_to_resume};
use crate::train::{OptimizerKind, OptimizerSpec, TrainConfig, train};

/// The commands that run a level. `S` is how the level is chosen: [`LevelChoice`] (`--level`)
/// in the `backprop` binary, [`ThisLevel`] (no flag) in a learner's crate.
#[derive(Debug, Subcommand)]
pub enum LevelCommand<S: Args> {
    /// Train an MLP (sizes, activation, normalization are flags) or any network of layers
    /// (--arch, e.g. --arch lenet) on MNIST and save its metrics, plots and weights.
    Train {
        /// The level.
        #[command(flatten)]
        level: S,
        /// The settings (boxed: they are most of the command's size).
        #[command(flatten)]
        args: Box<TrainArgs>,
    },
    /// Load saved weights and print the test accuracy and a confusion matrix.
    Eval {
        /// The level.
        #[command(flatten)]
        level: S,
        /// The settings.
        #[command(flatten)]
        args: EvalArgs,
    },
    /// Train a grid of short runs (depth x activation x init x clipping) and report where the
    /// gradient vanishes or explodes: a table and plots. The grid is of MLPs; networks of
    /// --arch (convolutions) are not part of it.
    Diagnose {
        /// The level.
        #[command(flatten)]
        level: S,
        /// The settings.
        #[command(flatten)]
        args: DiagnoseArgs,
    },
    /// Write the computation graph of a 2-2-2 network (hints/intuition.md's example) as an SVG
    /// (graph.svg) and as Graphviz DOT (graph.dot), each node with its value and gradient after
    /// one backward pass. Only this small MLP: networks of --arch (convolutions) have no graph.
    Graph {
        /// The level.
        #[command(flatten)]
        level: S,
        /// The settings.
        #[command(flatten)]
        args: GraphArgs,
    },
}

/// `--level`, for the `backprop` binary.
#[derive(Debug, Clone, Copy, Args)]
pub struct LevelChoice {
    /// Which implementation runs: 1 (loops), 2 (ndarray), 3 (in place).
    #[arg(short, long, value_enum, default_value = "3")]
    pub level: BuiltinLevel,
}

/// No flag: a learner's binary runs the learner's level.
#[derive(Debug, Clone, Copy, Args)]
pub struct ThisLevel {}

impl<S: Args> LevelCommand<S> {
    /// How the level was chosen.
    pub fn level(&self) -> &S {
        match self {
            LevelCommand::Train { level, .. }
            | LevelCommand::Eval { level, .. }
            | LevelCommand::Diagnose { level, .. }
            | LevelCommand::Graph { level, .. } => level,
        }
    }

    /// Runs the command with level `L` and prints what it reports.
    ///
    /// # Errors
    /// Whatever the command met: bad data, an unwritable folder, a non-finite loss.
    pub fn execute<L: Level<f32> + Level<f64>>(self) -> Result<(), RunError> {
        let name = <L as Level<f32>>::NAME;
        match self {
            LevelCommand::Train { args, .. } => {
                let (config, destination) = (*args).into_config(name)?;
                let quiet = config.quiet;
                let (accuracy, out) = train::<L>(config, &destination)?;
                if !quiet {
                    let out = out.display();
                    println!("test accuracy {:.2}%; outputs in {out}", 100.0 * accuracy);
                }
            }
            LevelCommand::Eval { args, .. } => {
                let data = data_folder(args.data)?;
                let evaluation =
                    crate::eval::eval::<L>(&args.model, &data, args.pictures.as_deref())?;
                match (args.json, args.quiet) {
                    (true, _) => println!("{}", evaluation.to_json()),
                    (false, true) => println!("{}", evaluation.summary()),
                    (false, false) => print!("{}", evaluation.report()),
                }
            }
            LevelCommand::Diagnose { args, .. } => {
                let config = args.into_config()?;
                diagnose::<L>(&config)?;
                if !config.quiet {
                    let out = config.out.display();
                    println!("table and plots in {out} (see hints/gradient-flow.md to read them)");
                }
            }
            LevelCommand::Graph { args, .. } => {
                let report = crate::graph::write_graph::<L>(&args.out)?;
                if !args.quiet {
                    println!("{report}");
                }
            }
        }
        Ok(())
    }
}

/// The settings of `train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Passes over the training set (at most 100000).
    #[arg(short, long, default_value_t = 15, value_parser = at_most(MAX_EPOCHS))]
    pub epochs: usize,
    /// Samples per optimizer step.
    #[arg(short, long, default_value_t = 64, value_parser = positive)]
    pub batch_size: usize,
    /// The update rule: sgd (p -= lr g), momentum (PyTorch's SGD with momentum) or adam.
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Learning rate (finite, > 0; default 0.3 for sgd, 0.03 for momentum, 0.001 for adam).
    #[arg(long, value_parser = positive_finite_f64)]
    pub lr: Option<f64>,
    /// Momentum factor of --optimizer momentum, in [0, 1).
    #[arg(long, default_value_t = 0.9, value_parser = in_unit_interval)]
    pub momentum: f64,
    /// Nesterov momentum (with --optimizer momentum).
    #[arg(long)]
    pub nesterov: bool,
    /// L2 penalty added to every gradient (finite, >= 0).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_finite)]
    pub weight_decay: f64,
    /// The network as a list of layers instead of the MLP of --hidden: a preset (lenet, convnet) or
    /// layers such as 'conv(8,3,pad=1),relu,maxpool(2),flatten,linear(10)'. Layers: conv(OUT,K)
    /// or conv(OUT,K,stride=S,pad=P), maxpool(K) or maxpool(K,stride=S), flatten, linear(OUT),
    /// relu, sigmoid, tanh, batchnorm, layernorm, dropout(P); input channels and features are
    /// inferred; the last layer gives the 10 classes. lenet is
    /// conv(8,3,pad=1),relu,maxpool(2),conv(16,3,pad=1),relu,maxpool(2),flatten,linear(10);
    /// convnet is conv(16,5,pad=2),relu,maxpool(2),conv(32,5,pad=2),relu,maxpool(2),flatten,
    /// linear(128),relu,linear(10).
    #[arg(long, value_parser = arch, conflicts_with_all = ["hidden", "activation", "norm", "dropout"])]
    pub arch: Option<Arch>,
    /// Hidden layer widths, comma-separated: 256 or 512,128.
    #[arg(long, default_value = "256", value_delimiter = ',', value_parser = hidden_sizes)]
    pub hidden: Vec<usize>,
    /// Activation between layers: relu, sigmoid or tanh.
    #[arg(short, long, default_value = "relu", value_parser = activation)]
    pub activation: Activation,
    /// Weight initialisation: pytorch, he, xavier or normal:STD.
    #[arg(long, default_value = "pytorch", value_parser = init)]
    pub init: Init,
    /// Start from the weights in FILE instead of --init: a model.npz or model.safetensors (one
    /// written by PyTorch too: the tensors of this run's network under nn.Sequential's names,
    /// 0.weight as (out, in), ...). Every tensor must fit this run's layers.
    #[arg(long, value_name = "FILE", conflicts_with = "init")]
    pub init_from: Option<PathBuf>,
    /// Normalization after each hidden layer, before its activation: none, batch or layer.
    #[arg(long, default_value = "none", value_parser = norm)]
    pub norm: Norm,
    /// Dropout probability after each hidden activation, in [0, 1) (0: none). Evaluation and
    /// the accuracies run without it.
    #[arg(long, default_value_t = 0.0, value_parser = in_unit_interval)]
    pub dropout: f64,
    /// Seed for the weights, the shuffling and the dropout masks.
    #[arg(short, long, default_value_t = 0)]
    pub seed: u64,
    /// rayon threads (default: all cores; at most 256). With 1, a helper thread that only copies
    /// rows gathers the next batch while the step runs; with more, the threads stay busy polling
    /// for work through each epoch (no sleep and wake-up between a step's parallel parts).
    #[arg(short, long, value_parser = at_most(MAX_THREADS))]
    pub threads: Option<usize>,
    /// Folder with the four IDX files, gzip'd or not (default: data/mnist in the current
    /// folder, else in the workspace this binary was built from).
    #[arg(short, long)]
    pub data: Option<PathBuf>,
    /// Output folder; one that holds a run is refused unless --force (default: a new folder
    /// runs/seed{SEED}-{level name}, e.g. runs/seed0-level03, else with -2, -3, ... appended).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// With --out: replace the run already in that folder.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Continue the run in DIR from its last finished epoch, with the settings of its
    /// config.json (only --threads and --quiet may be given with it).
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
        "arch", "hidden", "activation", "init", "init_from", "norm", "dropout", "seed", "data", "out", "limit",
        "watch_gradients", "force",
    ])]
    pub resume: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long, value_parser = positive)]
    pub limit: Option<usize>,
    /// No progress bar and no per-epoch lines.
    #[arg(short, long)]
    pub quiet: bool,
    /// Check every layer's gradient at each step and print a warning (with the likely cause)
    /// when one vanishes, explodes or makes too large an update.
    #[arg(long)]
    pub watch_gradients: bool,
}

impl TrainArgs {
    /// The run's settings and where it writes; `level_name` names the default output folder.
    ///
    /// # Errors
    /// `--nesterov` without `--optimizer momentum`; with `--resume`, a folder without a
    /// readable `config.json` or whose run was made by another level.
    pub fn into_config(self, level_name: &str) -> Result<(TrainConfig, Destination), RunError> {
        if let Some(folder) = self.resume {
            return resumed_config(folder, level_name, self.threads, self.quiet);
        }
        if self.nesterov && self.optimizer != OptimizerKind::Momentum {
            return Err(RunError::Flag(
                "--nesterov: applies only to --optimizer momentum".into(),
            ));
        }
        let optimizer = OptimizerSpec {
            kind: self.optimizer,
            lr: self.lr.unwrap_or(self.optimizer.default_lr()),
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        };
        let seed = self.seed;
        let destination = match self.out {
            Some(path) => Destination::Given {
                path,
                force: self.force,
            },
            None => Destination::Fresh(PathBuf::from(format!("runs/seed{seed}-{level_name}"))),
        };
        let config = TrainConfig {
            level: level_name.to_string(),
            out: PathBuf::new(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer,
            arch: self.arch,
            hidden: self.hidden,
            activation: self.activation,
            init: self.init,
            init_from: self.init_from,
            norm: self.norm,
            dropout: self.dropout,
            seed,
            threads: self.threads,
            data: data_folder(self.data)?,
            limit: self.limit,
            quiet: self.quiet,
            watch_gradients: self.watch_gradients,
        };
        Ok((config, destination))
    }
}

/// The settings of the run in `folder` (`--resume`), with this invocation's `--threads` and
/// `--quiet`.
fn resumed_config(
    folder: PathBuf,
    level_name: &str,
    threads: Option<usize>,
    quiet: bool,
) -> Result<(TrainConfig, Destination), RunError> {
    let config_path = folder.join("config.json");
    let unreadable = |problem: String| RunError::Model {
        path: config_path.clone(),
        problem,
    };
    let read = |path: &Path| -> std::io::Result<String> {
        let mut text = String::new();
        open_regular(path)?.read_to_string(&mut text)?;
        Ok(text)
    };
    let text = match read(&config_path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(nothing_to_resume(&folder));
        }
        Err(error) => return Err(unreadable(format!("cannot read: {error}"))),
    };
    let mut config = TrainConfig::from_json(&text, folder.clone()).map_err(unreadable)?;
    if config.level != level_name {
        return Err(RunError::Flag(format!(
            "--resume {}: the run was made by {}, not {level_name} (pass the same --level)",
            folder.display(),
            config.level
        )));
    }
    config.quiet = quiet;
    config.threads = threads.or(config.threads);
    Ok((config, Destination::Resume(folder)))
}

/// The settings of `eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// A model.npz or model.safetensors written by `backprop train` (or a safetensors file
    /// written by reference/pytorch_bridge.py).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Folder with the four IDX files; the test split is used (default: data/mnist in the
    /// current folder, else in the workspace this binary was built from).
    #[arg(short, long)]
    pub data: Option<PathBuf>,
    /// Print only the accuracy line, not the confusion matrix.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the accuracy and the confusion matrix as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write weights.png (the first layer's filters), mistakes.png (the first 64
    /// misclassified test digits, true->predicted) and confusion.svg into DIR.
    #[arg(long, value_name = "DIR")]
    pub pictures: Option<PathBuf>,
}

/// The settings of `diagnose`.
#[derive(Debug, Clone, Args)]
pub struct DiagnoseArgs {
    /// Gaussian clusters in 32 dimensions instead of MNIST.
    #[arg(long)]
    pub synthetic: bool,
    /// Numbers of Linear layers to try, comma-separated (each at most 1000).
    #[arg(long, default_value = "2,5,10,20", value_delimiter = ',', value_parser = at_most(MAX_DEPTH))]
    pub depths: Vec<usize>,
    /// Width of every hidden layer.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    pub width: usize,
    /// SGD steps per configuration (at most 1000000).
    #[arg(long, default_value_t = 200, value_parser = at_most(MAX_STEPS))]
    pub steps: usize,
    /// Samples per SGD step.
    #[arg(short, long, default_value_t = 64, value_parser = positive)]
    pub batch_size: usize,
    /// SGD learning rate (finite, > 0).
    #[arg(long, default_value_t = 0.1, value_parser = positive_finite)]
    pub lr: f32,
    /// The max_norm of the clipped runs (finite, > 0).
    #[arg(long, default_value_t = 1.0, value_parser = positive_finite)]
    pub clip: f32,
    /// Normalizations to compare after each hidden layer, comma-separated: none, batch,
    /// layer (none,batch puts each configuration with and without batch norm side by side).
    #[arg(long, default_value = "none", value_delimiter = ',', value_parser = norm)]
    pub norm: Vec<Norm>,
    /// Activations of the grid, comma-separated: relu, sigmoid, tanh (default: all three).
    #[arg(long, default_value = "relu,sigmoid,tanh", value_delimiter = ',', value_parser = activation)]
    pub activations: Vec<Activation>,
    /// Dropout after each hidden activation in every configuration, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_parser = in_unit_interval)]
    pub dropout: f64,
    /// Seed for the weights, the batches and the synthetic data.
    #[arg(short, long, default_value_t = 0)]
    pub seed: u64,
    /// Folder with the four IDX files, gzip'd or not (default: data/mnist in the current
    /// folder, else in the workspace this binary was built from).
    #[arg(short, long)]
    pub data: Option<PathBuf>,
    /// Output folder for table.md and the plots.
    #[arg(short, long, default_value = "runs/diagnose")]
    pub out: PathBuf,
    /// No table on stdout (table.md and the plots are still written).
    #[arg(short, long)]
    pub quiet: bool,
}

impl DiagnoseArgs {
    /// The run's settings.
    ///
    /// # Errors
    /// No MNIST folder where `--data` or its defaults point (unless `--synthetic`).
    pub fn into_config(self) -> Result<DiagnoseConfig, RunError> {
        let data = match (self.synthetic, self.data) {
            (true, data) => data.unwrap_or_default(),
            (false, data) => data_folder(data)?,
        };
        Ok(DiagnoseConfig {
            depths: self.depths,
            width: self.width,
            steps: self.steps,
            batch_size: self.batch_size,
            lr: self.lr,
            clip: f64::from(self.clip),
            norms: self.norm,
            activations: self.activations,
            dropout: self.dropout,
            seed: self.seed,
            synthetic: self.synthetic,
            data,
            out: self.out,
            quiet: self.quiet,
        })
    }
}

/// The settings of `graph`.
#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    /// Output folder for graph.svg (drawn here, no Graphviz needed) and graph.dot.
    #[arg(short, long, default_value = "runs/graph")]
    pub out: PathBuf,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The whole `main` of a learner's level binary: parses `train`, `eval`, `diagnose` or `graph`
/// with every flag of the `backprop` binary but `--level`, runs it with `L`, and turns an error
/// into one `error:` line and exit code 1.
///
/// ```no_run
/// let exit_code: std::process::ExitCode = backprop::cli::main::<level02::Level02>();
/// ```
pub fn main<L: Level<f32> + Level<f64>>() -> ExitCode {
    /// Train and evaluate MLPs and CNNs with this level.
    #[derive(Debug, Parser)]
    #[command(version)]
    struct LevelCli {
        #[command(subcommand)]
        command: LevelCommand<ThisLevel>,
    }
    exit_code(LevelCli::parse().command.execute::<L>())
}

/// Success, or the error as one `error:` line on stderr and exit code 1 (2 for flags that
/// cannot go together, as clap gives for a bad flag).
pub fn exit_code(outcome: Result<(), RunError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            match error {
                RunError::Flag(_) | RunError::Argument(_) | RunError::RunFolder { .. } => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The workspace this binary was built from (its bundled data, hints and templates).
pub const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// `--data` as given, or the first of `data/mnist` (current folder) and
/// `WORKSPACE/data/mnist` that exists.
///
/// # Errors
/// Neither exists: the message names both paths and the flag.
pub fn data_folder(given: Option<PathBuf>) -> Result<PathBuf, RunError> {
    if let Some(given) = given {
        return Ok(given);
    }
    let tried = [
        PathBuf::from("data/mnist"),
        PathBuf::from(WORKSPACE).join("data/mnist"),
    ];
    tried
        .iter()
        .find(|path| path.is_dir())
        .cloned()
        .ok_or_else(|| {
            RunError::Flag(format!(
                "no MNIST folder at {} or {}: pass --data DIR (a folder with the four IDX files)",
                tried[0].display(),
                tried[1].display()
            ))
        })
}

/// `--root` as given, or the current folder if it holds `marker`, else [`WORKSPACE`].
pub fn root_folder(given: Option<PathBuf>, marker: &str) -> PathBuf {
    given.unwrap_or_else(|| {
        if std::path::Path::new(marker).exists() {
            PathBuf::from(".")
        } else {
            PathBuf::from(WORKSPACE)
        }
    })
}

/// `relu`, `sigmoid` or `tanh`.
fn activation(text: &str) -> Result<Activation, String> {
    text.parse()
}

/// `none`, `batch` or `layer`.
fn norm(text: &str) -> Result<Norm, String> {
    text.parse()
}

fn arch(text: &str) -> Result<Arch, String> {
    text.parse()
}

fn init(text: &str) -> Result<Init, String> {
    text.parse()
}
