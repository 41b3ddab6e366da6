//! Success level 4: every output and gradient matches PyTorch's autograd.
//!
//! The fixtures in `crates/harness/fixtures/` were written once by `reference/make_fixtures.py`
//! with real PyTorch (the versions are recorded in every file's `meta`), so the gate needs no
//! Python. Each fixture holds a network's weights in our layout (W of shape
//! `(fan_in, fan_out)`), its inputs and targets, and PyTorch's outputs, loss and gradients. The
//! gate rebuilds the network in the level under test from the stored weights, runs forward and
//! backward, and compares everything.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::path::PathBuf;

use backprop_core::flow::clip_grad_norm;
use backprop_core::optim::{Adam, AnyOptimizer, Sgd};
use backprop_core::{
    Activation, Conv2dGeometry, DropoutLayer, Float, ImageShape, Layer, Level, LinearLayer,
    LinearParams, Loss, LossKind, Model, NormLayer, Pool2dGeometry, Targets,
};
use ndarray::{Array, Array1, Array2, ArrayD, Dimension, Ix1, Ix2};
use ndarray_npy::{NpzReader, ReadableElement};

use crate::diagnosis::{Evidence, Pass, Subject};
use crate::expect::{close_to_pytorch, parameter_gradients};

/// The folder holding the `.npz` fixtures.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One fixture file, opened.
pub struct Fixture {
    /// The file name without `.npz`: `mlp_mnist_relu_784_256_10_f64`.
    pub name: String,
    path: PathBuf,
    meta: BTreeMap<String, String>,
    archive: NpzReader<File>,
}

