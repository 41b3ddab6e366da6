#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures that backprop-harness's gate 4 compares every level with.

    pip install torch numpy
    python reference/make_fixtures.py            # rewrite crates/harness/fixtures/*.npz
    python reference/make_fixtures.py --verify   # regenerate in a temporary folder and compare

Every fixture is one .npz file: the inputs, targets, every weight and bias, the outputs (logits),
the loss, and the gradients of the loss with respect to every weight, bias and the input, as
PyTorch's autograd computes them. The key `meta` holds `key=value` lines (UTF-8 bytes): the
fixture's kind, dtype, activation, loss, learning rate, and the torch and numpy versions that
wrote it.

Layout convention (ours, not PyTorch's): a Linear layer is y = x W + b with W of shape
(fan_in, fan_out). torch.nn.Linear stores its weight as (fan_out, fan_in) and computes
x @ weight.T + bias, so every weight and weight gradient is transposed explicitly (`.T`) before
it is saved: `weight0` here is `linear.weight.T`.

Numerics follow the project's conventions: ReLU is torch.nn.functional.relu (gradient 0 at
exactly 0; clamp(min=0) would give 1 and torch.maximum(x, 0) 0.5), the losses are
cross_entropy(reduction="mean") and mse_loss(reduction="mean").

Reproducible: every fixture seeds torch with its own seed, runs on one thread with deterministic
algorithms, and is written with fixed zip timestamps, so a rerun gives byte-identical files.
"""

import argparse
import filecmp
import gzip
import io
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates" / "harness" / "fixtures"
MNIST = ROOT / "data" / "mnist"

ACTIVATIONS = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
LOSSES = {
    "softmax_cross_entropy": lambda logits, targets: F.cross_entropy(logits, targets, reduction="mean"),
    "mse": lambda predictions, targets: F.mse_loss(predictions, targets, reduction="mean"),
}
DTYPES = {"f64": torch.float64, "f32": torch.float32}


def numpy(tensor):
    return tensor.detach().cpu().numpy().copy()


def save(out_dir, name, arrays, **meta):
    """Writes `name`.npz atomically (temporary name, then rename) with fixed zip timestamps."""
    meta = {"fixture": name, "torch": torch.__version__, "numpy": np.__version__, **meta}
    text = "".join(f"{key}={value}\n" for key, value in meta.items())
    arrays = dict(arrays, meta=np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
    path = out_dir / f"{name}.npz"
    partial = out_dir / f".{name}.npz.partial"
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            array = np.asarray(arrays[key])  # (np.ascontiguousarray would turn a 0-d loss into 1-d)
            np.lib.format.write_array(buffer, array.copy(order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
    partial.replace(path)


def mnist_images(count):
    """The first `count` training images scaled to [0, 1], and their labels."""
    with gzip.open(MNIST / "train-images-idx3-ubyte.gz") as file:
        pixels = np.frombuffer(file.read(), dtype=np.uint8, offset=16)
    with gzip.open(MNIST / "train-labels-idx1-ubyte.gz") as file:
        labels = np.frombuffer(file.read(), dtype=np.uint8, offset=8)
    images = pixels.reshape(-1, 28 * 28)[:count].astype(np.float64) / 255.0
    return images, labels[:count].astype(np.int64)


def linears_for(sizes, dtype):
    """torch.nn.Linear layers with PyTorch's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""
    return [torch.nn.Linear(fan_in, fan_out, dtype=dtype) for fan_in, fan_out in zip(sizes, sizes[1:])]


def mlp_forward(linears, activation, x):
    hidden = x
    for index, linear in enumerate(linears):
        hidden = linear(hidden)
        if index + 1 < len(linears):
            hidden = ACTIVATIONS[activation](hidden)
    return hidden


def parameter_arrays(linears, prefix="", suffix=""):
    """weight{i} as (fan_in, fan_out), that is linear.weight.T, and bias{i}."""
    arrays = {}
    for index, linear in enumerate(linears):
        arrays[f"{prefix}weight{index}{suffix}"] = numpy(linear.weight.T)
        arrays[f"{prefix}bias{index}{suffix}"] = numpy(linear.bias)
    return arrays


