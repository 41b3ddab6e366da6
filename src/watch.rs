//! `backprop train --watch-gradients`: one-line warnings when a layer's gradient leaves the
//! healthy band, with the likely cause.
//!
//! The band, per layer i and step ([`Health::of`], the rule `backprop diagnose` uses too):
//!
//! - vanishing: ‖dL/dW_i‖ below 1e-2 of the last layer's, or below 1e-3 outright, *and* a step
//!   that moves the layer's weights by less than 1e-4 of their size (log10 update ratio below
//!   -4): the layer does not learn;
//! - exploding: ‖dL/dW_i‖ above 1e3 times the last layer's, or above 1e3 outright;
//! - too large a step: log10 update ratio above -0.5 (one step moves the weights by over 30%).
//!
//! Each layer and state is reported at most once per epoch (the first step it happens), so a
//! long run prints a few lines per epoch, not one per step.
//!
//! A warning names a likely cause only when the step's statistics single one out (dead ReLU
//! units, saturated units, sigmoid's bound, huge logits); otherwise it says what differs and
//! where, and names none: a gradient as small in the last layer as in this one is not shrunk by
//! any layer, and with normalization layers small weights cannot explain a shrink.

use std::collections::BTreeSet;

use backprop_core::flow::{Health, LAGGING_RATIO, LayerStats, StepStats};
use backprop_core::{Activation, Norm};

/// Above this log10 update ratio, one step changes the weights by over 30% of their norm. (The
/// default MNIST run peaks near -0.9 in its last layer early on and trains well.)
pub const LARGE_UPDATE_LOG10: f64 = -0.5;

/// Which band a layer has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Symptom {
    Vanishing,
    Exploding,
    LargeUpdate,
}

/// The run's settings a cause is told from, and what this epoch already reported.
#[derive(Debug)]
pub struct GradientWatch {
    activation: Activation,
    norm: Norm,
    lr: f32,
    epoch: usize,
    reported: BTreeSet<(usize, Symptom)>,
}

impl GradientWatch {
    /// A watch for a run of this activation, normalization and learning rate.
    pub fn new(activation: Activation, norm: Norm, lr: f32) -> Self {
        GradientWatch {
            activation,
            norm,
            lr,
            epoch: 0,
            reported: BTreeSet::new(),
        }
    }

    /// The warnings for this step's statistics (usually none).
    pub fn check(&mut self, step: usize, epoch: usize, stats: &StepStats) -> Vec<String> {
        let Some(last) = stats.layers.last() else {
            return Vec::new();
        };
        if epoch != self.epoch {
            self.epoch = epoch;
            self.reported.clear();
        }
        let mut warnings = Vec::new();
        for (index, layer) in stats.layers.iter().enumerate() {
            let relative = layer.weight_grad_norm / last.weight_grad_norm;
            let norm = layer.weight_grad_norm;
            // One line per layer: an exploding gradient also makes the update too large, and
            // saying so twice adds nothing.
            let symptom = match Health::of(relative, norm, layer.update_ratio_log10) {
                Health::Vanishing => Some(Symptom::Vanishing),
                Health::Exploding => Some(Symptom::Exploding),
                Health::Healthy if layer.update_ratio_log10 > LARGE_UPDATE_LOG10 => {
                    Some(Symptom::LargeUpdate)
                }
                Health::Healthy => None,
            };
            if let Some(symptom) = symptom {
                if !self.reported.insert((index, symptom)) {
                    continue;
                }
                let cause = self.cause(symptom, stats, index);
                let what = match symptom {
                    Symptom::Vanishing => "gradient vanishing",
                    Symptom::Exploding => "gradient exploding",
                    Symptom::LargeUpdate => "update too large",
                };
                let compared = if index + 1 < stats.layers.len() {
                    format!(" ({relative:.1e} x the last layer's)")
                } else {
                    String::new()
                };
                warnings.push(format!(
                    "warning: step {step} (epoch {epoch}): linear{index}.weight {what}: \
                     ‖dL/dW‖ = {norm:.1e}{compared}, update ratio 10^{:.1}; {cause}",
                    layer.update_ratio_log10
                ));
            }
        }
        warnings
    }

