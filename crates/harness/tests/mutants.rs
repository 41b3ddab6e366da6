//! The harness proves it can fail: deliberately broken levels, each built by patching one
//! method of level02, must be rejected by a named check whose message names the tensor and the
//! worst entry, and every one of them must also fail gate 4 (PyTorch parity).
//!
//! | mutant              | the bug                                          | rejected by                |
//! |---------------------|--------------------------------------------------|----------------------------|
//! | `MISSING_MEAN`      | softmax-CE gradient without the 1/N               | gates 1, 2, 3              |
//! | `RELU_MASK_GE`      | ReLU mask `x >= 0`: gradient 1 at exactly 0       | edge: ReLU at 0            |
//! | `TRANSPOSED_WEIGHT` | dL/dx = g W instead of g W^T                      | gate 1 (square Linear)     |
//! | `OVERWRITE_GRAD`    | `grad = ...` instead of `grad += ...`             | edge: accumulation         |
//! | `NO_MAX_SHIFT`      | softmax as e^z / Σ e^z, no max subtracted         | edge: huge logits          |
//! | `BIAS_NOT_SUMMED`   | dL/db from the first row only, not Σ over rows    | gates 1, 2, 3              |
//! | `STALE_CACHE`       | Linear keeps the input of its first forward       | edge: latest forward       |
//! | `TANH_FROM_INPUT`   | tanh' written 1 - x^2 (input) instead of 1 - y^2  | gate 1, stress: deep and random nets |
//!
//! And the contract's holes, which pass all four gates (`every_contract_hole_is_closed`):
//!
//! | mutant                  | the bug                                         | rejected by                |
//! |-------------------------|-------------------------------------------------|----------------------------|
//! | `SIGMOID_NAIVE`         | sigmoid as e^x / (1 + e^x): NaN past x ~ 710    | edge: large inputs         |
//! | `TANH_NAIVE`            | tanh as (e^x - e^-x) / (e^x + e^-x)             | edge: large inputs         |
//! | `ROW_MAJOR_INPUT`       | Linear reads its input's memory as row-major    | edge: memory layouts       |
//! | `ZERO_GRAD_WEIGHT_ONLY` | Linear's zero_grad forgets the bias gradient    | edge: Linear zero_grad     |
//! | `MSE_BROADCAST`         | MSE broadcasts (4, 1) targets over (4, 3)       | edge: loss target shapes   |
//! | `RELU_MAX_NAN`          | ReLU as x.max(0), which turns NaN into 0        | edge: NaN propagates       |
//!
//! And ten more learner bugs for the confusion matrix (`planted_bugs_against_named_diagnoses`),
//! which runs every check on all the mutants and requires the diagnosis it names to be the planted
//! one or none: sigmoid' as y (`SIGMOID_PRIME_AS_OUTPUT`), tanh' as 1 - y
//! (`TANH_PRIME_ONE_MINUS_Y`), p / N without the one-hot (`ONEHOT_NOT_SUBTRACTED`), MSE without
//! its 2 (`MSE_MISSING_TWO`) or averaged over rows only (`MSE_MEAN_OVER_ROWS`), the loss value
//! summed (`LOSS_SUM`), ReLU masking on g (`RELU_MASK_ON_UPSTREAM`), the bias gradient assigned
//! (`BIAS_ASSIGNED`), dW divided by N again (`WEIGHT_MEAN_TWICE`), cross-entropy as -ln p
//! (`LOG_OF_SOFTMAX`). And five in the normalization layers, rejected by the `norm::` group:
//! batch norm's backward as gamma g / sqrt(var + eps), the direct path alone
//! (`BATCH_NORM_DIRECT_PATH_ONLY`), dropout's backward without the mask or without the scale
//! (`DROPOUT_BACKWARD_WITHOUT_MASK`, `DROPOUT_BACKWARD_WITHOUT_SCALE`), running statistics that
//! move in evaluation (`RUNNING_STATISTICS_IN_EVALUATION`), and a biased running variance
//! (`BIASED_RUNNING_VARIANCE`). Six in the convolution layers, and eight more learner bugs whose
//! messages once pointed the wrong way or only said where
//! (`normalization_and_misleading_cases_get_the_right_message`): batch norm over the N - 1
//! variance, without the path through the variance, dgamma without x̂, running statistics
//! without the momentum, the batch's statistics in evaluation, layer norm's direct path alone,
//! softmax shifted by the whole batch's max, and a `visit_linears` that skips the last layer
//! (p computed two ways), and batch norm without the path through the mean: 47 in all.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use backprop_core::{
    Conv2dGeometry, DropoutLayer, Float, Layer, Level, LinearLayer, LinearMut, LinearParams, Loss,
    Model, NetSpec, NormLayer, NormMut, Pool2dGeometry, Sequential, Targets,
};
use backprop_harness::diagnosis::Mistake;
use backprop_harness::{basic, conv, edge, norm, parity, stress};
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

const MISSING_MEAN: u8 = 1;
const RELU_MASK_GE: u8 = 2;
const TRANSPOSED_WEIGHT: u8 = 3;
const OVERWRITE_GRAD: u8 = 4;
const NO_MAX_SHIFT: u8 = 5;
const BIAS_NOT_SUMMED: u8 = 6;
const STALE_CACHE: u8 = 7;
const TANH_FROM_INPUT: u8 = 8;
const SIGN_FLIP: u8 = 9;
const GRAD_WEIGHT_TRANSPOSED: u8 = 10;
const SIGMOID_NAIVE: u8 = 11;
const TANH_NAIVE: u8 = 12;
const ROW_MAJOR_INPUT: u8 = 13;
const ZERO_GRAD_WEIGHT_ONLY: u8 = 14;
const MSE_BROADCAST: u8 = 15;
const RELU_MAX_NAN: u8 = 16;
const SIGMOID_PRIME_AS_OUTPUT: u8 = 17;
const TANH_PRIME_ONE_MINUS_Y: u8 = 18;
const ONEHOT_NOT_SUBTRACTED: u8 = 19;
const MSE_MISSING_TWO: u8 = 20;
const LOSS_SUM: u8 = 21;
const RELU_MASK_ON_UPSTREAM: u8 = 22;
const BIAS_ASSIGNED: u8 = 23;
const WEIGHT_MEAN_TWICE: u8 = 24;
const LOG_OF_SOFTMAX: u8 = 25;
const MSE_MEAN_OVER_ROWS: u8 = 26;
const BATCH_NORM_DIRECT_PATH_ONLY: u8 = 27;
const DROPOUT_BACKWARD_WITHOUT_MASK: u8 = 28;
const DROPOUT_BACKWARD_WITHOUT_SCALE: u8 = 29;
const RUNNING_STATISTICS_IN_EVALUATION: u8 = 30;
const BIASED_RUNNING_VARIANCE: u8 = 31;
const CONV_KERNEL_FLIPPED: u8 = 32;
const CONV_WEIGHT_GRAD_ONE_SAMPLE: u8 = 33;
const CONV_PADDING_OFF_BY_ONE_IN_BACKWARD: u8 = 34;
const CONV_STRIDE_IGNORED_IN_DX: u8 = 35;
const POOL_GRAD_TO_EVERY_ENTRY: u8 = 36;
const POOL_GRAD_TO_LAST_TIE: u8 = 37;
const BATCH_NORM_UNBIASED_VARIANCE: u8 = 38;
const BATCH_NORM_NO_VARIANCE_PATH: u8 = 39;
const GAMMA_GRAD_WITHOUT_XHAT: u8 = 40;
const RUNNING_WITHOUT_MOMENTUM: u8 = 41;
const BATCH_STATISTICS_IN_EVALUATION: u8 = 42;
const LAYER_NORM_DIRECT_PATH_ONLY: u8 = 43;
const SOFTMAX_BATCH_MAX: u8 = 44;
const VISIT_LINEARS_SKIPS_LAST: u8 = 45;
const SOFTMAX_BATCH_MAX_LOG_PROBS: u8 = 46;
const BATCH_NORM_NO_MEAN_PATH: u8 = 47;

/// level02 with a bug planted: each layer it builds takes the bug of [`planted_bug`] (0: none).
#[derive(Debug)]
struct Mutant;

impl<F: Float> Level<F> for Mutant {
    const NAME: &'static str = "mutant";
    type Linear = MutantLinear<F>;
    type Relu = MutantRelu<F>;
    type Sigmoid = MutantSigmoid<F>;
    type Tanh = MutantTanh<F>;
    type SoftmaxCrossEntropy = MutantSoftmaxCrossEntropy<F>;
    type Mse = MutantMse<F>;
    type BatchNorm = MutantBatchNorm<F>;
    type LayerNorm = MutantLayerNorm<F>;
    type Dropout = MutantDropout<F>;
    type Conv2d = MutantConv2d<F>;
    type MaxPool2d = MutantMaxPool;
    type Network = MutantNetwork<F>;

