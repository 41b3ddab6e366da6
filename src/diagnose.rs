//! `backprop diagnose`: a grid of short trainings that shows gradients vanish, explode or flow.
//!
//! Every configuration (depth x activation x normalization x init x clipping) trains an MLP of
//! equal hidden
//! widths for a few hundred SGD steps on the same batches, and records after each backward pass
//! the per-layer statistics of [`backprop_core::flow`]. The table gives, per configuration:
//!
//! - `ratio@init`: ‖dL/dW_first‖ / ‖dL/dW_last‖ at the first step, where the init alone decides;
//! - `ratio`: the median of that ratio over the steps;
//! - `upd@0`: the median over the steps of the first layer's log10 update ratio
//!   ‖ΔW‖ / ‖W‖ (measured on the step taken, clipping included; about -3 is healthy);
//! - `max ‖dW‖`: the median over the steps of the largest layer's gradient norm;
//! - the verdict, from the gradients and the outcome together ([`Verdict::of`], whose thresholds
//!   sit with their reasons in [`backprop_core::flow`]): `diverged@k` (the loss stopped being
//!   finite at step k), `exploding`, `vanishing` (a small first-layer gradient *and* first-layer
//!   weights that barely move), `not learning` (the final loss still at chance, ln 10),
//!   `slow` (learning, but not clearly yet, or with the first layer lagging), `healthy` (the
//!   loss fell below 0.7 ln 10 with every gradient in band);
//! - the loss at the first step and the mean of the last ten.
//!
//! Plots (SVG): per activation, the median gradient norm per layer (before clipping), and the
//! first layer's update ratio over the steps (of the update taken, after clipping); one panel
//! per init and clipping, one line per depth.

use std::path::{Path, PathBuf};

use backprop_core::flow::{RunSummary, StepStats, Verdict, clip_grad_norm, step_stats, weights_of};
use backprop_core::init::{seeded_rng, standard_normal};
use backprop_core::optim::{Optimizer, Sgd};
use backprop_core::{Activation, Init, Level, LossKind, MlpSpec, Model, Norm, Targets};
use backprop_data::batches::Batches;
use backprop_data::mnist::{CLASSES, Dataset, load_mnist};
use ndarray::Array2;

use crate::error::RunError;
use crate::limits::{check_batch_norm_rows, check_memory, training_bytes};
use crate::train::SHUFFLE_SALT;

/// The MNIST training images each configuration of the grid trains on (the first ones).
pub const DIAGNOSE_IMAGES: usize = 10_000;

/// Mixed into `--seed` for `--synthetic`'s data, so that it is not drawn from the stream of the
/// initial weights.
const SYNTHETIC_DATA_SALT: u64 = 0xda7a;
use crate::output::{create_folder, write_atomically, write_svg};
use crate::plots::{Panel, Series, panel_grid};

/// The settings of a diagnose run.
#[derive(Debug, Clone)]
pub struct DiagnoseConfig {
    /// Numbers of `Linear` layers to try.
    pub depths: Vec<usize>,
    /// Width of every hidden layer.
    pub width: usize,
    /// SGD steps per configuration.
    pub steps: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// SGD learning rate.
    pub lr: f32,
    /// The `max_norm` of the clipped runs.
    pub clip: f64,
    /// The normalizations to try after each hidden layer (`none`, `batch`, `layer`).
    pub norms: Vec<Norm>,
    /// The activations of the grid (`diagnose --activations`).
    pub activations: Vec<Activation>,
    /// Dropout after each hidden activation (0: none), in every configuration.
    pub dropout: f64,
    /// Seed of the weights, the shuffling and the synthetic data.
    pub seed: u64,
    /// Gaussian clusters instead of MNIST.
    pub synthetic: bool,
    /// Folder with the MNIST IDX files.
    pub data: PathBuf,
    /// Output folder for the table and the plots.
    pub out: PathBuf,
    /// No table on stdout (it is still written to `table.md`).
    pub quiet: bool,
}

/// The initialisers of the grid, with their names in the table.
pub const INITS: [(&str, Init); 5] = [
    ("N(0,0.01)", Init::Normal { std: 0.01 }),
    ("pytorch", Init::PytorchDefault),
    ("xavier", Init::Xavier),
    ("he", Init::He),
    ("N(0,1)", Init::Normal { std: 1.0 }),
];