impl Fixture {
    /// The names of every fixture whose `kind` is `kind` (`layer`, `loss`, `mlp`, `optimizer`,
    /// `accumulate`, `clip`), sorted.
    ///
    /// # Panics
    /// If the fixture folder cannot be read or holds no fixture of that kind.
    pub fn all_of_kind(kind: &str) -> Vec<Fixture> {
        let dir = fixture_dir();
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: cannot list the fixtures: {error}", dir.display()));
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|file| file.strip_suffix(".npz").map(str::to_string))
            .collect();
        names.sort();
        let fixtures: Vec<Fixture> = names
            .iter()
            .map(|name| Fixture::open(name))
            .filter(|fixture| fixture.meta("kind") == kind)
            .collect();
        assert!(
            !fixtures.is_empty(),
            "{}: no fixture of kind {kind:?}",
            dir.display()
        );
        fixtures
    }

    /// Opens `fixtures/{name}.npz` and reads its `meta`.
    ///
    /// # Panics
    /// If the file is missing or not a readable `.npz` with a `meta` entry; the message names it.
    pub fn open(name: &str) -> Fixture {
        let path = fixture_dir().join(format!("{name}.npz"));
        let file = File::open(&path)
            .unwrap_or_else(|error| panic!("{}: cannot open the fixture: {error}", path.display()));
        let archive = NpzReader::new(file)
            .unwrap_or_else(|error| panic!("{}: not a readable .npz: {error}", path.display()));
        let mut fixture = Fixture {
            name: name.to_string(),
            path,
            meta: BTreeMap::new(),
            archive,
        };
        let bytes: Array<u8, Ix1> = fixture.read("meta");
        let text = String::from_utf8(bytes.to_vec())
            .unwrap_or_else(|_| panic!("{}: meta is not UTF-8", fixture.path.display()));
        fixture.meta = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        fixture
    }

    /// A `meta` value, such as `dtype`, `activation` or `torch`.
    ///
    /// # Panics
    /// If the fixture has no such key.
    pub fn meta(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .unwrap_or_else(|| panic!("{}: no {key:?} in its meta", self.path.display()))
    }

    /// `"f32"` or `"f64"`: the float type PyTorch computed in.
    pub fn dtype(&self) -> &str {
        self.meta("dtype")
    }

    /// The label the parity messages start with: the gate or group and the fixture.
    pub fn check(&self) -> String {
        let group = match self.meta("kind") {
            "norm" => "normalization group",
            "conv" | "cnn" => "convolution group",
            _ => "gate 4",
        };
        format!(
            "{group} (PyTorch parity), fixture {} (torch {})",
            self.name,
            self.meta("torch")
        )
    }

    fn read<A: ReadableElement, D: Dimension>(&mut self, key: &str) -> Array<A, D> {
        self.archive
            .by_name(key)
            .unwrap_or_else(|error| panic!("{}: cannot read {key:?}: {error}", self.path.display()))
    }

    /// An array of the fixture's dtype, converted to `F` (exact when `F` is that dtype).
    pub fn array<F: Float, D: Dimension>(&mut self, key: &str) -> Array<F, D> {
        match self.dtype() {
            "f64" => self.read::<f64, D>(key).mapv(F::of),
            _ => self.read::<f32, D>(key).mapv(|x| F::of(f64::from(x))),
        }
    }

    /// An array widened to `f64` for comparison.
    pub fn expected(&mut self, key: &str) -> ArrayD<f64> {
        self.array::<f64, ndarray::IxDyn>(key)
    }

    /// Class indices stored as `int64`.
    pub fn classes(&mut self, key: &str) -> Vec<usize> {
        let classes: Array<i64, Ix1> = self.read(key);
        classes.iter().map(|&class| class as usize).collect()
    }

    /// `weight{i}{suffix}` and `bias{i}{suffix}` of every layer.
    pub fn linear_params<F: Float>(&mut self, suffix: &str) -> LinearParams<F> {
        let layers: usize = self
            .meta("layers")
            .parse()
            .expect("meta layers is a number");
        (0..layers)
            .map(|index| {
                let weight = self.array::<F, Ix2>(&format!("weight{index}{suffix}"));
                let bias = self.array::<F, Ix1>(&format!("bias{index}{suffix}"));
                (weight, bias)
            })
            .collect()
    }

    fn activation(&self) -> Activation {
        self.meta("activation")
            .parse()
            .unwrap_or_else(|error| panic!("{}: {error}", self.name))
    }

    fn loss_kind(&self) -> LossKind {
        match self.meta("loss") {
            "softmax_cross_entropy" => LossKind::SoftmaxCrossEntropy,
            "mse" => LossKind::Mse,
            other => panic!("{}: unknown loss {other:?}", self.name),
        }
    }

    /// Compares `ours` with the fixture's array `key`.
    #[track_caller]
    fn compare<F: Float, D: Dimension>(&mut self, tensor: &str, ours: &Array<F, D>, key: &str) {
        self.compare_with(tensor, ours, key, &Evidence::default());
    }

    /// [`Fixture::compare`] with the evidence a diagnosis may use.
    #[track_caller]
    fn compare_with<F: Float, D: Dimension>(
        &mut self,
        tensor: &str,
        ours: &Array<F, D>,
        key: &str,
        evidence: &Evidence<'_>,
    ) {
        let expected = self.expected(key);
        let ours = ours.mapv(F::as_f64).into_dyn();
        let evidence = Evidence {
            single_precision: self.dtype() == "f32",
            ..*evidence
        };
        close_to_pytorch(
            &self.check(),
            tensor,
            ours.view(),
            expected.view(),
            self.dtype(),
            &evidence,
        );
    }

    #[track_caller]
    fn compare_scalar<F: Float>(
        &mut self,
        tensor: &str,
        ours: F,
        key: &str,
        evidence: &Evidence<'_>,
    ) {
        self.compare_with(tensor, &ndarray::arr0(ours), key, evidence);
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

/// Runs every fixture of `kind` in the fixture's own float type.
fn for_each_fixture(kind: &str, run_f64: fn(&mut Fixture), run_f32: fn(&mut Fixture)) {
    for mut fixture in Fixture::all_of_kind(kind) {
        match fixture.dtype() {
            "f64" => run_f64(&mut fixture),
            "f32" => run_f32(&mut fixture),
            other => panic!("{}: unknown dtype {other:?}", fixture.name),
        }
    }
}

/// **Success level 4, layers**: Linear (square and not), ReLU (with inputs exactly 0),
/// sigmoid and tanh, each under PyTorch's random upstream gradient.
pub fn gate4_pytorch_layers<L: Level<f64> + Level<f32>>() {
    for_each_fixture("layer", layer_fixture::<f64, L>, layer_fixture::<f32, L>);
}

fn layer_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let input: Array2<F> = fixture.array("input");
    let upstream: Array2<F> = fixture.array("upstream");
    let (input_f64, upstream_f64) = (input.mapv(F::as_f64), upstream.mapv(F::as_f64));
    let evidence = |subject| Evidence {
        earlier_matched: true,
        ..Evidence::layer(subject, input_f64.view(), upstream_f64.view())
    };
    let run = |layer: &mut dyn Layer<F>, fixture: &mut Fixture, evidence: &Evidence<'_>| {
        let output = layer.forward(input.view());
        fixture.compare("output", &output, "output");
        let grad_input = layer.backward(upstream.view());
        fixture.compare_with("dL/dinput", &grad_input, "grad_input", evidence);
    };
    match fixture.meta("layer") {
        "linear" => {
            let weight: Array2<F> = fixture.array("weight");
            let weight_f64 = weight.mapv(F::as_f64);
            let evidence = Evidence {
                weight: Some(weight_f64.view()),
                ..evidence(Subject::Linear)
            };
            let mut linear = L::linear(weight, fixture.array("bias"));
            run(&mut linear, fixture, &evidence);
            for (name, _, grad) in linear.params_mut().tensors() {
                let (tensor, key) = (format!("dL/d{name}"), format!("grad_{name}"));
                fixture.compare_with(&tensor, &grad.to_owned(), &key, &evidence);
            }
        }
        name => {
            let activation: Activation = name.parse().unwrap_or_else(|error| panic!("{error}"));
            let evidence = evidence(Subject::Activation(activation));
            run(&mut L::activation(activation), fixture, &evidence);
        }
    }
}

