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

use backprop_core::network::NetSpec;
use backprop_core::{Activation, ImageShape, Layout, Level, LinearParams, LossKind, Model, Norm};
use backprop_data::files::open_regular;
use backprop_data::mnist::{CLASSES, Dataset};
use ndarray::{Array, Array1, Array2, Dimension};
use ndarray_npy::{NpzWriter, ReadNpyExt, ReadableElement, WriteNpzError};
use zip::{CompressionMethod, ZipArchive};

use crate::arch::Arch;
use crate::output::{OutputError, write_atomically};
use crate::safetensors_file::{load_safetensors, looks_like_safetensors};

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
        // A run folder given for its model (File::open would open a folder on Linux).
        if path.is_dir() {
            let inside = path.join("model.npz");
            return Err(OutputError::new(
                path,
                format!(
                    "is a folder, not a model file (a run's model is {})",
                    inside.display()
                ),
            ));
        }
        let file = open_regular(path)
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

    /// The names of the arrays (entries `NAME.npy`) whose names start with `prefix`.
    pub fn names_starting_with(&self, prefix: &str) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|name| name.strip_suffix(".npy"))
            .filter(|name| name.starts_with(prefix))
            .map(str::to_owned)
            .collect()
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

/// What a model file holds: the weights, the network they belong to, and the parameters of
/// each normalization layer (batch norm's running statistics included: evaluation normalizes
/// with them).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// `(weight, bias)` per weight layer, first first: `(fan_in, fan_out)` for a `Linear`,
    /// `(C kh kw, out_channels)` for a `Conv2d`.
    pub params: LinearParams<f32>,
    /// The activation of the hidden layers (of an `--arch` network: its first activation).
    pub activation: Activation,
    /// The normalization after each hidden `Linear` (of an `--arch` network: its first
    /// normalization layer's kind).
    pub norm: Norm,
    /// One per normalization layer, in order.
    pub norms: Vec<NormParams>,
    /// The layers of an `--arch` network; `None` for the MLP preset (`--hidden`), whose layers
    /// follow from the weights, `activation` and `norm`.
    pub layers: Option<Layers>,
}

/// An `--arch` network as a model file keeps it: its layers and the image shape they take.
#[derive(Debug, Clone, PartialEq)]
pub struct Layers {
    /// The layers, as `--arch` text.
    pub arch: Arch,
    /// One image's shape, `C x H x W`.
    pub input: ImageShape,
}

impl Layers {
    /// The checked network.
    ///
    /// # Errors
    /// Layers that do not fit the input (or give other than [`CLASSES`] outputs).
    pub fn spec(&self) -> Result<NetSpec, String> {
        self.arch.classifier(self.input, CLASSES)
    }
}

/// One normalization layer's gamma, beta and (batch norm) running mean and variance.
#[derive(Debug, Clone, PartialEq)]
pub struct NormParams {
    /// gamma.
    pub gamma: Array1<f32>,
    /// beta.
    pub beta: Array1<f32>,
    /// Batch norm's running mean and variance.
    pub running: Option<(Array1<f32>, Array1<f32>)>,
}

impl SavedModel {
    /// A copy of `model`'s weights and normalization parameters; `layers` as in
    /// [`SavedModel::layers`].
    pub fn of(
        model: &mut impl Model<f32>,
        activation: Activation,
        norm: Norm,
        layers: Option<Layers>,
    ) -> Self {
        let mut norms = Vec::new();
        model.visit_norms(|_, layer| {
            norms.push(NormParams {
                gamma: layer.gamma.to_owned(),
                beta: layer.beta.to_owned(),
                running: layer
                    .running
                    .map(|(mean, var)| (mean.to_owned(), var.to_owned())),
            })
        });
        SavedModel {
            params: model.linear_params(),
            activation,
            norm,
            norms,
            layers,
        }
    }

