//! The harness's own forward and backward pass in `f64`: the oracle for gates 1 and 2.
//!
//! Written independently of every level, as plainly as ndarray allows, so that a level is
//! compared with the math and not with another level.

use backprop_core::{Activation, Conv2dGeometry, LinearParams, LossKind, Pool2dGeometry, Targets};
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

/// Everything one pass of a normalization layer gives: the output, the input gradient, the
/// gradients of gamma and beta, and (batch norm in training) the batch's mean and biased
/// variance.
#[derive(Debug, Clone)]
pub struct NormPass {
    /// y.
    pub output: Array2<f64>,
    /// dL/dx.
    pub grad_input: Array2<f64>,
    /// dL/dgamma.
    pub grad_gamma: Array1<f64>,
    /// dL/dbeta.
    pub grad_beta: Array1<f64>,
    /// The statistics the pass normalized with, per feature (batch norm) or per row.
    pub mean: Array1<f64>,
    /// The biased variance the pass normalized with.
    pub var: Array1<f64>,
}

/// Batch norm in training on `x` `(N, features)` under upstream `g`, written node by node on
/// its computation graph (mu, var, s, x̂, y) and differentiated the long way: the three paths
/// into x (direct, through mu, through var), not the compact formula the levels use.
pub fn batch_norm(
    x: ArrayView2<'_, f64>,
    gamma: &Array1<f64>,
    beta: &Array1<f64>,
    g: ArrayView2<'_, f64>,
) -> NormPass {
    let pass = normalize_columns(x.t(), gamma, beta, g.t(), None);
    transpose_pass(pass)
}

/// Batch norm in evaluation: normalized with `running` (mean, variance), which are constants.
pub fn batch_norm_eval(
    x: ArrayView2<'_, f64>,
    gamma: &Array1<f64>,
    beta: &Array1<f64>,
    running: (&Array1<f64>, &Array1<f64>),
    g: ArrayView2<'_, f64>,
) -> NormPass {
    let pass = normalize_columns(x.t(), gamma, beta, g.t(), Some(running));
    transpose_pass(pass)
}

/// Layer norm on `x` `(N, features)`: each row normalized over its features.
pub fn layer_norm(
    x: ArrayView2<'_, f64>,
    gamma: &Array1<f64>,
    beta: &Array1<f64>,
    g: ArrayView2<'_, f64>,
) -> NormPass {
    // Per row, gamma and beta per feature: normalize the rows of x^T's columns one at a time.
    let (rows, features) = x.dim();
    let mut output = Array2::zeros((rows, features));
    let mut grad_input = Array2::zeros((rows, features));
    let (mut grad_gamma, mut grad_beta) = (Array1::zeros(features), Array1::zeros(features));
    let (mut mean, mut var) = (Array1::zeros(rows), Array1::zeros(rows));
    for row in 0..rows {
        let group = normalize_group(x.row(row).to_owned(), gamma, beta, g.row(row), None);
        output.row_mut(row).assign(&group.output);
        grad_input.row_mut(row).assign(&group.grad_input);
        grad_gamma += &group.grad_gamma;
        grad_beta += &group.grad_beta;
        (mean[row], var[row]) = (group.mean, group.var);
    }
    NormPass {
        output,
        grad_input,
        grad_gamma,
        grad_beta,
        mean,
        var,
    }
}

/// One group's pass (a feature's column in batch norm, a row in layer norm).
struct GroupPass {
    output: Array1<f64>,
    grad_input: Array1<f64>,
    grad_gamma: Array1<f64>,
    grad_beta: Array1<f64>,
    mean: f64,
    var: f64,
}