/// **Success level 4, losses**: softmax cross-entropy (also with logits around 1e3 and 1e4)
/// and MSE.
pub fn gate4_pytorch_losses<L: Level<f64> + Level<f32>>() {
    for_each_fixture("loss", loss_fixture::<f64, L>, loss_fixture::<f32, L>);
}

fn loss_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let input: Array2<F> = fixture.array("input");
    let input_f64 = input.mapv(F::as_f64);
    let classes;
    let values: Array2<f64>;
    let (loss, grad, evidence) = match fixture.loss_kind() {
        LossKind::SoftmaxCrossEntropy => {
            classes = fixture.classes("targets");
            let targets = Targets::Classes(&classes);
            let (loss, grad) = run_loss(&mut L::softmax_cross_entropy(), &input, targets);
            let subject = Subject::SoftmaxCrossEntropy;
            let targets = Targets::Classes(&classes);
            (
                loss,
                grad,
                Evidence::loss(subject, input_f64.view(), targets),
            )
        }
        LossKind::Mse => {
            let targets: Array2<F> = fixture.array("target_values");
            values = targets.mapv(F::as_f64);
            let (loss, grad) = run_loss(&mut L::mse(), &input, Targets::Values(targets.view()));
            let targets = Targets::Values(values.view());
            (
                loss,
                grad,
                Evidence::loss(Subject::Mse, input_f64.view(), targets),
            )
        }
    };
    fixture.compare_with("dL/dinput", &grad, "grad_input", &evidence);
    let evidence = Evidence {
        earlier_matched: true,
        ..evidence
    };
    fixture.compare_scalar("loss", loss, "loss", &evidence);
}

fn run_loss<F: Float>(
    loss: &mut impl Loss<F>,
    input: &Array2<F>,
    targets: Targets<'_, F>,
) -> (F, Array2<F>) {
    let value = loss.forward(input.view(), targets);
    (value, loss.backward())
}

/// Owned targets read from a fixture.
enum OwnedTargets<F> {
    Classes(Vec<usize>),
    Values(Array2<F>),
}

impl<F: Float> OwnedTargets<F> {
    fn read(fixture: &mut Fixture, suffix: &str) -> Self {
        match fixture.loss_kind() {
            LossKind::SoftmaxCrossEntropy => {
                OwnedTargets::Classes(fixture.classes(&format!("targets{suffix}")))
            }
            LossKind::Mse => OwnedTargets::Values(fixture.array(&format!("target_values{suffix}"))),
        }
    }

