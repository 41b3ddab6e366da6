//! A network as a list of layers: [`NetSpec`], checked once when it is built.
//!
//! The list reads like PyTorch's `nn.Sequential`, and a layer's position in it is its index
//! there (`Flatten` takes a place too), so `3.weight` names the same tensor in both:
//!
//! ```
//! use backprop_core::network::{LayerSpec, NetSpec};
//! use backprop_core::{Activation, ImageShape, LossKind};
//!
//! // nn.Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(196, 10))
//! let spec = NetSpec::new(
//!     ImageShape::new(1, 14, 14),
//!     vec![
//!         LayerSpec::conv2d(1, 4, 3, 1, 1),
//!         LayerSpec::Activation(Activation::Relu),
//!         LayerSpec::max_pool2d(2, 2),
//!         LayerSpec::Flatten,
//!         LayerSpec::Linear { in_features: 4 * 7 * 7, out_features: 10 },
//!     ],
//!     LossKind::SoftmaxCrossEntropy,
//! )
//! .unwrap();
//! assert_eq!(spec.output().len(), 10);
//!
//! // A Linear that does not take what the layer before gives is named, with both sizes.
//! let error = NetSpec::new(
//!     ImageShape::new(1, 14, 14),
//!     vec![
//!         LayerSpec::conv2d(1, 4, 3, 1, 1),
//!         LayerSpec::Flatten,
//!         LayerSpec::Linear { in_features: 196, out_features: 10 },
//!     ],
//!     LossKind::SoftmaxCrossEntropy,
//! )
//! .unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "layer 2 (Linear(196, 10)): its input is 784 features, but it takes 196"
//! );
//! ```
//!
//! Every level builds its model from the same checked spec ([`Level::network`]), and the MLP
//! with normalization and dropout is one preset of it ([`MlpSpec::net_spec`]).

use std::fmt;

use thiserror::Error;

use crate::conv::{Conv2dGeometry, ImageShape, Pool2dGeometry};
use crate::init::{Init, seeded_rng};
use crate::{Activation, Float, Layout, LinearParams, LossKind, MlpSpec, Norm};
#[cfg(doc)]
use crate::{Level, Model};

/// One layer of a network, as declared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// `y = x W + b`, W `(in_features, out_features)`; its input must be flat.
    Linear {
        /// The width it takes.
        in_features: usize,
        /// The width it gives.
        out_features: usize,
    },
    /// A 2-D convolution (see [`crate::conv`]).
    Conv2d {
        /// C of its input image.
        in_channels: usize,
        /// Filters, the channels of its output.
        out_channels: usize,
        /// `(kh, kw)`.
        kernel: (usize, usize),
        /// The step between windows along both axes.
        stride: usize,
        /// Zeros on every side.
        padding: usize,
    },
    /// Max pooling over `kernel` windows every `stride`.
    MaxPool2d {
        /// `(kh, kw)`.
        kernel: (usize, usize),
        /// The step between windows along both axes.
        stride: usize,
    },
    /// Reads an image as a flat vector (the row does not change; only its shape does).
    Flatten,
    /// ReLU, sigmoid or tanh, elementwise on any shape.
    Activation(Activation),
    /// Batch norm or layer norm over a flat input's features.
    Norm(Norm),
    /// Inverted dropout with probability `p` (0 <= p < 1), elementwise on any shape.
    Dropout {
        /// The probability of dropping an entry.
        p: f64,
    },
}

impl LayerSpec {
    /// A square-kernel convolution: `nn.Conv2d(in, out, kernel, stride, padding)`.
    pub fn conv2d(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel: (kernel, kernel),
            stride,
            padding,
        }
    }

    /// A square-window max pool: `nn.MaxPool2d(kernel, stride)`.
    pub fn max_pool2d(kernel: usize, stride: usize) -> Self {
        LayerSpec::MaxPool2d {
            kernel: (kernel, kernel),
            stride,
        }
    }

    /// The shape this layer gives for `input`.
    ///
    /// # Errors
    /// What does not fit, as the end of [`SpecError::LayerDoesNotFit`]'s message (after
    /// "its input is {input}, ").
    pub fn output_shape(self, input: ImageShape) -> Result<ImageShape, String> {
        output_of(self, input)
    }

    /// True for the layers with a weight and a bias (`Linear`, `Conv2d`).
    pub fn has_weight(&self) -> bool {
        matches!(self, LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. })
    }
}

