//! The contracts of the layers that normalize and drop: batch norm, layer norm and dropout, and
//! the conventions every level shares for them (PyTorch's).
//!
//! | PyTorch                                   | backprop                                    |
//! |-------------------------------------------|---------------------------------------------|
//! | `nn.BatchNorm1d(n)` (eps 1e-5, momentum 0.1) | [`Level::batch_norm`] |
//! | `nn.LayerNorm(n)` (eps 1e-5)              | [`Level::layer_norm`] |
//! | `nn.Dropout(p)`                           | [`Level::dropout`]   |
//! | `bn.weight`, `bn.bias`                    | [`NormMut::gamma`], [`NormMut::beta`]       |
//! | `bn.running_mean`, `bn.running_var`       | [`NormMut::running`]                        |
//! | `model.train()`, `model.eval()`           | [`Layer::set_training`], [`Model::set_training`] |
//!
//! **Batch norm**, per feature j over the N rows of the batch, in training:
//! mu = mean_i x_ij, var = mean_i (x_ij - mu)^2 (biased), x̂ = (x - mu) / sqrt(var + eps),
//! y = gamma x̂ + beta; then running_mean <- (1 - m) running_mean + m mu and running_var <-
//! (1 - m) running_var + m var N / (N - 1) (unbiased), m = 0.1. In evaluation it normalizes with
//! the running statistics instead and updates nothing. A training batch of one row has no
//! variance: the layer panics, as PyTorch raises.
//!
//! **Layer norm**: the same over the features of each row (its own mean and biased variance),
//! no running statistics, identical in training and evaluation.
//!
//! **Dropout(p)**, inverted: in training y = x m / (1 - p) with m_ij = 1 kept, 0 dropped; in
//! evaluation y = x. The masks come from the layer's own [`DropoutMasks`], a counter-based
//! stream decided by its seed, so every level draws the same masks from the same seed;
//! [`DropoutLayer::fix_mask`] replaces them (finite differences, PyTorch's fixtures).

use multiversion::multiversion;
use ndarray::{Array2, ArrayViewMut1, Axis};

use crate::Float;
use crate::layer::{Layer, LinearMut};
#[cfg(doc)]
use crate::{Level, Model};

/// PyTorch's eps for both normalizations.
pub const NORM_EPS: f64 = 1e-5;
/// PyTorch's momentum for batch norm's running statistics.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// A normalization layer's parameters and their gradients, as views.
#[derive(Debug)]
pub struct NormMut<'a, F> {
    /// gamma `(features,)`, the scale (PyTorch's `weight`, initially 1).
    pub gamma: ArrayViewMut1<'a, F>,
    /// beta `(features,)`, the shift (PyTorch's `bias`, initially 0).
    pub beta: ArrayViewMut1<'a, F>,
    /// dL/dgamma, accumulated until `zero_grad`.
    pub grad_gamma: ArrayViewMut1<'a, F>,
    /// dL/dbeta, accumulated until `zero_grad`.
    pub grad_beta: ArrayViewMut1<'a, F>,
    /// Batch norm's running mean and unbiased running variance (initially 0 and 1); `None`
    /// for layer norm.
    pub running: Option<(ArrayViewMut1<'a, F>, ArrayViewMut1<'a, F>)>,
}

impl<'a, F> NormMut<'a, F> {
    /// gamma and beta as a one-row weight `(1, features)` and a bias, the shape optimizers and
    /// checkpoints handle (PyTorch names them `weight` and `bias` too).
    pub fn into_linear(self) -> LinearMut<'a, F> {
        LinearMut {
            weight: self.gamma.insert_axis(Axis(0)),
            bias: self.beta,
            grad_weight: self.grad_gamma.insert_axis(Axis(0)),
            grad_bias: self.grad_beta,
        }
    }
}

/// Batch norm or layer norm: a layer with gamma and beta.
pub trait NormLayer<F: Float>: Layer<F> {
    /// Views of gamma, beta, their gradients and (batch norm) the running statistics.
    fn params_mut(&mut self) -> NormMut<'_, F>;

    /// Sets dL/dgamma and dL/dbeta to zero.
    fn zero_grad(&mut self) {
        let params = self.params_mut();
        let (mut grad_gamma, mut grad_beta) = (params.grad_gamma, params.grad_beta);
        grad_gamma.fill(F::zero());
        grad_beta.fill(F::zero());
    }
}

/// Dropout: a layer whose training forward draws a mask that its backward must reuse.
pub trait DropoutLayer<F: Float>: Layer<F> {
    /// With `Some(keep)`, every training forward from now on uses `keep` (true: kept) as its
    /// mask instead of drawing one; `None` goes back to drawing.
    ///
    /// # Panics
    /// A later forward panics if the input's shape is not the mask's.
    fn fix_mask(&mut self, keep: Option<Array2<bool>>);
}