    /// Level `L`'s model with these weights and normalization parameters (in training mode);
    /// `dropout` is the MLP preset's (an `--arch` network's dropout is in its layers), `seed`
    /// seeds the dropout masks.
    ///
    /// # Panics
    /// If the weights do not fit the network (a loaded model was checked by [`read_model`]).
    pub fn build<L: Level<f32>>(&self, dropout: f64, seed: u64) -> L::Network {
        let mut model = match &self.layers {
            None => {
                let layout = Layout {
                    norm: self.norm,
                    dropout,
                    seed,
                    ..Layout::plain(self.activation, LossKind::SoftmaxCrossEntropy)
                };
                L::mlp_with(self.params.clone(), &layout)
            }
            Some(layers) => {
                let spec = layers
                    .spec()
                    .unwrap_or_else(|problem| panic!("a checked network: {problem}"))
                    .with_seed(seed);
                L::network(self.params.clone(), &spec)
            }
        };
        assign_norms(&mut model, &self.norms);
        model
    }

    /// What the network is, for messages: `layers [784, 256, 10], relu, none norm` or the
    /// `--arch` text with its input.
    pub fn describe(&self) -> String {
        match &self.layers {
            Some(layers) => format!("--arch {} on {} images", layers.arch, layers.input),
            None => format!(
                "layers {:?}, {}, {} norm",
                mlp_sizes(&self.params),
                self.activation.name(),
                self.norm
            ),
        }
    }
}

/// Sets each normalization layer of `model` to `norms` (gamma, beta and batch norm's running
/// statistics), in order.
///
/// # Panics
/// If `norms` has fewer layers than `model`, or other widths (callers check them first).
pub fn assign_norms(model: &mut impl Model<f32>, norms: &[NormParams]) {
    model.visit_norms(|index, mut layer| {
        let saved = &norms[index];
        layer.gamma.assign(&saved.gamma);
        layer.beta.assign(&saved.beta);
        if let (Some((mean, var)), Some((saved_mean, saved_var))) =
            (layer.running.as_mut(), &saved.running)
        {
            mean.assign(saved_mean);
            var.assign(saved_var);
        }
    });
}

/// An MLP's `[inputs, hidden.., outputs]` from its weights.
fn mlp_sizes(params: &LinearParams<f32>) -> Vec<usize> {
    params
        .iter()
        .map(|(weight, _)| weight.nrows())
        .chain(params.last().map(|(weight, _)| weight.ncols()))
        .collect()
}

/// Adds `weight{i}`, `bias{i}` and per normalization layer `norm{i}.gamma`, `.beta` (and
/// `.running_mean`, `.running_var`); then, for the MLP preset, `activation` and `norm` (UTF-8
/// bytes), or for an `--arch` network `layers` (its `--arch` text, UTF-8 bytes) and
/// `input_shape` (`[C, H, W]`, u64).
///
/// # Errors
/// What the writer said.
pub fn add_model(
    npz: &mut NpzWriter<Cursor<Vec<u8>>>,
    model: &SavedModel,
) -> Result<(), WriteNpzError> {
    for (index, (weight, bias)) in model.params.iter().enumerate() {
        npz.add_array(format!("weight{index}"), weight)?;
        npz.add_array(format!("bias{index}"), bias)?;
    }
    for (index, norm) in model.norms.iter().enumerate() {
        npz.add_array(format!("norm{index}.gamma"), &norm.gamma)?;
        npz.add_array(format!("norm{index}.beta"), &norm.beta)?;
        if let Some((mean, var)) = &norm.running {
            npz.add_array(format!("norm{index}.running_mean"), mean)?;
            npz.add_array(format!("norm{index}.running_var"), var)?;
        }
    }
    let text = |text: &str| Array1::from_vec(text.as_bytes().to_vec());
    match &model.layers {
        Some(layers) => {
            let input = layers.input;
            npz.add_array("layers", &text(&layers.arch.to_string()))?;
            npz.add_array(
                "input_shape",
                &Array1::from_vec(
                    [input.channels, input.height, input.width]
                        .map(|size| size as u64)
                        .to_vec(),
                ),
            )
        }
        None => {
            npz.add_array("norm", &text(model.norm.name()))?;
            npz.add_array("activation", &text(model.activation.name()))
        }
    }
}

/// Saves a model as `.npz` (see [`add_model`]).
///
/// # Errors
/// As [`write_atomically`].
pub fn save_model(path: &Path, model: &SavedModel) -> Result<(), OutputError> {
    let bytes = npz_bytes(|npz| add_model(npz, model))
        .map_err(|problem| OutputError::new(path, problem))?;
    write_atomically(path, &bytes)
}