def gradient_arrays(linears):
    arrays = {}
    for index, linear in enumerate(linears):
        arrays[f"grad_weight{index}"] = numpy(linear.weight.grad.T)
        arrays[f"grad_bias{index}"] = numpy(linear.bias.grad)
    return arrays


def make_targets(loss, batch, outputs, dtype, classes=None):
    if loss == "softmax_cross_entropy":
        targets = torch.randint(0, outputs, (batch,)) if classes is None else torch.as_tensor(classes)
        return targets, {"targets": numpy(targets).astype(np.int64)}
    targets = torch.randn(batch, outputs, dtype=dtype)
    return targets, {"target_values": numpy(targets)}


# ---------------------------------------------------------------------------------------------
# Each layer alone, under a random upstream gradient g: y.backward(g).


def layer_linear(out_dir, name, batch, fan_in, fan_out, dtype_name, seed):
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    (linear,) = linears_for([fan_in, fan_out], dtype)
    x = torch.randn(batch, fan_in, dtype=dtype, requires_grad=True)
    upstream = torch.randn(batch, fan_out, dtype=dtype)
    output = linear(x)
    output.backward(upstream)
    arrays = {
        "input": numpy(x),
        "upstream": numpy(upstream),
        "weight": numpy(linear.weight.T),
        "bias": numpy(linear.bias),
        "output": numpy(output),
        "grad_input": numpy(x.grad),
        "grad_weight": numpy(linear.weight.grad.T),
        "grad_bias": numpy(linear.bias.grad),
    }
    save(out_dir, name, arrays, kind="layer", layer="linear", dtype=dtype_name)


def layer_activation(out_dir, name, activation, dtype_name, seed):
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    x = torch.randn(6, 5, dtype=dtype) * 2.0
    x[0, 0] = 0.0  # exactly at the kink: F.relu's gradient there is 0
    x[3, 2] = 0.0
    x.requires_grad_(True)
    upstream = torch.randn(6, 5, dtype=dtype)
    output = ACTIVATIONS[activation](x)
    output.backward(upstream)
    arrays = {
        "input": numpy(x),
        "upstream": numpy(upstream),
        "output": numpy(output),
        "grad_input": numpy(x.grad),
    }
    save(out_dir, name, arrays, kind="layer", layer=activation, dtype=dtype_name)


# ---------------------------------------------------------------------------------------------
# Each loss alone.


def loss_alone(out_dir, name, loss, batch, outputs, scale, dtype_name, seed, classes=None):
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    logits = (torch.randn(batch, outputs, dtype=dtype) * scale).requires_grad_(True)
    targets, target_arrays = make_targets(loss, batch, outputs, dtype, classes)
    value = LOSSES[loss](logits, targets)
    value.backward()
    arrays = {
        "input": numpy(logits),
        **target_arrays,
        "loss": numpy(value),
        "grad_input": numpy(logits.grad),
    }
    save(out_dir, name, arrays, kind="loss", loss=loss, dtype=dtype_name, logit_scale=scale)


# ---------------------------------------------------------------------------------------------
# Whole MLPs: one forward, the loss, one backward.


def mlp(out_dir, name, sizes, activation, loss, batch, dtype_name, seed,
        inputs=None, classes=None, zero_rows=(), zero_first_bias=False):
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    linears = linears_for(sizes, dtype)
    if zero_first_bias:
        with torch.no_grad():
            linears[0].bias.zero_()
    x = torch.randn(batch, sizes[0], dtype=dtype) if inputs is None else torch.as_tensor(inputs, dtype=dtype)
    for row in zero_rows:
        x[row] = 0.0
    x.requires_grad_(True)
    targets, target_arrays = make_targets(loss, batch, sizes[-1], dtype, classes)
    logits = mlp_forward(linears, activation, x)
    value = LOSSES[loss](logits, targets)
    value.backward()
    arrays = {
        "input": numpy(x),
        **target_arrays,
        **parameter_arrays(linears),
        "logits": numpy(logits),
        "loss": numpy(value),
        **gradient_arrays(linears),
        "grad_input": numpy(x.grad),
    }
    save(out_dir, name, arrays, kind="mlp", activation=activation, loss=loss, dtype=dtype_name,
         layers=len(linears))


