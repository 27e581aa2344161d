"""Side-by-side time and memory of attnlib's attention against PyTorch's and against itself, in one run.

Run it with `make bench` (or `python benchmarks/bench.py`); it uses the GPU when there is one (attnlib.get_device,
so ATTNLIB_DEVICE=cpu forces the CPU). Three tables:

1. Speed ratios. Each comparison times forward + backward of two implementations with the same weights and
   inputs, alternating between them so that both see the same machine state, and reports the medians over
   repeated runs and their ratio (below 1 means attnlib is faster). Goals: at most 1.2 for the layers against
   torch's, at most 1.3 for attnlib's weight-returning scaled_dot_product_attention against the three-line
   matmul-softmax-matmul, at most 1.1 for attnlib's causal attention against torch's is_causal kernel.
2. Attention against the sequence length L: the peak extra memory of one forward pass (each measured in a fresh
   process, see attnlib.efficient.attention_peak_memory) and its median time, for the plain computation (the
   whole L x L matrix), the chunked one (online softmax, blocks of 128 keys) and torch's fused kernel.
3. Greedy decoding of 128 tokens with and without the KV cache: the tokens (must be identical) and the speed-up.

Timings are not tests: they depend on the machine, so this script prints numbers and fails only if the cached
and uncached tokens differ.
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import attnlib
from attnlib import MultiHeadAttention, TransformerEncoderLayer
from attnlib.efficient import attention_peak_memory, attention_seconds
from attnlib.functional import scaled_dot_product_attention
from attnlib.transformer import EOS, TransformerSeq2Seq
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


def weights_returning_sdpa(device: torch.device, repeats: int, batch=8, heads=8, length=256, head_dim=32):
    """attnlib's scaled_dot_product_attention returning its weights, against matmul-softmax-matmul by hand."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=g).to(device).requires_grad_() for _ in range(3))

    def step_ours():
        out, weights = scaled_dot_product_attention(q, k, v, need_weights=True)
        (out.sum() + weights.sum()).backward()

    def step_plain():
        weights = torch.softmax(q @ k.transpose(-2, -1) / head_dim**0.5, dim=-1)
        (weights @ v).sum().add(weights.sum()).backward()

    label = f"scaled_dot_product_attention, weights returned (B={batch}, H={heads}, L={length}, d={head_dim}) vs plain"
    return label, *compare(step_ours, step_plain, device, repeats)


def causal_attention(device: torch.device, repeats: int, batch=4, heads=8, length=1024, head_dim=64):
    """attnlib's causal attention (is_causal=True, no weights) against torch's is_causal kernel."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=g).to(device).requires_grad_() for _ in range(3))

    def step_ours():
        out, _ = scaled_dot_product_attention(q, k, v, is_causal=True, need_weights=False)
        out.sum().backward()

    def step_theirs():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    label = f"causal attention, is_causal=True (B={batch}, H={heads}, L={length}, d={head_dim}) vs torch's is_causal"
    return label, *compare(step_ours, step_theirs, device, repeats)


BENCHMARKS = [multihead_attention, encoder_layer, encoder_layer_pre_ln, weights_returning_sdpa, causal_attention]


def ratios(device: torch.device, repeats: int) -> None:
    print(f"{'comparison (forward + backward)':92s} {'attnlib ms':>10s} {'other ms':>9s} {'ratio':>6s}")
    for bench in BENCHMARKS:
        label, ours, theirs = bench(device, repeats)
        print(f"{label:92s} {1e3 * ours:10.2f} {1e3 * theirs:9.2f} {ours / theirs:6.2f}")


METHODS = ("plain", "chunked", "fused")


def against_length(device: torch.device, lengths: list[int], repeats: int) -> None:
    """Table 2: one forward pass at batch 1, 4 heads, head_dim 64, float32."""
    print("\nAttention against L (batch 1, 4 heads, head_dim 64, float32; chunks of 128 keys), one forward pass")
    head = " ".join(f"{m + ' MiB':>11s}" for m in METHODS) + " " + " ".join(f"{m + ' ms':>11s}" for m in METHODS)
    print(f"{'L':>6s} {head} {'plain/chunked memory':>21s}")
    for length in lengths:
        memory = [attention_peak_memory(m, length, device=device) / 2**20 for m in METHODS]
        seconds = [attention_seconds(m, length, repeats=repeats, device=device) for m in METHODS]
        cells = " ".join(f"{x:11.1f}" for x in memory) + " " + " ".join(f"{1e3 * x:11.2f}" for x in seconds)
        print(f"{length:6d} {cells} {memory[0] / memory[1]:21.1f}")


def kv_cache(device: torch.device, repeats: int, tokens: int = 128) -> bool:
    """Table 3: chapter 6's date Transformer (d_model 64, 4 heads, 2 + 2 layers, ff 128), untrained, EOS
    suppressed so that every run writes exactly ``tokens`` tokens, decoding a batch of 30-token sources."""
    print(f"\nGreedy decoding of {tokens} tokens, chapter 6's Transformer (d_model 64, 4 heads, 2 + 2 layers)")
    print(f"{'model':28s} {'batch':>5s} {'no cache ms':>12s} {'cache ms':>9s} {'speed-up':>9s} {'same tokens':>12s}")
    same_everywhere = True
    for norm_first in (True, False):
        attnlib.set_seed(0)
        model = TransformerSeq2Seq(32, 32, dropout=0.0, norm_first=norm_first, max_len=tokens + 32).to(device).eval()
        with torch.no_grad():
            model.generator.bias[EOS] = -1e4  # never stop early: every run writes the same number of tokens
        for batch in (1, 64):
            g = torch.Generator().manual_seed(1)
            source = torch.randint(3, 32, (batch, 30), generator=g).to(device)
            lengths = torch.full((batch,), 30, device=device)
            uncached, cached = (
                functools.partial(model.greedy_decode, source, lengths, tokens, use_cache=use) for use in (False, True)
            )
            same = torch.equal(uncached()[0], cached()[0])
            same_everywhere &= same
            t_plain, t_cached = compare(uncached, cached, device, repeats, warmup=0)  # the token runs warmed up
            label = f"TransformerSeq2Seq {'pre-LN' if norm_first else 'post-LN'}"
            times = f"{1e3 * t_plain:12.1f} {1e3 * t_cached:9.1f} {t_plain / t_cached:9.2f}"
            print(f"{label:28s} {batch:5d} {times} {'yes' if same else 'NO':>12s}")
    return same_everywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per implementation in table 1")
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096], help="sequence lengths for table 2"
    )
    args = parser.parse_args()
    device = attnlib.get_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, attnlib {attnlib.__version__}, device {device} ({name}), "
        f"{torch.get_num_threads()} CPU threads\n"
    )
    ratios(device, args.repeats)
    against_length(device, args.lengths, repeats=5)
    if not kv_cache(device, repeats=5):
        sys.exit("greedy decoding with the KV cache wrote different tokens from decoding without it")


if __name__ == "__main__":
    main()