/// The dropout masks of one layer, one after another, from a counter-based generator.
///
/// The layer's stream of draws is u_0, u_1, ...: u_2k and u_2k+1 are the low and high 32 bits
/// of SplitMix64's output for counter k under the layer's key (from its seed). Masks take the
/// stream in turn, each row-major: entry n of a mask is kept when its draw u >= ceil(p 2^32),
/// with probability 1 - p (to 2^-32). Each entry is a pure function of the seed and its place
/// in the stream, a few multiplications: a level can fill a mask in any order, on any number of
/// threads, fused into another pass, and every level draws the same masks from the same seed.
#[derive(Debug, Clone)]
pub struct DropoutMasks {
    key: u64,
    /// The place in the stream of the next mask's first entry.
    next: u64,
    /// ceil(p 2^32): a draw below it is a dropped unit.
    threshold: u64,
}

/// One mask of a [`DropoutMasks`] stream: [`DropoutMask::keeps`] gives each of its entries.
#[derive(Debug, Clone, Copy)]
pub struct DropoutMask {
    key: u64,
    first: u64,
    threshold: u64,
}

impl DropoutMasks {
    /// The masks of dropout probability `p` drawn from `seed`.
    ///
    /// # Panics
    /// Unless 0 <= p < 1.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout probability {p} is not in [0, 1)"
        );
        DropoutMasks {
            key: mix64(seed ^ DROPOUT_KEY_SALT),
            next: 0,
            threshold: (p * DRAWS_PER_UNIT).ceil() as u64,
        }
    }

    /// The next mask, of `len` entries (row-major): the stream moves past it.
    pub fn next_mask(&mut self, len: usize) -> DropoutMask {
        let mask = DropoutMask {
            key: self.key,
            first: self.next,
            threshold: self.threshold,
        };
        self.next = self.next.wrapping_add(len as u64);
        mask
    }

    /// The next mask of `shape`, whole (true: kept).
    pub fn draw(&mut self, shape: (usize, usize)) -> Array2<bool> {
        let mask = self.next_mask(shape.0 * shape.1);
        let mut index = 0;
        Array2::from_shape_simple_fn(shape, || {
            index += 1;
            mask.keeps(index - 1)
        })
    }
}

impl DropoutMask {
    /// Whether entry `index` (row-major: row r, column c of a `cols`-wide mask is r cols + c)
    /// is kept.
    #[inline]
    pub fn keeps(&self, index: usize) -> bool {
        let place = self.first.wrapping_add(index as u64);
        let bits = pair_bits(self.key, place >> 1);
        let draw = match place & 1 {
            0 => bits & 0xffff_ffff,
            _ => bits >> 32,
        };
        draw >= self.threshold
    }

    /// A row of the scaled mask inverted dropout multiplies by: `values[i] = scale` where entry
    /// `first + i` is kept, 0 where it is dropped. One SplitMix64 output per two entries, in
    /// loops the compiler vectorizes (what a level's pass over a row calls).
    #[inline]
    pub fn scaled_row<F: Float>(&self, first: usize, scale: F, values: &mut [F]) {
        let place = self.first.wrapping_add(first as u64);
        scaled_row(self.key, self.threshold, place, scale, values);
    }
}

/// SplitMix64's output for counter `pair` under `key`: the draws of entries 2 pair and
/// 2 pair + 1.
#[inline]
fn pair_bits(key: u64, pair: u64) -> u64 {
    mix64(key.wrapping_add(pair.wrapping_mul(GOLDEN_GAMMA)))
}

/// Entries drawn at a time into flags on the stack, before they become values.
const FLAGS_PER_PIECE: usize = 128;

/// [`DropoutMask::scaled_row`] from stream place `place`, a piece at a time: the kept flags,
/// then a select. Compiled for AVX-512 (whose 64-bit multiply does eight hashes at once), AVX2
/// and the baseline, picked at run time; the same integers on each, so the same mask.
#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2"))]
fn scaled_row<F: Float>(key: u64, threshold: u64, place: u64, scale: F, values: &mut [F]) {
    let mut flags = [false; FLAGS_PER_PIECE];
    for (start, piece) in (0..)
        .step_by(FLAGS_PER_PIECE)
        .zip(values.chunks_mut(FLAGS_PER_PIECE))
    {
        let kept = &mut flags[..piece.len()];
        fill_kept(key, threshold, place.wrapping_add(start), kept);
        // A select, not a branch: a branch on a random bit would mispredict p of the time.
        for (value, &kept) in piece.iter_mut().zip(&*kept) {
            *value = if kept { scale } else { F::zero() };
        }
    }
}

/// `kept[i]`: whether the draw at stream place `place + i` is at least `threshold`.
#[inline(always)]
fn fill_kept(key: u64, threshold: u64, place: u64, kept: &mut [bool]) {
    // An entry at an odd place is the high half of its pair's draw.
    let (place, kept) = match kept.split_first_mut() {
        Some((head, rest)) if place & 1 == 1 => {
            *head = pair_bits(key, place >> 1) >> 32 >= threshold;
            (place.wrapping_add(1), rest)
        }
        _ => (place, kept),
    };
    // SplitMix64's state for the first pair, then one GOLDEN_GAMMA further per pair (an add,
    // where pair_bits multiplies).
    let mut state = key.wrapping_add((place >> 1).wrapping_mul(GOLDEN_GAMMA));
    let (pairs, tail) = kept.as_chunks_mut::<2>();
    for pair in pairs {
        let bits = mix64(state);
        *pair = [bits & 0xffff_ffff >= threshold, bits >> 32 >= threshold];
        state = state.wrapping_add(GOLDEN_GAMMA);
    }
    if let [last] = tail {
        *last = mix64(state) & 0xffff_ffff >= threshold;
    }
}