/// Loads a model saved by [`save_model`] (or a checkpoint), or a `model.safetensors`
/// ([`load_safetensors`]): the file's first bytes decide which.
///
/// # Errors
/// A missing or unreadable file, or one without the expected arrays or whose layers do not
/// chain; the message names the file and the array.
pub fn load_model(path: &Path) -> Result<SavedModel, OutputError> {
    match is_safetensors(path) {
        true => load_safetensors(path),
        false => read_model(&mut NpzFile::open(path)?),
    }
}

/// True when the file at `path` opens like a safetensors file (else it is read as `.npz`,
/// which names what it is not).
pub fn is_safetensors(path: &Path) -> bool {
    let mut start = Vec::new();
    match open_regular(path) {
        Ok(file) => file.take(9).read_to_end(&mut start).is_ok() && looks_like_safetensors(&start),
        Err(_) => false,
    }
}

/// The model in an opened model file or checkpoint.
///
/// # Errors
/// As [`load_model`].
pub fn read_model(npz: &mut NpzFile) -> Result<SavedModel, OutputError> {
    if npz.contains("layers") {
        return read_layers_model(npz);
    }
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
        params.push((weight, bias));
    }
    if let Some(broken) = backprop_core::model::chain_break(&params, None) {
        return Err(problem(broken.to_string()));
    }
    let activation = text_entry(npz, "activation")?
        .parse()
        .map_err(|text: String| problem(format!("activation: {text}")))?;
    // Files from before normalization existed have no `norm`: none.
    let norm: Norm = match npz.contains("norm") {
        true => text_entry(npz, "norm")?
            .parse()
            .map_err(|text: String| problem(format!("norm: {text}")))?,
        false => Norm::None,
    };
    let widths: Vec<(Norm, usize)> = match norm {
        Norm::None => Vec::new(),
        _ => params[..params.len() - 1]
            .iter()
            .map(|(weight, _)| (norm, weight.ncols()))
            .collect(),
    };
    let norms = read_norms(npz, &widths)?;
    Ok(SavedModel {
        params,
        activation,
        norm,
        norms,
        layers: None,
    })
}

/// A UTF-8 text entry.
/// The text stored as the `u8` array `name`.
///
/// # Errors
/// As [`NpzFile::array`].
pub fn text_entry(npz: &mut NpzFile, name: &str) -> Result<String, OutputError> {
    let bytes: Array1<u8> = npz.array(name)?;
    Ok(String::from_utf8_lossy(bytes.as_slice().unwrap_or_default()).into_owned())
}

/// An `--arch` network's file: `layers`, `input_shape`, then exactly the weights and
/// normalization arrays those layers have, each of the shape they give.
fn read_layers_model(npz: &mut NpzFile) -> Result<SavedModel, OutputError> {
    let path = npz.path.clone();
    let problem = |text: String| OutputError::new(&path, text);
    let arch: Arch = text_entry(npz, "layers")?
        .parse()
        .map_err(|text: String| problem(format!("layers: {text}")))?;
    let shape: Array1<u64> = npz.array("input_shape")?;
    let size = |at: usize| usize::try_from(shape[at]).ok().filter(|&size| size > 0);
    let input = match (shape.len(), size(0), size(1), size(2)) {
        (3, Some(channels), Some(height), Some(width)) => ImageShape::new(channels, height, width),
        _ => {
            return Err(problem(format!(
                "input_shape {shape} is not three positive sizes [C, H, W]"
            )));
        }
    };
    let layers = Layers { arch, input };
    let spec = layers
        .spec()
        .map_err(|text| problem(format!("layers: {text}")))?;
    let shapes = spec.weight_shapes();
    if npz.contains(&format!("weight{}", shapes.len())) {
        return Err(problem(format!(
            "weight{} is there, but the layers have {} weight layers",
            shapes.len(),
            shapes.len()
        )));
    }
    let mut params: LinearParams<f32> = Vec::with_capacity(shapes.len());
    for (index, &(rows, columns)) in shapes.iter().enumerate() {
        let weight: Array2<f32> = npz.array(&format!("weight{index}"))?;
        let bias: Array1<f32> = npz.array(&format!("bias{index}"))?;
        if weight.dim() != (rows, columns) || bias.len() != columns {
            return Err(problem(format!(
                "weight{index} {:?} and bias{index} ({}) are not the ({rows}, {columns}) and \
                 ({columns}) that layer {index} of the network takes",
                weight.dim(),
                bias.len()
            )));
        }
        params.push((weight, bias));
    }
    let widths: Vec<(Norm, usize)> = spec.norm_layers();
    let norms = read_norms(npz, &widths)?;
    Ok(SavedModel {
        params,
        activation: spec.activation(),
        norm: widths.first().map_or(Norm::None, |(norm, _)| *norm),
        norms,
        layers: Some(layers),
    })
}

