//! Batch norm and layer norm in place: the statistics, x̂ and the backward over reused buffers.

use backprop_core::norm::{BATCH_NORM_MOMENTUM, NORM_EPS};
use backprop_core::{Float, Layer, Norm, NormLayer, NormMut, assert_same_shape};
use multiversion::multiversion;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Zip};

use crate::buffer::{RowBuffer, contiguous, contiguous_mut};
use crate::parallel::add_row;

/// One normalization's parameters and what its backward needs, kept in buffers that grow only
/// for a larger batch. Batch norm normalizes each feature over the rows, layer norm each row over
/// its features; both then scale by gamma and shift by beta, per feature.
///
/// Forward writes `y = gamma x̂ + beta` over the values in place and keeps x̂ and the
/// `1 / sqrt(var + eps)` of each group (feature or row). Backward turns g into dL/dz in place:
/// `dz = gamma s (g - mean(g) - x̂ mean(g x̂))` with the means over the group (batch norm in
/// evaluation: `dz = gamma s g`, the running statistics being constants).
///
/// Both run on the calling thread. Batch norm cut by halves of its features on two threads (one
/// `rayon::join` for forward's three passes, one for backward's two, the workers awake) made the
/// step slower: `examples/profile_step 128 600 2 mlp:batch:0.2` in turns, 1,079 us against 931
/// (medians of 15); perf put the passes' CPU time at 268 us a step against 56, while on one
/// thread the same code cost what this does: the time went to the two cores sharing the rows
/// (which the forward product had written on one of them), not to the arithmetic. Cut by halves
/// of its rows instead (each half's sums apart, then added, on one thread as well), it measured
/// no faster: `profile_step 128 120 2 mlp:batch:0.2`, 40 alternations, a median ratio of 0.977
/// before / after.
#[derive(Debug, Clone)]
pub(crate) struct NormState<F> {
    kind: Norm,
    pub(crate) gamma: Array1<F>,
    pub(crate) beta: Array1<F>,
    pub(crate) grad_gamma: Array1<F>,
    pub(crate) grad_beta: Array1<F>,
    /// Batch norm's running mean and unbiased running variance (empty for layer norm).
    pub(crate) running_mean: Array1<F>,
    pub(crate) running_var: Array1<F>,
    pub(crate) training: bool,
    normalized: RowBuffer<F>,
    /// s = 1 / sqrt(var + eps) per group, then scratch sums; capacity reused.
    inv_std: Vec<F>,
    sums: Vec<F>,
    sums_with_normalized: Vec<F>,
    scales: Vec<F>,
    /// Whether the last forward used the batch's statistics (batch norm in training).
    batch_statistics: bool,
}

impl<F: Float> NormState<F> {
    /// `kind` over `features` features: gamma 1, beta 0, running mean 0 and variance 1.
    pub(crate) fn new(kind: Norm, features: usize) -> Self {
        let running = if kind == Norm::Batch { features } else { 0 };
        NormState {
            kind,
            gamma: Array1::ones(features),
            beta: Array1::zeros(features),
            grad_gamma: Array1::zeros(features),
            grad_beta: Array1::zeros(features),
            running_mean: Array1::zeros(running),
            running_var: Array1::ones(running),
            training: true,
            normalized: RowBuffer::default(),
            inv_std: Vec::new(),
            sums: Vec::new(),
            sums_with_normalized: Vec::new(),
            scales: Vec::new(),
            batch_statistics: false,
        }
    }

