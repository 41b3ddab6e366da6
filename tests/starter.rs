//! The starter crate, as a learner gets it: `backprop new-level` copies it, it compiles, every
//! gate fails with "not yet implemented" and the hint to read (`backprop check` says so gate by
//! gate), and the same crate filled with level02's code passes the whole harness, trains,
//! evaluates and benches through its own example and bench, with no edit outside its folder.
//!
//! The learner's crate lives in a scratch workspace whose manifest is this one's `[workspace]`
//! and `[profile]` sections (dependencies by absolute path, the same Cargo.lock, `--offline`), and
//! it builds into this workspace's target folder, so no registry dependency compiles again
//! (checked: one built with other features would rebuild the whole workspace above it, for a
//! learner as for this test; `crates/workspace-hack` keeps the features the same). This
//! workspace's own crates do compile again, once for both tests: cargo names a path dependency
//! outside the building workspace by its absolute path, inside it by its relative one. So the
//! scratch manifest leaves out their opt-level settings, and they build at the "*" default (a
//! learner's crate inside this workspace reuses them as built).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::Scratch;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A workspace in a temporary folder (named after `tag`) with a copy of this one's `templates/`.
fn scratch_workspace(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("starter-{tag}"));
    fs::create_dir_all(dir.join("crates")).unwrap();
    let manifest = fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let members = workspace_packages();
    let mut kept = String::new();
    let mut keep = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            let own_crate = line
                .strip_prefix("[profile.dev.package.")
                .and_then(|rest| rest.strip_suffix(']'))
                .is_some_and(|name| members.iter().any(|member| member == name));
            keep = (line.starts_with("[workspace") || line.starts_with("[profile")) && !own_crate;
        }
        if keep {
            let line = line
                .replace("path = \"crates/", &format!("path = \"{ROOT}/crates/"))
                .replace("path = \".\"", &format!("path = \"{ROOT}\""));
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    fs::write(dir.join("Cargo.toml"), kept).unwrap();
    fs::copy(Path::new(ROOT).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    copy_folder(&Path::new(ROOT).join("templates"), &dir.join("templates"));
    dir
}

/// Copies `from` into `to`, folders and files (a copy rather than a link: links need rights on
/// Windows).
fn copy_folder(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// This workspace's target folder (the test binary sits in `<target>/debug/deps/`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// `backprop check learner` in the scratch workspace: (exit status success, stdout).
fn backprop_check(workspace: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["check", "learner", "--root"])
        .arg(workspace)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("backprop runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), text)
}

/// What `check --watch` prints after each report.
const WATCHING: &str = "watching ";

/// `backprop check learner --watch` in the scratch workspace, its stdout gathered as it comes;
/// killed when dropped.
struct Watcher {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Watcher {
    fn start(workspace: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_backprop"))
            .args(["check", "learner", "--watch", "--root"])
            .arg(workspace)
            .env("CARGO_TARGET_DIR", target_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("backprop runs");
        let output = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(read @ 1..) = stdout.read(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        Watcher { child, output }
    }

    /// Waits until `reports` reports are printed (each ends in the "watching" line); returns
    /// everything printed so far.
    fn wait_for_reports(&self, reports: usize) -> String {
        let start = Instant::now();
        loop {
            let text = self.output.lock().unwrap().clone();
            if text.matches(WATCHING).count() >= reports {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "check --watch printed fewer than {reports} reports in 10 minutes:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cargo_test(workspace: &Path, package: &str, filter: &[&str]) -> (Output, String) {
    let args = [&["test", "-p", package, "--test", "harness", "--"], filter].concat();
    cargo(workspace, &args)
}

/// `cargo ARGS --offline` in `workspace`, building into this workspace's target folder:
/// (output, stdout and stderr as text).
fn cargo(workspace: &Path, args: &[&str]) -> (Output, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(&args[..1])
        .arg("--offline")
        .args(&args[1..])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// The last report of `check --watch`'s output: what follows the last screen clear.
fn last_report(printed: &str) -> &str {
    let (_, last) = printed
        .rsplit_once("\x1b[2J\x1b[H")
        .unwrap_or_else(|| panic!("no screen cleared between two reports:\n{printed}"));
    last
}

/// This workspace's package names: the root package and each crate under `crates/`.
fn workspace_packages() -> Vec<String> {
    let mut names = vec!["backprop".to_string()];
    for entry in fs::read_dir(Path::new(ROOT).join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest) {
            let name = text
                .lines()
                .find_map(|line| line.strip_prefix("name = \""))
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or_else(|| panic!("no package name in {}", manifest.display()));
            names.push(name.to_string());
        }
    }
    names
}

/// The registry packages cargo compiled (none: every one was built by this workspace's own
/// build, with the same features), from its `Compiling NAME vX (...)` lines; a path package
/// (the learner's or this workspace's own) is shown as `(PATH)` after the version.
fn compiled_registry_packages(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("Compiling "))
        .filter(|rest| !rest.ends_with(')'))
        .collect()
}

/// The packages cargo compiled, from its `Compiling NAME vX (...)` lines.
fn compiled_packages(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// `git ARGS` in `dir`; panics unless it succeeds, returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=starter test",
            "-c",
            "user.email=starter@test.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_starter_fails_every_gate_with_a_hint_and_passes_when_filled_with_level02() {
    let workspace = scratch_workspace("gates");
    // 1. `backprop new-level` makes crates/learner and says what to run next.
    let created = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["new-level", "learner", "--root"])
        .arg(&workspace)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(said.contains("next: cargo test -p learner gate1"), "{said}");
    let crate_dir = workspace.join("crates/learner");
    let manifest = fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"learner\""), "{manifest}");

    // 2. As shipped it compiles, with every registry dependency as the workspace built it.
    // Each gate fails on a todo!() that names its hint.
    let (output, text) = cargo_test(&workspace, "learner", &["gate"]);
    assert!(compiled_packages(&text).contains(&"learner"), "{text}");
    assert!(compiled_registry_packages(&text).is_empty(), "{text}");
    assert!(
        !output.status.success(),
        "the starter passed its gates:\n{text}"
    );
    for gate in ["gate1", "gate2", "gate3", "gate4"] {
        assert!(
            text.contains(&format!("basic::{gate}")),
            "{gate} did not run:\n{text}"
        );
    }
    assert!(
        text.contains("not yet implemented: Linear::")
            && text.contains("hints/hint-2-linear-backward.md"),
        "{text}"
    );
    assert!(text.contains("0 passed"), "{text}");

    // `backprop check --watch`: the four gates in order, gate 1 FAIL and explained, the others
    // not run; then it waits for an edit.
    let watcher = Watcher::start(&workspace);
    let report = watcher.wait_for_reports(1);
    let verdicts: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("gate "))
        .collect();
    assert_eq!(verdicts.len(), 4, "{report}");
    assert!(verdicts[0].ends_with("FAIL"), "{report}");
    assert!(
        verdicts[1..]
            .iter()
            .all(|line| line.ends_with("not run: gate 1 failed")),
        "{report}"
    );
    assert!(
        verdicts[0].starts_with("gate 1  single layer backward"),
        "{report}"
    );
    assert!(
        report.contains("basic::gate1_single_layer_backward failed at")
            && report.contains("not yet implemented: Linear::"),
        "{report}"
    );
    assert_eq!(report.matches("read: ").count(), 1, "{report}");
    assert!(
        report.contains("read: hints/hint-2-linear-backward.md"),
        "{report}"
    );

    // 3. Filled with level02's layers (its marker renamed) but for the convolution: gates 1-4
    // and every edge, normalization and stress check pass with the conv stubs still todo!(),
    // and the report names the convolution group as the next step.
    let level02 = Path::new(ROOT).join("crates/level02/src");
    let fill = |only_conv: bool| {
        for entry in fs::read_dir(&level02).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap();
            let is_conv = file == "conv2d.rs" || file == "max_pool.rs";
            if is_conv != only_conv {
                continue;
            }
            let code = fs::read_to_string(&path)
                .unwrap()
                .replace("Level02", "MyLevel")
                .replace("level02", "learner");
            fs::write(crate_dir.join("src").join(file), code).unwrap();
        }
    };
    fill(false);
    // The edit wakes the watcher: it clears the screen and reruns.
    let two = watcher.wait_for_reports(2);
    let (_, second) = two
        .split_once(WATCHING)
        .and_then(|(_, rest)| rest.split_once("\x1b[2J\x1b[H"))
        .unwrap_or_else(|| panic!("no screen cleared between the two reports:\n{two}"));
    assert_eq!(second.matches(" PASS\n").count(), 4, "{second}");
    assert!(
        second.contains("every edge, normalization and stress check")
            && second.contains("next: the convolution group (conv::)")
            && second.contains("not yet implemented: Conv2d::")
            && second.contains("read: hints/hint-5-convolution.md")
            && !second.contains("the whole suite is green"),
        "{second}"
    );
    // 4. conv2d.rs and max_pool.rs filled too, but with `=` where `+=` belongs in Linear's dW
    // (one save): gate 4 fails on a fixture that cannot tell why, and check shows the edge
    // check that names the mistake, and its page.
    let linear = crate_dir.join("src/linear.rs");
    let right = fs::read_to_string(&linear).unwrap();
    let added = "self.grad_weight += &input.t().dot(&grad_output);";
    assert!(right.contains(added), "{right}");
    let assigned = "self.grad_weight = input.t().dot(&grad_output);";
    fill(true);
    fs::write(&linear, right.replace(added, assigned)).unwrap();
    let three = watcher.wait_for_reports(3);
    let report = last_report(&three);
    assert_eq!(report.matches(" PASS\n").count(), 3, "{report}");
    assert!(
        report.contains("gate 4  PyTorch parity         FAIL")
            && report.contains("the edge checks single out the cause:")
            && report.contains("likely mistake: = where += belongs")
            && report.contains("  read: hints/edge.md\n"),
        "{report}"
    );
    println!("check with dW assigned:\n{report}");
    // 5. dW fixed: the whole suite is green.
    fs::write(&linear, &right).unwrap();
    let four = watcher.wait_for_reports(4);
    drop(watcher);
    let rerun = last_report(&four);
    assert_eq!(rerun.matches(" PASS\n").count(), 4, "{rerun}");
    assert!(rerun.contains("the whole suite is green"), "{rerun}");
    let (output, text) = cargo_test(&workspace, "learner", &[]);
    assert!(
        output.status.success(),
        "the filled starter failed:\n{text}"
    );
    assert!(
        text.contains("test result: ok") && !text.contains(" 0 passed"),
        "{text}"
    );
    let json = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["check", "learner", "--json", "--root"])
        .arg(&workspace)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("check --json");
    assert_eq!(value["all_pass"], true, "{value}");
    assert_eq!(value["gates"].as_array().map(Vec::len), Some(4), "{value}");
}

#[test]
fn a_filled_starter_trains_evaluates_and_benches_with_no_edit_outside_its_crate() {
    let workspace = scratch_workspace("everywhere");
    git(&workspace, &["init", "--quiet"]);
    git(&workspace, &["add", "--all"]);
    git(
        &workspace,
        &["commit", "--quiet", "--message", "before new-level"],
    );
    let created = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["new-level", "my-level", "--root"])
        .arg(&workspace)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let said = String::from_utf8_lossy(&created.stdout);
    assert!(
        said.contains("cargo run -p my-level --release --example backprop -- train"),
        "{said}"
    );
    // The learner's code: level02's files, its marker renamed.
    let crate_dir = workspace.join("crates/my-level");
    for entry in fs::read_dir(Path::new(ROOT).join("crates/level02/src")).unwrap() {
        let path = entry.unwrap().path();
        let code = fs::read_to_string(&path)
            .unwrap()
            .replace("Level02", "MyLevel")
            .replace("level02", "my_level")
            .replace("\"my_level\"", "\"my-level\"");
        fs::write(crate_dir.join("src").join(path.file_name().unwrap()), code).unwrap();
    }

    // 1. Train one epoch through the learner's own example, then evaluate what it saved.
    let out = Scratch::new("starter-run");
    let out_text = out.to_str().unwrap();
    let data = format!("{ROOT}/data/mnist");
    let example = ["run", "-p", "my-level", "--example", "backprop", "--"];
    let train = [
        "train", "--epochs", "1", "--limit", "2000", "--data", &data, "--out", out_text,
    ];
    let (output, text) = cargo(&workspace, &[&example[..], &train].concat());
    assert!(output.status.success(), "{text}");
    assert!(compiled_packages(&text).contains(&"my-level"), "{text}");
    assert!(compiled_registry_packages(&text).is_empty(), "{text}");
    let accuracy = text
        .lines()
        .find_map(|line| line.strip_prefix("test accuracy "))
        .unwrap_or_else(|| panic!("no test accuracy printed:\n{text}"));
    let percent: f64 = accuracy.split('%').next().unwrap().parse().unwrap();
    assert!(percent > 50.0, "one epoch on 2,000 images: {accuracy}");
    assert!(
        fs::read_to_string(out.join("config.json"))
            .unwrap()
            .contains("\"level\": \"my-level\""),
        "config.json names the learner's level"
    );
    let model = out.join("model.npz");
    let eval = ["eval", "--model", model.to_str().unwrap(), "--data", &data];
    let (output, text) = cargo(&workspace, &[&example[..], &eval].concat());
    assert!(
        output.status.success() && text.contains("test accuracy"),
        "{text}"
    );
    drop(out);

    // 2. Its bench: run as a test (no --bench), the quick table with the learner's rows.
    let (output, text) = cargo(
        &workspace,
        &["test", "-p", "my-level", "--bench", "throughput"],
    );
    assert!(output.status.success(), "{text}");
    assert!(compiled_packages(&text).contains(&"my-level"), "{text}");
    assert!(compiled_registry_packages(&text).is_empty(), "{text}");
    for level in ["floor", "level02", "level03", "my-level"] {
        assert!(
            text.lines()
                .filter(|line| line.starts_with(&format!("| {level} ")))
                .count()
                == 2,
            "a step row and an epoch row for {level}:\n{text}"
        );
    }

    // 3. Nothing changed outside crates/my-level but cargo's own lock file, which gained the
    //    new package's entry and nothing else.
    let status = git(
        &workspace,
        &["status", "--porcelain", "--untracked-files=all"],
    );
    for line in status.lines() {
        let path = &line[3..];
        assert!(
            path.starts_with("crates/my-level/") || path == "Cargo.lock",
            "changed outside crates/my-level: {line}\n{status}"
        );
    }
    // Cargo.lock: the one package added is the new crate, and no version changed. (Cargo also
    // drops the entries only this workspace's root package needs, absent from the scratch one.)
    let packages = |lock: &str| -> BTreeSet<(String, String)> {
        let field = |block: &str, key: &str| {
            block
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{key} = \"")))
                .map(|value| value.trim_end_matches('"').to_string())
        };
        lock.split("[[package]]")
            .filter_map(|block| Some((field(block, "name")?, field(block, "version")?)))
            .collect()
    };
    let before = packages(&git(&workspace, &["show", "HEAD:Cargo.lock"]));
    let after = packages(&fs::read_to_string(workspace.join("Cargo.lock")).unwrap());
    let added: Vec<_> = after.difference(&before).collect();
    assert_eq!(
        added,
        [&("my-level".to_string(), "0.1.0".to_string())],
        "Cargo.lock gained more than the new crate"
    );
}

