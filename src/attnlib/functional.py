"""The math of attention, as plain functions of tensors.

Conventions, shared by every function here and by the rest of attnlib:

- Shapes are written as ``(..., Lq, d)``: any number of leading batch dimensions (``...``), ``Lq`` query
  positions, ``Lk`` key/value positions, ``d`` features per query and key, ``dv`` features per value.
- A **mask is boolean and True means "may attend"**. ``mask[..., i, j]`` says whether query ``i`` may look at
  key ``j``. (``torch.nn.MultiheadAttention`` uses the opposite convention for its boolean ``attn_mask``;
  ``torch.nn.functional.scaled_dot_product_attention`` uses ours.)
- A query that may attend to nothing gets all-zero weights and an all-zero output, never NaN.
- Bad input raises a ``TypeError`` or ``ValueError`` that names the argument, what it got and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "masked_softmax",
    "dot_product_scores",
    "cosine_scores",
    "normalize_scores",
    "NORMALIZERS",
    "scaled_dot_product_attention",
    "gaussian_kernel_attention",
    "causal_mask",
    "padding_mask",
]


# ----------------------------------------------------------------------------------------------------------------
# Input checks. They run before any arithmetic, so that a mistake is reported in the caller's terms rather than
# as an index error from deep inside torch.


def _check_tensor(name: str, x: object, min_dim: int = 0) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    return x


def _check_float(name: str, x: Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_mask(mask: object, target_shape: torch.Size, device: torch.device, target: str) -> Tensor:
    mask = _check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a boolean tensor (True = may attend), got dtype {mask.dtype}; "
            "build one with a comparison or causal_mask()/padding_mask()"
        )
    try:
        shape = torch.broadcast_shapes(mask.shape, target_shape)
    except RuntimeError:
        shape = None
    if shape != target_shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} cannot broadcast to the {target} shape {tuple(target_shape)}"
        )
    if mask.device != device:
        raise ValueError(f"mask is on {mask.device} but the scores are on {device}; create it on {device}")
    return mask


def _check_dropout(dropout_p: object) -> float:
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, Real):
        raise TypeError(f"dropout_p must be a float in [0, 1), got {type(dropout_p).__name__}")
    if not 0.0 <= float(dropout_p) < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    return float(dropout_p)


def _check_scale(scale: object, d: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(d) if d > 0 else 1.0
    if isinstance(scale, bool) or not isinstance(scale, Real):
        raise TypeError(f"scale must be a float or None, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def _check_qkv(query: object, key: object, value: object) -> torch.Size:
    """Check query (..., Lq, d), key (..., Lk, d), value (..., Lk, dv); return the broadcast batch shape."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        _check_tensor(name, x, min_dim=2)
        _check_float(name, x)
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"query, key and value must share a dtype, got {query.dtype}, {key.dtype} and {value.dtype}")
    if not (query.device == key.device == value.device):
        raise ValueError(
            f"query, key and value must be on one device, got {query.device}, {key.device} and {value.device}"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must have the same feature size d: query has shape {tuple(query.shape)} "
            f"(d={query.shape[-1]}), key has shape {tuple(key.shape)} (d={key.shape[-1]})"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value must have the same length Lk: key has shape {tuple(key.shape)} "
            f"(Lk={key.shape[-2]}), value has shape {tuple(value.shape)} (Lk={value.shape[-2]})"
        )
    try:
        return torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "the batch dimensions of query, key and value cannot broadcast: got "
            f"{tuple(query.shape[:-2])}, {tuple(key.shape[:-2])} and {tuple(value.shape[:-2])} "
            "in front of (L, d)"
        ) from None


