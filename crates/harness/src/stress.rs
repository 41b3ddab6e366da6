//! Stress checks: depth, width, random shapes, and real training runs.
//!
//! Sizes stay small enough for CI; `BACKPROP_STRESS=full` runs the big ones.

use backprop_core::gradcheck::model_gradients;
use backprop_core::optim::{Optimizer, Sgd};
use backprop_core::{Activation, Init, Level, LossKind, MlpSpec, Model, Norm, Targets};
use ndarray::{Array2, Axis};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng, TestRunner};

use crate::basic::check_model_against_reference;
use crate::expect::gradients_pass;
use crate::fixtures::{classes, full_stress, mnist_train, uniform};
use crate::tolerance::{FINITE_DIFFERENCE_NETWORK, REFERENCE_F64};

/// A 30-layer tanh MLP (Xavier init, so the gradient reaching layer 1 is not lost in rounding)
/// passes central differences over every parameter and the input.
pub fn deep_tanh_mlp_passes_finite_differences<L: Level<f64>>() {
    let width = if full_stress() { 16 } else { 6 };
    let mut sizes = vec![4];
    sizes.extend(std::iter::repeat_n(width, 29));
    sizes.push(3);
    let spec = MlpSpec {
        activation: Activation::Tanh,
        init: Init::Xavier,
        ..MlpSpec::classifier(&sizes, 100)
    };
    let input = uniform(3, 4, 101);
    let targets = classes(3, 3, 102);
    let reports = model_gradients(
        &mut L::mlp_from_spec(&spec),
        input.view(),
        Targets::Classes(&targets),
    );
    assert_eq!(
        reports.len(),
        1 + 2 * 30,
        "30 Linear layers: input + weight and bias each"
    );
    gradients_pass("30-layer tanh MLP", &reports, FINITE_DIFFERENCE_NETWORK);
}

/// Random depths, widths, batch sizes, activations and losses pass central differences
/// (proptest; 16 cases, 128 with `BACKPROP_STRESS=full`).
///
/// The cases come from a fixed seed, so every run (and CI) checks the same networks and a
/// failure reproduces.
pub fn random_shapes_pass_finite_differences<L: Level<f64>>() {
    let cases = if full_stress() { 128 } else { 16 };
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let shapes = (
        prop::collection::vec(1usize..8, 2..5), // layer sizes [in, hidden.., out]
        1usize..6,                              // batch
        0usize..3,                              // activation
        any::<bool>(),                          // MSE instead of cross-entropy
        any::<u64>(),                           // seed
    );
    let outcome = runner.run(&shapes, |(sizes, batch, activation, mse, seed)| {
        let activation = Activation::ALL[activation];
        let loss = if mse {
            LossKind::Mse
        } else {
            LossKind::SoftmaxCrossEntropy
        };
        let spec = MlpSpec {
            activation,
            loss,
            ..MlpSpec::classifier(&sizes, seed)
        };
        let input = uniform(batch, sizes[0], seed ^ 1);
        let outputs = *sizes.last().unwrap();
        let class_targets = classes(batch, outputs, seed ^ 2);
        let value_targets = uniform(batch, outputs, seed ^ 3);
        let targets = if mse {
            Targets::Values(value_targets.view())
        } else {
            Targets::Classes(&class_targets)
        };
        let reports = model_gradients(&mut L::mlp_from_spec(&spec), input.view(), targets);
        for report in reports {
            prop_assert!(
                report.passes(FINITE_DIFFERENCE_NETWORK),
                "{activation} MLP {sizes:?}, batch {batch}, {loss:?}: {report}"
            );
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("random shapes against finite differences: {failure}");
    }
}

/// 1024-unit layers agree with the reference pass (sums over 1024 terms).
pub fn wide_layers_match_reference<L: Level<f64>>() {
    let (sizes, batch): (&[usize], usize) = if full_stress() {
        (&[784, 1024, 1024, 10], 128)
    } else {
        (&[64, 1024, 10], 16)
    };
    let input = uniform(batch, sizes[0], 110);
    let targets = classes(batch, 10, 111);
    check_model_against_reference(
        &format!("wide MLP {sizes:?}"),
        &mut L::mlp_from_spec(&MlpSpec::classifier(sizes, 112)),
        LossKind::SoftmaxCrossEntropy,
        &input,
        Targets::Classes(&targets),
        REFERENCE_F64,
    );
}

/// Full-batch SGD in f32 on three Gaussian blobs: the loss falls below a fifth of its start.
pub fn training_reduces_the_loss<L: Level<f64> + Level<f32>>() {
    // 3 clusters of 20 points around (2, 0), (-1, 1.7), (-1, -1.7), spread 0.5.
    let centres = [[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]];
    let noise = uniform(60, 2, 120) * 0.5;
    let targets: Vec<usize> = (0..60).map(|row| row % 3).collect();
    let points = Array2::from_shape_fn((60, 2), |(row, col)| {
        (centres[targets[row]][col] + noise[[row, col]]) as f32
    });
    let mut model = <L as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[2, 16, 3], 121));
    let mut sgd = Sgd::new(0.5);
    let losses: Vec<f32> = (0..200)
        .map(|_| model.train_step(points.view(), Targets::Classes(&targets), &mut sgd))
        .collect();
    let (first, last) = (losses[0], losses[199]);
    assert!(
        last.is_finite() && last < 0.2 * first,
        "SGD on three blobs: loss went from {first} to {last} in 200 steps (expected below {})",
        0.2 * first
    );
}