# ---------------------------------------------------------------------------------------------
# Training: optimizer steps (the update rules) and two backward passes without zero_grad (accumulation).


OPTIMIZER_DEFAULTS = {
    "sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
}


def make_optimizer(name, parameters, lr, settings):
    """torch.optim.SGD or torch.optim.Adam with the given settings over PyTorch's defaults."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=settings["momentum"],
                               nesterov=settings["nesterov"], weight_decay=settings["weight_decay"])
    return torch.optim.Adam(parameters, lr=lr, betas=(settings["beta1"], settings["beta2"]),
                            eps=settings["eps"], weight_decay=settings["weight_decay"])


def optimizer_steps(out_dir, name, sizes, activation, batch, optimizer, lr, steps, dtype_name, seed,
                    **settings):
    """`steps` training steps on one batch: zero_grad, forward, cross-entropy, backward, step.
    Saves the weights before and after, and the loss at each step."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    linears = linears_for(sizes, dtype)
    x = torch.randn(batch, sizes[0], dtype=dtype)
    targets, target_arrays = make_targets("softmax_cross_entropy", batch, sizes[-1], dtype)
    before = parameter_arrays(linears)
    settings = {**OPTIMIZER_DEFAULTS[optimizer], **settings}
    step_rule = make_optimizer(optimizer, [p for linear in linears for p in linear.parameters()],
                               lr, settings)
    losses = []
    for _ in range(steps):
        step_rule.zero_grad()
        value = F.cross_entropy(mlp_forward(linears, activation, x), targets, reduction="mean")
        value.backward()
        step_rule.step()
        losses.append(value.item())
    arrays = {
        "input": numpy(x),
        **target_arrays,
        **before,
        **parameter_arrays(linears, suffix="_after"),
        "losses": np.array(losses, dtype=np.float64 if dtype_name == "f64" else np.float32),
    }
    save(out_dir, name, arrays, kind="optimizer", optimizer=optimizer, activation=activation,
         loss="softmax_cross_entropy", dtype=dtype_name, layers=len(linears), lr=lr, steps=steps,
         **settings)


def accumulate(out_dir, name, sizes, activation, batch, dtype_name, seed):
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    linears = linears_for(sizes, dtype)
    first = torch.randn(batch, sizes[0], dtype=dtype)
    second = torch.randn(batch, sizes[0], dtype=dtype)
    first_targets, _ = make_targets("softmax_cross_entropy", batch, sizes[-1], dtype)
    second_targets, _ = make_targets("softmax_cross_entropy", batch, sizes[-1], dtype)
    for x, targets in ((first, first_targets), (second, second_targets)):
        F.cross_entropy(mlp_forward(linears, activation, x), targets, reduction="mean").backward()
    arrays = {
        "input": numpy(first),
        "targets": numpy(first_targets).astype(np.int64),
        "input2": numpy(second),
        "targets2": numpy(second_targets).astype(np.int64),
        **parameter_arrays(linears),
        **gradient_arrays(linears),  # the sum of both passes: .grad accumulates
    }
    save(out_dir, name, arrays, kind="accumulate", activation=activation,
         loss="softmax_cross_entropy", dtype=dtype_name, layers=len(linears))


