#!/usr/bin/env python3
"""Times PyTorch on the step and the epoch that `cargo bench --bench train_throughput` times.

    pip install torch numpy
    python reference/bench_pytorch.py                    # the full tables
    python reference/bench_pytorch.py --turns 1 --json out.json   # one turn, medians to a file

The same work as the Rust bench (`src/bench.rs`): MLP [784, 256, 10] with ReLU in f32,
softmax cross-entropy, plain `torch.optim.SGD(lr=0.01)`; a step is `zero_grad`, forward, loss,
backward and the update on the first B MNIST training images (B = 32, 64, 128, 256); an epoch is
the 60,000 training images in a shuffled order at batch 128, each batch gathered by indexing
(`images[order[i:i + 128]]`, as our `Batches` copies rows). Weights start from `nn.Linear`'s
default init, the distribution `MlpSpec::classifier` draws from (`backprop_core::init`). Thread
counts 1 and 2 through `torch.set_num_threads` (one pool per run: `set_num_interop_threads(1)`).

Timing follows `backprop::bench::in_turns`: each turn runs a step `runs` times in a row, the
first a warm-up, and every figure is the median over all turns. The table has the Rust bench's
columns; "floor / time" is left empty (the GEMM floor is a Rust measurement:
`reference/bench_side_by_side.py` puts both in one table, measured in turns).

Then the CNN table: the `--arch lenet` preset as `nn.Sequential(Conv2d(1, 8, 3, padding=1), ReLU(),
MaxPool2d(2), Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(784, 10))`, the
same SGD step at batch 64 on images shaped (B, 1, 28, 28).

Then the normalization table: the MLP's step at batch 128 with `nn.BatchNorm1d(256)` or
`nn.LayerNorm(256)` between the hidden `Linear` and the ReLU, and batch norm with `nn.Dropout(0.2)`
after the ReLU (the network `backprop train --norm batch --dropout 0.2` builds), in training mode,
the four timed in turns.

`--json PATH` writes the medians in seconds by row name (`step/pytorch/128/1`,
`epoch/pytorch/128/2`, `cnn/pytorch/64/1`, `norm/pytorch/batch+dropout/128/2`), the names the Rust bench's `--save-baseline` files
use.
"""

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "data" / "mnist"
FLOPS_PER_SAMPLE = 818_176.0  # 2 (784*256 + 256*10) forward, 2 (784*256 + 256*10 + 10*256) backward
BATCHES = [32, 64, 128, 256]
THREADS = [1, 2]
EPOCH_BATCH = 128
CNN_BATCH = 64
# `backprop::bench::network_flops_per_sample` of lenet: forward and dW of both convolutions and
# the Linear, the input gradient of all but the first convolution (2 FLOPs a multiply-add).
CNN_FLOPS_PER_SAMPLE = 1_627_584.0


def mnist_train_images():
    """The training images as float32 in [0, 1] (pixel / 255) and their labels, from the IDX files."""
    with gzip.open(MNIST / "train-images-idx3-ubyte.gz") as file:
        raw = file.read()
    count, rows, cols = (int.from_bytes(raw[at : at + 4], "big") for at in (4, 8, 12))
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16, count=count * rows * cols)
    images = pixels.reshape(count, rows * cols).astype(np.float32) / np.float32(255.0)
    with gzip.open(MNIST / "train-labels-idx1-ubyte.gz") as file:
        labels = np.frombuffer(file.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


class Trainer:
    """One network and its optimizer: `step(x, y)` is a whole training step. With `norm`
    ("batch" or "layer") and `dropout` p, the hidden layer is Linear, norm, ReLU, Dropout(p):
    the network `backprop train --norm NORM --dropout P` builds."""

    def __init__(self, seed, norm="none", dropout=0.0):
        torch.manual_seed(seed)
        nn = torch.nn
        normalization = {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm]
        hidden = [nn.Linear(784, 256)] + ([normalization(256)] if norm != "none" else [])
        hidden += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        self.network = nn.Sequential(*hidden, nn.Linear(256, 10))
        self.network.train()
        self.sgd = torch.optim.SGD(self.network.parameters(), lr=0.01)

    def step(self, images, labels):
        self.sgd.zero_grad()
        loss = F.cross_entropy(self.network(images), labels)
        loss.backward()
        self.sgd.step()
        return loss


# The normalization rows of the Rust bench (`norm/level03/NAME/128/THREADS`): name, norm, dropout.
NORM_ROWS = [("plain", "none", 0.0), ("batch", "batch", 0.0), ("layer", "layer", 0.0), ("batch+dropout", "batch", 0.2)]
NORM_BATCH = 128


def norm_step_timer(images, labels, norm, dropout):
    trainer = Trainer(seed=1, norm=norm, dropout=dropout)
    x, y = images[:NORM_BATCH].contiguous(), labels[:NORM_BATCH].contiguous()
    return lambda: timed(lambda: trainer.step(x, y))


class CnnTrainer:
    """The `--arch lenet` network and its optimizer."""

    def __init__(self, seed):
        torch.manual_seed(seed)
        nn = torch.nn
        self.network = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(784, 10),
        )
        self.sgd = torch.optim.SGD(self.network.parameters(), lr=0.01)

    def step(self, images, labels):
        self.sgd.zero_grad()
        loss = F.cross_entropy(self.network(images), labels)
        loss.backward()
        self.sgd.step()
        return loss