/// 2^32: the number of values a 32-bit draw takes.
const DRAWS_PER_UNIT: f64 = 4_294_967_296.0;
/// SplitMix64's increment (2^64 / the golden ratio, odd).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
/// Mixed into a dropout layer's seed, so that its key is not the one a weight generator with
/// the same seed would start from.
const DROPOUT_KEY_SALT: u64 = 0xd80b_0075;

/// SplitMix64's output function (Steele, Lea and Flood 2014): a bijection of u64 whose outputs
/// for consecutive inputs pass BigCrush.
#[inline]
fn mix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The normalization after each hidden `Linear` of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Norm {
    /// No normalization.
    #[default]
    None,
    /// Batch norm over each feature.
    Batch,
    /// Layer norm over each row.
    Layer,
}

impl Norm {
    /// Every choice, in `--help` order.
    pub const ALL: [Norm; 3] = [Norm::None, Norm::Batch, Norm::Layer];

    /// `none`, `batch` or `layer`.
    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::Batch => "batch",
            Norm::Layer => "layer",
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Norm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Norm::ALL
            .into_iter()
            .find(|norm| norm.name() == text)
            .ok_or_else(|| format!("unknown normalization {text:?}: expected none, batch or layer"))
    }
}

#[cfg(test)]
mod dropout_mask_tests {
    use super::*;

    /// Over 2^20 entries, the kept fraction is 1 - p to within 5 standard deviations
    /// (sqrt(p (1 - p) / n) ~ 4e-4), for each p; seeds are fixed, so the count is too.
    #[test]
    fn the_kept_fraction_is_one_minus_p() {
        let entries = 1 << 20;
        for (p, seed) in [(0.1, 0), (0.2, 1), (0.5, 2), (0.9, 3)] {
            let mask = DropoutMasks::new(p, seed).next_mask(entries);
            let kept = (0..entries).filter(|&index| mask.keeps(index)).count();
            let fraction = kept as f64 / entries as f64;
            let deviation = (p * (1.0 - p) / entries as f64).sqrt();
            assert!(
                (fraction - (1.0 - p)).abs() < 5.0 * deviation,
                "p {p}: kept {fraction}"
            );
        }
        let mask = DropoutMasks::new(0.0, 4).next_mask(1000);
        assert!(
            (0..1000).all(|index| mask.keeps(index)),
            "p = 0 drops nothing"
        );
    }

    /// Masks take the stream in turn: two masks of n entries are the first 2n entries of one
    /// stream, whole or entry by entry, and a second mask is not the first again.
    #[test]
    fn masks_follow_each_other_in_one_stream() {
        let mut pair = DropoutMasks::new(0.5, 7);
        let (first, second) = (pair.draw((4, 8)), pair.draw((4, 8)));
        assert_ne!(first, second);
        let long = DropoutMasks::new(0.5, 7).next_mask(64);
        let entries: Vec<bool> = first.iter().chain(second.iter()).copied().collect();
        assert_eq!(
            entries,
            (0..64).map(|index| long.keeps(index)).collect::<Vec<_>>()
        );
        // A row filled from any start, odd or even, is the same entries; so is a mask that
        // starts at an odd place in the stream.
        let scaled = |kept: bool| if kept { 2.0 } else { 0.0 };
        for (first, len) in [(0, 64), (1, 63), (3, 10), (5, 0), (7, 1), (8, 1), (2, 3)] {
            let mut row = vec![-1.0; len];
            long.scaled_row(first, 2.0, &mut row);
            let one_by_one: Vec<f64> = (first..first + len)
                .map(|index| scaled(long.keeps(index)))
                .collect();
            assert_eq!(row, one_by_one, "row from {first}, {len} entries");
        }
        let mut stream = DropoutMasks::new(0.5, 7);
        stream.next_mask(3);
        let mut row = vec![-1.0f32; 20];
        stream.next_mask(20).scaled_row(0, 2.0, &mut row);
        let entries: Vec<f32> = (3..23)
            .map(|index| scaled(long.keeps(index)) as f32)
            .collect();
        assert_eq!(row, entries, "a mask from place 3");
        // Rows longer than the pieces the flags are drawn in, from an odd place.
        let long = DropoutMasks::new(0.3, 9).next_mask(1000);
        let mut row = vec![-1.0; 700];
        long.scaled_row(5, 2.0, &mut row);
        let one_by_one: Vec<f64> = (5..705).map(|index| scaled(long.keeps(index))).collect();
        assert_eq!(row, one_by_one, "700 entries from place 5");
        // Another seed, another stream.
        assert_ne!(DropoutMasks::new(0.5, 8).draw((4, 8)), first);
    }
}