def _check_token_ids(name: str, x: object, ndim: int, vocab: int) -> Tensor:
    """Check integer token ids of ``ndim`` dimensions, each in ``[0, vocab)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
    if x.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must hold integer token ids (int64 or int32), got dtype {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"{name} must hold ids in [0, {vocab}), got values in [{int(x.min())}, {int(x.max())}]")
    return x


# ----------------------------------------------------------------------------------------------------------------
# Softmax and attention.


def masked_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax of ``scores`` along ``dim``, over the entries where ``mask`` is True only.

    Masked-out entries get weight exactly 0. A slice with no True entry (a query with nothing to attend to)
    gets all-zero weights instead of the NaN that ``softmax`` of all ``-inf`` would give, and its gradient is
    zero too. Large scores are safe: the softmax subtracts the maximum before exponentiating.

    Parameters
    ----------
    scores : Tensor, floating point, any shape
        Unnormalised scores, e.g. ``(..., Lq, Lk)``.
    mask : Tensor of bool, optional
        Broadcastable to ``scores.shape`` (it may not make the result larger); True = keep. ``None`` keeps all.
    dim : int
        The dimension that sums to one (to zero for fully masked slices).

    Returns
    -------
    Tensor
        Same shape and dtype as ``scores``.

    Raises
    ------
    TypeError
        If ``scores`` is not a floating-point tensor, or ``mask`` is not a boolean tensor.
    ValueError
        If ``mask`` cannot broadcast to ``scores.shape``, lives on another device, or ``dim`` is out of range.
    """
    _check_tensor("scores", scores)
    _check_float("scores", scores)
    if not -scores.dim() <= dim < max(scores.dim(), 1):
        raise ValueError(f"dim={dim} is out of range for scores of shape {tuple(scores.shape)}")
    if mask is None:
        return torch.softmax(scores, dim=dim)
    mask = _check_mask(mask, scores.shape, scores.device, "scores")
    keep_any = mask.any(dim=dim, keepdim=True)  # False where a slice has nothing to attend to
    # Rows with no True entry would be softmax(all -inf) = NaN. Give them finite scores (0) so that the softmax,
    # and its backward pass, stay finite, then zero their weights.
    filled = scores.masked_fill(~mask, float("-inf")).masked_fill(~keep_any, 0.0)
    return torch.softmax(filled, dim=dim).masked_fill(~keep_any, 0.0)


def dot_product_scores(query: Tensor, key: Tensor, scale: float | None = None) -> Tensor:
    r"""Dot-product scores :math:`e_{ij} = s\, q_i \cdot k_j`, scaled by :math:`s = 1/\sqrt{d}` unless told otherwise.

    Parameters
    ----------
    query : Tensor (..., Lq, d)
    key : Tensor (..., Lk, d)
        Same ``d`` as ``query``; the batch dimensions must broadcast.
    scale : float, optional
        Multiplies the scores; default ``1 / sqrt(d)``. Pass ``1.0`` for the plain dot product.

    Returns
    -------
    Tensor (..., Lq, Lk)

    Raises
    ------
    TypeError, ValueError
        As :func:`scaled_dot_product_attention` for query, key and scale.
    """
    _check_qkv(query, key, key)
    scale = _check_scale(scale, query.shape[-1])
    return (query @ key.transpose(-2, -1)) * scale  # (..., Lq, Lk)