/// At PyTorch's default init, [784, 256, 10] on MNIST predicts nearly uniform probabilities:
/// the loss is close to ln 10 = 2.3026.
pub fn initial_loss_is_near_ln_10<L: Level<f64> + Level<f32>>() {
    let data = mnist_train(64);
    let mut model = <L as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[784, 256, 10], 130));
    model.forward(data.images());
    let loss = model.loss(Targets::Classes(&data.labels));
    // The logits have a spread of a few hundredths, which moves the loss by about 0.01.
    let ln10 = 10f32.ln();
    assert!(
        (loss - ln10).abs() < 0.05,
        "initial loss {loss} on 10 classes, expected about ln 10 = {ln10}: check the init scale \
         and the mean over the batch"
    );
}

/// Full-batch SGD drives 64 MNIST images to 100% training accuracy.
pub fn overfits_64_mnist_images<L: Level<f64> + Level<f32>>() {
    let hidden = if full_stress() { 256 } else { 64 };
    let data = mnist_train(64);
    let mut model = <L as Level<f32>>::mlp_from_spec(&MlpSpec::classifier(&[784, hidden, 10], 140));
    let mut accuracy = 0.0;
    let mut sgd = Sgd::new(0.5);
    for step in 0..400 {
        let logits = model.forward(data.images());
        accuracy = training_accuracy(&logits, &data.labels);
        if accuracy == 1.0 {
            return;
        }
        let loss = model.loss(Targets::Classes(&data.labels));
        assert!(
            loss.is_finite(),
            "overfitting 64 MNIST images: loss {loss} at step {step}"
        );
        model.zero_grad();
        model.backward_params_only();
        sgd.step(&mut model);
    }
    panic!("overfitting 64 MNIST images: training accuracy {accuracy} after 400 steps, expected 1");
}

/// The fraction of rows whose largest logit is the target class.
fn training_accuracy(logits: &Array2<f32>, labels: &[usize]) -> f64 {
    let correct = logits
        .axis_iter(Axis(0))
        .zip(labels)
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (class, &z)| {
                    if z > best.1 { (class, z) } else { best }
                });
            best.0 == **label
        })
        .count();
    correct as f64 / labels.len() as f64
}

