//! What a run may ask for, checked before it writes anything: flags inside these bounds (the
//! flags' value parsers are here, and a resumed run's `config.json` is held to the same ones),
//! and a model whose memory fits the machine.
//!
//! | limit | value | why |
//! |---|---|---|
//! | `--threads` | at most [`MAX_THREADS`] | more threads than that only wait on each other |
//! | `--epochs` | at most [`MAX_EPOCHS`] | |
//! | `diagnose --steps` | at most [`MAX_STEPS`] | the loss of every step is kept |
//! | `diagnose --depths` | each at most [`MAX_DEPTH`] | |
//! | memory | [`training_bytes`] at most the machine's (`MemTotal` of `/proc/meminfo`) | an abort halfway is worse than an error first |
//! | `--norm batch` | batches of at least 2 rows ([`check_batch_norm_rows`]) | one row has no variance |
//! | `.npz` arrays | [`crate::model_file::MAX_ARRAY_BYTES`] each | |

use backprop_core::Norm;
use backprop_core::network::{LayerPlan, NetSpec};
use backprop_data::memory::{human_bytes, memory_available};

use crate::error::RunError;

/// The most rayon threads a run may ask for.
pub const MAX_THREADS: usize = 256;

/// The most epochs `train` may be asked for.
pub const MAX_EPOCHS: usize = 100_000;

/// The most Linear layers `diagnose --depths` may ask for.
pub const MAX_DEPTH: usize = 1000;

/// The most steps per configuration `diagnose` may be asked for.
pub const MAX_STEPS: usize = 1_000_000;

use crate::eval::EVALUATION_ROWS;

/// An upper estimate of the bytes a training run of an MLP with these layer `sizes` holds, in
/// `f32`: each parameter with its gradient and `optimizer_buffers` more (0 for SGD, 1 for
/// momentum, 2 for Adam), and four values per unit per row (pre-activation, activation and
/// their gradients) for the larger of `batch_size` and the 1,000-row accuracy batches. `None`
/// when the count itself overflows.
pub fn training_bytes(
    sizes: &[usize],
    batch_size: usize,
    optimizer_buffers: usize,
) -> Option<u128> {
    let mut parameters: u128 = 0;
    for pair in sizes.windows(2) {
        let layer = (pair[0] as u128 + 1).checked_mul(pair[1] as u128)?;
        parameters = parameters.checked_add(layer)?;
    }
    let units = sizes
        .iter()
        .try_fold(0u128, |sum, &size| sum.checked_add(size as u128))?;
    let rows = batch_size.max(EVALUATION_ROWS) as u128;
    let values = parameters
        .checked_mul(2 + optimizer_buffers as u128)?
        .checked_add(units.checked_mul(rows)?.checked_mul(4)?)?;
    values.checked_mul(4)
}

/// [`training_bytes`] for any network: each parameter with its gradient and
/// `optimizer_buffers` more, and per row of the larger of `batch_size` and the 1,000-row
/// accuracy batches two values (the value and its gradient) at every layer boundary, plus each
/// `Conv2d`'s im2col buffers (its windows, their gradient, and its product). `None` when the
/// count overflows.
pub fn network_training_bytes(
    spec: &NetSpec,
    batch_size: usize,
    optimizer_buffers: usize,
) -> Option<u128> {
    let mut parameters: u128 = 0;
    for (rows, columns) in spec.weight_shapes() {
        let layer = (rows as u128 + 1).checked_mul(columns as u128)?;
        parameters = parameters.checked_add(layer)?;
    }
    let mut units: u128 = 0;
    for index in 0..=spec.layers().len() {
        let values = spec.shape_before(index).len() as u128;
        units = units.checked_add(values.checked_mul(2)?)?;
    }
    for layer in spec.plan() {
        if let LayerPlan::Conv2d(geometry) = layer {
            let output = geometry.output();
            let positions = (output.height as u128).checked_mul(output.width as u128)?;
            let per_position = (geometry.fan_in() as u128)
                .checked_mul(2)?
                .checked_add(geometry.out_channels as u128)?;
            units = units.checked_add(positions.checked_mul(per_position)?)?;
        }
    }
    let rows = batch_size.max(EVALUATION_ROWS) as u128;
    let values = parameters
        .checked_mul(2 + optimizer_buffers as u128)?
        .checked_add(units.checked_mul(rows)?)?;
    values.checked_mul(4)
}

