//! `backprop check NAME`: the four success levels of a level crate, in order, each PASS or FAIL,
//! with the first failure explained and its hint named.
//!
//! Each gate is one `cargo test -p NAME --test harness -- basic::gateN` run in the workspace, so
//! what `check` reports is exactly what the test command says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use backprop_core::hints::hint_for;

use crate::error::RunError;
use crate::new_level::{check_package_name, workspace_package_dirs};
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
    /// cargo ran and passed, but no test matched the gate: what it ran.
    NoTests(String),
}

/// Runs the four gates of `package` in the workspace at `root`, in order; stops after a gate
/// whose crate does not build (every later gate needs the build too).
///
/// # Errors
/// `package` is not a valid name or not a package of the workspace (nothing else goes to
/// cargo), or `cargo` could not be started.
pub fn run_gates(root: &Path, package: &str) -> Result<Vec<Outcome>, RunError> {
    check_package_name(package)?;
    let members = workspace_package_dirs(root);
    let Some((_, dir)) = members.iter().find(|(member, _)| member == package) else {
        let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        return Err(RunError::Flag(format!(
            "{package:?} is not a package of the workspace at {} (its packages: {}); make one \
             with: backprop new-level {package}",
            root.display(),
            names.join(", ")
        )));
    };
    if !dir.join("tests/harness.rs").is_file() {
        return Err(RunError::Flag(format!(
            "{package:?} is not a level crate: it has no tests/harness.rs (a level crate runs \
             the suite there with backprop_harness::suite!); make one with: backprop new-level \
             my-level"
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
                    "  read: {}\n  or a hint one step at a time: backprop hint gate{}\n  rerun \
                     this gate alone: cargo test -p {package} {filter}\n",
                    hint_for_failure(filter, message),
                    number + 1
                ));
            }
            Outcome::Fail(_) => {}
            Outcome::NoTests(message) => report.push_str(&indent(message)),
        }
    }
    report
}

/// The hint for a failed check: the one its diagnosis names ("(read FILE)"), else the page of
/// the layer its message is about, else the check group's.
pub fn hint_for_failure(check: &str, message: &str) -> String {
    if let Some((file, _)) = message
        .split_once("(read ")
        .and_then(|(_, rest)| rest.split_once(')'))
    {
        return file.to_string();
    }
    // The line after "CHECK failed at FILE:LINE" says which layer or loss went wrong.
    let about = message.lines().nth(1).unwrap_or(message).to_lowercase();
    let by_layer = [
        ("conv2d", "hints/hint-5-convolution.md"),
        ("maxpool2d", "hints/hint-5-convolution.md"),
        ("linear", "hints/hint-2-linear-backward.md"),
        ("relu", "hints/hint-1-chain-rule.md"),
        ("sigmoid", "hints/hint-1-chain-rule.md"),
        ("tanh", "hints/hint-1-chain-rule.md"),
        ("cross-entropy", "hints/math-refresh.md"),
        ("mse", "hints/math-refresh.md"),
    ];
    by_layer
        .iter()
        .filter_map(|(word, hint)| about.find(word).map(|at| (at, hint)))
        .min()
        .map_or_else(|| hint_for(check).to_string(), |(_, hint)| hint.to_string())
}

/// Runs the edge, normalization and stress checks of `package` (the promises beyond the four
/// gates: large inputs, memory layouts, NaN, zero_grad, target shapes, batch norm, layer norm
/// and dropout, deep nets, allocations); returns
/// each failing check's message, `"CHECK failed at FILE:LINE\nMESSAGE"`.
///
/// # Errors
/// `cargo` could not be started.
pub fn run_beyond_gates(root: &Path, package: &str) -> Result<Vec<String>, RunError> {
    group_failures(root, package, &["edge::", "norm::", "stress::"])
}

/// The failures of `cargo test -p PACKAGE --test harness -- FILTERS`: each test panic, or,
/// when the run failed without one (an abort, a stack overflow, a killed process, output in
/// another format), one failure quoting cargo's last lines; and one when no test ran at all.
/// Never an empty list for something that did not run.
fn group_failures(root: &Path, package: &str, filters: &[&str]) -> Result<Vec<String>, RunError> {
    let run = cargo_test(root, package, filters)?;
    let rerun = format!("cargo test -p {package} {}", filters.join(" "));
    if run.passed {
        return Ok(match tests_run(&run.stdout) {
            0 => vec![format!(
                "{} failed at {rerun}\nno test ran: the crate's tests/harness.rs must call \
                 backprop_harness::suite!",
                filters.join(" ")
            )],
            _ => Vec::new(),
        });
    }
    let panics = panics_in(&format!("{}\n{}", run.stdout, run.stderr));
    if !panics.is_empty() {
        return Ok(panics);
    }
    let tail: Vec<&str> = run.stderr.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Ok(vec![format!(
        "{} failed at {rerun}\nthe run failed without a test panic; cargo's last lines:\n{}",
        filters.join(" "),
        tail.join("\n")
    )])
}

