//! `backprop train`: the training loop, built from parts.
//!
//! - the data: [`Batches`] gathers shuffled batches into one reused buffer;
//! - the update: an optimizer from [`backprop_core::optim`], stepped by the model's own
//!   [`Model::train_step`] (level03's fused path);
//! - the observers: a progress bar, per-step gradient norms and, with
//!   `--watch-gradients`, [`GradientWatch`]'s warnings; a non-finite loss stops the run naming
//!   the step and the layer;
//! - the outputs: [`crate::output`] writes `config.json`, `metrics.csv`, the plots and
//!   `model.npz`, each atomically.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use backprop_core::flow::{step_stats, sum_of_squares, weights_of};
use backprop_core::network::{LayerSpec, NetSpec};
use backprop_core::optim::{Adam, AnyOptimizer, Sgd, buffer};
use backprop_core::{
    Activation, Float, ImageShape, Init, Level, LinearParams, LossKind, MlpSpec, Model, Norm,
    Targets,
};
use backprop_data::batches::Batches;
use backprop_data::mnist::{CLASSES, Dataset, load_mnist};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;

use crate::arch::Arch;
use crate::checkpoint::{Checkpoint, Digest, load_checkpoint, save_checkpoint};
use crate::error::RunError;
use crate::eval::{accuracy, accuracy_of, confusion_of, predictions};
use crate::limits::{
    MAX_EPOCHS, MAX_THREADS, at_most, check_batch_norm_rows, check_memory, in_unit_interval,
    network_training_bytes, non_negative_finite, positive, positive_finite_f64,
};
use crate::model_file::{
    Layers, NormParams, SavedModel, assign_norms, is_safetensors, load_model, save_model,
};
use crate::output::{EpochMetrics, write_atomically, write_metrics, write_training_plots};
use crate::pictures::{report_html, write_pictures};
use crate::run_folder::{Destination, RunFolder};
use crate::safetensors_file::{load_tensors_for, save_safetensors};
use crate::watch::GradientWatch;

/// Mixed into `--seed` for the order of the training batches, so that the shuffle and the
/// initial weights (seeded with `--seed` itself) are not drawn from one stream. `diagnose`
/// shuffles the same way.
pub const SHUFFLE_SALT: u64 = 0x5eed;

/// The training images the per-epoch training accuracy is measured on (the first ones): a
/// tenth of the time a full pass over 60,000 would take, and the same images every epoch.
pub const TRAIN_ACCURACY_IMAGES: usize = 10_000;

/// The update rules `--optimizer` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// `p <- p - lr (g + weight_decay p)`.
    Sgd,
    /// PyTorch's SGD with momentum (optionally Nesterov).
    Momentum,
    /// Adam with PyTorch's defaults (betas 0.9, 0.999; eps 1e-8).
    Adam,
}

impl OptimizerKind {
    /// The learning rate when `--lr` is not given.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.3,
            // Momentum 0.9 multiplies the steady step by 1 / (1 - 0.9) = 10.
            OptimizerKind::Momentum => 0.03,
            OptimizerKind::Adam => 0.001,
        }
    }

    /// The state the optimizer keeps, one tensor per parameter each: the names of
    /// [`backprop_core::optim::OptimizerState::buffers`] (plain SGD keeps none).
    pub fn buffer_names(self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Sgd => &[],
            OptimizerKind::Momentum => &[buffer::VELOCITY],
            OptimizerKind::Adam => &[buffer::FIRST_MOMENT, buffer::SECOND_MOMENT],
        }
    }

    fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::Adam => "adam",
        }
    }
}

/// An optimizer and its settings.
#[derive(Debug, Clone, Copy)]
pub struct OptimizerSpec {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// The learning rate.
    pub lr: f64,
    /// The momentum factor (used by [`OptimizerKind::Momentum`]).
    pub momentum: f64,
    /// Nesterov momentum (with [`OptimizerKind::Momentum`]).
    pub nesterov: bool,
    /// L2 penalty added to every gradient.
    pub weight_decay: f64,
}

impl OptimizerSpec {
    /// The optimizer, with fresh state.
    pub fn build<F: Float>(&self) -> AnyOptimizer<F> {
        match self.kind {
            OptimizerKind::Sgd => {
                AnyOptimizer::Sgd(Sgd::new(self.lr).with_weight_decay(self.weight_decay))
            }
            OptimizerKind::Momentum => {
                let mut sgd = Sgd::new(self.lr)
                    .with_momentum(self.momentum)
                    .with_weight_decay(self.weight_decay);
                sgd.nesterov = self.nesterov;
                AnyOptimizer::Sgd(sgd)
            }
            OptimizerKind::Adam => {
                AnyOptimizer::Adam(Adam::new(self.lr).with_weight_decay(self.weight_decay))
            }
        }
    }
}

