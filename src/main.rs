//! `backprop`: train an MLP on MNIST with any level, evaluate a saved model.

use std::path::PathBuf;
use std::process::ExitCode;

use backprop::diagnose::{DiagnoseConfig, diagnose};
use backprop::new_level::new_level;
use backprop::run::{self, TrainConfig};
use backprop_core::{Activation, Init};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "backprop",
    version,
    about = "Train and evaluate MLPs with the backprop levels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train an MLP (ReLU, softmax cross-entropy, SGD) on MNIST and save metrics and weights.
    Train(TrainArgs),
    /// Load saved weights into a level and print test accuracy and a confusion matrix.
    Eval(EvalArgs),
    /// Train a grid of short runs (depth x activation x init x clipping) and report where the
    /// gradient vanishes or explodes: a table and plots.
    Diagnose(DiagnoseArgs),
    /// Copy the starter crate (templates/level-starter) to crates/NAME: your own level to fill in.
    NewLevel(NewLevelArgs),
    /// Run the four success levels (gates) of a level crate in order: PASS/FAIL each, the first
    /// failure explained with its hint.
    Check(CheckArgs),
    /// Write the computation graph of a 2-2-2 network (hints/intuition.md's example) as
    /// Graphviz DOT, each node with its value and gradient after one backward pass.
    Graph(GraphArgs),
}

#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// Which level computes it.
    #[arg(long, default_value = "2", value_parser = ["1", "2", "3"])]
    level: String,
    /// Output folder for graph.dot (and graph.svg when Graphviz is installed).
    #[arg(long, default_value = "runs/graph")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The level crate's package name, e.g. my-level.
    name: String,
    /// The workspace root.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

#[derive(Debug, clap::Args)]
struct NewLevelArgs {
    /// The new crate's name, e.g. my-level (lowercase letters, digits, - and _).
    name: String,
    /// The workspace root (the folder with Cargo.toml, crates/ and templates/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Which implementation trains: 1 (loops), 2 (ndarray), 3 (in place).
    #[arg(long, default_value = "3", value_parser = ["1", "2", "3"])]
    level: String,
    /// Passes over the training set.
    #[arg(long, default_value_t = 15, value_parser = positive)]
    epochs: usize,
    /// Samples per SGD step.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    batch_size: usize,
    /// SGD learning rate (finite, > 0).
    #[arg(long, default_value_t = 0.3, value_parser = positive_finite)]
    lr: f32,
    /// SGD momentum, in [0, 1) (0: plain SGD).
    #[arg(long, default_value_t = 0.0, value_parser = momentum)]
    momentum: f32,
    /// Hidden layer widths, comma-separated: 256 or 512,128.
    #[arg(long, default_value = "256", value_delimiter = ',', value_parser = hidden_sizes)]
    hidden: Vec<usize>,
    /// Activation between layers.
    #[arg(long, default_value = "relu", value_parser = ["relu", "sigmoid", "tanh"])]
    activation: String,
    /// Weight initialisation: pytorch, he, xavier or normal:STD.
    #[arg(long, default_value = "pytorch", value_parser = init)]
    init: Init,
    /// Seed for the weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// rayon threads (default: all cores).
    #[arg(long, value_parser = positive)]
    threads: Option<usize>,
    /// Folder with the four IDX files (gzip'd or not).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// Output folder (default: runs/seed<SEED>-level<LEVEL>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long, value_parser = positive)]
    limit: Option<usize>,
    /// No progress bar and no per-epoch lines.
    #[arg(long)]
    quiet: bool,
    /// Check every layer's gradient at each step and print a warning (with the likely cause)
    /// when one vanishes, explodes or makes too large an update.
    #[arg(long)]
    watch_gradients: bool,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// A model.npz written by `backprop train`.
    #[arg(long)]
    model: PathBuf,
    /// Which level runs the model.
    #[arg(long, default_value = "3", value_parser = ["1", "2", "3"])]
    level: String,
    /// Folder with the four IDX files (the test split is used).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
}