def cnn_step_timer(images, labels, batch):
    trainer = CnnTrainer(seed=1)
    x, y = images[:batch].reshape(batch, 1, 28, 28).contiguous(), labels[:batch].contiguous()
    return lambda: timed(lambda: trainer.step(x, y))


def timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def step_timer(images, labels, batch):
    trainer = Trainer(seed=1)
    x, y = images[:batch].contiguous(), labels[:batch].contiguous()
    return lambda: timed(lambda: trainer.step(x, y))


def epoch_timer(images, labels):
    trainer = Trainer(seed=1)
    generator = torch.Generator().manual_seed(5)

    def epoch():
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), EPOCH_BATCH):
            rows = order[start : start + EPOCH_BATCH]
            trainer.step(images[rows], labels[rows])

    return lambda: timed(epoch)


def in_turns(turns, runs_per_turn, timers):
    """Each timer `runs_per_turn` times in a row (the first a warm-up), `turns` times; medians."""
    times = [[] for _ in timers]
    for _ in range(turns):
        for timer, record in zip(timers, times):
            timer()
            record.extend(timer() for _ in range(runs_per_turn - 1))
    return [statistics.median(record) for record in times]


def row(name, batch, threads, seconds, samples, flops_per_sample=FLOPS_PER_SAMPLE):
    print(
        f"| {name:<8} | {batch:>5} | {threads:>7} | {seconds * 1e6:>12.1f} | "
        f"{samples / seconds:>9.0f} | {flops_per_sample * samples / seconds / 1e9:>7.1f} | {'':>12} |"
    )


def header(unit):
    print(f"| level    | batch | threads | {unit:>12} | samples/s | GFLOP/s | floor / time |")
    print("|----------|------:|--------:|-------------:|----------:|--------:|-------------:|")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10, help="turns of each step (epochs: half as many, at least 1)")
    parser.add_argument("--runs", type=int, default=11, help="steps per turn, the first a warm-up")
    parser.add_argument("--epoch-samples", type=int, default=60_000)
    parser.add_argument("--json", type=Path, help="write the medians (seconds) by row name here")
    args = parser.parse_args()

    torch.set_num_interop_threads(1)
    images, labels = mnist_train_images()
    medians = {}
    print(f"PyTorch {torch.__version__}, MLP [784, 256, 10], f32, one SGD step on MNIST")
    header("us / step")
    for threads in THREADS:
        torch.set_num_threads(threads)
        for batch in BATCHES:
            [seconds] = in_turns(args.turns, args.runs, [step_timer(images, labels, batch)])
            medians[f"step/pytorch/{batch}/{threads}"] = seconds
            row("pytorch", batch, threads, seconds, batch)
    epoch_images, epoch_labels = images[: args.epoch_samples], labels[: args.epoch_samples]
    epoch_turns = max(1, args.turns // 2)
    print()
    print(f"Epoch: {len(epoch_images)} shuffled images at batch {EPOCH_BATCH}, median of {epoch_turns} timed epochs")
    header("us / epoch")
    for threads in THREADS:
        torch.set_num_threads(threads)
        [seconds] = in_turns(epoch_turns, 2, [epoch_timer(epoch_images, epoch_labels)])
        medians[f"epoch/pytorch/{EPOCH_BATCH}/{threads}"] = seconds
        row("pytorch", EPOCH_BATCH, threads, seconds, len(epoch_images))
    print()
    print(f"CNN lenet, f32, batch {CNN_BATCH}, one SGD step on MNIST")
    header("us / step")
    for threads in THREADS:
        torch.set_num_threads(threads)
        [seconds] = in_turns(args.turns, args.runs, [cnn_step_timer(images, labels, CNN_BATCH)])
        medians[f"cnn/pytorch/{CNN_BATCH}/{threads}"] = seconds
        row("pytorch", CNN_BATCH, threads, seconds, CNN_BATCH, CNN_FLOPS_PER_SAMPLE)
    print()
    print(f"MLP [784, 256, 10] with nn.BatchNorm1d / nn.LayerNorm / nn.Dropout(0.2) after the hidden Linear, batch {NORM_BATCH}, in turns")
    header("us / step")
    for threads in THREADS:
        torch.set_num_threads(threads)
        timers = [norm_step_timer(images, labels, norm, dropout) for _, norm, dropout in NORM_ROWS]
        for (name, _, _), seconds in zip(NORM_ROWS, in_turns(args.turns, args.runs, timers)):
            medians[f"norm/pytorch/{name}/{NORM_BATCH}/{threads}"] = seconds
            row(name[:8], NORM_BATCH, threads, seconds, NORM_BATCH)
    if args.json:
        # Written whole or not at all: a temporary file in the same folder, then a rename.
        with tempfile.NamedTemporaryFile("w", dir=args.json.parent, delete=False, suffix=".tmp") as file:
            json.dump(medians, file)
        os.replace(file.name, args.json)


if __name__ == "__main__":
    main()