/// Every setting of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The level's name (for `config.json`).
    pub level: String,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// The update rule and its settings.
    pub optimizer: OptimizerSpec,
    /// The network as `--arch` layers; `None`: the MLP preset of `hidden`, `activation`,
    /// `norm` and `dropout` (which an `--arch` run leaves at their defaults, unused).
    pub arch: Option<Arch>,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Activation between layers.
    pub activation: Activation,
    /// Weight initialisation.
    pub init: Init,
    /// A model file whose weights the run starts from instead of `init` (`--init-from`).
    pub init_from: Option<PathBuf>,
    /// The normalization after each hidden layer.
    pub norm: Norm,
    /// The dropout probability after each hidden activation (0: none).
    pub dropout: f64,
    /// Seed for the weights and the shuffling.
    pub seed: u64,
    /// rayon threads (None: all cores).
    pub threads: Option<usize>,
    /// Folder with the four IDX files.
    pub data: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Use only the first N training images.
    pub limit: Option<usize>,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Compute every layer's gradient statistics at each step and warn when one leaves the
    /// healthy band ([`crate::watch`]).
    pub watch_gradients: bool,
}

impl TrainConfig {
    /// `config.json`: every setting of the run, and the crate version.
    pub fn to_json(&self) -> String {
        let optimizer = &self.optimizer;
        let text = |path: &std::path::Path| path.to_string_lossy().into_owned();
        let mut json = serde_json::json!({
            "crate_version": env!("CARGO_PKG_VERSION"),
            "level": self.level,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": optimizer.kind.name(),
            "lr": optimizer.lr,
            "momentum": optimizer.momentum,
            "nesterov": optimizer.nesterov,
            "weight_decay": optimizer.weight_decay,
            "hidden": self.hidden,
            "activation": self.activation.name(),
            "init": self.init.to_string(),
            "norm": self.norm.name(),
            "dropout": self.dropout,
            "seed": self.seed,
            "threads": self.threads,
            "data": text(&self.data),
            "out": text(&self.out),
            "limit": self.limit,
            "quiet": self.quiet,
            "watch_gradients": self.watch_gradients,
        });
        // Written only when given: a checkpoint compares its settings with these, and runs
        // from before --init-from existed have none.
        if let (Some(path), Some(settings)) = (&self.init_from, json.as_object_mut()) {
            settings.insert("init_from".into(), text(path).into());
        }
        // An --arch run names its layers instead of the MLP preset's settings.
        if let (Some(arch), Some(settings)) = (&self.arch, json.as_object_mut()) {
            for preset in ["hidden", "activation", "norm", "dropout"] {
                settings.remove(preset);
            }
            settings.insert("arch".into(), arch.to_string().into());
        }
        let mut pretty = serde_json::to_string_pretty(&json).expect("a JSON value serialises");
        pretty.push('\n');
        pretty
    }