/// Normalizes the values `x` of one group, scaled by `gamma` and shifted by `beta` entry by
/// entry (each entry its own feature in layer norm; in batch norm the caller passes the
/// feature's one gamma repeated), with the batch's statistics or the given constant ones.
fn normalize_group(
    x: Array1<f64>,
    gamma: &Array1<f64>,
    beta: &Array1<f64>,
    g: ndarray::ArrayView1<'_, f64>,
    constant: Option<(f64, f64)>,
) -> GroupPass {
    let n = x.len() as f64;
    // Forward, node by node.
    let (mu, var) = constant.unwrap_or_else(|| {
        let mu = x.sum() / n;
        (mu, x.mapv(|v| (v - mu).powi(2)).sum() / n)
    });
    let s = 1.0 / (var + backprop_core::norm::NORM_EPS).sqrt();
    let x_hat = x.mapv(|v| (v - mu) * s);
    let output = &x_hat * gamma + beta;
    // Backward, node by node.
    let grad_beta = g.to_owned();
    let grad_gamma = &g * &x_hat;
    let d = &g * gamma; // dL/dx̂
    let grad_input = match constant {
        Some(_) => &d * s,
        None => {
            let d_var = (&d * &x.mapv(|v| v - mu)).sum() * (-0.5 * s.powi(3));
            let d_mu = -s * d.sum() + d_var * x.mapv(|v| -2.0 * (v - mu)).sum() / n;
            x.mapv(|v| d_var * 2.0 * (v - mu) / n + d_mu / n) + &d * s
        }
    };
    GroupPass {
        output,
        grad_input,
        grad_gamma,
        grad_beta,
        mean: mu,
        var,
    }
}

/// Batch norm feature by feature: `x_t` and `g_t` are `(features, N)`; the result is laid out
/// the same way (transposed back by [`transpose_pass`]).
fn normalize_columns(
    x_t: ArrayView2<'_, f64>,
    gamma: &Array1<f64>,
    beta: &Array1<f64>,
    g_t: ArrayView2<'_, f64>,
    running: Option<(&Array1<f64>, &Array1<f64>)>,
) -> NormPass {
    let (features, rows) = x_t.dim();
    let mut pass = NormPass {
        output: Array2::zeros((features, rows)),
        grad_input: Array2::zeros((features, rows)),
        grad_gamma: Array1::zeros(features),
        grad_beta: Array1::zeros(features),
        mean: Array1::zeros(features),
        var: Array1::zeros(features),
    };
    for feature in 0..features {
        let one = |value: f64| Array1::from_elem(rows, value);
        let constant = running.map(|(mean, var)| (mean[feature], var[feature]));
        let group = normalize_group(
            x_t.row(feature).to_owned(),
            &one(gamma[feature]),
            &one(beta[feature]),
            g_t.row(feature),
            constant,
        );
        pass.output.row_mut(feature).assign(&group.output);
        pass.grad_input.row_mut(feature).assign(&group.grad_input);
        pass.grad_gamma[feature] = group.grad_gamma.sum();
        pass.grad_beta[feature] = group.grad_beta.sum();
        (pass.mean[feature], pass.var[feature]) = (group.mean, group.var);
    }
    pass
}

fn transpose_pass(pass: NormPass) -> NormPass {
    NormPass {
        output: pass.output.reversed_axes(),
        grad_input: pass.grad_input.reversed_axes(),
        ..pass
    }
}

/// A convolution's output rows `(batch, out OH OW)`: for every output entry, the bias plus the
/// window's inputs times the kernel, written as a sum over the input entries each window reads
/// (see [`backprop_core::conv`]).
pub fn conv2d_forward(
    geometry: &Conv2dGeometry,
    input: ArrayView2<'_, f64>,
    weight: &Array2<f64>,
    bias: &Array1<f64>,
) -> Array2<f64> {
    let out = geometry.output();
    let mut output = Array2::zeros((input.nrows(), out.len()));
    for_each_conv_term(
        geometry,
        input.nrows(),
        |n, o, out_index, x_index, w_row| {
            output[[n, out_index]] += input[[n, x_index]] * weight[[w_row, o]];
        },
    );
    let positions = out.height * out.width;
    for mut row in output.rows_mut() {
        for (index, value) in row.iter_mut().enumerate() {
            *value += bias[index / positions];
        }
    }
    output
}