/// Runs the convolution group of `package` (`conv::`, the layers after normalization); returns
/// each failing check's message as [`run_beyond_gates`] does. A run that fails without a test
/// panic (a build error, an abort, a killed process) is one failure quoting cargo's last lines:
/// never a pass.
///
/// # Errors
/// `cargo` could not be started.
pub fn run_conv_group(root: &Path, package: &str) -> Result<Vec<String>, RunError> {
    group_failures(root, package, &["conv::"])
}

/// What follows a green report of the gates and the edge, normalization and stress checks:
/// the convolution group, either green too or named as the next step with its first failure.
pub fn report_conv_group(package: &str, failures: &[String]) -> String {
    let Some(first) = failures.first() else {
        return "and every convolution check: the whole suite is green\n".to_string();
    };
    let mut report = format!(
        "next: the convolution group (conv::), {} check{} fail{}: Conv2d and MaxPool2d in \
         conv2d.rs and max_pool.rs\n",
        failures.len(),
        if failures.len() == 1 { "" } else { "s" },
        if failures.len() == 1 { "s" } else { "" }
    );
    report.push_str(&indent(first));
    let check = first.split(' ').next().unwrap_or("conv::");
    report.push_str(&format!(
        "  read: {}\n  or a hint one step at a time: backprop hint conv\n  rerun the group: \
         cargo test -p {package} conv::\n",
        hint_for_failure(check, first)
    ));
    report
}

/// Every test panic in cargo's output: "thread 'CHECK' (id) panicked at FILE:LINE:", then the
/// message up to the note about backtraces or a blank line.
fn panics_in(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut panics = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(location) = line.split("panicked at ").nth(1) else {
            continue;
        };
        let check = line.split('\'').nth(1).unwrap_or("a check");
        // Up to the next panic at most: linear in the output, however many panics follow.
        let message: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|line| {
                !line.starts_with("note:")
                    && !line.trim().is_empty()
                    && !line.contains("panicked at ")
            })
            .copied()
            .collect();
        panics.push(format!(
            "{check} failed at {}\n{}",
            location.trim_end_matches(':'),
            message.join("\n")
        ));
    }
    panics
}

/// What follows the gates' report when all four pass: the edge, norm and stress checks that still
/// fail ("gates pass, but: ..."), each with its hint, or that the whole suite passes.
pub fn report_beyond_gates(package: &str, failures: &[String]) -> String {
    if failures.is_empty() {
        return format!(
            "all four gates pass, and every edge, normalization and stress check \
             (cargo test -p {package})\n"
        );
    }
    let mut report = format!(
        "gates pass, but: {} edge/norm/stress check{} fail{}\n",
        failures.len(),
        if failures.len() == 1 { "" } else { "s" },
        if failures.len() == 1 { "s" } else { "" }
    );
    for failure in failures {
        let check = failure.split(' ').next().unwrap_or_default();
        report.push_str(&indent(failure));
        report.push_str(&format!(
            "  read: {}\n  rerun it alone: cargo test -p {package} {check}\n",
            hint_for(check)
        ));
    }
    report
}