    /// The settings of a run from its `config.json` (what `--resume` continues); `out` is the
    /// folder it was read from. Each setting is held to its flag's rule (`"dropout": 2` is
    /// refused as `--dropout 2` is), so an edited file cannot start a run the flags would not.
    ///
    /// # Errors
    /// Text that is not JSON, or a setting missing, of the wrong type or outside its flag's
    /// range, naming the setting.
    pub fn from_json(text: &str, out: PathBuf) -> Result<TrainConfig, String> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        let field = |name: &str| json.get(name).ok_or(format!("no setting {name:?}"));
        let wrong = |name: &str| format!("setting {name:?} has the wrong type or value");
        let flag = |name: &str| field(name)?.as_bool().ok_or_else(|| wrong(name));
        let text = |name: &str| field(name)?.as_str().ok_or_else(|| wrong(name));
        let float = |name: &str, rule: fn(&str) -> Result<f64, String>| {
            by_flag_rule(field(name)?, name, rule)
        };
        let optional = |name: &str, rule: &dyn Fn(&str) -> Result<usize, String>| match field(name)?
        {
            serde_json::Value::Null => Ok(None),
            value => by_flag_rule(value, name, rule).map(Some),
        };
        let kind =
            OptimizerKind::from_str(text("optimizer")?, false).map_err(|_| wrong("optimizer"))?;
        // An --arch run has its layers and none of the MLP preset's settings.
        let arch = match json.get("arch") {
            Some(_) => Some(
                text("arch")?
                    .parse::<Arch>()
                    .map_err(|problem| format!("setting \"arch\": {problem}"))?,
            ),
            None => None,
        };
        let preset = |name: &str| match arch {
            Some(_) if json.get(name).is_some() => Err(format!(
                "setting {name:?} is for the MLP preset, but the run has \"arch\" layers"
            )),
            _ => Ok(arch.is_none()),
        };
        let hidden = match (
            preset("hidden")?,
            field("hidden").map(|value| value.as_array()),
        ) {
            (false, _) => Vec::new(),
            (true, Ok(Some(sizes))) if !sizes.is_empty() => sizes
                .iter()
                .map(|size| by_flag_rule(size, "hidden", positive))
                .collect::<Result<Vec<usize>, String>>()?,
            (true, Err(missing)) => return Err(missing),
            (true, _) => return Err(wrong("hidden")),
        };
        let nesterov = flag("nesterov")?;
        if nesterov && kind != OptimizerKind::Momentum {
            return Err("setting \"nesterov\" applies only to optimizer \"momentum\"".into());
        }
        Ok(TrainConfig {
            level: text("level")?.to_string(),
            epochs: by_flag_rule(field("epochs")?, "epochs", at_most(MAX_EPOCHS))?,
            batch_size: by_flag_rule(field("batch_size")?, "batch_size", positive)?,
            optimizer: OptimizerSpec {
                kind,
                lr: float("lr", positive_finite_f64)?,
                momentum: float("momentum", in_unit_interval)?,
                nesterov,
                weight_decay: float("weight_decay", non_negative_finite)?,
            },
            hidden,
            activation: match preset("activation")? {
                true => text("activation")?
                    .parse()
                    .map_err(|_| wrong("activation"))?,
                false => Activation::Relu,
            },
            init: text("init")?.parse().map_err(|_| wrong("init"))?,
            init_from: match json.get("init_from") {
                Some(_) => Some(PathBuf::from(text("init_from")?)),
                None => None,
            },
            // Runs from before normalization existed have neither setting.
            norm: match (preset("norm")?, json.get("norm")) {
                (true, Some(_)) => text("norm")?.parse().map_err(|_| wrong("norm"))?,
                _ => Norm::None,
            },
            dropout: match (preset("dropout")?, json.get("dropout")) {
                (true, Some(_)) => float("dropout", in_unit_interval)?,
                _ => 0.0,
            },
            arch,
            seed: field("seed")?.as_u64().ok_or_else(|| wrong("seed"))?,
            threads: optional("threads", &at_most(MAX_THREADS))?,
            data: PathBuf::from(text("data")?),
            out,
            limit: optional("limit", &positive)?,
            quiet: flag("quiet")?,
            watch_gradients: flag("watch_gradients")?,
        })
    }

    /// The network this run trains on `data`'s images, with its init and seed.
    ///
    /// # Errors
    /// `--arch` layers that do not fit the images or do not end in [`CLASSES`] outputs.
    pub fn spec(&self, data: &Dataset) -> Result<NetSpec, RunError> {
        let spec = match &self.arch {
            Some(arch) => arch
                .classifier(ImageShape::new(1, data.rows, data.cols), CLASSES)
                .map_err(|problem| RunError::Flag(format!("--arch {arch}: {problem}")))?
                .with_init(self.init)
                .with_seed(self.seed),
            None => {
                let mut sizes = vec![data.images.ncols()];
                sizes.extend(&self.hidden);
                sizes.push(CLASSES);
                MlpSpec {
                    sizes,
                    activation: self.activation,
                    loss: LossKind::SoftmaxCrossEntropy,
                    init: self.init,
                    seed: self.seed,
                    norm: self.norm,
                    dropout: self.dropout,
                }
                .net_spec()
            }
        };
        Ok(spec)
    }

    /// How `--arch` is kept in model files: its layers and the images they take.
    fn layers(&self, data: &Dataset) -> Option<Layers> {
        self.arch.clone().map(|arch| Layers {
            arch,
            input: ImageShape::new(1, data.rows, data.cols),
        })
    }

    /// What the memory check names: `--hidden 256 with --batch-size 64`.
    fn size_flags(&self) -> String {
        let network = match &self.arch {
            Some(arch) => format!("--arch {arch}"),
            None => format!(
                "--hidden {}",
                self.hidden
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        format!("{network} with --batch-size {}", self.batch_size)
    }
}

/// A number of `config.json` held to the rule of the flag that sets it: `rule` is the flag's
/// own value parser, given the number as JSON wrote it.
fn by_flag_rule<T>(
    value: &serde_json::Value,
    name: &str,
    rule: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    if !value.is_number() {
        return Err(format!("setting {name:?} has the wrong type or value"));
    }
    rule(&value.to_string()).map_err(|problem| format!("setting {name:?}: {problem}"))
}

/// Runs a training with level `L` into the folder `destination` names and writes its outputs;
/// returns the last epoch's test accuracy and the folder.
///
/// The order is what keeps a folder from mixing runs: the data loads and the model's size is
/// checked against the machine before anything is written; then the folder is claimed (locked,
/// see [`crate::run_folder`]) and `config.json` written; each epoch ends with `checkpoint.npz`,
/// `metrics.csv`, the plots and `model.npz`. `--resume` starts from the checkpoint and first
/// rewrites the other files from it, so a run killed at any moment and resumed ends with the
/// same bytes as one never stopped.
///
/// # Errors
/// Bad data, a model too large for the machine, a folder that is locked or holds another run,
/// an unwritable output, or a non-finite loss (metrics up to then are written).
pub fn train<L: Level<f32>>(
    mut config: TrainConfig,
    destination: &Destination,
) -> Result<(f64, PathBuf), RunError> {
    // Phase 1: data, and whether the model fits, before any output.
    let mnist = load_mnist(&config.data)?;
    let train_set = match config.limit {
        Some(limit) => mnist.train.first(limit),
        None => mnist.train,
    };
    let spec = config.spec(&train_set)?;
    // --init-from's weights, checked before anything is written (a resumed run reads them
    // only if it has no checkpoint yet).
    let mut initial = match (&config.init_from, destination) {
        (Some(path), Destination::Fresh(_) | Destination::Given { .. }) => {
            Some(initial_weights(path, &spec)?)
        }
        _ => None,
    };
    check_batch_norm_rows(&norms_of(&spec), config.batch_size, train_set.len())?;
    let buffers = config.optimizer.kind.buffer_names().len();
    check_memory(
        &config.size_flags(),
        network_training_bytes(&spec, config.batch_size.min(train_set.len()), buffers),
    )?;

    // Phase 2: the folder, then config.json (a resumed run keeps its own).
    let folder = RunFolder::claim(destination)?;
    config.out = folder.path.clone();
    // An absolute data path, so `--resume` works from any folder.
    config.data = std::fs::canonicalize(&config.data).unwrap_or(config.data);
    config.init_from = config
        .init_from
        .map(|path| std::fs::canonicalize(&path).unwrap_or(path));
    let checkpoint_path = config.out.join("checkpoint.npz");
    let checkpoint = match destination {
        // Whatever is there (a FIFO or a folder too) is read as the checkpoint, and refused.
        Destination::Resume(_) if checkpoint_path.exists() => Some(load_checkpoint(
            &checkpoint_path,
            config.optimizer.kind.buffer_names(),
        )?),
        Destination::Resume(_) => {
            if let Some(path) = &config.init_from {
                initial = Some(initial_weights(path, &spec)?);
            }
            None
        }
        _ => {
            write_atomically(&config.out.join("config.json"), config.to_json().as_bytes())?;
            None
        }
    };

    // Phase 3: epochs on a pool of the asked size.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .build()
        .map_err(|error| RunError::System {
            what: format!(
                "--threads {}",
                config
                    .threads
                    .map_or("(one per core)".to_string(), |n| n.to_string())
            ),
            problem: format!("cannot start the threads: {error}"),
        })?;
    let settings = run_settings(&config, &[&train_set, &mnist.test]);
    let accuracy = pool.install(|| {
        let mut trainer = Trainer::<L>::new(&config, &train_set, &spec, settings);
        if let Some((params, norms)) = initial {
            trainer.model = L::network(params, &spec);
            assign_norms(&mut trainer.model, &norms);
        }
        if let Some(checkpoint) = checkpoint {
            trainer.restore(checkpoint, &mnist.test)?;
        }
        trainer.run(&mnist.test)
    })?;
    Ok((accuracy, folder.path.clone()))
}

/// Why `Trainer::batches` is always there: an epoch takes it and puts it back.
const BATCHES_BACK: &str = "the batches are back after each epoch";

/// The state of a training run between steps.
struct Trainer<'a, L: Level<f32>> {
    config: &'a TrainConfig,
    train_set: &'a Dataset,
    model: L::Network,
    /// The network (what `model.safetensors` names its tensors after).
    spec: NetSpec,
    /// How model files name the network (`None`: the MLP preset).
    layers: Option<Layers>,
    /// The network has dropout layers.
    has_dropout: bool,
    optimizer: AnyOptimizer<f32>,
    /// The training batches; `None` only while an epoch runs them.
    batches: Option<Batches<'a>>,
    watch: GradientWatch,
    /// Steps taken so far, over all epochs.
    step: usize,
    /// The step this process started from: 0, or the checkpoint's on `--resume`.
    start_step: usize,
    /// What shapes the run ([`run_settings`]), kept in every checkpoint.
    settings: serde_json::Map<String, serde_json::Value>,
    /// ‖dL/dW‖ per layer at the last step with a finite loss.
    last_norms: Vec<f64>,
    history: Vec<EpochMetrics>,
}

