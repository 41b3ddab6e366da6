#!/usr/bin/env python3
"""Takes a model trained by `backprop train` into PyTorch, and a PyTorch-trained model back.

    pip install torch numpy safetensors
    python reference/pytorch_bridge.py eval runs/seed0-level03/model.safetensors
    python reference/pytorch_bridge.py train runs/pytorch/model.safetensors --like runs/seed0-level03/model.safetensors
    backprop eval --model runs/pytorch/model.safetensors

`eval FILE` rebuilds the `nn.Sequential` a `model.safetensors` describes (its metadata entry
`backprop.network`: the input shape and each module's `torch.nn` class and keyword arguments),
loads the tensors with `load_state_dict(strict=True)` (every name and shape must match), and
prints the MNIST test accuracy in `backprop eval`'s words, with the count of right answers.

`train OUT` trains a model in PyTorch and writes it for `backprop eval` and `train --init-from`:
the network of `--like FILE` (default: the MLP [784, 256, 10] with ReLU), from PyTorch's own
init (`--seed`), `--epochs` of plain SGD (`--lr`, batch 64) on the 60,000 training images in a
shuffled order, then `save_file(model.state_dict(), OUT, metadata={"backprop.network": ...})`.

Images are read from `data/mnist` (the IDX files) and scaled as `backprop` scales them: pixel /
255 as float32, rows of 784 for an MLP, (N, 1, 28, 28) for a network whose input_shape says so.
"""

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "data" / "mnist"
NETWORK_KEY = "backprop.network"
DEFAULT_NETWORK = {
    "input_shape": [784],
    "modules": [
        {"module": "Linear", "in_features": 784, "out_features": 256},
        {"module": "ReLU"},
        {"module": "Linear", "in_features": 256, "out_features": 10},
    ],
}


def mnist(split):
    """(images float32 in [0, 1] as rows of pixels, labels int64) of `train` or `t10k`."""
    with gzip.open(MNIST / f"{split}-images-idx3-ubyte.gz") as file:
        raw = file.read()
    count, rows, cols = (int.from_bytes(raw[at : at + 4], "big") for at in (4, 8, 12))
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16, count=count * rows * cols)
    images = pixels.reshape(count, rows * cols).astype(np.float32) / np.float32(255.0)
    with gzip.open(MNIST / f"{split}-labels-idx1-ubyte.gz") as file:
        labels = np.frombuffer(file.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def network_of(path):
    """The `backprop.network` description in a safetensors file's metadata."""
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    if NETWORK_KEY not in metadata:
        raise SystemExit(f"{path}: no {NETWORK_KEY!r} metadata (not written by backprop or this script)")
    return json.loads(metadata[NETWORK_KEY])


def build(network):
    """The nn.Sequential of a description: each module is `torch.nn.<module>(**arguments)`."""
    modules = []
    for module in network["modules"]:
        arguments = dict(module)
        modules.append(getattr(nn, arguments.pop("module"))(**arguments))
    return nn.Sequential(*modules)


def shaped(images, network):
    """Rows of pixels as the network's input: (N, 784) or (N, C, H, W)."""
    return images.reshape(images.shape[0], *network["input_shape"])


def accuracy(model, network):
    images, labels = mnist("t10k")
    model.eval()
    with torch.no_grad():
        predicted = torch.cat(
            [model(shaped(images[at : at + 1000], network)).argmax(dim=1) for at in range(0, len(images), 1000)]
        )
    return int((predicted == labels).sum()), len(labels)


def evaluate(args):
    network = network_of(args.model)
    model = build(network)
    model.load_state_dict(load_file(str(args.model)), strict=True)
    right, total = accuracy(model, network)
    print(f"{args.model}: {model}")
    print(f"test accuracy {100.0 * right / total:.2f}% on {total} images ({right} right, PyTorch {torch.__version__})")


def train(args):
    network = network_of(args.like) if args.like else DEFAULT_NETWORK
    torch.manual_seed(args.seed)
    model = build(network)
    images, labels = mnist("train")
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(images))
        for at in range(0, len(images), 64):
            batch = order[at : at + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(shaped(images[batch], network)), labels[batch])
            loss.backward()
            optimizer.step()
        right, total = accuracy(model, network)
        print(f"epoch {epoch}  test accuracy {100.0 * right / total:.2f}% ({right} right)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(tensors, str(args.out), metadata={NETWORK_KEY: json.dumps(network)})
    print(f"wrote {args.out}: {', '.join(f'{name} {tuple(t.shape)}' for name, t in tensors.items())}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    evaluating = commands.add_parser("eval", help="PyTorch's test accuracy of a model.safetensors")
    evaluating.add_argument("model", type=Path)
    evaluating.set_defaults(action=evaluate)
    training = commands.add_parser("train", help="train in PyTorch, write a model.safetensors")
    training.add_argument("out", type=Path)
    training.add_argument("--like", type=Path, help="a model.safetensors whose network to train")
    training.add_argument("--epochs", type=int, default=1)
    training.add_argument("--lr", type=float, default=0.1)
    training.add_argument("--seed", type=int, default=0)
    training.set_defaults(action=train)
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.action(args)


if __name__ == "__main__":
    main()
