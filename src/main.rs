//! `backprop`: train, evaluate, diagnose and draw MLPs with the built-in levels; make and check
//! a learner's own level.

use std::path::PathBuf;
use std::process::ExitCode;

use backprop::cli::{LevelChoice, LevelCommand, exit_code, root_folder};
use backprop::levels::WithLevel;
use backprop::new_level::new_level;
use backprop_core::Level;
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Print a shell completion script: backprop completions bash > ~/.local/share/bash-completion/completions/backprop
    Completions(CompletionsArgs),
}

#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The level crate's package name, e.g. my-level.
    name: String,
    /// The workspace root (default: the current folder if it has a Cargo.toml, else the
    /// workspace this binary was built from).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print nothing; the exit code says whether the four gates and every edge and stress
    /// check pass.
    #[arg(short, long)]
    quiet: bool,
    /// Print the gates' results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct NewLevelArgs {
    /// The new crate's name, e.g. my-level (lowercase letters, digits, - and _).
    name: String,
    /// The workspace root, with crates/ and templates/ (default: the current folder if it has
    /// templates/, else the workspace this binary was built from).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
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
        Command::NewLevel(args) => new_level_command(args),
        Command::Check(args) => check_command(args),
        Command::Completions(args) => {
            let mut command = Cli::command();
            clap_complete::generate(args.shell, &mut command, "backprop", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

fn new_level_command(args: NewLevelArgs) -> ExitCode {
    let root = root_folder(args.root, "templates");
    exit_code(new_level(&root, &args.name).map(|path| {
        if args.quiet {
            return;
        }
        let name = &args.name;
        println!("created {} from {}", path.display(), backprop::new_level::TEMPLATE);
        println!("next: cargo test -p {name} gate1");
        println!(
            "  (then gate2, gate3, gate4; or all four in order: cargo run --release -- check {name})"
        );
        println!("train it: cargo run -p {name} --release --example backprop -- train");
    }))
}

fn check_command(args: CheckArgs) -> ExitCode {
    let root = root_folder(args.root, "Cargo.toml");
    let outcomes = match backprop::check::run_gates(&root, &args.name) {
        Ok(outcomes) => outcomes,
        Err(error) => return exit_code(Err(error)),
    };
    let gates_pass = backprop::check::all_pass(&outcomes);
    // Past the gates: the edge and stress checks, so a green report means the whole contract.
    let beyond = match gates_pass {
        true => match backprop::check::run_beyond_gates(&root, &args.name) {
            Ok(failures) => failures,
            Err(error) => return exit_code(Err(error)),
        },
        false => Vec::new(),
    };
    if args.json {
        println!(
            "{}",
            backprop::check::report_json(&args.name, &outcomes, &beyond)
        );
    } else if !args.quiet {
        print!("{}", backprop::check::report(&args.name, &outcomes));
        if gates_pass {
            print!(
                "{}",
                backprop::check::report_beyond_gates(&args.name, &beyond)
            );
        }
    }
    if gates_pass && beyond.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
