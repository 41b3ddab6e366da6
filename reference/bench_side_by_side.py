#!/usr/bin/env python3
"""level03, the GEMM floor and PyTorch on the same step and epoch, measured in turns: one table.

    pip install torch numpy
    python reference/bench_side_by_side.py              # 5 turns of about a minute each on 2 cores
    python reference/bench_side_by_side.py --turns 9

Each turn runs the Rust bench once (`cargo bench --bench train_throughput -- --turns 1
step/level03 epoch/level03 cnn/level03 norm/level03`: the floor and level03, 41 steps per batch
size and thread count, one epoch after a warm-up epoch, the `--arch lenet` CNN step at batch 64,
and the batch-128 step plain, with batch norm, layer norm and batch norm + dropout 0.2) and then
`reference/bench_pytorch.py --turns 1` (the same steps and epochs in PyTorch, the normalized ones
with nn.BatchNorm1d, nn.LayerNorm and nn.Dropout), so a machine whose speed drifts slows both alike. Each figure is the median of
its per-turn medians; the two ratios are medians of the per-turn ratios (the floor and level03
of one turn ran side by side, and PyTorch right after them), so a slow turn moves them less than
it moves the times. "pytorch / level03" is PyTorch's time over level03's: above 1, level03 is
faster.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOPS_PER_SAMPLE = 818_176.0
CNN_FLOPS_PER_SAMPLE = 1_627_584.0  # backprop::bench::network_flops_per_sample of lenet
CNN_BATCH = 64
BATCHES = [32, 64, 128, 256]
THREADS = [1, 2]
EPOCH_BATCH, EPOCH_SAMPLES = 128, 60_000
# Steps per batch size and thread count in a turn (the first a warm-up): enough for a fresh
# 2-thread pool to settle.
RUNS = 41


def bench_binary():
    """Builds the Rust bench in release mode and returns the path of its executable."""
    built = subprocess.run(
        ["cargo", "bench", "--bench", "train_throughput", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    )
    for line in built.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "train_throughput":
            if message.get("executable"):
                return message["executable"]
    sys.exit("error: cargo built no train_throughput executable")


def one_turn(binary, folder):
    """One run of each side; their medians by row name."""
    rust_json, torch_json = folder / "rust.json", folder / "pytorch.json"
    subprocess.run(
        [binary, "--bench", "--turns", "1", "--runs", str(RUNS), "--json", str(rust_json), "step/level03", "epoch/level03", "cnn/level03", "norm/level03"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [sys.executable, str(ROOT / "reference" / "bench_pytorch.py"), "--turns", "1", "--runs", str(RUNS), "--json", str(torch_json)],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    return {**json.loads(rust_json.read_text()), **json.loads(torch_json.read_text())}


# Above this floor / time a row was faster than its own products: the measurement was disturbed.
DISTURBED_FLOOR = 1.05


def table(turns, kind, sizes, unit, samples_of, flops_per_sample=FLOPS_PER_SAMPLE):
    """The rows of one table (`step` or `epoch`) from every turn's medians."""
    print(f"| {kind:<5} | batch | threads | floor {unit:>5} | level03 {unit:>5} | floor / time | pytorch {unit:>5} | pytorch / level03 |")
    print("|-------|------:|--------:|-----------:|-------------:|-------------:|-------------:|------------------:|")
    scale = 1e6 if unit == "us" else 1e3
    gflops = []
    disturbed = []
    for threads in THREADS:
        for batch in sizes:
            names = [f"{kind}/{name}/{batch}/{threads}" for name in ("floor", "level03", "pytorch")]
            floor, ours, torch = (statistics.median(turn[name] for turn in turns) for name in names)
            floor_ratio = statistics.median(turn[names[0]] / turn[names[1]] for turn in turns)
            torch_ratio = statistics.median(turn[names[2]] / turn[names[1]] for turn in turns)
            # A step cannot beat the products it is made of: above 1.05 the floor's run was slowed.
            flag = " !" if floor_ratio > DISTURBED_FLOOR else ""
            if flag:
                disturbed.append(f"{kind}/level03/{batch}/{threads} ({floor_ratio:.2f})")
            print(
                f"| {kind:<5} | {batch:>5} | {threads:>7} | {floor * scale:>10.1f} | {ours * scale:>12.1f} | "
                f"{floor_ratio:>12.2f}{flag} | {torch * scale:>12.1f} | {torch_ratio:>17.2f} |"
            )
            flops = flops_per_sample * samples_of(batch)
            figures = ", ".join(f"{name} {flops / time / 1e9:.1f}" for name, time in zip(("floor", "level03", "pytorch"), (floor, ours, torch)))
            gflops.append(f"  {kind} batch {batch}, {threads} thread(s): {figures}")
    if disturbed:
        print(
            f"! floor / time above {DISTURBED_FLOOR} in {', '.join(disturbed)}: a step cannot be faster than "
            "the products it is made of, so the floor's run was disturbed; rerun on a quiet machine"
        )
    print()
    print(f"GFLOP/s of the median times ({flops_per_sample:,.0f} FLOPs per sample):")
    print("\n".join(gflops))
    print()


NORM_NAMES = ["plain", "batch", "layer", "batch+dropout"]


def norm_table(turns, batch=128):
    """Each side's step with normalization and dropout, and what each costs it (plain / time)."""
    print(f"| norm          | threads | level03 us | plain / time | pytorch us | plain / time | pytorch / level03 |")
    print("|---------------|--------:|-----------:|-------------:|-----------:|-------------:|------------------:|")
    for threads in THREADS:
        for name in NORM_NAMES:
            ours, torch, ours_plain, torch_plain = (
                [turn[f"norm/{side}/{row}/{batch}/{threads}"] for turn in turns]
                for side, row in (("level03", name), ("pytorch", name), ("level03", "plain"), ("pytorch", "plain"))
            )
            ours_cost = statistics.median(p / t for p, t in zip(ours_plain, ours))
            torch_cost = statistics.median(p / t for p, t in zip(torch_plain, torch))
            ratio = statistics.median(t / o for t, o in zip(torch, ours))
            print(
                f"| {name:<13} | {threads:>7} | {statistics.median(ours) * 1e6:>10.1f} | {ours_cost:>12.3f} | "
                f"{statistics.median(torch) * 1e6:>10.1f} | {torch_cost:>12.3f} | {ratio:>17.2f} |"
            )
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    binary = bench_binary()
    turns = []
    with tempfile.TemporaryDirectory() as folder:
        for turn in range(args.turns):
            print(f"turn {turn + 1} of {args.turns}", file=sys.stderr)
            turns.append(one_turn(binary, Path(folder)))
    print(f"Medians of {args.turns} turns (each turn: the Rust bench, then PyTorch)")
    print()
    table(turns, "step", BATCHES, "us", lambda batch: batch)
    table(turns, "epoch", [EPOCH_BATCH], "ms", lambda batch: EPOCH_SAMPLES)
    table(turns, "cnn", [CNN_BATCH], "us", lambda batch: batch, CNN_FLOPS_PER_SAMPLE)
    norm_table(turns)
    # On a shared machine the second core is not always there: the floor's own speedup says so.
    speedups = ", ".join(
        f"batch {batch} {statistics.median(t[f'step/floor/{batch}/1'] / t[f'step/floor/{batch}/2'] for t in turns):.2f}"
        for batch in BATCHES
    )
    print(f"The floor's speedup from 1 to 2 threads (median of per-turn ratios): {speedups}")


if __name__ == "__main__":
    main()
