//! What the `backprop` command does: train an MLP on an MNIST-style data set, evaluate a saved
//! model. The binary (`src/main.rs`) only parses flags and prints errors.

use std::fmt::Write as _;
use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use backprop_core::flow::{step_stats, sum_of_squares};
use backprop_core::init::seeded_rng;
use backprop_core::mnist::{DataError, Dataset, load_mnist};
use backprop_core::{Activation, Init, Level, LinearParams, LossKind, MlpSpec, Model, Targets};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2, Axis, s};
use ndarray_npy::{NpzReader, NpzWriter};
use rand::seq::SliceRandom;

use crate::watch::GradientWatch;

/// Why a command failed; each message names the file, flag or step concerned.
#[derive(Debug)]
pub enum RunError {
    /// The data set could not be read.
    Data(DataError),
    /// An output could not be written.
    Output {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// A saved model could not be read.
    Model {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The loss stopped being finite.
    NonFinite {
        /// The global step (1-based) that produced it.
        step: usize,
        /// The epoch (1-based).
        epoch: usize,
        /// The loss.
        loss: f32,
        /// The parameter with the largest gradient norm, and that norm.
        layer: String,
        /// Its gradient norm.
        norm: f32,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Data(error) => write!(f, "{error}"),
            RunError::Output { path, problem } => write!(f, "{}: {problem}", path.display()),
            RunError::Model { path, problem } => write!(f, "{}: {problem}", path.display()),
            RunError::NonFinite {
                step,
                epoch,
                loss,
                layer,
                norm,
            } => write!(
                f,
                "training stopped at step {step} (epoch {epoch}): the loss is {loss}; the largest \
                 gradient norm is in {layer} ({norm:e} at the last finite step); try a smaller --lr"
            ),
        }
    }
}

impl std::error::Error for RunError {}

impl From<DataError> for RunError {
    fn from(error: DataError) -> Self {
        RunError::Data(error)
    }
}

/// Every setting of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// 1, 2 or 3.
    pub level: u8,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per SGD step.
    pub batch_size: usize,
    /// SGD learning rate.
    pub lr: f32,
    /// SGD momentum (0 for plain SGD).
    pub momentum: f32,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Activation between layers.
    pub activation: Activation,
    /// Weight initialisation.
    pub init: Init,
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

/// One epoch's row of `metrics.csv`.
#[derive(Debug, Clone)]
struct EpochMetrics {
    epoch: usize,
    train_loss: f64,
    train_accuracy: f64,
    test_accuracy: f64,
    grad_norms: Vec<f64>,
}

/// Writes `contents` to `path` through a temporary file in the same folder and a rename, so an
/// interrupted run never leaves a half-written file under the final name.
pub fn write_atomically(
    path: &Path,
    contents: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), RunError> {
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("output");
    let temporary = path.with_file_name(format!(".{file_name}.partial"));
    let output_error = |error: std::io::Error| RunError::Output {
        path: path.to_path_buf(),
        problem: error.to_string(),
    };
    contents(&temporary).map_err(output_error)?;
    fs::rename(&temporary, path).map_err(output_error)
}

/// Runs a training and writes its outputs; returns the last epoch's test accuracy.
///
/// # Errors
/// Bad data, an unwritable output folder, or a non-finite loss (metrics up to then are written).
pub fn train(config: &TrainConfig) -> Result<f64, RunError> {
    // Phase 1: the output folder must be writable before any work starts.
    fs::create_dir_all(&config.out).map_err(|error| RunError::Output {
        path: config.out.clone(),
        problem: format!("cannot create the output folder: {error}"),
    })?;
    write_atomically(&config.out.join("config.json"), |path| {
        fs::write(path, config_json(config))
    })?;

    // Phase 2: data.
    let mnist = load_mnist(&config.data)?;
    let train_set = match config.limit {
        Some(limit) => mnist.train.first(limit),
        None => mnist.train,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .build()
        .expect("a rayon pool");
    pool.install(|| match config.level {
        1 => train_level::<level01::Level01>(config, &train_set, &mnist.test),
        2 => train_level::<level02::Level02>(config, &train_set, &mnist.test),
        _ => train_level::<level03::Level03>(config, &train_set, &mnist.test),
    })
}

fn sizes(config: &TrainConfig, inputs: usize, classes: usize) -> Vec<usize> {
    let mut sizes = vec![inputs];
    sizes.extend(&config.hidden);
    sizes.push(classes);
    sizes
}

fn train_level<L: Level<f32>>(
    config: &TrainConfig,
    train_set: &Dataset,
    test_set: &Dataset,
) -> Result<f64, RunError> {
    let inputs = train_set.images.ncols();
    let spec = MlpSpec {
        sizes: sizes(config, inputs, 10),
        activation: config.activation,
        loss: LossKind::SoftmaxCrossEntropy,
        init: config.init,
        seed: config.seed,
    };
    let mut model = L::mlp_from_spec(&spec);
    let mut velocity: Vec<ndarray::ArrayD<f32>> = model
        .params_mut()
        .iter()
        .map(|param| ndarray::ArrayD::zeros(param.value.raw_dim()))
        .collect();
    let mut rng = seeded_rng(config.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let batch = config.batch_size.min(train_set.len().max(1));
    let mut images = Array2::<f32>::zeros((batch, inputs));
    let mut labels = vec![0usize; batch];
    let mut history: Vec<EpochMetrics> = Vec::new();
    let layers = spec.sizes.len() - 1;
    let interactive = !config.quiet && std::io::stdout().is_terminal();
    let mut step = 0;
    let mut last_norms = vec![0.0f64; layers];
    let mut watch = GradientWatch::default();
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        let progress = if interactive {
            ProgressBar::new(train_set.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        progress.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        progress.set_prefix(format!("{epoch}/{}", config.epochs));
        order.shuffle(&mut rng);
        let (mut loss_sum, mut batches) = (0.0f64, 0usize);
        let mut norm_sums = vec![0.0f64; layers];
        for chunk in order.chunks(batch) {
            step += 1;
            // Gather the shuffled batch into one reused buffer.
            for (row, &index) in chunk.iter().enumerate() {
                images.row_mut(row).assign(&train_set.images.row(index));
                labels[row] = train_set.labels[index];
            }
            let rows = chunk.len();
            let batch_images = images.slice(s![..rows, ..]);
            let targets = Targets::Classes(&labels[..rows]);
            let loss = if config.momentum == 0.0 {
                model.train_step(batch_images, targets, config.lr)
            } else {
                model.zero_grad();
                model.forward(batch_images);
                let loss = model.loss(targets);
                model.backward_params_only();
                for (param, velocity) in model.params_mut().into_iter().zip(&mut velocity) {
                    // v <- momentum v + g;  p <- p - lr v   (PyTorch's SGD with momentum)
                    velocity.zip_mut_with(&param.grad, |v, &g| *v = config.momentum * *v + g);
                    let mut value = param.value;
                    value.scaled_add(-config.lr, velocity);
                }
                loss
            };
            let norms = if config.watch_gradients && loss.is_finite() {
                let stats = step_stats(&mut model, f64::from(config.lr));
                for warning in watch.check(step, epoch, &stats, config.activation, config.lr) {
                    progress.suspend(|| eprintln!("{warning}"));
                }
                stats
                    .layers
                    .iter()
                    .map(|layer| layer.weight_grad_norm)
                    .collect()
            } else {
                weight_grad_norms(&mut model)
            };
            if !loss.is_finite() {
                progress.finish_and_clear();
                // Name the layer with the largest gradient: this step's norms if they are still
                // finite, else those of the last step before the blow-up.
                let evidence = if norms.iter().all(|norm| norm.is_finite()) {
                    &norms
                } else {
                    &last_norms
                };
                let (worst, norm) = evidence.iter().enumerate().fold(
                    (0, f64::NEG_INFINITY),
                    |best, (layer, &n)| {
                        if n > best.1 { (layer, n) } else { best }
                    },
                );
                write_metrics(&config.out, &history, layers)?;
                return Err(RunError::NonFinite {
                    step,
                    epoch,
                    loss,
                    layer: format!("linear{worst}.weight"),
                    norm: norm as f32,
                });
            }
            last_norms.clone_from(&norms);
            for (sum, norm) in norm_sums.iter_mut().zip(&norms) {
                *sum += norm;
            }
            loss_sum += f64::from(loss);
            batches += 1;
            progress.inc(rows as u64);
            if batches % 20 == 0 {
                progress.set_message(format!("loss {:.4}", loss_sum / batches as f64));
            }
        }
        progress.finish_and_clear();
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            train_accuracy: accuracy(&mut model, &train_set.first(10_000)).0,
            test_accuracy: accuracy(&mut model, test_set).0,
            grad_norms: norm_sums
                .iter()
                .map(|sum| sum / batches.max(1) as f64)
                .collect(),
        };
        if !config.quiet {
            println!(
                "epoch {epoch:>3}  train loss {:.4}  train acc {:.2}%  test acc {:.2}%  {:.1}s",
                metrics.train_loss,
                100.0 * metrics.train_accuracy,
                100.0 * metrics.test_accuracy,
                started.elapsed().as_secs_f64()
            );
        }
        history.push(metrics);
        write_metrics(&config.out, &history, layers)?;
        write_plots(&config.out, &history)?;
    }
    save_model(
        &config.out.join("model.npz"),
        &model.linear_params(),
        config.activation,
    )?;
    Ok(history.last().map_or(0.0, |metrics| metrics.test_accuracy))
}

/// ||dL/dW|| of each layer's weight.
fn weight_grad_norms<F: backprop_core::Float>(model: &mut impl Model<F>) -> Vec<f64> {
    model
        .params_mut()
        .iter()
        .step_by(2)
        .map(|param| sum_of_squares(&param.grad).sqrt())
        .collect()
}

/// (accuracy, confusion matrix [true][predicted]) of `model` on `data`, in chunks of 1,000.
fn accuracy(model: &mut impl Model<f32>, data: &Dataset) -> (f64, Array2<usize>) {
    let mut confusion = Array2::zeros((10, 10));
    for start in (0..data.len()).step_by(1000) {
        let end = (start + 1000).min(data.len());
        let logits = model.forward(data.images.slice(s![start..end, ..]));
        for (row, &label) in logits.axis_iter(Axis(0)).zip(&data.labels[start..end]) {
            let predicted = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (class, &z)| {
                    if z > best.1 { (class, z) } else { best }
                })
                .0;
            confusion[[label.min(9), predicted.min(9)]] += 1;
        }
    }
    let correct: usize = (0..10).map(|class| confusion[[class, class]]).sum();
    (correct as f64 / data.len().max(1) as f64, confusion)
}

fn write_metrics(out: &Path, history: &[EpochMetrics], layers: usize) -> Result<(), RunError> {
    let mut csv = String::from("epoch,train_loss,train_accuracy,test_accuracy");
    for layer in 0..layers {
        write!(csv, ",grad_norm_linear{layer}").expect("writing to a String");
    }
    csv.push('\n');
    for metrics in history {
        write!(
            csv,
            "{},{:.6},{:.6},{:.6}",
            metrics.epoch, metrics.train_loss, metrics.train_accuracy, metrics.test_accuracy
        )
        .expect("writing to a String");
        for norm in &metrics.grad_norms {
            write!(csv, ",{norm:.6e}").expect("writing to a String");
        }
        csv.push('\n');
    }
    write_atomically(&out.join("metrics.csv"), |path| fs::write(path, csv))
}

/// `loss.svg`, `accuracy.svg` and `grad_norms.svg` (log10 of the norm, one line per layer).
fn write_plots(out: &Path, history: &[EpochMetrics]) -> Result<(), RunError> {
    use crate::plots::{Series, line_chart};
    let points = |value: &dyn Fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|metrics| (metrics.epoch as f64, value(metrics)))
            .collect()
    };
    let loss = points(&|m| m.train_loss);
    let (train, test) = (
        points(&|m| 100.0 * m.train_accuracy),
        points(&|m| 100.0 * m.test_accuracy),
    );
    let layers = history
        .first()
        .map_or(0, |metrics| metrics.grad_norms.len());
    let norms: Vec<Vec<(f64, f64)>> = (0..layers)
        .map(|layer| points(&|m| m.grad_norms[layer].log10()))
        .collect();
    let accuracy = vec![
        Series {
            label: "train (first 10,000)".into(),
            points: &train,
        },
        Series {
            label: "test".into(),
            points: &test,
        },
    ];
    let norm_lines: Vec<Series<'_>> = norms
        .iter()
        .enumerate()
        .map(|(layer, points)| Series {
            label: format!("linear{layer}"),
            points,
        })
        .collect();
    let charts = [
        (
            "loss.svg",
            "Training loss",
            "mean cross-entropy",
            vec![Series {
                label: "train".into(),
                points: &loss,
            }],
        ),
        ("accuracy.svg", "Accuracy", "% correct", accuracy),
        (
            "grad_norms.svg",
            "Weight gradient norm per layer (mean over the epoch)",
            "log10 ||dL/dW||",
            norm_lines,
        ),
    ];
    for (file, title, y_label, series) in charts {
        let path = out.join(file);
        line_chart(&path, title, y_label, series)
            .map_err(|problem| RunError::Output { path, problem })?;
    }
    Ok(())
}