impl fmt::Display for LayerSpec {
    /// PyTorch's way of writing it: `Conv2d(1, 8, 3x3, stride 1, padding 1)`, `Linear(784, 10)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayerSpec::Linear {
                in_features,
                out_features,
            } => write!(f, "Linear({in_features}, {out_features})"),
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel: (kh, kw),
                stride,
                padding,
            } => write!(
                f,
                "Conv2d({in_channels}, {out_channels}, {kh}x{kw}, stride {stride}, padding {padding})"
            ),
            LayerSpec::MaxPool2d {
                kernel: (kh, kw),
                stride,
            } => write!(f, "MaxPool2d({kh}x{kw}, stride {stride})"),
            LayerSpec::Flatten => f.write_str("Flatten"),
            LayerSpec::Activation(activation) => write!(f, "{activation}"),
            LayerSpec::Norm(Norm::Batch) => f.write_str("BatchNorm"),
            LayerSpec::Norm(Norm::Layer) => f.write_str("LayerNorm"),
            LayerSpec::Norm(Norm::None) => f.write_str("Norm(none)"),
            LayerSpec::Dropout { p } => write!(f, "Dropout({p})"),
        }
    }
}

/// Why a list of layers is not a network.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SpecError {
    /// No layer at all, or no layer with a weight.
    #[error("a network needs at least one Linear or Conv2d layer")]
    NoWeightLayer,
    /// The input shape has a zero size.
    #[error("the input shape {0} holds no value")]
    EmptyInput(ImageShape),
    /// Layer `index` does not take what the layer before it gives.
    #[error("layer {index} ({layer}): its input is {input}, {problem}")]
    LayerDoesNotFit {
        /// The position in the list, 0 first (PyTorch's `nn.Sequential` index).
        index: usize,
        /// The layer as declared.
        layer: LayerSpec,
        /// What reaches it.
        input: ImageShape,
        /// What does not fit.
        problem: String,
    },
}

/// One layer of a checked network, with the shapes it maps between: what a level builds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerPlan {
    /// `Linear` from `fan_in` to `fan_out` features.
    Linear {
        /// The width it takes.
        fan_in: usize,
        /// The width it gives.
        fan_out: usize,
    },
    /// A convolution over a known input image.
    Conv2d(Conv2dGeometry),
    /// A max pool over a known input image.
    MaxPool2d(Pool2dGeometry),
    /// The same values, seen flat.
    Flatten,
    /// An activation.
    Activation(Activation),
    /// Batch norm or layer norm over `features`.
    Norm {
        /// Which one.
        norm: Norm,
        /// Its width.
        features: usize,
    },
    /// Dropout with probability `p`, its masks drawn from the generator seeded `seed`.
    Dropout {
        /// The probability of dropping an entry.
        p: f64,
        /// The seed of its masks: the network's seed plus the number of dropout layers before.
        seed: u64,
    },
}

/// A network: an input shape, a list of layers that fit one another, a loss, and what decides
/// the initial weights. Built only through [`NetSpec::new`], so every `NetSpec` is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    input: ImageShape,
    layers: Vec<LayerSpec>,
    loss: LossKind,
    init: Init,
    seed: u64,
    /// `shapes[i]` reaches layer i; `shapes[layers.len()]` is the output.
    shapes: Vec<ImageShape>,
}

impl NetSpec {
    /// Checks that each layer takes what the one before gives (PyTorch's default init, seed 0).
    ///
    /// # Errors
    /// [`SpecError::LayerDoesNotFit`] naming the first layer whose input does not fit: a
    /// `Linear` or a norm after an image without `Flatten`, a width or a channel count that
    /// differs, a kernel or window larger than its (padded) input, a dropout probability outside
    /// [0, 1).
    pub fn new(
        input: ImageShape,
        layers: Vec<LayerSpec>,
        loss: LossKind,
    ) -> Result<Self, SpecError> {
        if input.is_empty() {
            return Err(SpecError::EmptyInput(input));
        }
        if !layers.iter().any(LayerSpec::has_weight) {
            return Err(SpecError::NoWeightLayer);
        }
        let mut shapes = vec![input];
        for (index, &layer) in layers.iter().enumerate() {
            let shape = shapes[index];
            let does_not_fit = |problem: String| SpecError::LayerDoesNotFit {
                index,
                layer,
                input: shape,
                problem,
            };
            let output = output_of(layer, shape).map_err(does_not_fit)?;
            shapes.push(output);
        }
        Ok(NetSpec {
            input,
            layers,
            loss,
            init: Init::PytorchDefault,
            seed: 0,
            shapes,
        })
    }

