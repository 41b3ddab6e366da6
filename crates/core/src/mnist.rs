//! Reading MNIST-style data sets: the four IDX files, gzip'd or raw.
//!
//! An IDX file is a big-endian header, then the data: images are magic `0x00000803`, the count,
//! rows and columns (three `u32`), then one byte per pixel; labels are magic `0x00000801`, the
//! count, then one byte per label. Any folder holding `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each
//! optionally with `.gz`) loads the same way, so Fashion-MNIST works too.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use ndarray::{Array2, ArrayView2, Axis};
use thiserror::Error;

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
    /// The file holds fewer (or more) bytes than its header promises.
    #[error(
        "{}: {} (the header promises {expected} bytes, the file holds {found})",
        path.display(),
        if found < expected { "truncated" } else { "trailing bytes after the data" }
    )]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Header plus data size, from the header.
        expected: usize,
        /// The decompressed size.
        found: usize,
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
/// kind or size, or whose count disagrees with its partner's.
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<Mnist, DataError> {
    let dir = dir.as_ref();
    Ok(Mnist {
        train: load_split(dir, "train")?,
        test: load_split(dir, "t10k")?,
    })
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

/// Reads an IDX images file: returns `(images (count, rows * cols) in [0, 1], rows, cols)`.
///
/// # Errors
/// See [`DataError`].
pub fn read_idx_images(path: &Path) -> Result<(Array2<f32>, usize, usize), DataError> {
    let bytes = read_maybe_gzip(path)?;
    let header = parse_header(path, &bytes, 0x0000_0803, 3, "images")?;
    let (count, rows, cols) = (header[0], header[1], header[2]);
    let pixels: Vec<f32> = bytes[16..]
        .iter()
        .map(|&pixel| f32::from(pixel) / 255.0)
        .collect();
    let images = Array2::from_shape_vec((count, rows * cols), pixels)
        .expect("the length was checked against the header");
    Ok((images, rows, cols))
}

/// Reads an IDX labels file.
///
/// # Errors
/// See [`DataError`].
pub fn read_idx_labels(path: &Path) -> Result<Vec<usize>, DataError> {
    let bytes = read_maybe_gzip(path)?;
    parse_header(path, &bytes, 0x0000_0801, 1, "labels")?;
    Ok(bytes[8..].iter().map(|&label| usize::from(label)).collect())
}

/// `path` if it exists, else `path.gz` if that exists.
fn locate(path: &Path) -> Result<PathBuf, DataError> {
    let gzipped = PathBuf::from(format!("{}.gz", path.display()));
    [path.to_path_buf(), gzipped]
        .into_iter()
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| DataError::Missing {
            path: path.to_path_buf(),
        })
}

/// The file's bytes, decompressed when they start with the gzip magic `1f 8b`.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => DataError::Missing {
            path: path.to_path_buf(),
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut bytes = Vec::new();
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut bytes)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Checks the magic number and the total length; returns the `dims` header sizes.
fn parse_header(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    dims: usize,
    kind: &'static str,
) -> Result<Vec<usize>, DataError> {
    let header_len = 4 + 4 * dims;
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let wrong_length = |expected| DataError::WrongLength {
        path: path.to_path_buf(),
        expected,
        found: bytes.len(),
    };
    if bytes.len() < 4 {
        return Err(wrong_length(header_len));
    }
    if word(0) != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found: word(0),
            kind,
        });
    }
    if bytes.len() < header_len {
        return Err(wrong_length(header_len));
    }
    let sizes: Vec<usize> = (0..dims).map(|dim| word(4 + 4 * dim) as usize).collect();
    let expected = header_len + sizes.iter().product::<usize>();
    if bytes.len() != expected {
        return Err(wrong_length(expected));
    }
    Ok(sizes)
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

    /// A fresh folder under the target dir holding the given files.
    fn folder(name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("backprop-mnist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in files {
            fs::write(dir.join(file), bytes).unwrap();
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
        let train = load_split(&dir, "train").unwrap();
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
            let message = load_split(&dir, "train").unwrap_err().to_string();
            assert!(message.contains(expected), "{name}: {message}");
            assert!(
                message.contains("train-"),
                "{name}: the file is not named: {message}"
            );
        }
    }
}
