//! `model.safetensors`: PyTorch's names and layouts, a lossless round trip, hostile files as
//! one error naming the file and the tensor, and `train --init-from` / `eval` on the command
//! line. (`reference/pytorch_bridge.py` is the PyTorch side; its output is in the README.)

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use backprop::arch::Arch;
use backprop::model_file::{Layers, NormParams, SavedModel, load_model};
use backprop::safetensors_file::{NETWORK_KEY, load_safetensors, safetensors_bytes};
use backprop_core::network::NetSpec;
use backprop_core::{Activation, ImageShape, LossKind, MlpSpec, Norm};
use ndarray::{Array1, Array2};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::common::Scratch;

/// `count` distinct values, none of them 0 (a transposed or shuffled copy cannot match).
fn values(count: usize, salt: f32) -> Vec<f32> {
    (0..count)
        .map(|at| ((at as f32 + 1.0) * 0.618 + salt).sin())
        .collect()
}

/// A model of `spec`: every weight and norm value distinct; running variances positive.
fn model_of(
    spec: &NetSpec,
    layers: Option<Layers>,
    activation: Activation,
    norm: Norm,
) -> SavedModel {
    let params = spec
        .weight_shapes()
        .into_iter()
        .enumerate()
        .map(|(index, (rows, columns))| {
            let weight =
                Array2::from_shape_vec((rows, columns), values(rows * columns, index as f32))
                    .unwrap();
            (
                weight,
                Array1::from_vec(values(columns, 10.0 + index as f32)),
            )
        })
        .collect();
    let norms = spec
        .norm_layers()
        .into_iter()
        .enumerate()
        .map(|(index, (norm, features))| NormParams {
            gamma: Array1::from_vec(values(features, 20.0 + index as f32)),
            beta: Array1::from_vec(values(features, 30.0 + index as f32)),
            running: (norm == Norm::Batch).then(|| {
                (
                    Array1::from_vec(values(features, 40.0)),
                    Array1::from_vec(values(features, 50.0)).mapv(f32::abs),
                )
            }),
        })
        .collect();
    SavedModel {
        params,
        activation,
        norm,
        norms,
        layers,
    }
}

/// [12, 7, 5, 10] tanh with batch norm and dropout 0.25: Linear, BatchNorm1d, Tanh, Dropout, ...
fn mlp() -> (SavedModel, NetSpec) {
    let spec = MlpSpec {
        sizes: vec![12, 7, 5, 10],
        activation: Activation::Tanh,
        loss: LossKind::SoftmaxCrossEntropy,
        init: backprop_core::Init::PytorchDefault,
        seed: 0,
        norm: Norm::Batch,
        dropout: 0.25,
    }
    .net_spec();
    (model_of(&spec, None, Activation::Tanh, Norm::Batch), spec)
}

/// A CNN on 1x6x6 images with a layer norm.
fn cnn() -> (SavedModel, NetSpec) {
    let layers = Layers {
        arch: "conv(3,3,pad=1),relu,maxpool(2),flatten,linear(8),layernorm,relu,linear(10)"
            .parse::<Arch>()
            .unwrap(),
        input: ImageShape::new(1, 6, 6),
    };
    let spec = layers.spec().unwrap();
    (
        model_of(&spec, Some(layers), Activation::Relu, Norm::Layer),
        spec,
    )
}

#[test]
fn a_model_reads_back_exactly_as_it_was_written() {
    let scratch = Scratch::new("safetensors-round-trip");
    for (name, (model, spec)) in [("mlp", mlp()), ("cnn", cnn())] {
        let path = scratch.join(format!("{name}.safetensors"));
        fs::write(&path, safetensors_bytes(&model, &spec, 7).unwrap()).unwrap();
        assert_eq!(load_safetensors(&path).unwrap(), model, "{name}");
        // load_model tells the formats apart by their first bytes, whatever the file's name.
        let renamed = scratch.join(format!("{name}.npz"));
        fs::rename(&path, &renamed).unwrap();
        assert_eq!(load_model(&renamed).unwrap(), model, "{name}");
    }
}