/// The report as JSON: `{"package", "all_pass", "gates": [{"gate", "title", "filter", "result",
/// "message", "hint"}], "beyond_gates": [failing edge/norm/stress messages], "conv": [failing
/// convolution messages]}`, `result` one of `pass`, `fail`, `does not build`; gates after a
/// build failure are left out. `all_pass` is true only when the gates and every edge,
/// normalization, stress and convolution check pass.
pub fn report_json(
    package: &str,
    outcomes: &[Outcome],
    beyond_gates: &[String],
    conv: &[String],
) -> String {
    let gates: Vec<serde_json::Value> = GATES
        .iter()
        .zip(outcomes)
        .enumerate()
        .map(|(number, ((filter, title), outcome))| {
            let (result, message) = match outcome {
                Outcome::Pass => ("pass", None),
                Outcome::Fail(message) => ("fail", Some(message)),
                Outcome::DoesNotBuild(message) => ("does not build", Some(message)),
                Outcome::NoTests(message) => ("no tests", Some(message)),
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
        "all_pass": all_pass(outcomes) && beyond_gates.is_empty() && conv.is_empty(),
        "gates": gates,
        "beyond_gates": beyond_gates,
        "conv": conv,
    })
    .to_string()
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// One gate: `cargo test`, then its verdict from the exit status and the output.
fn run_gate(root: &Path, package: &str, filter: &str) -> Result<Outcome, RunError> {
    let TestRun {
        passed,
        stdout,
        stderr,
    } = cargo_test(root, package, &[filter])?;
    if passed {
        return Ok(match tests_run(&stdout) {
            0 => Outcome::NoTests(format!(
                "no test matched: cargo test -p {package} {filter} ran nothing (the crate's \
                 tests/harness.rs must call backprop_harness::suite!)"
            )),
            _ => Outcome::Pass,
        });
    }
    if let Some(first) = panics_in(&format!("{stdout}\n{stderr}")).into_iter().next() {
        return Ok(Outcome::Fail(first));
    }
    // No test ran: the build failed (or the package does not exist); cargo says why on stderr.
    let problem: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error") || line.trim_start().starts_with("-->"))
        .take(8)
        .collect();
    Ok(Outcome::DoesNotBuild(problem.join("\n")))
}

/// What one `cargo test` said.
struct TestRun {
    /// It exited with success.
    passed: bool,
    stdout: String,
    stderr: String,
}

/// The tests that ran, as libtest counts them: the passed and failed of every
/// "test result: ..." line.
fn tests_run(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("test result: "))
        .flat_map(|counts| {
            counts.split(';').filter_map(|count| {
                let (number, what) = count.trim().rsplit_once(' ')?;
                let number = number.rsplit(' ').next()?.parse::<usize>().ok()?;
                matches!(what, "passed" | "failed").then_some(number)
            })
        })
        .sum()
}

/// `cargo test -p PACKAGE --test harness -- FILTERS`.
fn cargo_test(root: &Path, package: &str, filters: &[&str]) -> Result<TestRun, RunError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "-p", package, "--test", "harness", "--"])
        .args(filters)
        .current_dir(root)
        .env("RUST_BACKTRACE", "0")
        .output()
        .map_err(|error| OutputError::new(root, format!("cannot run cargo: {error}")))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(TestRun {
        passed: output.status.success(),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
    })
}

/// Every file under a folder with its length and modification time, sorted: what `check
/// --watch` compares to see an edit.
pub type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The files under `dir`, recursively (unreadable entries are left out).
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut files = Snapshot::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => folders.push(entry.path()),
                Ok(meta) => files.push((entry.path(), meta.len(), meta.modified().ok())),
                Err(_) => {}
            }
        }
    }
    files.sort();
    files
}

/// Blocks until the files under `dir` differ from `before` and then stay unchanged for a
/// moment (an editor's save can be several writes); returns the new snapshot.
pub fn wait_for_change(dir: &Path, before: &Snapshot) -> Snapshot {
    const POLL: Duration = Duration::from_millis(300);
    let mut current = snapshot(dir);
    while current == *before {
        std::thread::sleep(POLL);
        current = snapshot(dir);
    }
    loop {
        std::thread::sleep(POLL);
        let settled = snapshot(dir);
        if settled == current {
            return settled;
        }
        current = settled;
    }
}

#[cfg(test)]
mod beyond_gates_tests {
    use super::*;

    #[test]
    fn libtest_counts_are_read_from_its_result_lines() {
        let ran = "running 3 tests\n...\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 \
                   measured; 58 filtered out; finished in 0.10s\n";
        assert_eq!(tests_run(ran), 3);
        let failed = "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 \
                      filtered out; finished in 0.10s\n";
        assert_eq!(tests_run(failed), 3);
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 \
                    measured; 61 filtered out; finished in 0.00s\n";
        assert_eq!(tests_run(none), 0);
        assert_eq!(tests_run("error: no test target named `harness`"), 0);
    }

    #[test]
    fn consecutive_panic_lines_are_read_in_linear_memory() {
        let count = 20_000;
        let text = "thread 'a' (1) panicked at x.rs:1:1:\n".repeat(count);
        let panics = panics_in(&text);
        assert_eq!(panics.len(), count);
        // Each message stops at the next panic: about 22 bytes each, not the rest of the text.
        let bytes: usize = panics.iter().map(String::len).sum();
        assert!(bytes < 40 * count, "{bytes} bytes");
    }

