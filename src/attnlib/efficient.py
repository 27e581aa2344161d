r"""Attention that never stores the whole :math:`L_q \times L_k` weight matrix (chapter 8).

- :func:`chunked_attention`: exact attention computed over blocks of keys with the *online softmax* (a running
  maximum and a running sum, Milakov and Gimelshein, 2018), the idea behind FlashAttention (Dao et al., 2022).
  It gives the same result as :func:`attnlib.functional.scaled_dot_product_attention` to float tolerance, while
  its extra memory grows like ``Lq * chunk_size`` instead of ``Lq * Lk``.
- :class:`KVCache`: the keys and values a decoder has already computed, kept so that each step of autoregressive
  decoding processes only the new token (used by :meth:`attnlib.transformer.TransformerSeq2Seq.greedy_decode`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from attnlib.functional import _check_int, _check_length, _check_mask, _check_qkv, _check_scale

__all__ = ["KVCache", "LayerKVCache", "chunked_attention"]


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

    The full weight matrix is never built; only one (..., Lq, chunk_size) block at a time.

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

    running_max = torch.full((*batch, lq, 1), float("-inf"), dtype=query.dtype, device=query.device)
    running_sum = torch.zeros((*batch, lq, 1), dtype=query.dtype, device=query.device)
    output = torch.zeros((*batch, lq, value.shape[-1]), dtype=query.dtype, device=query.device)
    for start in range(0, lk, chunk_size):
        stop = min(start + chunk_size, lk)
        scores = (query @ key[..., start:stop, :].transpose(-2, -1)) * scale  # (..., Lq, c): one block only
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
        output = output * rescale + weights @ value[..., start:stop, :]
        running_max = new_max
    empty = running_sum == 0  # rows that could attend to nothing: zero output, not 0/0
    return torch.where(empty, torch.zeros_like(output), output / torch.where(empty, 1.0, running_sum))


class LayerKVCache:
    """One decoder layer's cache: its self-attention keys and values for the positions decoded so far, and its
    cross-attention keys and values of the encoder's memory.

    The self-attention buffers, of shape (B, H, max_len, head_dim), are allocated on the first :meth:`append` and
    filled in place, so decoding ``max_len`` tokens allocates them once instead of growing them at every step.
    The memory's keys and values are projected on the first call to :meth:`memory_kv` and reused afterwards:
    the memory does not change while decoding.
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = _check_length("max_len", max_len)
        self.length = 0  # positions cached so far
        self.keys: Tensor | None = None  # (B, H, max_len, head_dim)
        self.values: Tensor | None = None
        self.memory: tuple[Tensor, Tensor] | None = None  # (B, H, S, head_dim) twice

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the keys and values ``k``, ``v`` (B, H, n, head_dim) of ``n`` new positions; return the keys and
        values of every position so far, (B, H, length, head_dim) each (views of the buffers).

        Raises
        ------
        TypeError, ValueError
            If ``k`` or ``v`` is not a 4-D tensor, they differ in shape, they do not match what is cached (batch,
            heads, features), or the new positions do not fit in ``max_len``.
        """
        for name, x in (("k", k), ("v", v)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 4:
                raise ValueError(f"{name} must have shape (B, H, n, head_dim), got shape {tuple(x.shape)}")
        if k.shape != v.shape:
            raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
        b, h, n, d = k.shape
        if self.keys is None:
            self.keys = k.new_empty(b, h, self.max_len, d)
            self.values = v.new_empty(b, h, self.max_len, d)
        elif (b, h, d) != (self.keys.shape[0], self.keys.shape[1], self.keys.shape[3]):
            raise ValueError(
                f"k has shape {tuple(k.shape)} but the cache holds (B, H, ·, head_dim) = "
                f"{(self.keys.shape[0], self.keys.shape[1], '·', self.keys.shape[3])}"
            )
        if self.length + n > self.max_len:
            raise ValueError(
                f"the cache holds {self.length} of at most max_len={self.max_len} positions; {n} more do not fit"
            )
        self.keys[:, :, self.length : self.length + n] = k
        self.values[:, :, self.length : self.length + n] = v
        self.length += n
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def memory_kv(self, project: Callable[[], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """The cross-attention keys and values of the memory: ``project()`` the first time, the stored pair after."""
        if self.memory is None:
            self.memory = project()
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
