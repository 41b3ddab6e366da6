//! The harness's own forward and backward pass in `f64`: the oracle for gates 1 and 2.
//!
//! Written independently of every level, as plainly as ndarray allows, so that a level is
//! compared with the math and not with another level.

use backprop_core::{Activation, LinearParams, LossKind, Targets};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// y = x W + b.
pub fn linear_forward(
    input: ArrayView2<'_, f64>,
    weight: &Array2<f64>,
    bias: &Array1<f64>,
) -> Array2<f64> {
    input.dot(weight) + bias
}

/// `(dL/dx, dL/dW, dL/db)` of `y = x W + b` for upstream `g`:
/// `dx = g W^T`, `dW = x^T g`, `db = Σ_rows g`.
pub fn linear_backward(
    input: ArrayView2<'_, f64>,
    weight: &Array2<f64>,
    grad_output: ArrayView2<'_, f64>,
) -> (Array2<f64>, Array2<f64>, Array1<f64>) {
    (
        grad_output.dot(&weight.t()),
        input.t().dot(&grad_output),
        grad_output.sum_axis(Axis(0)),
    )
}

/// The activation, elementwise.
pub fn activation_forward(activation: Activation, input: ArrayView2<'_, f64>) -> Array2<f64> {
    match activation {
        Activation::Relu => input.mapv(|x| if x > 0.0 { x } else { 0.0 }),
        Activation::Sigmoid => input.mapv(|x| 1.0 / (1.0 + (-x).exp())),
        Activation::Tanh => input.mapv(f64::tanh),
    }
}

/// dL/dx = g * f'(x): ReLU `x > 0`, sigmoid `s (1 - s)`, tanh `1 - t^2`.
pub fn activation_backward(
    activation: Activation,
    input: ArrayView2<'_, f64>,
    grad_output: ArrayView2<'_, f64>,
) -> Array2<f64> {
    let slope = match activation {
        Activation::Relu => input.mapv(|x| if x > 0.0 { 1.0 } else { 0.0 }),
        Activation::Sigmoid => activation_forward(activation, input).mapv(|s| s * (1.0 - s)),
        Activation::Tanh => input.mapv(|x| 1.0 - x.tanh().powi(2)),
    };
    &grad_output * &slope
}

/// `(loss, dL/dlogits)` of mean softmax cross-entropy: `(softmax(z) - onehot(t)) / N`.
pub fn softmax_cross_entropy(logits: ArrayView2<'_, f64>, targets: &[usize]) -> (f64, Array2<f64>) {
    let batch = logits.nrows() as f64;
    let mut grad = Array2::zeros(logits.dim());
    let mut loss = 0.0;
    for ((row, mut grad_row), &target) in
        logits.outer_iter().zip(grad.outer_iter_mut()).zip(targets)
    {
        let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
        let log_sum_exp = row.mapv(|z| (z - max).exp()).sum().ln() + max;
        loss += log_sum_exp - row[target];
        grad_row.assign(&row.mapv(|z| (z - log_sum_exp).exp() / batch));
        grad_row[target] -= 1.0 / batch;
    }
    (loss / batch, grad)
}

/// `(loss, dL/dp)` of mean squared error: `2 (p - t) / (N M)`.
pub fn mse(predictions: ArrayView2<'_, f64>, targets: ArrayView2<'_, f64>) -> (f64, Array2<f64>) {
    let difference = &predictions - &targets;
    let count = difference.len() as f64;
    (
        difference.mapv(|d| d * d).sum() / count,
        difference * (2.0 / count),
    )
}

/// Everything a forward and backward pass of an MLP produces.
#[derive(Debug, Clone)]
pub struct MlpPass {
    /// The last layer's output.
    pub logits: Array2<f64>,
    /// The loss against the targets.
    pub loss: f64,
    /// dL/d(input).
    pub grad_input: Array2<f64>,
    /// `(dL/dW, dL/db)` per `Linear` layer, input layer first.
    pub grad_params: LinearParams<f64>,
}

/// Forward and backward through `Linear, act, ..., Linear, loss`.
pub fn mlp(
    params: &LinearParams<f64>,
    activation: Activation,
    loss: LossKind,
    input: ArrayView2<'_, f64>,
    targets: Targets<'_, f64>,
) -> MlpPass {
    // Forward, keeping each Linear's input and each activation's input.
    let mut linear_inputs = vec![input.to_owned()];
    let mut pre_activations = Vec::new();
    let mut hidden = input.to_owned();
    for (index, (weight, bias)) in params.iter().enumerate() {
        hidden = linear_forward(hidden.view(), weight, bias);
        if index + 1 < params.len() {
            pre_activations.push(hidden.clone());
            hidden = activation_forward(activation, hidden.view());
            linear_inputs.push(hidden.clone());
        }
    }
    let logits = hidden;
    let (loss_value, mut grad) = match (loss, targets) {
        (LossKind::SoftmaxCrossEntropy, Targets::Classes(classes)) => {
            softmax_cross_entropy(logits.view(), classes)
        }
        (LossKind::Mse, Targets::Values(values)) => mse(logits.view(), values),
        (loss, _) => panic!("reference MLP: targets of the wrong kind for {loss:?}"),
    };
    // Backward, last layer first.
    let mut grad_params = vec![(Array2::zeros((0, 0)), Array1::zeros(0)); params.len()];
    for index in (0..params.len()).rev() {
        let (grad_input, grad_weight, grad_bias) =
            linear_backward(linear_inputs[index].view(), &params[index].0, grad.view());
        grad_params[index] = (grad_weight, grad_bias);
        grad = if index > 0 {
            activation_backward(
                activation,
                pre_activations[index - 1].view(),
                grad_input.view(),
            )
        } else {
            grad_input
        };
    }
    MlpPass {
        logits,
        loss: loss_value,
        grad_input: grad,
        grad_params,
    }
}