    /// The same network, its weights drawn by `init`.
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// The same network, its weights and dropout masks drawn from `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The shape of one input sample.
    pub fn input(&self) -> ImageShape {
        self.input
    }

    /// The shape of one output row (the logits).
    pub fn output(&self) -> ImageShape {
        self.shapes[self.layers.len()]
    }

    /// The layers as declared.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// The loss at the end.
    pub fn loss(&self) -> LossKind {
        self.loss
    }

    /// How the weights are drawn.
    pub fn init(&self) -> Init {
        self.init
    }

    /// The seed of the weights and of the dropout masks.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The shape reaching layer `index` (`index == layers().len()`: the output).
    ///
    /// # Panics
    /// If `index > layers().len()`.
    pub fn shape_before(&self, index: usize) -> ImageShape {
        self.shapes[index]
    }

    /// Every layer with its resolved geometry, in order: what a level builds.
    pub fn plan(&self) -> Vec<LayerPlan> {
        let mut dropouts = 0u64;
        self.layers
            .iter()
            .zip(&self.shapes)
            .map(|(&layer, &shape)| match layer {
                LayerSpec::Linear {
                    in_features,
                    out_features,
                } => LayerPlan::Linear {
                    fan_in: in_features,
                    fan_out: out_features,
                },
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => LayerPlan::Conv2d(Conv2dGeometry {
                    input: shape,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                }),
                LayerSpec::MaxPool2d { kernel, stride } => LayerPlan::MaxPool2d(Pool2dGeometry {
                    input: shape,
                    kernel,
                    stride,
                }),
                LayerSpec::Flatten => LayerPlan::Flatten,
                LayerSpec::Activation(activation) => LayerPlan::Activation(activation),
                LayerSpec::Norm(norm) => LayerPlan::Norm {
                    norm,
                    features: shape.len(),
                },
                LayerSpec::Dropout { p } => {
                    dropouts += 1;
                    LayerPlan::Dropout {
                        p,
                        seed: self.seed.wrapping_add(dropouts - 1),
                    }
                }
            })
            .collect()
    }

    /// Every normalization layer's kind and width, in order.
    pub fn norm_layers(&self) -> Vec<(Norm, usize)> {
        self.plan()
            .into_iter()
            .filter_map(|layer| match layer {
                LayerPlan::Norm { norm, features } => Some((norm, features)),
                _ => None,
            })
            .collect()
    }

    /// The `(rows, columns)` of every weight, in order: `(fan_in, fan_out)` for `Linear`,
    /// `(C kh kw, out_channels)` for `Conv2d`.
    pub fn weight_shapes(&self) -> Vec<(usize, usize)> {
        self.plan()
            .into_iter()
            .filter_map(|layer| match layer {
                LayerPlan::Linear { fan_in, fan_out } => Some((fan_in, fan_out)),
                LayerPlan::Conv2d(geometry) => Some(geometry.weight_shape()),
                _ => None,
            })
            .collect()
    }

    /// Draws every weight and bias, first layer first, from one generator seeded
    /// [`seed`](NetSpec::seed). A `Conv2d` is drawn as a `Linear` with
    /// `fan_in = C kh kw` (PyTorch's `nn.Conv2d` default has that same bound 1/sqrt(fan_in)).
    pub fn initial_params<F: Float>(&self) -> LinearParams<F> {
        let mut rng = seeded_rng(self.seed);
        self.weight_shapes()
            .into_iter()
            .map(|(fan_in, fan_out)| self.init.linear(fan_in, fan_out, &mut rng))
            .collect()
    }

    /// The MLP `sizes` with `layout` between the layers: each hidden `Linear` followed by the
    /// normalization, the activation, then dropout; the last `Linear` by nothing.
    ///
    /// # Errors
    /// With fewer than two sizes, a zero size, `Norm::None`-free checks as [`NetSpec::new`].
    pub fn mlp(sizes: &[usize], layout: &Layout) -> Result<Self, SpecError> {
        let Some(&first) = sizes.first() else {
            return Err(SpecError::NoWeightLayer);
        };
        let mut layers = Vec::new();
        for (index, pair) in sizes.windows(2).enumerate() {
            layers.push(LayerSpec::Linear {
                in_features: pair[0],
                out_features: pair[1],
            });
            if index + 2 < sizes.len() {
                if layout.norm != Norm::None {
                    layers.push(LayerSpec::Norm(layout.norm));
                }
                layers.push(LayerSpec::Activation(layout.activation));
                if layout.dropout > 0.0 {
                    layers.push(LayerSpec::Dropout { p: layout.dropout });
                }
            }
        }
        Ok(NetSpec::new(ImageShape::flat(first), layers, layout.loss)?.with_seed(layout.seed))
    }

