//! `--arch`: a network as a list of layers, written on the command line.
//!
//! Layers are separated by commas; sizes that follow from the layer before (a convolution's
//! input channels, a `linear`'s input features) are inferred from the images:
//!
//! | layer | PyTorch |
//! |---|---|
//! | `conv(OUT,K)`, `conv(OUT,K,stride=S,pad=P)` | `nn.Conv2d(in, OUT, K, stride=S, padding=P)` (S 1, P 0 if left out) |
//! | `maxpool(K)`, `maxpool(K,stride=S)` | `nn.MaxPool2d(K, stride=S)` (S = K if left out) |
//! | `flatten` | `nn.Flatten()` |
//! | `linear(OUT)` | `nn.Linear(in, OUT)` |
//! | `relu`, `sigmoid`, `tanh` | `nn.ReLU()`, `nn.Sigmoid()`, `nn.Tanh()` |
//! | `batchnorm`, `layernorm` | `nn.BatchNorm1d(in)`, `nn.LayerNorm(in)` (after `flatten`) |
//! | `dropout(P)` | `nn.Dropout(P)` |
//!
//! Two presets stand for whole networks ([`PRESETS`]): `lenet`, the small network of the CNN
//! benchmarks, and `convnet`, a wider one for accuracy. `lenet` is
//! `conv(8,3,pad=1),relu,maxpool(2),conv(16,3,pad=1),relu,maxpool(2),flatten,linear(10)`:
//!
//! ```
//! use backprop::arch::Arch;
//! use backprop_core::ImageShape;
//!
//! let lenet: Arch = "lenet".parse().unwrap();
//! let spec = lenet.spec(ImageShape::new(1, 28, 28)).unwrap();
//! assert_eq!(spec.weight_shapes(), [(9, 8), (72, 16), (784, 10)]);
//! // Written back in full, so a run's config.json does not depend on what a preset means later.
//! assert_eq!(
//!     lenet.to_string(),
//!     "conv(8,3,pad=1),relu,maxpool(2),conv(16,3,pad=1),relu,maxpool(2),flatten,linear(10)"
//! );
//! ```

use std::fmt;
use std::str::FromStr;

use backprop_core::network::{LayerSpec, NetSpec};
use backprop_core::{Activation, ImageShape, LossKind, Norm};

/// The presets `--arch` knows by name, with what each stands for.
/// `lenet` is small and fast (9,098 parameters, the network of the CNN benchmarks); `convnet`
/// is wider, with a hidden layer (215,370 parameters), for accuracy.
pub const PRESETS: [(&str, &str); 2] = [
    (
        "lenet",
        "conv(8,3,pad=1),relu,maxpool(2),conv(16,3,pad=1),relu,maxpool(2),flatten,linear(10)",
    ),
    (
        "convnet",
        "conv(16,5,pad=2),relu,maxpool(2),conv(32,5,pad=2),relu,maxpool(2),flatten,linear(128),\
         relu,linear(10)",
    ),
];

/// One layer of `--arch`, its input size left to be inferred.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ArchLayer {
    Conv {
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    Flatten,
    Linear {
        out_features: usize,
    },
    Activation(Activation),
    Norm(Norm),
    Dropout {
        p: f64,
    },
}

/// A network written as `--arch` text (see the module's table), ending in a softmax
/// cross-entropy loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Arch {
    layers: Vec<ArchLayer>,
}

impl Arch {
    /// The checked network for images of shape `input`, each layer's input size inferred from
    /// the one before (PyTorch's default init, seed 0: set them on the result).
    ///
    /// # Errors
    /// The first layer that does not fit what reaches it, named by its position and as written.
    pub fn spec(&self, input: ImageShape) -> Result<NetSpec, String> {
        let mut shape = input;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let layer = match *layer {
                ArchLayer::Conv {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => LayerSpec::conv2d(shape.channels, out_channels, kernel, stride, padding),
                ArchLayer::MaxPool { kernel, stride } => LayerSpec::max_pool2d(kernel, stride),
                ArchLayer::Flatten => LayerSpec::Flatten,
                ArchLayer::Linear { out_features } => LayerSpec::Linear {
                    in_features: shape.len(),
                    out_features,
                },
                ArchLayer::Activation(activation) => LayerSpec::Activation(activation),
                ArchLayer::Norm(norm) => LayerSpec::Norm(norm),
                ArchLayer::Dropout { p } => LayerSpec::Dropout { p },
            };
            shape = layer.output_shape(shape).map_err(|problem| {
                format!(
                    "layer {index} ({}): its input is {shape}, {problem}",
                    self.layers[index]
                )
            })?;
            layers.push(layer);
        }
        NetSpec::new(input, layers, LossKind::SoftmaxCrossEntropy)
            .map_err(|error| error.to_string())
    }

