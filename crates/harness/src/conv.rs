//! The convolution checks, the group a learner climbs after normalization: `Conv2d` and
//! `MaxPool2d` by hand, against the reference on many geometries, against finite differences
//! (alone and inside a small CNN), at their edges (a 1x1 kernel is a `Linear` on every pixel, a
//! kernel as large as the image is a `Linear` on the whole image, a kernel larger than the
//! padded input is refused), under the gradient rule, and against PyTorch's fixtures
//! (`conv::gate6_pytorch_convolution`, in [`crate::parity`]).
//!
//! Images are rows of `(batch, C H W)` arrays (NCHW flattened per row); a convolution's weight
//! is the `(C kh kw, out)` matrix of its im2col product (see [`backprop_core::conv`]).

use backprop_core::gradcheck::{layer_gradients, linear_gradients, model_gradients};
use backprop_core::optim::Sgd;
use backprop_core::{
    Activation, Conv2dGeometry, ImageShape, Layer, LayerSpec, Level, LinearLayer, LossKind, Model,
    NetSpec, Pool2dGeometry, Targets,
};
use ndarray::{Array1, Array2, array, s};

use crate::edge::compare_into_forms;
use crate::expect::{close, gradients_pass};
use crate::fixtures::{classes, uniform};
use crate::reference;
use crate::tolerance::{
    EXACT_F64, FINITE_DIFFERENCE_LAYER, FINITE_DIFFERENCE_NETWORK, REFERENCE_F64,
};

/// The small CNN of the PyTorch fixtures and the cross-level test: 1x8x8 images, 5 classes.
///
/// `nn.Sequential(Conv2d(1, 3, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(3, 4, 3), Tanh(),
/// Flatten(), Linear(16, 5))`, softmax cross-entropy.
pub fn small_cnn_spec(seed: u64) -> NetSpec {
    NetSpec::new(
        ImageShape::new(1, 8, 8),
        vec![
            LayerSpec::conv2d(1, 3, 3, 1, 1),
            LayerSpec::Activation(Activation::Relu),
            LayerSpec::max_pool2d(2, 2),
            LayerSpec::conv2d(3, 4, 3, 1, 0),
            LayerSpec::Activation(Activation::Tanh),
            LayerSpec::Flatten,
            LayerSpec::Linear {
                in_features: 16,
                out_features: 5,
            },
        ],
        LossKind::SoftmaxCrossEntropy,
    )
    .expect("the small CNN's layers fit")
    .with_seed(seed)
}

/// The geometries the reference and finite-difference checks sweep: stride 1 and 2, padding 0
/// and 1, square and rectangular kernels, square and non-square images, one and several
/// channels in and out.
pub fn geometries() -> Vec<Conv2dGeometry> {
    let conv = |channels, height, width, out, kernel, stride, padding| {
        Conv2dGeometry::new(
            ImageShape::new(channels, height, width),
            out,
            kernel,
            stride,
            padding,
        )
        .expect("a geometry that fits")
    };
    vec![
        conv(1, 5, 5, 1, (3, 3), 1, 0),
        conv(2, 6, 5, 3, (3, 3), 1, 1),
        conv(3, 7, 6, 2, (3, 3), 2, 1),
        conv(2, 5, 7, 2, (2, 3), 1, 0),
        conv(1, 8, 8, 4, (3, 3), 2, 0),
        conv(3, 4, 4, 2, (1, 1), 1, 0),
    ]
}

fn name(geometry: &Conv2dGeometry) -> String {
    let (kh, kw) = geometry.kernel;
    format!(
        "Conv2d({} -> {}, {kh}x{kw}, stride {}, padding {}) on {}",
        geometry.input.channels,
        geometry.out_channels,
        geometry.stride,
        geometry.padding,
        geometry.input
    )
}

/// Weight and bias for `geometry`, not round numbers (a check with ones hides transposes).
fn params(geometry: &Conv2dGeometry, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let (rows, columns) = geometry.weight_shape();
    let bias = uniform(1, columns, seed + 1).row(0).to_owned();
    (uniform(rows, columns, seed), bias)
}