    /// The MLP this network is, if it is one: `Linear, [norm], act, [dropout], ..., Linear`
    /// with the same norm, activation and dropout after every hidden layer. Returns the sizes
    /// and the layout ([`NetSpec::mlp`] gives this spec back from them).
    pub fn as_mlp(&self) -> Option<(Vec<usize>, Layout)> {
        let mut sizes = vec![self.input.len()];
        let mut layout: Option<Layout> = None;
        let mut layers = self.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            let LayerSpec::Linear { out_features, .. } = *layer else {
                return None;
            };
            sizes.push(out_features);
            if layers.peek().is_none() {
                break;
            }
            // One hidden block: [norm], activation, [dropout].
            let norm = match layers.peek() {
                Some(LayerSpec::Norm(norm)) => {
                    let norm = *norm;
                    layers.next();
                    norm
                }
                _ => Norm::None,
            };
            let Some(LayerSpec::Activation(activation)) = layers.next() else {
                return None;
            };
            let dropout = match layers.peek() {
                Some(LayerSpec::Dropout { p }) => {
                    let p = *p;
                    layers.next();
                    p
                }
                _ => 0.0,
            };
            let block = Layout {
                activation: *activation,
                loss: self.loss,
                norm,
                dropout,
                seed: self.seed,
            };
            // A block ends the list (an activation after the logits) or differs from the
            // others: not the preset.
            let next_is_linear = matches!(layers.peek(), Some(LayerSpec::Linear { .. }));
            if !next_is_linear || layout.is_some_and(|seen| seen != block) {
                return None;
            }
            layout = Some(block);
        }
        let layout = layout.unwrap_or(Layout {
            seed: self.seed,
            ..Layout::plain(Activation::Relu, self.loss)
        });
        Some((sizes, layout))
    }

    /// The activation of the network's hidden layers: the first one in the list (ReLU if it
    /// has none), for the statistics that read it ([`Model::activation`]).
    pub fn activation(&self) -> Activation {
        self.layers
            .iter()
            .find_map(|layer| match layer {
                LayerSpec::Activation(activation) => Some(*activation),
                _ => None,
            })
            .unwrap_or(Activation::Relu)
    }
}

/// The shape `layer` gives for `input`, or what does not fit.
fn output_of(layer: LayerSpec, input: ImageShape) -> Result<ImageShape, String> {
    let flat_only = |what: &str| {
        if input.is_flat() {
            Ok(())
        } else {
            Err(format!(
                "an image: {what} takes flat features (put Flatten before it)"
            ))
        }
    };
    match layer {
        LayerSpec::Linear {
            in_features,
            out_features,
        } => {
            flat_only("Linear")?;
            if input.len() != in_features {
                return Err(format!("but it takes {in_features}"));
            }
            if out_features == 0 {
                return Err("and it gives 0 features".into());
            }
            Ok(ImageShape::flat(out_features))
        }
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            if input.channels != in_channels {
                return Err(format!(
                    "{} channels, but it takes {in_channels}",
                    input.channels
                ));
            }
            Conv2dGeometry::new(input, out_channels, kernel, stride, padding)
                .map(|geometry| geometry.output())
        }
        LayerSpec::MaxPool2d { kernel, stride } => {
            Pool2dGeometry::new(input, kernel, stride).map(|geometry| geometry.output())
        }
        LayerSpec::Flatten => Ok(input.flattened()),
        LayerSpec::Activation(_) => Ok(input),
        LayerSpec::Norm(Norm::None) => Err("Norm(none) is not a layer: leave it out".into()),
        LayerSpec::Norm(_) => flat_only("a normalization over features").map(|()| input),
        LayerSpec::Dropout { p } => {
            if (0.0..1.0).contains(&p) {
                Ok(input)
            } else {
                Err(format!("and its probability {p} is outside [0, 1)"))
            }
        }
    }
}