impl<'a, L: Level<f32>> Trainer<'a, L> {
    fn new(
        config: &'a TrainConfig,
        train_set: &'a Dataset,
        spec: &NetSpec,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let norms = norms_of(spec);
        let batch_norm = norms.contains(&Norm::Batch);
        Trainer {
            config,
            train_set,
            model: L::network_from_spec(spec),
            spec: spec.clone(),
            layers: config.layers(train_set),
            has_dropout: spec
                .layers()
                .iter()
                .any(|layer| matches!(layer, LayerSpec::Dropout { .. })),
            optimizer: config.optimizer.build(),
            // Batch norm cannot train on a last batch of one row: that batch is skipped.
            batches: Some(
                Batches::new(train_set, config.batch_size, config.seed ^ SHUFFLE_SALT)
                    .min_rows(if batch_norm { 2 } else { 1 }),
            ),
            watch: GradientWatch::new(
                spec.activation(),
                norms.first().copied().unwrap_or(Norm::None),
                config.optimizer.lr as f32,
            ),
            step: 0,
            start_step: 0,
            settings,
            last_norms: vec![0.0; spec.weight_shapes().len()],
            history: Vec::new(),
        }
    }

    /// The network as its model file keeps it (the MLP preset's activation and norm).
    fn saved_model(&mut self) -> SavedModel {
        let config = self.config;
        SavedModel::of(
            &mut self.model,
            config.activation,
            config.norm,
            self.layers.clone(),
        )
    }

