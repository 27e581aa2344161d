r"""Attention that never stores the whole :math:`L_q \times L_k` weight matrix (chapter 8).

- :func:`chunked_attention`: exact attention computed over blocks of keys with the *online softmax* (a running
  maximum and a running sum, Milakov and Gimelshein, 2018), the idea behind FlashAttention (Dao et al., 2022).
  It gives the same result as :func:`attnlib.functional.scaled_dot_product_attention` to float tolerance, while
  its extra memory in a forward pass grows like ``Lq * (chunk_size + dv)`` instead of ``Lq * Lk``. (Under
  autograd every block's weights are kept for the backward pass, which adds up to ``Lq * Lk`` again; FlashAttention
  avoids that by recomputing them in its backward pass.)
- :class:`KVCache`: the keys and values a decoder has already computed, kept so that each step of autoregressive
  decoding processes only the new token (used by :meth:`attnlib.transformer.TransformerSeq2Seq.greedy_decode` and
  :meth:`attnlib.gpt.GPT.generate`).
- :data:`ATTENTION_METHODS`, :func:`attention_seconds` and :func:`attention_peak_memory`: the three ways of
  computing attention that chapter 8 and ``benchmarks/bench.py`` compare, and how their time and memory are measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlib.functional import (
    _check_int,
    _check_length,
    _check_mask,
    _check_qkv,
    _check_scale,
    scaled_dot_product_attention,
)
from attnlib.utils import median_seconds

# In the order of the source, which is the order the API reference shows them in.
__all__ = [
    "chunked_attention",
    "LayerKVCache",
    "KVCache",
    "ATTENTION_METHODS",
    "attention_seconds",
    "attention_peak_memory",
]


def chunked_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    chunk_size: int = 128,
    scale: float | None = None,
) -> Tensor:
    r"""Exact scaled dot-product attention, computed ``chunk_size`` keys at a time with the online softmax.

    For each block of keys the scores :math:`S_b = QK_b^\top \cdot \text{scale}` are formed, and three running
    quantities per query are updated: the maximum score so far :math:`m`, the sum of exponentials :math:`\ell`
    (relative to :math:`m`) and the weighted sum of values :math:`o`. When the maximum grows from :math:`m` to
    :math:`m'`, what was accumulated is rescaled by :math:`e^{m - m'}`:

    .. math:: \ell \leftarrow e^{m - m'} \ell + \textstyle\sum_j e^{S_{bj} - m'}, \qquad
              o \leftarrow e^{m - m'} o + e^{S_b - m'} V_b, \qquad \text{output} = o / \ell .

    The full weight matrix is never built; only one (..., Lq, chunk_size) block at a time, so a forward pass needs
    extra memory of about ``Lq * (2 * chunk_size + 3 * dv)`` numbers per batch entry and head (and a float32 copy
    of the queries for half-precision inputs). The result is
    differentiable, but autograd keeps every block's weights for the backward pass, which adds up to the whole
    ``Lq x Lk`` matrix again: the saving is for inference (``torch.no_grad()``). FlashAttention saves memory in
    training too by recomputing each block in its backward pass.

    Parameters
    ----------
    query, key, value : Tensor (..., Lq, d), (..., Lk, d), (..., Lk, dv)
        As in :func:`attnlib.functional.scaled_dot_product_attention`.
    mask : Tensor of bool, optional
        Broadcastable to (..., Lq, Lk); True = may attend. A query that may attend to nothing gets a zero output.
    chunk_size : int >= 1
        Keys per block; need not divide Lk.
    scale : float, optional
        Multiplies the scores; default ``1 / sqrt(d)``.

    Returns
    -------
    Tensor (..., Lq, dv)
        In the dtype of the inputs. For float16 and bfloat16 inputs the scores, the running maximum and sum and
        the output are kept in float32 and rounded once at the end, as fused kernels do.

    Raises
    ------
    TypeError, ValueError
        As :func:`~attnlib.functional.scaled_dot_product_attention`, and if ``chunk_size`` is not an int >= 1.
    """
    batch = _check_qkv(query, key, value)
    chunk_size = _check_int("chunk_size", chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    scale = _check_scale(scale, query.shape[-1])
    lq, lk = query.shape[-2], key.shape[-2]
    scores_shape = batch + (lq, lk)
    if mask is not None:
        mask = torch.broadcast_to(_check_mask(mask, scores_shape, query.device, "scores (..., Lq, Lk)"), scores_shape)

    # Half-precision inputs are accumulated in float32, as fused kernels do: the scores, the running max and sum
    # and the output, which is rounded back to the input's dtype once, at the end.
    acc = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    q = query.to(acc)  # (..., Lq, d)
    running_max = torch.full((*batch, lq, 1), float("-inf"), dtype=acc, device=query.device)
    running_sum = torch.zeros((*batch, lq, 1), dtype=acc, device=query.device)
    output = torch.zeros((*batch, lq, value.shape[-1]), dtype=acc, device=query.device)
    for start in range(0, lk, chunk_size):
        stop = min(start + chunk_size, lk)
        k_block, v_block = key[..., start:stop, :].to(acc), value[..., start:stop, :].to(acc)  # (..., c, d)
        scores = (q @ k_block.transpose(-2, -1)) * scale  # (..., Lq, c): one block only
        if mask is not None:
            scores = scores.masked_fill(~mask[..., start:stop], float("-inf"))
        # The shift cancels out of the result, so it needs no gradient (detached), which lets the block's
        # exponentials be computed in place: one (..., Lq, c) buffer per block, not three.
        new_max = torch.maximum(running_max, scores.detach().amax(dim=-1, keepdim=True))  # (..., Lq, 1)
        # A row with no allowed key so far has max -inf; subtract 0 there so that exp gives 0, not NaN.
        shift = torch.where(torch.isinf(new_max), torch.zeros_like(new_max), new_max)
        weights = scores.sub_(shift).exp_()  # (..., Lq, c): unnormalised, blocked keys give exactly 0
        rescale = torch.exp(running_max - shift)  # e^{m - m'}; 0 while nothing has been seen
        running_sum = running_sum * rescale + weights.sum(dim=-1, keepdim=True)
        # weights @ V_b is a fresh tensor that autograd does not need again, so the rescaled sum goes into it
        output = (weights @ v_block).add_(output * rescale)
        running_max = new_max
    empty = running_sum == 0  # rows that could attend to nothing: zero output, not 0/0
    result = torch.where(empty, torch.zeros_like(output), output / torch.where(empty, 1.0, running_sum))
    return result.to(query.dtype)  # (..., Lq, dv)


class LayerKVCache:
    """One decoder layer's cache: its self-attention keys and values for the positions decoded so far, and its
    cross-attention keys and values of the encoder's memory (a decoder-only model such as :class:`attnlib.gpt.GPT`
    has no memory and uses :meth:`append` alone).

    The self-attention buffers, of shape (B, H, max_len, head_dim), are allocated on the first :meth:`append` and
    filled in place, so decoding ``max_len`` tokens allocates them once instead of growing them at every step.
    The memory's keys and values are projected on the first call to :meth:`memory_kv` and reused afterwards:
    the memory does not change while decoding.

    A cache is for decoding, under ``torch.no_grad()``: writing into its buffers in place would break the
    gradients of earlier steps, so :meth:`append` refuses tensors that require gradients.
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = _check_length("max_len", max_len)
        self.length = 0  # positions cached so far
        self.keys: Tensor | None = None  # (B, H, max_len, head_dim)
        self.values: Tensor | None = None
        self.memory: tuple[Tensor, Tensor] | None = None  # (B, H, S, head_dim) twice
        self._memory_source: Tensor | None = None  # the memory they were projected from

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the keys and values ``k``, ``v`` (B, H, n, head_dim) of ``n`` new positions; return the keys and
        values of every position so far, (B, H, length, head_dim) each (views of the buffers).

        Raises
        ------
        TypeError, ValueError
            If ``k`` or ``v`` is not a 4-D tensor, they differ in shape, they do not match what is cached (batch,
            heads, features, dtype, device), or the new positions do not fit in ``max_len``. Nothing is stored
            then.
        RuntimeError
            If ``k`` or ``v`` requires gradients (decode under ``torch.no_grad()``).
        """
        for name, x in (("k", k), ("v", v)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 4:
                raise ValueError(f"{name} must have shape (B, H, n, head_dim), got shape {tuple(x.shape)}")
            if x.requires_grad:
                raise RuntimeError(
                    f"{name} requires gradients, but a KV cache is for decoding: it writes into its buffers in place, "
                    "which would break the gradients of earlier steps; decode under torch.no_grad()"
                )
        if k.shape != v.shape or k.dtype != v.dtype or k.device != v.device:
            raise ValueError(
                f"k and v must have the same shape, dtype and device, got {tuple(k.shape)} {k.dtype} {k.device} "
                f"and {tuple(v.shape)} {v.dtype} {v.device}"
            )
        b, h, n, d = k.shape
        if self.length + n > self.max_len:
            raise ValueError(
                f"the cache holds {self.length} of at most max_len={self.max_len} positions; {n} more do not fit"
            )
        if self.keys is None:
            self.keys = k.new_empty(b, h, self.max_len, d)
            self.values = v.new_empty(b, h, self.max_len, d)
        else:
            held = (self.keys.shape[0], self.keys.shape[1], self.keys.shape[3], self.keys.dtype, self.keys.device)
            if (b, h, d, k.dtype, k.device) != held:
                raise ValueError(
                    f"k has shape {tuple(k.shape)}, dtype {k.dtype} on {k.device}, but the cache holds B={held[0]}, "
                    f"H={held[1]}, head_dim={held[2]} in {held[3]} on {held[4]}"
                )
        self.keys[:, :, self.length : self.length + n] = k
        self.values[:, :, self.length : self.length + n] = v
        self.length += n
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def memory_kv(self, memory: Tensor, project: Callable[[], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """The cross-attention keys and values of ``memory``: ``project()`` the first time, the stored pair after.

        Raises
        ------
        ValueError
            If ``memory`` is not the tensor the stored pair was projected from (a new source needs a new cache).
        """
        if self.memory is None:
            self.memory, self._memory_source = project(), memory
        elif memory is not self._memory_source:
            raise ValueError(
                "memory is not the tensor this cache projected its keys and values from; start a new KVCache for "
                "a new source"
            )
        return self.memory

    def __repr__(self) -> str:
        return f"LayerKVCache(length={self.length}, max_len={self.max_len})"


class KVCache:
    r"""The keys and values a Transformer decoder has computed, kept across the steps of autoregressive decoding.

    Without a cache, step :math:`t` of greedy decoding runs the decoder over all :math:`t` tokens written so far,
    although the first :math:`t - 1` give exactly the keys and values they gave before (the causal mask keeps
    them from seeing the new token). With a cache, each step runs the decoder over the new token alone and lets
    it attend over the stored keys and values: :math:`O(t)` work per step instead of :math:`O(t^2)` for the
    attention and :math:`O(1)` instead of :math:`O(t)` for the projections and MLPs. The price is memory:
    ``2 * num_layers * B * d_model * max_len`` numbers for the self-attention, plus the memory's keys and values.
    (With grouped-query attention, as in :class:`attnlib.gpt.GPT`, each layer stores only its ``num_kv_heads``
    heads of keys and values, ``num_kv_heads * head_dim`` numbers per position instead of ``d_model``; see
    :func:`attnlib.gpt.kv_cache_bytes`.)

    Parameters
    ----------
    num_layers : int
        Decoder layers; ``cache[i]`` is layer ``i``'s :class:`LayerKVCache`.
    max_len : int
        The most positions it will hold.
    """

    def __init__(self, num_layers: int, max_len: int) -> None:
        num_layers = _check_length("num_layers", num_layers)
        self.layers = [LayerKVCache(max_len) for _ in range(num_layers)]

    @property
    def length(self) -> int:
        """Positions cached so far (every layer holds the same number between steps)."""
        return self.layers[0].length

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> LayerKVCache:
        return self.layers[i]

    def __repr__(self) -> str:
        return f"KVCache(num_layers={len(self.layers)}, length={self.length}, max_len={self.layers[0].max_len})"


ATTENTION_METHODS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    # builds the whole (..., L, L) weight matrix, as chapters 1-7 do when they draw it
    "plain": lambda q, k, v: scaled_dot_product_attention(q, k, v, need_weights=True)[0],
    # the online softmax over blocks of 128 keys: one (..., L, 128) block at a time
    "chunked": lambda q, k, v: chunked_attention(q, k, v, chunk_size=128),
    # torch's fused kernels: on a GPU FlashAttention for float16/bfloat16 without a mask, otherwise memory-efficient
    # attention (float32, as here, or with a mask); on the CPU a FlashAttention-style kernel of its own
    "fused": F.scaled_dot_product_attention,
}
"""Three ways to compute the same attention, by name, as :func:`attention_seconds` and
:func:`attention_peak_memory` measure them: ``"plain"`` builds the whole weight matrix, ``"chunked"`` is
:func:`chunked_attention` over blocks of 128 keys, ``"fused"`` is torch's ``scaled_dot_product_attention``.