def clip(out_dir, name, sizes, activation, batch, max_norm, dtype_name, seed):
    """One backward pass, then torch.nn.utils.clip_grad_norm_(max_norm): the norm before clipping
    and the clipped gradients."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    linears = linears_for(sizes, dtype)
    x = torch.randn(batch, sizes[0], dtype=dtype)
    targets, target_arrays = make_targets("softmax_cross_entropy", batch, sizes[-1], dtype)
    F.cross_entropy(mlp_forward(linears, activation, x), targets, reduction="mean").backward()
    parameters = [p for linear in linears for p in linear.parameters()]
    total_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    arrays = {
        "input": numpy(x),
        **target_arrays,
        **parameter_arrays(linears),
        **gradient_arrays(linears),  # after clipping
        "total_norm": numpy(total_norm),
    }
    save(out_dir, name, arrays, kind="clip", activation=activation, loss="softmax_cross_entropy",
         dtype=dtype_name, layers=len(linears), max_norm=max_norm)


# ---------------------------------------------------------------------------------------------
# Normalization and dropout, each alone under a random upstream gradient.


def norm_batch(out_dir, name, batch, features, dtype_name, seed):
    """BatchNorm1d in training (forward, backward, running statistics), two more training
    forwards (three in all), then evaluation on the first batch."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    layer = torch.nn.BatchNorm1d(features, eps=1e-5, momentum=0.1, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(1.0 + 0.5 * torch.randn(features, dtype=dtype))
        layer.bias.copy_(torch.randn(features, dtype=dtype))
    batches = [3.0 * torch.randn(batch, features, dtype=dtype) + 1.0 for _ in range(3)]
    x = batches[0].clone().requires_grad_(True)
    upstream = torch.randn(batch, features, dtype=dtype)
    layer.train()
    output = layer(x)
    output.backward(upstream)
    arrays = {
        "input": numpy(x), "input2": numpy(batches[1]), "input3": numpy(batches[2]),
        "upstream": numpy(upstream), "gamma": numpy(layer.weight), "beta": numpy(layer.bias),
        "output": numpy(output), "grad_input": numpy(x.grad),
        "grad_gamma": numpy(layer.weight.grad), "grad_beta": numpy(layer.bias.grad),
        "running_mean1": numpy(layer.running_mean), "running_var1": numpy(layer.running_var),
    }
    with torch.no_grad():
        layer(batches[1])
        layer(batches[2])
    arrays["running_mean3"] = numpy(layer.running_mean)
    arrays["running_var3"] = numpy(layer.running_var)
    layer.eval()
    x_eval = batches[0].clone().requires_grad_(True)
    output_eval = layer(x_eval)
    output_eval.backward(upstream)
    arrays["output_eval"] = numpy(output_eval)
    arrays["grad_input_eval"] = numpy(x_eval.grad)
    save(out_dir, name, arrays, kind="norm", layer="batch_norm", dtype=dtype_name)


def norm_layer(out_dir, name, batch, features, dtype_name, seed):
    """LayerNorm over the features of each row."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    layer = torch.nn.LayerNorm(features, eps=1e-5, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(1.0 + 0.5 * torch.randn(features, dtype=dtype))
        layer.bias.copy_(torch.randn(features, dtype=dtype))
    x = (2.0 * torch.randn(batch, features, dtype=dtype) - 0.5).requires_grad_(True)
    upstream = torch.randn(batch, features, dtype=dtype)
    output = layer(x)
    output.backward(upstream)
    arrays = {
        "input": numpy(x), "upstream": numpy(upstream), "gamma": numpy(layer.weight),
        "beta": numpy(layer.bias), "output": numpy(output), "grad_input": numpy(x.grad),
        "grad_gamma": numpy(layer.weight.grad), "grad_beta": numpy(layer.bias.grad),
    }
    save(out_dir, name, arrays, kind="norm", layer="layer_norm", dtype=dtype_name)


def norm_dropout(out_dir, name, batch, features, p, dtype_name, seed):
    """Dropout(p) in training; the mask PyTorch drew is stored (1 kept, 0 dropped), read back
    from the output (the inputs are never 0)."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    layer = torch.nn.Dropout(p)
    x = (torch.rand(batch, features, dtype=dtype) + 0.5).requires_grad_(True)
    upstream = torch.randn(batch, features, dtype=dtype)
    layer.train()
    output = layer(x)
    output.backward(upstream)
    keep = (output != 0).to(dtype)
    arrays = {
        "input": numpy(x), "upstream": numpy(upstream), "keep": numpy(keep),
        "output": numpy(output), "grad_input": numpy(x.grad),
    }
    save(out_dir, name, arrays, kind="norm", layer="dropout", p=p, dtype=dtype_name)


def conv_weight(conv):
    """nn.Conv2d's weight (out, in, kh, kw) in our layout: the im2col matrix (in kh kw, out)."""
    return numpy(conv.weight.reshape(conv.out_channels, -1).T)


def conv_grad_weight(conv):
    return numpy(conv.weight.grad.reshape(conv.out_channels, -1).T)