    fn linear(weight: Array2<F>, bias: Array1<F>) -> Self::Linear {
        MutantLinear {
            bug: planted_bug(),
            inner: level02::Linear::new(weight, bias),
            first_input: None,
            last_input: None,
        }
    }
    fn relu() -> Self::Relu {
        MutantRelu {
            bug: planted_bug(),
            inner: level02::Relu::default(),
            input: None,
        }
    }
    fn sigmoid() -> Self::Sigmoid {
        MutantSigmoid {
            bug: planted_bug(),
            inner: level02::Sigmoid::default(),
            output: None,
        }
    }
    fn tanh() -> Self::Tanh {
        MutantTanh {
            bug: planted_bug(),
            inner: level02::Tanh::default(),
            input: None,
        }
    }
    fn softmax_cross_entropy() -> Self::SoftmaxCrossEntropy {
        MutantSoftmaxCrossEntropy {
            bug: planted_bug(),
            inner: level02::SoftmaxCrossEntropy::default(),
            probs: None,
        }
    }
    fn mse() -> Self::Mse {
        MutantMse {
            bug: planted_bug(),
            inner: level02::Mse::default(),
            difference: None,
        }
    }
    fn batch_norm(features: usize) -> Self::BatchNorm {
        MutantBatchNorm {
            bug: planted_bug(),
            inner: level02::BatchNorm::new(features),
            input: None,
            training: true,
        }
    }
    fn layer_norm(features: usize) -> Self::LayerNorm {
        MutantLayerNorm {
            bug: planted_bug(),
            inner: level02::LayerNorm::new(features),
            input: None,
        }
    }
    fn dropout(p: f64, seed: u64) -> Self::Dropout {
        MutantDropout {
            bug: planted_bug(),
            inner: level02::Dropout::new(p, seed),
            p,
        }
    }
    fn conv2d(weight: Array2<F>, bias: Array1<F>, geometry: Conv2dGeometry) -> Self::Conv2d {
        MutantConv2d {
            bug: planted_bug(),
            grad_weight: Array2::zeros(weight.raw_dim()),
            grad_bias: Array1::zeros(bias.raw_dim()),
            weight,
            bias,
            geometry,
            input: None,
        }
    }
    fn max_pool2d(geometry: Pool2dGeometry) -> Self::MaxPool2d {
        MutantMaxPool {
            bug: planted_bug(),
            geometry,
            winners: None,
        }
    }
    fn network(params: LinearParams<F>, spec: &NetSpec) -> Self::Network {
        MutantNetwork {
            bug: planted_bug(),
            inner: Sequential::new(params, spec),
        }
    }
}

/// A convolution in loops (level01's), with the conv bugs switchable.
#[derive(Debug)]
struct MutantConv2d<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    geometry: Conv2dGeometry,
    weight: Array2<F>,
    bias: Array1<F>,
    grad_weight: Array2<F>,
    grad_bias: Array1<F>,
    input: Option<Array2<F>>,
}

/// The input (row, column) that kernel entry (p, q) of window (i, j) reads, with the given
/// stride and padding (the correct call passes the layer's own).
fn conv_source(
    geometry: &Conv2dGeometry,
    (i, j, p, q): (usize, usize, usize, usize),
    stride: usize,
    padding: usize,
) -> Option<(usize, usize)> {
    let row = (i * stride + p).checked_sub(padding)?;
    let column = (j * stride + q).checked_sub(padding)?;
    (row < geometry.input.height && column < geometry.input.width).then_some((row, column))
}

impl<F: Float> Layer<F> for MutantConv2d<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let geometry = self.geometry;
        let (out, (kh, kw)) = (geometry.output(), geometry.kernel);
        let mut output = Array2::zeros((input.nrows(), out.len()));
        for n in 0..input.nrows() {
            for o in 0..out.channels {
                for i in 0..out.height {
                    for j in 0..out.width {
                        let mut sum = self.bias[o];
                        for c in 0..geometry.input.channels {
                            for p in 0..kh {
                                for q in 0..kw {
                                    let at = (i, j, p, q);
                                    let Some((r, t)) = conv_source(
                                        &geometry,
                                        at,
                                        geometry.stride,
                                        geometry.padding,
                                    ) else {
                                        continue;
                                    };
                                    // The bug: a true convolution, the kernel flipped.
                                    let (wp, wq) = if self.bug == CONV_KERNEL_FLIPPED {
                                        (kh - 1 - p, kw - 1 - q)
                                    } else {
                                        (p, q)
                                    };
                                    sum += input[[n, geometry.input_index(c, r, t)]]
                                        * self.weight[[geometry.weight_row(c, wp, wq), o]];
                                }
                            }
                        }
                        output[[n, (o * out.height + i) * out.width + j]] = sum;
                    }
                }
            }
        }
        self.input = Some(input.to_owned());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let input = self.input.as_ref().expect("backward before forward");
        let geometry = self.geometry;
        let (out, (kh, kw)) = (geometry.output(), geometry.kernel);
        // The bugs of dx: padding shifted by one, or the stride taken as 1.
        let dx_padding = match self.bug {
            CONV_PADDING_OFF_BY_ONE_IN_BACKWARD => geometry.padding + 1,
            _ => geometry.padding,
        };
        let dx_stride = match self.bug {
            CONV_STRIDE_IGNORED_IN_DX => 1,
            _ => geometry.stride,
        };
        let mut grad_input = Array2::zeros(input.dim());
        for n in 0..input.nrows() {
            for o in 0..out.channels {
                for i in 0..out.height {
                    for j in 0..out.width {
                        let g = grad_output[[n, (o * out.height + i) * out.width + j]];
                        self.grad_bias[o] += g;
                        for c in 0..geometry.input.channels {
                            for p in 0..kh {
                                for q in 0..kw {
                                    let w_row = geometry.weight_row(c, p, q);
                                    let at = (i, j, p, q);
                                    // The bug: dW from the first sample only, no sum over n.
                                    let sums_sample =
                                        self.bug != CONV_WEIGHT_GRAD_ONE_SAMPLE || n == 0;
                                    if let Some((r, t)) = conv_source(
                                        &geometry,
                                        at,
                                        geometry.stride,
                                        geometry.padding,
                                    ) && sums_sample
                                    {
                                        self.grad_weight[[w_row, o]] +=
                                            g * input[[n, geometry.input_index(c, r, t)]];
                                    }
                                    if let Some((r, t)) =
                                        conv_source(&geometry, at, dx_stride, dx_padding)
                                    {
                                        grad_input[[n, geometry.input_index(c, r, t)]] +=
                                            g * self.weight[[w_row, o]];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        grad_input
    }
}

impl<F: Float> LinearLayer<F> for MutantConv2d<F> {
    fn params_mut(&mut self) -> LinearMut<'_, F> {
        LinearMut {
            weight: self.weight.view_mut(),
            bias: self.bias.view_mut(),
            grad_weight: self.grad_weight.view_mut(),
            grad_bias: self.grad_bias.view_mut(),
        }
    }
}

/// One output of a max pool: the input column that won, and every column of its window.
type Window = (usize, Vec<usize>);

/// Max pooling in loops, with the pooling bugs switchable.
#[derive(Debug)]
struct MutantMaxPool {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    geometry: Pool2dGeometry,
    /// Each sample's windows, in output order.
    winners: Option<Vec<Vec<Window>>>,
}

impl<F: Float> Layer<F> for MutantMaxPool {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let geometry = self.geometry;
        let (out, (kh, kw)) = (geometry.output(), geometry.kernel);
        let mut output = Array2::zeros((input.nrows(), out.len()));
        let mut winners = Vec::new();
        for n in 0..input.nrows() {
            let mut sample = Vec::new();
            for c in 0..out.channels {
                for i in 0..out.height {
                    for j in 0..out.width {
                        let window: Vec<usize> = (0..kh)
                            .flat_map(|p| (0..kw).map(move |q| geometry.source(c, i, j, p, q)))
                            .collect();
                        let mut best = window[0];
                        for &index in &window {
                            let (value, max) = (input[[n, index]], input[[n, best]]);
                            // The bug: `>=` keeps the last of tied maxima, not the first.
                            let replaces = if self.bug == POOL_GRAD_TO_LAST_TIE {
                                value >= max
                            } else {
                                value > max
                            };
                            if replaces {
                                best = index;
                            }
                        }
                        output[[n, (c * out.height + i) * out.width + j]] = input[[n, best]];
                        sample.push((best, window));
                    }
                }
            }
            winners.push(sample);
        }
        self.winners = Some(winners);
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let winners = self.winners.as_ref().expect("backward before forward");
        let mut grad_input = Array2::zeros((winners.len(), self.geometry.input.len()));
        for (n, sample) in winners.iter().enumerate() {
            for (out_index, (best, window)) in sample.iter().enumerate() {
                let g = grad_output[[n, out_index]];
                if self.bug == POOL_GRAD_TO_EVERY_ENTRY {
                    // The bug: the gradient to every entry of the window.
                    for &index in window {
                        grad_input[[n, index]] += g;
                    }
                } else {
                    grad_input[[n, *best]] += g;
                }
            }
        }
        grad_input
    }
}

#[derive(Debug)]
struct MutantLinear<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::Linear<F>,
    first_input: Option<Array2<F>>,
    last_input: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for MutantLinear<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        if let (ROW_MAJOR_INPUT, Some(memory)) = (self.bug, input.as_slice_memory_order()) {
            // The bug: the input's memory read as if it were row-major.
            let reread = ArrayView2::from_shape(input.dim(), memory).unwrap();
            self.last_input = Some(reread.to_owned());
            return self.inner.forward(reread);
        }
        let output = self.inner.forward(input);
        self.last_input = Some(input.to_owned());
        if self.bug == STALE_CACHE {
            // The bug: the cache is filled once and never refreshed.
            match &self.first_input {
                Some(stale) => {
                    self.inner.forward(stale.view());
                }
                None => self.first_input = Some(input.to_owned()),
            }
        }
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        if self.bug == OVERWRITE_GRAD {
            self.inner.zero_grad(); // the bug: `=` where the rule says `+=`
        }
        let grad_input = self.inner.backward(grad_output);
        let mut params = self.inner.params_mut();
        match self.bug {
            BIAS_NOT_SUMMED => {
                // The bug: db += g[0] instead of db += Σ_rows g.
                params.grad_bias -= &grad_output.sum_axis(Axis(0));
                params.grad_bias += &grad_output.row(0);
                grad_input
            }
            TRANSPOSED_WEIGHT => {
                // The bug: dx = g W. It only type-checks when W is square, as in ndarray.
                grad_output.dot(&params.weight)
            }
            BIAS_ASSIGNED => {
                // The bug: db = Σ_rows g, replacing what earlier backwards accumulated.
                params.grad_bias.assign(&grad_output.sum_axis(Axis(0)));
                grad_input
            }
            WEIGHT_MEAN_TWICE => {
                // The bug: dW += x^T g / N, the loss gradient already holding the 1/N.
                let input = self.last_input.as_ref().unwrap();
                let right = input.t().dot(&grad_output);
                let batch = F::of(input.nrows() as f64);
                params.grad_weight -= &right;
                params.grad_weight += &(right / batch);
                grad_input
            }
            GRAD_WEIGHT_TRANSPOSED => {
                // g^T x instead of x^T g. It only fits W's shape when W is square; elsewhere
                // the learner's code would stop on the shapes, so the mutant leaves it alone.
                let grad_weight = &mut params.grad_weight;
                if grad_weight.is_square() {
                    let input = self.last_input.as_ref().unwrap();
                    let right = input.t().dot(&grad_output);
                    *grad_weight -= &right;
                    *grad_weight += &right.t();
                }
                grad_input
            }
            _ => grad_input,
        }
    }
}

impl<F: Float> LinearLayer<F> for MutantLinear<F> {
    fn params_mut(&mut self) -> LinearMut<'_, F> {
        self.inner.params_mut()
    }

    fn zero_grad(&mut self) {
        let mut params = self.inner.params_mut();
        params.grad_weight.fill(F::zero());
        if self.bug != ZERO_GRAD_WEIGHT_ONLY {
            params.grad_bias.fill(F::zero()); // the bug: this line forgotten
        }
    }
}

#[derive(Debug)]
struct MutantSigmoid<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::Sigmoid<F>,
    output: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for MutantSigmoid<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        if self.bug != SIGMOID_NAIVE {
            let output = self.inner.forward(input);
            self.output = Some(output.clone());
            return output;
        }
        // The bug: e^x / (1 + e^x) is inf / inf = NaN once e^x overflows.
        let output = input.mapv(|x| x.exp() / (F::one() + x.exp()));
        self.output = Some(output.clone());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        match &self.output {
            Some(y) if self.bug == SIGMOID_NAIVE => &grad_output * &y.mapv(|y| y * (F::one() - y)),
            // The bug: sigmoid' written as y where it is y (1 - y).
            Some(y) if self.bug == SIGMOID_PRIME_AS_OUTPUT => &grad_output * y,
            _ => self.inner.backward(grad_output),
        }
    }
}

