//! Initialisers and the seeded generator: the same seed gives the same weights in every level.
//!
//! Weights are drawn in `f64` in row-major order of the `(fan_in, fan_out)` weight, then the
//! bias, and only then rounded to the level's float type, so `f32` and `f64` networks built from
//! one seed differ by rounding alone.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Activation, Float, Layout, LinearParams, LossKind, Norm};

/// The project's seeded generator: ChaCha8, reproducible on every platform.
pub type SeededRng = ChaCha8Rng;

/// A generator whose whole stream is decided by `seed`.
pub fn seeded_rng(seed: u64) -> SeededRng {
    SeededRng::seed_from_u64(seed)
}

/// How a `Linear` layer's weight and bias are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// PyTorch's `nn.Linear` default: W and b from U(-k, k) with k = 1/sqrt(fan_in).
    /// (784 -> 256 gives k = 1/28 = 0.0357.)
    PytorchDefault,
    /// He (Kaiming) normal for ReLU nets: W from N(0, 2/fan_in), b = 0.
    He,
    /// Xavier (Glorot) uniform for tanh/sigmoid nets: W from U(-a, a) with
    /// a = sqrt(6/(fan_in + fan_out)), b = 0.
    Xavier,
    /// W from N(0, std^2), b = 0: `Normal { std: 0.01 }` is the classic too-small init.
    Normal {
        /// The standard deviation of every weight.
        std: f64,
    },
}

impl Init {
    /// Draws the weight `(fan_in, fan_out)` and bias `(fan_out,)` of one `Linear` layer.
    pub fn linear<F: Float>(
        self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut SeededRng,
    ) -> (Array2<F>, Array1<F>) {
        let fan_in_f = fan_in.max(1) as f64;
        let (weight, bias): (Array2<f64>, Array1<f64>) = match self {
            Init::PytorchDefault => {
                let bound = 1.0 / fan_in_f.sqrt();
                let weight =
                    Array2::from_shape_simple_fn((fan_in, fan_out), || uniform(rng, bound));
                let bias = Array1::from_shape_simple_fn(fan_out, || uniform(rng, bound));
                (weight, bias)
            }
            Init::He => {
                let std = (2.0 / fan_in_f).sqrt();
                let weight =
                    Array2::from_shape_simple_fn((fan_in, fan_out), || std * standard_normal(rng));
                (weight, Array1::zeros(fan_out))
            }
            Init::Xavier => {
                let bound = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
                let weight =
                    Array2::from_shape_simple_fn((fan_in, fan_out), || uniform(rng, bound));
                (weight, Array1::zeros(fan_out))
            }
            Init::Normal { std } => {
                let weight =
                    Array2::from_shape_simple_fn((fan_in, fan_out), || std * standard_normal(rng));
                (weight, Array1::zeros(fan_out))
            }
        };
        (weight.mapv(F::of), bias.mapv(F::of))
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::PytorchDefault => f.write_str("pytorch"),
            Init::He => f.write_str("he"),
            Init::Xavier => f.write_str("xavier"),
            Init::Normal { std } => write!(f, "normal:{std}"),
        }
    }
}

impl FromStr for Init {
    type Err = String;

    /// Parses `pytorch`, `he`, `xavier` or `normal:STD`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pytorch" => Ok(Init::PytorchDefault),
            "he" => Ok(Init::He),
            "xavier" => Ok(Init::Xavier),
            _ => match text.strip_prefix("normal:").map(str::parse::<f64>) {
                Some(Ok(std)) if std.is_finite() && std > 0.0 => Ok(Init::Normal { std }),
                _ => Err(format!(
                    "unknown init {text:?}: expected pytorch, he, xavier or normal:STD (STD > 0)"
                )),
            },
        }
    }
}

/// U(-bound, bound).
fn uniform(rng: &mut SeededRng, bound: f64) -> f64 {
    bound * (2.0 * rng.random::<f64>() - 1.0)
}