fn config_json(config: &TrainConfig) -> String {
    let hidden: Vec<String> = config.hidden.iter().map(usize::to_string).collect();
    let optional = |value: Option<usize>| value.map_or("null".to_string(), |v| v.to_string());
    format!(
        "{{\n  \"crate_version\": \"{}\",\n  \"level\": {},\n  \"epochs\": {},\n  \"batch_size\": {},\n  \
         \"lr\": {},\n  \"momentum\": {},\n  \"hidden\": [{}],\n  \"activation\": \"{}\",\n  \
         \"init\": \"{}\",\n  \"seed\": {},\n  \"threads\": {},\n  \"data\": {:?},\n  \"limit\": {}\n}}\n",
        env!("CARGO_PKG_VERSION"),
        config.level,
        config.epochs,
        config.batch_size,
        config.lr,
        config.momentum,
        hidden.join(", "),
        config.activation,
        config.init,
        config.seed,
        optional(config.threads),
        config.data.display().to_string(),
        optional(config.limit),
    )
}

/// Saves `weight{i}` (fan_in, fan_out), `bias{i}` and `activation` (UTF-8 bytes) as `.npz`.
fn save_model(
    path: &Path,
    layers: &LinearParams<f32>,
    activation: Activation,
) -> Result<(), RunError> {
    write_atomically(path, |temporary| {
        let to_io = |error: ndarray_npy::WriteNpzError| std::io::Error::other(error.to_string());
        let mut npz = NpzWriter::new(fs::File::create(temporary)?);
        for (index, (weight, bias)) in layers.iter().enumerate() {
            npz.add_array(format!("weight{index}"), weight)
                .map_err(to_io)?;
            npz.add_array(format!("bias{index}"), bias).map_err(to_io)?;
        }
        let name = Array1::from_vec(activation.name().as_bytes().to_vec());
        npz.add_array("activation", &name).map_err(to_io)?;
        npz.finish().map_err(to_io)?;
        Ok(())
    })
}

