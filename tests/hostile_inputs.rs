//! Hostile files and flags, through the binary: each is one `error:` line naming the file or
//! flag, never a panic, an abort or a silent wrong number. One test per way things broke.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Scratch, idx, npy, npy_with_header, zip_of};
use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("hostile-{name}"))
}

/// Exit code `code` and exactly one stderr line, an `error:` holding every fragment.
fn one_error_line(output: &Output, code: i32, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.is_empty()).collect();
    if code == 1 {
        assert_eq!(lines.len(), 1, "one line: {stderr}");
    }
    for fragment in fragments {
        assert!(stderr.contains(fragment), "{fragment:?} not in: {stderr}");
    }
}

/// A folder with the four IDX files: 40 training and 10 test images of 2 x 2, labels 0..9;
/// `change` edits the files (by name) before they are written.
fn data(name: &str, change: impl FnOnce(&mut Vec<(&'static str, Vec<u8>)>)) -> Scratch {
    let labels = |count: u8| {
        idx(
            0x801,
            &[u32::from(count)],
            &(0..count).map(|i| i % 10).collect::<Vec<_>>(),
        )
    };
    let mut files = vec![
        (
            "train-images-idx3-ubyte",
            idx(0x803, &[40, 2, 2], &[100; 160]),
        ),
        ("train-labels-idx1-ubyte", labels(40)),
        (
            "t10k-images-idx3-ubyte",
            idx(0x803, &[10, 2, 2], &[100; 40]),
        ),
        ("t10k-labels-idx1-ubyte", labels(10)),
    ];
    change(&mut files);
    let dir = scratch(name);
    for (file, bytes) in files {
        fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

fn set(files: &mut [(&'static str, Vec<u8>)], name: &str, bytes: Vec<u8>) {
    files.iter_mut().find(|(file, _)| *file == name).unwrap().1 = bytes;
}

/// `train`, `eval` (with `model`) and `diagnose` on `dir`; each must fail with one line.
fn every_command_refuses(dir: &Path, model: &Path, fragments: &[&str]) {
    let out = scratch("out");
    let dir = dir.to_str().unwrap();
    let run = |args: &[&str]| backprop(&[args, &["--data", dir]].concat());
    let train_out = out.join("train");
    one_error_line(
        &run(&["train", "--out", train_out.to_str().unwrap()]),
        1,
        fragments,
    );
    assert!(!train_out.exists(), "nothing is written for bad data");
    one_error_line(
        &run(&["eval", "--model", model.to_str().unwrap()]),
        1,
        fragments,
    );
    let diagnose_out = out.join("diagnose");
    let diagnose = [
        "diagnose",
        "--depths",
        "2",
        "--steps",
        "2",
        "--out",
        diagnose_out.to_str().unwrap(),
    ];
    one_error_line(&run(&diagnose), 1, fragments);
}

/// A model for 2 x 2 images: [4, 3, 10], finite.
fn small_model(dir: &Path) -> PathBuf {
    let path = dir.join("small.npz");
    write_model(&path, &[(4, 3), (3, 10)], |_| {});
    path
}

/// Writes a model of these (fan_in, fan_out) layers; `edit` may change the weights first.
fn write_model(path: &Path, layers: &[(usize, usize)], edit: impl FnOnce(&mut Vec<Array2<f32>>)) {
    let mut weights: Vec<Array2<f32>> = layers
        .iter()
        .map(|&shape| Array2::from_elem(shape, 0.1))
        .collect();
    edit(&mut weights);
    let mut npz = NpzWriter::new(fs::File::create(path).unwrap());
    for (index, weight) in weights.iter().enumerate() {
        npz.add_array(format!("weight{index}"), weight).unwrap();
        npz.add_array(
            format!("bias{index}"),
            &Array1::<f32>::zeros(weight.ncols()),
        )
        .unwrap();
    }
    npz.add_array("activation", &Array1::from_vec(b"relu".to_vec()))
        .unwrap();
    npz.finish().unwrap();
}

#[test]
fn item1_sizes_whose_product_overflows_are_one_error_in_every_command() {
    let dir = data("overflow", |files| {
        let images = idx(0x803, &[48_448_661, 494_770, 769_546], &[1, 2, 3, 4]);
        set(files, "train-images-idx3-ubyte", images.clone());
        set(files, "t10k-images-idx3-ubyte", images);
    });
    let model = small_model(&dir);
    every_command_refuses(
        &dir,
        &model,
        &["images-idx3-ubyte: truncated (the header promises 18446744073709551636 bytes"],
    );
    let dir = data("overflow-zero", |files| {
        let images = idx(0x803, &[0, u32::MAX, u32::MAX], &[]);
        set(files, "train-images-idx3-ubyte", images.clone());
        set(files, "t10k-images-idx3-ubyte", images);
    });
    every_command_refuses(&dir, &model, &["images-idx3-ubyte: no images"]);
}

#[test]
fn item2_tiny_files_declaring_huge_shapes_are_refused_before_allocating() {
    // 16 bytes: 0 images of 65535 x 65535.
    let dir = data("huge-images", |files| {
        let images = idx(0x803, &[0, 65_535, 65_535], &[]);
        set(files, "train-images-idx3-ubyte", images.clone());
        set(files, "t10k-images-idx3-ubyte", images);
        set(files, "train-labels-idx1-ubyte", idx(0x801, &[0], &[]));
        set(files, "t10k-labels-idx1-ubyte", idx(0x801, &[0], &[]));
    });
    every_command_refuses(&dir, &small_model(&dir), &["images-idx3-ubyte: no images"]);

    // A 12 KB model.npz whose weight0 declares 100000 x 100000 f32 (40 GB).
    let entry = npy("<f4", &[100_000, 100_000], &[0; 12_000]);
    let archive = zip_of(&[("weight0.npy", &entry, false)]);
    let model = dir.join("huge.npz");
    fs::write(&model, archive).unwrap();
    let output = backprop(&["eval", "--model", model.to_str().unwrap()]);
    one_error_line(
        &output,
        1,
        &["huge.npz: weight0: its header declares 40000000000 bytes of data, more than the limit"],
    );
}

#[test]
fn item3_labels_that_are_no_class_are_refused_in_training_and_test_files() {
    let dir = data("labels-train", |files| {
        set(
            files,
            "train-labels-idx1-ubyte",
            idx(0x801, &[40], &[200; 40]),
        );
    });
    let output = backprop(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    one_error_line(
        &output,
        1,
        &["train-labels-idx1-ubyte: label 200 at index 0 is not a class"],
    );
    let dir = data("labels-test", |files| {
        let mut labels = vec![3u8; 10];
        labels[7] = 10;
        set(files, "t10k-labels-idx1-ubyte", idx(0x801, &[10], &labels));
    });
    let output = backprop(&[
        "eval",
        "--data",
        dir.to_str().unwrap(),
        "--model",
        small_model(&dir).to_str().unwrap(),
    ]);
    one_error_line(
        &output,
        1,
        &["t10k-labels-idx1-ubyte: label 10 at index 7 is not a class"],
    );
}

#[test]
fn item4_eval_checks_the_model_before_counting_anything() {
    let dir = data("models", |_| {});
    let data_dir = dir.to_str().unwrap();
    type Case = (
        &'static str,
        Vec<(usize, usize)>,
        fn(&mut Vec<Array2<f32>>),
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            "last-layer-removed",
            vec![(4, 3)],
            |_| {},
            "gives 3 outputs but the data has 10 classes",
        ),
        (
            "twenty-outputs",
            vec![(4, 3), (3, 20)],
            |_| {},
            "gives 20 outputs but the data has 10 classes",
        ),
        (
            "nan",
            vec![(4, 3), (3, 10)],
            |weights| weights[1][[2, 5]] = f32::NAN,
            "weight1[2, 5] is NaN",
        ),
        (
            "wide-input",
            vec![(784, 3), (3, 10)],
            |_| {},
            "takes 784 inputs but the images have 4 pixels",
        ),
    ];
    for (name, layers, edit, fragment) in cases {
        let model = dir.join(format!("{name}.npz"));
        write_model(&model, &layers, edit);
        let output = backprop(&[
            "eval",
            "--data",
            data_dir,
            "--model",
            model.to_str().unwrap(),
        ]);
        one_error_line(&output, 1, &[&format!("{name}.npz: "), fragment]);
    }
    // A run folder in place of its model.npz.
    let output = backprop(&["eval", "--data", data_dir, "--model", data_dir]);
    one_error_line(
        &output,
        1,
        &["is a folder, not a model file (a run's model is "],
    );
    let output = backprop(&[
        "eval",
        "--data",
        data_dir,
        "--model",
        small_model(&dir).to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn item5_train_and_test_images_of_different_sizes_are_refused_before_training() {
    let dir = data("sizes", |files| {
        set(
            files,
            "t10k-images-idx3-ubyte",
            idx(0x803, &[10, 3, 3], &[1; 90]),
        );
    });
    let out = dir.join("out");
    let output = backprop(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    one_error_line(
        &output,
        1,
        &[
            "train-images-idx3-ubyte holds 2x2 images but",
            "t10k-images-idx3-ubyte holds 3x3",
        ],
    );
    assert!(!out.exists());
}

#[test]
fn item6_empty_data_is_refused_by_train_and_diagnose() {
    let dir = data("empty", |files| {
        set(
            files,
            "train-images-idx3-ubyte",
            idx(0x803, &[0, 2, 2], &[]),
        );
        set(files, "train-labels-idx1-ubyte", idx(0x801, &[0], &[]));
    });
    every_command_refuses(
        &dir,
        &small_model(&dir),
        &["train-images-idx3-ubyte: no images"],
    );
    let dir = data("no-pixels", |files| {
        set(
            files,
            "train-images-idx3-ubyte",
            idx(0x803, &[40, 0, 2], &[]),
        );
        set(
            files,
            "t10k-images-idx3-ubyte",
            idx(0x803, &[10, 0, 2], &[]),
        );
    });
    every_command_refuses(&dir, &small_model(&dir), &["images of 0 pixels (0 x 2)"]);
}

#[test]
fn item7_flags_in_range_but_impossible_are_refused_before_any_output() {
    let out = scratch("flags");
    let out = out.join("run");
    let out = out.to_str().unwrap();
    let one_row = "--norm batch with --batch-size 1: batch norm needs at least 2 rows per batch";
    let cases: [(&[&str], &str); 7] = [
        (
            &["train", "--threads", "100000"],
            "is not a whole number from 1 to 256",
        ),
        (
            &["train", "--hidden", "1000000000", "--out", out],
            "--hidden 1000000000 with --batch-size 64: the model and its buffers need about",
        ),
        (
            &["train", "--hidden", "18446744073709551615", "--out", out],
            "of this machine's memory",
        ),
        (
            &["diagnose", "--steps", "18446744073709551615"],
            "is not a whole number from 1 to 1000000",
        ),
        (
            &["diagnose", "--depths", "18446744073709551615"],
            "is not a whole number from 1 to 1000",
        ),
        (
            &[
                "train",
                "--norm",
                "batch",
                "--batch-size",
                "1",
                "--out",
                out,
            ],
            one_row,
        ),
        (
            &[
                "diagnose",
                "--norm",
                "layer,batch",
                "--batch-size",
                "1",
                "--synthetic",
                "--out",
                out,
            ],
            one_row,
        ),
    ];
    for (args, fragment) in cases {
        one_error_line(&backprop(args), 2, &[fragment]);
        assert!(!Path::new(out).exists(), "{args:?} wrote output");
    }
}

/// With batch norm, an epoch whose last batch would hold one row (40 images in batches of 3)
/// trains, skipping that row; a data set of one image is refused before any output.
#[test]
fn batch_norm_never_sees_a_batch_of_one_row() {
    let dir = data("batch-norm-rows", |_| {});
    let scratch = scratch("batch-norm-rows-run");
    let run = scratch.join("run");
    let flags = ["train", "--norm", "batch", "--data", dir.to_str().unwrap()];
    let output = backprop(
        &[
            &flags[..],
            &["--batch-size", "3", "--epochs", "2", "-q"],
            &["--out", run.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        3,
        "a header and two epochs: {metrics}"
    );
    let single = scratch.join("single");
    let output = backprop(
        &[
            &flags[..],
            &["--limit", "1", "--out", single.to_str().unwrap()],
        ]
        .concat(),
    );
    one_error_line(
        &output,
        2,
        &["--norm batch with 1 training image(s): batch norm needs at least 2 rows"],
    );
    assert!(!single.exists(), "nothing is written");
}

/// A run's config.json edited by hand is held to the rules of the flags it stands for: each bad
/// setting is one error line naming it, and the run folder is left as it was.
#[test]
fn an_edited_config_json_is_refused_on_resume_as_its_flags_would_be() {
    let dir = data("resume-config", |_| {});
    let scratch = scratch("resume-config-run");
    let run = scratch.join("run");
    let train = ["train", "--data", dir.to_str().unwrap(), "--epochs", "1"];
    let output = backprop(&[&train[..], &["--out", run.to_str().unwrap(), "-q"]].concat());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = fs::read_to_string(run.join("config.json")).unwrap();
    let checkpoint = fs::read(run.join("checkpoint.npz")).unwrap();
    let cases = [
        ("batch_size", "0", "\"0\" is not a whole number above 0"),
        (
            "batch_size",
            "64.5",
            "\"64.5\" is not a whole number above 0",
        ),
        ("dropout", "2.0", "\"2.0\" is not a number in [0, 1)"),
        ("threads", "0", "\"0\" is not a whole number from 1 to 256"),
        (
            "epochs",
            "1000000000",
            "is not a whole number from 1 to 100000",
        ),
        (
            "hidden",
            "[]",
            "setting \"hidden\" has the wrong type or value",
        ),
        (
            "hidden",
            "[0, 3]",
            "setting \"hidden\": \"0\" is not a whole number above 0",
        ),
        ("lr", "0", "\"0\" is not a finite number above 0"),
        (
            "lr",
            "\"NaN\"",
            "setting \"lr\" has the wrong type or value",
        ),
        ("momentum", "1", "\"1\" is not a number in [0, 1)"),
        ("weight_decay", "-1", "is not a finite number of 0 or more"),
        (
            "limit",
            "0",
            "setting \"limit\": \"0\" is not a whole number above 0",
        ),
        (
            "nesterov",
            "true",
            "setting \"nesterov\" applies only to optimizer \"momentum\"",
        ),
    ];
    for (setting, value, fragment) in cases {
        let mut config: serde_json::Value = serde_json::from_str(&written).unwrap();
        config[setting] = serde_json::from_str(value).unwrap();
        fs::write(run.join("config.json"), config.to_string()).unwrap();
        let output = backprop(&["train", "--resume", run.to_str().unwrap(), "-q"]);
        one_error_line(&output, 1, &["config.json: setting", fragment]);
        assert_eq!(
            fs::read(run.join("checkpoint.npz")).unwrap(),
            checkpoint,
            "{setting} = {value} changed the checkpoint"
        );
    }
    // The file as written resumes (one epoch was asked for and done: nothing left to train).
    fs::write(run.join("config.json"), &written).unwrap();
    let output = backprop(&["train", "--resume", run.to_str().unwrap(), "-q"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn item11_a_corrupt_npz_header_and_a_full_disk_are_one_line_each() {
    let dir = data("npz-header", |_| {});
    // A .npy whose header dictionary never closes: the parser's several lines become one.
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), ";
    let archive = zip_of(&[("weight0.npy", &npy_with_header(dict, &[0; 48]), false)]);
    let model = dir.join("corrupt.npz");
    fs::write(&model, archive).unwrap();
    let output = backprop(&[
        "eval",
        "--data",
        dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    one_error_line(&output, 1, &["corrupt.npz: weight0: "]);

    // A file-size limit of 100 KiB stands in for a full disk: the first large write fails.
    let full_disk = scratch("full-disk");
    let out = full_disk.join("run");
    let script = format!(
        "trap '' XFSZ; ulimit -f 200; exec '{}' train --limit 600 --epochs 1 --quiet --out '{}'",
        env!("CARGO_BIN_EXE_backprop"),
        out.display()
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    one_error_line(&output, 1, &["checkpoint.npz: File too large"]);
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .filter(|name| name.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn item11_an_unwritable_plot_names_its_path_once() {
    let out = scratch("svg");
    let target = out.join("graph.svg");
    fs::create_dir_all(&target).unwrap();
    let output = backprop(&["graph", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    one_error_line(&output, 1, &["graph.svg"]);
    assert_eq!(stderr.matches("graph.svg").count(), 1, "{stderr}");
}

/// `backprop ARGS`, failing the test instead of hanging when it does not end within a minute
/// (the commands here end in milliseconds when they refuse what they are given).
#[cfg(unix)]
fn backprop_or_hang(args: &[&str]) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`backprop {}` blocked for a minute", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Replaces `path` (if anything is there) with a FIFO.
#[cfg(unix)]
fn make_fifo(path: &Path) {
    let _ = fs::remove_file(path);
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_without_blocking() {
    let fifo_error = "is a FIFO (named pipe), not a regular file";
    // A data file.
    let fifo_data = data("fifo-data", |_| {});
    make_fifo(&fifo_data.join("train-images-idx3-ubyte"));
    let out = scratch("fifo-data-out").join("run");
    one_error_line(
        &backprop_or_hang(&[
            "train",
            "--data",
            fifo_data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        1,
        &["train-images-idx3-ubyte", fifo_error],
    );
    assert!(!out.exists(), "nothing is written for bad data");

    // A model.
    let models = scratch("fifo-model");
    let model = models.join("model.npz");
    make_fifo(&model);
    let dir = data("fifo-run-data", |_| {});
    one_error_line(
        &backprop_or_hang(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            dir.to_str().unwrap(),
        ]),
        1,
        &["model.npz", fifo_error],
    );

    // A run's config.json, checkpoint.npz and .lock, each in turn.
    let runs = scratch("fifo-runs");
    for file in ["config.json", "checkpoint.npz", ".lock"] {
        let run = runs.join(file.trim_start_matches('.'));
        let train = [
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--epochs",
            "1",
            "-q",
            "--out",
            run.to_str().unwrap(),
        ];
        let output = backprop_or_hang(&train);
        assert!(output.status.success(), "{output:?}");
        make_fifo(&run.join(file));
        one_error_line(
            &backprop_or_hang(&["train", "--resume", run.to_str().unwrap()]),
            1,
            &[file, fifo_error],
        );
    }

    // A FIFO inside the starter crate's template: new-level refuses it and leaves nothing.
    let root = scratch("fifo-template");
    let template = root.join("templates/level-starter");
    fs::create_dir_all(template.join("src")).unwrap();
    fs::create_dir_all(root.join("crates")).unwrap();
    fs::write(
        template.join("Cargo.toml"),
        "[package]\nname = \"level-starter\"\n",
    )
    .unwrap();
    make_fifo(&template.join("src/lib.rs"));
    one_error_line(
        &backprop_or_hang(&["new-level", "my-level", "--root", root.to_str().unwrap()]),
        1,
        &["lib.rs", fifo_error],
    );
    let left: Vec<_> = fs::read_dir(root.join("crates")).unwrap().collect();
    assert!(left.is_empty(), "new-level left {left:?} in crates/");
}

/// Rewrites the `.npz` at `path` after `edit` changed its entries (`NAME.npy`, bytes).
fn edit_npz(path: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(fs::File::open(path).unwrap()).unwrap();
    let mut entries = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.push((entry.name().to_string(), bytes));
    }
    edit(&mut entries);
    let borrowed: Vec<(&str, &[u8], bool)> = entries
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice(), false))
        .collect();
    fs::write(path, zip_of(&borrowed)).unwrap();
}

/// Replaces entry `name` with an `.npy` of `descr` and `shape` holding `data`.
fn replace(entries: &mut [(String, Vec<u8>)], name: &str, descr: &str, shape: &[u64], data: &[u8]) {
    let entry = entries
        .iter_mut()
        .find(|(entry, _)| entry == &format!("{name}.npy"))
        .unwrap_or_else(|| panic!("no {name}"));
    entry.1 = npy(descr, shape, data);
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

#[test]
fn checkpoints_and_models_are_checked_whole_before_a_resume_or_an_eval() {
    let dir = data("whole", |_| {});
    let runs = scratch("whole-runs");
    // A one-epoch batch-norm run named `name`, with `extra` flags.
    let train = |name: &str, extra: &[&str]| {
        let run = runs.join(name);
        let flags = [
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--epochs",
            "1",
            "--hidden",
            "3",
            "--norm",
            "batch",
            "-q",
        ];
        let output = backprop(&[&flags[..], extra, &["--out", run.to_str().unwrap()]].concat());
        assert!(output.status.success(), "{output:?}");
        run
    };
    let momentum = train("momentum", &["--optimizer", "momentum"]);
    let adam = train("adam", &["--optimizer", "adam"]);
    let keep = |run: &Path| {
        (
            fs::read(run.join("checkpoint.npz")).unwrap(),
            fs::read_to_string(run.join("config.json")).unwrap(),
        )
    };
    let (momentum_checkpoint, momentum_config) = keep(&momentum);
    let (adam_checkpoint, _) = keep(&adam);
    // Each edit of a checkpoint, then --resume: one error line naming the array.
    type Edit = Box<dyn Fn(&mut Vec<(String, Vec<u8>)>)>;
    let drop_entries = |prefix: &'static str| -> Edit {
        Box::new(move |entries| entries.retain(|(name, _)| !name.starts_with(prefix)))
    };
    let cases: Vec<(&Path, &[u8], Edit, &[&str])> = vec![
        (
            &momentum,
            &momentum_checkpoint,
            drop_entries("optimizer."),
            &["optimizer.velocity.weight0", "no such array"],
        ),
        (
            &momentum,
            &momentum_checkpoint,
            drop_entries("optimizer.velocity.weight1"),
            &["optimizer.velocity.weight1", "no such array"],
        ),
        (
            &adam,
            &adam_checkpoint,
            drop_entries("optimizer.second_moment.bias2"),
            &["optimizer.second_moment.bias2", "no such array"],
        ),
        (
            &adam,
            &adam_checkpoint,
            Box::new(|entries| {
                // 1 epoch of 40 images at batch 64: 1 step taken; the counter says 5.
                let progress: Vec<u8> = [1u64, 1, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
                replace(entries, "progress", "<u8", &[3], &progress);
            }),
            &["step counter is 5 but 1 steps were taken"],
        ),
        (
            &momentum,
            &momentum_checkpoint,
            Box::new(|entries| {
                let nan: Vec<u8> = f64::NAN.to_le_bytes().to_vec();
                replace(entries, "history.train_loss", "<f8", &[1], &nan);
            }),
            &["history.train_loss holds NaN"],
        ),
        (
            &momentum,
            &momentum_checkpoint,
            Box::new(|entries| {
                let mut weight = vec![0.5f32; 12];
                weight[7] = f32::NAN;
                replace(entries, "weight0", "<f4", &[4, 3], &f32_bytes(&weight));
            }),
            &["weight0 holds NaN"],
        ),
    ];
    for (run, original, edit, fragments) in cases {
        let checkpoint = run.join("checkpoint.npz");
        fs::write(&checkpoint, original).unwrap();
        edit_npz(&checkpoint, edit);
        let output = backprop(&["train", "--resume", run.to_str().unwrap()]);
        one_error_line(&output, 1, &[&["checkpoint.npz"], fragments].concat());
    }
    // config.json says adam where the checkpoint holds momentum's velocity.
    fs::write(momentum.join("checkpoint.npz"), &momentum_checkpoint).unwrap();
    fs::write(
        momentum.join("config.json"),
        momentum_config.replace("\"optimizer\": \"momentum\"", "\"optimizer\": \"adam\""),
    )
    .unwrap();
    let output = backprop(&["train", "--resume", momentum.to_str().unwrap()]);
    one_error_line(
        &output,
        1,
        &[
            "optimizer.velocity",
            "a buffer this run's optimizer does not have",
        ],
    );

    // Settings the checkpoint records, edited in config.json; the checkpoint of another seed.
    fs::write(momentum.join("config.json"), &momentum_config).unwrap();
    let other_data = data("whole-other", |files| {
        set(
            files,
            "train-images-idx3-ubyte",
            idx(0x803, &[40, 2, 2], &[99; 160]),
        );
    });
    let edits = [
        ("\"seed\": 0", "\"seed\": 1", "seed 0"),
        ("\"batch_size\": 64", "\"batch_size\": 32", "batch_size 64"),
        ("\"lr\": 0.03", "\"lr\": 0.01", "lr 0.03"),
        (
            "\"nesterov\": false",
            "\"nesterov\": true",
            "nesterov false",
        ),
        ("\"limit\": null", "\"limit\": 30", "limit null"),
    ];
    for (from, to, fragment) in edits {
        assert!(
            momentum_config.contains(from),
            "{from} in {momentum_config}"
        );
        fs::write(
            momentum.join("config.json"),
            momentum_config.replace(from, to),
        )
        .unwrap();
        let output = backprop(&["train", "--resume", momentum.to_str().unwrap()]);
        one_error_line(
            &output,
            1,
            &["checkpoint.npz", fragment, "in config.json is now"],
        );
    }
    let data_line = format!("\"data\": {:?}", fs::canonicalize(&*dir).unwrap());
    let other_line = format!("\"data\": {:?}", fs::canonicalize(&*other_data).unwrap());
    assert!(
        momentum_config.contains(&data_line),
        "{data_line} in {momentum_config}"
    );
    fs::write(
        momentum.join("config.json"),
        momentum_config.replace(&data_line, &other_line),
    )
    .unwrap();
    let output = backprop(&["train", "--resume", momentum.to_str().unwrap()]);
    one_error_line(
        &output,
        1,
        &["data_digest", "the data (its images and labels)"],
    );
    fs::write(momentum.join("config.json"), &momentum_config).unwrap();
    let seed99 = train("seed99", &["--optimizer", "momentum", "--seed", "99"]);
    fs::copy(
        seed99.join("checkpoint.npz"),
        momentum.join("checkpoint.npz"),
    )
    .unwrap();
    let output = backprop(&["train", "--resume", momentum.to_str().unwrap()]);
    one_error_line(&output, 1, &["seed 99", "seed in config.json is now 0"]);

    // Each edit of a batch-norm model.npz, then eval.
    let model = adam.join("model.npz");
    let original = fs::read(&model).unwrap();
    let model_cases: Vec<(Edit, &[&str])> = vec![
        (
            Box::new(|entries| {
                replace(
                    entries,
                    "norm0.gamma",
                    "<f4",
                    &[3],
                    &f32_bytes(&[1.0, f32::NAN, 1.0]),
                )
            }),
            &["norm0.gamma [1] is NaN"],
        ),
        (
            Box::new(|entries| {
                replace(
                    entries,
                    "norm0.beta",
                    "<f4",
                    &[3],
                    &f32_bytes(&[0.0, 0.0, f32::INFINITY]),
                )
            }),
            &["norm0.beta [2] is inf"],
        ),
        (
            Box::new(|entries| {
                let var = f32_bytes(&[1.0, -0.5, 1.0]);
                replace(entries, "norm0.running_var", "<f4", &[3], &var)
            }),
            &["norm0.running_var [1] is -0.5", "never negative"],
        ),
        (
            drop_entries("norm.npy"),
            &[
                "norm0.",
                "a normalization layer the model's architecture does not have",
            ],
        ),
    ];
    for (edit, fragments) in model_cases {
        fs::write(&model, &original).unwrap();
        edit_npz(&model, edit);
        let output = backprop(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            dir.to_str().unwrap(),
        ]);
        one_error_line(&output, 1, &[&["model.npz"], fragments].concat());
    }
}

#[test]
fn a_loss_that_overflows_before_any_update_blames_the_init_not_the_learning_rate() {
    let dir = data("overflow-init", |_| {});
    let runs = scratch("overflow-init-runs");
    let train = |name: &str, extra: &[&str]| {
        let out = runs.join(name);
        let args = [
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--epochs",
            "3",
            "-q",
        ];
        backprop(&[&args[..], extra, &["--out", out.to_str().unwrap()]].concat())
    };
    let output = train("init", &["--init", "normal:1e30"]);
    one_error_line(
        &output,
        1,
        &["step 1", "before any update", "--init normal:"],
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("--lr"));
    // After updates, the learning rate is the suspect.
    let output = train("lr", &["--lr", "1e30", "--batch-size", "8"]);
    one_error_line(&output, 1, &["try a smaller --lr"]);
}

#[test]
fn resume_takes_no_force() {
    let output = backprop(&["train", "--resume", "anywhere", "--force"]);
    one_error_line(&output, 2, &["--force", "--resume"]);
}

#[cfg(target_os = "linux")]
#[test]
fn the_memory_check_honours_an_address_space_limit() {
    let dir = data("ulimit", |_| {});
    let out = scratch("ulimit-out").join("run");
    // 4 GB of address space: --hidden 30000,30000 needs about 7 GB, less than the machine's
    // memory, but more than that.
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4000000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--hidden", "30000,30000", "--data"])
        .arg(&*dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    one_error_line(&output, 2, &["--hidden 30000,30000", "ulimit -v"]);
    assert!(!out.exists(), "nothing is written before the check passes");
}

#[test]
fn force_replaces_nothing_when_a_run_file_is_a_folder() {
    let dir = data("force-folder", |_| {});
    let run = scratch("force-folder-run").join("run");
    let train = [
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
        "-q",
        "--out",
        run.to_str().unwrap(),
    ];
    assert!(backprop(&train).status.success());
    fs::remove_file(run.join("metrics.csv")).unwrap();
    fs::create_dir(run.join("metrics.csv")).unwrap();
    let output = backprop(&[&train[..], &["--force"]].concat());
    one_error_line(
        &output,
        1,
        &["metrics.csv", "is a folder", "nothing was removed"],
    );
    for file in ["config.json", "model.npz", "checkpoint.npz"] {
        assert!(run.join(file).is_file(), "{file} was removed");
    }
}