:meta hide-value:
"""


def _check_workload(method: object, length: object, batch: object, heads: object, head_dim: object):
    """The method's function and the sizes (length, batch, heads, head_dim) as checked ints."""
    if method not in ATTENTION_METHODS:
        raise ValueError(f"method must be one of {sorted(ATTENTION_METHODS)}, got {method!r}")
    named = (("length", length), ("batch", batch), ("heads", heads), ("head_dim", head_dim))
    return ATTENTION_METHODS[method], [_check_length(name, n) for name, n in named]


def _attention_inputs(length: int, batch: int, heads: int, head_dim: int, device: torch.device, seed: int = 0):
    """Seeded random queries, keys and values of shape (batch, heads, length, head_dim), float32, on ``device``."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=g).to(device) for _ in range(3))
    return q, k, v


def attention_seconds(
    method: str,
    length: int,
    batch: int = 1,
    heads: int = 4,
    head_dim: int = 64,
    repeats: int = 3,
    device: torch.device | str | None = None,
) -> float:
    """The median time, in seconds, of one forward pass of ``ATTENTION_METHODS[method]`` over random inputs of
    shape (batch, heads, length, head_dim), on ``device`` (default: the CPU), after one warm-up call.

    Raises
    ------
    ValueError
        If ``method`` is not a key of :data:`ATTENTION_METHODS` or a size is not a positive int.
    """
    fn, sizes = _check_workload(method, length, batch, heads, head_dim)
    device = torch.device("cpu" if device is None else device)
    q, k, v = _attention_inputs(*sizes, device)
    with torch.no_grad():
        return median_seconds(lambda: fn(q, k, v), repeats=repeats, warmup=1, device=device)


def attention_peak_memory(
    method: str,
    length: int | Sequence[int],
    batch: int = 1,
    heads: int = 4,
    head_dim: int = 64,
    device: torch.device | str | None = None,
) -> int | list[int]:
    """The peak extra memory, in bytes, of one forward pass of ``ATTENTION_METHODS[method]``, measured in a
    fresh Python process so that nothing allocated before (by this process, or by an earlier measurement) hides
    or inflates it. The inputs of shape (batch, heads, length, head_dim), float32, are made before the
    measurement starts and are not counted.

    Given a sequence of lengths, it returns a list: one fresh process measures them one after another, each with
    its own inputs, warm-up and reset of the peak, the inputs of the one before freed first. The figures are those
    of separate processes, for the price of one process start (most of the time at small sizes).

    The call is made twice and the second one measured, so that loading kernels and starting thread pools is not
    counted. On a GPU the count is torch's own (``torch.cuda.max_memory_allocated``: bytes allocated). On the CPU
    it is the growth of the process's resident memory (pages touched): on Linux, the peak resident size
    (``VmHWM``, reset just before the call) less the resident size before it; elsewhere only how far the call
    pushes the process's lifetime peak, a lower bound that can be 0. The process is started with glibc's
    ``MALLOC_MMAP_THRESHOLD_`` fixed, so that freed blocks go back to the system at once and the resident size
    follows the memory in use (other C libraries ignore the setting). CPU and GPU figures are close but not
    strictly comparable. The measurement runs without gradients (see :func:`chunked_attention` on autograd).

    Raises
    ------
    ValueError
        If ``method`` or a size is invalid, or ``length`` is an empty sequence.
    RuntimeError
        If the measuring process fails.
    """
    several = isinstance(length, Sequence) and not isinstance(length, str)
    lengths = list(length) if several else [length]
    if not lengths:
        raise ValueError("length must be a positive int or a non-empty sequence of them, got an empty sequence")
    checked = [_check_workload(method, n, batch, heads, head_dim)[1] for n in lengths]
    device = torch.device("cpu" if device is None else device)
    args = json.dumps([method, [sizes[0] for sizes in checked], *checked[0][1:], str(device)])
    code = f"import attnlib.efficient as e; e._measure_peak_memory(*__import__('json').loads({args!r}))"
    # glibc's malloc keeps freed blocks of up to 32 MiB for reuse, which makes resident memory a noisy measure of
    # what is live; a fixed threshold hands every block above 128 KiB straight back to the system when freed.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {method} attention at length {length} failed:\n{done.stderr[-2000:]}")
    peaks = [int(line) for line in done.stdout.strip().splitlines()[-len(lengths) :]]
    return peaks if several else peaks[0]


def _resident_bytes() -> tuple[int, int] | None:
    """(current, peak) resident memory of this process on Linux, or None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _max_rss_bytes() -> int:
    import resource  # not on Windows, where this measurement is not available

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _measure_peak_memory(
    method: str, lengths: list[int], batch: int, heads: int, head_dim: int, device: str
) -> None:
    """Run in the fresh process by :func:`attention_peak_memory`: print the peak extra bytes of one call at each
    length, one line each."""
    for length in lengths:
        peak = _peak_of_one_call(ATTENTION_METHODS[method], length, batch, heads, head_dim, torch.device(device))
        print(peak, flush=True)


def _peak_of_one_call(fn, length: int, batch: int, heads: int, head_dim: int, device: torch.device) -> int:
    """The peak extra bytes of the second of two calls of ``fn`` on fresh inputs; the inputs are freed on return.

    A first, unmeasured call at full size loads the kernels, starts the thread pools and fills the allocator's
    caches; only the second call is measured."""
    with torch.no_grad():
        q, k, v = _attention_inputs(length, batch, heads, head_dim, device)
        fn(q, k, v)  # the warm-up; its result is dropped at once
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            fn(q, k, v)
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        if _resident_bytes() is None:  # no /proc: the growth of the lifetime peak, a lower bound
            before = _max_rss_bytes()
            fn(q, k, v)
            return max(0, _max_rss_bytes() - before)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the peak resident size (VmHWM) to the current one (Linux)
        except OSError:
            pass
        before, peak = _resident_bytes()
        if peak > before + 2**20:
            raise RuntimeError(
                "could not reset the peak resident size through /proc/self/clear_refs, so the measurement would "
                "include earlier peaks"
            )
        fn(q, k, v)
        return max(0, _resident_bytes()[1] - before)