def rows(tensor):
    """(batch, C, H, W) as our rows (batch, C H W), NCHW flattened per row."""
    return numpy(tensor.reshape(tensor.shape[0], -1))


def conv_layer(out_dir, name, batch, in_channels, out_channels, image, kernel, stride, padding,
               dtype_name, seed):
    """One nn.Conv2d (PyTorch's default init), forward and backward under a random upstream
    gradient."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    conv = torch.nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                           dtype=dtype)
    x = torch.randn(batch, in_channels, *image, dtype=dtype, requires_grad=True)
    output = conv(x)
    upstream = torch.randn_like(output)
    output.backward(upstream)
    arrays = {
        "input": rows(x), "upstream": rows(upstream), "output": rows(output),
        "grad_input": rows(x.grad), "weight": conv_weight(conv), "bias": numpy(conv.bias),
        "grad_weight": conv_grad_weight(conv), "grad_bias": numpy(conv.bias.grad),
    }
    kh, kw = conv.kernel_size
    save(out_dir, name, arrays, kind="conv", layer="conv2d", dtype=dtype_name,
         input_shape=f"{in_channels}x{image[0]}x{image[1]}", out_channels=out_channels,
         kernel=f"{kh}x{kw}", stride=stride, padding=padding)


def pool_layer(out_dir, name, batch, channels, image, kernel, stride, dtype_name, seed):
    """F.max_pool2d on small integers, so that many windows hold tied maxima (PyTorch sends the
    gradient to the first of them in row-major order)."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    x = torch.randint(-2, 3, (batch, channels, *image)).to(dtype).requires_grad_(True)
    output = F.max_pool2d(x, kernel, stride)
    upstream = torch.randn_like(output)
    output.backward(upstream)
    arrays = {"input": rows(x), "upstream": rows(upstream), "output": rows(output),
              "grad_input": rows(x.grad)}
    save(out_dir, name, arrays, kind="conv", layer="max_pool2d", dtype=dtype_name,
         input_shape=f"{channels}x{image[0]}x{image[1]}", kernel=f"{kernel}x{kernel}",
         stride=stride)


def small_cnn(dtype):
    """The harness's small CNN (conv::small_cnn_spec): 1x8x8 images, 5 classes."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1, dtype=dtype),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(3, 4, 3, stride=1, padding=0, dtype=dtype),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 2 * 2, 5, dtype=dtype),
    )


def cnn_parameters(model, suffix=""):
    """Every weight and bias in our layout, weight layer i as weight{i} / bias{i}."""
    arrays = {}
    layers = [layer for layer in model if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear))]
    for index, layer in enumerate(layers):
        weight = conv_weight(layer) if isinstance(layer, torch.nn.Conv2d) else numpy(layer.weight.T)
        arrays[f"weight{index}{suffix}"] = weight
        arrays[f"bias{index}{suffix}"] = numpy(layer.bias)
    return arrays, layers


def cnn_steps(out_dir, name, batch, lr, steps, dtype_name, seed):
    """The small CNN's whole training step, three times with SGD: the first step's logits, loss
    and every gradient (input included), each step's loss, and the weights after the last."""
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    model = small_cnn(dtype)
    x = torch.randn(batch, 1, 8, 8, dtype=dtype)
    targets = torch.randint(0, 5, (batch,))
    arrays, layers = cnn_parameters(model)
    arrays.update({"input": rows(x), "targets": numpy(targets)})
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        inputs = x.clone().requires_grad_(step == 0)
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets, reduction="mean")
        loss.backward()
        if step == 0:
            arrays["logits"] = numpy(logits)
            arrays["loss"] = numpy(loss)
            arrays["grad_input"] = rows(inputs.grad)
            for index, layer in enumerate(layers):
                grad = layer.weight.grad
                arrays[f"grad_weight{index}"] = (
                    numpy(grad.reshape(layer.out_channels, -1).T)
                    if isinstance(layer, torch.nn.Conv2d) else numpy(grad.T))
                arrays[f"grad_bias{index}"] = numpy(layer.bias.grad)
        losses.append(loss.item())
        optimizer.step()
    arrays.update(cnn_parameters(model, suffix="_after")[0])
    arrays["losses"] = np.array(losses, dtype=np.float64 if dtype_name == "f64" else np.float32)
    save(out_dir, name, arrays, kind="cnn", optimizer="sgd", lr=lr, steps=steps, dtype=dtype_name,
         layers=len(layers))


