//! `.npz` files, read as untrusted input and written in one piece: `model.npz` (what `eval`
//! loads) and the arrays of a training checkpoint.
//!
//! Reading never trusts a declared size. Before an array is read, its `.npy` header is parsed
//! and the bytes its shape promises (the product in checked arithmetic) are compared with what
//! the archive entry can really hold: the stored size of an uncompressed entry, 1032 times the
//! compressed size of a deflated one (deflate's largest ratio), and at most
//! [`MAX_ARRAY_BYTES`]. Only then is the entry read, one byte past its promise at most. Writing
//! builds the whole archive in memory and hands it to [`write_atomically`], so a full disk
//! is one error and never a half-written `model.npz`.

use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use backprop_core::mnist::CLASSES;
use backprop_core::{Activation, LinearParams};
use ndarray::{Array, Array1, Array2, Dimension};
use ndarray_npy::{NpzWriter, ReadNpyExt, ReadableElement, WriteNpzError};
use zip::{CompressionMethod, ZipArchive};

use crate::output::{OutputError, write_atomically};

/// The largest array a `.npz` may hold: 1 GiB (a model of 268 million `f32` weights).
pub const MAX_ARRAY_BYTES: u64 = 1 << 30;

/// Deflate's largest compression ratio: a deflated entry inflates to at most this many times
/// its compressed size.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// The largest `.npy` header read (NumPy's own headers are under 100 bytes).
const MAX_HEADER_BYTES: u64 = 1 << 16;

/// An `.npz` archive opened for reading, its arrays checked before they are read.
#[derive(Debug)]
pub struct NpzFile {
    path: PathBuf,
    archive: ZipArchive<fs::File>,
}

