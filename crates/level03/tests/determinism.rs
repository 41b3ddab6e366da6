//! The same seed gives bit-identical weights after 100 SGD steps on 1 and on 2 threads, for the
//! MLP and for a CNN.

use backprop_core::optim::Sgd;
use backprop_core::{
    Activation, ImageShape, LayerSpec, Level, LinearParams, LossKind, MlpSpec, Model, NetSpec,
    Targets,
};
use backprop_harness::fixtures::mnist_train;
use level03::Level03;
use ndarray::s;

fn train_on_threads(threads: usize) -> LinearParams<f32> {
    let data = mnist_train(512);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        assert_eq!(rayon::current_num_threads(), threads);
        let spec = MlpSpec::classifier(&[784, 256, 10], 7);
        let mut model = <Level03 as Level<f32>>::mlp_from_spec(&spec);
        let mut sgd = Sgd::new(0.1);
        for step in 0..100 {
            let rows = (step % 4) * 128..(step % 4 + 1) * 128;
            let images = data.images.slice(s![rows.clone(), ..]);
            model.train_step(images, Targets::Classes(&data.labels[rows]), &mut sgd);
        }
        model.linear_params()
    })
}

#[test]
fn one_and_two_threads_give_bit_identical_weights_after_100_steps() {
    let initial: LinearParams<f32> = MlpSpec::classifier(&[784, 256, 10], 7).initial_params();
    let one = train_on_threads(1);
    let two = train_on_threads(2);
    assert_ne!(one, initial, "training should have moved the weights");
    for (index, ((w1, b1), (w2, b2))) in one.iter().zip(&two).enumerate() {
        let differing = w1
            .iter()
            .zip(w2)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing, 0,
            "linear{index}.weight: {differing} entries differ between 1 and 2 threads"
        );
        assert!(
            b1.iter().zip(b2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "linear{index}.bias differs"
        );
    }
}

/// conv 1->8 3x3 pad 1, ReLU, max pool 2, conv 8->16 3x3 pad 1, ReLU, max pool 2, Linear 784->10.
fn cnn_spec() -> NetSpec {
    NetSpec::new(
        ImageShape::new(1, 28, 28),
        vec![
            LayerSpec::conv2d(1, 8, 3, 1, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::max_pool2d(2, 2),
            LayerSpec::conv2d(8, 16, 3, 1, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::max_pool2d(2, 2),
            LayerSpec::Flatten,
            LayerSpec::Linear {
                in_features: 16 * 7 * 7,
                out_features: 10,
            },
        ],
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap()
    .with_seed(8)
}

fn train_cnn_on_threads(threads: usize) -> LinearParams<f32> {
    let data = mnist_train(256);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut model = <Level03 as Level<f32>>::network_from_spec(&cnn_spec());
        let mut sgd = Sgd::new(0.05).with_momentum(0.9);
        for step in 0..20 {
            let rows = (step % 4) * 64..(step % 4 + 1) * 64;
            let images = data.images.slice(s![rows.clone(), ..]);
            model.train_step(images, Targets::Classes(&data.labels[rows]), &mut sgd);
        }
        model.linear_params()
    })
}

#[test]
fn a_cnn_gives_bit_identical_weights_on_one_and_two_threads() {
    let initial: LinearParams<f32> = cnn_spec().initial_params();
    let one = train_cnn_on_threads(1);
    let two = train_cnn_on_threads(2);
    assert_ne!(one, initial, "training should have moved the weights");
    for (index, ((w1, b1), (w2, b2))) in one.iter().zip(&two).enumerate() {
        let same = |a: &ndarray::ArrayD<f32>, b: &ndarray::ArrayD<f32>| {
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        assert!(
            same(&w1.clone().into_dyn(), &w2.clone().into_dyn())
                && same(&b1.clone().into_dyn(), &b2.clone().into_dyn()),
            "weight layer {index} differs between 1 and 2 threads"
        );
    }
}