/// `(dL/dx, dL/dW, dL/db)` of a convolution for upstream `g`: each term
/// `x[x_index] W[w_row, o]` of output `out_index` sends `g W` to the input and `g x` to the
/// weight; the bias gets the sum of its channel's `g`.
pub fn conv2d_backward(
    geometry: &Conv2dGeometry,
    input: ArrayView2<'_, f64>,
    weight: &Array2<f64>,
    grad_output: ArrayView2<'_, f64>,
) -> (Array2<f64>, Array2<f64>, Array1<f64>) {
    let mut grad_input = Array2::zeros(input.dim());
    let mut grad_weight = Array2::zeros(weight.dim());
    for_each_conv_term(
        geometry,
        input.nrows(),
        |n, o, out_index, x_index, w_row| {
            let g = grad_output[[n, out_index]];
            grad_input[[n, x_index]] += g * weight[[w_row, o]];
            grad_weight[[w_row, o]] += g * input[[n, x_index]];
        },
    );
    let out = geometry.output();
    let positions = out.height * out.width;
    let grad_bias = Array1::from_shape_fn(out.channels, |o| {
        grad_output
            .slice(ndarray::s![.., o * positions..(o + 1) * positions])
            .sum()
    });
    (grad_input, grad_weight, grad_bias)
}

/// Calls `term(n, o, output column, input column, weight row)` for every product of a
/// convolution's forward pass (padding entries have none).
fn for_each_conv_term(
    geometry: &Conv2dGeometry,
    batch: usize,
    mut term: impl FnMut(usize, usize, usize, usize, usize),
) {
    let out = geometry.output();
    let (kh, kw) = geometry.kernel;
    for n in 0..batch {
        for o in 0..out.channels {
            for i in 0..out.height {
                for j in 0..out.width {
                    let out_index = (o * out.height + i) * out.width + j;
                    for c in 0..geometry.input.channels {
                        for p in 0..kh {
                            for q in 0..kw {
                                let row = (i * geometry.stride + p).checked_sub(geometry.padding);
                                let col = (j * geometry.stride + q).checked_sub(geometry.padding);
                                if let (Some(row), Some(col)) = (row, col)
                                    && row < geometry.input.height
                                    && col < geometry.input.width
                                {
                                    let x_index = (c * geometry.input.height + row)
                                        * geometry.input.width
                                        + col;
                                    let w_row = (c * kh + p) * kw + q;
                                    term(n, o, out_index, x_index, w_row);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `(output, dL/dx)` of max pooling for upstream `g`: each window's first maximum in row-major
/// order (PyTorch's rule for ties) gives the output and receives the gradient.
pub fn max_pool2d(
    geometry: &Pool2dGeometry,
    input: ArrayView2<'_, f64>,
    grad_output: ArrayView2<'_, f64>,
) -> (Array2<f64>, Array2<f64>) {
    let out = geometry.output();
    let (kh, kw) = geometry.kernel;
    let mut output = Array2::zeros((input.nrows(), out.len()));
    let mut grad_input = Array2::zeros(input.dim());
    for n in 0..input.nrows() {
        for c in 0..out.channels {
            for i in 0..out.height {
                for j in 0..out.width {
                    let window = (0..kh).flat_map(|p| (0..kw).map(move |q| (p, q)));
                    let winner = window
                        .map(|(p, q)| {
                            let row = i * geometry.stride + p;
                            let col = j * geometry.stride + q;
                            (c * geometry.input.height + row) * geometry.input.width + col
                        })
                        .reduce(|best, index| {
                            if input[[n, index]] > input[[n, best]] {
                                index
                            } else {
                                best
                            }
                        })
                        .expect("a window has an entry");
                    let out_index = (c * out.height + i) * out.width + j;
                    output[[n, out_index]] = input[[n, winner]];
                    grad_input[[n, winner]] += grad_output[[n, out_index]];
                }
            }
        }
    }
    (output, grad_input)
}