    fn view(&self) -> Targets<'_, F> {
        match self {
            OwnedTargets::Classes(classes) => Targets::Classes(classes),
            OwnedTargets::Values(values) => Targets::Values(values.view()),
        }
    }
}

/// **Success level 4, networks**: [784, 256, 10] ReLU on 64 MNIST images (f64 and f32), a
/// 12-layer tanh net, sigmoid with MSE, batch 1 and 3 with odd widths, ReLU pre-activations
/// exactly 0, every target the same class.
pub fn gate4_pytorch_mlps<L: Level<f64> + Level<f32>>() {
    for_each_fixture("mlp", mlp_fixture::<f64, L>, mlp_fixture::<f32, L>);
}

fn mlp_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let input: Array2<F> = fixture.array("input");
    let targets = OwnedTargets::<F>::read(fixture, "");
    let mut model = fixture_model::<F, L>(fixture);
    let evidence = Evidence::network(input.nrows());
    model.zero_grad();
    let logits = model.forward(input.view());
    fixture.compare_with("logits", &logits, "logits", &evidence);
    let loss = model.loss(targets.view());
    let after_logits = Evidence {
        earlier_matched: true,
        ..evidence
    };
    fixture.compare_scalar("loss", loss, "loss", &after_logits);
    let grad_input = model.backward();
    compare_parameter_gradients(fixture, &mut model, &evidence);
    fixture.compare_with("dL/dinput", &grad_input, "grad_input", &evidence);
}

/// Level `L`'s MLP with the fixture's weights, activation and loss.
fn fixture_model<F: Float, L: Level<F>>(fixture: &mut Fixture) -> L::Network {
    L::mlp(
        fixture.linear_params(""),
        fixture.activation(),
        fixture.loss_kind(),
    )
}

/// Compares `linear{i}.weight`/`.bias` gradients with `grad_weight{i}`/`grad_bias{i}`.
fn compare_parameter_gradients<F: Float>(
    fixture: &mut Fixture,
    model: &mut impl Model<F>,
    evidence: &Evidence<'_>,
) {
    for (index, pair) in parameter_gradients(model).chunks(2).enumerate() {
        for ((name, grad), key) in pair
            .iter()
            .zip([format!("grad_weight{index}"), format!("grad_bias{index}")])
        {
            fixture.compare_with(&format!("dL/d{name}"), grad, &key, evidence);
        }
    }
}

/// **Success level 4, training**: the loss at each of 3 optimizer steps and the weights after
/// them (the update rules of [`Sgd`] plain, with momentum, Nesterov and weight decay, and of
/// [`Adam`], as `torch.optim` computes them), the gradients after two backward passes without `zero_grad` (they
/// accumulate, as PyTorch's `.grad` does), and the gradients after
/// [`clip_grad_norm`] (as `torch.nn.utils.clip_grad_norm_`).
pub fn gate4_pytorch_training<L: Level<f64> + Level<f32>>() {
    for_each_fixture(
        "optimizer",
        optimizer_fixture::<f64, L>,
        optimizer_fixture::<f32, L>,
    );
    for_each_fixture(
        "accumulate",
        accumulate_fixture::<f64, L>,
        accumulate_fixture::<f32, L>,
    );
    for_each_fixture("clip", clip_fixture::<f64, L>, clip_fixture::<f32, L>);
}

/// The optimizer a fixture's meta describes: `optimizer=sgd` with `lr`, `momentum`,
/// `nesterov` and `weight_decay`, or `optimizer=adam` with `lr`, `beta1`, `beta2`, `eps` and
/// `weight_decay`.
fn fixture_optimizer<F: Float>(fixture: &Fixture) -> AnyOptimizer<F> {
    let number = |key: &str| -> f64 {
        fixture
            .meta(key)
            .parse()
            .unwrap_or_else(|_| panic!("{}: meta {key} is not a number", fixture.name))
    };
    match fixture.meta("optimizer") {
        "sgd" => {
            let mut sgd = Sgd::new(number("lr"))
                .with_momentum(number("momentum"))
                .with_weight_decay(number("weight_decay"));
            sgd.nesterov = fixture.meta("nesterov") == "True";
            AnyOptimizer::Sgd(sgd)
        }
        "adam" => {
            let mut adam = Adam::new(number("lr")).with_weight_decay(number("weight_decay"));
            adam.betas = (number("beta1"), number("beta2"));
            adam.eps = number("eps");
            AnyOptimizer::Adam(adam)
        }
        other => panic!("{}: unknown optimizer {other:?}", fixture.name),
    }
}

