//! `Relu`: y = max(0, x).

use std::marker::PhantomData;

use backprop_core::{Float, Layer, assert_same_shape};
use ndarray::{Array2, ArrayView2, Zip};

/// The rectifier: `y = max(0, x)`, gradient `1` where `x > 0` and `0` elsewhere.
///
/// At exactly `x = 0` the gradient is 0, as in PyTorch's `F.relu`. A NaN input stays NaN in the
/// output (it is not silently turned into 0), so the loss becomes NaN.
#[derive(Debug, Clone, Default)]
pub struct Relu<F> {
    /// x from the last forward; backward needs its sign.
    input: Option<Array2<F>>,
    _float: PhantomData<F>,
}

impl<F: Float> Layer<F> for Relu<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        self.input = Some(input.to_owned());
        // `x <= 0` is false for NaN, so NaN passes through.
        input.mapv(|x| if x <= F::zero() { F::zero() } else { x })
    }

    #[track_caller]
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let input = self
            .input
            .as_ref()
            .expect("ReLU backward called before forward");
        assert_same_shape("ReLU backward grad_output", grad_output.dim(), input.dim());
        // dL/dx = g where x > 0, else 0 (strict: the gradient at 0 is 0).
        Zip::from(&grad_output)
            .and(input)
            .map_collect(|&grad, &x| if x > F::zero() { grad } else { F::zero() })
    }
}
