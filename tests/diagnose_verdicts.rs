//! `backprop diagnose`'s verdicts agree with what each network did, over the whole default grid
//! (depths 2, 5, 10, 20 x relu, sigmoid, tanh x five inits x clipping) on the synthetic
//! clusters, seed 0, 200 SGD steps, level03.

use backprop::diagnose::{DiagnoseConfig, INITS, Outcome, diagnose};
use backprop_core::flow::{NOT_LEARNING_FRACTION, Verdict};
use backprop_core::{Activation, Norm};
use level03::Level03;

use crate::common::Scratch;

fn grid() -> Vec<Outcome> {
    let out = Scratch::new("diagnose");
    let config = DiagnoseConfig {
        depths: vec![2, 5, 10, 20],
        width: 64,
        steps: 200,
        batch_size: 64,
        lr: 0.1,
        clip: 1.0,
        norms: vec![Norm::None],
        activations: Activation::ALL.to_vec(),
        dropout: 0.0,
        seed: 0,
        synthetic: true,
        data: "data/mnist".into(),
        out: out.to_path_buf(),
        quiet: true,
    };
    let outcomes = diagnose::<Level03>(&config).expect("the synthetic grid runs");
    assert_eq!(outcomes.len(), 4 * 3 * INITS.len() * 2);
    outcomes
}

fn describe(outcome: &Outcome) -> String {
    format!(
        "depth {} {} {} clip {}: verdict {}, final loss {:.3}, ratio {:.1e}, upd@0 {:.1}",
        outcome.depth,
        outcome.activation,
        outcome.init,
        outcome.clipped,
        outcome.verdict(),
        outcome.final_loss(),
        outcome.median_ratio(),
        outcome.median_first_update()
    )
}

#[test]
fn verdicts_agree_with_the_outcome_over_the_whole_grid() {
    let outcomes = grid();
    let chance = 10f64.ln();

    // 1. A network whose loss stayed at chance learned nothing: never "healthy".
    for outcome in &outcomes {
        let final_loss = outcome.final_loss();
        if final_loss.is_nan() || final_loss >= NOT_LEARNING_FRACTION * chance {
            assert_ne!(outcome.verdict(), Verdict::Healthy, "{}", describe(outcome));
        }
    }

    // 2. Deep sigmoid nets at PyTorch's or Xavier's init: the textbook vanishing gradient.
    let deep_sigmoid = outcomes.iter().filter(|outcome| {
        outcome.activation == Activation::Sigmoid
            && outcome.depth >= 10
            && ["pytorch", "xavier"].contains(&outcome.init)
    });
    for outcome in deep_sigmoid {
        assert_eq!(
            outcome.verdict(),
            Verdict::Vanishing,
            "{}",
            describe(outcome)
        );
    }

    // 3. ReLU at N(0, 1) without clipping, 5 layers or more: the activations grow by about
    //    sqrt(fan_in / 2) per layer, the loss and the gradients blow up. (At depth 2 the same
    //    init trains, to a loss of 0.05 on these clusters: calling it exploding would be false.)
    let exploding_relu = outcomes.iter().filter(|outcome| {
        outcome.activation == Activation::Relu
            && outcome.init == "N(0,1)"
            && !outcome.clipped
            && outcome.depth >= 5
    });
    for outcome in exploding_relu {
        let verdict = outcome.verdict();
        assert!(
            matches!(verdict, Verdict::Diverged(_) | Verdict::Exploding),
            "{}",
            describe(outcome)
        );
    }
}

/// Batch norm cures the deep sigmoid net's vanishing gradient: at depth 10, PyTorch's and
/// Xavier's init, the same 300 steps end at a loss at least 5 times lower with batch norm.
#[test]
fn batch_norm_cures_the_deep_sigmoid_vanishing_gradient() {
    let out = Scratch::new("diagnose-norm");
    let config = DiagnoseConfig {
        depths: vec![10],
        width: 64,
        steps: 300,
        batch_size: 64,
        lr: 0.1,
        clip: 1.0,
        norms: vec![Norm::None, Norm::Batch],
        // Only the sigmoid runs are read.
        activations: vec![Activation::Sigmoid],
        dropout: 0.0,
        seed: 0,
        synthetic: true,
        data: "data/mnist".into(),
        out: out.to_path_buf(),
        quiet: true,
    };
    let outcomes = diagnose::<Level03>(&config).expect("the synthetic grid runs");
    for init in ["pytorch", "xavier"] {
        let final_loss = |norm: Norm| {
            let outcome = outcomes
                .iter()
                .find(|outcome| {
                    outcome.activation == Activation::Sigmoid
                        && outcome.init == init
                        && outcome.norm == norm
                        && !outcome.clipped
                })
                .expect("the grid has the configuration");
            (outcome.final_loss(), outcome.verdict())
        };
        let ((plain, plain_verdict), (normalized, verdict)) =
            (final_loss(Norm::None), final_loss(Norm::Batch));
        println!(
            "depth 10 sigmoid, {init} init: final loss {plain:.3} ({plain_verdict}) without \
             batch norm, {normalized:.3} ({verdict}) with it"
        );
        assert_eq!(plain_verdict, Verdict::Vanishing, "{init}");
        assert!(
            normalized * 5.0 <= plain,
            "{init}: batch norm gave {normalized:.3}, not 5x below {plain:.3}"
        );
    }
}