fn optimizer_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let optimizer = fixture_optimizer(fixture);
    optimizer_steps::<F, L>(fixture, optimizer);
}

/// Runs the fixture's steps with `optimizer` and compares the losses and the weights after.
fn optimizer_steps<F: Float, L: Level<F>>(fixture: &mut Fixture, mut optimizer: AnyOptimizer<F>) {
    let input: Array2<F> = fixture.array("input");
    let targets = OwnedTargets::<F>::read(fixture, "");
    let steps: usize = fixture
        .meta("steps")
        .parse()
        .expect("meta steps is a number");
    let mut model = fixture_model::<F, L>(fixture);
    let losses: Vec<F> = (0..steps)
        .map(|_| model.train_step(input.view(), targets.view(), &mut optimizer))
        .collect();
    fixture.compare("loss at each step", &Array::from_vec(losses), "losses");
    for (index, (weight, bias)) in model.linear_params().iter().enumerate() {
        fixture.compare(
            &format!("linear{index}.weight after {steps} steps"),
            weight,
            &format!("weight{index}_after"),
        );
        fixture.compare(
            &format!("linear{index}.bias after {steps} steps"),
            bias,
            &format!("bias{index}_after"),
        );
    }
}

fn accumulate_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let mut model = fixture_model::<F, L>(fixture);
    model.zero_grad();
    for suffix in ["", "2"] {
        let input: Array2<F> = fixture.array(&format!("input{suffix}"));
        let targets = OwnedTargets::<F>::read(fixture, suffix);
        model.forward(input.view());
        model.loss(targets.view());
        model.backward();
    }
    compare_parameter_gradients(fixture, &mut model, &Evidence::default());
}

fn clip_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let input: Array2<F> = fixture.array("input");
    let targets = OwnedTargets::<F>::read(fixture, "");
    let max_norm: f64 = fixture
        .meta("max_norm")
        .parse()
        .expect("meta max_norm is a number");
    let mut model = fixture_model::<F, L>(fixture);
    model.zero_grad();
    model.forward(input.view());
    model.loss(targets.view());
    model.backward();
    let total_norm = clip_grad_norm(&mut model, max_norm);
    fixture.compare_scalar(
        "total gradient norm before clipping",
        F::of(total_norm),
        "total_norm",
        &Evidence::default(),
    );
    compare_parameter_gradients(fixture, &mut model, &Evidence::default());
}

/// **After gate 4, normalization**: batch norm (training forward and backward, the running
/// statistics after one and three training forwards, evaluation forward and backward), layer
/// norm, and dropout under the mask PyTorch drew, in `f64` and `f32`.
pub fn gate5_pytorch_normalization<L: Level<f64> + Level<f32>>() {
    for_each_fixture("norm", norm_fixture::<f64, L>, norm_fixture::<f32, L>);
}

