//! `backprop check NAME`: the four success levels of a level crate, in order, each PASS or FAIL,
//! with the first failure explained and its hint named.
//!
//! Each gate is one `cargo test -p NAME --test harness -- basic::gateN` run in the workspace, so
//! what `check` reports is exactly what the test command says.

use std::path::Path;
use std::process::Command;

use backprop_core::hints::hint_for;

use crate::error::RunError;
use crate::new_level::{check_package_name, workspace_packages};
use crate::output::OutputError;

/// (test filter, what the gate asks), in order.
pub const GATES: [(&str, &str); 4] = [
    ("basic::gate1", "single layer backward"),
    ("basic::gate2", "multi-layer backward"),
    ("basic::gate3", "finite differences"),
    ("basic::gate4", "PyTorch parity"),
];

/// How one gate went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every test of the gate passed.
    Pass,
    /// A test failed: its panic message.
    Fail(String),
    /// The crate did not build: the compiler's message.
    DoesNotBuild(String),
}

/// Runs the four gates of `package` in the workspace at `root`, in order; stops after a gate
/// whose crate does not build (every later gate needs the build too).
///
/// # Errors
/// `package` is not a valid name or not a package of the workspace (nothing else goes to
/// cargo), or `cargo` could not be started.
pub fn run_gates(root: &Path, package: &str) -> Result<Vec<Outcome>, RunError> {
    check_package_name(package)?;
    let members = workspace_packages(root);
    if !members.iter().any(|member| member == package) {
        return Err(RunError::Flag(format!(
            "{package:?} is not a package of the workspace at {} (its packages: {}); make one \
             with: backprop new-level {package}",
            root.display(),
            members.join(", ")
        )));
    }
    let mut outcomes = Vec::new();
    for (filter, _) in GATES {
        let outcome = run_gate(root, package, filter)?;
        let stop = matches!(outcome, Outcome::DoesNotBuild(_));
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    Ok(outcomes)
}

/// Runs the four gates (as [`run_gates`]); returns the report to print and whether every gate
/// passed.
///
/// # Errors
/// `cargo` could not be started.
pub fn check(root: &Path, package: &str) -> Result<(String, bool), RunError> {
    let outcomes = run_gates(root, package)?;
    Ok((report(package, &outcomes), all_pass(&outcomes)))
}

/// True when all four gates ran and passed.
pub fn all_pass(outcomes: &[Outcome]) -> bool {
    outcomes.len() == GATES.len() && outcomes.iter().all(|outcome| *outcome == Outcome::Pass)
}

/// The text report: PASS or FAIL per gate, the first failure explained with its hint.
pub fn report(package: &str, outcomes: &[Outcome]) -> String {
    let mut report = String::new();
    let mut explained = false;
    for (number, ((filter, title), outcome)) in GATES.iter().zip(outcomes).enumerate() {
        let verdict = if *outcome == Outcome::Pass {
            "PASS"
        } else {
            "FAIL"
        };
        report.push_str(&format!("gate {}  {title:<22} {verdict}\n", number + 1));
        match outcome {
            Outcome::Pass => {}
            Outcome::DoesNotBuild(message) => {
                report.push_str(&indent(message));
                report.push_str("  fix the build first: every gate needs it\n");
            }
            Outcome::Fail(message) if !explained => {
                explained = true;
                report.push_str(&indent(message));
                report.push_str(&format!(
                    "  read: {}\n  rerun this gate alone: cargo test -p {package} {filter}\n",
                    hint_for(filter)
                ));
            }
            Outcome::Fail(_) => {}
        }
    }
    if all_pass(outcomes) {
        report.push_str(&format!(
            "all four gates pass; the whole suite: cargo test -p {package}\n"
        ));
    }
    report
}

/// The report as JSON: `{"package", "all_pass", "gates": [{"gate", "title", "filter", "result",
/// "message", "hint"}]}`, `result` one of `pass`, `fail`, `does not build`; gates after a build
/// failure are left out.
pub fn report_json(package: &str, outcomes: &[Outcome]) -> String {
    let gates: Vec<serde_json::Value> = GATES
        .iter()
        .zip(outcomes)
        .enumerate()
        .map(|(number, ((filter, title), outcome))| {
            let (result, message) = match outcome {
                Outcome::Pass => ("pass", None),
                Outcome::Fail(message) => ("fail", Some(message)),
                Outcome::DoesNotBuild(message) => ("does not build", Some(message)),
            };
            serde_json::json!({
                "gate": number + 1,
                "title": title,
                "filter": filter,
                "result": result,
                "message": message,
                "hint": hint_for(filter),
            })
        })
        .collect();
    serde_json::json!({
        "package": package,
        "all_pass": all_pass(outcomes),
        "gates": gates,
    })
    .to_string()
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// One gate: `cargo test`, then its verdict from the exit status and the output.
fn run_gate(root: &Path, package: &str, filter: &str) -> Result<Outcome, RunError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "-p", package, "--test", "harness", "--", filter])
        .current_dir(root)
        .env("RUST_BACKTRACE", "0")
        .output()
        .map_err(|error| OutputError::new(root, format!("cannot run cargo: {error}")))?;
    if output.status.success() {
        return Ok(Outcome::Pass);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A test's panic: "thread 'CHECK' (id) panicked at FILE:LINE:", then the message up to the
    // note about backtraces.
    let mut lines = stdout
        .lines()
        .chain(stderr.lines())
        .skip_while(|line| !line.contains("panicked at"));
    if let Some(first) = lines.next() {
        let check = first.split('\'').nth(1).unwrap_or(filter);
        let location = first.split("panicked at ").nth(1).unwrap_or("");
        let message: Vec<&str> = lines
            .take_while(|line| !line.starts_with("note:") && !line.trim().is_empty())
            .collect();
        return Ok(Outcome::Fail(format!(
            "{check} failed at {}\n{}",
            location.trim_end_matches(':'),
            message.join("\n")
        )));
    }
    // No test ran: the build failed (or the package does not exist); cargo says why on stderr.
    let problem: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error") || line.trim_start().starts_with("-->"))
        .take(8)
        .collect();
    Ok(Outcome::DoesNotBuild(problem.join("\n")))
}