/// Loads a model saved by `train`: its layers and activation.
///
/// # Errors
/// A missing or unreadable file, or one without the expected arrays.
pub fn load_model(path: &Path) -> Result<(LinearParams<f32>, Activation), RunError> {
    let problem = |text: String| RunError::Model {
        path: path.to_path_buf(),
        problem: text,
    };
    let file = fs::File::open(path).map_err(|error| problem(format!("cannot open: {error}")))?;
    let mut npz =
        NpzReader::new(file).map_err(|error| problem(format!("not a model .npz: {error}")))?;
    let names = npz.names().map_err(|error| problem(error.to_string()))?;
    let layers = names
        .iter()
        .filter(|name| name.starts_with("weight"))
        .count();
    if layers == 0 {
        return Err(problem(
            "no weight0 array: not a model saved by backprop train".into(),
        ));
    }
    let mut params = Vec::with_capacity(layers);
    for index in 0..layers {
        let weight: Array2<f32> = npz
            .by_name(&format!("weight{index}"))
            .map_err(|error| problem(format!("weight{index}: {error}")))?;
        let bias: Array1<f32> = npz
            .by_name(&format!("bias{index}"))
            .map_err(|error| problem(format!("bias{index}: {error}")))?;
        if bias.len() != weight.ncols()
            || (index > 0
                && weight.nrows()
                    != params
                        .last()
                        .map_or(0, |(w, _): &(Array2<f32>, Array1<f32>)| w.ncols()))
        {
            return Err(problem(format!(
                "layer {index}: weight {:?} and bias {} do not chain",
                weight.dim(),
                bias.len()
            )));
        }
        params.push((weight, bias));
    }
    let activation: Array1<u8> = npz
        .by_name("activation")
        .map_err(|error| problem(format!("activation: {error}")))?;
    let activation = String::from_utf8_lossy(activation.as_slice().unwrap_or_default())
        .parse()
        .map_err(problem)?;
    Ok((params, activation))
}

