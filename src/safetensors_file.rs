//! `model.safetensors`: a model under PyTorch's `nn.Sequential` names and layouts, the file
//! PyTorch (`safetensors.torch.load_file`), candle and burn read.
//!
//! Layer `i` of the network is module `i` of the `nn.Sequential` (layers without parameters
//! take an index too), and its tensors are named as PyTorch's `state_dict()` names them:
//!
//! | layer | tensors (PyTorch's shapes) |
//! |---|---|
//! | `Linear(in, out)` | `i.weight` `(out, in)`, `i.bias` `(out)` |
//! | `Conv2d(C, out, (kh, kw))` | `i.weight` `(out, C, kh, kw)`, `i.bias` `(out)` |
//! | `BatchNorm1d(n)` | `i.weight` (gamma), `i.bias` (beta), `i.running_mean`, `i.running_var` `(n)`, `i.num_batches_tracked` (i64, `()`) |
//! | `LayerNorm(n)` | `i.weight` (gamma), `i.bias` (beta) `(n)` |
//!
//! Every value is `f32` (PyTorch's default) except `num_batches_tracked`. Our own arrays store a
//! weight as `(fan_in, fan_out)`, the transpose: a file holds `W^T`, read back as `W`.
//!
//! The file's one metadata entry, [`NETWORK_KEY`], is JSON that rebuilds the network:
//! `{"input_shape": [1, 28, 28], "modules": [{"module": "Conv2d", "in_channels": 1, ...}, ...]}`,
//! each module written with its `torch.nn` class and keyword arguments, so
//! `getattr(nn, m.pop("module"))(**m)` builds it (`reference/pytorch_bridge.py` does).
//! `eval` needs it; `train --init-from` does not: a run knows its own layers, so a plain
//! `save_file(model.state_dict(), ...)` of the same `nn.Sequential` is enough there.
//!
//! Reading treats the file as untrusted: its size is checked before it is read, the
//! `safetensors` crate checks the header against the bytes (offsets, lengths, overflow), and
//! every tensor the network has must be there with its dtype and shape, every value finite, and
//! no other tensor present; an error names the file and the tensor.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use backprop_core::network::{LayerPlan, LayerSpec, NetSpec};
use backprop_core::norm::{BATCH_NORM_MOMENTUM, NORM_EPS};
use backprop_core::{Activation, ImageShape, LinearParams, LossKind, Norm};
use backprop_data::files::open_regular;
use ndarray::{Array1, Array2};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};

use crate::arch::Arch;
use crate::model_file::{Layers, NormParams, SavedModel, check_norm_values};
use crate::output::{OutputError, write_atomically};

/// The metadata key of the network's description (see the module docs).
pub const NETWORK_KEY: &str = "backprop.network";

/// The largest `.safetensors` file read: 2 GiB.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// True when `start` (a file's first bytes) opens a safetensors file: an 8-byte little-endian
/// header length, then the header's `{`. A zip archive (`.npz`) starts with `PK`.
pub fn looks_like_safetensors(start: &[u8]) -> bool {
    start.len() > 8 && start[8] == b'{'
}

/// Writes `model` (the network `spec`, `steps` training steps taken: batch norm's
/// `num_batches_tracked`) as a safetensors file, in one piece.
///
/// # Errors
/// As [`write_atomically`], or a model that does not fit `spec`.
pub fn save_safetensors(
    path: &Path,
    model: &SavedModel,
    spec: &NetSpec,
    steps: u64,
) -> Result<(), OutputError> {
    let bytes =
        safetensors_bytes(model, spec, steps).map_err(|text| OutputError::new(path, text))?;
    write_atomically(path, &bytes)
}

