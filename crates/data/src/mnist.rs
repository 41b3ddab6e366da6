//! Reading MNIST-style data sets: the four IDX files, gzip'd or raw.
//!
//! An IDX file is a big-endian header, then the data: images are magic `0x00000803`, the count,
//! rows and columns (three `u32`), then one byte per pixel; labels are magic `0x00000801`, the
//! count, then one byte per label. Any folder holding `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each
//! optionally with `.gz`) loads the same way, so Fashion-MNIST works too.
//!
//! A file is trusted for nothing: the sizes its header declares are multiplied in `u128` (no
//! overflow), and the body is read, or inflated, only up to the declared length plus one byte,
//! so memory never grows beyond the bytes the file really holds (a 16-byte file cannot make the
//! loader allocate terabytes, a gzip bomb stops inflating one byte past its promise), nor
//! beyond what the machine's memory can take once loaded (a file whose pixels, as `f32`, would
//! not fit is refused as soon as it has held more than that, however small it is gzip'd). A data
//! set loads only if every label is below [`CLASSES`], it has at least one image of at least one
//! pixel, and the training and test images have the same size.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use ndarray::{Array2, ArrayView2, Axis};
use thiserror::Error;

use crate::files::open_regular;
use crate::memory::{human_bytes, machine_memory};

/// The number of classes of an MNIST-style data set: every label must be below it.
pub const CLASSES: usize = 10;

/// Why a data set could not be read. Every variant names the file.
#[derive(Debug, Error)]
pub enum DataError {
    /// Neither the file nor its `.gz` form exists.
    #[error("{}: file not found (also looked for {}.gz)", path.display(), path.display())]
    Missing {
        /// The path looked for, without `.gz`.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{}: corrupt gzip data: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        source: io::Error,
    },
    /// The first four bytes are not the IDX magic number this file should have.
    #[error(
        "{}: wrong magic number {found:#010x}, expected {expected:#010x} (IDX {kind})",
        path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number an IDX file of this kind starts with.
        expected: u32,
        /// The first four bytes, big-endian.
        found: u32,
        /// `"images"` or `"labels"`.
        kind: &'static str,
    },
    /// The file ends before the header or the data it promises.
    #[error(
        "{}: truncated (the header promises {expected} bytes, the file holds {found})",
        path.display()
    )]
    Truncated {
        /// Header plus data size, from the header (a `u128`: three `u32` sizes multiplied).
        expected: u128,
        /// The (decompressed) size.
        found: u64,
        /// The file.
        path: PathBuf,
    },
    /// The file goes on after the data its header promises.
    #[error(
        "{}: trailing bytes after the data (the header promises {expected} bytes, the file \
         holds more)",
        path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Header plus data size, from the header.
        expected: u128,
    },
    /// The file holds more data than the machine's memory can take once loaded (a gzip'd file
    /// can inflate to far more than its own size): refused before that much is read.
    #[error(
        "{}: the header declares {declared} bytes of {kind} and the file holds more than {}; \
         loaded they would need more than this machine's {} of memory",
        path.display(),
        human_bytes(*budget),
        human_bytes(*memory)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// `"images"` or `"labels"`.
        kind: &'static str,
        /// The data size its header declares.
        declared: u128,
        /// The most data bytes the machine's memory allows (reading stopped one byte past it).
        budget: u128,
        /// The machine's memory.
        memory: u128,
    },
    /// The images and labels files disagree on the number of samples.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Its image count.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Its label count.
        labels: usize,
    },
    /// A label names no class.
    #[error(
        "{}: label {label} at index {index} is not a class (labels must be below {CLASSES})",
        path.display()
    )]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// The first bad label's index.
        index: usize,
        /// Its value.
        label: usize,
    },
    /// Nothing to learn from: no images, or images of no pixels.
    #[error("{}: {problem}", path.display())]
    Empty {
        /// The images file.
        path: PathBuf,
        /// `"no images"` or `"images of 0 pixels (R x C)"`.
        problem: String,
    },
    /// The training and test images differ in size.
    #[error(
        "{} holds {}x{} images but {} holds {}x{}: a model takes one image size",
        train_path.display(), train.0, train.1, test_path.display(), test.0, test.1
    )]
    ImageSizeMismatch {
        /// The training images file.
        train_path: PathBuf,
        /// Its (rows, cols).
        train: (usize, usize),
        /// The test images file.
        test_path: PathBuf,
        /// Its (rows, cols).
        test: (usize, usize),
    },
}