    /// The spec for `input` images whose logits are `classes` wide.
    ///
    /// # Errors
    /// As [`Arch::spec`], or a network whose output is not `classes` features.
    pub fn classifier(&self, input: ImageShape, classes: usize) -> Result<NetSpec, String> {
        let spec = self.spec(input)?;
        if spec.output() != ImageShape::flat(classes) {
            return Err(format!(
                "it gives {} per image, but the data has {classes} classes (end with \
                 flatten,linear({classes}))",
                spec.output()
            ));
        }
        Ok(spec)
    }
}

impl Arch {
    /// The `--arch` layers of a network (a model file from elsewhere, read back): the
    /// inverse of [`Arch::spec`].
    ///
    /// # Errors
    /// A layer `--arch` cannot write: a kernel or pool window that is not square.
    pub fn of_spec(spec: &NetSpec) -> Result<Arch, String> {
        let square = |(height, width): (usize, usize), index: usize| match height == width {
            true => Ok(height),
            false => Err(format!(
                "layer {index}: a {height}x{width} window; --arch layers are square"
            )),
        };
        let layers = spec
            .layers()
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                Ok(match *layer {
                    LayerSpec::Conv2d {
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        ..
                    } => ArchLayer::Conv {
                        out_channels,
                        kernel: square(kernel, index)?,
                        stride,
                        padding,
                    },
                    LayerSpec::MaxPool2d { kernel, stride } => ArchLayer::MaxPool {
                        kernel: square(kernel, index)?,
                        stride,
                    },
                    LayerSpec::Flatten => ArchLayer::Flatten,
                    LayerSpec::Linear { out_features, .. } => ArchLayer::Linear { out_features },
                    LayerSpec::Activation(activation) => ArchLayer::Activation(activation),
                    LayerSpec::Norm(norm) => ArchLayer::Norm(norm),
                    LayerSpec::Dropout { p } => ArchLayer::Dropout { p },
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Arch { layers })
    }
}

impl FromStr for Arch {
    type Err = String;

    /// A preset's name or a comma-separated list of layers.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some((_, layers)) = PRESETS.iter().find(|(name, _)| *name == text) {
            return layers.parse();
        }
        let items = split_top_level(text)?;
        if items.iter().all(|item| item.trim().is_empty()) {
            return Err(format!(
                "no layers: give a preset ({}) or layers such as \"flatten,linear(10)\"",
                preset_names()
            ));
        }
        let layers = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                parse_layer(item.trim())
                    .map_err(|problem| format!("layer {index} {:?}: {problem}", item.trim()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arch { layers })
    }
}

impl fmt::Display for Arch {
    /// The canonical text: every layer, no preset names, defaults left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, layer) in self.layers.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{layer}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ArchLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArchLayer::Conv {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                write!(f, "conv({out_channels},{kernel}")?;
                if stride != 1 {
                    write!(f, ",stride={stride}")?;
                }
                if padding != 0 {
                    write!(f, ",pad={padding}")?;
                }
                f.write_str(")")
            }
            ArchLayer::MaxPool { kernel, stride } if stride == kernel => {
                write!(f, "maxpool({kernel})")
            }
            ArchLayer::MaxPool { kernel, stride } => write!(f, "maxpool({kernel},stride={stride})"),
            ArchLayer::Flatten => f.write_str("flatten"),
            ArchLayer::Linear { out_features } => write!(f, "linear({out_features})"),
            ArchLayer::Activation(activation) => f.write_str(activation.name()),
            ArchLayer::Norm(norm) => write!(f, "{}norm", norm.name()),
            ArchLayer::Dropout { p } => write!(f, "dropout({p})"),
        }
    }
}

fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` split at the commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (at, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("a ')' with no '(' at character {at}"))?;
            }
            ',' if depth == 0 => {
                items.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' is never closed".into());
    }
    items.push(&text[start..]);
    Ok(items)
}

/// One layer: `name` or `name(args)`, args positional then `key=value`.
fn parse_layer(item: &str) -> Result<ArchLayer, String> {
    let (name, args) = match item.split_once('(') {
        Some((name, rest)) => {
            let inside = rest.strip_suffix(')').ok_or("text after its closing ')'")?;
            (name.trim(), Some(inside))
        }
        None => (item, None),
    };
    let mut arguments = Arguments::parse(args.unwrap_or(""))?;
    let layer = match name {
        "conv" => ArchLayer::Conv {
            out_channels: arguments.positional("OUT channels")?,
            kernel: arguments.positional("kernel size K")?,
            stride: arguments.named("stride")?.unwrap_or(1),
            padding: arguments.named_from_zero("pad")?.unwrap_or(0),
        },
        "maxpool" => {
            let kernel = arguments.positional("kernel size K")?;
            ArchLayer::MaxPool {
                kernel,
                stride: arguments.named("stride")?.unwrap_or(kernel),
            }
        }
        "linear" => ArchLayer::Linear {
            out_features: arguments.positional("OUT features")?,
        },
        "dropout" => {
            let p = arguments.probability()?;
            ArchLayer::Dropout { p }
        }
        "flatten" => ArchLayer::Flatten,
        "batchnorm" => ArchLayer::Norm(Norm::Batch),
        "layernorm" => ArchLayer::Norm(Norm::Layer),
        name => match name.parse::<Activation>() {
            Ok(activation) => ArchLayer::Activation(activation),
            Err(_) => {
                return Err(format!(
                    "unknown layer {name:?}: expected conv, maxpool, flatten, linear, relu, \
                     sigmoid, tanh, batchnorm, layernorm or dropout"
                ));
            }
        },
    };
    arguments.finish(name, args.is_some())?;
    Ok(layer)
}

/// A layer's arguments, taken one by one; [`Arguments::finish`] refuses any left over.
struct Arguments<'a> {
    positional: std::collections::VecDeque<&'a str>,
    named: Vec<(&'a str, &'a str)>,
}

impl<'a> Arguments<'a> {
    fn parse(text: &'a str) -> Result<Self, String> {
        let mut arguments = Arguments {
            positional: Default::default(),
            named: Vec::new(),
        };
        if text.trim().is_empty() {
            return Ok(arguments);
        }
        for argument in text.split(',').map(str::trim) {
            match argument.split_once('=') {
                Some((key, value)) => arguments.named.push((key.trim(), value.trim())),
                None if arguments.named.is_empty() => arguments.positional.push_back(argument),
                None => return Err(format!("{argument:?} comes after a key=value argument")),
            }
        }
        Ok(arguments)
    }

    /// The next positional argument, a whole number >= 1.
    fn positional(&mut self, what: &str) -> Result<usize, String> {
        let value = self
            .positional
            .pop_front()
            .ok_or_else(|| format!("needs {what}"))?;
        whole(value, what, 1)
    }

    /// `key=N`, N >= 1, if given.
    fn named(&mut self, key: &str) -> Result<Option<usize>, String> {
        self.take(key).map(|value| whole(value, key, 1)).transpose()
    }

    /// `key=N`, N >= 0, if given.
    fn named_from_zero(&mut self, key: &str) -> Result<Option<usize>, String> {
        self.take(key).map(|value| whole(value, key, 0)).transpose()
    }

    /// The one positional argument of `dropout(P)`, 0 <= P < 1.
    fn probability(&mut self) -> Result<f64, String> {
        let value = self.positional.pop_front().ok_or("needs a probability P")?;
        match value.parse::<f64>() {
            Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
            _ => Err(format!("P {value:?} is not a number in [0, 1)")),
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a str> {
        let at = self.named.iter().position(|(name, _)| *name == key)?;
        Some(self.named.remove(at).1)
    }

    /// Nothing may be left over.
    fn finish(self, layer: &str, had_parentheses: bool) -> Result<(), String> {
        if let Some(extra) = self.positional.front() {
            return Err(format!("{layer} takes no argument {extra:?} there"));
        }
        if let Some((key, _)) = self.named.first() {
            return Err(format!("{layer} has no argument {key:?}"));
        }
        if had_parentheses && matches!(layer, "flatten" | "batchnorm" | "layernorm") {
            return Err(format!("{layer} takes no arguments: write {layer}"));
        }
        Ok(())
    }
}

/// `value` as a whole number of at least `least`, at most 2^20 (no layer here is wider).
fn whole(value: &str, what: &str, least: usize) -> Result<usize, String> {
    const MOST: usize = 1 << 20;
    match value.parse::<usize>() {
        Ok(number) if (least..=MOST).contains(&number) => Ok(number),
        _ => Err(format!(
            "{what} {value:?} is not a whole number from {least} to {MOST}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: ImageShape = ImageShape::new(1, 28, 28);

    #[test]
    fn lenet_is_the_issue_s_network() {
        let spec = "lenet".parse::<Arch>().unwrap().spec(MNIST).unwrap();
        assert_eq!(spec.shape_before(3), ImageShape::new(8, 14, 14));
        assert_eq!(spec.shape_before(7), ImageShape::flat(784));
        assert_eq!(spec.output(), ImageShape::flat(10));
    }

    #[test]
    fn convnet_is_wider_with_a_hidden_layer() {
        let spec = "convnet".parse::<Arch>().unwrap().spec(MNIST).unwrap();
        assert_eq!(
            spec.weight_shapes(),
            [(25, 16), (400, 32), (32 * 7 * 7, 128), (128, 10)]
        );
        let parameters: usize = spec.weight_shapes().iter().map(|(i, o)| i * o + o).sum();
        assert_eq!(parameters, 215_370);
    }

    #[test]
    fn every_layer_written_back_parses_to_itself() {
        let text = "conv(4,5,stride=2,pad=2),tanh,maxpool(3,stride=1),flatten,layernorm,\
                    sigmoid,dropout(0.25),linear(32),batchnorm,relu,linear(10)";
        let arch: Arch = text.parse().unwrap();
        assert_eq!(arch.to_string(), text);
        assert_eq!(arch.to_string().parse::<Arch>().unwrap(), arch);
        let spec = arch.classifier(MNIST, 10).unwrap();
        assert_eq!(spec.shape_before(1), ImageShape::new(4, 14, 14));
        assert_eq!(spec.shape_before(3), ImageShape::new(4, 12, 12));
    }

    #[test]
    fn mistakes_are_named_with_the_layer() {
        let error = |text: &str| match text.parse::<Arch>() {
            Ok(arch) => arch.classifier(MNIST, 10).unwrap_err(),
            Err(error) => error,
        };
        assert_eq!(
            error("conv(8,3),linear(10)"),
            "layer 1 (linear(10)): its input is 8x26x26, an image: Linear takes flat features \
             (put Flatten before it)"
        );
        assert_eq!(
            error("flatten,linear(7)"),
            "it gives 7 features per image, but the data has 10 classes (end with \
             flatten,linear(10))"
        );
        assert!(error("conv(8)").contains("needs kernel size K"));
        assert!(error("conv(8,3,pad=-1)").contains("pad \"-1\""));
        assert!(error("conv(8,3,padding=1)").contains("no argument \"padding\""));
        assert!(error("maxpool(40)").starts_with("layer 0 (maxpool(40)):"));
        assert!(error("dropout(1)").contains("[0, 1)"));
        assert!(error("flatten,softmax,linear(10)").contains("unknown layer \"softmax\""));
        assert!(error("flatten(2),linear(10)").contains("takes no argument"));
        assert!(error("linear(10").contains("never closed"));
        assert!(error("").starts_with("no layers"));
    }
}