#[derive(Debug)]
struct MutantMse<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::Mse<F>,
    difference: Option<Array2<F>>,
}

impl<F: Float> Loss<F> for MutantMse<F> {
    fn forward(&mut self, predictions: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        let Targets::Values(values) = targets else {
            return self.inner.forward(predictions, targets);
        };
        if self.bug != MSE_BROADCAST {
            return self.inner.forward(predictions, targets);
        }
        // The bug: no shape check, so ndarray broadcasts (4, 1) targets over (4, 3).
        let difference = &predictions - &values;
        let loss = difference.mapv(|d| d * d).sum() / F::of(difference.len() as f64);
        self.difference = Some(difference);
        loss
    }

    fn backward(&mut self) -> Array2<F> {
        match &self.difference {
            Some(difference) if self.bug == MSE_BROADCAST => {
                difference * F::of(2.0 / difference.len() as f64)
            }
            _ => {
                let grad = self.inner.backward();
                match self.bug {
                    // The bug: (p - t) / (N M), the 2 of d(p - t)^2/dp forgotten.
                    MSE_MISSING_TWO => grad / F::of(2.0),
                    // The bug: 2 (p - t) / N, the mean taken over the rows only.
                    MSE_MEAN_OVER_ROWS => {
                        let columns = F::of(grad.ncols() as f64);
                        grad * columns
                    }
                    _ => grad,
                }
            }
        }
    }
}

#[derive(Debug)]
struct MutantRelu<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::Relu<F>,
    input: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for MutantRelu<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.input = Some(input.to_owned());
        let output = self.inner.forward(input);
        if self.bug == RELU_MAX_NAN {
            // The bug: max(NaN, 0) is 0, so a NaN input becomes a clean 0.
            return input.mapv(|x| x.max(F::zero()));
        }
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        if self.bug == RELU_MASK_ON_UPSTREAM {
            // The bug: the mask tests the upstream gradient, not the input.
            self.inner.backward(grad_output);
            return grad_output.mapv(|g| if g > F::zero() { g } else { F::zero() });
        }
        if self.bug != RELU_MASK_GE {
            return self.inner.backward(grad_output);
        }
        // The bug: `x >= 0` lets the gradient through at exactly 0 (as `clamp` does).
        let input = self.input.as_ref().unwrap();
        Zip::from(&grad_output)
            .and(input)
            .map_collect(|&grad, &x| if x >= F::zero() { grad } else { F::zero() })
    }
}

#[derive(Debug)]
struct MutantTanh<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::Tanh<F>,
    input: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for MutantTanh<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.input = Some(input.to_owned());
        if self.bug == TANH_NAIVE {
            // The bug: (e^x - e^-x) / (e^x + e^-x) is inf / inf = NaN once e^x overflows.
            return input.mapv(|x| (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()));
        }
        self.inner.forward(input)
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        if self.bug == TANH_NAIVE {
            let input = self.input.as_ref().unwrap();
            let output = input.mapv(|x| (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()));
            return &grad_output * &output.mapv(|y| F::one() - y * y);
        }
        if self.bug == TANH_PRIME_ONE_MINUS_Y {
            // The bug: tanh' written as 1 - y where it is 1 - y^2.
            let output = self.input.as_ref().unwrap().mapv(F::tanh);
            return &grad_output * &output.mapv(|y| F::one() - y);
        }
        if self.bug != TANH_FROM_INPUT {
            return self.inner.backward(grad_output);
        }
        // The bug: the derivative written in terms of the input x, not the output y = tanh x.
        let input = self.input.as_ref().unwrap();
        &grad_output * &input.mapv(|x| F::one() - x * x)
    }
}

#[derive(Debug)]
struct MutantSoftmaxCrossEntropy<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::SoftmaxCrossEntropy<F>,
    /// For NO_MAX_SHIFT: (probabilities, targets) of the unshifted softmax; for
    /// ONEHOT_NOT_SUBTRACTED: (logits, targets).
    probs: Option<(Array2<F>, Vec<usize>)>,
}

impl<F: Float> Loss<F> for MutantSoftmaxCrossEntropy<F> {
    fn forward(&mut self, logits: ArrayView2<'_, F>, targets: Targets<'_, F>) -> F {
        let value = self.inner.forward(logits, targets);
        let classes = targets.expect_classes(logits.dim()).to_vec();
        let batch = F::of(classes.len() as f64);
        match self.bug {
            // The bug: the loss summed over the batch, not its mean.
            LOSS_SUM => return value * batch,
            // The bug: ln of the (max-shifted) probability, which underflows to 0.
            LOG_OF_SOFTMAX => {
                let max = logits.fold_axis(Axis(1), F::neg_infinity(), |&m, &z| m.max(z));
                let exp = (&logits - &max.insert_axis(Axis(1))).mapv(F::exp);
                let probs = &exp / &exp.sum_axis(Axis(1)).insert_axis(Axis(1));
                let picked: F = (0..classes.len())
                    .map(|row| probs[[row, classes[row]]].ln())
                    .sum();
                return -picked / batch;
            }
            ONEHOT_NOT_SUBTRACTED => {
                self.probs = Some((logits.to_owned(), classes));
                return value;
            }
            // The bug: one shift for the whole batch, its largest logit; p = e^(z - max) / Σ
            // (0 / 0 in a row far below that max), or p = e^(log p) (e^(+inf) there).
            SOFTMAX_BATCH_MAX | SOFTMAX_BATCH_MAX_LOG_PROBS => {
                let max = logits.fold(F::neg_infinity(), |m, &z| m.max(z));
                let exp = logits.mapv(|z| (z - max).exp());
                let sums = exp.sum_axis(Axis(1));
                let log_probs = logits.mapv(|z| z - max) - &sums.mapv(F::ln).insert_axis(Axis(1));
                let picked: F = (0..classes.len())
                    .map(|row| log_probs[[row, classes[row]]])
                    .sum();
                let probs = match self.bug {
                    SOFTMAX_BATCH_MAX => &exp / &sums.insert_axis(Axis(1)),
                    _ => log_probs.mapv(F::exp),
                };
                self.probs = Some((probs, classes));
                return -picked / batch;
            }
            NO_MAX_SHIFT => {}
            _ => return value,
        }
        // The bug: p = e^z / Σ e^z straight away; e^(1e4) overflows to inf, inf/inf = NaN.
        let targets = targets.expect_classes(logits.dim());
        let exp = logits.mapv(F::exp);
        let probs = &exp / &exp.sum_axis(Axis(1)).insert_axis(Axis(1));
        let picked: F = targets
            .iter()
            .enumerate()
            .map(|(row, &t)| probs[[row, t]].ln())
            .sum();
        self.probs = Some((probs, targets.to_vec()));
        -picked / F::of(targets.len() as f64)
    }

    fn backward(&mut self) -> Array2<F> {
        match self.bug {
            MISSING_MEAN => {
                // The bug: (p - onehot) without the 1/N, i.e. N times too large.
                let grad = self.inner.backward();
                let batch = F::of(grad.nrows() as f64);
                grad * batch
            }
            SIGN_FLIP => -self.inner.backward(),
            ONEHOT_NOT_SUBTRACTED => {
                // The bug: p / N, the one-hot never subtracted.
                let (_, targets) = self.probs.as_ref().unwrap();
                let mut grad = self.inner.backward();
                let batch = F::of(targets.len() as f64);
                for (row, &target) in targets.iter().enumerate() {
                    grad[[row, target]] += F::one() / batch;
                }
                grad
            }
            NO_MAX_SHIFT | SOFTMAX_BATCH_MAX | SOFTMAX_BATCH_MAX_LOG_PROBS => {
                let (probs, targets) = self.probs.as_ref().unwrap();
                let mut grad = probs.clone();
                for (row, &target) in targets.iter().enumerate() {
                    grad[[row, target]] -= F::one();
                }
                grad / F::of(targets.len() as f64)
            }
            _ => self.inner.backward(),
        }
    }
}

#[derive(Debug)]
struct MutantBatchNorm<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::BatchNorm<F>,
    /// The last forward's input.
    input: Option<Array2<F>>,
    training: bool,
}