/// `norm{i}.*` for each normalization layer `(kind, width)`, each array as wide as its layer.
fn read_norms(npz: &mut NpzFile, layers: &[(Norm, usize)]) -> Result<Vec<NormParams>, OutputError> {
    // Arrays of norm layers the architecture does not have: the file is not what it says (a
    // deleted `norm` entry would otherwise evaluate the network without its norm layers).
    let expected = |name: &str| {
        name.strip_prefix("norm")
            .and_then(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .is_some_and(|index| index < layers.len())
    };
    if let Some(orphan) = npz
        .names_starting_with("norm")
        .into_iter()
        .filter(|name| name.contains('.'))
        .find(|name| !expected(name))
    {
        return Err(OutputError::new(
            npz.path(),
            format!(
                "{orphan}: an array of a normalization layer the model's architecture does not have ({} norm layers)",
                layers.len()
            ),
        ));
    }
    let mut norms = Vec::with_capacity(layers.len());
    for (index, &(norm, width)) in layers.iter().enumerate() {
        let mut vector = |name: &str| -> Result<Array1<f32>, OutputError> {
            let values: Array1<f32> = npz.array(&format!("norm{index}.{name}"))?;
            let problem = |text: String| {
                Err(OutputError::new(
                    npz.path(),
                    format!("norm{index}.{name} {text}"),
                ))
            };
            if values.len() != width {
                return problem(format!(
                    "has {} entries for a layer of {width} outputs",
                    values.len()
                ));
            }
            if let Err(text) = check_norm_values(&values, name == "running_var") {
                return problem(text);
            }
            Ok(values)
        };
        let (gamma, beta) = (vector("gamma")?, vector("beta")?);
        let running = match norm {
            Norm::Batch => Some((vector("running_mean")?, vector("running_var")?)),
            _ => None,
        };
        norms.push(NormParams {
            gamma,
            beta,
            running,
        });
    }
    Ok(norms)
}

/// Checks a normalization layer's array: every value finite, and a variance (`variance`) never
/// negative.
///
/// # Errors
/// The first value that is not, as `[index] is value: why`.
pub fn check_norm_values(values: &Array1<f32>, variance: bool) -> Result<(), String> {
    if let Some(at) = values.iter().position(|value| !value.is_finite()) {
        return Err(format!("[{at}] is {}, not a finite number", values[at]));
    }
    if variance && let Some(at) = values.iter().position(|&value| value < 0.0) {
        return Err(format!(
            "[{at}] is {}: a variance is never negative",
            values[at]
        ));
    }
    Ok(())
}

/// Checks that a loaded model can classify the images of `data` (`rows x cols` pixels, one
/// channel) into [`CLASSES`] classes: its input and output, and that every weight and bias is
/// finite.
///
/// # Errors
/// The first problem, naming the file and the array.
pub fn check_model(path: &Path, model: &SavedModel, data: &Dataset) -> Result<(), OutputError> {
    let problem = |text: String| Err(OutputError::new(path, text));
    let params = &model.params;
    let pixels = data.images.ncols();
    match &model.layers {
        Some(layers) => {
            let images = ImageShape::new(1, data.rows, data.cols);
            if layers.input != images {
                return problem(format!(
                    "takes {} images but the data's are {images}",
                    layers.input
                ));
            }
        }
        None => {
            let inputs = params.first().map_or(0, |(weight, _)| weight.nrows());
            if inputs != pixels {
                return problem(format!(
                    "takes {inputs} inputs but the images have {pixels} pixels"
                ));
            }
            let outputs = params.last().map_or(0, |(weight, _)| weight.ncols());
            if outputs != CLASSES {
                return problem(format!(
                    "gives {outputs} outputs but the data has {CLASSES} classes (is a layer \
                     missing?)"
                ));
            }
        }
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