/// Images and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// One image per row, `rows * cols` pixels scaled from 0..=255 to [0, 1].
    pub images: Array2<f32>,
    /// One class index per image.
    pub labels: Vec<usize>,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
}

impl Dataset {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `count` samples (all of them if there are fewer).
    pub fn first(&self, count: usize) -> Dataset {
        let count = count.min(self.len());
        Dataset {
            images: self
                .images
                .slice_axis(Axis(0), (0..count).into())
                .to_owned(),
            labels: self.labels[..count].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The images as a view, ready for `forward`.
    pub fn images(&self) -> ArrayView2<'_, f32> {
        self.images.view()
    }
}

/// The training and test halves of an MNIST-style data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// `train-*` files: 60,000 samples for MNIST.
    pub train: Dataset,
    /// `t10k-*` files: 10,000 samples for MNIST.
    pub test: Dataset,
}

/// Loads the four IDX files from `dir` (each raw or gzip'd).
///
/// # Errors
/// A [`DataError`] naming the first file that is missing, unreadable, corrupt, of the wrong
/// kind or size, whose count disagrees with its partner's, that holds a label of no class or no
/// image; or the two images files when their image sizes differ.
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<Mnist, DataError> {
    let dir = dir.as_ref();
    let train = load_split(dir, "train")?;
    let test = load_split(dir, "t10k")?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::ImageSizeMismatch {
            train_path: locate(&dir.join("train-images-idx3-ubyte"))?,
            train: (train.rows, train.cols),
            test_path: locate(&dir.join("t10k-images-idx3-ubyte"))?,
            test: (test.rows, test.cols),
        });
    }
    Ok(Mnist { train, test })
}

/// Loads one split: `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]`.
///
/// # Errors
/// As [`load_mnist`].
pub fn load_split(dir: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let images_path = locate(&dir.join(format!("{prefix}-images-idx3-ubyte")))?;
    let (images, rows, cols) = read_idx_images(&images_path)?;
    let labels_path = locate(&dir.join(format!("{prefix}-labels-idx1-ubyte")))?;
    let labels = read_idx_labels(&labels_path)?;
    if images.nrows() != labels.len() {
        return Err(DataError::CountMismatch {
            images_path,
            images: images.nrows(),
            labels_path,
            labels: labels.len(),
        });
    }
    Ok(Dataset {
        images,
        labels,
        rows,
        cols,
    })
}

/// Reads an IDX images file: returns `(images (count, rows * cols) in [0, 1], rows, cols)`;
/// at least one image of at least one pixel.
///
/// # Errors
/// See [`DataError`].
pub fn read_idx_images(path: &Path) -> Result<(Array2<f32>, usize, usize), DataError> {
    parse_idx_images(path, open(path)?)
}

/// Reads an IDX labels file; every label is checked to be below [`CLASSES`].
///
/// # Errors
/// See [`DataError`].
pub fn read_idx_labels(path: &Path) -> Result<Vec<usize>, DataError> {
    parse_idx_labels(path, open(path)?)
}

/// [`read_idx_images`] from any source (raw or gzip'd IDX bytes); `path` only names it in
/// errors.
///
/// # Errors
/// See [`DataError`].
pub fn parse_idx_images(
    path: &Path,
    source: impl Read,
) -> Result<(Array2<f32>, usize, usize), DataError> {
    // Each byte read becomes an f32 (4 bytes) beside it.
    let budget = memory_budget(1 + 4);
    let (sizes, body) = read_idx(path, source, (0x0000_0803, 3, "images"), budget)?;
    let (count, rows, cols) = (sizes[0], sizes[1], sizes[2]);
    let empty = |problem: String| DataError::Empty {
        path: path.to_path_buf(),
        problem,
    };
    if count == 0 {
        return Err(empty("no images".into()));
    }
    if rows == 0 || cols == 0 {
        return Err(empty(format!("images of 0 pixels ({rows} x {cols})")));
    }
    // The body holds exactly count * rows * cols > 0 bytes, so every product here fits.
    let pixels: Vec<f32> = body.iter().map(|&pixel| f32::from(pixel) / 255.0).collect();
    let images = Array2::from_shape_vec((count, rows * cols), pixels)
        .expect("the body's length is the product of the header's sizes");
    Ok((images, rows, cols))
}