#[derive(Debug, clap::Args)]
struct DiagnoseArgs {
    /// Gaussian clusters in 32 dimensions instead of MNIST.
    #[arg(long)]
    synthetic: bool,
    /// Numbers of Linear layers to try, comma-separated.
    #[arg(long, default_value = "2,5,10,20", value_delimiter = ',', value_parser = positive)]
    depths: Vec<usize>,
    /// Width of every hidden layer.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    width: usize,
    /// SGD steps per configuration.
    #[arg(long, default_value_t = 200, value_parser = positive)]
    steps: usize,
    /// Samples per SGD step.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    batch_size: usize,
    /// SGD learning rate (finite, > 0).
    #[arg(long, default_value_t = 0.1, value_parser = positive_finite)]
    lr: f32,
    /// The max_norm of the clipped runs (finite, > 0).
    #[arg(long, default_value_t = 1.0, value_parser = positive_finite)]
    clip: f32,
    /// Seed for the weights, the batches and the synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which implementation trains: 1 (loops), 2 (ndarray), 3 (in place).
    #[arg(long, default_value = "3", value_parser = ["1", "2", "3"])]
    level: String,
    /// Folder with the four IDX files (gzip'd or not).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// Output folder for table.md and the plots.
    #[arg(long, default_value = "runs/diagnose")]
    out: PathBuf,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(value) if value > 0 => Ok(value),
        _ => Err(format!("{text:?} is not a whole number above 0")),
    }
}

fn positive_finite(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a finite number above 0")),
    }
}

fn momentum(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(value) if (0.0..1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number in [0, 1)")),
    }
}

fn hidden_sizes(text: &str) -> Result<usize, String> {
    positive(text).map_err(|_| {
        format!("{text:?} is not a layer width: give whole numbers above 0 separated by commas, e.g. 256 or 512,128")
    })
}

fn init(text: &str) -> Result<Init, String> {
    text.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Train(args) => {
            let level: u8 = args.level.parse().expect("clap checked the level");
            let activation: Activation = args
                .activation
                .parse()
                .expect("clap checked the activation");
            let config = TrainConfig {
                out: args.out.unwrap_or_else(|| {
                    PathBuf::from(format!("runs/seed{}-level{level}", args.seed))
                }),
                level,
                epochs: args.epochs,
                batch_size: args.batch_size,
                lr: args.lr,
                momentum: args.momentum,
                hidden: args.hidden,
                activation,
                init: args.init,
                seed: args.seed,
                threads: args.threads,
                data: args.data,
                limit: args.limit,
                quiet: args.quiet,
                watch_gradients: args.watch_gradients,
            };
            run::train(&config).map(|accuracy| {
                if !config.quiet {
                    println!(
                        "test accuracy {:.2}%; outputs in {}",
                        100.0 * accuracy,
                        config.out.display()
                    );
                }
            })
        }
        Command::Diagnose(args) => {
            let config = DiagnoseConfig {
                depths: args.depths,
                width: args.width,
                steps: args.steps,
                batch_size: args.batch_size,
                lr: args.lr,
                clip: f64::from(args.clip),
                seed: args.seed,
                level: args.level.parse().expect("clap checked the level"),
                synthetic: args.synthetic,
                data: args.data,
                out: args.out,
            };
            diagnose(&config).map(|_| {
                println!(
                    "table and plots in {} (see hints/gradient-flow.md to read them)",
                    config.out.display()
                );
            })
        }
        Command::NewLevel(args) => new_level(&args.root, &args.name).map(|path| {
            println!(
                "created {} from {}",
                path.display(),
                backprop::new_level::TEMPLATE
            );
            println!("next: cargo test -p {} gate1", args.name);
            println!(
                "  (then gate2, gate3, gate4; or all four in order: cargo run --release -- check {})",
                args.name
            );
        }),
        Command::Check(args) => match backprop::check::check(&args.root, &args.name) {
            Ok((report, all_pass)) => {
                print!("{report}");
                return if all_pass {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            Err(error) => Err(error),
        },
        Command::Graph(args) => {
            let level = args.level.parse().expect("clap checked the level");
            backprop::graph::write_graph(&args.out, level).map(|report| println!("{report}"))
        }
        Command::Eval(args) => {
            let level: u8 = args.level.parse().expect("clap checked the level");
            run::eval(&args.model, &args.data, level).map(|text| print!("{text}"))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