    /// `values` (batch, features) <- gamma x̂ + beta, keeping x̂. Batch norm: the statistics per
    /// feature (two passes), then x̂ and y in one pass; layer norm: all of it a row at a time.
    /// Every loop runs over contiguous rows (the `Mlp`'s buffers are; the layer makes its input
    /// so), which the compiler vectorizes.
    #[track_caller]
    pub(crate) fn forward_inplace(&mut self, mut values: ArrayViewMut2<'_, F>) {
        let (batch, features) = values.dim();
        assert_same_shape(
            "normalization input",
            values.dim(),
            (batch, self.gamma.len()),
        );
        self.normalized.resize(batch, features);
        if self.kind == Norm::Layer {
            self.layer_norm_forward(values);
            return;
        }
        self.batch_statistics_forward(values.view());
        // x̂ = (x - mean) s, kept for backward, and y = gamma x̂ + beta, in one pass, with the
        // mean and s of each feature.
        let (gamma, beta) = (self.gamma.view(), self.beta.view());
        let (gamma, beta) = (contiguous(&gamma), contiguous(&beta));
        let mut normalized = self.normalized.view_mut();
        let rows = values.rows_mut().into_iter().zip(normalized.rows_mut());
        for (mut out, mut x_hats) in rows {
            let (out, x_hats) = (contiguous_mut(&mut out), contiguous_mut(&mut x_hats));
            normalize_row(out, x_hats, (gamma, beta), (&self.sums, &self.inv_std));
        }
    }

    /// Per feature over the rows: mean (into `sums`), biased variance, running statistics
    /// (training), s; in evaluation the running statistics.
    #[track_caller]
    fn batch_statistics_forward(&mut self, values: ArrayView2<'_, F>) {
        let (batch, features) = values.dim();
        self.batch_statistics = self.training;
        let (mean, var) = (&mut self.sums, &mut self.sums_with_normalized);
        if self.training {
            assert!(
                batch > 1,
                "BatchNorm in training needs more than one row per batch (got {batch}): one row \
                 has no variance, as PyTorch says too; use evaluation mode or a larger batch"
            );
            let rows = F::of(batch as f64);
            mean.clear();
            mean.resize(features, F::zero());
            var.clear();
            var.resize(features, F::zero());
            for row in values.rows() {
                add_row(mean, contiguous(&row));
            }
            mean.iter_mut().for_each(|m| *m /= rows);
            for row in values.rows() {
                add_squared_deviations(var, mean, contiguous(&row));
            }
            var.iter_mut().for_each(|v| *v /= rows);
            // Running statistics: 10% of the way to this batch's, the variance unbiased.
            let (momentum, keep) = (F::of(BATCH_NORM_MOMENTUM), F::of(1.0 - BATCH_NORM_MOMENTUM));
            let unbiased = rows / (rows - F::one());
            for (j, (&m, &v)) in mean.iter().zip(var.iter()).enumerate() {
                self.running_mean[j] = self.running_mean[j] * keep + m * momentum;
                self.running_var[j] = self.running_var[j] * keep + v * unbiased * momentum;
            }
        } else {
            mean.clear();
            mean.extend(self.running_mean.iter().copied());
            var.clear();
            var.extend(self.running_var.iter().copied());
        }
        self.inv_std.clear();
        let eps = F::of(NORM_EPS);
        self.inv_std
            .extend(var.iter().map(|&v| F::one() / (v + eps).sqrt()));
    }

    /// Layer norm, a row at a time: its mean (into `sums`) and s, then x̂ and y, while the row
    /// is in the first-level cache.
    fn layer_norm_forward(&mut self, mut values: ArrayViewMut2<'_, F>) {
        let (gamma, beta) = (self.gamma.view(), self.beta.view());
        let (gamma, beta) = (contiguous(&gamma), contiguous(&beta));
        let mut normalized = self.normalized.view_mut();
        self.sums.clear();
        self.inv_std.clear();
        for (mut out, mut x_hats) in values.rows_mut().into_iter().zip(normalized.rows_mut()) {
            let (out, x_hats) = (contiguous_mut(&mut out), contiguous_mut(&mut x_hats));
            let (mean, s) = layer_norm_row_forward(out, x_hats, gamma, beta);
            self.sums.push(mean);
            self.inv_std.push(s);
        }
        self.batch_statistics = true;
    }

