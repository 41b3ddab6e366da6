//! Property tests over hostile input files: thousands of IDX images and labels files (headers of
//! any size, bodies of any length, raw or gzip'd, truncated, bytes flipped) and `.npz` models
//! (any `.npy` header shape, element type and data length, stored or deflated).
//!
//! For every case: no panic, a clean error or a correct load, and the peak memory the reader
//! holds stays within a small factor of the bytes the file really has (the counting allocator
//! measures it). The generator is seeded, so every run sees the same cases; case counts are
//! printed; `BACKPROP_FUZZ_CASES=N` runs N times as many.

use std::fs;
use std::io::Write;
use std::path::Path;

use backprop::model_file::load_model;
use backprop_data::mnist::{CLASSES, parse_idx_images, parse_idx_labels};
use backprop_harness::alloc::{
    CountingAllocator, count_this_thread, live_bytes, peak_live_bytes, reset_peak,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::common::{Scratch, npy, zip_of};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Room every read may take whatever the file: buffers, gzip's window, the zip directory.
const FIXED_ALLOWANCE: usize = 512 << 10;

/// Peak bytes a reader may hold per byte of its (decompressed) input.
const BYTES_PER_INPUT_BYTE: usize = 16;

fn cases(base: u32) -> u32 {
    let scale = std::env::var("BACKPROP_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1);
    base * scale
}

/// A runner with a fixed seed: CI sees the same cases every time.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// The peak bytes `read` held above what was live before it.
fn peak_of<T>(read: impl FnOnce() -> T) -> (T, usize) {
    let before = live_bytes();
    reset_peak();
    let result = read();
    (result, peak_live_bytes().saturating_sub(before))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A header size: mostly small, sometimes anything a `u32` holds.
fn size() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..6, 1 => any::<u32>(), 1 => Just(u32::MAX)]
}

/// An IDX file: `(the raw bytes before any damage, the file, intact)`. Half the bodies hold
/// exactly what the header promises; then the file may be gzip'd, cut short or have bytes
/// flipped.
fn idx_file(dims: usize, magic: u32) -> impl Strategy<Value = (Vec<u8>, Vec<u8>, bool)> {
    (
        prop_oneof![5 => Just(magic), 1 => any::<u32>()],
        prop::collection::vec(size(), dims),
        any::<bool>(),
        prop::collection::vec(prop_oneof![3 => 0u8..10, 1 => any::<u8>()], 0..200),
        any::<bool>(),
        prop_oneof![3 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
        prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..3)],
    )
        .prop_map(move |(magic, sizes, consistent, mut body, gzipped, cut, flips)| {
            let promised = sizes.iter().try_fold(1usize, |len, &size| len.checked_mul(size as usize));
            if let Some(promised) = promised.filter(|&len| consistent && len <= 2048) {
                body = body.iter().copied().cycle().take(promised).collect();
                body.resize(promised, 1);
            }
            let mut raw = magic.to_be_bytes().to_vec();
            for size in &sizes {
                raw.extend(size.to_be_bytes());
            }
            raw.extend(&body);
            let mut file = if gzipped { gzip(&raw) } else { raw.clone() };
            let whole = file.len();
            if let Some(cut) = cut {
                file.truncate(cut.index(whole + 1));
            }
            let intact = flips.is_empty() && file.len() == whole;
            for (at, byte) in flips {
                if !file.is_empty() {
                    let at = at.index(file.len());
                    file[at] = byte;
                }
            }
            (raw, file, intact)
        })
}

fn within_bound(peak: usize, raw_len: usize, file_len: usize) -> Result<(), TestCaseError> {
    let bound = BYTES_PER_INPUT_BYTE * raw_len.max(file_len) + FIXED_ALLOWANCE;
    prop_assert!(
        peak <= bound,
        "the reader held {peak} bytes for a {file_len}-byte file"
    );
    Ok(())
}