impl MlpSpec {
    /// This MLP as a network: the same layers, the same seed, the same init, so the same
    /// weights and dropout masks.
    ///
    /// # Panics
    /// If `sizes` has fewer than two entries or a zero.
    #[track_caller]
    pub fn net_spec(&self) -> NetSpec {
        NetSpec::mlp(&self.sizes, &self.layout())
            .unwrap_or_else(|error| panic!("MLP sizes {:?}: {error}", self.sizes))
            .with_init(self.init)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenet() -> Vec<LayerSpec> {
        vec![
            LayerSpec::conv2d(1, 8, 3, 1, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::max_pool2d(2, 2),
            LayerSpec::conv2d(8, 16, 3, 1, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::max_pool2d(2, 2),
            LayerSpec::Flatten,
            LayerSpec::Linear {
                in_features: 784,
                out_features: 10,
            },
        ]
    }

    #[test]
    fn shapes_flow_through_a_small_cnn() {
        let spec = NetSpec::new(
            ImageShape::new(1, 28, 28),
            lenet(),
            LossKind::SoftmaxCrossEntropy,
        )
        .unwrap();
        assert_eq!(spec.shape_before(3), ImageShape::new(8, 14, 14));
        assert_eq!(spec.shape_before(6), ImageShape::new(16, 7, 7));
        assert_eq!(spec.output(), ImageShape::flat(10));
        assert_eq!(spec.weight_shapes(), [(9, 8), (72, 16), (784, 10)]);
        assert_eq!(spec.as_mlp(), None);
    }

    #[test]
    fn the_layer_that_does_not_fit_is_named() {
        let mut layers = lenet();
        layers.remove(6); // no Flatten
        let error = NetSpec::new(
            ImageShape::new(1, 28, 28),
            layers,
            LossKind::SoftmaxCrossEntropy,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "layer 6 (Linear(784, 10)): its input is 16x7x7, an image: Linear takes flat \
             features (put Flatten before it)"
        );
        let mut layers = lenet();
        layers[3] = LayerSpec::conv2d(4, 16, 3, 1, 1);
        let error = NetSpec::new(
            ImageShape::new(1, 28, 28),
            layers,
            LossKind::SoftmaxCrossEntropy,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("layer 3 (Conv2d(4, 16, 3x3, stride 1, padding 1)): its input is 8x14x14, 8 channels, but it takes 4"),
            "{error}"
        );
        let error = NetSpec::new(
            ImageShape::new(1, 3, 3),
            vec![LayerSpec::conv2d(1, 1, 5, 1, 0)],
            LossKind::Mse,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("kernel 5x5 is larger than the padded input 3x3"),
            "{error}"
        );
    }

    #[test]
    fn the_mlp_preset_round_trips_and_draws_the_mlp_weights() {
        let mut mlp = MlpSpec::classifier(&[6, 5, 4, 3], 9);
        mlp.norm = Norm::Batch;
        mlp.dropout = 0.25;
        let spec = mlp.net_spec();
        assert_eq!(spec.layers().len(), 3 + 2 * 3);
        assert_eq!(spec.as_mlp(), Some((mlp.sizes.clone(), mlp.layout())));
        assert_eq!(
            spec.initial_params::<f64>(),
            mlp.initial_params::<f64>(),
            "the preset must draw the MLP's weights"
        );
        // Dropout layer i draws from seed + i, as the MLP's hidden layer i always did.
        let seeds: Vec<u64> = spec
            .plan()
            .into_iter()
            .filter_map(|layer| match layer {
                LayerPlan::Dropout { seed, .. } => Some(seed),
                _ => None,
            })
            .collect();
        assert_eq!(seeds, [9, 10]);
        // An activation after the last Linear, or blocks that differ, are not the preset.
        let linear = |in_features, out_features| LayerSpec::Linear {
            in_features,
            out_features,
        };
        let relu = LayerSpec::Activation(Activation::Relu);
        let not_mlp = |layers| NetSpec::new(ImageShape::flat(4), layers, LossKind::Mse).unwrap();
        assert_eq!(not_mlp(vec![linear(4, 3), relu]).as_mlp(), None);
        let tanh = LayerSpec::Activation(Activation::Tanh);
        let mixed = vec![linear(4, 3), relu, linear(3, 3), tanh, linear(3, 2)];
        assert_eq!(not_mlp(mixed).as_mlp(), None);
        assert!(
            not_mlp(vec![linear(4, 3), relu, linear(3, 2)])
                .as_mlp()
                .is_some()
        );
    }
}
