//! `backprop`: train, evaluate, diagnose and draw MLPs with the built-in levels; make and check
//! a learner's own level.

use std::path::PathBuf;
use std::process::ExitCode;

use backprop::cli::{LevelChoice, LevelCommand, exit_code};
use backprop::levels::WithLevel;
use backprop::new_level::new_level;
use backprop_core::Level;
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
    #[command(flatten)]
    Level(LevelCommand<LevelChoice>),
    /// Copy the starter crate (templates/level-starter) to crates/NAME: your own level to fill in.
    NewLevel(NewLevelArgs),
    /// Run the four success levels (gates) of a level crate in order: PASS/FAIL each, the first
    /// failure explained with its hint.
    Check(CheckArgs),
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

/// A level command, run with the level its `--level` names.
struct Execute(LevelCommand<LevelChoice>);

impl WithLevel for Execute {
    type Output = Result<(), backprop::error::RunError>;
    fn run<L: Level<f32> + Level<f64>>(self) -> Self::Output {
        self.0.execute::<L>()
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Level(command) => exit_code(command.level().level.dispatch(Execute(command))),
        Command::NewLevel(args) => exit_code(new_level(&args.root, &args.name).map(|path| {
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
            println!(
                "train it: cargo run -p {} --release --example backprop -- train",
                args.name
            );
        })),
        Command::Check(args) => match backprop::check::check(&args.root, &args.name) {
            Ok((report, all_pass)) => {
                print!("{report}");
                if all_pass {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(error) => exit_code(Err(error)),
        },
    }
}