#[test]
fn hostile_files_give_a_clean_error_or_a_correct_load_in_bounded_memory() {
    count_this_thread();
    let path = Path::new("fuzz");
    let loaded = std::cell::Cell::new([0usize; 3]);
    let count = |kind: usize| {
        let mut counts = loaded.get();
        counts[kind] += 1;
        loaded.set(counts);
    };

    // IDX images.
    let image_cases = cases(3000);
    runner(image_cases)
        .run(&idx_file(3, 0x803), |(raw, file, intact)| {
            let (result, peak) = peak_of(|| parse_idx_images(path, &file[..]));
            within_bound(peak, raw.len(), file.len())?;
            if let Ok((images, rows, cols)) = result {
                count(0);
                // A damaged file may still be a valid one (a cut that lands on a promise).
                prop_assert!(!intact || images.len() == raw.len() - 16);
                prop_assert!(images.nrows() > 0 && rows * cols > 0);
                prop_assert!(
                    images
                        .iter()
                        .zip(&raw[16..])
                        .all(|(&x, &b)| x == f32::from(b) / 255.0)
                        || !intact
                );
            }
            Ok(())
        })
        .unwrap();

    // IDX labels.
    let label_cases = cases(2000);
    runner(label_cases)
        .run(&idx_file(1, 0x801), |(raw, file, intact)| {
            let (result, peak) = peak_of(|| parse_idx_labels(path, &file[..]));
            within_bound(peak, raw.len(), file.len())?;
            if let Ok(labels) = result {
                count(1);
                prop_assert!(labels.iter().all(|&label| label < CLASSES));
                prop_assert!(
                    !intact
                        || labels
                            .iter()
                            .zip(&raw[8..])
                            .all(|(&l, &b)| l == usize::from(b))
                );
            }
            Ok(())
        })
        .unwrap();

    // .npz models.
    let folder = Scratch::new("fuzz");
    let model_path = folder.join("model.npz");
    let npz_cases = cases(1500);
    runner(npz_cases)
        .run(&npz_file(), |bytes| {
            std::fs::write(&model_path, &bytes).unwrap();
            let (result, peak) = peak_of(|| load_model(&model_path));
            within_bound(peak, bytes.len(), bytes.len())?;
            if let Ok(model) = result {
                count(2);
                prop_assert!(
                    model
                        .params
                        .iter()
                        .all(|(weight, bias)| weight.ncols() == bias.len())
                );
            }
            Ok(())
        })
        .unwrap();
    let [images, labels, models] = loaded.get();
    eprintln!(
        "fuzz: {image_cases} IDX images files ({images} loaded), {label_cases} IDX labels files \
         ({labels} loaded), {npz_cases} .npz models ({models} loaded): no panic, every peak \
         within {BYTES_PER_INPUT_BYTE} x the file + {} KiB",
        FIXED_ALLOWANCE >> 10
    );
}

