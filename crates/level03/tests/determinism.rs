//! The same seed gives bit-identical weights after 100 SGD steps on 1 and on 2 threads.

use backprop_core::optim::Sgd;
use backprop_core::{Level, LinearParams, MlpSpec, Model, Targets};
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