impl<F: Float> MutantBatchNorm<F> {
    /// gamma (x - mean) / sqrt(var + eps) + beta.
    fn affine(&mut self, x: &ArrayView2<'_, F>, mean: &Array1<F>, var: &Array1<F>) -> Array2<F> {
        let params = self.inner.params_mut();
        let inv_std = var.mapv(|v| F::one() / (v + F::of(1e-5)).sqrt());
        (x - mean) * &inv_std * &params.gamma + &params.beta
    }

    /// Each feature's mean and biased variance over the rows of the last input.
    fn batch_statistics(&self) -> (Array1<F>, Array1<F>) {
        let input = self.input.as_ref().unwrap();
        let rows = F::of(input.nrows() as f64);
        let mean = input.sum_axis(Axis(0)) / rows;
        let var = (input - &mean).mapv(|d| d * d).sum_axis(Axis(0)) / rows;
        (mean, var)
    }
}

impl<F: Float> Layer<F> for MutantBatchNorm<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.input = Some(input.to_owned());
        let momentum = F::of(0.1);
        if self.bug == BATCH_STATISTICS_IN_EVALUATION && !self.training {
            // The bug: evaluation normalizes with the batch's statistics, as training does.
            assert!(
                input.nrows() > 1,
                "BatchNorm needs more than one row per batch (got 1): use evaluation mode or a \
                 larger batch"
            );
            let (mean, var) = self.batch_statistics();
            return self.affine(&input, &mean, &var);
        }
        if self.bug == RUNNING_STATISTICS_IN_EVALUATION && !self.training {
            // The bug: the running statistics move in evaluation too.
            let (mean, var) = self.batch_statistics();
            let params = self.inner.params_mut();
            let (mut running_mean, mut running_var) = params.running.unwrap();
            running_mean.zip_mut_with(&mean, |r, &m| *r = *r * F::of(0.9) + m * momentum);
            running_var.zip_mut_with(&var, |r, &v| *r = *r * F::of(0.9) + v * momentum);
        }
        let output = self.inner.forward(input);
        if self.bug == BIASED_RUNNING_VARIANCE && self.training {
            // The bug: the running variance takes the biased batch variance (no N / (N - 1)).
            let (_, var) = self.batch_statistics();
            let rows = F::of(input.nrows() as f64);
            let (_, mut running_var) = self.inner.params_mut().running.unwrap();
            running_var.zip_mut_with(&var, |r, &v| *r -= momentum * v / (rows - F::one()));
        }
        if self.bug == RUNNING_WITHOUT_MOMENTUM && self.training {
            // The bug: the running statistics take the batch's, no blend.
            let (mean, var) = self.batch_statistics();
            let rows = F::of(input.nrows() as f64);
            let (mut running_mean, mut running_var) = self.inner.params_mut().running.unwrap();
            running_mean.assign(&mean);
            running_var.assign(&(var * rows / (rows - F::one())));
        }
        if self.bug == BATCH_NORM_UNBIASED_VARIANCE && self.training {
            // The bug: x normalized by the unbiased variance (over N - 1).
            let (mean, var) = self.batch_statistics();
            let rows = F::of(input.nrows() as f64);
            return self.affine(&input, &mean, &(var * rows / (rows - F::one())));
        }
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let grad_input = self.inner.backward(grad_output);
        if !self.training {
            return grad_input;
        }
        let (mean, var) = self.batch_statistics();
        let inv_std = var.mapv(|v| F::one() / (v + F::of(1e-5)).sqrt());
        let xhat = (self.input.as_ref().unwrap() - &mean) * &inv_std;
        if self.bug == GAMMA_GRAD_WITHOUT_XHAT {
            // The bug: dL/dgamma += Σ g, x̂ left out.
            let mut params = self.inner.params_mut();
            let right = (&grad_output * &xhat).sum_axis(Axis(0));
            params.grad_gamma -= &right;
            params.grad_gamma += &grad_output.sum_axis(Axis(0));
            return grad_input;
        }
        if self.bug == BATCH_NORM_NO_MEAN_PATH {
            // The bug: dx = s (d - x̂ mean(d x̂)), the path through the mean forgotten.
            let gamma = self.inner.params_mut().gamma.to_owned();
            let d = &grad_output * &gamma;
            let rows = F::of(d.nrows() as f64);
            let mean_d_xhat = (&d * &xhat).sum_axis(Axis(0)) / rows;
            return (d - &xhat * &mean_d_xhat) * inv_std;
        }
        if self.bug == BATCH_NORM_NO_VARIANCE_PATH {
            // The bug: dx = s (d - mean d), the path through the variance forgotten.
            let gamma = self.inner.params_mut().gamma.to_owned();
            let d = &grad_output * &gamma;
            let mean_d = d.sum_axis(Axis(0)) / F::of(d.nrows() as f64);
            return (d - mean_d) * inv_std;
        }
        if self.bug != BATCH_NORM_DIRECT_PATH_ONLY {
            return grad_input;
        }
        // The bug: dx = gamma g / sqrt(var + eps), the paths through the mean and the variance
        // forgotten.
        let gamma = self.inner.params_mut().gamma.to_owned();
        &grad_output * &(gamma * inv_std)
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.inner.set_training(training);
    }
}

impl<F: Float> NormLayer<F> for MutantBatchNorm<F> {
    fn params_mut(&mut self) -> NormMut<'_, F> {
        self.inner.params_mut()
    }
}

#[derive(Debug)]
struct MutantLayerNorm<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::LayerNorm<F>,
    input: Option<Array2<F>>,
}

impl<F: Float> Layer<F> for MutantLayerNorm<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.input = Some(input.to_owned());
        self.inner.forward(input)
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let grad_input = self.inner.backward(grad_output);
        if self.bug != LAYER_NORM_DIRECT_PATH_ONLY {
            return grad_input;
        }
        // The bug: dx = gamma g / sqrt(var + eps) with each row's variance, the paths through
        // the row's mean and variance forgotten.
        let input = self.input.as_ref().unwrap();
        let features = F::of(input.ncols() as f64);
        let mean = (input.sum_axis(Axis(1)) / features).insert_axis(Axis(1));
        let var =
            ((input - &mean).mapv(|d| d * d).sum_axis(Axis(1)) / features).insert_axis(Axis(1));
        let gamma = self.inner.params_mut().gamma.to_owned();
        &grad_output * &gamma / &var.mapv(|v| (v + F::of(1e-5)).sqrt())
    }
}

impl<F: Float> NormLayer<F> for MutantLayerNorm<F> {
    fn params_mut(&mut self) -> NormMut<'_, F> {
        self.inner.params_mut()
    }
}

/// The network of [`Mutant`]'s layers, with `visit_linears` switchable.
#[derive(Debug)]
struct MutantNetwork<F: Float> {
    /// The planted bug (0: none), fixed when the network is built.
    bug: u8,
    inner: Sequential<F, Mutant>,
}

impl<F: Float> Model<F> for MutantNetwork<F> {
    fn activation(&self) -> backprop_core::Activation {
        self.inner.activation()
    }
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.inner.forward(input)
    }
    fn loss(&mut self, targets: Targets<'_, F>) -> F {
        self.inner.loss(targets)
    }
    fn backward(&mut self) -> Array2<F> {
        self.inner.backward()
    }
    fn backward_params_only(&mut self) {
        self.inner.backward_params_only();
    }
    fn visit_linears(&mut self, mut visit: impl FnMut(usize, LinearMut<'_, F>)) {
        let mut count = 0;
        self.inner.visit_linears(|_, _| count += 1);
        let bug = self.bug;
        self.inner.visit_linears(|index, layer| {
            // The bug: the last Linear layer is never handed out.
            if bug != VISIT_LINEARS_SKIPS_LAST || index + 1 < count {
                visit(index, layer);
            }
        });
    }
    fn visit_norms(&mut self, visit: impl FnMut(usize, NormMut<'_, F>)) {
        self.inner.visit_norms(visit);
    }
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training);
    }
}

#[derive(Debug)]
struct MutantDropout<F> {
    /// The planted bug (0: none), fixed when the layer is built.
    bug: u8,
    inner: level02::Dropout<F>,
    p: f64,
}

impl<F: Float> Layer<F> for MutantDropout<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.inner.forward(input)
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let grad_input = self.inner.backward(grad_output);
        let scale = F::of(1.0 / (1.0 - self.p));
        match self.bug {
            // The bug: the scale without the mask, so dropped units get a gradient.
            DROPOUT_BACKWARD_WITHOUT_MASK if grad_input != grad_output => {
                grad_output.mapv(|g| g * scale)
            }
            // The bug: the mask without the 1 / (1 - p) scale.
            DROPOUT_BACKWARD_WITHOUT_SCALE => grad_input.mapv(|g| g / scale),
            _ => grad_input,
        }
    }

    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training);
    }
}

impl<F: Float> DropoutLayer<F> for MutantDropout<F> {
    fn fix_mask(&mut self, keep: Option<Array2<bool>>) {
        self.inner.fix_mask(keep);
    }
}

thread_local! {
    /// The bug the next mutant layers built on this thread get (see [`WithBug::run`]).
    static PLANTED: Cell<u8> = const { Cell::new(0) };
}

/// The bug a mutant layer built now gets. Read once, when the layer is built: a network built
/// here and run on other threads keeps its bug.
fn planted_bug() -> u8 {
    PLANTED.with(Cell::get)
}

/// A check to run against [`Mutant`] with bug `bug` planted. One `Mutant` type serves every
/// bug (a bug chosen at run time, not a type per bug), so each check is compiled once for it,
/// not once per bug: the test binary builds in a fraction of the time.
#[derive(Debug, Clone, Copy)]
struct WithBug {
    bug: u8,
    check: fn(),
}

fn with_bug(bug: u8, check: fn()) -> WithBug {
    WithBug { bug, check }
}

impl WithBug {
    /// Runs the check with the bug planted in every mutant layer it builds on this thread (the
    /// previous bug back afterwards, also when the check panics). Thread-local, so tests running
    /// side by side do not see each other's bugs.
    fn run(self) {
        struct Restore(u8);
        impl Drop for Restore {
            fn drop(&mut self) {
                PLANTED.with(|planted| planted.set(self.0));
            }
        }
        let _restore = Restore(PLANTED.with(|planted| planted.replace(self.bug)));
        (self.check)();
    }
}

