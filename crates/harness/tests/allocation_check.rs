//! The allocation check can fail: level02 dressed up as allocation-bounded is rejected.

use backprop_core::{Conv2dGeometry, Float, Level, LinearParams, NetSpec, Pool2dGeometry};
use backprop_harness::stress;
use ndarray::{Array1, Array2};

#[global_allocator]
static ALLOCATOR: backprop_harness::alloc::CountingAllocator =
    backprop_harness::alloc::CountingAllocator;

/// level02 (50 allocations per step) claiming to be allocation-bounded.
#[derive(Debug)]
struct Pretender;

impl<F: Float> Level<F> for Pretender {
    const NAME: &'static str = "level02 pretending";
    const ALLOCATION_BOUNDED: bool = true;
    type Linear = <level02::Level02 as Level<F>>::Linear;
    type Relu = <level02::Level02 as Level<F>>::Relu;
    type Sigmoid = <level02::Level02 as Level<F>>::Sigmoid;
    type Tanh = <level02::Level02 as Level<F>>::Tanh;
    type SoftmaxCrossEntropy = <level02::Level02 as Level<F>>::SoftmaxCrossEntropy;
    type Mse = <level02::Level02 as Level<F>>::Mse;
    type BatchNorm = <level02::Level02 as Level<F>>::BatchNorm;
    type LayerNorm = <level02::Level02 as Level<F>>::LayerNorm;
    type Dropout = <level02::Level02 as Level<F>>::Dropout;
    type Conv2d = <level02::Level02 as Level<F>>::Conv2d;
    type MaxPool2d = <level02::Level02 as Level<F>>::MaxPool2d;
    type Network = <level02::Level02 as Level<F>>::Network;

    fn linear(weight: Array2<F>, bias: Array1<F>) -> Self::Linear {
        <level02::Level02 as Level<F>>::linear(weight, bias)
    }
    fn relu() -> Self::Relu {
        <level02::Level02 as Level<F>>::relu()
    }
    fn sigmoid() -> Self::Sigmoid {
        <level02::Level02 as Level<F>>::sigmoid()
    }
    fn tanh() -> Self::Tanh {
        <level02::Level02 as Level<F>>::tanh()
    }
    fn softmax_cross_entropy() -> Self::SoftmaxCrossEntropy {
        <level02::Level02 as Level<F>>::softmax_cross_entropy()
    }
    fn mse() -> Self::Mse {
        <level02::Level02 as Level<F>>::mse()
    }
    fn batch_norm(features: usize) -> Self::BatchNorm {
        <level02::Level02 as Level<F>>::batch_norm(features)
    }
    fn layer_norm(features: usize) -> Self::LayerNorm {
        <level02::Level02 as Level<F>>::layer_norm(features)
    }
    fn dropout(p: f64, seed: u64) -> Self::Dropout {
        <level02::Level02 as Level<F>>::dropout(p, seed)
    }
    fn conv2d(weight: Array2<F>, bias: Array1<F>, geometry: Conv2dGeometry) -> Self::Conv2d {
        <level02::Level02 as Level<F>>::conv2d(weight, bias, geometry)
    }
    fn max_pool2d(geometry: Pool2dGeometry) -> Self::MaxPool2d {
        <level02::Level02 as Level<F>>::max_pool2d(geometry)
    }
    fn network(params: LinearParams<F>, spec: &NetSpec) -> Self::Network {
        <level02::Level02 as Level<F>>::network(params, spec)
    }
}

#[test]
#[should_panic = "declares itself allocation-bounded, but allocations per step vary or exceed 16"]
fn a_level_that_allocates_every_step_fails_the_allocation_check() {
    stress::allocations_per_training_step::<Pretender>();
}