    /// Every epoch, its line and its outputs, then the model.
    fn run(mut self, test_set: &Dataset) -> Result<f64, RunError> {
        let config = self.config;
        for epoch in self.history.len() + 1..=config.epochs {
            let started = Instant::now();
            let (metrics, predicted) = self.epoch(epoch, test_set)?;
            if !config.quiet {
                println!(
                    "epoch {epoch:>3}  train loss {:.4}  train acc {:.2}%  test acc {:.2}%  {:.1}s",
                    metrics.train_loss,
                    100.0 * metrics.train_accuracy,
                    100.0 * metrics.test_accuracy,
                    started.elapsed().as_secs_f64()
                );
            }
            self.history.push(metrics);
            let checkpoint = self.checkpoint();
            save_checkpoint(&config.out.join("checkpoint.npz"), &checkpoint)?;
            self.write_outputs(&checkpoint.model, checkpoint.step, test_set, &predicted)?;
        }
        Ok(self
            .history
            .last()
            .map_or(0.0, |metrics| metrics.test_accuracy))
    }

    /// `metrics.csv`, the plots, `model.npz` and `model.safetensors` (of `model`, the model's
    /// parameters after `steps` steps), the pictures of what it learned ([`crate::pictures`],
    /// from its `predicted` class for each image of `test_set`) and `report.html`, as of the
    /// last finished epoch.
    fn write_outputs(
        &self,
        model: &SavedModel,
        steps: usize,
        test_set: &Dataset,
        predicted: &[usize],
    ) -> Result<(), RunError> {
        let out = &self.config.out;
        let confusion = confusion_of(predicted, test_set);
        write_pictures(out, model, test_set, predicted, &confusion)?;
        write_metrics(out, &self.history, self.last_norms.len())?;
        write_training_plots(out, &self.history)?;
        save_model(&out.join("model.npz"), model)?;
        save_safetensors(
            &out.join("model.safetensors"),
            model,
            &self.spec,
            steps as u64,
        )?;
        // The report last: every file it links is there.
        let config = serde_json::from_str(&self.config.to_json()).unwrap_or_default();
        let title = format!(
            "backprop run {}",
            out.file_name().unwrap_or_default().to_string_lossy()
        );
        write_atomically(
            &out.join("report.html"),
            report_html(&title, &config, &self.history).as_bytes(),
        )?;
        Ok(())
    }