thread_local! {
    /// Panics on this thread are expected and reported by the caller ([`failures_of`]).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs each check and returns its panic message, or `None` where it passed. The checks panic on
/// purpose: their messages stay out of the log while they run, and the callers report them.
///
/// The panic hook is process-wide and tests run side by side, so it is never swapped back and
/// forth: one hook, installed once, stays silent only for a thread inside this function.
fn failures_of(checks: impl IntoIterator<Item = WithBug>) -> Vec<Option<String>> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default_hook(info);
            }
        }));
    });
    checks
        .into_iter()
        .map(|check| {
            QUIET.with(|quiet| quiet.set(true));
            let outcome = catch_unwind(AssertUnwindSafe(|| check.run()));
            QUIET.with(|quiet| quiet.set(false));
            outcome.err().map(|payload| {
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
                    .unwrap_or_default()
            })
        })
        .collect()
}

/// (mutant, check name, check, the tensor its message must name).
type Case = (&'static str, &'static str, WithBug, &'static str);

#[test]
fn every_mutant_is_rejected_by_a_named_check() {
    let cases: Vec<Case> = vec![
        (
            "missing 1/N",
            "basic::gate1_single_layer_backward",
            with_bug(MISSING_MEAN, basic::gate1_single_layer_backward::<Mutant>),
            "dL/dlogits",
        ),
        (
            "missing 1/N",
            "basic::gate2_multi_layer_backward",
            with_bug(MISSING_MEAN, basic::gate2_multi_layer_backward::<Mutant>),
            "dL/dlinear",
        ),
        (
            "missing 1/N",
            "basic::gate3_finite_differences_layers",
            with_bug(
                MISSING_MEAN,
                basic::gate3_finite_differences_layers::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "missing 1/N",
            "basic::gate3_finite_differences_mlp",
            with_bug(MISSING_MEAN, basic::gate3_finite_differences_mlp::<Mutant>),
            "dL/dinput",
        ),
        (
            ">= in the ReLU mask",
            "edge::relu_at_exactly_zero_has_zero_gradient",
            with_bug(
                RELU_MASK_GE,
                edge::relu_at_exactly_zero_has_zero_gradient::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "W instead of W^T in grad_input",
            "basic::gate1_single_layer_backward",
            with_bug(
                TRANSPOSED_WEIGHT,
                basic::gate1_single_layer_backward::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "= instead of +=",
            "edge::gradients_accumulate_until_zero_grad",
            with_bug(
                OVERWRITE_GRAD,
                edge::gradients_accumulate_until_zero_grad::<Mutant>,
            ),
            "dL/dlinear0.weight",
        ),
        (
            "softmax without the max shift",
            "edge::huge_logits_give_finite_loss_and_gradient",
            with_bug(
                NO_MAX_SHIFT,
                edge::huge_logits_give_finite_loss_and_gradient::<Mutant>,
            ),
            "dL/dlogits",
        ),
        (
            "bias gradient not summed over the batch",
            "basic::gate1_single_layer_backward",
            with_bug(
                BIAS_NOT_SUMMED,
                basic::gate1_single_layer_backward::<Mutant>,
            ),
            "dL/dbias",
        ),
        (
            "bias gradient not summed over the batch",
            "basic::gate2_multi_layer_backward",
            with_bug(BIAS_NOT_SUMMED, basic::gate2_multi_layer_backward::<Mutant>),
            "bias",
        ),
        (
            "bias gradient not summed over the batch",
            "basic::gate3_finite_differences_layers",
            with_bug(
                BIAS_NOT_SUMMED,
                basic::gate3_finite_differences_layers::<Mutant>,
            ),
            "dL/dbias",
        ),
        (
            "stale cache",
            "edge::backward_uses_the_latest_forward",
            with_bug(
                STALE_CACHE,
                edge::backward_uses_the_latest_forward::<Mutant>,
            ),
            "dL/dlinear",
        ),
        (
            "tanh' from the input",
            "basic::gate1_single_layer_backward",
            with_bug(
                TANH_FROM_INPUT,
                basic::gate1_single_layer_backward::<Mutant>,
            ),
            "tanh: dL/dinput",
        ),
        (
            "tanh' from the input",
            "stress::deep_tanh_mlp_passes_finite_differences",
            with_bug(
                TANH_FROM_INPUT,
                stress::deep_tanh_mlp_passes_finite_differences::<Mutant>,
            ),
            "dL/d",
        ),
        (
            "tanh' from the input",
            "stress::random_shapes_pass_finite_differences",
            with_bug(
                TANH_FROM_INPUT,
                stress::random_shapes_pass_finite_differences::<Mutant>,
            ),
            "tanh MLP",
        ),
        // Gate 4: every mutant also fails PyTorch parity.
        (
            "missing 1/N",
            "basic::gate4_pytorch_losses",
            with_bug(MISSING_MEAN, parity::gate4_pytorch_losses::<Mutant>),
            "dL/dinput",
        ),
        (
            "missing 1/N",
            "basic::gate4_pytorch_mlps",
            with_bug(MISSING_MEAN, parity::gate4_pytorch_mlps::<Mutant>),
            "dL/dlinear",
        ),
        (
            ">= in the ReLU mask",
            "basic::gate4_pytorch_layers",
            with_bug(RELU_MASK_GE, parity::gate4_pytorch_layers::<Mutant>),
            "dL/dinput",
        ),
        (
            ">= in the ReLU mask",
            "basic::gate4_pytorch_mlps",
            with_bug(RELU_MASK_GE, parity::gate4_pytorch_mlps::<Mutant>),
            "dL/d",
        ),
        (
            "W instead of W^T in grad_input",
            "basic::gate4_pytorch_layers",
            with_bug(TRANSPOSED_WEIGHT, parity::gate4_pytorch_layers::<Mutant>),
            "dL/dinput",
        ),
        (
            "= instead of +=",
            "basic::gate4_pytorch_training",
            with_bug(OVERWRITE_GRAD, parity::gate4_pytorch_training::<Mutant>),
            "dL/dlinear",
        ),
        (
            "softmax without the max shift",
            "basic::gate4_pytorch_losses",
            with_bug(NO_MAX_SHIFT, parity::gate4_pytorch_losses::<Mutant>),
            "dL/dinput",
        ),
        (
            "bias gradient not summed over the batch",
            "basic::gate4_pytorch_layers",
            with_bug(BIAS_NOT_SUMMED, parity::gate4_pytorch_layers::<Mutant>),
            "dL/dbias",
        ),
        (
            "stale cache",
            "basic::gate4_pytorch_training",
            with_bug(STALE_CACHE, parity::gate4_pytorch_training::<Mutant>),
            "loss at each step",
        ),
        (
            "tanh' from the input",
            "basic::gate4_pytorch_layers",
            with_bug(TANH_FROM_INPUT, parity::gate4_pytorch_layers::<Mutant>),
            "dL/dinput",
        ),
    ];

    // All eight bugs are covered.
    assert_rejected_by_named_checks(&cases, 8);
}

/// Runs every case; each must fail with a message naming its tensor and the worst entry, and
/// the cases must cover `mutants` distinct bugs.
fn assert_rejected_by_named_checks(cases: &[Case], mutants: usize) {
    let outcomes = failures_of(cases.iter().map(|case| case.2));
    let mut problems = Vec::new();
    for ((mutant, check, _, tensor), outcome) in cases.iter().zip(&outcomes) {
        match outcome {
            None => problems.push(format!("{mutant}: {check} passed, it should have failed")),
            Some(message) if !(message.contains(tensor) && message.contains("worst entry")) => {
                problems.push(format!(
                    "{mutant}: {check} failed, but its message does not name {tensor:?} and \
                     the worst entry: {message}"
                ))
            }
            Some(message) => println!("{mutant:<42} rejected by {check}:\n    {message}"),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let covered: std::collections::BTreeSet<_> = cases.iter().map(|case| case.0).collect();
    assert_eq!(covered.len(), mutants);
}

/// The convolution mutants: each rejected by a `conv::` check whose message names the tensor
/// that differs and its worst entry, and by PyTorch's fixtures.
#[test]
fn every_conv_mutant_is_rejected_by_a_named_check() {
    let cases: Vec<Case> = vec![
        (
            "kernel flipped in forward",
            "conv::conv_matches_reference",
            with_bug(CONV_KERNEL_FLIPPED, conv::conv_matches_reference::<Mutant>),
            "output",
        ),
        (
            "kernel flipped in forward",
            "conv::gate6_pytorch_convolution",
            with_bug(
                CONV_KERNEL_FLIPPED,
                parity::gate6_pytorch_convolution::<Mutant>,
            ),
            "output",
        ),
        (
            "dW without the sum over the batch",
            "conv::conv_matches_reference",
            with_bug(
                CONV_WEIGHT_GRAD_ONE_SAMPLE,
                conv::conv_matches_reference::<Mutant>,
            ),
            "dL/dweight",
        ),
        (
            "dW without the sum over the batch",
            "conv::conv_passes_finite_differences",
            with_bug(
                CONV_WEIGHT_GRAD_ONE_SAMPLE,
                conv::conv_passes_finite_differences::<Mutant>,
            ),
            "weight",
        ),
        (
            "dW without the sum over the batch",
            "conv::gate6_pytorch_convolution",
            with_bug(
                CONV_WEIGHT_GRAD_ONE_SAMPLE,
                parity::gate6_pytorch_convolution::<Mutant>,
            ),
            "dL/dweight",
        ),
        (
            "padding off by one in backward",
            "conv::conv2d_matches_hand_computation",
            with_bug(
                CONV_PADDING_OFF_BY_ONE_IN_BACKWARD,
                conv::conv2d_matches_hand_computation::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "padding off by one in backward",
            "conv::gate6_pytorch_convolution",
            with_bug(
                CONV_PADDING_OFF_BY_ONE_IN_BACKWARD,
                parity::gate6_pytorch_convolution::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "stride ignored in dx",
            "conv::conv2d_matches_hand_computation",
            with_bug(
                CONV_STRIDE_IGNORED_IN_DX,
                conv::conv2d_matches_hand_computation::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "stride ignored in dx",
            "conv::conv_passes_finite_differences",
            with_bug(
                CONV_STRIDE_IGNORED_IN_DX,
                conv::conv_passes_finite_differences::<Mutant>,
            ),
            "input",
        ),
        (
            "stride ignored in dx",
            "conv::gate6_pytorch_convolution",
            with_bug(
                CONV_STRIDE_IGNORED_IN_DX,
                parity::gate6_pytorch_convolution::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "max-pool gradient to every entry",
            "conv::max_pool_matches_hand_computation",
            with_bug(
                POOL_GRAD_TO_EVERY_ENTRY,
                conv::max_pool_matches_hand_computation::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "max-pool gradient to every entry",
            "conv::conv_passes_finite_differences",
            with_bug(
                POOL_GRAD_TO_EVERY_ENTRY,
                conv::conv_passes_finite_differences::<Mutant>,
            ),
            "input",
        ),
        (
            "max-pool gradient to the last tied entry",
            "conv::max_pool_matches_hand_computation",
            with_bug(
                POOL_GRAD_TO_LAST_TIE,
                conv::max_pool_matches_hand_computation::<Mutant>,
            ),
            "dL/dinput",
        ),
        (
            "max-pool gradient to the last tied entry",
            "conv::gate6_pytorch_convolution",
            with_bug(
                POOL_GRAD_TO_LAST_TIE,
                parity::gate6_pytorch_convolution::<Mutant>,
            ),
            "dL/dinput",
        ),
    ];
    assert_rejected_by_named_checks(&cases, 6);
}

/// The contract's holes: each mutant passes all four gates (which is why these checks exist)
/// and is rejected by the edge check written for it, whose message says what went wrong.
#[test]
fn every_contract_hole_is_closed() {
    // (mutant, its edge check, the gates, what the message says, whether the gates pass)
    type Hole = (&'static str, WithBug, WithBug, &'static str, bool);
    let holes: [Hole; 6] = [
        (
            "sigmoid as e^x / (1 + e^x)",
            with_bug(
                SIGMOID_NAIVE,
                edge::activations_stay_finite_at_large_inputs::<Mutant>,
            ),
            with_bug(SIGMOID_NAIVE, all_gates::<Mutant>),
            "sigmoid in f32 at x = 8.9e1: output is NaN",
            true,
        ),
        (
            "tanh as (e^x - e^-x) / (e^x + e^-x)",
            with_bug(
                TANH_NAIVE,
                edge::activations_stay_finite_at_large_inputs::<Mutant>,
            ),
            with_bug(TANH_NAIVE, all_gates::<Mutant>),
            "tanh in f32 at x = -1e4: output is NaN",
            true,
        ),
        (
            "Linear reads its input's memory as row-major",
            with_bug(
                ROW_MAJOR_INPUT,
                edge::layers_accept_any_memory_layout::<Mutant>,
            ),
            with_bug(ROW_MAJOR_INPUT, all_gates::<Mutant>),
            "Linear(4, 3) output with a column-major input",
            true,
        ),
        (
            "Linear's zero_grad forgets the bias gradient",
            with_bug(
                ZERO_GRAD_WEIGHT_ONLY,
                edge::linear_zero_grad_clears_both_gradients::<Mutant>,
            ),
            with_bug(ZERO_GRAD_WEIGHT_ONLY, all_gates::<Mutant>),
            "dL/dbias is",
            false, // gate 4's training fixtures zero through each layer's zero_grad
        ),
        (
            "MSE broadcasts its targets",
            with_bug(
                MSE_BROADCAST,
                edge::loss_targets_must_match_the_predictions::<Mutant>,
            ),
            with_bug(MSE_BROADCAST, all_gates::<Mutant>),
            "MSE of (4, 3) predictions against (4, 1) targets: expected a panic, but it returned",
            true,
        ),
        (
            "ReLU as x.max(0)",
            with_bug(RELU_MAX_NAN, edge::activations_propagate_nan::<Mutant>),
            with_bug(RELU_MAX_NAN, all_gates::<Mutant>),
            "relu of NaN gave 0, not NaN",
            true,
        ),
    ];
    let rejections = failures_of(holes.iter().map(|hole| hole.1));
    let gates = failures_of(holes.iter().map(|hole| hole.2));
    let mut problems = Vec::new();
    for ((mutant, _, _, fragment, passes_gates), (rejection, gate)) in
        holes.iter().zip(rejections.iter().zip(&gates))
    {
        if let (true, Some(failure)) = (passes_gates, gate) {
            problems.push(format!(
                "{mutant}: expected to pass the four gates, failed: {failure}"
            ));
        }
        match rejection {
            Some(message) if message.contains(fragment) => {
                let gates = if gate.is_none() {
                    "passes gates 1-4"
                } else {
                    "fails gate 4 too"
                };
                println!("{mutant:<46} {gates}, rejected by edge:\n    {message}")
            }
            Some(message) => {
                problems.push(format!("{mutant}: message lacks {fragment:?}: {message}"))
            }
            None => problems.push(format!("{mutant}: its edge check passed")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every check of gates 1 to 4.
fn all_gates<L: Level<f32> + Level<f64>>() {
    basic::gate1_single_layer_backward::<L>();
    basic::gate2_multi_layer_backward::<L>();
    basic::gate3_finite_differences_layers::<L>();
    basic::gate3_finite_differences_mlp::<L>();
    parity::gate4_pytorch_layers::<L>();
    parity::gate4_pytorch_losses::<L>();
    parity::gate4_pytorch_mlps::<L>();
    parity::gate4_pytorch_training::<L>();
}

/// The unmutated wrapper (bug 0) passes the same checks, so the rejections above come from the
/// planted bugs and not from the wrapping.
#[test]
fn the_wrapper_without_a_bug_passes_the_same_checks() {
    basic::gate1_single_layer_backward::<Mutant>();
    basic::gate2_multi_layer_backward::<Mutant>();
    basic::gate3_finite_differences_layers::<Mutant>();
    basic::gate3_finite_differences_mlp::<Mutant>();
    edge::relu_at_exactly_zero_has_zero_gradient::<Mutant>();
    edge::gradients_accumulate_until_zero_grad::<Mutant>();
    edge::huge_logits_give_finite_loss_and_gradient::<Mutant>();
    edge::backward_uses_the_latest_forward::<Mutant>();
    edge::activations_stay_finite_at_large_inputs::<Mutant>();
    edge::activations_propagate_nan::<Mutant>();
    edge::layers_accept_any_memory_layout::<Mutant>();
    edge::linear_zero_grad_clears_both_gradients::<Mutant>();
    edge::loss_targets_must_match_the_predictions::<Mutant>();
    stress::deep_tanh_mlp_passes_finite_differences::<Mutant>();
    stress::random_shapes_pass_finite_differences::<Mutant>();
    parity::gate4_pytorch_layers::<Mutant>();
    parity::gate4_pytorch_losses::<Mutant>();
    parity::gate4_pytorch_mlps::<Mutant>();
    parity::gate4_pytorch_training::<Mutant>();
    for (_, check) in every_check::<Mutant>() {
        check();
    }
}

/// ReLU with gradient 1 at exactly 0 (what `clamp(min=0)` gives, and what `x >= 0` in the mask
/// gives) passes finite differences but fails PyTorch parity.
///
/// At x = 0 ReLU has no derivative: the central difference (f(h) - f(-h)) / 2h sees one side
/// with slope 1 and one with slope 0, and measures their average, 1/2, which matches neither
/// convention. So the finite-difference gate must treat such an entry as a kink and skip it, and
/// random inputs never land on exactly 0 anyway. Only a check of the convention itself can tell
/// gradient 0 from gradient 1 there: PyTorch's `F.relu` gives 0, and the fixtures hold inputs
/// and pre-activations of exactly 0.
#[test]
fn relu_gradient_one_at_zero_passes_finite_differences_but_fails_pytorch_parity() {
    with_bug(
        RELU_MASK_GE,
        basic::gate3_finite_differences_layers::<Mutant>,
    )
    .run();
    with_bug(RELU_MASK_GE, basic::gate3_finite_differences_mlp::<Mutant>).run();
    with_bug(
        RELU_MASK_GE,
        stress::random_shapes_pass_finite_differences::<Mutant>,
    )
    .run();

    let [layers, networks]: [Option<String>; 2] = failures_of([
        with_bug(RELU_MASK_GE, parity::gate4_pytorch_layers::<Mutant>),
        with_bug(RELU_MASK_GE, parity::gate4_pytorch_mlps::<Mutant>),
    ])
    .try_into()
    .expect("two outcomes");

    let layers = layers.expect("gate 4 should reject ReLU with gradient 1 at 0 (layer fixture)");
    assert!(
        layers.contains("layer_relu_f64") && layers.contains("dL/dinput"),
        "{layers}"
    );
    let networks = networks.expect("gate 4 should reject it on the zero pre-activation fixture");
    assert!(
        networks.contains("mlp_relu_zero_preactivations_f64"),
        "{networks}"
    );
    println!("{layers}\n{networks}");
}

/// Every mistake pattern the harness names, each from a mutant through a real check: the message
/// must carry the diagnosis (in words, with the numbers) and the hint file, beside the tensor,
/// the worst entry, ours and the reference.
#[test]
fn failures_name_the_mistake_and_the_hint() {
    // (mutant, check, the mistake its message must name)
    type Diagnosed = (&'static str, WithBug, Mistake);
    let cases: Vec<Diagnosed> = vec![
        (
            "missing 1/N",
            with_bug(MISSING_MEAN, basic::gate1_single_layer_backward::<Mutant>),
            Mistake::MissingMean,
        ),
        (
            "flipped sign",
            with_bug(SIGN_FLIP, basic::gate1_single_layer_backward::<Mutant>),
            Mistake::SignFlip,
        ),
        (
            "bias not summed",
            with_bug(
                BIAS_NOT_SUMMED,
                basic::gate1_single_layer_backward::<Mutant>,
            ),
            Mistake::BiasNotSummed,
        ),
        (
            "g^T x for x^T g",
            with_bug(
                GRAD_WEIGHT_TRANSPOSED,
                parity::gate4_pytorch_layers::<Mutant>,
            ),
            Mistake::TransposedProduct,
        ),
        (
            ">= in the ReLU mask",
            with_bug(
                RELU_MASK_GE,
                edge::relu_at_exactly_zero_has_zero_gradient::<Mutant>,
            ),
            Mistake::ReluMaskAtZero,
        ),
        (
            "= instead of +=",
            with_bug(
                OVERWRITE_GRAD,
                edge::gradients_accumulate_until_zero_grad::<Mutant>,
            ),
            Mistake::Overwrite,
        ),
        (
            "no max shift",
            with_bug(
                NO_MAX_SHIFT,
                edge::huge_logits_give_finite_loss_and_gradient::<Mutant>,
            ),
            Mistake::NoMaxShift,
        ),
    ];
    let outcomes = failures_of(cases.iter().map(|case| case.1));
    let mut problems = Vec::new();
    for ((mutant, _, mistake), outcome) in cases.iter().zip(&outcomes) {
        match outcome {
            None => problems.push(format!("{mutant}: the check passed")),
            Some(message)
                if Mistake::named_in(message) == [*mistake]
                    && message.contains(mistake.hint())
                    && message.contains("worst entry") =>
            {
                println!("{mutant}:\n    {message}\n")
            }
            Some(message) => problems.push(format!(
                "{mutant}: expected the diagnosis {mistake:?} and {}, got: {message}",
                mistake.hint()
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every check a learner's crate meets in `backprop check`, in its order: the four gates, then
/// the edge checks and the stress checks that take no MNIST training run.
fn every_check<L: Level<f32> + Level<f64>>() -> Vec<(&'static str, fn())> {
    macro_rules! named {
        ($($group:ident::$check:ident),* $(,)?) => {
            vec![$((concat!(stringify!($group), "::", stringify!($check)), $group::$check::<L> as fn())),*]
        };
    }
    named![
        basic::linear_forward_matches_hand_computation,
        basic::linear_backward_matches_hand_computation,
        basic::relu_matches_hand_computation,
        basic::sigmoid_matches_hand_computation,
        basic::tanh_matches_hand_computation,
        basic::softmax_cross_entropy_matches_hand_computation,
        basic::mse_matches_hand_computation,
        basic::gate1_single_layer_backward,
        basic::gate2_multi_layer_backward,
        basic::gate3_finite_differences_layers,
        basic::gate3_finite_differences_mlp,
        parity::gate4_pytorch_layers,
        parity::gate4_pytorch_losses,
        parity::gate4_pytorch_mlps,
        parity::gate4_pytorch_training,
        edge::batch_of_one,
        edge::empty_batch_layers_give_empty_outputs,
        edge::empty_batch_loss_panics,
        edge::zero_inputs,
        edge::relu_at_exactly_zero_has_zero_gradient,
        edge::huge_logits_give_finite_loss_and_gradient,
        edge::all_targets_same_class,
        edge::single_output_class,
        edge::out_of_range_target_panics,
        edge::nan_input_propagates_to_the_loss,
        edge::into_forms_agree_with_allocating_forms,
        edge::gradients_accumulate_until_zero_grad,
        edge::backward_uses_the_latest_forward,
        edge::shape_mismatch_panics_with_both_shapes,
        edge::activations_stay_finite_at_large_inputs,
        edge::activations_propagate_nan,
        edge::layers_accept_any_memory_layout,
        edge::linear_zero_grad_clears_both_gradients,
        edge::loss_targets_must_match_the_predictions,
        stress::deep_tanh_mlp_passes_finite_differences,
        stress::random_shapes_pass_finite_differences,
        stress::wide_layers_match_reference,
        norm::batch_norm_matches_hand_computation,
        norm::normalization_matches_reference,
        norm::normalization_passes_finite_differences,
        norm::batch_norm_refuses_one_row_in_training,
        norm::constant_features_stay_finite,
        norm::normalized_mlp_passes_finite_differences,
        norm::evaluation_mode_turns_dropout_off,
        parity::gate5_pytorch_normalization,
        conv::conv2d_matches_hand_computation,
        conv::max_pool_matches_hand_computation,
        conv::conv_matches_reference,
        conv::conv_passes_finite_differences,
        conv::cnn_passes_finite_differences,
        conv::one_by_one_conv_is_linear_on_each_pixel,
        conv::kernel_as_large_as_the_input_is_linear,
        conv::kernel_larger_than_the_padded_input_is_refused,
        conv::conv_gradients_accumulate_and_into_forms_agree,
        conv::cnn_training_reduces_the_loss,
        parity::gate6_pytorch_convolution,
    ]
}

/// The confusion matrix of planted bugs against named diagnoses: every planted bug is rejected,
/// and across every check it fails, the harness names the planted mistake or no mistake at all,
/// never another one. Where a diagnosis exists for the planted mistake, it is named at least once.
#[test]
fn planted_bugs_against_named_diagnoses() {
    use Mistake::*;
    // (the planted bug, the mistake the harness should name for it, or None: no diagnosis fits)
    type Planted = (&'static str, Option<Mistake>, u8);
    let planted: Vec<Planted> = vec![
        (
            "softmax-CE gradient without 1/N",
            Some(MissingMean),
            MISSING_MEAN,
        ),
        ("ReLU mask x >= 0", Some(ReluMaskAtZero), RELU_MASK_GE),
        ("dL/dx = g W", Some(TransposedWeight), TRANSPOSED_WEIGHT),
        ("= instead of += in Linear", Some(Overwrite), OVERWRITE_GRAD),
        (
            "softmax without the max shift",
            Some(NoMaxShift),
            NO_MAX_SHIFT,
        ),
        (
            "dL/db from the first row",
            Some(BiasNotSummed),
            BIAS_NOT_SUMMED,
        ),
        ("Linear keeps its first input", None, STALE_CACHE),
        (
            "tanh' as 1 - x^2",
            Some(DerivativeFromInput),
            TANH_FROM_INPUT,
        ),
        ("onehot - p for p - onehot", Some(SignFlip), SIGN_FLIP),
        (
            "dL/dW = g^T x",
            Some(TransposedProduct),
            GRAD_WEIGHT_TRANSPOSED,
        ),
        ("sigmoid as e^x / (1 + e^x)", None, SIGMOID_NAIVE),
        ("tanh as (e^x - e^-x) / (e^x + e^-x)", None, TANH_NAIVE),
        ("Linear reads memory as row-major", None, ROW_MAJOR_INPUT),
        ("zero_grad forgets the bias", None, ZERO_GRAD_WEIGHT_ONLY),
        ("MSE broadcasts its targets", None, MSE_BROADCAST),
        ("ReLU as x.max(0)", None, RELU_MAX_NAN),
        (
            "sigmoid' as y",
            Some(WrongLocalDerivative),
            SIGMOID_PRIME_AS_OUTPUT,
        ),
        (
            "tanh' as 1 - y",
            Some(WrongLocalDerivative),
            TANH_PRIME_ONE_MINUS_Y,
        ),
        (
            "softmax-CE gradient p / N",
            Some(OnehotNotSubtracted),
            ONEHOT_NOT_SUBTRACTED,
        ),
        (
            "MSE gradient without its 2",
            Some(MseMissingTwo),
            MSE_MISSING_TWO,
        ),
        (
            "cross-entropy summed, not averaged",
            Some(LossNotMean),
            LOSS_SUM,
        ),
        (
            "ReLU mask on g > 0",
            Some(ReluMaskOnUpstream),
            RELU_MASK_ON_UPSTREAM,
        ),
        ("dL/db = instead of +=", Some(Overwrite), BIAS_ASSIGNED),
        (
            "dL/dW divided by N again",
            Some(MeanTwice),
            WEIGHT_MEAN_TWICE,
        ),
        (
            "cross-entropy as -ln p[target]",
            Some(LogOfUnderflow),
            LOG_OF_SOFTMAX,
        ),
        (
            "MSE mean over rows only",
            Some(MissingMean),
            MSE_MEAN_OVER_ROWS,
        ),
        (
            "batch norm backward: gamma g s only",
            Some(NormPathMissing),
            BATCH_NORM_DIRECT_PATH_ONLY,
        ),
        (
            "dropout backward without the mask",
            Some(DropoutWithoutMask),
            DROPOUT_BACKWARD_WITHOUT_MASK,
        ),
        (
            "dropout backward without the scale",
            Some(DropoutWithoutScale),
            DROPOUT_BACKWARD_WITHOUT_SCALE,
        ),
        (
            "running statistics move in evaluation",
            None,
            RUNNING_STATISTICS_IN_EVALUATION,
        ),
        (
            "biased running variance",
            Some(BiasedRunningVariance),
            BIASED_RUNNING_VARIANCE,
        ),
        (
            "conv kernel flipped (a true convolution)",
            None,
            CONV_KERNEL_FLIPPED,
        ),
        (
            "conv dW from the first sample only",
            None,
            CONV_WEIGHT_GRAD_ONE_SAMPLE,
        ),
        (
            "conv dx with the padding off by one",
            None,
            CONV_PADDING_OFF_BY_ONE_IN_BACKWARD,
        ),
        (
            "conv dx with the stride ignored",
            None,
            CONV_STRIDE_IGNORED_IN_DX,
        ),
        (
            "max-pool gradient to every entry",
            None,
            POOL_GRAD_TO_EVERY_ENTRY,
        ),
        (
            "max-pool gradient to the last tie",
            None,
            POOL_GRAD_TO_LAST_TIE,
        ),
        (
            "batch norm over the N - 1 variance",
            Some(NormUnbiasedVariance),
            BATCH_NORM_UNBIASED_VARIANCE,
        ),
        (
            "batch norm dx without the variance path",
            Some(NormPathMissing),
            BATCH_NORM_NO_VARIANCE_PATH,
        ),
        (
            "dL/dgamma as Σ g",
            Some(GammaGradWithoutNormalized),
            GAMMA_GRAD_WITHOUT_XHAT,
        ),
        (
            "running statistics = the batch's",
            Some(RunningWithoutMomentum),
            RUNNING_WITHOUT_MOMENTUM,
        ),
        (
            "batch statistics in evaluation",
            Some(BatchStatisticsInEvaluation),
            BATCH_STATISTICS_IN_EVALUATION,
        ),
        (
            "layer norm backward: gamma g s only",
            Some(NormPathMissing),
            LAYER_NORM_DIRECT_PATH_ONLY,
        ),
        (
            "softmax shifted by the batch's max",
            Some(BatchMaxShift),
            SOFTMAX_BATCH_MAX,
        ),
        (
            "visit_linears skips the last layer",
            None,
            VISIT_LINEARS_SKIPS_LAST,
        ),
        (
            "softmax shifted by the batch's max, p = e^(log p)",
            Some(BatchMaxShift),
            SOFTMAX_BATCH_MAX_LOG_PROBS,
        ),
        (
            "batch norm dx without the mean path",
            Some(NormPathMissing),
            BATCH_NORM_NO_MEAN_PATH,
        ),
    ];
    assert!(planted.len() >= 20);

    let mut problems = Vec::new();
    let (mut right, mut absent) = (0, 0);
    println!(
        "{:<38} {:<22} {:>6}  named (failing checks)",
        "planted bug", "expected diagnosis", "fails"
    );
    // Every check on every mutant, the mutants split over two threads (each plants its own
    // bug: the bug is thread-local), then reported in order.
    let checks = every_check::<Mutant>();
    let run_all =
        |number: u8| failures_of(checks.iter().map(|&(_, check)| with_bug(number, check)));
    let mut outcomes: Vec<(usize, Vec<Option<String>>)> = std::thread::scope(|scope| {
        let halves: Vec<_> = (0..2)
            .map(|half| {
                let (run_all, planted) = (&run_all, &planted);
                scope.spawn(move || {
                    (half..planted.len())
                        .step_by(2)
                        .map(|index| (index, run_all(planted[index].2)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|half| half.join().expect("a mutant thread"))
            .collect()
    });
    outcomes.sort_by_key(|&(index, _)| index);
    for (&(bug, expected, _), (_, failures)) in planted.iter().zip(outcomes) {
        let failing: Vec<(&str, &String)> = checks
            .iter()
            .zip(&failures)
            .filter_map(|((name, _), failure)| failure.as_ref().map(|message| (*name, message)))
            .collect();
        let mut named: std::collections::BTreeMap<Mistake, usize> = Default::default();
        let mut undiagnosed = 0;
        for (check, message) in &failing {
            let mistakes = Mistake::named_in(message);
            undiagnosed += usize::from(mistakes.is_empty());
            for mistake in mistakes {
                *named.entry(mistake).or_default() += 1;
                if Some(mistake) != expected {
                    problems.push(format!("{bug}: {check} names {mistake:?}: {message}"));
                }
            }
        }
        right += named
            .iter()
            .filter(|(m, _)| Some(**m) == expected)
            .map(|(_, n)| n)
            .sum::<usize>();
        absent += undiagnosed;
        if failing.is_empty() {
            problems.push(format!("{bug}: every check passed"));
        }
        if let Some(mistake) = expected.filter(|mistake| !named.contains_key(mistake)) {
            problems.push(format!("{bug}: no failing check names {mistake:?}"));
        }
        let mut cells: Vec<String> = named.iter().map(|(m, n)| format!("{m:?} ({n})")).collect();
        cells.push(format!("none ({undiagnosed})"));
        let expected = expected.map_or("none".to_string(), |m| format!("{m:?}"));
        let first = failing.first().map_or("", |(check, _)| check);
        println!(
            "{bug:<38} {expected:<22} {:>6}  {} (first: {first})",
            failing.len(),
            cells.join(", ")
        );
    }
    println!(
        "{} planted bugs, all rejected: {right} failing checks name the planted mistake, {absent} \
         name none, {} name a wrong one",
        planted.len(),
        problems.iter().filter(|p| p.contains(" names ")).count()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The learner's mistakes of round two, each through the check a learner meets first: the
/// message must name the planted mistake (and its hint) or, where the evidence singles out no
/// formula, say the fact that points the right way.
#[test]
fn normalization_and_misleading_cases_get_the_right_message() {
    // (mutant, check, the mistake it must name (None: none may be named), words it must contain)
    type Expected = (
        &'static str,
        WithBug,
        Option<Mistake>,
        &'static [&'static str],
    );
    let cases: Vec<Expected> = vec![
        (
            "batch norm backward: direct path only",
            with_bug(
                BATCH_NORM_DIRECT_PATH_ONLY,
                norm::batch_norm_matches_hand_computation::<Mutant>,
            ),
            Some(Mistake::NormPathMissing),
            &["direct path alone", "dL/dinput"],
        ),
        (
            "batch norm backward: no variance path",
            with_bug(
                BATCH_NORM_NO_VARIANCE_PATH,
                norm::batch_norm_matches_hand_computation::<Mutant>,
            ),
            Some(Mistake::NormPathMissing),
            &["no path through the variance"],
        ),
        (
            "batch norm backward: no mean path",
            with_bug(
                BATCH_NORM_NO_MEAN_PATH,
                norm::normalization_matches_reference::<Mutant>,
            ),
            Some(Mistake::NormPathMissing),
            &["no path through the mean"],
        ),
        (
            "batch norm over the N - 1 variance",
            with_bug(
                BATCH_NORM_UNBIASED_VARIANCE,
                norm::batch_norm_matches_hand_computation::<Mutant>,
            ),
            Some(Mistake::NormUnbiasedVariance),
            &["var over N - 1", "output"],
        ),
        (
            "dL/dgamma without x̂",
            with_bug(
                GAMMA_GRAD_WITHOUT_XHAT,
                norm::normalization_matches_reference::<Mutant>,
            ),
            Some(Mistake::GammaGradWithoutNormalized),
            &["dL/dgamma", "without x̂"],
        ),
        (
            "dL/dgamma without x̂, inside a network",
            with_bug(
                GAMMA_GRAD_WITHOUT_XHAT,
                norm::normalized_mlp_passes_finite_differences::<Mutant>,
            ),
            None,
            &["with batch norm", "dL/dnorm0.gamma"],
        ),
        (
            "running statistics without the momentum",
            with_bug(
                RUNNING_WITHOUT_MOMENTUM,
                norm::batch_norm_matches_hand_computation::<Mutant>,
            ),
            Some(Mistake::RunningWithoutMomentum),
            &["running mean", "no running average"],
        ),
        (
            "biased running variance",
            with_bug(
                BIASED_RUNNING_VARIANCE,
                norm::batch_norm_matches_hand_computation::<Mutant>,
            ),
            Some(Mistake::BiasedRunningVariance),
            &["running variance", "not N - 1"],
        ),
        (
            "layer norm backward: direct path only",
            with_bug(
                LAYER_NORM_DIRECT_PATH_ONLY,
                norm::normalization_matches_reference::<Mutant>,
            ),
            Some(Mistake::NormPathMissing),
            &["layer norm", "direct path alone"],
        ),
        (
            "dropout backward without the mask",
            with_bug(
                DROPOUT_BACKWARD_WITHOUT_MASK,
                norm::normalization_matches_reference::<Mutant>,
            ),
            Some(Mistake::DropoutWithoutMask),
            &["the mask left out"],
        ),
        (
            "dropout backward without the scale",
            with_bug(
                DROPOUT_BACKWARD_WITHOUT_SCALE,
                norm::normalization_matches_reference::<Mutant>,
            ),
            Some(Mistake::DropoutWithoutScale),
            &["g m, without the 1 / (1 - p)"],
        ),
        (
            "batch statistics in evaluation (more than one row)",
            with_bug(
                BATCH_STATISTICS_IN_EVALUATION,
                norm::normalization_matches_reference::<Mutant>,
            ),
            Some(Mistake::BatchStatisticsInEvaluation),
            &["batch norm (evaluation)", "batch mean"],
        ),
        (
            "batch statistics in evaluation (one row: the level's own panic)",
            with_bug(
                BATCH_STATISTICS_IN_EVALUATION,
                norm::batch_norm_refuses_one_row_in_training::<Mutant>,
            ),
            None,
            &[
                "on one row in evaluation",
                "normalizes with its running mean and variance, never the batch's",
            ],
        ),
        (
            "softmax shifted by the batch's max",
            with_bug(SOFTMAX_BATCH_MAX, parity::gate4_pytorch_losses::<Mutant>),
            Some(Mistake::BatchMaxShift),
            &["each row's own largest logit"],
        ),
        (
            "softmax shifted by the batch's max, p = e^(log p)",
            with_bug(
                SOFTMAX_BATCH_MAX_LOG_PROBS,
                parity::gate4_pytorch_losses::<Mutant>,
            ),
            Some(Mistake::BatchMaxShift),
            &["ours inf", "each row's own largest logit"],
        ),
        (
            "visit_linears skips the last layer",
            with_bug(
                VISIT_LINEARS_SKIPS_LAST,
                basic::gate2_multi_layer_backward::<Mutant>,
            ),
            None,
            &[
                "visit_linears visited 2 Linear layer(s)",
                "5 input features to 4 logits",
            ],
        ),
    ];
    let outcomes = failures_of(cases.iter().map(|case| case.1));
    let mut problems = Vec::new();
    for ((mutant, _, mistake, words), outcome) in cases.iter().zip(&outcomes) {
        let Some(message) = outcome else {
            problems.push(format!("{mutant}: the check passed"));
            continue;
        };
        let named = Mistake::named_in(message);
        let right_mistake = match mistake {
            Some(mistake) => named == [*mistake] && message.contains(mistake.hint()),
            None => named.is_empty(),
        };
        let missing: Vec<&&str> = words.iter().filter(|w| !message.contains(**w)).collect();
        if right_mistake && missing.is_empty() && !message.contains("logits has shape") {
            println!("{mutant}:\n    {message}\n");
        } else {
            problems.push(format!(
                "{mutant}: expected {mistake:?} and the words {missing:?}, got: {message}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