    /// "likely cause: " and the reason for `symptom` at layer `index` with a remedy, when the
    /// statistics single one out; else "no cause singled out: " and what they show.
    fn cause(&self, symptom: Symptom, stats: &StepStats, index: usize) -> String {
        let lr = self.lr;
        match symptom {
            Symptom::Vanishing => self.vanishing_cause(stats, index),
            Symptom::Exploding => likely(match stats.max_abs_logit {
                Some(logit) if logit > 1e3 => format!(
                    "weights too large for the depth (largest |logit| {logit:.1e}): each layer \
                     multiplies the signal; use --init he or xavier, or a smaller --lr"
                ),
                _ => "each layer multiplies the gradient (weights too large for the depth, or a \
                      too-large --lr has grown them); use --init he or xavier, or a smaller --lr"
                    .into(),
            }),
            Symptom::LargeUpdate => likely(format!(
                "--lr {lr} is large for these weights (one step changes them by over 30%); \
                 lower --lr"
            )),
        }
    }

    /// [`Self::cause`] of a vanishing gradient at layer `index`: dead or saturated units on its
    /// way, else what the ratio to the last layer shows.
    fn vanishing_cause(&self, stats: &StepStats, index: usize) -> String {
        let (activation, lr) = (self.activation, self.lr);
        // The activations that feed this layer (dW = h^T g) and those its gradient passes on
        // the way down from the loss.
        let hidden = stats.layers.len() - 1;
        let above: &[LayerStats] = &stats.layers[index.saturating_sub(1).min(hidden)..hidden];
        let worst = |field: fn(&LayerStats) -> Option<f64>| {
            above.iter().filter_map(field).fold(0.0f64, f64::max)
        };
        let (dead, saturated) = (
            worst(|layer| layer.dead_fraction),
            worst(|layer| layer.saturated_fraction),
        );
        let last = stats.layers[hidden].weight_grad_norm;
        let relative = stats.layers[index].weight_grad_norm / last;
        // As small where it leaves the loss (or 0 there too, a ratio of NaN): no layer on the
        // way down shrinks it.
        let shrunk = relative < LAGGING_RATIO;
        match activation {
            Activation::Relu if dead > 0.5 => likely(format!(
                "dead ReLU units ({:.0}% of a layer's units output 0 for the whole batch, so no \
                 gradient passes them); lower --lr (now {lr}) or use --init he",
                100.0 * dead
            )),
            Activation::Sigmoid | Activation::Tanh if saturated > 0.5 => likely(format!(
                "saturated {activation} units ({:.0}% of a layer's outputs sit at an asymptote, \
                 where the derivative is ~0); use --init xavier or --activation relu --init he",
                100.0 * saturated
            )),
            _ if !shrunk => format!(
                "no cause singled out: the gradient is already this small where it leaves the \
                 loss (the last layer's ‖dL/dW‖ is {last:.1e})"
            ),
            Activation::Sigmoid => likely(
                "sigmoid's derivative is at most 1/4, so each layer shrinks the gradient at least \
                 4x; use --activation relu --init he, or fewer layers"
                    .into(),
            ),
            _ if self.norm != Norm::None => format!(
                "no cause singled out: the gradient shrinks {:.0e}x between the last layer and \
                 this one, with no dead or saturated units between them and {} norm rescaling \
                 each layer",
                1.0 / relative,
                self.norm
            ),
            _ => likely(
                "weights too small for the depth: each layer shrinks the gradient; use --init he \
                 (relu) or --init xavier (tanh)"
                    .into(),
            ),
        }
    }
}