    /// Everything [`Trainer::restore`] needs to go on after this epoch.
    fn checkpoint(&mut self) -> Checkpoint {
        Checkpoint {
            epochs_done: self.history.len(),
            step: self.step,
            model: self.saved_model(),
            optimizer: self.optimizer.state(),
            history: self.history.clone(),
            last_norms: self.last_norms.clone(),
            settings: Some(serde_json::Value::Object(self.settings.clone()).to_string()),
        }
    }

    /// Continues from `checkpoint`: its model, optimizer, history and batch order; then
    /// rewrites the outputs from it (a run killed after the checkpoint but before them left
    /// older ones).
    fn restore(&mut self, checkpoint: Checkpoint, test_set: &Dataset) -> Result<(), RunError> {
        let config = self.config;
        let saved = &checkpoint.model;
        let problem = |problem: String| RunError::Model {
            path: config.out.join("checkpoint.npz"),
            problem,
        };
        let expected = self.saved_model();
        let same_network = saved.layers == expected.layers
            && (saved.layers.is_some()
                || mlp_shapes(saved) == mlp_shapes(&expected)
                    && saved.activation == expected.activation
                    && saved.norm == expected.norm);
        if !same_network || checkpoint.epochs_done > config.epochs {
            return Err(problem(format!(
                "its network ({}, {} epochs done) does not belong to the run in config.json \
                 ({}, {} epochs)",
                saved.describe(),
                checkpoint.epochs_done,
                expected.describe(),
                config.epochs
            )));
        }
        // The checkpoint's own record of what shaped it, against config.json and the data.
        if let Some(text) = &checkpoint.settings {
            let recorded = match serde_json::from_str(text) {
                Ok(serde_json::Value::Object(recorded)) => recorded,
                _ => return Err(problem("its settings entry is not a JSON object".into())),
            };
            // The settings first, the data last (a changed --limit changes the data too).
            let keys: std::collections::BTreeSet<(bool, &String)> = recorded
                .keys()
                .chain(self.settings.keys())
                .map(|key| (key == "data_digest", key))
                .collect();
            for (_, key) in keys {
                let (was, is) = (recorded.get(key), self.settings.get(key));
                if was != is {
                    let show = |value: Option<&serde_json::Value>| {
                        value.map_or("nothing".to_string(), ToString::to_string)
                    };
                    let what = match key.as_str() {
                        "data_digest" => "the data (its images and labels)".to_string(),
                        _ => format!("{key} in config.json"),
                    };
                    return Err(problem(format!(
                        "it was made with {key} {}, but {what} is now {}: not a checkpoint of \
                         this run as configured",
                        show(was),
                        show(is)
                    )));
                }
            }
        }
        let per_epoch = self.batches().per_epoch();
        let steps_expected = checkpoint.epochs_done * per_epoch;
        if checkpoint.step != steps_expected {
            return Err(problem(format!(
                "it counts {} steps after {} epochs, but an epoch of this run is {} steps \
                 (expected {steps_expected}): not a checkpoint of this run's batches",
                checkpoint.step, checkpoint.epochs_done, per_epoch
            )));
        }
        if self.has_dropout {
            let dropout = match config.arch {
                Some(_) => "dropout layers".to_string(),
                None => format!("--dropout {}", config.dropout),
            };
            return Err(problem(format!(
                "the run uses {dropout}: its masks come from generators whose position the \
                 checkpoint does not keep, so a resumed run would not be the one interrupted; \
                 start it again instead"
            )));
        }
        self.model = saved.build::<L>(config.dropout, config.seed);
        self.optimizer
            .restore(checkpoint.optimizer)
            .map_err(problem)?;
        self.batches().skip_epochs(checkpoint.epochs_done);
        self.step = checkpoint.step;
        self.start_step = checkpoint.step;
        self.last_norms = checkpoint.last_norms;
        self.history = checkpoint.history;
        let predicted = predictions(&mut self.model, test_set);
        self.write_outputs(&checkpoint.model, checkpoint.step, test_set, &predicted)
    }