    #[test]
    fn a_package_without_the_suite_is_not_a_level_crate() {
        let root = tempfile::Builder::new()
            .prefix("backprop-check-")
            .tempdir()
            .unwrap();
        let core = root.path().join("crates/backprop-core");
        std::fs::create_dir_all(&core).unwrap();
        std::fs::write(
            root.path().join("Cargo.toml"),
            "[package]\nname = \"top\"\n",
        )
        .unwrap();
        std::fs::write(
            core.join("Cargo.toml"),
            "[package]\nname = \"backprop-core\"\n",
        )
        .unwrap();
        let error = run_gates(root.path(), "backprop-core")
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a level crate"), "{error}");
        assert!(error.contains("tests/harness.rs"), "{error}");
    }

    /// `--watch` wakes on an edit in a subfolder and returns once the files settle.
    #[test]
    fn an_edit_under_the_watched_folder_ends_the_wait() {
        let scratch = tempfile::Builder::new()
            .prefix("backprop-watch-")
            .tempdir()
            .unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/layer.rs"), "fn a() {}").unwrap();
        let before = snapshot(dir);
        assert_eq!(before.len(), 1);
        let file = dir.join("nested/layer.rs");
        let editor = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            std::fs::write(file, "fn a() { todo!() }").unwrap();
        });
        let after = wait_for_change(dir, &before);
        editor.join().unwrap();
        assert_ne!(after, before);
        assert_eq!(after, snapshot(dir));
    }

    #[test]
    fn failing_edge_checks_are_reported_after_passing_gates_with_their_hints() {
        // What `cargo test` prints for two failing checks (the ReLU that turns NaN into 0).
        let cargo_output = "running 2 tests\n\
            thread 'edge::activations_propagate_nan' (7) panicked at crates/harness/src/edge.rs:9:9:\n\
            relu of NaN gave 0, not NaN\n\
            note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\
            thread 'stress::deep_tanh_mlp_passes_finite_differences' (8) panicked at x.rs:1:2:\n\
            dL/dinput: worst entry [0, 1]\n\n\
            failures:\n";
        let failures = panics_in(cargo_output);
        assert_eq!(failures.len(), 2);
        let report = report_beyond_gates("my-level", &failures);
        assert!(
            report.starts_with("gates pass, but: 2 edge/norm/stress checks fail\n"),
            "{report}"
        );
        assert!(
            report.contains(
                "  edge::activations_propagate_nan failed at crates/harness/src/edge.rs:9:9\n  \
             relu of NaN gave 0, not NaN\n  read: hints/edge.md\n  rerun it alone: cargo test \
             -p my-level edge::activations_propagate_nan\n"
            ),
            "{report}"
        );
        assert!(report.contains("read: hints/stress.md"), "{report}");
        // A gate's failure reads the page of the layer that failed, not always the Linear's.
        let sigmoid = "basic::gate1_single_layer_backward failed at x.rs:1:1\n\
            gate 1 (single layer backward), sigmoid: dL/dinput [4, 3]: worst entry [0, 0]";
        assert_eq!(
            hint_for_failure("basic::gate1", sigmoid),
            "hints/hint-1-chain-rule.md"
        );
        let loss = "basic::gate1 failed at x.rs:1:1\ngate 1 (single layer backward), mse: dL/dp";
        assert_eq!(
            hint_for_failure("basic::gate1", loss),
            "hints/math-refresh.md"
        );
        let diagnosed =
            "c failed at x\nLinear(4, 4): dL/dbias\n  likely mistake: ... (read hints/edge.md)";
        assert_eq!(hint_for_failure("basic::gate1", diagnosed), "hints/edge.md");
        assert!(!report.contains("all four gates pass"), "{report}");
        let green = report_beyond_gates("my-level", &[]);
        assert!(
            green.contains("every edge, normalization and stress check"),
            "{green}"
        );
        // Then the convolution group: green, or named as the next step with its hint.
        assert!(report_conv_group("my-level", &[]).contains("the whole suite is green"));
        let conv = "conv::conv2d_matches_hand_computation failed at x.rs:1:1\n\
            not yet implemented: Conv2d::forward";
        let next = report_conv_group("my-level", &[conv.to_string()]);
        assert!(
            next.starts_with("next: the convolution group (conv::), 1 check fails")
                && next.contains("read: hints/hint-5-convolution.md")
                && next.contains("backprop hint conv")
                && next.contains("cargo test -p my-level conv::"),
            "{next}"
        );
    }
}