    /// `grad` (batch, features) <- dL/dz from dL/dy, in place; dL/dgamma and dL/dbeta are added
    /// to (or, with `overwrite`, written over) the stored gradients.
    #[track_caller]
    pub(crate) fn backward_inplace(&mut self, mut grad: ArrayViewMut2<'_, F>, overwrite: bool) {
        let normalized = self.normalized.view();
        assert_same_shape("normalization backward grad", grad.dim(), normalized.dim());
        if overwrite {
            self.grad_gamma.fill(F::zero());
            self.grad_beta.fill(F::zero());
        }
        // Per feature over the rows: Σ g (dL/dbeta) and Σ g x̂ (dL/dgamma), in both kinds; batch
        // norm's backward uses the same two sums, layer norm's takes them in its own pass.
        let features = grad.ncols();
        for sums in [&mut self.sums, &mut self.sums_with_normalized] {
            sums.clear();
            sums.resize(features, F::zero());
        }
        if self.kind == Norm::Layer {
            self.row_backward(grad.view_mut());
        } else {
            let (sums, sums_xhat) = (&mut self.sums, &mut self.sums_with_normalized);
            for (g_row, x_row) in grad.rows().into_iter().zip(normalized.rows()) {
                let (g_row, x_row) = (contiguous(&g_row), contiguous(&x_row));
                add_gradient_sums((sums, sums_xhat), g_row, x_row);
            }
        }
        Zip::from(&mut self.grad_beta)
            .and(&mut self.grad_gamma)
            .and(&ArrayView1::from(&self.sums[..]))
            .and(&ArrayView1::from(&self.sums_with_normalized[..]))
            .for_each(|db, dg, &sum, &sum_x| {
                *db += sum;
                *dg += sum_x;
            });
        match (self.kind, self.batch_statistics) {
            (Norm::Batch, true) => self.batch_backward(grad.view_mut()),
            (Norm::Batch, false) => {
                let gamma = self.gamma.view();
                let gamma = contiguous(&gamma);
                for mut g_row in grad.rows_mut() {
                    scale_row(contiguous_mut(&mut g_row), gamma, &self.inv_std);
                }
            }
            _ => {} // layer norm: done above
        }
    }

    /// Batch norm through the batch statistics: per feature,
    /// `dz = gamma s (g - Σg / N - x̂ Σ(g x̂) / N)`, the two sums those of `backward_inplace`.
    fn batch_backward(&mut self, mut grad: ArrayViewMut2<'_, F>) {
        let normalized = self.normalized.view();
        let rows = F::of(grad.nrows() as f64);
        let (shift, tilt) = (&mut self.sums, &mut self.sums_with_normalized);
        // Per feature: scale = gamma s, and the two means times it; then one pass over the rows.
        self.scales.clear();
        let scales = self
            .gamma
            .iter()
            .zip(&self.inv_std)
            .map(|(&gamma, &s)| gamma * s);
        self.scales.extend(scales);
        for ((sum, sum_x), &scale) in shift.iter_mut().zip(tilt.iter_mut()).zip(&self.scales) {
            *sum = scale * *sum / rows;
            *sum_x = scale * *sum_x / rows;
        }
        for (mut g_row, x_row) in grad.rows_mut().into_iter().zip(normalized.rows()) {
            let (g_row, x_row) = (contiguous_mut(&mut g_row), contiguous(&x_row));
            batch_backward_row(g_row, x_row, (&self.scales, shift, tilt));
        }
    }

    /// Layer norm through each row's statistics: `dz = s (d - mean(d) - x̂ mean(d x̂))` with
    /// `d = gamma g`, the means over the row. One pass over a row reads g and x̂ for both its
    /// means and its share of the per-feature sums of `backward_inplace` (Σ g, Σ g x̂, in
    /// `sums` and `sums_with_normalized`), a second writes dz.
    fn row_backward(&mut self, mut grad: ArrayViewMut2<'_, F>) {
        let normalized = self.normalized.view();
        let gamma = self.gamma.view();
        let gamma = contiguous(&gamma);
        let (feature_sums, feature_sums_x) = (&mut self.sums, &mut self.sums_with_normalized);
        let rows = grad.rows_mut().into_iter().zip(normalized.rows());
        for ((mut g_row, x_row), &s) in rows.zip(&self.inv_std) {
            let (g_row, x_row) = (contiguous_mut(&mut g_row), contiguous(&x_row));
            let feature_sums = (&mut feature_sums[..], &mut feature_sums_x[..]);
            layer_norm_row_backward(g_row, (gamma, x_row, s), feature_sums);
        }
    }

