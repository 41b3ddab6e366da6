//! Property tests over hostile input files: thousands of IDX images and labels files (headers of
//! any size, bodies of any length, raw or gzip'd, truncated, bytes flipped) and `.npz` models
//! (any `.npy` header shape, element type and data length, stored or deflated).
//!
//! For every case: no panic, a clean error or a correct load, and the peak memory the reader
//! holds stays within a small factor of the bytes the file really has (the counting allocator
//! measures it). The generator is seeded, so every run sees the same cases; case counts are
//! printed; `BACKPROP_FUZZ_CASES=N` runs N times as many.

use std::io::Write;
use std::path::Path;

use backprop::model_file::load_model;
use backprop_core::mnist::{CLASSES, parse_idx_images, parse_idx_labels};
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