fn norm_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let input: Array2<F> = fixture.array("input");
    let upstream: Array2<F> = fixture.array("upstream");
    let features = input.ncols();
    match fixture.meta("layer") {
        "batch_norm" => {
            let mut layer = L::batch_norm(features);
            let training = Subject::BatchNorm { training: true };
            norm_pass(fixture, &mut layer, (&input, &upstream), training);
            let mut batches = vec![input.mapv(F::as_f64)];
            compare_running(fixture, &mut layer, "1", &batches);
            for key in ["input2", "input3"] {
                let batch = fixture.array::<F, Ix2>(key);
                layer.forward(batch.view());
                batches.push(batch.mapv(F::as_f64));
            }
            compare_running(fixture, &mut layer, "3", &batches);
            layer.set_training(false);
            let output = layer.forward(input.view());
            let (wide_input, affine) = (input.mapv(F::as_f64), widened_affine(&mut layer));
            let evaluation = Evidence::normalization(
                Subject::BatchNorm { training: false },
                wide_input.view(),
                None,
                (&affine.0, &affine.1),
            );
            fixture.compare_with("output in evaluation", &output, "output_eval", &evaluation);
            let grad_input = layer.backward(upstream.view());
            fixture.compare("dL/dinput in evaluation", &grad_input, "grad_input_eval");
            // Evaluation reads the running statistics and never moves them.
            compare_running(fixture, &mut layer, "3", &batches);
        }
        "layer_norm" => {
            let mut layer = L::layer_norm(features);
            norm_pass(fixture, &mut layer, (&input, &upstream), Subject::LayerNorm);
        }
        "dropout" => {
            let p: f64 = fixture.meta("p").parse().expect("meta p is a number");
            let keep = fixture
                .array::<F, Ix2>("keep")
                .mapv(|kept| kept != F::zero());
            let mut layer = L::dropout(p, 0);
            layer.fix_mask(Some(keep.clone()));
            let (wide_input, wide_upstream) = (input.mapv(F::as_f64), upstream.mapv(F::as_f64));
            let evidence = Evidence {
                subject: Some(Subject::Dropout),
                input: Some(wide_input.view()),
                upstream: Some(wide_upstream.view()),
                dropout: Some((keep.view(), p)),
                pass: Pass::First,
                ..Evidence::default()
            };
            let output = layer.forward(input.view());
            fixture.compare_with("output", &output, "output", &evidence);
            let grad_input = layer.backward(upstream.view());
            fixture.compare_with("dL/dinput", &grad_input, "grad_input", &evidence);
        }
        other => panic!("{}: unknown normalization layer {other:?}", fixture.name),
    }
}

/// A normalization layer's gamma and beta, widened to `f64`.
fn widened_affine<F: Float, N: NormLayer<F>>(layer: &mut N) -> (Array1<f64>, Array1<f64>) {
    let params = layer.params_mut();
    (params.gamma.mapv(F::as_f64), params.beta.mapv(F::as_f64))
}

/// A normalization layer (`subject`) with the fixture's gamma and beta, one forward and
/// backward, compared; a failure's diagnosis sees the layer, x, g and gamma.
fn norm_pass<F: Float, N: NormLayer<F>>(
    fixture: &mut Fixture,
    layer: &mut N,
    (input, upstream): (&Array2<F>, &Array2<F>),
    subject: Subject,
) {
    {
        let mut params = layer.params_mut();
        params.gamma.assign(&fixture.array::<F, Ix1>("gamma"));
        params.beta.assign(&fixture.array::<F, Ix1>("beta"));
    }
    let (wide_input, wide_upstream) = (input.mapv(F::as_f64), upstream.mapv(F::as_f64));
    let affine = widened_affine(layer);
    let evidence = Evidence::normalization(
        subject,
        wide_input.view(),
        Some(wide_upstream.view()),
        (&affine.0, &affine.1),
    );
    layer.zero_grad();
    let output = layer.forward(input.view());
    fixture.compare_with("output", &output, "output", &evidence);
    let grad_input = layer.backward(upstream.view());
    fixture.compare_with("dL/dinput", &grad_input, "grad_input", &evidence);
    let params = layer.params_mut();
    let (grad_gamma, grad_beta) = (params.grad_gamma.to_owned(), params.grad_beta.to_owned());
    fixture.compare_with("dL/dgamma", &grad_gamma, "grad_gamma", &evidence);
    fixture.compare_with("dL/dbeta", &grad_beta, "grad_beta", &evidence);
}

/// Batch norm's running mean and variance against `running_mean{after}` and `running_var{after}`,
/// after the training forwards on `batches` (which a failure's diagnosis replays).
fn compare_running<F: Float, N: NormLayer<F>>(
    fixture: &mut Fixture,
    layer: &mut N,
    after: &str,
    batches: &[Array2<f64>],
) {
    let evidence = Evidence {
        training_batches: Some(batches),
        ..Evidence::default()
    };
    let params = layer.params_mut();
    let (mean, var) = params
        .running
        .map(|(mean, var)| (mean.to_owned(), var.to_owned()))
        .expect("batch norm keeps running statistics");
    let forwards = if after == "1" {
        "1 training forward"
    } else {
        "3 training forwards"
    };
    fixture.compare_with(
        &format!("running mean after {forwards}"),
        &mean,
        &format!("running_mean{after}"),
        &evidence,
    );
    fixture.compare_with(
        &format!("running variance after {forwards}"),
        &var,
        &format!("running_var{after}"),
        &evidence,
    );
}