    /// Views of the parameters, their gradients and the running statistics.
    pub(crate) fn params_mut(&mut self) -> NormMut<'_, F> {
        let running = (self.kind == Norm::Batch)
            .then(|| (self.running_mean.view_mut(), self.running_var.view_mut()));
        NormMut {
            gamma: self.gamma.view_mut(),
            beta: self.beta.view_mut(),
            grad_gamma: self.grad_gamma.view_mut(),
            grad_beta: self.grad_beta.view_mut(),
            running,
        }
    }
}

/// Batch norm or layer norm as a layer of its own over a `NormState` (the harness's checks use
/// it; [`Mlp`](crate::Mlp) keeps its `NormState`s beside its own buffers).
#[derive(Debug, Clone)]
pub struct NormalizationLayer<F> {
    state: NormState<F>,
}

impl<F: Float> NormalizationLayer<F> {
    /// `kind` (batch or layer) over `features` features.
    pub fn new(kind: Norm, features: usize) -> Self {
        NormalizationLayer {
            state: NormState::new(kind, features),
        }
    }
}

impl<F: Float> Layer<F> for NormalizationLayer<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        let mut output = input.as_standard_layout().into_owned();
        self.state.forward_inplace(output.view_mut());
        output
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let mut grad = grad_output.as_standard_layout().into_owned();
        self.state.backward_inplace(grad.view_mut(), false);
        grad
    }

    fn set_training(&mut self, training: bool) {
        self.state.training = training;
    }
}

impl<F: Float> NormLayer<F> for NormalizationLayer<F> {
    fn params_mut(&mut self) -> NormMut<'_, F> {
        self.state.params_mut()
    }
}

// The row kernels, each compiled for AVX-512, AVX2 and the baseline (multiversion), picked at
// run time. Batch norm's sums run per feature (one lane per feature, the rows in order), layer
// norm's in explicit lanes, and no multiply-add is fused, so every build computes the same bits.

/// Batch norm's variance pass over one row: `var[j] += (x[j] - mean[j])^2`.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn add_squared_deviations<F: Float>(var: &mut [F], mean: &[F], row: &[F]) {
    for ((v, &m), &x) in var.iter_mut().zip(mean).zip(row) {
        *v += (x - m) * (x - m);
    }
}

/// One row of batch norm forward, with each feature's `(mean, s)`: `x̂ = (x - mean) s` into
/// `x_hats`, `y = gamma x̂ + beta` over `out`.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn normalize_row<F: Float>(
    out: &mut [F],
    x_hats: &mut [F],
    (gamma, beta): (&[F], &[F]),
    (mean, inv_std): (&[F], &[F]),
) {
    let entries = out.iter_mut().zip(x_hats.iter_mut());
    let parameters = gamma.iter().zip(beta);
    let statistics = mean.iter().zip(inv_std);
    for (((y, x_hat), (&gamma, &beta)), (&mean, &s)) in entries.zip(parameters).zip(statistics) {
        *x_hat = (*y - mean) * s;
        *y = gamma * *x_hat + beta;
    }
}

/// One row's share of batch norm's per-feature sums in backward: `Σ g`, `Σ g x̂`.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn add_gradient_sums<F: Float>(
    (sums, sums_with_normalized): (&mut [F], &mut [F]),
    grad: &[F],
    normalized: &[F],
) {
    let features = sums.iter_mut().zip(sums_with_normalized.iter_mut());
    for ((sum, sum_x), (&g, &x_hat)) in features.zip(grad.iter().zip(normalized)) {
        *sum += g;
        *sum_x += g * x_hat;
    }
}

/// One row of batch norm backward: `g <- scale g - shift - x̂ tilt` per feature (scale = gamma
/// s, shift and tilt the two means times it).
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn batch_backward_row<F: Float>(
    grad: &mut [F],
    normalized: &[F],
    (scales, shifts, tilts): (&[F], &[F], &[F]),
) {
    let entries = grad.iter_mut().zip(normalized);
    let per_feature = scales.iter().zip(shifts).zip(tilts);
    for ((g, &x_hat), ((&scale, &shift), &tilt)) in entries.zip(per_feature) {
        *g = scale * *g - shift - x_hat * tilt;
    }
}