def write_conv(out_dir):
    """The convolution fixtures (conv:: group)."""
    conv_layer(out_dir, "conv_3x3_stride1_pad0_f64", 2, 2, 3, (6, 5), 3, 1, 0, "f64", 50)
    conv_layer(out_dir, "conv_3x3_stride2_pad1_f64", 3, 3, 4, (7, 6), 3, 2, 1, "f64", 51)
    conv_layer(out_dir, "conv_2x3_stride1_pad1_f64", 2, 1, 2, (5, 7), (2, 3), 1, 1, "f64", 52)
    conv_layer(out_dir, "conv_1x1_f64", 2, 3, 2, (4, 3), 1, 1, 0, "f64", 53)
    conv_layer(out_dir, "conv_3x3_stride2_pad0_f32", 2, 2, 3, (8, 8), 3, 2, 0, "f32", 54)
    for dtype_name in ("f64", "f32"):
        pool_layer(out_dir, f"pool_2x2_stride2_ties_{dtype_name}", 2, 3, (6, 6), 2, 2, dtype_name, 55)
        pool_layer(out_dir, f"pool_3x3_stride1_ties_{dtype_name}", 2, 2, (5, 5), 3, 1, dtype_name, 56)
        cnn_steps(out_dir, f"cnn_sgd_3_steps_{dtype_name}", 6, 0.1, 3, dtype_name, 57)


