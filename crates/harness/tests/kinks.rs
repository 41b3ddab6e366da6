//! ReLU kinks: entries whose ±h perturbation moves a ReLU input across 0 are reported, not
//! failed, and only those entries are spared.

use backprop_core::gradcheck::{layer_gradients, model_gradients};
use backprop_core::{Activation, Level, LossKind, MlpSpec, Targets};
use level02::Level02;
use ndarray::array;

#[test]
fn relu_inputs_at_zero_are_kinks_and_would_otherwise_fail() {
    let x = array![[0.0, 1.0], [-1.0, 0.0]];
    let upstream = array![[1.0, 2.0], [3.0, 4.0]];

    let report = layer_gradients(
        &mut level02::Relu::default(),
        x.view(),
        upstream.view(),
        true,
    );
    assert_eq!(report.kinks, vec![vec![0, 0], vec![1, 1]]);
    assert!(report.passes(1e-7), "{}", report);

    // Unmarked, the numeric slope at 0 is the average of 0 and 1 (times g): the check fails.
    let report = layer_gradients(
        &mut level02::Relu::default(),
        x.view(),
        upstream.view(),
        false,
    );
    assert!(!report.passes(1e-2), "{}", report);

    let expected = 0.5 * upstream[[report.worst_index[0], report.worst_index[1]]];
    assert!((report.numeric - expected).abs() < 1e-9, "{report}");
}

#[test]
fn an_mlp_flags_the_inputs_that_cross_a_relu_kink() {
    // A zero first bias and a zero input row put every first-layer pre-activation of that row
    // at exactly 0: perturbing any entry of the row flips some of them.
    let mut layers = MlpSpec::classifier(&[3, 4, 2], 5).initial_params::<f64>();
    layers[0].1.fill(0.0);
    let mut model =
        <Level02 as Level<f64>>::mlp(layers, Activation::Relu, LossKind::SoftmaxCrossEntropy);
    let input = array![[0.0, 0.0, 0.0], [0.5, -1.0, 0.25]];
    let reports = model_gradients(&mut model, input.view(), Targets::Classes(&[1, 0]));
    assert_eq!(reports[0].kinks, vec![vec![0, 0], vec![0, 1], vec![0, 2]]);
    assert!(reports.iter().all(|report| report.passes(1e-5)));
}

/// A network that gives a new loss on every forward (dropout in training) cannot be checked by
/// differences: the check refuses it instead of reporting noise. In evaluation mode it runs.
#[test]
fn finite_differences_refuse_a_network_with_dropout_in_training() {
    let spec = MlpSpec {
        dropout: 0.5,
        ..MlpSpec::classifier(&[3, 8, 2], 6)
    };
    let mut model = <Level02 as Level<f64>>::mlp_from_spec(&spec);
    let input = array![[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]];
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model_gradients(&mut model, input.view(), Targets::Classes(&[1, 0]));
    }))
    .expect_err("a dropout network in training was checked");
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("need a deterministic network"),
        "{message}"
    );
    backprop_core::Model::set_training(&mut model, false);
    let reports = model_gradients(&mut model, input.view(), Targets::Classes(&[1, 0]));
    assert!(reports.iter().all(|report| report.passes(1e-5)));
}
