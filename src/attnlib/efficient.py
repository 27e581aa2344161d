r"""Attention that never stores the whole :math:`L_q \times L_k` weight matrix (chapter 8).

- :func:`chunked_attention`: exact attention computed over blocks of keys with the *online softmax* (a running
  maximum and a running sum, Milakov and Gimelshein, 2018), the idea behind FlashAttention (Dao et al., 2022).
  It gives the same result as :func:`attnlib.functional.scaled_dot_product_attention` to float tolerance, while
  its extra memory grows like ``Lq * chunk_size`` instead of ``Lq * Lk``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlib.functional import _check_int, _check_mask, _check_qkv, _check_scale

__all__ = ["chunked_attention"]


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