#[test]
fn tensors_carry_pytorchs_names_layouts_and_modules() {
    let (model, spec) = mlp();
    let bytes = safetensors_bytes(&model, &spec, 7).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    // nn.Sequential(Linear, BatchNorm1d, Tanh, Dropout, Linear, BatchNorm1d, Tanh, Dropout, Linear)
    let mut expected = vec![
        "0.weight", "0.bias", "4.weight", "4.bias", "8.weight", "8.bias",
    ];
    for norm in ["1", "5"] {
        for part in [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ] {
            expected.push(Box::leak(format!("{norm}.{part}").into_boxed_str()));
        }
    }
    expected.sort_unstable();
    assert_eq!(names, expected);

    // A Linear's weight is (out, in): W^T of our (fan_in, fan_out).
    let weight = file.tensor("4.weight").unwrap();
    assert_eq!((weight.dtype(), weight.shape()), (Dtype::F32, &[5, 7][..]));
    let ours = &model.params[1].0;
    for (at, chunk) in weight.data().chunks_exact(4).enumerate() {
        let value = f32::from_le_bytes(chunk.try_into().unwrap());
        assert_eq!(value, ours[[at % 7, at / 7]], "4.weight flat index {at}");
    }
    let gamma = file.tensor("5.weight").unwrap();
    assert_eq!(gamma.shape(), [5]);
    assert_eq!(
        f32::from_le_bytes(gamma.data()[..4].try_into().unwrap()),
        model.norms[1].gamma[0]
    );
    let tracked = file.tensor("1.num_batches_tracked").unwrap();
    assert_eq!((tracked.dtype(), tracked.shape()), (Dtype::I64, &[][..]));
    assert_eq!(i64::from_le_bytes(tracked.data().try_into().unwrap()), 7);

    // The modules, as torch.nn's classes and keyword arguments.
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let network: serde_json::Value =
        serde_json::from_str(&metadata.metadata().as_ref().unwrap()[NETWORK_KEY]).unwrap();
    let block = |fan_in: usize, width: usize| {
        [
            serde_json::json!({"module": "Linear", "in_features": fan_in, "out_features": width}),
            serde_json::json!({"module": "BatchNorm1d", "num_features": width, "eps": 1e-5, "momentum": 0.1}),
            serde_json::json!({"module": "Tanh"}),
            serde_json::json!({"module": "Dropout", "p": 0.25}),
        ]
    };
    let mut modules: Vec<serde_json::Value> = block(12, 7).into_iter().chain(block(7, 5)).collect();
    modules.push(serde_json::json!({"module": "Linear", "in_features": 5, "out_features": 10}));
    assert_eq!(
        network,
        serde_json::json!({"input_shape": [12], "modules": modules})
    );

    // A convolution's weight is (out, C, kh, kw).
    let (model, spec) = cnn();
    let bytes = safetensors_bytes(&model, &spec, 0).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let weight = file.tensor("0.weight").unwrap();
    assert_eq!(weight.shape(), [3, 1, 3, 3]);
    let ours = &model.params[0].0; // (C kh kw, out) = (9, 3)
    for (at, chunk) in weight.data().chunks_exact(4).enumerate() {
        let value = f32::from_le_bytes(chunk.try_into().unwrap());
        assert_eq!(value, ours[[at % 9, at / 9]], "0.weight flat index {at}");
    }
    assert!(file.tensor("5.weight").is_ok(), "LayerNorm is module 5");
    assert!(
        file.tensor("5.running_mean").is_err(),
        "a LayerNorm has no running statistics"
    );
}

/// The tensors of `bytes` as (name, dtype, shape, data), and its metadata.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn unpack(bytes: &[u8]) -> (Tensors, Option<HashMap<String, String>>) {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap();
    (tensors, metadata.metadata().clone())
}

fn pack(tensors: &Tensors, metadata: Option<HashMap<String, String>>) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.as_str(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, metadata).unwrap()
}