/// A convolution's forward and backward, compared entry by entry with `expected`
/// `(output, dL/dx, dL/dW, dL/db)`.
#[track_caller]
fn compare_conv<C: LinearLayer<f64>>(
    check: &str,
    conv: &mut C,
    (x, g): (&Array2<f64>, &Array2<f64>),
    expected: (&Array2<f64>, &Array2<f64>, &Array2<f64>, &Array1<f64>),
    tolerance: f64,
) {
    conv.zero_grad();
    let output = conv.forward(x.view());
    close(check, "output", output.view(), expected.0.view(), tolerance);
    let grad_input = conv.backward(g.view());
    close(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.1.view(),
        tolerance,
    );
    let params = conv.params_mut();
    close(
        check,
        "dL/dweight",
        params.grad_weight.view(),
        expected.2.view(),
        tolerance,
    );
    close(
        check,
        "dL/dbias",
        params.grad_bias.view(),
        expected.3.view(),
        tolerance,
    );
}

/// Three convolutions by hand, every number written out in the comments: no padding; stride
/// 2 (its windows do not overlap, so dL/dx is the kernel scattered at each window's corner);
/// padding 1 (the output is larger than the input, and the padding's gradient goes nowhere).
pub fn conv2d_matches_hand_computation<L: Level<f64>>() {
    // 1x3x3 image 1..9, one 2x2 filter [[1, 2], [3, 4]], bias 1, stride 1, no padding.
    // y[0,0] = 1 + (1 + 4 + 12 + 20) = 38, y[0,1] = 48, y[1,0] = 68, y[1,1] = 78.
    // g = [[1, 0], [0, 2]]: dL/dx is the kernel at (0,0) plus twice the kernel at (1,1);
    // dL/dW[p,q] = x[p,q] + 2 x[p+1,q+1]; dL/db = 3.
    let geometry = Conv2dGeometry::new(ImageShape::new(1, 3, 3), 1, (2, 2), 1, 0).unwrap();
    let mut conv = L::conv2d(array![[1.0], [2.0], [3.0], [4.0]], array![1.0], geometry);
    let x = array![[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
    let g = array![[1.0, 0.0, 0.0, 2.0]];
    compare_conv(
        "Conv2d 2x2 on 3x3 by hand",
        &mut conv,
        (&x, &g),
        (
            &array![[38.0, 48.0, 68.0, 78.0]],
            &array![[1.0, 2.0, 0.0, 3.0, 6.0, 4.0, 0.0, 6.0, 8.0]],
            &array![[11.0], [14.0], [20.0], [23.0]],
            &array![3.0],
        ),
        EXACT_F64,
    );

    // 1x4x4 image 1..16, filter [[1, 0], [0, -1]], bias 0.5, stride 2: four windows, each
    // x[top-left] - x[bottom-right] + 0.5 = -4.5. g = [1, 2, 3, 4] sends +g to each window's
    // top-left and -g to its bottom-right; dL/dW[p,q] = Σ g x[window (p,q)]:
    // [1 1 + 2 3 + 3 9 + 4 11, 1 2 + 2 4 + 3 10 + 4 12, ...] = [78, 88, 118, 128]; dL/db = 10.
    let geometry = Conv2dGeometry::new(ImageShape::new(1, 4, 4), 1, (2, 2), 2, 0).unwrap();
    let mut conv = L::conv2d(array![[1.0], [0.0], [0.0], [-1.0]], array![0.5], geometry);
    let x = Array2::from_shape_fn((1, 16), |(_, i)| (i + 1) as f64);
    let g = array![[1.0, 2.0, 3.0, 4.0]];
    compare_conv(
        "Conv2d 2x2 stride 2 on 4x4 by hand",
        &mut conv,
        (&x, &g),
        (
            &array![[-4.5, -4.5, -4.5, -4.5]],
            &array![[
                1.0, 0.0, 2.0, 0.0, 0.0, -1.0, 0.0, -2.0, 3.0, 0.0, 4.0, 0.0, 0.0, -3.0, 0.0, -4.0
            ]],
            &array![[78.0], [88.0], [118.0], [128.0]],
            &array![10.0],
        ),
        EXACT_F64,
    );

    // 1x2x2 image [[1, 2], [3, 4]], filter [[1, 2], [3, 4]], no bias, padding 1: a 3x3 output,
    // y[i,j] = Σ W[p,q] x[i+p-1, j+q-1] = [[4, 11, 6], [14, 30, 14], [6, 11, 4]].
    // g = 1 at (0,0) and 2 at (2,2): dL/dx[r,t] = W[r+1,t+1] + 2 W[r-1,t-1] = [[4, 0], [0, 2]];
    // dL/dW[p,q] = x[p-1,q-1] + 2 x[p+1,q+1] = [[8, 0], [0, 1]]; dL/db = 3.
    let geometry = Conv2dGeometry::new(ImageShape::new(1, 2, 2), 1, (2, 2), 1, 1).unwrap();
    let mut conv = L::conv2d(array![[1.0], [2.0], [3.0], [4.0]], array![0.0], geometry);
    let x = array![[1.0, 2.0, 3.0, 4.0]];
    let g = array![[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]];
    compare_conv(
        "Conv2d 2x2 padding 1 on 2x2 by hand",
        &mut conv,
        (&x, &g),
        (
            &array![[4.0, 11.0, 6.0, 14.0, 30.0, 14.0, 6.0, 11.0, 4.0]],
            &array![[4.0, 0.0, 0.0, 2.0]],
            &array![[8.0], [0.0], [0.0], [1.0]],
            &array![3.0],
        ),
        EXACT_F64,
    );
}

/// Max pooling by hand, ties included: each window's first maximum in row-major order takes
/// the output and the whole gradient (PyTorch's rule), and overlapping windows add.
pub fn max_pool_matches_hand_computation<L: Level<f64>>() {
    // A 4x4 image pooled 2x2 with stride 2. Window (0,0) holds 5 twice (first at column 1);
    // window (0,1) a single 7; window (1,0) all equal (first: its top-left); (1,1) 9 once.
    let geometry = Pool2dGeometry::new(ImageShape::new(1, 4, 4), (2, 2), 2).unwrap();
    let mut pool = L::max_pool2d(geometry);
    #[rustfmt::skip]
    let x = array![[
        1.0, 5.0, 7.0, 0.0,
        5.0, 2.0, 3.0, 6.0,
        4.0, 4.0, 9.0, 8.0,
        4.0, 4.0, 8.0, 9.0,
    ]];
    let output = pool.forward(x.view());
    let check = "MaxPool2d 2x2 by hand";
    close(
        check,
        "output",
        output.view(),
        array![[5.0, 7.0, 4.0, 9.0]].view(),
        EXACT_F64,
    );
    let grad_input = pool.backward(array![[1.0, 2.0, 3.0, 4.0]].view());
    #[rustfmt::skip]
    let expected = array![[
        0.0, 1.0, 2.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
        3.0, 0.0, 4.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
    ]];
    close(
        check,
        "dL/dinput",
        grad_input.view(),
        expected.view(),
        EXACT_F64,
    );

    // A 3x3 image of ties pooled 2x2 with stride 1: four overlapping windows whose first
    // maximum is each window's top-left 5, so the gradients land on four different entries.
    let geometry = Pool2dGeometry::new(ImageShape::new(1, 3, 3), (2, 2), 1).unwrap();
    let mut pool = L::max_pool2d(geometry);
    let x = array![[5.0, 5.0, 1.0, 5.0, 5.0, 1.0, 0.0, 0.0, 0.0]];
    pool.forward(x.view());
    let grad_input = pool.backward(array![[1.0, 10.0, 100.0, 1000.0]].view());
    close(
        "MaxPool2d 2x2 stride 1 with ties by hand",
        "dL/dinput",
        grad_input.view(),
        array![[1.0, 10.0, 0.0, 100.0, 1000.0, 0.0, 0.0, 0.0, 0.0]].view(),
        EXACT_F64,
    );
}

/// Every geometry of [`geometries`] against the harness's own loops, through a random upstream
/// gradient, and max pooling 2x2 stride 2 and 3x3 stride 1 (overlapping windows).
pub fn conv_matches_reference<L: Level<f64>>() {
    for (index, geometry) in geometries().into_iter().enumerate() {
        let seed = 200 + 10 * index as u64;
        let (weight, bias) = params(&geometry, seed);
        let x = uniform(3, geometry.input.len(), seed + 2);
        let g = uniform(3, geometry.output().len(), seed + 3);
        let expected_output = reference::conv2d_forward(&geometry, x.view(), &weight, &bias);
        let (grad_input, grad_weight, grad_bias) =
            reference::conv2d_backward(&geometry, x.view(), &weight, g.view());
        let mut conv = L::conv2d(weight, bias, geometry);
        compare_conv(
            &format!("{} against the reference", name(&geometry)),
            &mut conv,
            (&x, &g),
            (&expected_output, &grad_input, &grad_weight, &grad_bias),
            REFERENCE_F64,
        );
    }
    for (kernel, stride) in [(2, 2), (3, 1), (2, 1)] {
        let geometry =
            Pool2dGeometry::new(ImageShape::new(2, 6, 5), (kernel, kernel), stride).unwrap();
        let x = uniform(3, geometry.input.len(), 300 + stride as u64);
        let g = uniform(3, geometry.output().len(), 310 + stride as u64);
        let (expected_output, expected_grad) = reference::max_pool2d(&geometry, x.view(), g.view());
        let mut pool = L::max_pool2d(geometry);
        let check = format!("MaxPool2d {kernel}x{kernel} stride {stride} against the reference");
        let output = pool.forward(x.view());
        close(
            &check,
            "output",
            output.view(),
            expected_output.view(),
            EXACT_F64,
        );
        let grad_input = pool.backward(g.view());
        close(
            &check,
            "dL/dinput",
            grad_input.view(),
            expected_grad.view(),
            EXACT_F64,
        );
    }
}

/// dL/dx, dL/dW and dL/db of every geometry against central differences, and max pooling's
/// dL/dx (on distinct values, so no perturbation changes a window's winner).
pub fn conv_passes_finite_differences<L: Level<f64>>() {
    for (index, geometry) in geometries().into_iter().enumerate() {
        let seed = 400 + 10 * index as u64;
        let (weight, bias) = params(&geometry, seed);
        let x = uniform(2, geometry.input.len(), seed + 2);
        let g = uniform(2, geometry.output().len(), seed + 3);
        let mut conv = L::conv2d(weight, bias, geometry);
        let reports = linear_gradients(&mut conv, x.view(), g.view());
        gradients_pass(
            &format!("{} finite differences", name(&geometry)),
            &reports,
            FINITE_DIFFERENCE_LAYER,
        );
    }
    for (kernel, stride) in [(2, 2), (3, 1)] {
        let geometry =
            Pool2dGeometry::new(ImageShape::new(2, 5, 6), (kernel, kernel), stride).unwrap();
        // A permutation of 0.01, 0.02, ...: every entry distinct, at least 0.01 apart.
        let x = Array2::from_shape_fn((2, geometry.input.len()), |(n, i)| {
            ((i * 37 + n * 11) % 121) as f64 * 0.01
        });
        let g = uniform(2, geometry.output().len(), 450 + kernel as u64);
        let mut pool = L::max_pool2d(geometry);
        let report = layer_gradients(&mut pool, x.view(), g.view(), false);
        gradients_pass(
            &format!("MaxPool2d {kernel}x{kernel} stride {stride} finite differences"),
            &[report],
            FINITE_DIFFERENCE_LAYER,
        );
    }
}

/// The small CNN ([`small_cnn_spec`]): every weight, bias and the input against central
/// differences of the mean cross-entropy, through convolution, ReLU, max pooling, tanh and
/// `Linear`.
pub fn cnn_passes_finite_differences<L: Level<f64>>() {
    let spec = small_cnn_spec(61);
    let mut model = L::network_from_spec(&spec);
    let x = uniform(3, 64, 62);
    let targets = classes(3, 5, 63);
    let reports = model_gradients(&mut model, x.view(), Targets::Classes(&targets));
    gradients_pass(
        "small CNN finite differences",
        &reports,
        FINITE_DIFFERENCE_NETWORK,
    );
}

/// A 1x1 convolution is a `Linear` applied to every pixel's channel vector: the same output,
/// dL/dx, dL/dW (summed over the pixels) and dL/db.
pub fn one_by_one_conv_is_linear_on_each_pixel<L: Level<f64>>() {
    let (channels, out, height, width, batch) = (3, 2, 4, 5, 2);
    let geometry =
        Conv2dGeometry::new(ImageShape::new(channels, height, width), out, (1, 1), 1, 0).unwrap();
    let (weight, bias) = params(&geometry, 500);
    let x = uniform(batch, geometry.input.len(), 502);
    let g = uniform(batch, geometry.output().len(), 503);
    // The pixels as rows of channel vectors: row (n, pixel) = x[n, c P + pixel] over c.
    let pixels = height * width;
    let as_pixels = |rows: &Array2<f64>, width: usize| {
        Array2::from_shape_fn((batch * pixels, width), |(r, c)| {
            rows[[r / pixels, c * pixels + r % pixels]]
        })
    };
    let mut linear = L::linear(weight.clone(), bias.clone());
    linear.zero_grad();
    let linear_output = linear.forward(as_pixels(&x, channels).view());
    let linear_grad_input = linear.backward(as_pixels(&g, out).view());
    let expected = |from: &Array2<f64>, width: usize| {
        Array2::from_shape_fn((batch, width * pixels), |(n, i)| {
            from[[n * pixels + i % pixels, i / pixels]]
        })
    };
    let expected_output = expected(&linear_output, out);
    let expected_grad_input = expected(&linear_grad_input, channels);
    let linear_params = linear.params_mut();
    let mut conv = L::conv2d(weight, bias, geometry);
    compare_conv(
        "a 1x1 convolution against Linear on each pixel",
        &mut conv,
        (&x, &g),
        (
            &expected_output,
            &expected_grad_input,
            &linear_params.grad_weight.to_owned(),
            &linear_params.grad_bias.to_owned(),
        ),
        REFERENCE_F64,
    );
}

/// A kernel as large as the image (no padding) has one window, the whole image, whose
/// entries are read in the order of the image's own row: it is a `Linear` on the flat image.
pub fn kernel_as_large_as_the_input_is_linear<L: Level<f64>>() {
    let geometry = Conv2dGeometry::new(ImageShape::new(2, 3, 4), 3, (3, 4), 1, 0).unwrap();
    assert_eq!(geometry.output(), ImageShape::flat(3));
    let (weight, bias) = params(&geometry, 510);
    let x = uniform(4, geometry.input.len(), 512);
    let g = uniform(4, 3, 513);
    let mut linear = L::linear(weight.clone(), bias.clone());
    linear.zero_grad();
    let output = linear.forward(x.view());
    let grad_input = linear.backward(g.view());
    let params = linear.params_mut();
    let mut conv = L::conv2d(weight, bias, geometry);
    compare_conv(
        "a kernel as large as the image against Linear",
        &mut conv,
        (&x, &g),
        (
            &output,
            &grad_input,
            &params.grad_weight.to_owned(),
            &params.grad_bias.to_owned(),
        ),
        REFERENCE_F64,
    );
}

/// A kernel larger than the padded input has no window: the spec is refused with the layer
/// named, before any level builds it.
pub fn kernel_larger_than_the_padded_input_is_refused<L: Level<f64>>() {
    let layers = vec![
        LayerSpec::conv2d(1, 2, 3, 1, 0),
        LayerSpec::Activation(Activation::Relu),
        LayerSpec::conv2d(2, 2, 5, 1, 0),
        LayerSpec::Flatten,
        LayerSpec::Linear {
            in_features: 2,
            out_features: 2,
        },
    ];
    let error = NetSpec::new(
        ImageShape::new(1, 5, 5),
        layers,
        LossKind::SoftmaxCrossEntropy,
    )
    .expect_err("a 5x5 kernel on a 3x3 input was accepted");
    let message = error.to_string();
    assert!(
        message.starts_with("layer 2 (Conv2d(2, 2, 5x5, stride 1, padding 0)): its input is 2x3x3")
            && message.contains("kernel 5x5 is larger than the padded input 3x3"),
        "{} : the refusal should name layer 2 and the sizes, got: {message}",
        L::NAME
    );
}

/// The gradient rule for `Conv2d`: a second backward adds (dW and db double), `zero_grad`
/// clears both; and both passes of `Conv2d` and `MaxPool2d` agree with their `*_into` forms.
pub fn conv_gradients_accumulate_and_into_forms_agree<L: Level<f64>>() {
    let geometry = geometries()[2];
    let (weight, bias) = params(&geometry, 520);
    let x = uniform(3, geometry.input.len(), 522);
    let g = uniform(3, geometry.output().len(), 523);
    let check = format!("{}: gradients accumulate until zero_grad", name(&geometry));
    let mut conv = L::conv2d(weight.clone(), bias.clone(), geometry);
    conv.forward(x.view());
    conv.backward(g.view());
    let once = conv.params_mut().grad_weight.to_owned();
    let once_bias = conv.params_mut().grad_bias.to_owned();
    conv.forward(x.view());
    conv.backward(g.view());
    let params = conv.params_mut();
    close(
        &check,
        "dL/dweight after two backward passes",
        params.grad_weight.view(),
        (&once * 2.0).view(),
        EXACT_F64,
    );
    close(
        &check,
        "dL/dbias after two backward passes",
        params.grad_bias.view(),
        (&once_bias * 2.0).view(),
        EXACT_F64,
    );
    conv.zero_grad();
    let params = conv.params_mut();
    assert!(
        params
            .grad_weight
            .iter()
            .chain(params.grad_bias.iter())
            .all(|&v| v == 0.0),
        "{check}: zero_grad left a non-zero weight or bias gradient"
    );

    let (mut allocating, mut into) = compare_into_forms(
        &name(&geometry),
        L::conv2d(weight.clone(), bias.clone(), geometry),
        L::conv2d(weight, bias, geometry),
        &x,
        &g,
    );
    let pairs = into.params_mut().tensors().into_iter();
    for ((tensor, _, ours), (_, _, theirs)) in pairs.zip(allocating.params_mut().tensors()) {
        let check = format!("{} *_into forms", name(&geometry));
        close(
            &check,
            &format!("dL/d{tensor}"),
            ours.view(),
            theirs.view(),
            0.0,
        );
    }
    let pool = Pool2dGeometry::new(ImageShape::new(2, 6, 5), (3, 3), 1).unwrap();
    let x = uniform(3, pool.input.len(), 524);
    let g = uniform(3, pool.output().len(), 525);
    compare_into_forms(
        "MaxPool2d 3x3 stride 1",
        L::max_pool2d(pool),
        L::max_pool2d(pool),
        &x,
        &g,
    );
}

/// The small CNN trains: SGD with momentum fits 32 random images to random classes (the loss
/// falls below half its start), in `f32`; and the
/// network's batch buffers follow a batch size that changes between steps.
pub fn cnn_training_reduces_the_loss<L: Level<f32>>() {
    const STEPS: usize = 60;
    let mut model = <L as Level<f32>>::network_from_spec(&small_cnn_spec(64));
    let x = uniform(32, 64, 65).mapv(|v| v as f32);
    let targets = classes(32, 5, 66);
    let mut sgd = Sgd::new(0.5).with_momentum(0.9);
    let first = model.train_step(x.view(), Targets::Classes(&targets), &mut sgd);
    // A smaller batch in between, then the full batch again.
    model.train_step(
        x.slice(s![..7, ..]),
        Targets::Classes(&targets[..7]),
        &mut sgd,
    );
    let mut last = first;
    for _ in 0..STEPS {
        last = model.train_step(x.view(), Targets::Classes(&targets), &mut sgd);
    }
    assert!(
        last.is_finite() && last < 0.5 * first,
        "{}: {STEPS} SGD steps of the small CNN took the loss from {first} to {last} (expected \
         below half)",
        <L as Level<f32>>::NAME
    );
}

/// For a level that declares itself allocation-bounded, a CNN training step makes the same
/// number of allocations at every step and batch size (matrixmultiply's packing buffers),
/// each count the least of 4 windows as in `stress::allocations_per_training_step`.
pub fn cnn_allocations_per_training_step<L: Level<f32>>() {
    // The count is one total over every counted thread: no other counting check meanwhile.
    let _counting = crate::alloc::exclusive();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(|_| crate::alloc::count_this_thread())
        .build()
        .expect("a 2-thread rayon pool");
    let inputs = uniform(64, 64, 70).mapv(|v| v as f32);
    let targets = classes(64, 5, 71);
    let count = |batch: usize, steps: usize| -> usize {
        pool.install(|| {
            let mut model = <L as Level<f32>>::network_from_spec(&small_cnn_spec(72));
            let input = inputs.slice(s![..batch, ..]);
            let batch_targets = Targets::Classes(&targets[..batch]);
            let mut sgd = Sgd::new(0.1);
            for _ in 0..2 {
                model.train_step(input, batch_targets, &mut sgd);
            }
            // More windows than the pool's 2 threads (see `steady_allocations`); one for a level
            // that is only measured.
            let windows = if <L as Level<f32>>::ALLOCATION_BOUNDED {
                4
            } else {
                1
            };
            crate::alloc::steady_allocations(windows, steps, || {
                model.train_step(input, batch_targets, &mut sgd);
            })
        })
    };
    let runs = [(32, 5), (32, 10), (64, 5)];
    let per_step: Vec<f64> = runs
        .iter()
        .map(|&(batch, steps)| count(batch, steps) as f64 / steps as f64)
        .collect();
    let report = format!("per step at batch 32 (5 and 10 steps) and 64: {per_step:?}");
    println!("{}: CNN allocations {report}", <L as Level<f32>>::NAME);
    if <L as Level<f32>>::ALLOCATION_BOUNDED {
        assert!(
            per_step.iter().all(|&count| count == per_step[0]),
            "{} declares itself allocation-bounded, but a CNN step's allocations vary: {report}",
            <L as Level<f32>>::NAME
        );
    } else {
        assert!(per_step.iter().all(|&count| count > 0.0), "{report}");
    }
}