def cosine_scores(query: Tensor, key: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Cosine-similarity scores :math:`e_{ij} = q_i \cdot k_j / (\lVert q_i\rVert \lVert k_j\rVert)`, in [-1, 1].

    A zero vector has cosine 0 with everything (its norm is clamped to ``eps``), never NaN.

    Parameters
    ----------
    query : Tensor (..., Lq, d)
    key : Tensor (..., Lk, d)
    eps : float > 0
        The smallest norm used in the division.

    Returns
    -------
    Tensor (..., Lq, Lk)

    Raises
    ------
    TypeError, ValueError
        As :func:`dot_product_scores`; ``TypeError`` if ``eps`` is not a number, ``ValueError`` if it is not
        positive.
    """
    _check_qkv(query, key, key)
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"eps must be a positive float, got {type(eps).__name__}")
    if not eps > 0:
        raise ValueError(f"eps must be a positive float, got {eps!r}")
    q = query / query.norm(dim=-1, keepdim=True).clamp_min(eps)  # (..., Lq, d)
    k = key / key.norm(dim=-1, keepdim=True).clamp_min(eps)  # (..., Lk, d)
    return q @ k.transpose(-2, -1)  # (..., Lq, Lk)


NORMALIZERS = ("softmax", "relu", "relu_norm", "sigmoid")
"""The ways :func:`normalize_scores` turns scores into weights."""


def normalize_scores(scores: Tensor, mask: Tensor | None = None, method: str = "softmax") -> Tensor:
    r"""Turn scores (..., Lq, Lk) into attention weights, with softmax or one of its proposed replacements.

    With :math:`n` the number of keys a query may attend to and :math:`e_j` its scores:

    - ``"softmax"``: :math:`e^{e_j} / \sum_k e^{e_k}`; rows sum to one (:func:`masked_softmax`).
    - ``"relu"``: :math:`\mathrm{ReLU}(e_j) / n`, the replacement studied by Wortsman et al. (2023); rows do
      not sum to one, and a row whose scores are all negative gives all-zero weights.
    - ``"relu_norm"``: :math:`\mathrm{ReLU}(e_j) / \sum_k \mathrm{ReLU}(e_k)`; rows sum to one, or to zero
      when no score is positive.
    - ``"sigmoid"``: :math:`\sigma(e_j - \log n)`, each weight on its own in (0, 1), as in Ramapuram et
      al. (2025); the bias :math:`-\log n` keeps the row sum near one at the start of training.

    Masked-out keys get weight exactly 0, and a row with nothing to attend to gets all zeros, for every method.

    Parameters
    ----------
    scores : Tensor, floating point (..., Lq, Lk)
    mask : Tensor of bool, optional
        Broadcastable to ``scores.shape``; True = may attend.
    method : str
        One of :data:`NORMALIZERS`.

    Returns
    -------
    Tensor (..., Lq, Lk)

    Raises
    ------
    TypeError
        If ``scores`` is not floating point or ``mask`` is not boolean.
    ValueError
        If ``method`` is unknown, ``scores`` has fewer than 1 dimension, or ``mask`` cannot broadcast to it.
    """
    if method not in NORMALIZERS:
        raise ValueError(f"method must be one of {NORMALIZERS}, got {method!r}")
    _check_tensor("scores", scores, min_dim=1)
    _check_float("scores", scores)
    if method == "softmax":
        return masked_softmax(scores, mask, dim=-1)
    if mask is not None:
        mask = _check_mask(mask, scores.shape, scores.device, "scores")
        keep = mask.expand(scores.shape)  # (..., Lq, Lk)
    else:
        keep = torch.ones_like(scores, dtype=torch.bool)
    n = keep.sum(dim=-1, keepdim=True).clamp_min(1).to(scores.dtype)  # (..., Lq, 1) keys each query may see
    if method == "relu":
        weights = F.relu(scores) / n
    elif method == "relu_norm":
        positive = F.relu(scores).masked_fill(~keep, 0.0)
        weights = positive / positive.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
    else:  # sigmoid
        weights = torch.sigmoid(scores - n.log())
    return weights.masked_fill(~keep, 0.0)  # (..., Lq, Lk)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
    need_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    r"""Scaled dot-product attention, :math:`\mathrm{softmax}(QK^\top / \sqrt{d})\,V`, as in Vaswani et al. (2017).

    Parameters
    ----------
    query : Tensor (..., Lq, d)
        What each position is looking for.
    key : Tensor (..., Lk, d)
        What each position offers to be matched against; same ``d`` as ``query``.
    value : Tensor (..., Lk, dv)
        What each position hands over when it is attended to; same ``Lk`` as ``key``.
        The leading batch dimensions of query, key and value must broadcast against each other.
    mask : Tensor of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; **True = may attend**. A query whose row is all False gets zero
        weights and a zero output. A ``padding_mask`` of shape ``(B, Lk)`` must be lifted to ``(B, 1, Lk)``
        (or ``(B, 1, 1, Lk)`` with heads) before it is passed here.
    dropout_p : float in [0, 1)
        Dropout on the attention weights, applied whenever it is positive (pass 0 at evaluation time, as
        modules do through ``self.training``).
    scale : float, optional
        Multiplies the scores; default ``1 / sqrt(d)``.
    need_weights : bool
        If False, return ``(output, None)`` and let torch's fused kernel do the work (the path training takes).
    is_causal : bool
        Query ``i`` may attend only to keys ``0..i``: the same as ``mask=causal_mask(Lq, Lk)`` (the diagonal starts
        at the top left), combined with ``mask`` if one is given too. Prefer it to the explicit mask: with
        ``need_weights=False`` and no other mask, it reaches torch's kernel as ``is_causal=True``, which never
        builds the mask and skips the blocks above the diagonal (FlashAttention on a GPU does).

    Returns
    -------
    output : Tensor (..., Lq, dv)
        The weighted sums of the values.
    weights : Tensor (..., Lq, Lk) or None
        The attention weights (before dropout): each row sums to one over the keys it may attend to,
        or is all zeros if it may attend to none. ``None`` when ``need_weights`` is False.

    Raises
    ------
    TypeError
        If query, key or value is not a floating-point tensor or their dtypes differ, if ``mask`` is not
        boolean, if ``dropout_p`` or ``scale`` is not a number, or if ``need_weights`` or ``is_causal`` is not a
        bool.
    ValueError
        If the feature sizes of query and key differ, the lengths of key and value differ, the batch shapes
        cannot broadcast, the mask cannot broadcast to ``(..., Lq, Lk)``, ``dropout_p`` is outside [0, 1),
        ``scale`` is not finite, or the tensors are on different devices.
    """
    batch = _check_qkv(query, key, value)
    dropout_p = _check_dropout(dropout_p)
    for name, flag in (("need_weights", need_weights), ("is_causal", is_causal)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    scale = _check_scale(scale, query.shape[-1])
    scores_shape = batch + (query.shape[-2], key.shape[-2])  # (..., Lq, Lk)
    if mask is not None:
        mask = _check_mask(mask, scores_shape, query.device, "scores (..., Lq, Lk)")

    if not need_weights and is_causal and mask is None:
        # The pure causal case: torch's kernel knows it and never needs the mask (no row is ever empty).
        query, key, value = (t.expand(batch + t.shape[-2:]) for t in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout_p, scale=scale, is_causal=True)
        return out, None
    if is_causal:
        future = causal_mask(query.shape[-2], key.shape[-2], device=query.device)  # (Lq, Lk)
        mask = future if mask is None else mask & future
    if not need_weights:
        return _fused_attention(query, key, value, mask, batch, dropout_p, scale), None

    scores = (query @ key.transpose(-2, -1)) * scale  # (..., Lq, Lk), as dot_product_scores
    weights = masked_softmax(scores, mask, dim=-1)  # (..., Lq, Lk)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    output = dropped @ value  # (..., Lq, dv)
    return output, weights


def _fused_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, batch: torch.Size, dropout_p: float, scale: float
) -> Tensor:
    """Hand the work to torch's fused kernel, keeping attnlib's rule that a fully masked row gives zeros."""
    query = query.expand(batch + query.shape[-2:])  # (..., Lq, d)
    key = key.expand(batch + key.shape[-2:])  # (..., Lk, d)
    value = value.expand(batch + value.shape[-2:])  # (..., Lk, dv)
    if mask is None:
        return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout_p, scale=scale)
    keep_any = mask.any(dim=-1, keepdim=True)  # (..., Lq, 1) or broadcastable to it
    # Let empty rows attend everywhere so that the kernel stays finite (forward and backward), then zero them.
    safe_mask = mask | ~keep_any
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=safe_mask, dropout_p=dropout_p, scale=scale)
    return output.masked_fill(~keep_any, 0.0)  # (..., Lq, dv)


def gaussian_kernel_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    bandwidth: float | Tensor = 1.0,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Nadaraya-Watson kernel regression with a Gaussian kernel, read as attention.

    The score of query :math:`q` for key :math:`k` is :math:`-\lVert q - k\rVert^2 / (2 h^2)` with bandwidth
    :math:`h`; the weights are the (masked) softmax of the scores over the keys, and the output is the weighted
    sum of the values. This is the estimator of Nadaraya (1964) and Watson (1964).

    Parameters
    ----------
    query : Tensor (..., Lq, d)
        Where to predict.
    key : Tensor (..., Lk, d)
        Where the observations are.
    value : Tensor (..., Lk, dv)
        The observed values.
    bandwidth : float or scalar Tensor, > 0
        The kernel width :math:`h`; a tensor that requires grad can be learned.
    mask : Tensor of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; True = may attend.

    Returns
    -------
    output : Tensor (..., Lq, dv)
    weights : Tensor (..., Lq, Lk)

    Raises
    ------
    TypeError, ValueError
        As :func:`scaled_dot_product_attention` for query, key, value and mask; ``ValueError`` if a float
        ``bandwidth`` is not positive and finite or a tensor ``bandwidth`` is not a scalar.
    """
    batch = _check_qkv(query, key, value)
    if isinstance(bandwidth, Tensor):
        if bandwidth.numel() != 1:
            raise ValueError(f"bandwidth must be a scalar, got a tensor of shape {tuple(bandwidth.shape)}")
        if not bool(torch.isfinite(bandwidth).all() and (bandwidth > 0).all()):
            raise ValueError(f"bandwidth must be positive and finite, got {bandwidth.item()}")
    elif isinstance(bandwidth, bool) or not isinstance(bandwidth, Real):
        raise TypeError(f"bandwidth must be a positive float or a scalar tensor, got {type(bandwidth).__name__}")
    elif not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be positive and finite, got {bandwidth}")
    scores_shape = batch + (query.shape[-2], key.shape[-2])
    if mask is not None:
        mask = _check_mask(mask, scores_shape, query.device, "scores (..., Lq, Lk)")
    diff = query.unsqueeze(-2) - key.unsqueeze(-3)  # (..., Lq, Lk, d)
    scores = -diff.pow(2).sum(-1) / (2 * bandwidth**2)  # (..., Lq, Lk)
    weights = masked_softmax(scores, mask, dim=-1)  # (..., Lq, Lk)
    return weights @ value, weights  # (..., Lq, dv), (..., Lq, Lk)


# ----------------------------------------------------------------------------------------------------------------
# Masks.


def _check_int(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    return int(n)


def _check_length(name: str, n: object) -> int:
    n = _check_int(name, n)
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return n


def causal_mask(lq: int, lk: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """The causal (look-ahead) mask: query ``i`` may attend to keys ``0..i``, never to later ones.

    Parameters
    ----------
    lq : int
        Number of query positions.
    lk : int, optional
        Number of key positions; defaults to ``lq``. When ``lq != lk`` the diagonal starts at the top left,
        as in ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.
    device : torch.device or str, optional
        Where to create the mask (default: the CPU).

    Returns
    -------
    Tensor of bool (lq, lk)
        True on and below the diagonal.

    Raises
    ------
    TypeError
        If ``lq`` or ``lk`` is not an int.
    ValueError
        If ``lq`` or ``lk`` is less than 1.
    """
    lq = _check_length("lq", lq)
    lk = lq if lk is None else _check_length("lk", lk)
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Tensor | Sequence[int], max_len: int | None = None) -> Tensor:
    """The padding mask of a batch of sequences padded to a common length: True at real tokens.

    Parameters
    ----------
    lengths : Tensor of integers (B,) or a sequence of ints
        The true length of each sequence, each in ``[0, max_len]``.
    max_len : int, optional
        The padded length; defaults to ``max(lengths)``.

    Returns
    -------
    Tensor of bool (B, max_len)
        ``mask[b, j]`` is True when ``j < lengths[b]``; on the device of ``lengths``. To use it as the key mask
        of attention, lift it to ``(B, 1, max_len)``: ``padding_mask(lengths, L)[:, None, :]``.

    Raises
    ------
    TypeError
        If ``lengths`` does not hold integers, or ``max_len`` is not an int.
    ValueError
        If ``lengths`` is not one-dimensional, has a negative entry or an entry above ``max_len``
        (``max_len`` may be 0 only when every length is 0).
    """
    if not isinstance(lengths, Tensor):
        if not isinstance(lengths, Sequence) or not all(
            isinstance(n, Integral) and not isinstance(n, bool) for n in lengths
        ):
            raise TypeError(f"lengths must be a tensor or a sequence of ints, got {lengths!r}")
        lengths = torch.tensor([int(n) for n in lengths], dtype=torch.long)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be one-dimensional (B,), got shape {tuple(lengths.shape)}")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be non-negative, got {lengths.tolist()}")
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    else:
        max_len = _check_int("max_len", max_len)
        if max_len < 0:
            raise ValueError(f"max_len must be non-negative, got {max_len}")
    if lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(f"lengths must be at most max_len={max_len}, got {lengths.tolist()}")
    positions = torch.arange(max_len, device=lengths.device)  # (max_len,)
    return positions[None, :] < lengths[:, None]  # (B, max_len)
