//! Runs killed at random moments and resumed end with the bytes of a run never stopped; two
//! runs never share a folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use backprop_core::init::seeded_rng;
use rand::RngExt;

use crate::common::{Scratch, idx};

fn backprop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
}

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("runs-{name}"))
}

/// A small MNIST-style folder: 3,000 training and 300 test images of 8 x 8, each class a
/// brighter square at its own place, so a run learns something in a few epochs.
fn synthetic_data(root: &Path) -> PathBuf {
    let data = root.join("data");
    fs::create_dir_all(&data).unwrap();
    let mut rng = seeded_rng(7);
    for (prefix, count) in [("train", 3000u32), ("t10k", 300)] {
        let labels: Vec<u8> = (0..count).map(|_| rng.random_range(0..10)).collect();
        let mut pixels = Vec::new();
        for &label in &labels {
            for pixel in 0..64u8 {
                let hot = pixel / 6 == label;
                pixels.push(if hot { 200 } else { rng.random_range(0..60) });
            }
        }
        let images = idx(0x803, &[count, 8, 8], &pixels);
        fs::write(data.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        let labels = idx(0x801, &[count], &labels);
        fs::write(data.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
    data
}

const SETTINGS: [&str; 9] = [
    "--hidden",
    "32",
    "--batch-size",
    "16",
    "--optimizer",
    "adam",
    "--threads",
    "1",
    "--quiet",
];

/// `train` with [`SETTINGS`], 8 epochs unless `extra` names `--epochs`.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = backprop();
    command.arg("train").args(SETTINGS);
    if !extra.contains(&"--epochs") {
        command.args(["--epochs", "8"]);
    }
    command
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra);
    command
}

fn resume(out: &Path) -> Command {
    let mut command = backprop();
    command.args(["train", "--quiet", "--resume"]).arg(out);
    command
}

fn succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts `command`, waits until `out` records `epochs` finished epochs (or the run ends), then
/// after `extra` kills it with SIGKILL; true if it was still running. The moment follows the
/// run's own progress, not a clock: the same trial lands at the same stage on any machine.
fn kill_at_epoch(command: &mut Command, out: &Path, epochs: usize, extra: Duration) -> bool {
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while epochs_written(out) < epochs
        && child.try_wait().unwrap().is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(extra);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    running
}

/// Finished epochs recorded in a run folder's metrics.csv.
fn epochs_written(out: &Path) -> usize {
    fs::read_to_string(out.join("metrics.csv"))
        .map_or(0, |csv| csv.lines().count().saturating_sub(1))
}

#[test]
fn runs_killed_at_random_moments_and_resumed_end_with_the_same_bytes() {
    let root = scratch("kill");
    let data = synthetic_data(&root);
    let reference = root.join("reference");
    succeeded(&train(&data, &reference, &[]).output().unwrap());
    let expected: Vec<Vec<u8>> = ["metrics.csv", "model.npz", "model.safetensors"]
        .iter()
        .map(|file| fs::read(reference.join(file)).unwrap())
        .collect();

    // Each kill: after 0 to 7 finished epochs, then 0 to 20 ms more (inside the next epoch, or
    // while the last one's files are being written).
    let mut rng = seeded_rng(2026);
    let mut moment = |from: usize| {
        let epochs = rng.random_range(from..8);
        (epochs, Duration::from_millis(rng.random_range(0..20)))
    };
    let (mut kills, mut epochs_at_kill, trials) = (0, Vec::new(), 20);
    for trial in 0..trials {
        let out = root.join(format!("trial{trial}"));
        let (epochs, extra) = moment(0);
        let mut killed = kill_at_epoch(&mut train(&data, &out, &[]), &out, epochs, extra);
        // Every other trial, the resumed run is killed too (later on) and resumed again.
        if trial % 2 == 1 && out.join("config.json").exists() {
            let (later, extra) = moment(epochs_written(&out).min(7));
            killed |= kill_at_epoch(&mut resume(&out), &out, later, extra);
        }
        if killed {
            kills += 1;
            epochs_at_kill.push(epochs_written(&out));
        }
        // Killed before config.json: nothing to resume, so the run starts again.
        let output = if out.join("config.json").exists() {
            resume(&out).output().unwrap()
        } else {
            train(&data, &out, &[]).output().unwrap()
        };
        succeeded(&output);
        for (file, expected) in ["metrics.csv", "model.npz", "model.safetensors"]
            .iter()
            .zip(&expected)
        {
            assert!(
                fs::read(out.join(file)).unwrap() == *expected,
                "trial {trial}: {file} differs from the uninterrupted run's"
            );
        }
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "trial {trial}: {leftovers:?}");
    }
    eprintln!(
        "{trials} trials, {kills} killed while running; epochs finished at the kill: \
         {epochs_at_kill:?}"
    );
    let mid_run = epochs_at_kill
        .iter()
        .filter(|&&epochs| epochs > 0 && epochs < 8)
        .count();
    assert!(
        mid_run >= 5,
        "too few kills landed between two epochs ({mid_run}): the test would not show resuming"
    );
}