/// What one configuration did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Number of `Linear` layers.
    pub depth: usize,
    /// The hidden activation.
    pub activation: Activation,
    /// The initialiser's name in [`INITS`].
    pub init: &'static str,
    /// Whether gradients were clipped.
    pub clipped: bool,
    /// The normalization after each hidden layer.
    pub norm: Norm,
    /// The loss at every step run (the run stops at the first non-finite one).
    pub losses: Vec<f32>,
    /// The statistics after every finite step's backward pass: gradient norms before clipping,
    /// update ratios of the step taken (after clipping).
    pub stats: Vec<StepStats>,
}

impl Outcome {
    /// The 1-based step whose loss was not finite, if any.
    pub fn diverged_at(&self) -> Option<usize> {
        self.losses
            .iter()
            .position(|loss| !loss.is_finite())
            .map(|index| index + 1)
    }

    /// ‖dL/dW_first‖ / ‖dL/dW_last‖ at the first step.
    pub fn ratio_at_init(&self) -> f64 {
        self.stats
            .first()
            .map_or(f64::NAN, StepStats::first_to_last_ratio)
    }

    /// The median over the steps of ‖dL/dW_first‖ / ‖dL/dW_last‖.
    pub fn median_ratio(&self) -> f64 {
        median(self.stats.iter().map(StepStats::first_to_last_ratio))
    }

    /// The median over the steps of the largest layer gradient norm.
    pub fn median_max_norm(&self) -> f64 {
        median(self.stats.iter().map(|stats| {
            stats
                .layers
                .iter()
                .map(|layer| layer.weight_grad_norm)
                .fold(0.0, f64::max)
        }))
    }

    /// The median over the steps of the first layer's log10 update ratio.
    pub fn median_first_update(&self) -> f64 {
        median(
            self.stats
                .iter()
                .map(|stats| stats.layers[0].update_ratio_log10),
        )
    }