    /// The training batches, between epochs.
    fn batches(&mut self) -> &mut Batches<'a> {
        self.batches.as_mut().expect(BATCHES_BACK)
    }

    /// One pass over the shuffled training set, then the accuracies; returns the metrics and
    /// the predicted class of each test image (the pictures are drawn from them).
    fn epoch(
        &mut self,
        epoch: usize,
        test_set: &Dataset,
    ) -> Result<(EpochMetrics, Vec<usize>), RunError> {
        let progress = Progress::new(self.config, epoch, self.train_set.len());
        let (mut loss_sum, mut steps) = (0.0f64, 0usize);
        let mut norm_sums = vec![0.0f64; self.last_norms.len()];
        // The batches leave `self` for the epoch, so that each step can borrow the rest of it.
        let mut batches = self.batches.take().expect(BATCHES_BACK);
        let stopped = batches.for_each_batch(|images, labels| {
            self.step += 1;
            let rows = labels.len();
            let targets = Targets::Classes(labels);
            // Watching: the weights before the step, to measure the step the optimizer takes.
            let before = self
                .config
                .watch_gradients
                .then(|| weights_of(&mut self.model));
            let loss = self.model.train_step(images, targets, &mut self.optimizer);
            let norms = self.observe(loss, epoch, &progress, before.as_deref());
            if !loss.is_finite() {
                return ControlFlow::Break((loss, norms));
            }
            for (sum, norm) in norm_sums.iter_mut().zip(&norms) {
                *sum += norm;
            }
            self.last_norms = norms;
            loss_sum += f64::from(loss);
            steps += 1;
            progress.advance(rows, loss_sum / steps as f64, steps);
            ControlFlow::Continue(())
        });
        self.batches = Some(batches);
        if let ControlFlow::Break((loss, norms)) = stopped {
            progress.bar.finish_and_clear();
            write_metrics(&self.config.out, &self.history, norms.len())?;
            return Err(self.non_finite(epoch, loss, &norms));
        }
        progress.bar.finish_and_clear();
        let steps = steps.max(1) as f64;
        let predicted = predictions(&mut self.model, test_set);
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / steps,
            train_accuracy: accuracy(
                &mut self.model,
                &self.train_set.first(TRAIN_ACCURACY_IMAGES),
            )
            .0,
            test_accuracy: accuracy_of(&predicted, test_set),
            grad_norms: norm_sums.iter().map(|sum| sum / steps).collect(),
        };
        Ok((metrics, predicted))
    }

    /// ‖dL/dW‖ per layer after this step's update, and the watch's warnings when asked for
    /// (`before`: the weights before the step, from which its update ratios are measured).
    fn observe(
        &mut self,
        loss: f32,
        epoch: usize,
        progress: &Progress,
        before: Option<&[Array2<f32>]>,
    ) -> Vec<f64> {
        let (Some(before), true) = (before, loss.is_finite()) else {
            let mut norms = Vec::with_capacity(self.last_norms.len());
            self.model.visit_linears(|_, layer| {
                norms.push(sum_of_squares(&layer.grad_weight).sqrt());
            });
            return norms;
        };
        let mut stats = step_stats(&mut self.model);
        stats.measure_update(&mut self.model, before);
        let warnings = self.watch.check(self.step, epoch, &stats);
        for warning in warnings {
            progress.bar.suspend(|| eprintln!("{warning}"));
        }
        stats
            .layers
            .iter()
            .map(|layer| layer.weight_grad_norm)
            .collect()
    }

    /// The error for a non-finite loss, naming the layer with the largest gradient: this step's
    /// norms if they are still finite, else those of the last step before the blow-up.
    fn non_finite(&self, epoch: usize, loss: f32, norms: &[f64]) -> RunError {
        let evidence = if norms.iter().all(|norm| norm.is_finite()) {
            norms
        } else {
            &self.last_norms
        };
        let (worst, norm) =
            evidence
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (layer, &norm)| {
                    if norm > best.1 { (layer, norm) } else { best }
                });
        // Before any update of this process, the learning rate has not acted yet: the
        // starting weights (the init, or the checkpoint) are what the evidence points at.
        let cause = if self.step == self.start_step + 1 {
            match (self.start_step, &self.config.init_from) {
                (0, Some(path)) => format!(
                    "it was not finite before any update, so the weights it started from \
                     (--init-from {}) make it overflow",
                    path.display()
                ),
                (0, None) => format!(
                    "it was not finite before any update, so the initial weights (--init {}) \
                     make it overflow: try a smaller init scale",
                    self.config.init
                ),
                _ => "it was not finite before any update of this resumed run, so the weights \
                      it resumed from make it overflow"
                    .to_string(),
            }
        } else {
            "try a smaller --lr".to_string()
        };
        RunError::NonFinite {
            step: self.step,
            epoch,
            loss,
            layer: format!("linear{worst}.weight"),
            norm: norm as f32,
            cause,
        }
    }
}