def write_all(out_dir):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir.mkdir(parents=True, exist_ok=True)

    layer_linear(out_dir, "layer_linear_f64", 5, 4, 3, "f64", 1)
    layer_linear(out_dir, "layer_linear_4x4_square_f64", 5, 4, 4, "f64", 2)
    layer_linear(out_dir, "layer_linear_f32", 7, 13, 6, "f32", 3)
    for seed, activation in enumerate(ACTIVATIONS, start=4):
        layer_activation(out_dir, f"layer_{activation}_f64", activation, "f64", seed)

    loss_alone(out_dir, "loss_softmax_cross_entropy_f64", "softmax_cross_entropy", 6, 5, 3.0, "f64", 10)
    loss_alone(out_dir, "loss_mse_f64", "mse", 6, 5, 3.0, "f64", 11)
    loss_alone(out_dir, "loss_softmax_cross_entropy_logits_1e3_f64", "softmax_cross_entropy", 4, 5, 1e3, "f64", 12)
    loss_alone(out_dir, "loss_softmax_cross_entropy_logits_1e4_f64", "softmax_cross_entropy", 4, 5, 1e4, "f64", 13)
    loss_alone(out_dir, "loss_softmax_cross_entropy_f32", "softmax_cross_entropy", 6, 5, 3.0, "f32", 14)

    images, labels = mnist_images(64)
    for dtype_name in ("f64", "f32"):
        mlp(out_dir, f"mlp_mnist_relu_784_256_10_{dtype_name}", [784, 256, 10], "relu",
            "softmax_cross_entropy", 64, dtype_name, 20, inputs=images, classes=labels)
    mlp(out_dir, "mlp_deep_tanh_12_layers_f64", [10] + [16] * 11 + [4], "tanh",
        "softmax_cross_entropy", 8, "f64", 21)
    mlp(out_dir, "mlp_sigmoid_mse_f64", [6, 9, 4], "sigmoid", "mse", 5, "f64", 22)
    mlp(out_dir, "mlp_sigmoid_mse_f32", [6, 9, 4], "sigmoid", "mse", 5, "f32", 22)
    mlp(out_dir, "mlp_batch_1_relu_f64", [7, 13, 5], "relu", "softmax_cross_entropy", 1, "f64", 23)
    mlp(out_dir, "mlp_batch_3_tanh_odd_widths_f64", [11, 7, 9, 3], "tanh", "softmax_cross_entropy", 3, "f64", 24)
    mlp(out_dir, "mlp_relu_zero_preactivations_f64", [5, 6, 3], "relu", "softmax_cross_entropy", 4,
        "f64", 25, zero_rows=(0, 2), zero_first_bias=True)
    mlp(out_dir, "mlp_same_class_f64", [6, 8, 4], "relu", "softmax_cross_entropy", 6, "f64", 26,
        classes=[2] * 6)

    for dtype_name in ("f64", "f32"):
        optimizer_steps(out_dir, f"sgd_3_steps_relu_{dtype_name}", [10, 12, 4], "relu", 6, "sgd", 0.5,
                        3, dtype_name, 30)
        optimizer_steps(out_dir, f"momentum_3_steps_tanh_{dtype_name}", [10, 12, 4], "tanh", 6,
                        "sgd", 0.3, 3, dtype_name, 34, momentum=0.9, weight_decay=0.01)
        optimizer_steps(out_dir, f"nesterov_3_steps_relu_{dtype_name}", [10, 12, 4], "relu", 6,
                        "sgd", 0.3, 3, dtype_name, 35, momentum=0.8, nesterov=True)
        optimizer_steps(out_dir, f"adam_3_steps_relu_{dtype_name}", [10, 12, 4], "relu", 6, "adam",
                        0.01, 3, dtype_name, 36)
        optimizer_steps(out_dir, f"adam_3_steps_sigmoid_weight_decay_{dtype_name}", [10, 12, 4],
                        "sigmoid", 6, "adam", 0.02, 3, dtype_name, 37, beta1=0.8, beta2=0.99,
                        eps=1e-6, weight_decay=0.05)
    for dtype_name in ("f64", "f32"):
        norm_batch(out_dir, f"norm_batch_norm_{dtype_name}", 8, 5, dtype_name, 40)
        norm_layer(out_dir, f"norm_layer_norm_{dtype_name}", 6, 7, dtype_name, 41)
        norm_dropout(out_dir, f"norm_dropout_{dtype_name}", 6, 9, 0.3, dtype_name, 42)
    accumulate(out_dir, "accumulate_two_batches_relu_f64", [6, 8, 3], "relu", 4, "f64", 31)
    clip(out_dir, "clip_grad_norm_relu_f64", [6, 8, 3], "relu", 4, 0.25, "f64", 32)
    clip(out_dir, "clip_grad_norm_tanh_f32", [6, 8, 3], "tanh", 4, 0.25, "f32", 33)
    write_conv(out_dir)


def verify():
    """Regenerates every fixture in a temporary folder and compares array by array."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh_dir = Path(scratch)
        write_all(fresh_dir)
        failures = 0
        for fresh in sorted(fresh_dir.glob("*.npz")):
            committed = FIXTURES / fresh.name
            if not committed.exists():
                print(f"{fresh.name}: missing from {FIXTURES}")
                failures += 1
                continue
            with np.load(fresh) as ours, np.load(committed) as theirs:
                same = sorted(ours.files) == sorted(theirs.files) and all(
                    np.array_equal(ours[key], theirs[key]) for key in ours.files)
            identical = filecmp.cmp(fresh, committed, shallow=False)
            print(f"{fresh.name}: arrays {'identical' if same else 'DIFFER'}, "
                  f"bytes {'identical' if identical else 'differ'}")
            failures += not same
        return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="where to write (default: %(default)s)")
    parser.add_argument("--only-conv", action="store_true",
                        help="write only the convolution fixtures (conv_*, pool_*, cnn_*)")
    parser.add_argument("--verify", action="store_true",
                        help="regenerate in a temporary folder and compare with the committed fixtures")
    args = parser.parse_args()
    if args.verify:
        sys.exit(1 if verify() else 0)
    if args.only_conv:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        write_conv(args.out)
    else:
        write_all(args.out)
    total = sum(path.stat().st_size for path in args.out.glob("*.npz"))
    print(f"wrote {len(list(args.out.glob('*.npz')))} fixtures, {total / 1e6:.2f} MB, to {args.out} "
          f"(torch {torch.__version__}, numpy {np.__version__})")


if __name__ == "__main__":
    main()
