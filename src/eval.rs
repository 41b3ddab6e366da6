//! `backprop eval`: a saved model's accuracy and confusion matrix on the test split.

use std::fmt::Write as _;
use std::path::Path;

use backprop_core::{Level, Model};
use backprop_data::mnist::{CLASSES, Dataset, load_mnist};
use ndarray::{Array2, Axis, s};

use crate::error::RunError;
use crate::model_file::{check_model, load_model};
use crate::output::create_folder;
use crate::pictures::{classes_of, write_pictures};

/// Images per forward pass when a model is evaluated: the largest batch a run pushes through
/// it besides its training batches (the memory estimate in [`crate::limits`] counts on it).
pub const EVALUATION_ROWS: usize = 1000;

/// The class `model` predicts for each image of `data` (the largest logit, the first on a
/// tie), in evaluation mode (running statistics, no dropout), [`EVALUATION_ROWS`] at a time.
pub fn predictions(model: &mut impl Model<f32>, data: &Dataset) -> Vec<usize> {
    model.set_training(false);
    let mut predicted = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(EVALUATION_ROWS) {
        let end = (start + EVALUATION_ROWS).min(data.len());
        let logits = model.forward(data.images.slice(s![start..end, ..]));
        predicted.extend(classes_of(&logits));
    }
    model.set_training(true);
    predicted
}

/// The confusion matrix `[true][predicted]` of `predicted` against `data`'s labels.
pub fn confusion_of(predicted: &[usize], data: &Dataset) -> Array2<usize> {
    let mut confusion = Array2::zeros((CLASSES, CLASSES));
    for (&label, &class) in data.labels.iter().zip(predicted) {
        confusion[[label, class]] += 1;
    }
    confusion
}

/// The fraction of `data`'s images whose `predicted` class is their label.
pub fn accuracy_of(predicted: &[usize], data: &Dataset) -> f64 {
    let correct = predicted
        .iter()
        .zip(&data.labels)
        .filter(|(class, label)| class == label)
        .count();
    correct as f64 / data.len().max(1) as f64
}

/// (accuracy, confusion matrix `[true][predicted]`) of `model` on `data`.
pub fn accuracy(model: &mut impl Model<f32>, data: &Dataset) -> (f64, Array2<usize>) {
    let predicted = predictions(model, data);
    (
        accuracy_of(&predicted, data),
        confusion_of(&predicted, data),
    )
}

/// What `eval` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The fraction of test images classified right.
    pub accuracy: f64,
    /// The number of test images.
    pub images: usize,
    /// `[true class][predicted class]` counts.
    pub confusion: Array2<usize>,
}

impl Evaluation {
    /// `test accuracy 98.20% on 10000 images`.
    pub fn summary(&self) -> String {
        format!(
            "test accuracy {:.2}% on {} images",
            100.0 * self.accuracy,
            self.images
        )
    }

    /// The summary and the confusion matrix as a table.
    pub fn report(&self) -> String {
        report(self.accuracy, &self.confusion, self.images)
    }

    /// `{"accuracy": .., "images": .., "confusion": [[..], ..]}` (rows: true class).
    pub fn to_json(&self) -> String {
        let rows: Vec<Vec<usize>> = self
            .confusion
            .rows()
            .into_iter()
            .map(|row| row.to_vec())
            .collect();
        serde_json::json!({
            "accuracy": self.accuracy,
            "images": self.images,
            "confusion": rows,
        })
        .to_string()
    }
}

/// Evaluates a saved model on the test split of `data` with level `L`: the accuracy and the
/// confusion matrix.
///
/// # Errors
/// As [`load_model`], [`load_mnist`] and [`check_model`].
pub fn eval<L: Level<f32>>(
    model_path: &Path,
    data: &Path,
    pictures: Option<&Path>,
) -> Result<Evaluation, RunError> {
    let saved = load_model(model_path)?;
    let test_set = load_mnist(data)?.test;
    check_model(model_path, &saved, &test_set)?;
    let mut model = saved.build::<L>(0.0, 0);
    let predicted = predictions(&mut model, &test_set);
    let confusion = confusion_of(&predicted, &test_set);
    let accuracy = accuracy_of(&predicted, &test_set);
    if let Some(folder) = pictures {
        create_folder(folder)?;
        write_pictures(folder, &saved, &test_set, &predicted, &confusion)?;
    }
    Ok(Evaluation {
        accuracy,
        images: test_set.len(),
        confusion,
    })
}

/// The accuracy line and the confusion matrix as a table.
fn report(accuracy: f64, confusion: &Array2<usize>, images: usize) -> String {
    let mut text = format!(
        "test accuracy {:.2}% on {images} images\n",
        100.0 * accuracy
    );
    text.push_str("confusion matrix (rows: true class, columns: predicted)\n     ");
    for class in 0..confusion.ncols() {
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
    text
}