impl NpzFile {
    /// Opens `path` and reads its table of contents.
    ///
    /// # Errors
    /// A missing file or one that is not a zip archive.
    pub fn open(path: &Path) -> Result<Self, OutputError> {
        let file = fs::File::open(path)
            .map_err(|error| OutputError::new(path, format!("cannot open: {error}")))?;
        let archive = ZipArchive::new(file).map_err(|error| {
            OutputError::new(path, format!("not an .npz archive: {}", first_line(&error)))
        })?;
        Ok(NpzFile {
            path: path.to_path_buf(),
            archive,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the archive holds an array `name` (an entry `name.npy`).
    pub fn contains(&self, name: &str) -> bool {
        self.archive
            .index_for_name(&format!("{name}.npy"))
            .is_some()
    }

    /// The array `name`, after its declared size has been checked against the entry.
    ///
    /// # Errors
    /// One line naming the file and the array: missing, a header that is not `.npy`, a size
    /// above the entry's bytes or [`MAX_ARRAY_BYTES`], truncated or trailing data, or the wrong
    /// element type or rank.
    pub fn array<A: ReadableElement, D: Dimension>(
        &mut self,
        name: &str,
    ) -> Result<Array<A, D>, OutputError> {
        let problem = |text: String| OutputError::new(&self.path, format!("{name}: {text}"));
        let mut entry = self
            .archive
            .by_name(&format!("{name}.npy"))
            .map_err(|_| problem("no such array".into()))?;
        let capacity = match entry.compression() {
            CompressionMethod::Stored => entry.compressed_size(),
            _ => entry.compressed_size().saturating_mul(DEFLATE_MAX_RATIO),
        };
        // The header first: it says how many bytes the data must have.
        let mut bytes = Vec::new();
        read_at_most(&mut entry, 12, &mut bytes).map_err(&problem)?;
        let header_len = npy_header_len(&bytes).map_err(&problem)?;
        read_at_most(&mut entry, header_len - bytes.len() as u64, &mut bytes).map_err(&problem)?;
        let data_len = npy_data_len(&bytes).map_err(&problem)?;
        let total = header_len.saturating_add(data_len);
        if data_len > MAX_ARRAY_BYTES || total > capacity {
            return Err(problem(format!(
                "its header declares {data_len} bytes of data, more than {}",
                if data_len > MAX_ARRAY_BYTES {
                    format!("the limit of {MAX_ARRAY_BYTES} bytes")
                } else {
                    format!("its {capacity}-byte entry can hold")
                }
            )));
        }
        // Then the data, one byte past the promise at most.
        read_at_most(&mut entry, data_len + 1, &mut bytes).map_err(&problem)?;
        let found = bytes.len() as u64 - header_len;
        if found != data_len {
            let what = if found < data_len {
                "truncated"
            } else {
                "trailing bytes"
            };
            return Err(problem(format!(
                "{what}: the header declares {data_len} bytes of data, the entry holds {}",
                if found < data_len {
                    found.to_string()
                } else {
                    "more".into()
                }
            )));
        }
        Array::<A, D>::read_npy(&bytes[..]).map_err(|error| problem(first_line(&error)))
    }
}

/// Appends at most `limit` bytes of `reader` to `into`.
fn read_at_most(reader: &mut impl Read, limit: u64, into: &mut Vec<u8>) -> Result<(), String> {
    reader
        .take(limit)
        .read_to_end(into)
        .map(drop)
        .map_err(|error| first_line(&error))
}

/// The length of the `.npy` preamble and header, from its first 12 bytes (magic, version,
/// header length: a `u16` in version 1, a `u32` in versions 2 and 3).
fn npy_header_len(start: &[u8]) -> Result<u64, String> {
    let not_npy = || "not an .npy array (no \\x93NUMPY header)".to_string();
    if start.len() < 10 || !start.starts_with(b"\x93NUMPY") {
        return Err(not_npy());
    }
    let (preamble, declared) = match start[6] {
        1 => (10, u64::from(u16::from_le_bytes([start[8], start[9]]))),
        2 | 3 if start.len() >= 12 => (
            12,
            u64::from(u32::from_le_bytes([
                start[8], start[9], start[10], start[11],
            ])),
        ),
        _ => return Err(not_npy()),
    };
    if declared > MAX_HEADER_BYTES {
        return Err(format!(
            "its .npy header declares {declared} bytes, more than {MAX_HEADER_BYTES}"
        ));
    }
    Ok(preamble + declared)
}

/// The bytes of data an `.npy` header promises: the product of its shape times the element
/// size of its `descr`, in checked arithmetic.
fn npy_data_len(header: &[u8]) -> Result<u64, String> {
    let text = String::from_utf8_lossy(header);
    let bad = |what: &str| format!("the .npy header has no readable {what}");
    let descr = text
        .split_once("'descr':")
        .and_then(|(_, rest)| rest.split('\'').nth(1))
        .ok_or_else(|| bad("'descr'"))?;
    let item_size: u64 = descr
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .map_err(|_| bad("element size"))?;
    let shape = text
        .split_once("'shape':")
        .and_then(|(_, rest)| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .ok_or_else(|| bad("'shape'"))?
        .0;
    // The bytes, and (as ndarray requires even of an empty array) the product of the non-zero
    // axes, which must fit an isize.
    let (mut len, mut nonzero) = (item_size, item_size.max(1));
    let too_large = || format!("its shape ({shape}) declares more elements than can be addressed");
    for axis in shape
        .split(',')
        .map(str::trim)
        .filter(|axis| !axis.is_empty())
    {
        let axis: u64 = axis.parse().map_err(|_| bad("'shape'"))?;
        len = len.checked_mul(axis).ok_or_else(too_large)?;
        nonzero = nonzero.checked_mul(axis.max(1)).ok_or_else(too_large)?;
    }
    if nonzero > isize::MAX as u64 {
        return Err(too_large());
    }
    Ok(len)
}

/// The first line of an error's message (some parsers explain over several lines).
fn first_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// An `.npz` archive built in memory: `arrays` adds the arrays, then the bytes are returned.
///
/// # Errors
/// What the writer said, in one line.
pub fn npz_bytes(
    arrays: impl FnOnce(&mut NpzWriter<Cursor<Vec<u8>>>) -> Result<(), WriteNpzError>,
) -> Result<Vec<u8>, String> {
    let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
    arrays(&mut npz).map_err(|error| first_line(&error))?;
    let cursor = npz.finish().map_err(|error| first_line(&error))?;
    Ok(cursor.into_inner())
}

/// Adds `weight{i}` (fan_in, fan_out), `bias{i}` and `activation` (UTF-8 bytes).
///
/// # Errors
/// What the writer said.
pub fn add_model(
    npz: &mut NpzWriter<Cursor<Vec<u8>>>,
    layers: &LinearParams<f32>,
    activation: Activation,
) -> Result<(), WriteNpzError> {
    for (index, (weight, bias)) in layers.iter().enumerate() {
        npz.add_array(format!("weight{index}"), weight)?;
        npz.add_array(format!("bias{index}"), bias)?;
    }
    let name = Array1::from_vec(activation.name().as_bytes().to_vec());
    npz.add_array("activation", &name)
}

/// Saves `weight{i}` (fan_in, fan_out), `bias{i}` and `activation` (UTF-8 bytes) as `.npz`.
///
/// # Errors
/// As [`write_atomically`].
pub fn save_model(
    path: &Path,
    layers: &LinearParams<f32>,
    activation: Activation,
) -> Result<(), OutputError> {
    let bytes = npz_bytes(|npz| add_model(npz, layers, activation))
        .map_err(|problem| OutputError::new(path, problem))?;
    write_atomically(path, &bytes)
}

/// Loads a model saved by [`save_model`] (or a checkpoint): its layers and activation.
///
/// # Errors
/// A missing or unreadable file, or one without the expected arrays or whose layers do not
/// chain; the message names the file and the array.
pub fn load_model(path: &Path) -> Result<(LinearParams<f32>, Activation), OutputError> {
    read_model(&mut NpzFile::open(path)?)
}

/// The layers and activation of an opened model or checkpoint.
///
/// # Errors
/// As [`load_model`].
pub fn read_model(npz: &mut NpzFile) -> Result<(LinearParams<f32>, Activation), OutputError> {
    let path = npz.path.clone();
    let problem = |text: String| OutputError::new(&path, text);
    let layers = (0..)
        .take_while(|index| npz.contains(&format!("weight{index}")))
        .count();
    if layers == 0 {
        return Err(problem(
            "no weight0 array: not a model saved by backprop train".into(),
        ));
    }
    let mut params: LinearParams<f32> = Vec::with_capacity(layers);
    for index in 0..layers {
        let weight: Array2<f32> = npz.array(&format!("weight{index}"))?;
        let bias: Array1<f32> = npz.array(&format!("bias{index}"))?;
        let fan_in_expected = params.last().map(|(previous, _)| previous.ncols());
        if bias.len() != weight.ncols()
            || fan_in_expected.is_some_and(|fan_in| fan_in != weight.nrows())
        {
            return Err(problem(format!(
                "layer {index}: weight {:?} and bias {} do not chain",
                weight.dim(),
                bias.len()
            )));
        }
        params.push((weight, bias));
    }
    let activation: Array1<u8> = npz.array("activation")?;
    let activation = String::from_utf8_lossy(activation.as_slice().unwrap_or_default())
        .parse()
        .map_err(|text: String| problem(format!("activation: {text}")))?;
    Ok((params, activation))
}

/// Checks that a loaded model can classify `pixels`-pixel images into [`CLASSES`] classes:
/// its input and output widths, and that every weight and bias is finite.
///
/// # Errors
/// The first problem, naming the file and the array.
pub fn check_model(
    path: &Path,
    params: &LinearParams<f32>,
    pixels: usize,
) -> Result<(), OutputError> {
    let problem = |text: String| Err(OutputError::new(path, text));
    let inputs = params.first().map_or(0, |(weight, _)| weight.nrows());
    if inputs != pixels {
        return problem(format!(
            "takes {inputs} inputs but the images have {pixels} pixels"
        ));
    }
    let outputs = params.last().map_or(0, |(weight, _)| weight.ncols());
    if outputs != CLASSES {
        return problem(format!(
            "gives {outputs} outputs but the data has {CLASSES} classes (is a layer missing?)"
        ));
    }
    for (index, (weight, bias)) in params.iter().enumerate() {
        for (name, values) in [
            ("weight", weight.view().into_dyn()),
            ("bias", bias.view().into_dyn()),
        ] {
            if let Some((at, value)) = values.indexed_iter().find(|(_, value)| !value.is_finite()) {
                return problem(format!(
                    "{name}{index}{:?} is {value}: a model with non-finite parameters \
                     classifies nothing",
                    at.slice()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_is_checked_in_bytes_and_in_addressable_elements() {
        let header = |shape: &str| {
            format!("\x10{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
        };
        assert_eq!(npy_data_len(header("(2, 3)").as_bytes()), Ok(24));
        assert_eq!(npy_data_len(header("(0, 5)").as_bytes()), Ok(0));
        // Found by tests/fuzz_inputs.rs: zero bytes, but ndarray refuses the shape (it would
        // have panicked inside ndarray-npy).
        let empty_but_huge = npy_data_len(header("(0, 9223372036854775808)").as_bytes());
        assert!(
            empty_but_huge
                .unwrap_err()
                .contains("more elements than can be addressed")
        );
        let overflow = npy_data_len(header("(4294967296, 4294967296)").as_bytes());
        assert!(
            overflow
                .unwrap_err()
                .contains("more elements than can be addressed")
        );
    }
}