/// A model-like `.npz`: `weight0`, `bias0` and `activation` entries, each either what a model
/// holds (`<f4` (2, 3), `<f4` (3,), `|u1` "relu") or a header of any shape and type, with
/// data of the declared length or not, stored or deflated; the archive sometimes cut short.
fn npz_file() -> impl Strategy<Value = Vec<u8>> {
    let dim = prop_oneof![6 => 0u64..6, 1 => any::<u64>(), 1 => Just(100_000u64)];
    let hostile = (
        prop::sample::select(vec!["<f4", "<f8", "|u1", "<i8", "x"]),
        prop::collection::vec(dim, 0..3),
        any::<bool>(),
        0usize..64,
    )
        .prop_map(|(descr, shape, exact, length)| {
            let item = descr
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .unwrap_or(1);
            let declared = shape
                .iter()
                .try_fold(item, |len, &axis| len.checked_mul(axis));
            let data_len = match (exact, declared) {
                (true, Some(len)) if len <= 4096 => len as usize,
                _ => length,
            };
            npy(descr, &shape, &vec![7u8; data_len])
        });
    let entry = |valid: Vec<u8>| prop_oneof![2 => Just(valid), 1 => hostile.clone()];
    let floats =
        |count: usize| -> Vec<u8> { (0..count).flat_map(|_| 0.5f32.to_le_bytes()).collect() };
    (
        entry(npy("<f4", &[2, 3], &floats(6))),
        entry(npy("<f4", &[3], &floats(3))),
        entry(npy("|u1", &[4], b"relu")),
        prop::collection::vec(any::<bool>(), 3),
        prop_oneof![3 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
    )
        .prop_map(|(weight, bias, activation, deflated, cut)| {
            let entries = [
                ("weight0.npy", &weight[..], deflated[0]),
                ("bias0.npy", &bias[..], deflated[1]),
                ("activation.npy", &activation[..], deflated[2]),
            ];
            let mut bytes = zip_of(&entries);
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

/// What one mutation does to a stopped run's `checkpoint.npz` or `config.json`.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove checkpoint entry `entry`.
    Delete { entry: prop::sample::Index },
    /// Give entry `entry` the name of entry `other` too (the two swap names, or one is lost).
    Rename {
        entry: prop::sample::Index,
        other: prop::sample::Index,
    },
    /// The entry's `.npy` shape written as one row `(1, n)` or flattened `(n,)`.
    Reshape { entry: prop::sample::Index },
    /// The entry's element type said to be another of the same or another width.
    Retype {
        entry: prop::sample::Index,
        descr: &'static str,
    },
    /// One element of a float entry made `value`.
    Poison {
        entry: prop::sample::Index,
        at: prop::sample::Index,
        value: f64,
    },
    /// The entry replaced by the same entry of a run with another seed.
    Swap { entry: prop::sample::Index },
    /// A setting of `config.json` given another value.
    Setting {
        key: &'static str,
        value: &'static str,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        3 => index().prop_map(|entry| Mutation::Delete { entry }),
        1 => (index(), index()).prop_map(|(entry, other)| Mutation::Rename { entry, other }),
        1 => index().prop_map(|entry| Mutation::Reshape { entry }),
        1 => (index(), prop::sample::select(vec!["<f4", "<f8", "<u8", "|u1", "<i4"]))
            .prop_map(|(entry, descr)| Mutation::Retype { entry, descr }),
        3 => (
            index(),
            index(),
            prop::sample::select(vec![f64::NAN, f64::INFINITY, -5.0, 1e308, 0.0])
        )
            .prop_map(|(entry, at, value)| Mutation::Poison { entry, at, value }),
        2 => index().prop_map(|entry| Mutation::Swap { entry }),
        2 => prop::sample::select(vec![
            ("seed", "1"),
            ("batch_size", "7"),
            ("lr", "0.002"),
            ("optimizer", "\"momentum\""),
            ("optimizer", "\"sgd\""),
            ("limit", "30"),
            ("weight_decay", "0.1"),
            ("norm", "\"layer\""),
        ])
        .prop_map(|(key, value)| Mutation::Setting { key, value }),
    ]
}

/// The `.npy` header's end and its `descr`.
fn npy_layout(bytes: &[u8]) -> Option<(usize, String)> {
    let header_len = usize::from(u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]));
    let header = std::str::from_utf8(bytes.get(10..10 + header_len)?).ok()?;
    let descr = header
        .split("'descr': '")
        .nth(1)?
        .split('\'')
        .next()?
        .to_string();
    Some((10 + header_len, descr))
}

/// An `.npz`'s entries, in order.
fn npz_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (entry.name().to_string(), data)
        })
        .collect()
}

