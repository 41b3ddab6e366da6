//! `backprop`: train, evaluate, diagnose and draw MLPs with the built-in levels; make and check
//! a learner's own level.

use std::path::{Path, PathBuf};
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
    about = "Train and evaluate MLPs and CNNs with the backprop levels"
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
    /// A gate's hint, one tier at a time: the idea, then (--more) the shapes or a worked
    /// example, then (--more --more) the formula.
    Hint(HintArgs),
    /// Print a shell completion script: backprop completions bash > ~/.local/share/bash-completion/completions/backprop
    Completions(CompletionsArgs),
}

#[derive(Debug, clap::Args)]
struct HintArgs {
    /// gate1, gate2, gate3, gate4 or conv (or a check name such as basic::gate1_single_layer_backward).
    topic: String,
    /// Show the next tier; twice for the one after.
    #[arg(long, action = clap::ArgAction::Count)]
    more: u8,
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
    /// Print nothing; the exit code says whether the four gates and every edge, norm and stress
    /// check pass.
    #[arg(short, long)]
    quiet: bool,
    /// Print the gates' results as JSON.
    #[arg(long)]
    json: bool,
    /// Rerun whenever a file under crates/NAME/src changes, clearing the screen first (Ctrl-C
    /// stops).
    #[arg(long, conflicts_with = "json")]
    watch: bool,
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
        Command::Hint(args) => exit_code(
            backprop::hint::hint(&args.topic, usize::from(args.more)).map(|text| print!("{text}")),
        ),
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
    let root = root_folder(args.root.clone(), "Cargo.toml");
    if !args.watch {
        return match check_once(&root, &args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => exit_code(Err(error)),
        };
    }
    // --watch: rerun whenever a file under the crate's src/ changes, on a cleared screen.
    let watched = root.join("crates").join(&args.name).join("src");
    if !watched.is_dir() {
        let problem = format!("--watch: {} is not a folder", watched.display());
        return exit_code(Err(backprop::error::RunError::Flag(problem)));
    }
    loop {
        let before = backprop::check::snapshot(&watched);
        if let Err(error) = check_once(&root, &args) {
            return exit_code(Err(error));
        }
        println!(
            "\nwatching {} for changes (Ctrl-C to stop)",
            watched.display()
        );
        backprop::check::wait_for_change(&watched, &before);
        print!("\x1b[2J\x1b[H");
    }
}

/// One `check` run: the gates, then (if they pass) every edge, normalization and stress check,
/// then (if those pass) the convolution group, printed as `args` asks; true when the whole suite
/// passes.
fn check_once(root: &Path, args: &CheckArgs) -> Result<bool, backprop::error::RunError> {
    let outcomes = backprop::check::run_gates(root, &args.name)?;
    let gates_pass = backprop::check::all_pass(&outcomes);
    // A gate that failed without naming its mistake: the edge checks may single it out.
    let cause = backprop::check::cause_of_failed_gate(root, &args.name, &outcomes)?;
    // Past the gates: the edge, norm and stress checks, so a green report means the whole contract.
    let beyond = match gates_pass {
        true => backprop::check::run_beyond_gates(root, &args.name)?,
        false => Vec::new(),
    };
    // Then the layers a learner writes last: convolution and pooling.
    let conv_runs = gates_pass && beyond.is_empty();
    let conv = match conv_runs {
        true => backprop::check::run_conv_group(root, &args.name)?,
        false => Vec::new(),
    };
    if args.json {
        println!(
            "{}",
            backprop::check::report_json(&args.name, &outcomes, cause.as_deref(), &beyond, &conv)
        );
    } else if !args.quiet {
        print!(
            "{}",
            backprop::check::report(&args.name, &outcomes, cause.as_deref())
        );
        if gates_pass {
            print!(
                "{}",
                backprop::check::report_beyond_gates(&args.name, &beyond)
            );
        }
        if conv_runs {
            print!("{}", backprop::check::report_conv_group(&args.name, &conv));
        }
    }
    Ok(gates_pass && beyond.is_empty() && conv.is_empty())
}