/// N(0, 1) by the Box-Muller transform (one of the pair; simple beats fast here).
pub fn standard_normal(rng: &mut SeededRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1], so ln(u1) is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Everything that decides an MLP's initial weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSpec {
    /// `[in, hidden.., out]`, at least two entries.
    pub sizes: Vec<usize>,
    /// The activation between `Linear` layers.
    pub activation: Activation,
    /// The loss at the end.
    pub loss: LossKind,
    /// How each `Linear` layer is drawn.
    pub init: Init,
    /// The seed of the generator that draws them, layer after layer (and of the dropout masks).
    pub seed: u64,
    /// The normalization after each hidden `Linear`.
    pub norm: Norm,
    /// The dropout probability after each hidden activation (0: none).
    pub dropout: f64,
}

impl MlpSpec {
    /// A ReLU classifier with PyTorch's default init: `MlpSpec::classifier(&[784, 256, 10], 0)`.
    pub fn classifier(sizes: &[usize], seed: u64) -> Self {
        MlpSpec {
            sizes: sizes.to_vec(),
            activation: Activation::Relu,
            loss: LossKind::SoftmaxCrossEntropy,
            init: Init::PytorchDefault,
            seed,
            norm: Norm::None,
            dropout: 0.0,
        }
    }

    /// The layout between the layers: activation, normalization, dropout (seeded `seed`), loss.
    pub fn layout(&self) -> Layout {
        Layout {
            activation: self.activation,
            loss: self.loss,
            norm: self.norm,
            dropout: self.dropout,
            seed: self.seed,
        }
    }

    /// Draws every layer's `(weight, bias)`, input layer first.
    ///
    /// # Panics
    /// If `sizes` has fewer than two entries.
    #[track_caller]
    pub fn initial_params<F: Float>(&self) -> LinearParams<F> {
        assert!(
            self.sizes.len() >= 2,
            "an MLP needs at least an input and an output size, got sizes {:?}",
            self.sizes
        );
        let mut rng = seeded_rng(self.seed);
        self.sizes
            .windows(2)
            .map(|pair| self.init.linear(pair[0], pair[1], &mut rng))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_and_f32_is_the_rounded_f64() {
        let spec = MlpSpec::classifier(&[5, 4, 3], 11);
        let wide: LinearParams<f64> = spec.initial_params();
        let narrow: LinearParams<f32> = spec.initial_params();
        assert_eq!(wide, spec.initial_params::<f64>());
        assert_eq!(wide[1].0.mapv(|w| w as f32), narrow[1].0);
        assert_ne!(
            wide,
            MlpSpec::classifier(&[5, 4, 3], 12).initial_params::<f64>()
        );
    }

    #[test]
    fn pytorch_default_stays_inside_one_over_sqrt_fan_in() {
        let (weight, bias) = Init::PytorchDefault.linear::<f64>(784, 256, &mut seeded_rng(0));
        let bound = 1.0 / 28.0;
        assert!(weight.iter().chain(bias.iter()).all(|w| w.abs() <= bound));
        // 200,704 draws from U(-k, k) reach close to both ends.
        assert!(weight.iter().cloned().fold(f64::MIN, f64::max) > 0.99 * bound);
    }

    #[test]
    fn he_has_variance_two_over_fan_in() {
        let (weight, bias) = Init::He.linear::<f64>(400, 500, &mut seeded_rng(3));
        let variance = weight.mapv(|w| w * w).mean().unwrap();
        // 200,000 samples: the sample variance is within 1% of 2/400 with high probability.
        assert!(
            (variance / (2.0 / 400.0) - 1.0).abs() < 0.01,
            "variance {variance}"
        );
        assert!(bias.iter().all(|&b| b == 0.0));
    }

    #[test]
    fn init_names_parse_back() {
        for init in [
            Init::PytorchDefault,
            Init::He,
            Init::Xavier,
            Init::Normal { std: 0.01 },
        ] {
            assert_eq!(init.to_string().parse::<Init>(), Ok(init));
        }
        assert!(
            "normal:-1"
                .parse::<Init>()
                .unwrap_err()
                .contains("normal:STD")
        );
    }
}