/// Refuses a run whose estimate exceeds the machine's memory; `flags` names the flags that
/// set the size (e.g. `--hidden 1000000000 with --batch-size 64`).
///
/// # Errors
/// [`RunError::Flag`] with the estimate and the machine's memory.
pub fn check_memory(flags: &str, estimate: Option<u128>) -> Result<(), RunError> {
    let Some(bytes) = estimate else {
        return Err(RunError::Flag(format!(
            "{flags}: the model is too large to count its bytes"
        )));
    };
    match memory_available() {
        Some((memory, what)) if bytes > memory => Err(RunError::Flag(format!(
            "{flags}: the model and its buffers need about {}, more than the {} {what}",
            human_bytes(bytes),
            human_bytes(memory)
        ))),
        _ => Ok(()),
    }
}

/// Refuses batch norm when a batch can have only one row: `batch_size` or the whole data set
/// (`images`) below 2. One row has no variance to normalize by (PyTorch refuses it too). A
/// longer epoch's last batch of one row is skipped instead ([`Batches::min_rows`]).
///
/// [`Batches::min_rows`]: backprop_data::batches::Batches::min_rows
///
/// # Errors
/// [`RunError::Flag`] naming the batch size or the number of images.
pub fn check_batch_norm_rows(
    norms: &[Norm],
    batch_size: usize,
    images: usize,
) -> Result<(), RunError> {
    if !norms.contains(&Norm::Batch) || batch_size.min(images) >= 2 {
        return Ok(());
    }
    let given = if batch_size < 2 {
        format!("--batch-size {batch_size}")
    } else {
        format!("{images} training image(s)")
    };
    Err(RunError::Flag(format!(
        "--norm batch with {given}: batch norm needs at least 2 rows per batch (one row has no \
         variance)"
    )))
}

/// A flag value parser for a whole number in `1..=max`.
pub fn at_most(max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |text: &str| match text.parse::<usize>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a whole number from 1 to {max}")),
    }
}

/// A flag value parser for a whole number above 0.
pub fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(value) if value > 0 => Ok(value),
        _ => Err(format!("{text:?} is not a whole number above 0")),
    }
}

/// A flag value parser for a finite `f32` above 0.
pub fn positive_finite(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a finite number above 0")),
    }
}

/// A flag value parser for a finite `f64` above 0.
pub fn positive_finite_f64(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a finite number above 0")),
    }
}

/// A flag value parser for a finite number of 0 or more.
pub fn non_negative_finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a finite number of 0 or more")),
    }
}

/// A number in [0, 1): a momentum, or a dropout probability (dropping everything is no layer).
pub fn in_unit_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number in [0, 1)")),
    }
}

/// One width of `--hidden`: a whole number above 0.
pub fn hidden_sizes(text: &str) -> Result<usize, String> {
    positive(text).map_err(|_| {
        format!(
            "{text:?} is not a layer width: give whole numbers above 0 separated by commas, \
             e.g. 256 or 512,128"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_parameters_and_rows_and_overflows_to_none() {
        // [2, 3]: 9 parameters x (2 + 1 buffers) + 5 units x 1000 rows x 4, in 4-byte floats.
        assert_eq!(training_bytes(&[2, 3], 64, 1), Some((27 + 20_000) * 4));
        assert_eq!(training_bytes(&[usize::MAX, usize::MAX], 64, 0), None);
        assert!(training_bytes(&[784, usize::MAX, 10], 64, 0).is_some_and(|bytes| bytes > 1 << 70));
        let huge = training_bytes(&[784, 1_000_000_000, 10], 64, 0).unwrap();
        assert!(huge > 6_000_000_000_000, "{huge}");
    }
}
