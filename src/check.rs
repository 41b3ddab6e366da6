//! `backprop check NAME`: the four success levels of a level crate, in order, each PASS or FAIL,
//! with the first failure explained and its hint named.
//!
//! Each gate is one `cargo test -p NAME --test harness -- basic::gateN` run in the workspace, so
//! what `check` reports is exactly what the test command says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use backprop_core::hints::{Mistake, hint_for, page};

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
    /// Not run, because the gate of this number (1-based) failed before it: the gates are
    /// climbed in order.
    NotRun(usize),
}

/// Runs the four gates of `package` in the workspace at `root`, in order, up to the first that
/// does not pass; the later ones are [`Outcome::NotRun`] (each gate builds on the one before).
///
/// # Errors
/// `package` is not a valid name or not a package of the workspace (nothing else goes to
/// cargo), or `cargo` could not be started.
pub fn run_gates(root: &Path, package: &str) -> Result<Vec<Outcome>, RunError> {
    check_package_name(package)?;
    let members = workspace_package_dirs(root);
    let Some((_, dir)) = members.iter().find(|(member, _)| member == package) else {
        let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        return Err(RunError::Argument(format!(
            "{package:?} is not a package of the workspace at {} (its packages: {}); make one \
             with: backprop new-level {package}",
            root.display(),
            names.join(", ")
        )));
    };
    if !dir.join("tests/harness.rs").is_file() {
        return Err(RunError::Argument(format!(
            "{package:?} is not a level crate: it has no tests/harness.rs (a level crate runs \
             the suite there with backprop_harness::suite!); make one with: backprop new-level \
             my-level"
        )));
    }
    let mut outcomes = Vec::new();
    let mut failed = None;
    for (number, (filter, _)) in GATES.iter().enumerate() {
        let outcome = match failed {
            Some(gate) => Outcome::NotRun(gate),
            None => run_gate(root, package, filter)?,
        };
        if failed.is_none() && outcome != Outcome::Pass {
            failed = Some(number + 1);
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// When a gate fails without naming a mistake: the edge checks, which test one promise each
/// (accumulation over two backwards, the ReLU at 0, huge logits, ...), run to see whether they
/// single one out. Returns the failing edge check's message when the edge checks that name a
/// mistake all name the same one, else `None` (no cause is better than a guessed one).
///
/// # Errors
/// `cargo` could not be started.
pub fn cause_of_failed_gate(
    root: &Path,
    package: &str,
    outcomes: &[Outcome],
) -> Result<Option<String>, RunError> {
    let Some(Outcome::Fail(message)) = outcomes.iter().find(|outcome| **outcome != Outcome::Pass)
    else {
        return Ok(None);
    };
    if named_mistake(message).is_some() {
        return Ok(None); // the gate's own message names it
    }
    let edge = group_failures(root, package, &["edge::"])?;
    Ok(single_named_cause(&edge).map(str::to_string))
}

/// The one failure among `failures` that names a mistake, when every failure naming one names
/// the same mistake.
fn single_named_cause(failures: &[String]) -> Option<&str> {
    let naming: Vec<&String> = failures
        .iter()
        .filter(|failure| named_mistake(failure).is_some())
        .collect();
    let first = naming.first()?;
    naming
        .iter()
        .all(|failure| named_mistake(failure) == named_mistake(first))
        .then_some(first.as_str())
}

/// The one mistake a failure message names ("likely mistake: HEADLINE"), read against the
/// harness's own table of mistakes ([`Mistake`]).
fn named_mistake(message: &str) -> Option<Mistake> {
    match Mistake::named_in(message).as_slice() {
        [mistake] => Some(*mistake),
        _ => None,
    }
}

/// True when all four gates ran and passed.
pub fn all_pass(outcomes: &[Outcome]) -> bool {
    outcomes.len() == GATES.len() && outcomes.iter().all(|outcome| *outcome == Outcome::Pass)
}

/// The text report: PASS, FAIL or "not run" per gate, the failure explained with its hint,
/// and with `cause` (an edge check's message naming the mistake, from
/// [`cause_of_failed_gate`]) when there is one: then the hint is the mistake's.
pub fn report(package: &str, outcomes: &[Outcome], cause: Option<&str>) -> String {
    let mut report = String::new();
    for (number, ((filter, title), outcome)) in GATES.iter().zip(outcomes).enumerate() {
        let verdict = match outcome {
            Outcome::Pass => "PASS".to_string(),
            Outcome::NotRun(failed) => format!("not run: gate {failed} failed"),
            _ => "FAIL".to_string(),
        };
        report.push_str(&format!("gate {}  {title:<22} {verdict}\n", number + 1));
        match outcome {
            Outcome::Pass | Outcome::NotRun(_) => {}
            Outcome::DoesNotBuild(message) => {
                report.push_str(&indent(message));
                report.push_str("  fix the build first: every gate needs it\n");
            }
            Outcome::Fail(message) => {
                report.push_str(&indent(message));
                let hint = match cause {
                    Some(cause) => {
                        report.push_str("  the edge checks single out the cause:\n");
                        report.push_str(&indent(&indent(cause)));
                        hint_for_failure("edge::", cause)
                    }
                    None => hint_for_failure(filter, message),
                };
                report.push_str(&format!(
                    "  read: {hint}\n  or a hint one step at a time: backprop hint gate{}\n  \
                     rerun this gate alone: cargo test -p {package} {filter}\n",
                    number + 1
                ));
            }
            Outcome::NoTests(message) => report.push_str(&indent(message)),
        }
    }
    report
}

/// The hint for a failed check, from the most specific evidence in its message: the page of the
/// mistake its diagnosis names, or the file a diagnosis without one names ("(read FILE)"); else the page of the layer whose source file panicked (the
/// location "failed at crates/NAME/src/FILE.rs:L:C", outside the harness); else the page of the
/// one layer or loss a gate's check is about; else the check group's page. A check of a whole
/// network names no layer: any layer can make its gradients wrong.
pub fn hint_for_failure(check: &str, message: &str) -> String {
    if let Some(mistake) = named_mistake(message) {
        return mistake.hint().to_string();
    }
    // A diagnosis that names no mistake still names the page of the layer it compared.
    if let Some((file, _)) = message
        .split_once("(read ")
        .and_then(|(_, rest)| rest.split_once(')'))
    {
        return file.to_string();
    }
    let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
    let location = first.split_once(" failed at ").map_or("", |(_, at)| at);
    let in_learner_source = !location.contains("crates/harness/") && !location.contains("/core/");
    let source_file = location
        .split(':')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .and_then(|file| file.strip_suffix(".rs"));
    if let Some(page) = source_file
        .filter(|_| in_learner_source)
        .and_then(|file| page_of_layer(&file.replace('_', " ")))
    {
        return page.to_string();
    }
    if !check.starts_with("basic::") {
        return hint_for(check).to_string(); // an edge, norm, stress or conv check: its group's page
    }
    // A gate's "CHECK, LAYER: TENSOR ...": the part before the first ": " says what it runs.
    let about = rest.lines().next().unwrap_or("");
    let about = about.split_once(": ").map_or(about, |(about, _)| about);
    let about = about.to_lowercase().replace('_', " ");
    let whole_network = ["mlp", "network", "steps", "accumulate", "clip", "cnn"]
        .iter()
        .any(|word| about.contains(word));
    match page_of_layer(&about).filter(|_| !whole_network) {
        Some(page) => page.to_string(),
        None => hint_for(check).to_string(),
    }
}

/// The hint page of the layer or loss that `text` names first (a source file's name with `_`
/// as spaces, or a check's words), if any.
fn page_of_layer(text: &str) -> Option<&'static str> {
    const PAGES: [(&str, &str); 14] = [
        ("conv2d", page::CONVOLUTION),
        ("max pool", page::CONVOLUTION),
        ("maxpool2d", page::CONVOLUTION),
        ("batch norm", page::NORMALIZATION),
        ("layer norm", page::NORMALIZATION),
        ("dropout", page::NORMALIZATION),
        ("linear", page::LINEAR_BACKWARD),
        ("relu", page::CHAIN_RULE),
        ("sigmoid", page::CHAIN_RULE),
        ("tanh", page::CHAIN_RULE),
        ("softmax", page::MATH_REFRESH),
        ("cross-entropy", page::MATH_REFRESH),
        ("cross entropy", page::MATH_REFRESH),
        ("mse", page::MATH_REFRESH),
    ];
    PAGES
        .iter()
        .filter_map(|(word, page)| text.find(word).map(|at| (at, *page)))
        .min()
        .map(|(_, page)| page)
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
    let failures = failures_in(&format!("{}\n{}", run.stdout, run.stderr));
    if !failures.is_empty() {
        return Ok(failures);
    }
    Ok(vec![failed_without_a_panic(package, filters, &run.stderr)])
}

/// The failure of a test run that ended without a test panic (an abort, a stack overflow, a
/// killed process, output in another format, a build error): its rerun line and cargo's last
/// lines, which say what happened.
fn failed_without_a_panic(package: &str, filters: &[&str], stderr: &str) -> String {
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "{} failed at cargo test -p {package} {}\nthe run failed without a test panic; cargo's \
         last lines:\n{}",
        filters.join(" "),
        filters.join(" "),
        tail.join("\n")
    )
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

/// Each failed test of cargo's output once, as "CHECK failed at FILE:LINE\nMESSAGE": the tests
/// libtest lists under its final "failures:", each with the last panic of its own thread (the
/// one that ended it: a check that catches the level's panic and then fails prints both). Panics
/// of other threads (a caught panic in a passing test, a thread a test spawned) are not failures
/// of their own. Without libtest's list (another output format), each named thread's last
/// panic.
fn failures_in(text: &str) -> Vec<String> {
    let panics = panics_in(text);
    let last_panic_of = |test: &str| {
        panics
            .iter()
            .rev()
            .find(|(thread, _)| thread == test)
            .map(|(_, failure)| failure.clone())
    };
    let listed = failed_tests(text);
    if !listed.is_empty() {
        return listed
            .iter()
            .map(|test| {
                // The test's own captured output holds the panics of the threads it spawned too.
                let own_section = captured_output(text, test).and_then(|section| {
                    let (_, failure) = panics_in(section).pop()?;
                    Some(failure.replacen("<unnamed>", test, 1))
                });
                own_section.or_else(|| last_panic_of(test)).unwrap_or_else(|| {
                    format!(
                        "{test} failed at its test\nno panic message of its own in cargo's output"
                    )
                })
            })
            .collect();
    }
    let mut threads: Vec<&str> = Vec::new();
    for (thread, _) in &panics {
        if thread != "<unnamed>" && !threads.contains(&thread.as_str()) {
            threads.push(thread);
        }
    }
    threads.into_iter().filter_map(last_panic_of).collect()
}

/// What libtest captured of `test`: the lines after "---- TEST stdout ----" up to the next
/// such header or the list of failures.
fn captured_output<'a>(text: &'a str, test: &str) -> Option<&'a str> {
    let header = format!("---- {test} stdout ----");
    let (_, after) = text.split_once(&header)?;
    let end = [after.find("\n---- "), after.find("\nfailures:")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(after.len());
    Some(&after[..end])
}

/// The test names libtest lists under "failures:" (indented, one a line, up to a blank line).
fn failed_tests(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != "failures:" {
            continue;
        }
        for name in lines.by_ref() {
            let Some(name) = name.strip_prefix("    ") else {
                break;
            };
            if name.is_empty() || name.contains(' ') {
                break;
            }
            if !names.iter().any(|known| known == name) {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Every panic in cargo's output, as (thread, "THREAD failed at FILE:LINE\nMESSAGE"): from
/// "thread 'THREAD' (id) panicked at FILE:LINE:", the message up to the note about backtraces
/// or a blank line.
fn panics_in(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut panics = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(location) = line.split("panicked at ").nth(1) else {
            continue;
        };
        let thread = line.split('\'').nth(1).unwrap_or("<unnamed>");
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
        panics.push((
            thread.to_string(),
            format!(
                "{thread} failed at {}\n{}",
                location.trim_end_matches(':'),
                message.join("\n")
            ),
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
            hint_for_failure(check, failure)
        ));
    }
    report
}

/// The report as JSON: `{"package", "all_pass", "gates": [{"gate", "title", "filter", "result",
/// "message", "hint", "cause"}], "beyond_gates": [failing edge/norm/stress messages], "conv":
/// [failing convolution messages]}`, `result` one of `pass`, `fail`, `does not build`, `no
/// tests`, `not run` (a gate before it failed); `cause` is the edge check's message that names
/// the failed gate's mistake, or null. `all_pass` is true only when the gates and every edge,
/// normalization, stress and convolution check pass.
pub fn report_json(
    package: &str,
    outcomes: &[Outcome],
    cause: Option<&str>,
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
                Outcome::Fail(message) => ("fail", Some(message.clone())),
                Outcome::DoesNotBuild(message) => ("does not build", Some(message.clone())),
                Outcome::NoTests(message) => ("no tests", Some(message.clone())),
                Outcome::NotRun(failed) => ("not run", Some(format!("gate {failed} failed"))),
            };
            let failed = matches!(outcome, Outcome::Fail(_));
            let hint = match (outcome, cause) {
                (Outcome::Fail(_), Some(cause)) => hint_for_failure("edge::", cause),
                (Outcome::Fail(message), None) => hint_for_failure(filter, message),
                _ => hint_for(filter).to_string(),
            };
            serde_json::json!({
                "gate": number + 1,
                "title": title,
                "filter": filter,
                "result": result,
                "message": message,
                "hint": hint,
                "cause": cause.filter(|_| failed),
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
    if let Some(first) = failures_in(&format!("{stdout}\n{stderr}"))
        .into_iter()
        .next()
    {
        return Ok(Outcome::Fail(first));
    }
    if stdout.contains("\nrunning ") || stdout.starts_with("running ") {
        // The tests were built and started, then the run failed without a test panic.
        return Ok(Outcome::Fail(failed_without_a_panic(
            package,
            &[filter],
            &stderr,
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

    /// libtest's output for three failing checks: one that caught the level's panic and then
    /// failed (two panics on its thread), one whose spawned thread panicked first, one plain.
    const THREE_FAILURES: &str = "running 4 tests\n\
        thread 'norm::one_row' (3) panicked at crates/learner/src/batch_norm.rs:40:9:\n\
        not yet implemented: BatchNorm::forward\n\
        note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\
        thread 'norm::one_row' (3) panicked at crates/harness/src/expect.rs:230:5:\n\
        batch norm on one row: panicked with \"not yet implemented\", but ...\n\
        thread '<unnamed>' (9) panicked at crates/learner/src/dropout.rs:12:5:\n\
        not yet implemented: Dropout::forward\n\
        thread 'norm::evaluation_mode' (4) panicked at crates/harness/src/norm.rs:99:5:\n\
        a worker thread panicked\n\
        thread 'norm::reference' (5) panicked at crates/learner/src/layer_norm.rs:7:9:\n\
        not yet implemented: LayerNorm::forward\n\
        \n\
        failures:\n\
        \n\
        failures:\n    norm::evaluation_mode\n    norm::one_row\n    norm::reference\n\
        \n\
        test result: FAILED. 1 passed; 3 failed; 0 ignored; 0 measured; 50 filtered out\n";

    #[test]
    fn each_failed_check_is_counted_once_under_its_own_runnable_name() {
        let failures = failures_in(THREE_FAILURES);
        let names: Vec<&str> = failures
            .iter()
            .map(|failure| failure.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["norm::evaluation_mode", "norm::one_row", "norm::reference"]
        );
        // The panic that ended the check, not the level's panic it caught.
        assert!(failures[1].contains("expect.rs:230:5"), "{}", failures[1]);
        let report = report_beyond_gates("learner", &failures);
        assert!(report.starts_with("gates pass, but: 3 edge/norm/stress checks fail\n"));
        assert!(!report.contains("<unnamed>"), "{report}");
        // A check whose spawned thread panicked (re-raised without a panic line of its own):
        // the panic in its captured output.
        let spawned = "---- conv::cnn stdout ----\n\
            thread '<unnamed>' (7) panicked at crates/learner/src/conv2d.rs:5:9:\n\
            not yet implemented: Conv2d::forward\n\nfailures:\n    conv::cnn\n\n";
        let failures = failures_in(spawned);
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].starts_with("conv::cnn failed at crates/learner/src/conv2d.rs:5:9\n"),
            "{}",
            failures[0]
        );
        // Without libtest's list: each named thread once, its last panic.
        let unlisted = THREE_FAILURES.split("\nfailures:").next().unwrap();
        assert_eq!(failures_in(unlisted).len(), 3);
    }

    #[test]
    fn gates_after_a_failed_one_say_they_did_not_run() {
        let outcomes = [
            Outcome::Fail("basic::gate1_single_layer_backward failed at x\nboom".into()),
            Outcome::NotRun(1),
            Outcome::NotRun(1),
            Outcome::NotRun(1),
        ];
        let text = report("learner", &outcomes, None);
        assert!(
            text.contains("gate 1  single layer backward  FAIL\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("not run: gate 1 failed\n").count(),
            3,
            "{text}"
        );
        assert!(!all_pass(&outcomes));
        let json = report_json("learner", &outcomes, None, &[], &[]);
        assert!(json.contains("\"result\":\"not run\""), "{json}");
    }

    #[test]
    fn an_edge_check_that_names_the_mistake_explains_a_gate_that_does_not() {
        let gate = "basic::gate4_pytorch_training failed at crates/harness/src/expect.rs:1:1\n\
            gate 4 (PyTorch parity), fixture accumulate_two_batches_relu_f64 (torch 2.5): \
            dL/dlinear0.weight [4, 3]: worst entry [0, 0]: ours 1, PyTorch 2\n  hint: hints/README.md";
        // A whole network's fixture names no layer page (its activation is not the culprit).
        assert_eq!(
            hint_for_failure("basic::gate4", gate),
            "hints/gate4-pytorch.md"
        );
        let accumulate = "edge::gradients_accumulate_until_zero_grad failed at x.rs:1:1\n\
            dL/dlinear0.weight: worst entry\n  likely mistake: = where += belongs: ... (read hints/edge.md)";
        let unnamed = "edge::zero_inputs failed at x.rs:1:1\nwhat differs: ...";
        let failures = [unnamed.to_string(), accumulate.to_string()];
        assert_eq!(single_named_cause(&failures), Some(accumulate));
        let other = "edge::relu failed at x\n  likely mistake: a flipped sign: ... (read hints/math-refresh.md)";
        let disagreeing = [accumulate.to_string(), other.to_string()];
        assert_eq!(single_named_cause(&disagreeing), None);
        let outcomes = [
            Outcome::Pass,
            Outcome::Pass,
            Outcome::Pass,
            Outcome::Fail(gate.into()),
        ];
        let text = report("learner", &outcomes, Some(accumulate));
        assert!(
            text.contains("the edge checks single out the cause:\n    edge::gradients_accumulate")
                && text.contains("= where += belongs")
                && text.contains("  read: hints/edge.md\n"),
            "{text}"
        );
    }

    #[test]
    fn a_panic_in_a_layers_file_points_to_that_layers_page() {
        let panic = "basic::gate1_single_layer_backward failed at \
            crates/learner/src/softmax_cross_entropy.rs:31:22\nattempt to subtract with overflow";
        assert_eq!(
            hint_for_failure("basic::gate1", panic),
            "hints/math-refresh.md"
        );
        let in_norm =
            "norm::one_row failed at crates/learner/src/batch_norm.rs:3:3\nindex out of bounds";
        assert_eq!(
            hint_for_failure("norm::one_row", in_norm),
            "hints/hint-4-normalization.md"
        );
        // The harness's own assertion is not the layer's file.
        let assertion = "edge::x failed at crates/harness/src/edge.rs:9:9\nrelu of NaN gave 0";
        assert_eq!(hint_for_failure("edge::x", assertion), "hints/edge.md");
    }

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
        let bytes: usize = panics.iter().map(|(_, failure)| failure.len()).sum();
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
        let failures = failures_in(cargo_output);
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