/// [`read_idx_labels`] from any source; `path` only names it in errors.
///
/// # Errors
/// See [`DataError`].
pub fn parse_idx_labels(path: &Path, source: impl Read) -> Result<Vec<usize>, DataError> {
    // Each byte read becomes a usize (8 bytes) beside it.
    let budget = memory_budget(1 + 8);
    let (_, body) = read_idx(path, source, (0x0000_0801, 1, "labels"), budget)?;
    let labels: Vec<usize> = body.iter().map(|&label| usize::from(label)).collect();
    if let Some(index) = labels.iter().position(|&label| label >= CLASSES) {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label: labels[index],
        });
    }
    Ok(labels)
}

/// `path` if something is there, else `path.gz` if something is there (what it is, [`open`]
/// checks).
fn locate(path: &Path) -> Result<PathBuf, DataError> {
    let gzipped = PathBuf::from(format!("{}.gz", path.display()));
    [path.to_path_buf(), gzipped]
        .into_iter()
        .find(|candidate| candidate.exists())
        .ok_or_else(|| DataError::Missing {
            path: path.to_path_buf(),
        })
}

/// The opened file, if it is a regular one (a FIFO or a device is refused unopened).
fn open(path: &Path) -> Result<fs::File, DataError> {
    open_regular(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => DataError::Missing {
            path: path.to_path_buf(),
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The most body bytes a file may hold when each takes `bytes_per_entry` bytes loaded: the
/// machine's memory divided by that (no bound where the memory cannot be read).
fn memory_budget(bytes_per_entry: u128) -> Option<Budget> {
    machine_memory().map(|memory| Budget {
        bytes: memory / bytes_per_entry,
        memory,
    })
}

/// At most `bytes` of body, of a machine with `memory` bytes.
#[derive(Debug, Clone, Copy)]
struct Budget {
    bytes: u128,
    memory: u128,
}

/// Reads one IDX file from `source` (inflating every gzip member when it starts with the gzip
/// magic `1f 8b`): checks the `magic` number, then reads exactly the body the `dims` sizes
/// promise, refusing one larger than `budget` before reading more than it. Returns the sizes
/// and the body.
fn read_idx(
    path: &Path,
    source: impl Read,
    (magic, dims, kind): (u32, usize, &'static str),
    budget: Option<Budget>,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    // Phase 1: raw or gzip (every member), decided by the first two bytes.
    let mut buffered = BufReader::new(source);
    let gzipped = buffered
        .fill_buf()
        .map_err(|source| io_error(path, source))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gzipped {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    // Phase 2: the header, its magic checked.
    let header_len = 4 + 4 * dims;
    let mut header = Vec::with_capacity(header_len);
    read_at_most(path, gzipped, &mut reader, header_len as u64, &mut header)?;
    let truncated = |expected: u128, found: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        found: found as u64,
    };
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if header.len() >= 4 && word(0) != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found: word(0),
            kind,
        });
    }
    if header.len() < header_len {
        return Err(truncated(header_len as u128, header.len()));
    }
    // Phase 3: exactly the body the sizes promise.
    let sizes: Vec<u32> = (0..dims).map(|dim| word(4 + 4 * dim)).collect();
    // At most three u32 factors: the product fits in u128 whatever the header says.
    let body_len: u128 = sizes.iter().map(|&size| u128::from(size)).product();
    let body = read_body(
        path,
        (gzipped, kind),
        &mut reader,
        (header_len, body_len),
        budget,
    )?;
    // The body is in memory, so each size and their product fit in usize.
    let sizes = sizes.iter().map(|&size| size as usize).collect();
    Ok((sizes, body))
}

/// Reads a body of exactly `body_len` bytes: one byte past the promise at most, enough to
/// tell "trailing bytes" without reading (or inflating) the rest, and one byte past the
/// `budget` at most, enough to tell a body too large for memory.
fn read_body(
    path: &Path,
    (gzipped, kind): (bool, &'static str),
    reader: &mut dyn Read,
    (header_len, body_len): (usize, u128),
    budget: Option<Budget>,
) -> Result<Vec<u8>, DataError> {
    let expected = header_len as u128 + body_len;
    let allowed = budget.map_or(body_len, |budget| body_len.min(budget.bytes));
    let limit = u64::try_from(allowed).unwrap_or(u64::MAX).saturating_add(1);
    let mut body = Vec::new();
    read_at_most(path, gzipped, reader, limit, &mut body)?;
    let read = body.len() as u128;
    if let Some(budget) = budget.filter(|budget| read > budget.bytes && budget.bytes < body_len) {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            kind,
            declared: body_len,
            budget: budget.bytes,
            memory: budget.memory,
        });
    }
    if read < body_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found: (header_len + body.len()) as u64,
        });
    }
    if read > body_len {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(body)
}