/// "likely cause: " and `cause`.
fn likely(cause: String) -> String {
    format!("likely cause: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(norm: f64, update: f64, dead: Option<f64>, saturated: Option<f64>) -> LayerStats {
        LayerStats {
            weight_grad_norm: norm,
            input_grad_norm: None,
            update_ratio_log10: update,
            dead_fraction: dead,
            saturated_fraction: saturated,
        }
    }

    #[test]
    fn a_vanishing_sigmoid_layer_is_named_once_with_the_derivative_bound() {
        let stats = StepStats {
            layers: vec![
                layer(1e-7, -8.0, None, Some(0.0)),
                layer(1e-2, -3.0, None, Some(0.0)),
                layer(0.5, -2.5, None, None),
            ],
            max_abs_logit: Some(1.0),
        };
        let mut watch = GradientWatch::new(Activation::Sigmoid, Norm::None, 0.1);
        let warnings = watch.check(7, 1, &stats);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("warning: step 7 (epoch 1): linear0.weight gradient vanishing")
        );
        assert!(warnings[0].contains("at most 1/4"), "{}", warnings[0]);
        // Still out of band at the next step: no repeat within the epoch; again in the next.
        assert!(watch.check(8, 1, &stats).is_empty());
        assert_eq!(watch.check(9, 2, &stats).len(), 1);
    }

    #[test]
    fn a_small_gradient_that_still_moves_its_weights_is_not_vanishing() {
        // 1e-4 of the last layer's push, but small weights: the step is 1e-3 of their size.
        let stats = StepStats {
            layers: vec![
                layer(1e-4, -3.0, Some(0.0), None),
                layer(1.0, -2.5, None, None),
            ],
            max_abs_logit: Some(1.0),
        };
        let warnings = GradientWatch::new(Activation::Relu, Norm::None, 0.1).check(1, 1, &stats);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn dead_relu_units_and_large_updates_are_told_apart() {
        let stats = StepStats {
            layers: vec![
                layer(1e-9, -9.0, Some(0.9), None),
                layer(1.0, -0.2, None, None),
            ],
            max_abs_logit: Some(3.0),
        };
        let warnings = GradientWatch::new(Activation::Relu, Norm::None, 0.3).check(1, 1, &stats);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("linear0.weight gradient vanishing"));
        assert!(warnings[0].contains("90% of a layer"), "{}", warnings[0]);
        assert!(warnings[1].contains("linear1.weight update too large"));
        assert!(warnings[1].contains("--lr 0.3"), "{}", warnings[1]);
    }

    /// A gradient as small in the last layer as here (or 0 everywhere: dropout that dropped a
    /// whole layer, a batch already fitted) is shrunk by no layer: no cause is named.
    #[test]
    fn a_gradient_small_from_the_loss_down_names_no_cause() {
        for last in [0.0, 2e-5] {
            let stats = StepStats {
                layers: vec![
                    layer(last / 2.0, -7.0, Some(0.0), None),
                    layer(last, -7.0, None, None),
                ],
                max_abs_logit: Some(1.0),
            };
            let warnings =
                GradientWatch::new(Activation::Relu, Norm::None, 0.1).check(1, 1, &stats);
            assert_eq!(warnings.len(), 2, "{warnings:?}");
            for warning in &warnings {
                assert!(
                    warning.contains(
                        "no cause singled out: the gradient is already this small where it \
                         leaves the loss"
                    ) && !warning.contains("likely cause"),
                    "{warning}"
                );
            }
        }
    }

    /// Every gradient 0 because the last hidden layer's units are all dead: the dead units are
    /// the evidence, and they are named.
    #[test]
    fn dead_units_are_named_even_when_no_gradient_reaches_the_last_layer() {
        let stats = StepStats {
            layers: vec![
                layer(0.0, f64::NEG_INFINITY, Some(0.2), None),
                layer(0.0, f64::NEG_INFINITY, Some(1.0), None),
                layer(0.0, f64::NEG_INFINITY, None, None),
            ],
            max_abs_logit: Some(0.1),
        };
        let warnings = GradientWatch::new(Activation::Relu, Norm::None, 0.3).check(1, 1, &stats);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|warning| warning.contains("likely cause: dead ReLU units (100%")),
            "{warnings:?}"
        );
    }

    /// A shrink with no dead or saturated units is put on small weights only without
    /// normalization layers, which rescale whatever the weights' size.
    #[test]
    fn small_weights_are_named_only_without_normalization() {
        let stats = StepStats {
            layers: vec![
                layer(1e-6, -8.0, Some(0.0), None),
                layer(1e-3, -5.0, Some(0.0), None),
                layer(1.0, -2.5, None, None),
            ],
            max_abs_logit: Some(1.0),
        };
        let warning = |norm| GradientWatch::new(Activation::Relu, norm, 0.1).check(1, 1, &stats);
        let plain = warning(Norm::None);
        assert!(
            plain[0].contains("likely cause: weights too small"),
            "{plain:?}"
        );
        for norm in [Norm::Batch, Norm::Layer] {
            let normalized = warning(norm);
            assert!(
                normalized[0].contains("no cause singled out: the gradient shrinks 1e6x")
                    && normalized[0].contains(&format!("{norm} norm"))
                    && !normalized[0].contains("likely cause"),
                "{normalized:?}"
            );
        }
    }

    #[test]
    fn huge_logits_point_at_the_init() {
        let stats = StepStats {
            layers: vec![
                layer(1e9, 5.0, Some(0.0), None),
                layer(1e8, 4.0, None, None),
            ],
            max_abs_logit: Some(1e12),
        };
        let warnings = GradientWatch::new(Activation::Relu, Norm::None, 0.1).check(1, 1, &stats);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("exploding") && w.contains("largest |logit|"))
        );
    }
}