/// The weights and normalization parameters in `path` (`--init-from`), each checked against
/// the run's network `spec`: a safetensors file under PyTorch's names, or a `model.npz`.
///
/// # Errors
/// An unreadable file, or one whose tensors are not this network's; the message names the
/// file and the tensor.
fn initial_weights(
    path: &Path,
    spec: &NetSpec,
) -> Result<(LinearParams<f32>, Vec<NormParams>), RunError> {
    if is_safetensors(path) {
        return Ok(load_tensors_for(path, spec)?);
    }
    let saved = load_model(path)?;
    let problem = |problem: String| RunError::Model {
        path: path.to_path_buf(),
        problem: format!("{problem} (--init-from needs the weights of this run's network)"),
    };
    let shapes = spec.weight_shapes();
    if saved.params.len() != shapes.len() {
        return Err(problem(format!(
            "it holds {} weight layers, the run's network has {}",
            saved.params.len(),
            shapes.len()
        )));
    }
    for (index, ((weight, _), &shape)) in saved.params.iter().zip(&shapes).enumerate() {
        if weight.dim() != shape {
            return Err(problem(format!(
                "weight{index} is {:?}, but layer {index} of the run takes {shape:?}",
                weight.dim()
            )));
        }
    }
    let norms: Vec<(Norm, usize)> = spec.norm_layers();
    let fits = |(saved, &(norm, features)): (&NormParams, &(Norm, usize))| {
        saved.gamma.len() == features && saved.running.is_some() == (norm == Norm::Batch)
    };
    if saved.norms.len() != norms.len() || !saved.norms.iter().zip(&norms).all(fits) {
        return Err(problem(format!(
            "its normalization layers ({}) are not the run's",
            saved.describe()
        )));
    }
    Ok((saved.params, saved.norms))
}

/// The settings that shape a run's numbers, as a checkpoint records them: every setting of
/// `config.json` but where it writes and how it reports (`out`, `threads`, `quiet`,
/// `watch_gradients`), the length it was asked for (`epochs`: a run may be continued longer)
/// and the data's path (it may move), plus `data_digest`, a hash of the images and labels of
/// `sets`.
fn run_settings(
    config: &TrainConfig,
    sets: &[&Dataset],
) -> serde_json::Map<String, serde_json::Value> {
    let mut settings = match serde_json::from_str(&config.to_json()) {
        Ok(serde_json::Value::Object(settings)) => settings,
        _ => unreachable!("to_json writes an object"),
    };
    for kept_out in [
        "out",
        "threads",
        "quiet",
        "watch_gradients",
        "epochs",
        "data",
        "crate_version",
    ] {
        settings.remove(kept_out);
    }
    settings.insert(
        "data_digest".into(),
        format!("{:016x}", data_digest(sets)).into(),
    );
    settings
}

/// A digest of every pixel and label of `sets`: equal for the same data, different (but for a
/// 2^-64 chance) for any other.
fn data_digest(sets: &[&Dataset]) -> u64 {
    let mut digest = Digest::default();
    for set in sets {
        digest.word(set.images.ncols() as u64);
        digest.f32s(set.images.iter());
        set.labels
            .iter()
            .for_each(|&label| digest.word(label as u64));
    }
    digest.finish()
}

/// The kind of every normalization layer of `spec`, in order.
fn norms_of(spec: &NetSpec) -> Vec<Norm> {
    spec.layers()
        .iter()
        .filter_map(|layer| match layer {
            LayerSpec::Norm(norm) => Some(*norm),
            _ => None,
        })
        .collect()
}

/// The weight shapes of a saved model, to compare two MLPs.
fn mlp_shapes(model: &SavedModel) -> Vec<(usize, usize)> {
    model
        .params
        .iter()
        .map(|(weight, _)| weight.dim())
        .collect()
}

/// The progress bar of one epoch (hidden when quiet or when stdout is not a terminal).
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Drawn on stderr, so only when stderr is a terminal (stdout may be a file).
    fn new(config: &TrainConfig, epoch: usize, samples: usize) -> Self {
        let interactive = !config.quiet && std::io::stderr().is_terminal();
        let bar = if interactive {
            ProgressBar::new(samples as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", config.epochs));
        Progress { bar }
    }

    /// `rows` more samples done; the rate and the running mean loss every 20 steps.
    fn advance(&self, rows: usize, mean_loss: f64, steps: usize) {
        self.bar.inc(rows as u64);
        if steps.is_multiple_of(20) {
            let rate = self.bar.per_sec();
            self.bar
                .set_message(format!("{rate:.0} samples/s  loss {mean_loss:.4}"));
        }
    }
}