/// `mutation` applied to a checkpoint's entries or to `config.json`'s text.
fn mutate(
    mutation: &Mutation,
    entries: &mut Vec<(String, Vec<u8>)>,
    other_run: &[(String, Vec<u8>)],
    config: &mut String,
) {
    let pick = |index: &prop::sample::Index, len: usize| index.index(len);
    match mutation {
        Mutation::Delete { entry } => {
            entries.remove(pick(entry, entries.len()));
        }
        Mutation::Rename { entry, other } => {
            let (from, to) = (pick(entry, entries.len()), pick(other, entries.len()));
            // The renamed entry replaces the one whose name it takes.
            if from != to {
                entries[from].0 = entries[to].0.clone();
                entries.remove(to);
            }
        }
        Mutation::Reshape { entry } => {
            let slot = pick(entry, entries.len());
            let (_, bytes) = &mut entries[slot];
            let text = String::from_utf8_lossy(bytes).into_owned();
            // (n,) -> (1, n); (a, b) -> (a b,): the header keeps its padded length.
            if let Some((end, descr)) = npy_layout(bytes) {
                let elements = (bytes.len() - end) / descr_width(&descr).max(1);
                let shape = if text.contains(&format!("'shape': ({elements},)")) {
                    format!("(1, {elements})")
                } else {
                    format!("({elements},)")
                };
                replace_shape(bytes, end, &shape);
            }
        }
        Mutation::Retype { entry, descr } => {
            let slot = pick(entry, entries.len());
            let (_, bytes) = &mut entries[slot];
            if let Some((end, old)) = npy_layout(bytes) {
                let header = String::from_utf8_lossy(&bytes[10..end])
                    .replace(&format!("'descr': '{old}'"), &format!("'descr': '{descr}'"));
                set_header(bytes, end, &header);
            }
        }
        Mutation::Poison { entry, at, value } => {
            let slot = pick(entry, entries.len());
            let (_, bytes) = &mut entries[slot];
            if let Some((end, descr)) = npy_layout(bytes) {
                let width = descr_width(&descr);
                let elements = (bytes.len() - end) / width.max(1);
                if elements > 0 && (descr == "<f4" || descr == "<f8") {
                    let start = end + pick(at, elements) * width;
                    let poison = match width {
                        4 => (*value as f32).to_le_bytes().to_vec(),
                        _ => value.to_le_bytes().to_vec(),
                    };
                    bytes[start..start + width].copy_from_slice(&poison);
                }
            }
        }
        Mutation::Swap { entry } => {
            let at = pick(entry, entries.len());
            if let Some((_, theirs)) = other_run.iter().find(|(name, _)| *name == entries[at].0) {
                entries[at].1 = theirs.clone();
            }
        }
        Mutation::Setting { key, value } => {
            let line = config
                .lines()
                .find(|line| line.trim_start().starts_with(&format!("\"{key}\":")))
                .map(str::to_owned);
            if let Some(line) = line {
                let comma = if line.ends_with(',') { "," } else { "" };
                *config = config.replace(&line, &format!("  \"{key}\": {value}{comma}"));
            }
        }
    }
}

fn descr_width(descr: &str) -> usize {
    descr[2..].parse().unwrap_or(1)
}

/// Writes `header` (padded with spaces to the old length, as `.npy` headers are) before `end`.
fn set_header(bytes: &mut Vec<u8>, end: usize, header: &str) {
    let old_len = end - 10;
    let mut header = header.trim_end().to_string();
    if header.len() + 1 > old_len {
        return; // does not fit: leave the entry as it is
    }
    while header.len() + 1 < old_len {
        header.push(' ');
    }
    header.push('\n');
    bytes.splice(10..end, header.into_bytes());
}

fn replace_shape(bytes: &mut Vec<u8>, end: usize, shape: &str) {
    let header = String::from_utf8_lossy(&bytes[10..end]).into_owned();
    let Some(start) = header.find("'shape': ") else {
        return;
    };
    let close = header[start..]
        .find(')')
        .map_or(header.len(), |at| start + at + 1);
    let header = format!("{}'shape': {shape}{}", &header[..start], &header[close..]);
    set_header(bytes, end, &header);
}

