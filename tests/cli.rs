//! The `backprop` command end to end: reproducible runs, outputs, and every kind of bad input.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{Scratch, idx};

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the backprop binary runs")
}

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("cli-{name}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails with the exit code and stderr when `output` does not match.
fn expect_failure(output: &Output, code: i32, fragments: &[&str]) {
    let text = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr: {text}"
    );
    for fragment in fragments {
        assert!(
            text.contains(fragment),
            "stderr should mention {fragment:?}: {text}"
        );
    }
    assert!(
        !text.contains("panicked"),
        "a panic instead of an error line: {text}"
    );
}

#[test]
fn the_same_seed_and_flags_give_the_same_metrics() {
    for level in ["2", "3"] {
        let (first, second) = (
            scratch(&format!("repro-a-{level}")),
            scratch(&format!("repro-b-{level}")),
        );
        for out in [&first, &second] {
            let args = [
                "train",
                "--level",
                level,
                "--limit",
                "2000",
                "--epochs",
                "2",
                "--threads",
                "1",
            ];
            let output = backprop(
                &[
                    &args[..],
                    &["--seed", "3", "--quiet", "--out", out.to_str().unwrap()],
                ]
                .concat(),
            );
            assert!(output.status.success(), "{}", stderr(&output));
        }
        let metrics = fs::read_to_string(first.join("metrics.csv")).unwrap();
        assert_eq!(
            metrics,
            fs::read_to_string(second.join("metrics.csv")).unwrap(),
            "level {level}"
        );
        assert_eq!(
            metrics.lines().count(),
            3,
            "a header and one row per epoch: {metrics}"
        );
        assert!(metrics.starts_with(
            "epoch,train_loss,train_accuracy,test_accuracy,grad_norm_linear0,grad_norm_linear1\n"
        ));
        for file in ["config.json", "model.npz"] {
            assert!(first.join(file).is_file(), "{file} missing");
        }
    }
}

#[test]
fn eval_loads_the_saved_model_into_any_level() {
    let out = scratch("eval");
    // 32 hidden units: level01's loops evaluate 10,000 test images in a debug build.
    let output = backprop(&[
        "train",
        "--hidden",
        "32",
        "--limit",
        "3000",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let model = out.join("model.npz");
    // An MLP's file keeps the entries it had before networks of any layers existed.
    let archive = zip::ZipArchive::new(fs::File::open(&model).unwrap()).unwrap();
    let mut names: Vec<&str> = archive.file_names().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "activation.npy",
            "bias0.npy",
            "bias1.npy",
            "norm.npy",
            "weight0.npy",
            "weight1.npy"
        ]
    );
    let mut accuracies = Vec::new();
    for level in ["1", "2", "3"] {
        let output = backprop(&["eval", "--model", model.to_str().unwrap(), "--level", level]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(text.contains("confusion matrix"), "{text}");
        accuracies.push(text.lines().next().unwrap().to_string());
    }
    // Every level runs the same weights to the same predictions.
    assert!(
        accuracies.iter().all(|line| line == &accuracies[0]),
        "{accuracies:?}"
    );
    let missing = backprop(&["eval", "--model", "no/such/model.npz"]);
    expect_failure(&missing, 1, &["no/such/model.npz", "cannot open"]);

    // --json: the same numbers as a JSON object; --quiet: the accuracy line alone.
    let json = backprop(&["eval", "--model", model.to_str().unwrap(), "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("eval --json");
    assert_eq!(value["images"], 10_000);
    let confusion = value["confusion"].as_array().unwrap();
    let total: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|count| count.as_u64().unwrap())
        .sum();
    assert_eq!((confusion.len(), total), (10, 10_000));
    let quiet = backprop(&["eval", "--model", model.to_str().unwrap(), "-q"]);
    let quiet = String::from_utf8_lossy(&quiet.stdout).into_owned();
    assert_eq!(quiet.trim(), accuracies[0], "{quiet}");
}

#[test]
fn completions_come_for_bash() {
    let output = backprop(&["completions", "bash"]);
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && script.contains("_backprop()"),
        "{script}"
    );
    assert!(script.contains("--optimizer") && script.contains("new-level"));
}

#[test]
fn runs_from_any_folder_and_writes_every_setting_as_json() {
    // From a folder with no data/: the bundled MNIST of the workspace the binary came from.
    let elsewhere = scratch("elsewhere");
    let out = elsewhere.join("a \"quoted\"\tname");
    let output = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--limit", "500", "--epochs", "1", "-q", "--out"])
        .arg(&out)
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("config.json")).unwrap())
            .expect("config.json is JSON");
    assert_eq!(config["out"], out.to_str().unwrap());
    for key in [
        "level",
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "momentum",
        "nesterov",
        "weight_decay",
        "hidden",
        "activation",
        "init",
        "seed",
        "threads",
        "data",
        "out",
        "limit",
        "quiet",
        "watch_gradients",
    ] {
        assert!(
            config.get(key).is_some(),
            "config.json has no {key}: {config}"
        );
    }
    assert!(
        config["data"].as_str().unwrap().ends_with("data/mnist"),
        "{config}"
    );
}