/// Evaluates a saved model on the test split of `data` with `level`; returns the text to print.
///
/// # Errors
/// As [`load_model`] and [`load_mnist`].
pub fn eval(model_path: &Path, data: &Path, level: u8) -> Result<String, RunError> {
    let (params, activation) = load_model(model_path)?;
    let test_set = load_mnist(data)?.test;
    if params[0].0.nrows() != test_set.images.ncols() {
        return Err(RunError::Model {
            path: model_path.to_path_buf(),
            problem: format!(
                "takes {} inputs but the images have {} pixels",
                params[0].0.nrows(),
                test_set.images.ncols()
            ),
        });
    }
    let (accuracy, confusion) = match level {
        1 => accuracy(
            &mut <level01::Level01 as Level<f32>>::mlp(
                params,
                activation,
                LossKind::SoftmaxCrossEntropy,
            ),
            &test_set,
        ),
        2 => accuracy(
            &mut <level02::Level02 as Level<f32>>::mlp(
                params,
                activation,
                LossKind::SoftmaxCrossEntropy,
            ),
            &test_set,
        ),
        _ => accuracy(
            &mut <level03::Level03 as Level<f32>>::mlp(
                params,
                activation,
                LossKind::SoftmaxCrossEntropy,
            ),
            &test_set,
        ),
    };
    let mut text = format!(
        "test accuracy {:.2}% on {} images\n",
        100.0 * accuracy,
        test_set.len()
    );
    text.push_str("confusion matrix (rows: true class, columns: predicted)\n     ");
    for class in 0..10 {
        write!(text, "{class:>6}").expect("writing to a String");
    }
    text.push('\n');
    for (class, row) in confusion.axis_iter(Axis(0)).enumerate() {
        write!(text, "{class:>5}").expect("writing to a String");
        for count in row {
            write!(text, "{count:>6}").expect("writing to a String");
        }
        text.push('\n');
    }
    Ok(text)
}