#[test]
fn a_mutated_checkpoint_or_config_resumes_identically_or_is_one_clean_error() {
    // Phase 1: a whole run of 2 epochs, and one stopped after 1 (its config then asks for 2),
    // Adam and batch norm so that every kind of optimizer buffer and counter is there; and the
    // checkpoint of a run with another seed, for swaps.
    let scratch = Scratch::new("fuzz-checkpoint");
    let labels = |count: u8| idx_labels(count);
    let images = |count: u8| {
        let pixels: Vec<u8> = (0..u32::from(count) * 4)
            .map(|i| (i * 37 % 256) as u8)
            .collect();
        crate::common::idx(0x803, &[u32::from(count), 2, 2], &pixels)
    };
    let data = scratch.join("data");
    fs::create_dir_all(&data).unwrap();
    for (name, bytes) in [
        ("train-images-idx3-ubyte", images(48)),
        ("train-labels-idx1-ubyte", labels(48)),
        ("t10k-images-idx3-ubyte", images(10)),
        ("t10k-labels-idx1-ubyte", labels(10)),
    ] {
        fs::write(data.join(name), bytes).unwrap();
    }
    let train = |out: &Path, epochs: &str, seed: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_backprop"))
            .args([
                "train",
                "--hidden",
                "5",
                "--norm",
                "batch",
                "--optimizer",
                "adam",
            ])
            .args([
                "--batch-size",
                "16",
                "--threads",
                "1",
                "-q",
                "--epochs",
                epochs,
            ])
            .args(["--seed", seed, "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    };
    let (whole, stopped, other) = (
        scratch.join("whole"),
        scratch.join("stopped"),
        scratch.join("other"),
    );
    train(&whole, "2", "0");
    train(&stopped, "1", "0");
    train(&other, "1", "7");
    let config = fs::read_to_string(stopped.join("config.json"))
        .unwrap()
        .replace("\"epochs\": 1,", "\"epochs\": 2,");
    let checkpoint = npz_entries(&fs::read(stopped.join("checkpoint.npz")).unwrap());
    let other_checkpoint = npz_entries(&fs::read(other.join("checkpoint.npz")).unwrap());
    let expected: Vec<Vec<u8>> = ["metrics.csv", "model.npz", "checkpoint.npz"]
        .iter()
        .map(|file| fs::read(whole.join(file)).unwrap())
        .collect();

    // Phase 2: each case in a fresh copy of the stopped run, resumed.
    let (errors, identical) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let case_count = cases(48);
    let case = std::cell::Cell::new(0usize);
    runner(case_count)
        .run(&prop::collection::vec(mutation(), 1..3), |mutations| {
            case.set(case.get() + 1);
            let run = scratch.join(format!("case{}", case.get()));
            fs::create_dir_all(&run).unwrap();
            for file in [
                "metrics.csv",
                "model.npz",
                "loss.svg",
                "accuracy.svg",
                "grad_norms.svg",
            ] {
                fs::copy(stopped.join(file), run.join(file)).unwrap();
            }
            let (mut entries, mut text) = (checkpoint.clone(), config.clone());
            for mutation in &mutations {
                mutate(mutation, &mut entries, &other_checkpoint, &mut text);
            }
            let borrowed: Vec<(&str, &[u8], bool)> = entries
                .iter()
                .map(|(name, bytes)| (name.as_str(), bytes.as_slice(), false))
                .collect();
            fs::write(run.join("checkpoint.npz"), zip_of(&borrowed)).unwrap();
            fs::write(run.join("config.json"), &text).unwrap();
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_backprop"))
                .args(["train", "-q", "--resume"])
                .arg(&run)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                identical.set(identical.get() + 1);
                for (file, expected) in ["metrics.csv", "model.npz", "checkpoint.npz"]
                    .iter()
                    .zip(&expected)
                {
                    prop_assert!(
                        fs::read(run.join(file)).unwrap() == *expected,
                        "{mutations:?}: resumed, but {file} differs from the uninterrupted run's"
                    );
                }
            } else {
                errors.set(errors.get() + 1);
                prop_assert!(
                    stderr.starts_with("error: ")
                        && stderr.lines().count() == 1
                        && !stderr.contains("panicked"),
                    "{mutations:?}: not one clean error line: {stderr}"
                );
            }
            fs::remove_dir_all(&run).unwrap();
            Ok(())
        })
        .unwrap();
    println!(
        "{case_count} mutated checkpoints and configs: {} refused with one error line, {} resumed \
         identically",
        errors.get(),
        identical.get()
    );
    assert!(
        errors.get() > 0,
        "no case was refused: the mutations did not bite"
    );
}

fn idx_labels(count: u8) -> Vec<u8> {
    crate::common::idx(
        0x801,
        &[u32::from(count)],
        &(0..count).map(|i| i % 10).collect::<Vec<_>>(),
    )
}