#[test]
fn a_folder_is_taken_by_one_run_at_a_time_and_never_mixed() {
    let root = scratch("folders");
    let data = synthetic_data(&root);
    let out = root.join("run");
    succeeded(&train(&data, &out, &[]).output().unwrap());

    // Into a folder that holds a run: refused without --force, nothing touched.
    let before = fs::read(out.join("model.npz")).unwrap();
    let refused = train(&data, &out, &["--seed", "1"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("holds a run already") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(fs::read(out.join("model.npz")).unwrap(), before);

    // While a run holds the folder, a second one is refused.
    let out = root.join("busy");
    let mut first = train(&data, &out, &["--epochs", "100000"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("config.json").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = train(&data, &out, &["--force"]).output().unwrap();
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended too soon"
    );
    let _ = first.kill();
    first.wait().unwrap();
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && message.contains("another run is writing to this folder"),
        "{message}"
    );

    // A bad data folder writes nothing: config.json only once the data has loaded.
    let empty = root.join("no-data");
    fs::create_dir_all(&empty).unwrap();
    let fresh = root.join("fresh");
    let failed = train(&empty, &fresh, &[]).output().unwrap();
    assert!(!failed.status.success());
    assert!(
        !fresh.exists(),
        "the output folder was made before the data loaded"
    );
}

#[test]
fn a_planted_partial_symlink_is_never_followed() {
    let root = scratch("symlink");
    let data = synthetic_data(&root);
    let out = root.join("run");
    fs::create_dir_all(&out).unwrap();
    let victim = root.join("victim.txt");
    fs::write(&victim, "keep me").unwrap();
    // Every temporary name a run could pick in its first writes, pointing outside the folder.
    for file in [
        "config.json",
        "checkpoint.npz",
        "metrics.csv",
        "model.npz",
        "model.safetensors",
    ] {
        for pid_guess in 0..3 {
            let link = out.join(format!(".{file}.{pid_guess}-0.partial"));
            std::os::unix::fs::symlink(&victim, link).unwrap();
        }
        let link = out.join(format!(".{file}.partial"));
        std::os::unix::fs::symlink(&victim, link).unwrap();
    }
    succeeded(&train(&data, &out, &["--epochs", "1"]).output().unwrap());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(
        fs::symlink_metadata(out.join("config.json"))
            .unwrap()
            .is_file()
    );
}

/// A run with batch norm stopped after its first epoch and resumed ends with the same bytes as
/// the run never stopped: gamma, beta, the running statistics and Adam's buffers for the norms
/// come back from the checkpoint. A run with dropout is refused: its masks cannot be replayed.
#[test]
fn normalized_runs_resume_and_dropout_runs_are_refused() {
    let root = scratch("norm-resume");
    let data = synthetic_data(&root);
    let (whole, stopped) = (root.join("whole"), root.join("stopped"));
    let norm = ["--norm", "batch", "--epochs"];
    let status = train(&data, &whole, &[&norm[..], &["3"]].concat())
        .status()
        .unwrap();
    assert!(status.success());
    // The stopped run: one epoch, then its config.json asks for three, as the whole run's does.
    let status = train(&data, &stopped, &[&norm[..], &["1"]].concat())
        .status()
        .unwrap();
    assert!(status.success());
    let config = stopped.join("config.json");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"epochs\": 1,"), "{text}");
    fs::write(&config, text.replace("\"epochs\": 1,", "\"epochs\": 3,")).unwrap();
    let output = resume(&stopped).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["metrics.csv", "model.npz", "model.safetensors"] {
        assert!(
            fs::read(whole.join(file)).unwrap() == fs::read(stopped.join(file)).unwrap(),
            "{file} of the resumed batch-norm run differs from the whole run's"
        );
    }
    let dropped = root.join("dropped");
    let status = train(&data, &dropped, &["--dropout", "0.2", "--epochs", "1"])
        .status()
        .unwrap();
    assert!(status.success());
    let output = resume(&dropped).output().unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && error.contains("--dropout 0.2"),
        "{error}"
    );
}