#[test]
fn hostile_files_are_one_error_naming_the_file_and_the_tensor() {
    let scratch = Scratch::new("safetensors-hostile");
    let (model, spec) = mlp();
    let good = safetensors_bytes(&model, &spec, 7).unwrap();
    let (tensors, metadata) = unpack(&good);
    let path = scratch.join("model.safetensors");
    let refused = |bytes: &[u8], fragments: &[&str]| {
        fs::write(&path, bytes).unwrap();
        let error = load_safetensors(&path)
            .expect_err("a hostile file")
            .to_string();
        assert!(
            error.starts_with(&path.display().to_string()),
            "names the file: {error}"
        );
        for fragment in fragments {
            assert!(error.contains(fragment), "{fragment:?} not in: {error}");
        }
    };
    let edited = |edit: &dyn Fn(&mut Tensors)| {
        let mut tensors = tensors.clone();
        edit(&mut tensors);
        pack(&tensors, metadata.clone())
    };
    let find =
        |tensors: &mut Tensors, name: &str| tensors.iter().position(|t| t.0 == name).unwrap();

    refused(
        &edited(&|t| {
            let at = find(t, "1.running_var");
            t.remove(at);
        }),
        &["tensor \"1.running_var\" is missing", "BatchNorm1d(7)"],
    );
    refused(
        &edited(&|t| t.push(("9.weight".into(), Dtype::F32, vec![1], vec![0; 4]))),
        &["tensor \"9.weight\" is not one of the network's"],
    );
    refused(
        &edited(&|t| {
            let at = find(t, "0.weight");
            t[at].2 = vec![12, 7];
        }),
        &["tensor \"0.weight\"", "[12, 7]", "Linear(12, 7)", "[7, 12]"],
    );
    refused(
        &edited(&|t| {
            let at = find(t, "0.bias");
            t[at].1 = Dtype::I32;
        }),
        &["tensor \"0.bias\"", "I32", "F32"],
    );
    refused(
        &edited(&|t| {
            let at = find(t, "4.bias");
            t[at].3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        }),
        &["tensor \"4.bias\": value 2", "NaN", "not a finite number"],
    );
    refused(
        &edited(&|t| {
            let at = find(t, "5.running_var");
            t[at].3[..4].copy_from_slice(&(-1.0f32).to_le_bytes());
        }),
        &["tensor \"5.running_var\"", "never negative"],
    );
    refused(&pack(&tensors, None), &["no \"backprop.network\" metadata"]);
    let with_network = |text: &str| {
        pack(
            &tensors,
            Some(HashMap::from([(NETWORK_KEY.to_string(), text.to_string())])),
        )
    };
    refused(
        &with_network("{not json"),
        &["backprop.network", "not JSON"],
    );
    refused(
        &with_network(r#"{"input_shape": [12], "modules": [{"module": "GELU"}]}"#),
        &["module 0", "GELU is not a layer this project has"],
    );
    refused(
        &with_network(
            r#"{"input_shape": [12], "modules": [{"module": "Linear", "in_features": 13, "out_features": 10}]}"#,
        ),
        &["Linear(13, 10)", "takes 13"],
    );

    // Every truncation, and bytes that only look like a file, fail as a file, never panic.
    for length in (0..good.len()).step_by(97).chain([good.len() - 1]) {
        fs::write(&path, &good[..length]).unwrap();
        let error = load_safetensors(&path)
            .expect_err("a truncated file")
            .to_string();
        assert!(
            error.contains("not a safetensors file"),
            "{length} bytes: {error}"
        );
    }
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(&huge_header, &["not a safetensors file"]);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..64 {
        let noise: Vec<u8> = (0..200)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        refused(&noise, &["not a safetensors file"]);
    }
    // One byte changed anywhere: a clean error, or a model of the same network (a changed
    // weight is still a weight); never a panic.
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut mutated = good.clone();
        let at = (state >> 8) as usize % mutated.len();
        mutated[at] ^= (state as u8) | 1;
        fs::write(&path, &mutated).unwrap();
        if let Ok(loaded) = load_safetensors(&path) {
            let shapes = |model: &SavedModel| -> Vec<_> {
                model
                    .params
                    .iter()
                    .map(|(w, b)| (w.dim(), b.len()))
                    .collect()
            };
            assert_eq!(shapes(&loaded), shapes(&model), "byte {at}");
            assert_eq!(loaded.norms.len(), model.norms.len(), "byte {at}");
        }
    }
}

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the backprop binary runs")
}

fn succeeds(args: &[&str]) -> String {
    let output = backprop(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn eval_reads_model_safetensors_and_init_from_starts_from_a_bare_state_dict() {
    let scratch = Scratch::new("safetensors-cli");
    let (first, started) = (scratch.join("first"), scratch.join("started"));
    let run = [
        "train", "--hidden", "16", "--limit", "500", "--epochs", "1", "--quiet",
    ];
    succeeds(&[&run[..], &["--out", path(&first)]].concat());
    let summary = |model: &Path| {
        succeeds(&["eval", "--model", path(model)])
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        summary(&first.join("model.safetensors")),
        summary(&first.join("model.npz"))
    );

    // What PyTorch's save_file(model.state_dict()) writes: the tensors alone, no metadata.
    let (tensors, _) = unpack(&fs::read(first.join("model.safetensors")).unwrap());
    let bare = scratch.join("bare.safetensors");
    fs::write(&bare, pack(&tensors, None)).unwrap();
    // A learning rate too small to move any weight: the run ends with the weights it started
    // from, so they must be the file's (not a fresh init).
    succeeds(
        &[
            &run[..],
            &[
                "--lr",
                "1e-30",
                "--init-from",
                path(&bare),
                "--out",
                path(&started),
            ],
        ]
        .concat(),
    );
    let (trained, restarted) = (
        load_model(&first.join("model.npz")).unwrap(),
        load_model(&started.join("model.npz")).unwrap(),
    );
    assert_eq!(restarted.params, trained.params);
    let config = fs::read_to_string(started.join("config.json")).unwrap();
    assert!(config.contains("\"init_from\""), "{config}");

    // Another network's file: the tensor and both shapes are named, and nothing is written.
    let refused = scratch.join("refused");
    let output = backprop(&[
        "train",
        "--hidden",
        "32",
        "--limit",
        "500",
        "--epochs",
        "1",
        "--init-from",
        path(&bare),
        "--out",
        path(&refused),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tensor \"0.weight\" is F32 [16, 784], but layer 0 (Linear(784, 32)) takes F32 [32, 784]"), "{stderr}");
    assert!(
        !refused.exists(),
        "nothing written for a refused --init-from"
    );
}