/// Appends at most `limit` bytes of `reader` to `into`; a decoder's error is a gzip error.
fn read_at_most(
    path: &Path,
    gzipped: bool,
    reader: &mut dyn Read,
    limit: u64,
    into: &mut Vec<u8>,
) -> Result<(), DataError> {
    reader
        .take(limit)
        .read_to_end(into)
        .map(drop)
        .map_err(|source| match gzipped {
            true => DataError::Gzip {
                path: path.to_path_buf(),
                source,
            },
            false => io_error(path, source),
        })
}

fn io_error(path: &Path, source: io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use flate2::{Compression, write::GzEncoder};

    fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut bytes = 0x0803u32.to_be_bytes().to_vec();
        for size in [count, rows, cols] {
            bytes.extend(size.to_be_bytes());
        }
        bytes.extend(pixels);
        bytes
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut bytes = 0x0801u32.to_be_bytes().to_vec();
        bytes.extend((labels.len() as u32).to_be_bytes());
        bytes.extend(labels);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A fresh folder under the temporary folder holding the given files, removed when dropped.
    fn folder(name: &str, files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("backprop-mnist-{name}-"))
            .tempdir()
            .unwrap();
        for (file, bytes) in files {
            fs::write(dir.path().join(file), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn raw_and_gzip_files_give_scaled_images_and_labels() {
        let images = idx_images(2, 1, 2, &[0, 255, 51, 102]);
        let dir = folder(
            "ok",
            &[
                ("train-images-idx3-ubyte.gz", gzip(&images)),
                ("train-labels-idx1-ubyte", idx_labels(&[7, 3])),
            ],
        );
        let train = load_split(dir.path(), "train").unwrap();
        assert_eq!(train.images, ndarray::array![[0.0, 1.0], [0.2, 0.4]]);
        assert_eq!(train.labels, vec![7, 3]);
        assert_eq!((train.rows, train.cols), (1, 2));
    }

    #[test]
    fn each_fault_names_the_file_and_the_problem() {
        let good_images = idx_images(2, 1, 2, &[0, 1, 2, 3]);
        // (case, the files in the folder, what the error must say)
        type Case<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                "missing",
                vec![("train-labels-idx1-ubyte", idx_labels(&[1, 2]))],
                "file not found",
            ),
            (
                "magic",
                vec![(
                    "train-images-idx3-ubyte",
                    idx_labels(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
                )],
                "wrong magic number 0x00000801, expected 0x00000803",
            ),
            (
                "truncated",
                vec![("train-images-idx3-ubyte", good_images[..18].to_vec())],
                "truncated (the header promises 20 bytes, the file holds 18)",
            ),
            (
                "gzip",
                vec![(
                    "train-images-idx3-ubyte.gz",
                    gzip(&good_images)[..20].to_vec(),
                )],
                "corrupt gzip data",
            ),
            (
                "count",
                vec![
                    ("train-images-idx3-ubyte", good_images.clone()),
                    ("train-labels-idx1-ubyte", idx_labels(&[1, 2, 3])),
                ],
                "holds 2 images but",
            ),
        ];
        for (name, files, expected) in cases {
            let dir = folder(name, &files);
            let message = load_split(dir.path(), "train").unwrap_err().to_string();
            assert!(message.contains(expected), "{name}: {message}");
            assert!(
                message.contains("train-"),
                "{name}: the file is not named: {message}"
            );
        }
    }

    /// The message of loading the train split of a folder holding these two files.
    fn train_error(name: &str, images: Vec<u8>, labels: Vec<u8>) -> String {
        let dir = folder(
            name,
            &[
                ("train-images-idx3-ubyte", images),
                ("train-labels-idx1-ubyte", labels),
            ],
        );
        load_split(dir.path(), "train").unwrap_err().to_string()
    }

    #[test]
    fn header_sizes_whose_product_overflows_are_a_clean_error() {
        let message = train_error(
            "overflow",
            idx_images(48_448_661, 494_770, 769_546, &[1, 2, 3, 4]),
            idx_labels(&[1]),
        );
        assert!(
            message.contains(
                "truncated (the header promises 18446744073709551636 bytes, the file holds 20)"
            ),
            "{message}"
        );
        let message = train_error(
            "overflow-1",
            idx_images(1, u32::MAX, u32::MAX, &[1, 2, 3, 4]),
            idx_labels(&[1]),
        );
        assert!(message.contains("truncated"), "{message}");
    }

    #[test]
    fn no_images_or_no_pixels_is_refused_whatever_size_is_declared() {
        // 16 bytes declaring 0 images of 65535 x 65535: nothing to allocate, nothing to learn.
        let message = train_error(
            "no-images",
            idx_images(0, 65_535, 65_535, &[]),
            idx_labels(&[]),
        );
        assert!(
            message.ends_with("train-images-idx3-ubyte: no images"),
            "{message}"
        );
        let message = train_error(
            "no-images-max",
            idx_images(0, u32::MAX, u32::MAX, &[]),
            idx_labels(&[]),
        );
        assert!(message.ends_with(": no images"), "{message}");
        let message = train_error(
            "no-pixels",
            idx_images(3, 0, 28, &[]),
            idx_labels(&[1, 2, 3]),
        );
        assert!(
            message.ends_with("images of 0 pixels (0 x 28)"),
            "{message}"
        );
    }

    #[test]
    fn a_label_that_is_no_class_names_the_file_and_its_index() {
        let message = train_error(
            "label",
            idx_images(3, 1, 1, &[0, 1, 2]),
            idx_labels(&[9, 200, 10]),
        );
        assert!(
            message.ends_with(
                "train-labels-idx1-ubyte: label 200 at index 1 is not a class (labels must be \
                 below 10)"
            ),
            "{message}"
        );
    }

    #[test]
    fn train_and_test_images_of_different_sizes_are_refused() {
        let dir = folder(
            "sizes",
            &[
                ("train-images-idx3-ubyte", idx_images(1, 2, 2, &[0; 4])),
                ("train-labels-idx1-ubyte", idx_labels(&[1])),
                ("t10k-images-idx3-ubyte", idx_images(1, 2, 3, &[0; 6])),
                ("t10k-labels-idx1-ubyte", idx_labels(&[1])),
            ],
        );
        let message = load_mnist(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("train-images-idx3-ubyte holds 2x2 images but"),
            "{message}"
        );
        assert!(
            message.contains("t10k-images-idx3-ubyte holds 2x3"),
            "{message}"
        );
    }

    #[test]
    fn a_body_larger_than_the_memory_budget_is_refused_after_reading_one_byte_past_it() {
        // 100 images of 10 x 10 (10,000 bytes, gzip'd to far less) against a 1,000-byte budget.
        let file = gzip(&idx_images(100, 10, 10, &[7; 10_000]));
        let budget = Some(Budget {
            bytes: 1000,
            memory: 5000,
        });
        let read = |bytes: &[u8], budget| {
            read_idx(Path::new("big"), bytes, (0x803, 3, "images"), budget)
                .map(|(sizes, body)| (sizes, body.len()))
        };
        let message = read(&file, budget).unwrap_err().to_string();
        assert_eq!(
            message,
            "big: the header declares 10000 bytes of images and the file holds more than 1.0 kB; \
             loaded they would need more than this machine's 5.0 kB of memory"
        );
        // Within the budget, or without one, the same file loads; a short file is truncated.
        let roomy = Some(Budget {
            bytes: 10_000,
            memory: 50_000,
        });
        assert_eq!(read(&file, roomy).unwrap(), (vec![100, 10, 10], 10_000));
        assert_eq!(read(&file, None).unwrap(), (vec![100, 10, 10], 10_000));
        let short = gzip(&idx_images(100, 10, 10, &[7; 800]));
        let message = read(&short, budget).unwrap_err().to_string();
        assert!(message.contains("truncated"), "{message}");
    }

    #[test]
    fn every_gzip_member_is_read_and_inflating_stops_past_the_promise() {
        let images = idx_images(2, 1, 2, &[0, 255, 51, 102]);
        // Two concatenated members (what `cat a.gz b.gz` makes) are one valid gzip file.
        let mut members = gzip(&images[..9]);
        members.extend(gzip(&images[9..]));
        let (loaded, rows, cols) =
            parse_idx_images(Path::new("two-members"), &members[..]).unwrap();
        assert_eq!(loaded, ndarray::array![[0.0, 1.0], [0.2, 0.4]]);
        assert_eq!((rows, cols), (1, 2));
        // A member promising 4 pixels then 64 MiB of zeros: "trailing bytes", read one byte past.
        let mut bomb = images.clone();
        bomb.resize(64 << 20, 0);
        let message = parse_idx_images(Path::new("bomb"), &gzip(&bomb)[..])
            .unwrap_err()
            .to_string();
        assert!(
            message
                .starts_with("bomb: trailing bytes after the data (the header promises 20 bytes"),
            "{message}"
        );
    }
}
