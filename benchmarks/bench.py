"""Side-by-side speed of attnlib's layers against PyTorch's, measured in one run.

Run it with `make bench` (or `python benchmarks/bench.py`). Each comparison times forward + backward of both
implementations with the same weights and inputs, alternating between them so that both see the same machine
state, and reports medians over repeated runs and their ratio (attnlib / torch; below 1 means attnlib is faster).
The course's goal for a training step is a ratio of at most 1.2. Timings are not tests: they depend on the
machine, so this script prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections.abc import Callable

import torch
from torch import nn

import attnlib
from attnlib import MultiHeadAttention, TransformerEncoderLayer
from attnlib.utils import median_seconds


def compare(a: Callable[[], None], b: Callable[[], None], device: torch.device, repeats: int, warmup: int = 3):
    """Median seconds of a and of b, timed alternately (one call each in turn) after a warm-up."""
    for _ in range(warmup):
        a()
        b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(median_seconds(a, repeats=1, warmup=0, device=device))
        times_b.append(median_seconds(b, repeats=1, warmup=0, device=device))
    return statistics.median(times_a), statistics.median(times_b)


def multihead_attention(device: torch.device, repeats: int, batch=8, length=256, embed_dim=256, num_heads=8):
    """attnlib.MultiHeadAttention against torch.nn.MultiheadAttention: self-attention, training step."""
    attnlib.set_seed(0)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True).to(device).train()
    ours = MultiHeadAttention.from_torch(theirs).train()
    x = torch.randn(batch, length, embed_dim).to(device).requires_grad_()

    def step_ours():
        out, _ = ours(x, x, x, need_weights=False)
        out.sum().backward()

    def step_theirs():
        out, _ = theirs(x, x, x, need_weights=False)
        out.sum().backward()

    label = f"MultiHeadAttention (B={batch}, L={length}, E={embed_dim}, H={num_heads}), forward+backward"
    return label, *compare(step_ours, step_theirs, device, repeats)


def encoder_layer(
    device: torch.device, repeats: int, batch=8, length=256, d_model=256, nhead=8, dim_feedforward=512, norm_first=False
):
    """attnlib.TransformerEncoderLayer against torch.nn.TransformerEncoderLayer: a training step (dropout 0.1)."""
    attnlib.set_seed(0)
    theirs = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, batch_first=True, norm_first=norm_first)
    theirs = theirs.to(device).train()
    ours = TransformerEncoderLayer.from_torch(theirs).train()
    x = torch.randn(batch, length, d_model).to(device).requires_grad_()

    def step_ours():
        out, _ = ours(x)
        out.sum().backward()

    def step_theirs():
        theirs(x).sum().backward()

    ln = "pre-LN" if norm_first else "post-LN"
    label = (
        f"TransformerEncoderLayer {ln} (B={batch}, L={length}, d={d_model}, H={nhead}, ff={dim_feedforward}), fwd+bwd"
    )
    return label, *compare(step_ours, step_theirs, device, repeats)


def encoder_layer_pre_ln(device: torch.device, repeats: int):
    return encoder_layer(device, repeats, norm_first=True)


BENCHMARKS = [multihead_attention, encoder_layer, encoder_layer_pre_ln]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per implementation")
    args = parser.parse_args()
    device = attnlib.get_device()
    print(
        f"torch {torch.__version__}, attnlib {attnlib.__version__}, device {device}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'comparison':90s} {'attnlib ms':>10s} {'torch ms':>9s} {'ratio':>6s}")
    for bench in BENCHMARKS:
        label, ours, theirs = bench(device, args.repeats)
        print(f"{label:90s} {1e3 * ours:10.2f} {1e3 * theirs:9.2f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