/// Allocations per SGD step of [784, 256, 10] in f32, on a 2-thread rayon pool, after two
/// warm-up steps: at batch 64 over 5 and over 10 steps, and at batch 128 over 5 steps; plain,
/// with batch norm and dropout 0.2, and with layer norm. Each count is the least of 4 windows
/// ([`steady_allocations`](crate::alloc::steady_allocations): a worker's one-time set-up can fall
/// in any one window, on a loaded machine after the warm-up).
///
/// A level that declares [`Level::ALLOCATION_BOUNDED`] must make the same number in all three
/// (independent of batch size and step count) and at most 16 per step. Other levels are only
/// measured (the count is printed, and must be above 0, which shows the counter is live).
pub fn allocations_per_training_step<L: Level<f32>>() {
    // The count is one total over every counted thread: no other counting check meanwhile.
    let _counting = crate::alloc::exclusive();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(|_| crate::alloc::count_this_thread())
        .build()
        .expect("a 2-thread rayon pool");
    let inputs = uniform(128, 784, 150).mapv(|x| x.abs() as f32);
    let targets = classes(128, 10, 151);
    let count =
        |(norm, dropout): (Norm, f64), batch: usize, steps: usize| -> usize {
            pool.install(|| {
            let before = crate::alloc::allocations();
            drop(std::hint::black_box(Box::new(0u64)));
            assert!(
                crate::alloc::allocations() > before,
                "the counting allocator is not installed in this test binary: stamp the suite with \
                 backprop_harness::suite!"
            );
            let spec = MlpSpec {
                norm,
                dropout,
                ..MlpSpec::classifier(&[784, 256, 10], 152)
            };
            let mut model = <L as Level<f32>>::mlp_from_spec(&spec);
            let batch_input = inputs.slice(ndarray::s![..batch, ..]);
            let batch_targets = Targets::Classes(&targets[..batch]);
            let mut sgd = Sgd::new(0.1);
            for _ in 0..2 {
                model.train_step(batch_input, batch_targets, &mut sgd);
            }
            // More windows than the pool's 2 threads (see `steady_allocations`); one for a level
            // that is only measured.
            let windows = if <L as Level<f32>>::ALLOCATION_BOUNDED { 4 } else { 1 };
            crate::alloc::steady_allocations(windows, steps, || {
                model.train_step(batch_input, batch_targets, &mut sgd);
            })
        })
        };
    let layouts = [(Norm::None, 0.0), (Norm::Batch, 0.2), (Norm::Layer, 0.0)];
    // A bounded level is held to the same count at two step counts and two batch sizes; a
    // level that is only measured needs one small run per layout (level01's loops take most
    // of a minute over the full set in a debug build).
    let runs: Vec<_> = layouts
        .iter()
        .flat_map(|&layout| match <L as Level<f32>>::ALLOCATION_BOUNDED {
            true => vec![(layout, 64, 5), (layout, 64, 10), (layout, 128, 5)],
            false => vec![(layout, 8, 1)],
        })
        .collect();
    let totals: Vec<usize> = runs
        .iter()
        .map(|&(layout, batch, steps)| count(layout, batch, steps))
        .collect();
    let report: Vec<String> = runs
        .iter()
        .zip(&totals)
        .map(|(&((norm, dropout), batch, steps), total)| {
            format!("{norm} norm, dropout {dropout}, batch {batch}, {steps} steps: {total}")
        })
        .collect();
    let report = report.join("; ");
    println!(
        "{}: allocations after warm-up: {report}",
        <L as Level<f32>>::NAME
    );
    if !<L as Level<f32>>::ALLOCATION_BOUNDED {
        assert!(
            totals.iter().all(|&total| total > 0),
            "no allocation counted: {report}"
        );
        return;
    }
    let per_step: Vec<f64> = runs
        .iter()
        .zip(&totals)
        .map(|(&(_, _, steps), &total)| total as f64 / steps as f64)
        .collect();
    assert!(
        per_step
            .iter()
            .all(|&count| count == per_step[0] && count <= 16.0),
        "{} declares itself allocation-bounded, but allocations per step vary or exceed 16: \
         {report}",
        <L as Level<f32>>::NAME
    );
}