#[test]
fn flags_are_checked_before_any_work() {
    let cases: [(&[&str], &[&str]); 9] = [
        (&["--batch-size", "0"], &["--batch-size", "above 0"]),
        (
            &["--optimizer", "rmsprop"],
            &["--optimizer", "sgd, momentum, adam"],
        ),
        (&["--momentum", "1"], &["--momentum", "[0, 1)"]),
        (&["--nesterov"], &["--nesterov", "--optimizer momentum"]),
        (&["--lr", "nan"], &["--lr", "finite number above 0"]),
        (&["--epochs", "0"], &["--epochs", "from 1 to 100000"]),
        (&["--level", "4"], &["--level", "possible values: 1, 2, 3"]),
        (&["--hidden", "256,x"], &["--hidden", "e.g. 256 or 512,128"]),
        (
            &["--activation", "gelu"],
            &["--activation", "relu, sigmoid, tanh"],
        ),
    ];
    for (flags, fragments) in cases {
        let output = backprop(&[&["train"], flags].concat());
        expect_failure(&output, 2, fragments);
    }
}

fn data_folder(name: &str, images: Vec<u8>, labels: Vec<u8>) -> Scratch {
    let dir = scratch(name);
    fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
    dir
}

#[test]
fn bad_data_gives_one_line_naming_the_file() {
    let good_images = idx(0x803, &[2, 2, 2], &[0; 8]);
    let good_labels = idx(0x801, &[2], &[1, 2]);
    let gzip_dir = scratch("gzip");
    fs::File::create(gzip_dir.join("train-images-idx3-ubyte.gz"))
        .unwrap()
        .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3])
        .unwrap();
    let folders = [
        (
            scratch("empty-folder"),
            "train-images-idx3-ubyte: file not found",
        ),
        (
            data_folder("magic", good_labels.clone(), good_labels.clone()),
            "wrong magic number",
        ),
        (
            data_folder("truncated", good_images[..20].to_vec(), good_labels.clone()),
            "truncated",
        ),
        (
            data_folder("count", good_images.clone(), idx(0x801, &[3], &[1, 2, 3])),
            "holds 2 images but",
        ),
        (gzip_dir, "corrupt gzip data"),
    ];
    let missing = (
        Path::new("no/such/folder"),
        "no/such/folder/train-images-idx3-ubyte",
    );
    let cases = folders
        .iter()
        .map(|(folder, fragment)| (&**folder, *fragment))
        .chain([missing]);
    for (dir, fragment) in cases {
        let out = scratch("bad-data-out");
        let output = backprop(&[
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        expect_failure(&output, 1, &[fragment]);
        assert_eq!(
            stderr(&output).lines().count(),
            1,
            "one line: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_diverging_run_stops_at_the_step_and_keeps_its_metrics() {
    let out = scratch("diverge");
    let args = [
        "train", "--lr", "1e30", "--limit", "2000", "--epochs", "3", "--quiet",
    ];
    let output = backprop(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    expect_failure(
        &output,
        1,
        &[
            "training stopped at step",
            "the loss is",
            "largest gradient norm is in linear",
        ],
    );
    assert!(
        out.join("metrics.csv").is_file(),
        "metrics up to the failure should be written"
    );
}

#[test]
fn an_unwritable_output_folder_fails_before_training() {
    let dir = scratch("unwritable");
    let blocker = dir.join("a-file");
    fs::write(&blocker, "not a folder").unwrap();
    let out = blocker.join("run");
    let output = backprop(&["train", "--out", out.to_str().unwrap(), "--quiet"]);
    expect_failure(&output, 1, &["cannot create the output folder"]);
    assert!(!Path::new(&out).exists());
}

/// The last row of a metrics.csv, as numbers.
fn last_metrics(out: &Path) -> Vec<f64> {
    let metrics = fs::read_to_string(out.join("metrics.csv")).unwrap();
    let last = metrics.lines().last().unwrap().to_string();
    last.split(',')
        .map(|field| field.parse().unwrap())
        .collect()
}

#[test]
fn eval_reproduces_the_accuracy_of_training_and_levels_2_and_3_agree() {
    let mut rows = Vec::new();
    for level in ["2", "3"] {
        let out = scratch(&format!("agree-{level}"));
        let args = [
            "train",
            "--level",
            level,
            "--limit",
            "3000",
            "--epochs",
            "2",
            "--threads",
            "1",
        ];
        let output = backprop(
            &[
                &args[..],
                &["--seed", "5", "--quiet", "--out", out.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let row = last_metrics(&out);
        let model = out.join("model.npz");
        let output = backprop(&["eval", "--model", model.to_str().unwrap(), "--level", level]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let expected = format!("test accuracy {:.2}%", 100.0 * row[3]);
        assert!(
            text.starts_with(&expected),
            "eval printed {text:?}, training ended with {expected:?}"
        );
        rows.push(row);
    }
    // The same seed on level02 and level03: equal up to f32 rounding after 94 SGD steps.
    for (column, (a, b)) in rows[0].iter().zip(&rows[1]).enumerate() {
        assert!(
            (a - b).abs() <= 1e-3 * a.abs().max(1.0),
            "column {column}: level02 {a}, level03 {b}"
        );
    }
}

/// Kills the run with `kill -KILL`, so Unix only. SIGKILL, not Ctrl-C's SIGINT: the run gets no
/// chance to tidy up either way (it installs no handler), and SIGINT may arrive ignored (a shell
/// starts background jobs with SIGINT ignored, and children inherit that), which would let the
/// run finish instead.
#[cfg(unix)]
#[test]
fn interrupting_training_leaves_no_half_written_file() {
    let out = scratch("interrupt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args([
            "train", "--level", "2", "--limit", "20000", "--epochs", "100", "--quiet", "--out",
        ])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .spawn()
        .unwrap();
    // Wait until the first epoch's model and checkpoint are in place (each is renamed into
    // place whole), then kill it mid-run: the moment follows the run, not a clock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let first_epoch_written =
        || out.join("model.npz").exists() && out.join("checkpoint.npz").exists();
    while !first_epoch_written() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(first_epoch_written(), "no epoch finished in 10 minutes");
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        !child.wait().unwrap().success(),
        "the run should have been interrupted"
    );
    // Every file under its final name is complete: the CSV has whole rows, the config is closed.
    let metrics = fs::read_to_string(out.join("metrics.csv")).unwrap();
    let columns = metrics.lines().next().unwrap().split(',').count();
    assert!(
        metrics.ends_with('\n')
            && metrics
                .lines()
                .all(|line| line.split(',').count() == columns),
        "{metrics}"
    );
    assert!(
        fs::read_to_string(out.join("config.json"))
            .unwrap()
            .trim_end()
            .ends_with('}')
    );
    // The model of the last finished epoch and its checkpoint load whole.
    let model = backprop::model_file::load_model(&out.join("model.npz")).unwrap();
    assert_eq!(model.params.len(), 2);
    // A plain SGD run: no optimizer buffers.
    backprop::checkpoint::load_checkpoint(&out.join("checkpoint.npz"), &[]).unwrap();
}

#[test]
fn diagnose_writes_the_table_and_plots_and_names_the_vanishing_sigmoid() {
    let out = scratch("diagnose");
    let output = backprop(&[
        "diagnose",
        "--synthetic",
        "--depths",
        "2,10",
        "--steps",
        "30",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = fs::read_to_string(out.join("table.md")).unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| line.starts_with("| "))
        .collect();
    // Header, then 2 depths x 3 activations x 5 inits x 2 clipping settings.
    assert_eq!(rows.len(), 1 + 60, "{table}");
    let deep_sigmoid = rows
        .iter()
        .find(|row| row.contains("|    10 | sigmoid    | none  | pytorch   | no "))
        .expect("a row for 10 sigmoid layers with PyTorch's init");
    assert!(deep_sigmoid.contains("vanishing"), "{deep_sigmoid}");
    for activation in ["relu", "sigmoid", "tanh"] {
        for plot in ["grad_norms", "update_ratio"] {
            let svg = fs::read_to_string(out.join(format!("{plot}_{activation}.svg"))).unwrap();
            assert!(
                svg.contains("<svg") && svg.contains("depth 10"),
                "{plot}_{activation}"
            );
        }
    }
    expect_failure(
        &backprop(&["diagnose", "--depths", "2,0"]),
        2,
        &["--depths"],
    );
}

#[test]
fn watch_gradients_warns_about_a_deep_sigmoid_network_and_says_why() {
    let out = scratch("watch");
    let output = backprop(&[
        "train",
        "--activation",
        "sigmoid",
        "--hidden",
        "64,64,64,64,64,64,64,64",
        "--limit",
        "500",
        "--epochs",
        "1",
        "--watch-gradients",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let warnings = stderr(&output);
    assert!(
        warnings.contains("step 1 (epoch 1): linear0.weight gradient vanishing")
            && warnings.contains("at most 1/4"),
        "{warnings}"
    );
    // A healthy run stays quiet.
    let quiet = backprop(&[
        "train",
        "--limit",
        "500",
        "--epochs",
        "1",
        "--watch-gradients",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(!stderr(&quiet).contains("warning"), "{}", stderr(&quiet));
}

#[test]
fn check_and_new_level_take_only_names_that_can_be_a_level_crate() {
    // check: nothing that is not a package of the workspace goes to cargo.
    let cases: [(&str, &str); 3] = [
        ("--help", "is not a usable crate name"),
        ("no-such-level", "is not a package of the workspace"),
        ("fn", "is a Rust keyword"),
    ];
    for (name, fragment) in cases {
        let output = backprop(&["check", "--", name]);
        expect_failure(&output, 2, &[name, fragment]);
        assert!(output.stdout.is_empty(), "no gate ran for {name}");
    }
    // new-level: no keyword, no name cargo would see twice. In a scratch copy of the workspace's
    // manifests (never this checkout: a regression would leave a crate in the working tree).
    let workspace = scratch("new-level-names");
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["Cargo.toml", "Cargo.lock"] {
        fs::copy(here.join(file), workspace.join(file)).unwrap();
    }
    for member in ["core", "harness", "level02"] {
        let folder = workspace.join("crates").join(member);
        fs::create_dir_all(&folder).unwrap();
        fs::copy(
            here.join("crates").join(member).join("Cargo.toml"),
            folder.join("Cargo.toml"),
        )
        .unwrap();
    }
    let root = workspace.to_str().unwrap();
    let crates = || fs::read_dir(workspace.join("crates")).unwrap().count();
    let before = crates();
    for (name, fragment) in [
        ("fn", "is a Rust keyword"),
        ("std", "built-in crate"),
        ("backprop-core", "already in this workspace"),
        ("backprop_harness", "already in this workspace"),
        ("level02", "already in this workspace"),
        ("ndarray", "or its dependencies"),
    ] {
        let output = backprop(&["new-level", name, "--root", root]);
        expect_failure(&output, 2, &[name, fragment]);
        assert_eq!(crates(), before, "{name}: nothing is made");
    }
}

/// `backprop hint gate1` gives the idea; each `--more` the next tier, the formula last.
#[test]
fn hint_prints_one_tier_at_a_time() {
    let tier = |more: usize| {
        let mut args = vec!["hint", "gate1"];
        args.extend(std::iter::repeat_n("--more", more));
        let output = backprop(&args);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let tiers = [tier(0), tier(1), tier(2)];
    for (number, text) in tiers.iter().enumerate() {
        assert!(
            text.starts_with(&format!("gate1, tier {} of 3", number + 1)),
            "{text}"
        );
    }
    assert!(tiers[0].contains("next tier: backprop hint gate1 --more\n"));
    assert!(tiers[1].contains("next tier: backprop hint gate1 --more --more\n"));
    // Only the last tier states the formula.
    let formula = |text: &String| text.contains("x^T g") && text.contains("g W^T");
    assert_eq!(tiers.each_ref().map(formula), [false, false, true]);
    let unknown = backprop(&["hint", "gate9"]);
    assert!(!unknown.status.success());
    let error = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        error.contains("the topics are gate1, gate2, gate3, gate4"),
        "{error}"
    );
}