/// **The convolution group's PyTorch gate**: `nn.Conv2d` with stride 1 and 2, padding 0 and 1,
/// square and rectangular kernels, non-square images, several channels; `F.max_pool2d` 2x2
/// stride 2 and 3x3 stride 1 on small integers (tied maxima everywhere); and the small CNN's
/// whole training step (logits, loss, every gradient, then 3 SGD steps), in `f64` and `f32`.
pub fn gate6_pytorch_convolution<L: Level<f64> + Level<f32>>() {
    for_each_fixture("conv", conv_fixture::<f64, L>, conv_fixture::<f32, L>);
    for_each_fixture("cnn", cnn_fixture::<f64, L>, cnn_fixture::<f32, L>);
}

/// `"CxHxW"` or `"KHxKW"` from a fixture's meta.
fn meta_sizes(fixture: &Fixture, key: &str) -> Vec<usize> {
    fixture
        .meta(key)
        .split('x')
        .map(|size| {
            size.parse()
                .unwrap_or_else(|_| panic!("{}: meta {key} is not sizes", fixture.name))
        })
        .collect()
}

fn meta_number(fixture: &Fixture, key: &str) -> usize {
    fixture
        .meta(key)
        .parse()
        .unwrap_or_else(|_| panic!("{}: meta {key} is not a number", fixture.name))
}

fn conv_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let input: Array2<F> = fixture.array("input");
    let upstream: Array2<F> = fixture.array("upstream");
    let image = match meta_sizes(fixture, "input_shape")[..] {
        [channels, height, width] => ImageShape::new(channels, height, width),
        _ => panic!("{}: meta input_shape is not CxHxW", fixture.name),
    };
    let kernel = match meta_sizes(fixture, "kernel")[..] {
        [kh, kw] => (kh, kw),
        _ => panic!("{}: meta kernel is not KHxKW", fixture.name),
    };
    let stride = meta_number(fixture, "stride");
    match fixture.meta("layer") {
        "conv2d" => {
            let out_channels = meta_number(fixture, "out_channels");
            let padding = meta_number(fixture, "padding");
            let geometry = Conv2dGeometry::new(image, out_channels, kernel, stride, padding)
                .unwrap_or_else(|problem| panic!("{}: {problem}", fixture.name));
            let mut conv = L::conv2d(fixture.array("weight"), fixture.array("bias"), geometry);
            let output = conv.forward(input.view());
            fixture.compare("output", &output, "output");
            let grad_input = conv.backward(upstream.view());
            fixture.compare("dL/dinput", &grad_input, "grad_input");
            let params = conv.params_mut();
            let (grad_weight, grad_bias) =
                (params.grad_weight.to_owned(), params.grad_bias.to_owned());
            fixture.compare("dL/dweight", &grad_weight, "grad_weight");
            fixture.compare("dL/dbias", &grad_bias, "grad_bias");
        }
        "max_pool2d" => {
            let geometry = Pool2dGeometry::new(image, kernel, stride)
                .unwrap_or_else(|problem| panic!("{}: {problem}", fixture.name));
            let mut pool = L::max_pool2d(geometry);
            let output = pool.forward(input.view());
            fixture.compare("output", &output, "output");
            let grad_input = pool.backward(upstream.view());
            fixture.compare(
                "dL/dinput (ties go to the first maximum)",
                &grad_input,
                "grad_input",
            );
        }
        other => panic!("{}: unknown convolution layer {other:?}", fixture.name),
    }
}