/// The bytes of [`save_safetensors`].
///
/// # Errors
/// A model whose weights or normalization layers do not fit `spec`.
pub fn safetensors_bytes(
    model: &SavedModel,
    spec: &NetSpec,
    steps: u64,
) -> Result<Vec<u8>, String> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for slot in slots(spec) {
        let f32_bytes = |values: &mut dyn Iterator<Item = &f32>| -> Vec<u8> {
            values.flat_map(|value| value.to_le_bytes()).collect()
        };
        let missing = || format!("{}: the model has no such layer", slot.name);
        let bytes = match slot.source {
            Source::Weight(layer) => {
                let (weight, _) = model.params.get(layer).ok_or_else(missing)?;
                // (fan_in, fan_out) here; PyTorch's (out, in) or (out, C, kh, kw) is W^T.
                if weight.len() != slot.len() || weight.ncols() != slot.shape[0] {
                    return Err(format!(
                        "{}: weight {:?} does not fit {:?}",
                        slot.name,
                        weight.dim(),
                        slot.shape
                    ));
                }
                f32_bytes(&mut weight.t().iter())
            }
            Source::Bias(layer) => {
                let (_, bias) = model.params.get(layer).ok_or_else(missing)?;
                f32_bytes(&mut bias.iter())
            }
            Source::Norm(layer, part) => {
                let norm = model.norms.get(layer).ok_or_else(missing)?;
                let values = match (part, &norm.running) {
                    (NormPart::Gamma, _) => &norm.gamma,
                    (NormPart::Beta, _) => &norm.beta,
                    (NormPart::RunningMean, Some((mean, _))) => mean,
                    (NormPart::RunningVar, Some((_, var))) => var,
                    _ => return Err(missing()),
                };
                f32_bytes(&mut values.iter())
            }
            Source::BatchesTracked => (steps as i64).to_le_bytes().to_vec(),
        };
        if slot.dtype == Dtype::F32 && bytes.len() != 4 * slot.len() {
            return Err(format!(
                "{}: {} values do not fit {:?}",
                slot.name,
                bytes.len() / 4,
                slot.shape
            ));
        }
        tensors.push((slot.name, slot.dtype, slot.shape, bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    // One metadata entry: the crate writes the map in hash order, and one key keeps the bytes
    // the same from run to run (a resumed run ends with the same file).
    let metadata = HashMap::from([(NETWORK_KEY.to_string(), network_json(spec).to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|error| error.to_string())
}

/// The `{"input_shape", "modules"}` JSON of [`NETWORK_KEY`].
pub fn network_json(spec: &NetSpec) -> Value {
    let input = spec.input();
    let input_shape = match input.is_flat() {
        true => json!([input.channels]),
        false => json!([input.channels, input.height, input.width]),
    };
    let modules: Vec<Value> = spec
        .plan()
        .into_iter()
        .map(|layer| match layer {
            LayerPlan::Linear { fan_in, fan_out } => {
                json!({"module": "Linear", "in_features": fan_in, "out_features": fan_out})
            }
            LayerPlan::Conv2d(geometry) => json!({
                "module": "Conv2d",
                "in_channels": geometry.input.channels,
                "out_channels": geometry.out_channels,
                "kernel_size": [geometry.kernel.0, geometry.kernel.1],
                "stride": geometry.stride,
                "padding": geometry.padding,
            }),
            LayerPlan::MaxPool2d(geometry) => json!({
                "module": "MaxPool2d",
                "kernel_size": [geometry.kernel.0, geometry.kernel.1],
                "stride": geometry.stride,
            }),
            LayerPlan::Flatten => json!({"module": "Flatten"}),
            LayerPlan::Activation(activation) => json!({"module": torch_activation(activation)}),
            LayerPlan::Norm {
                norm: Norm::Batch,
                features,
            } => json!({
                "module": "BatchNorm1d",
                "num_features": features,
                "eps": NORM_EPS,
                "momentum": BATCH_NORM_MOMENTUM,
            }),
            LayerPlan::Norm { features, .. } => {
                json!({"module": "LayerNorm", "normalized_shape": features, "eps": NORM_EPS})
            }
            LayerPlan::Dropout { p, .. } => json!({"module": "Dropout", "p": p}),
        })
        .collect();
    json!({"input_shape": input_shape, "modules": modules})
}

/// `nn.ReLU`, `nn.Sigmoid`, `nn.Tanh`.
fn torch_activation(activation: Activation) -> &'static str {
    match activation {
        Activation::Relu => "ReLU",
        Activation::Sigmoid => "Sigmoid",
        Activation::Tanh => "Tanh",
    }
}

/// The network a [`NETWORK_KEY`] JSON describes.
///
/// # Errors
/// JSON that is not the description, a module this project has no layer for (named by its
/// index), or layers that do not fit one another.
pub fn network_from_json(text: &str) -> Result<NetSpec, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let sizes = |value: Option<&Value>| -> Option<Vec<usize>> {
        value?
            .as_array()?
            .iter()
            .map(|size| {
                size.as_u64()
                    .and_then(|size| usize::try_from(size).ok())
                    .filter(|&size| size > 0)
            })
            .collect()
    };
    let input = match sizes(value.get("input_shape")).as_deref() {
        Some(&[features]) => ImageShape::flat(features),
        Some(&[channels, height, width]) => ImageShape::new(channels, height, width),
        _ => return Err("input_shape is not [features] or [C, H, W] of positive sizes".into()),
    };
    let modules = value
        .get("modules")
        .and_then(Value::as_array)
        .ok_or("no modules list")?;
    let layers = modules
        .iter()
        .enumerate()
        .map(|(index, module)| {
            layer_of_module(module)
                .map_err(|problem| format!("module {index} ({module}): {problem}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = NetSpec::new(input, layers, LossKind::SoftmaxCrossEntropy)
        .map_err(|error| error.to_string())?;
    // A norm's declared width, against what reaches it.
    for (index, (module, layer)) in modules.iter().zip(spec.plan()).enumerate() {
        if let LayerPlan::Norm { features, .. } = layer {
            let declared = module
                .get("num_features")
                .or_else(|| module.get("normalized_shape"))
                .and_then(|size| size.as_u64().or_else(|| size.as_array()?.first()?.as_u64()));
            if declared != Some(features as u64) {
                return Err(format!(
                    "module {index} ({module}): its input is {features} features"
                ));
            }
        }
    }
    Ok(spec)
}

/// One `torch.nn` module's JSON as a layer.
fn layer_of_module(module: &Value) -> Result<LayerSpec, String> {
    let size = |key: &str| -> Result<usize, String> {
        module
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|size| usize::try_from(size).ok())
            .ok_or(format!("{key} is not a whole number"))
    };
    // kernel_size 3 or [3, 3]; stride and padding the same on both axes.
    let pair = |key: &str, default: Option<usize>| -> Result<(usize, usize), String> {
        match module.get(key) {
            None | Some(Value::Null) => default.map(|size| (size, size)).ok_or(format!("no {key}")),
            Some(Value::Array(sizes)) => match sizes.as_slice() {
                [first, second] => match (first.as_u64(), second.as_u64()) {
                    (Some(first), Some(second)) => Ok((first as usize, second as usize)),
                    _ => Err(format!("{key} is not two whole numbers")),
                },
                _ => Err(format!("{key} is not two whole numbers")),
            },
            Some(_) => size(key).map(|size| (size, size)),
        }
    };
    let same = |key: &str, default: usize| -> Result<usize, String> {
        match pair(key, Some(default))? {
            (first, second) if first == second => Ok(first),
            _ => Err(format!(
                "{key} differs between the axes, which no layer here supports"
            )),
        }
    };
    let close = |key: &str, expected: f64, what: &str| -> Result<(), String> {
        match module.get(key).map(Value::as_f64) {
            None => Ok(()),
            Some(Some(value)) if (value - expected).abs() <= 1e-12 => Ok(()),
            _ => Err(format!(
                "{key} must be {expected}, the {what} of this project's layer"
            )),
        }
    };
    let name = module
        .get("module")
        .and_then(Value::as_str)
        .ok_or("no module name")?;
    Ok(match name {
        "Linear" => LayerSpec::Linear {
            in_features: size("in_features")?,
            out_features: size("out_features")?,
        },
        "Conv2d" => LayerSpec::Conv2d {
            in_channels: size("in_channels")?,
            out_channels: size("out_channels")?,
            kernel: pair("kernel_size", None)?,
            stride: same("stride", 1)?,
            padding: same("padding", 0)?,
        },
        "MaxPool2d" => {
            let kernel = pair("kernel_size", None)?;
            let stride = match module.get("stride") {
                None | Some(Value::Null) if kernel.0 == kernel.1 => kernel.0,
                _ => same("stride", 0)?,
            };
            LayerSpec::MaxPool2d { kernel, stride }
        }
        "Flatten" => LayerSpec::Flatten,
        "ReLU" => LayerSpec::Activation(Activation::Relu),
        "Sigmoid" => LayerSpec::Activation(Activation::Sigmoid),
        "Tanh" => LayerSpec::Activation(Activation::Tanh),
        "BatchNorm1d" => {
            close("eps", NORM_EPS, "eps")?;
            close("momentum", BATCH_NORM_MOMENTUM, "momentum")?;
            LayerSpec::Norm(Norm::Batch)
        }
        "LayerNorm" => {
            close("eps", NORM_EPS, "eps")?;
            LayerSpec::Norm(Norm::Layer)
        }
        "Dropout" => match module.get("p").and_then(Value::as_f64) {
            Some(p) if (0.0..1.0).contains(&p) => LayerSpec::Dropout { p },
            _ => return Err("p is not a probability in [0, 1)".into()),
        },
        other => {
            return Err(format!(
                "{other} is not a layer this project has (Linear, Conv2d, MaxPool2d, Flatten, \
                 ReLU, Sigmoid, Tanh, BatchNorm1d, LayerNorm, Dropout)"
            ));
        }
    })
}

/// Where one tensor's values live in a [`SavedModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// The weight of weight layer `k`.
    Weight(usize),
    /// Its bias.
    Bias(usize),
    /// A part of normalization layer `k`.
    Norm(usize, NormPart),
    /// Batch norm's step count (PyTorch's; nothing here reads it).
    BatchesTracked,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NormPart {
    Gamma,
    Beta,
    RunningMean,
    RunningVar,
}

/// One tensor of a network's file.
#[derive(Debug)]
struct Slot {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    source: Source,
    /// The module it belongs to, for messages: `Linear(784, 256)`.
    module: String,
}

impl Slot {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every tensor `spec`'s file holds, in layer order.
fn slots(spec: &NetSpec) -> Vec<Slot> {
    let (mut weights, mut norms) = (0, 0);
    let mut slots = Vec::new();
    for (index, layer) in spec.plan().into_iter().enumerate() {
        let mut add =
            |part: &str, dtype: Dtype, shape: Vec<usize>, source: Source, module: String| {
                slots.push(Slot {
                    name: format!("{index}.{part}"),
                    dtype,
                    shape,
                    source,
                    module,
                })
            };
        match layer {
            LayerPlan::Linear { fan_in, fan_out } => {
                let module = format!("Linear({fan_in}, {fan_out})");
                add(
                    "weight",
                    Dtype::F32,
                    vec![fan_out, fan_in],
                    Source::Weight(weights),
                    module.clone(),
                );
                add(
                    "bias",
                    Dtype::F32,
                    vec![fan_out],
                    Source::Bias(weights),
                    module,
                );
                weights += 1;
            }
            LayerPlan::Conv2d(geometry) => {
                let (channels, out) = (geometry.input.channels, geometry.out_channels);
                let (kh, kw) = geometry.kernel;
                let module = format!("Conv2d({channels}, {out}, ({kh}, {kw}))");
                add(
                    "weight",
                    Dtype::F32,
                    vec![out, channels, kh, kw],
                    Source::Weight(weights),
                    module.clone(),
                );
                add("bias", Dtype::F32, vec![out], Source::Bias(weights), module);
                weights += 1;
            }
            LayerPlan::Norm { norm, features } => {
                let module = match norm {
                    Norm::Batch => format!("BatchNorm1d({features})"),
                    _ => format!("LayerNorm({features})"),
                };
                let mut part = |name: &str, part: NormPart| {
                    add(
                        name,
                        Dtype::F32,
                        vec![features],
                        Source::Norm(norms, part),
                        module.clone(),
                    )
                };
                part("weight", NormPart::Gamma);
                part("bias", NormPart::Beta);
                if norm == Norm::Batch {
                    part("running_mean", NormPart::RunningMean);
                    part("running_var", NormPart::RunningVar);
                    add(
                        "num_batches_tracked",
                        Dtype::I64,
                        vec![],
                        Source::BatchesTracked,
                        module,
                    );
                }
                norms += 1;
            }
            _ => {}
        }
    }
    slots
}

/// The bytes of the file at `path`, at most [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>, OutputError> {
    let problem = |text: String| OutputError::new(path, text);
    let file = open_regular(path).map_err(|error| problem(format!("cannot open: {error}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| problem(format!("cannot read: {error}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(problem(format!(
            "larger than the limit of {MAX_FILE_BYTES} bytes for a model file"
        )));
    }
    Ok(bytes)
}

/// Loads a model from a safetensors file, its network taken from the [`NETWORK_KEY`] metadata.
///
/// # Errors
/// One line naming the file: no readable network description, or a tensor that is missing,
/// of another dtype or shape, not finite, or not part of the network.
pub fn load_safetensors(path: &Path) -> Result<SavedModel, OutputError> {
    let bytes = read_file(path)?;
    let problem = |text: String| OutputError::new(path, text);
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .map_err(|error| problem(format!("not a safetensors file: {error}")))?;
    let description = metadata
        .metadata()
        .as_ref()
        .and_then(|entries| entries.get(NETWORK_KEY))
        .ok_or_else(|| {
            problem(format!(
                "no {NETWORK_KEY:?} metadata, so the network's layers are unknown: write the file \
                 with reference/pytorch_bridge.py (train --init-from reads a bare state_dict, \
                 taking the layers from its flags)"
            ))
        })?;
    let spec = network_from_json(description)
        .map_err(|text| problem(format!("metadata {NETWORK_KEY:?}: {text}")))?;
    let (params, norms) = read_tensors(path, &bytes, &spec)?;
    saved_model(spec, params, norms).map_err(problem)
}

/// The weights and normalization parameters of network `spec` in the safetensors `bytes` (of
/// the file `path`), under PyTorch's names; the file's metadata is not read.
///
/// # Errors
/// As [`load_safetensors`].
pub fn read_tensors(
    path: &Path,
    bytes: &[u8],
    spec: &NetSpec,
) -> Result<(LinearParams<f32>, Vec<NormParams>), OutputError> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|error| OutputError::new(path, format!("not a safetensors file: {error}")))?;
    // Names or shapes that differ: the file's own layers (when it says) show where.
    let problem = |text: String| {
        let own = SafeTensors::read_metadata(bytes)
            .ok()
            .and_then(|(_, metadata)| metadata.metadata().as_ref()?.get(NETWORK_KEY).cloned())
            .and_then(|text| network_from_json(&text).ok())
            .filter(|own| own.layers() != spec.layers())
            .map(|own| {
                let layers: Vec<String> = own
                    .layers()
                    .iter()
                    .enumerate()
                    .map(|(index, layer)| format!("{index} {layer}"))
                    .collect();
                format!(
                    "; the file's metadata gives its layers as: {}",
                    layers.join(", ")
                )
            })
            .unwrap_or_default();
        OutputError::new(path, format!("{text}{own}"))
    };
    let slots = slots(spec);
    let expected: BTreeSet<&str> = slots.iter().map(|slot| slot.name.as_str()).collect();
    let mut weights: Vec<Option<Array2<f32>>> = Vec::new();
    let mut biases: Vec<Option<Array1<f32>>> = Vec::new();
    let mut norm_parts: Vec<[Option<Array1<f32>>; 4]> = Vec::new();
    for slot in &slots {
        let name = &slot.name;
        let tensor = match file.tensor(name) {
            Ok(tensor) => tensor,
            // PyTorch keeps it; nothing here needs it.
            Err(_) if slot.source == Source::BatchesTracked => continue,
            Err(_) => {
                return Err(problem(format!(
                    "tensor {name:?} is missing: layer {} is {} and has it",
                    name.split('.').next().unwrap_or_default(),
                    slot.module
                )));
            }
        };
        if tensor.dtype() != slot.dtype || tensor.shape() != slot.shape.as_slice() {
            return Err(problem(format!(
                "tensor {name:?} is {:?} {:?}, but layer {} ({}) takes {:?} {:?}",
                tensor.dtype(),
                tensor.shape(),
                name.split('.').next().unwrap_or_default(),
                slot.module,
                slot.dtype,
                slot.shape
            )));
        }
        if slot.dtype != Dtype::F32 {
            continue;
        }
        let values: Vec<f32> = tensor
            .data()
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .collect();
        if let Some(at) = values.iter().position(|value| !value.is_finite()) {
            return Err(problem(format!(
                "tensor {name:?}: value {at} (flat) is {}, not a finite number",
                values[at]
            )));
        }
        let grow = |length: usize, index: usize| index.max(length.saturating_sub(1)) + 1;
        match slot.source {
            Source::Weight(layer) => {
                // PyTorch's (out, rest..) is W^T; W is (rest, out).
                let out = slot.shape[0];
                let transposed = Array2::from_shape_vec((out, values.len() / out), values)
                    .map_err(|error| problem(format!("tensor {name:?}: {error}")))?;
                weights.resize(grow(weights.len(), layer), None);
                weights[layer] = Some(transposed.t().as_standard_layout().into_owned());
            }
            Source::Bias(layer) => {
                biases.resize(grow(biases.len(), layer), None);
                biases[layer] = Some(Array1::from_vec(values));
            }
            Source::Norm(layer, part) => {
                let values = Array1::from_vec(values);
                if part == NormPart::RunningVar {
                    check_norm_values(&values, true)
                        .map_err(|text| problem(format!("tensor {name:?}: {text}")))?;
                }
                norm_parts.resize(grow(norm_parts.len(), layer), Default::default());
                norm_parts[layer][part as usize] = Some(values);
            }
            Source::BatchesTracked => {}
        }
    }
    let mut names = file.names();
    names.sort_unstable();
    if let Some(stranger) = names.iter().find(|name| !expected.contains(**name)) {
        return Err(problem(format!(
            "tensor {stranger:?} is not one of the network's ({}; layer i of the \
             nn.Sequential is named i.weight, i.bias, ...)",
            slots
                .iter()
                .map(|slot| slot.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let params = weights
        .into_iter()
        .zip(biases)
        .filter_map(|(weight, bias)| Some((weight?, bias?)))
        .collect();
    let norms = norm_parts
        .into_iter()
        .filter_map(|[gamma, beta, mean, var]| {
            Some(NormParams {
                gamma: gamma?,
                beta: beta?,
                running: mean.zip(var),
            })
        })
        .collect();
    Ok((params, norms))
}

/// The model of `spec`: the MLP preset when the network is one (on flat input), else `--arch`
/// layers on its images.
fn saved_model(
    spec: NetSpec,
    params: LinearParams<f32>,
    norms: Vec<NormParams>,
) -> Result<SavedModel, String> {
    let input = spec.input();
    if input.is_flat()
        && let Some((_, layout)) = spec.as_mlp()
    {
        return Ok(SavedModel {
            params,
            activation: layout.activation,
            norm: layout.norm,
            norms,
            layers: None,
        });
    }
    if input.is_flat() {
        return Err(
            "a network on flat input must be an MLP (Linear, [norm], activation, [dropout], ..., \
             Linear, the same block after every hidden layer); give an image input_shape \
             [C, H, W] and a Flatten for other layers"
                .to_string(),
        );
    }
    let arch = Arch::of_spec(&spec)?;
    Ok(SavedModel {
        params,
        activation: spec.activation(),
        norm: spec
            .norm_layers()
            .first()
            .map_or(Norm::None, |(norm, _)| *norm),
        norms,
        layers: Some(Layers { arch, input }),
    })
}

/// The weights and normalization parameters of the run's network `spec` in a safetensors file:
/// `train --init-from`. The names and shapes come from `spec`, not from the file's metadata.
///
/// # Errors
/// As [`load_safetensors`].
pub fn load_tensors_for(
    path: &Path,
    spec: &NetSpec,
) -> Result<(LinearParams<f32>, Vec<NormParams>), OutputError> {
    let bytes = read_file(path)?;
    read_tensors(path, &bytes, spec)
}