/// One row of batch norm backward in evaluation: `g <- g gamma s` per feature.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn scale_row<F: Float>(grad: &mut [F], gamma: &[F], inv_std: &[F]) {
    for ((g, &gamma), &s) in grad.iter_mut().zip(gamma).zip(inv_std) {
        *g = *g * gamma * s;
    }
}

/// One row of layer norm forward: `(mean, s)` of `out` (biased variance, s = 1 / sqrt(var +
/// eps)), then `x̂ = (x - mean) s` into `x_hats` and `y = gamma x̂ + beta` over `out`.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn layer_norm_row_forward<F: Float>(
    out: &mut [F],
    x_hats: &mut [F],
    gamma: &[F],
    beta: &[F],
) -> (F, F) {
    let width = F::of(out.len() as f64);
    let mean = sum_in_lanes(out, |x| x) / width;
    let var = sum_in_lanes(out, |x| (x - mean) * (x - mean)) / width;
    let s = F::one() / (var + F::of(NORM_EPS)).sqrt();
    let entries = out.iter_mut().zip(x_hats.iter_mut());
    for ((y, x_hat), (&gamma, &beta)) in entries.zip(gamma.iter().zip(beta)) {
        *x_hat = (*y - mean) * s;
        *y = gamma * *x_hat + beta;
    }
    (mean, s)
}

/// One row of layer norm backward: `g <- s (d - mean(d) - x̂ mean(d x̂))` with `d = gamma g`.
/// First g and g x̂ are added to the per-feature sums (dL/dbeta, dL/dgamma) and g becomes d in
/// place; then the two row sums, each in [`LANES`] partial sums (a loop of one running sum per
/// lane is what the compiler vectorizes); then dz.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2"))]
fn layer_norm_row_backward<F: Float>(
    grad: &mut [F],
    (gamma, normalized, s): (&[F], &[F], F),
    (feature_sums, feature_sums_x): (&mut [F], &mut [F]),
) {
    let width = F::of(grad.len() as f64);
    let features = feature_sums.iter_mut().zip(feature_sums_x.iter_mut());
    let entries = grad.iter_mut().zip(gamma).zip(normalized);
    for ((sum, sum_x), ((g, &gamma), &x_hat)) in features.zip(entries) {
        *sum += *g;
        *sum_x += *g * x_hat;
        *g *= gamma;
    }
    let mean = sum_in_lanes(grad, |d| d) / width;
    let mean_x = products_in_lanes(grad, normalized) / width;
    for (d, &x_hat) in grad.iter_mut().zip(normalized) {
        *d = s * (*d - mean - x_hat * mean_x);
    }
}

/// Partial sums a row reduction keeps: a sum in one running total cannot be vectorized (float
/// addition is not associative, so the compiler keeps its order), eight interleaved ones can.
const LANES: usize = 8;

/// Σ term(x) over `row`, in [`LANES`] interleaved partial sums added at the end.
#[inline(always)]
fn sum_in_lanes<F: Float>(row: &[F], term: impl Fn(F) -> F) -> F {
    let mut lanes = [F::zero(); LANES];
    let (chunks, rest) = row.as_chunks::<LANES>();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += term(x);
        }
    }
    let total = rest.iter().fold(F::zero(), |total, &x| total + term(x));
    lanes.iter().fold(total, |total, &lane| total + lane)
}

/// Σ a b over two rows, in [`LANES`] interleaved partial sums added at the end.
#[inline(always)]
fn products_in_lanes<F: Float>(a: &[F], b: &[F]) -> F {
    let mut lanes = [F::zero(); LANES];
    let (a_chunks, a_rest) = a.as_chunks::<LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<LANES>();
    for (a, b) in a_chunks.iter().zip(b_chunks) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += a * b;
        }
    }
    let rest = a_rest.iter().zip(b_rest);
    let total = rest.fold(F::zero(), |total, (&a, &b)| total + a * b);
    lanes.iter().fold(total, |total, &lane| total + lane)
}