/// A CNN (`--arch`) stopped after its first epoch and resumed ends with the same bytes as the
/// run never stopped; `eval` of its model gives the accuracy training ended with, and its
/// folder has the plots.
#[test]
fn a_cnn_run_resumes_evaluates_and_plots() {
    let root = scratch("cnn-resume");
    let data = synthetic_data(&root);
    let (whole, stopped) = (root.join("whole"), root.join("stopped"));
    let arch = "conv(4,3,pad=1),relu,maxpool(2),flatten,linear(10)";
    let cnn = ["--arch", arch, "--epochs"];
    // --hidden (in SETTINGS) and --arch cannot go together: the CNN runs without SETTINGS.
    let run = |out: &Path, epochs: &str| {
        let mut command = backprop();
        command
            .args(["train", "--batch-size", "16", "--threads", "1", "--quiet"])
            .args(cnn)
            .arg(epochs)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out);
        command.output().unwrap()
    };
    succeeded(&run(&whole, "3"));
    succeeded(&run(&stopped, "1"));
    let config = stopped.join("config.json");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("\"arch\": \"{arch}\"")), "{text}");
    assert!(!text.contains("\"hidden\""), "{text}");
    fs::write(&config, text.replace("\"epochs\": 1,", "\"epochs\": 3,")).unwrap();
    succeeded(&resume(&stopped).output().unwrap());
    for file in ["metrics.csv", "model.npz", "checkpoint.npz"] {
        assert!(
            fs::read(whole.join(file)).unwrap() == fs::read(stopped.join(file)).unwrap(),
            "{file} of the resumed CNN run differs from the whole run's"
        );
    }
    for plot in ["loss.svg", "accuracy.svg", "grad_norms.svg"] {
        let svg = fs::read_to_string(whole.join(plot)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{plot}");
    }
    // One gradient-norm line per weight layer: the convolution and the Linear.
    let grad_norms = fs::read_to_string(whole.join("grad_norms.svg")).unwrap();
    assert!(grad_norms.contains("linear0") && grad_norms.contains("linear1"));
    // eval: the accuracy of the last epoch, on every level.
    let metrics = fs::read_to_string(whole.join("metrics.csv")).unwrap();
    let last: Vec<f64> = metrics
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|field| field.parse().unwrap())
        .collect();
    let expected = format!("test accuracy {:.2}%", 100.0 * last[3]);
    for level in ["2", "3"] {
        let output = backprop()
            .args(["eval", "--quiet", "--level", level, "--model"])
            .arg(whole.join("model.npz"))
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        succeeded(&output);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.starts_with(&expected),
            "level {level}: {text} vs {expected}"
        );
    }
}