    /// The run's verdict from its gradients and its losses (see the module docs).
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&RunSummary {
            diverged_at: self.diverged_at(),
            classes: CLASSES,
            final_loss: self.final_loss(),
            ratio: self.median_ratio(),
            first_norm: median(
                self.stats
                    .iter()
                    .map(|stats| stats.layers[0].weight_grad_norm),
            ),
            max_norm: self.median_max_norm(),
            first_update_log10: self.median_first_update(),
        })
    }

    /// The mean loss of the last ten steps (NaN if the run diverged).
    pub fn final_loss(&self) -> f64 {
        let tail = &self.losses[self.losses.len().saturating_sub(10)..];
        tail.iter().map(|&loss| f64::from(loss)).sum::<f64>() / tail.len().max(1) as f64
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|value| !value.is_nan()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The training data: MNIST's first 10,000 images, or 4,096 points around 10 Gaussian centres
/// in 32 dimensions (`--synthetic`).
fn training_data(config: &DiagnoseConfig) -> Result<Dataset, RunError> {
    if !config.synthetic {
        return Ok(load_mnist(&config.data)?.train.first(DIAGNOSE_IMAGES));
    }
    let mut rng = seeded_rng(config.seed ^ SYNTHETIC_DATA_SALT);
    let mut normal = || standard_normal(&mut rng) as f32;
    let centres = Array2::from_shape_simple_fn((10, 32), &mut normal);
    let labels: Vec<usize> = (0..4096).map(|index| index % 10).collect();
    let mut images = Array2::zeros((labels.len(), 32));
    for (mut row, &label) in images.rows_mut().into_iter().zip(&labels) {
        row.zip_mut_with(&centres.row(label), |x, &centre| *x = centre + normal());
    }
    Ok(Dataset {
        images,
        labels,
        rows: 1,
        cols: 32,
    })
}

/// Trains one configuration; stops at the first non-finite loss.
fn run_one<L: Level<f32>>(
    config: &DiagnoseConfig,
    data: &Dataset,
    (depth, activation, norm, (init_name, init), clipped): (
        usize,
        Activation,
        Norm,
        (&'static str, Init),
        bool,
    ),
) -> Outcome {
    let mut sizes = vec![data.images.ncols()];
    sizes.extend(std::iter::repeat_n(config.width, depth - 1));
    sizes.push(CLASSES);
    let spec = MlpSpec {
        sizes,
        activation,
        loss: LossKind::SoftmaxCrossEntropy,
        init,
        seed: config.seed,
        norm,
        dropout: config.dropout,
    };
    let mut model = L::mlp_from_spec(&spec);
    let mut sgd = Sgd::new(f64::from(config.lr));
    // The same shuffled batches for every configuration, full ones only.
    let batch_size = config.batch_size.min(data.len());
    let mut batches = Batches::new(data, batch_size, config.seed ^ SHUFFLE_SALT).drop_last();
    let mut outcome = Outcome {
        depth,
        activation,
        init: init_name,
        clipped,
        norm,
        losses: Vec::with_capacity(config.steps),
        stats: Vec::with_capacity(config.steps),
    };
    for _ in 0..config.steps {
        let (images, labels) = batches.next_cycling();
        model.zero_grad();
        model.forward(images);
        let loss = model.loss(Targets::Classes(labels));
        outcome.losses.push(loss);
        if !loss.is_finite() {
            break;
        }
        model.backward_params_only();
        // The gradient norms as computed (the problem clipping hides); the update ratio of the
        // step actually taken, clipping included.
        let mut stats = step_stats(&mut model);
        if clipped {
            clip_grad_norm(&mut model, config.clip);
        }
        let before = weights_of(&mut model);
        sgd.step(&mut model);
        stats.measure_update(&mut model, &before);
        outcome.stats.push(stats);
    }
    outcome
}

/// Runs the grid, prints and writes the table, and draws the plots; returns the outcomes.
///
/// # Errors
/// Unreadable data, a network too large for the machine, or an unwritable output folder.
pub fn diagnose<L: Level<f32>>(config: &DiagnoseConfig) -> Result<Vec<Outcome>, RunError> {
    let data = training_data(config)?;
    check_batch_norm_rows(&config.norms, config.batch_size, data.len())?;
    let deepest = config.depths.iter().copied().max().unwrap_or(1);
    let mut sizes = vec![data.images.ncols()];
    sizes.extend(std::iter::repeat_n(config.width, deepest - 1));
    sizes.push(CLASSES);
    check_memory(
        &format!(
            "--depths {deepest} with --width {} and --batch-size {}",
            config.width, config.batch_size
        ),
        training_bytes(&sizes, config.batch_size.min(data.len()), 0),
    )?;
    create_folder(&config.out)?;
    let mut outcomes = Vec::new();
    if !config.quiet {
        println!("{}", table_header(config));
    }
    for &activation in &config.activations {
        for &depth in &config.depths {
            for &norm in &config.norms {
                for init in INITS {
                    for clipped in [false, true] {
                        let grid_point = (depth, activation, norm, init, clipped);
                        let outcome = run_one::<L>(config, &data, grid_point);
                        if !config.quiet {
                            println!("{}", table_row(&outcome));
                        }
                        outcomes.push(outcome);
                    }
                }
            }
        }
    }
    let mut table = table_header(config);
    for outcome in &outcomes {
        table.push('\n');
        table.push_str(&table_row(outcome));
    }
    table.push('\n');
    let table_path = config.out.join("table.md");
    write_atomically(&table_path, table.as_bytes())?;
    write_plots(&config.out, config, &outcomes)?;
    Ok(outcomes)
}

fn table_header(config: &DiagnoseConfig) -> String {
    format!(
        "{} steps of SGD (lr {}, batch {}), hidden width {}, clipping to norm {}, dropout {}; \
         ratio = ‖dL/dW_first‖ / ‖dL/dW_last‖, upd@0 = log10(‖ΔW_first‖ / ‖W_first‖) of the step \
         taken (-inf: the step moved no weight)\n\
         | depth | activation | norm  | init      | clip | ratio@init |    ratio | upd@0 | max ‖dW‖ | verdict      |   loss@1 | final loss |\n\
         |------:|------------|-------|-----------|------|-----------:|---------:|------:|---------:|--------------|---------:|-----------:|",
        config.steps, config.lr, config.batch_size, config.width, config.clip, config.dropout
    )
}

/// A loss for the table: three decimals, or three digits and an exponent when large.
fn loss_text(loss: f64) -> String {
    if loss.abs() < 1e4 {
        format!("{loss:.3}")
    } else {
        format!("{loss:.2e}")
    }
}

/// A ratio for the table; 0/0 (every gradient exactly zero) shows as `0/0`.
fn ratio_text(ratio: f64) -> String {
    if ratio.is_nan() {
        "0/0".into()
    } else {
        format!("{ratio:.1e}")
    }
}

fn table_row(outcome: &Outcome) -> String {
    format!(
        "| {:>5} | {:<10} | {:<5} | {:<9} | {:<4} | {:>10} | {:>8} | {:>5.1} | {:>8.1e} | {:<12} | {:>8} | {:>10} |",
        outcome.depth,
        outcome.activation.name(),
        outcome.norm.name(),
        outcome.init,
        if outcome.clipped { "yes" } else { "no" },
        ratio_text(outcome.ratio_at_init()),
        ratio_text(outcome.median_ratio()),
        outcome.median_first_update(),
        outcome.median_max_norm(),
        outcome.verdict().to_string(),
        loss_text(
            outcome
                .losses
                .first()
                .map_or(f64::NAN, |&loss| f64::from(loss))
        ),
        loss_text(outcome.final_loss()),
    )
}

/// A labelled line of a panel.
type Line = (String, Vec<(f64, f64)>);
/// The lines of one panel, one per depth.
type PanelLines = Vec<Line>;

/// Per activation: `grad_norms_<act>.svg` (median log10 ‖dL/dW‖ per layer) and
/// `update_ratio_<act>.svg` (the first layer's log10 update ratio per step).
fn write_plots(out: &Path, config: &DiagnoseConfig, outcomes: &[Outcome]) -> Result<(), RunError> {
    for &activation in &config.activations {
        let (mut norm_lines, mut ratio_lines, mut panel_titles) =
            (Vec::new(), Vec::new(), Vec::new());
        for (init, _) in INITS {
            for clipped in [false, true] {
                let clip_text = if clipped { "clipped" } else { "no clipping" };
                panel_titles.push(format!("{activation}, {init} init, {clip_text}"));
                let runs = outcomes.iter().filter(|outcome| {
                    outcome.activation == activation
                        && outcome.init == init
                        && outcome.clipped == clipped
                });
                let (norms, ratios) = runs
                    .map(|outcome| panel_lines(outcome, config.norms.len() > 1))
                    .unzip();
                norm_lines.push(norms);
                ratio_lines.push(ratios);
            }
        }
        let steps = config.steps;
        let figures = [
            (
                format!("grad_norms_{activation}.svg"),
                format!(
                    "{activation}: median ‖dL/dW‖ per layer over {steps} steps (layer 0 = input)"
                ),
                ("layer", "log10 ‖dL/dW‖"),
                &norm_lines,
            ),
            (
                format!("update_ratio_{activation}.svg"),
                format!("{activation}: first layer's update ratio ‖ΔW‖ / ‖W‖ (healthy near -3)"),
                ("step", "log10 update ratio"),
                &ratio_lines,
            ),
        ];
        for (file, title, axes, lines) in figures {
            let panels = panels(lines, &panel_titles, axes);
            write_svg(
                &out.join(file),
                panel_grid(Some(&title), 2, &panels, (1200, 1700)),
            )?;
        }
    }
    Ok(())
}

/// One run's two lines: the median log10 ‖dL/dW‖ of each layer, and the first layer's log10
/// update ratio at each step; both labelled with the depth (and the normalization, when the
/// grid has more than one).
fn panel_lines(outcome: &Outcome, name_norm: bool) -> (Line, Line) {
    let per_layer = (0..outcome.depth)
        .map(|layer| {
            let norms = outcome
                .stats
                .iter()
                .map(|stats| stats.layers[layer].weight_grad_norm);
            (layer as f64, median(norms).log10())
        })
        .collect();
    let first_layer = outcome
        .stats
        .iter()
        .enumerate()
        .map(|(step, stats)| ((step + 1) as f64, stats.layers[0].update_ratio_log10))
        .collect();
    let label = match name_norm {
        true => format!("depth {}, {} norm", outcome.depth, outcome.norm),
        false => format!("depth {}", outcome.depth),
    };
    ((label.clone(), per_layer), (label, first_layer))
}

/// The panels of a figure: one per title, with its lines.
fn panels<'a>(
    lines: &'a [PanelLines],
    titles: &[String],
    (x_label, y_label): (&'a str, &'a str),
) -> Vec<Panel<'a>> {
    lines
        .iter()
        .zip(titles)
        .map(|(lines, title)| Panel {
            title: title.clone(),
            x_label,
            y_label,
            series: lines
                .iter()
                .map(|(label, points)| Series {
                    label: label.clone(),
                    points,
                })
                .collect(),
        })
        .collect()
}