/// The small CNN ([`crate::conv::small_cnn_spec`]) with the fixture's weights: one forward and
/// backward compared, then the fixture's SGD steps from the same weights.
fn cnn_fixture<F: Float, L: Level<F>>(fixture: &mut Fixture) {
    let spec = crate::conv::small_cnn_spec(0);
    let params: LinearParams<F> = (0..spec.weight_shapes().len())
        .map(|index| {
            (
                fixture.array::<F, Ix2>(&format!("weight{index}")),
                fixture.array::<F, Ix1>(&format!("bias{index}")),
            )
        })
        .collect();
    let input: Array2<F> = fixture.array("input");
    let targets = fixture.classes("targets");
    let targets = Targets::Classes(&targets);
    let mut model = L::network(params.clone(), &spec);
    let evidence = Evidence::network(input.nrows());
    model.zero_grad();
    let logits = model.forward(input.view());
    fixture.compare_with("logits", &logits, "logits", &evidence);
    let loss = model.loss(targets);
    let after_logits = Evidence {
        earlier_matched: true,
        ..evidence
    };
    fixture.compare_scalar("loss", loss, "loss", &after_logits);
    let grad_input = model.backward();
    compare_parameter_gradients(fixture, &mut model, &evidence);
    fixture.compare_with("dL/dinput", &grad_input, "grad_input", &evidence);

    let lr: f64 = fixture.meta("lr").parse().expect("meta lr is a number");
    let steps = meta_number(fixture, "steps");
    let mut model = L::network(params, &spec);
    let mut sgd = Sgd::new(lr);
    let losses: Vec<F> = (0..steps)
        .map(|_| model.train_step(input.view(), targets, &mut sgd))
        .collect();
    fixture.compare("loss at each step", &Array::from_vec(losses), "losses");
    for (index, (weight, bias)) in model.linear_params().iter().enumerate() {
        fixture.compare(
            &format!("layer {index} weight after {steps} steps"),
            weight,
            &format!("weight{index}_after"),
        );
        fixture.compare(
            &format!("layer {index} bias after {steps} steps"),
            bias,
            &format!("bias{index}_after"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The optimizer fixtures reject a step rule one setting away from the right one: each
    /// tweak is a classic optimizer bug (momentum without Nesterov's look-ahead or with it
    /// where it does not belong, the wrong beta2, a weight decay that should not be there).
    #[test]
    fn optimizer_fixtures_fail_when_one_setting_is_wrong() {
        type Tweak = fn(&mut AnyOptimizer<f64>);
        let cases: [(&str, Tweak); 4] = [
            ("momentum_3_steps_tanh_f64", |optimizer| {
                if let AnyOptimizer::Sgd(sgd) = optimizer {
                    sgd.nesterov = true;
                }
            }),
            ("nesterov_3_steps_relu_f64", |optimizer| {
                if let AnyOptimizer::Sgd(sgd) = optimizer {
                    sgd.nesterov = false;
                }
            }),
            ("adam_3_steps_relu_f64", |optimizer| {
                if let AnyOptimizer::Adam(adam) = optimizer {
                    adam.betas.1 = 0.99;
                }
            }),
            ("sgd_3_steps_relu_f64", |optimizer| {
                if let AnyOptimizer::Sgd(sgd) = optimizer {
                    sgd.weight_decay = 1e-3;
                }
            }),
        ];
        for (name, tweak) in cases {
            let mut fixture = Fixture::open(name);
            let mut optimizer = fixture_optimizer::<f64>(&fixture);
            let right = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                optimizer_steps::<f64, level02::Level02>(&mut fixture, optimizer.clone())
            }));
            assert!(right.is_ok(), "{name}: the right optimizer must pass");
            tweak(&mut optimizer);
            let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                optimizer_steps::<f64, level02::Level02>(&mut fixture, optimizer)
            }));
            assert!(wrong.is_err(), "{name}: a wrong optimizer passed");
        }
    }

    #[test]
    fn fixtures_stay_small_and_record_their_versions() {
        let mut total = 0;
        for entry in fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            total += fs::metadata(&path).unwrap().len();
            let fixture = Fixture::open(&name);
            assert!(!fixture.meta("torch").is_empty() && !fixture.meta("numpy").is_empty());
            assert!(["f32", "f64"].contains(&fixture.dtype()), "{name}");
        }
        assert!(
            total < 10_000_000,
            "the fixtures take {total} bytes, more than 10 MB"
        );
    }
}