/// `check` never says PASS for something that did not run: a crate whose `tests/harness.rs` is
/// empty, matches no gate, aborts inside a gate, or passes the gates but has no edge, norm or
/// stress check (or aborts in one) gets FAIL and a non-zero exit, with a message that says what
/// happened.
#[test]
fn check_fails_when_the_suite_does_not_run() {
    let workspace = scratch_workspace("hollow");
    let crate_dir = workspace.join("crates/learner");
    fs::create_dir_all(crate_dir.join("src")).unwrap();
    fs::create_dir_all(crate_dir.join("tests")).unwrap();
    fs::write(
        crate_dir.join("Cargo.toml"),
        "[package]\nname = \"learner\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n",
    )
    .unwrap();
    fs::write(crate_dir.join("src/lib.rs"), "").unwrap();
    let gates_pass = "mod basic {\n    #[test] fn gate1_a() {}\n    #[test] fn gate2_a() {}\n    \
                      #[test] fn gate3_a() {}\n    #[test] fn gate4_a() {}\n}\n";
    let abort_in_edge =
        format!("{gates_pass}mod edge {{ #[test] fn a() {{ std::process::abort() }} }}\n");
    // (the suite, what the report must say)
    let suites: [(&str, &str, &[&str]); 5] = [
        (
            "empty",
            "",
            &["gate 1  single layer backward  FAIL", "no test matched"],
        ),
        (
            "no gate's name",
            "#[test]\nfn something_else() {}\n",
            &["gate 1  single layer backward  FAIL", "no test matched"],
        ),
        (
            "an abort in gate 1",
            "mod basic { #[test] fn gate1_a() { std::process::abort() } }\n",
            &[
                "gate 1  single layer backward  FAIL",
                "the run failed without a test panic",
                "SIGABRT",
            ],
        ),
        (
            "gates only",
            gates_pass,
            &[
                "gates pass, but: 1 edge/norm/stress check fails",
                "no test ran",
            ],
        ),
        (
            "an abort in an edge check",
            &abort_in_edge,
            &["gates pass, but:", "the run failed without a test panic"],
        ),
    ];
    for (suite, harness, says) in suites {
        fs::write(crate_dir.join("tests/harness.rs"), harness).unwrap();
        let (passed, report) = backprop_check(&workspace);
        assert!(!passed, "{suite}: check passed:\n{report}");
        for words in says {
            assert!(
                report.contains(words),
                "{suite}: no {words:?} in:\n{report}"
            );
        }
        assert!(
            !report.contains("whole suite is green"),
            "{suite}:\n{report}"
        );
    }
}
