"""Attention layers as torch modules: they hold the parameters, :mod:`attnlib.functional` does the math."""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlib.functional import (
    NORMALIZERS,
    _check_dropout,
    _check_length,
    _check_mask,
    _check_qkv,
    _check_scale,
    dot_product_scores,
    gaussian_kernel_attention,
    masked_softmax,
    normalize_scores,
    scaled_dot_product_attention,
)

__all__ = ["NadarayaWatson", "DotProductAttention", "AdditiveAttention", "SingleHeadAttention", "MultiHeadAttention"]


class NadarayaWatson(nn.Module):
    r"""Nadaraya-Watson kernel regression with a learnable Gaussian bandwidth (chapter 1).

    ``forward`` returns :func:`attnlib.functional.gaussian_kernel_attention` of its inputs with the current
    bandwidth :math:`h`. The bandwidth is stored as :math:`\log h`, so gradient descent keeps it positive.

    Parameters
    ----------
    bandwidth : float, > 0
        The initial bandwidth.

    Raises
    ------
    TypeError
        If ``bandwidth`` is not a real number.
    ValueError
        If ``bandwidth`` is not positive and finite.
    """

    def __init__(self, bandwidth: float = 1.0) -> None:
        super().__init__()
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, Real):
            raise TypeError(f"bandwidth must be a positive float, got {type(bandwidth).__name__}")
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be a positive, finite number, got {bandwidth!r}")
        self.log_bandwidth = nn.Parameter(torch.tensor(math.log(float(bandwidth))))

    @property
    def bandwidth(self) -> Tensor:
        """The current bandwidth :math:`h = e^{\\log h}`, a scalar tensor."""
        return self.log_bandwidth.exp()

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Predict at ``query`` (..., Lq, d) from observations at ``key`` (..., Lk, d) with values (..., Lk, dv).

        ``mask`` (bool, broadcastable to (..., Lq, Lk), True = may attend) can, for instance, hide each
        training point from itself for a leave-one-out fit. Returns ``(output (..., Lq, dv), weights
        (..., Lq, Lk))``. Raises as :func:`attnlib.functional.gaussian_kernel_attention`.
        """
        return gaussian_kernel_attention(query, key, value, bandwidth=self.bandwidth, mask=mask)

    def extra_repr(self) -> str:
        return f"bandwidth={self.bandwidth.item():.4g}"


def _check_features(name: str, x: Tensor, expected: int, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (..., L, {what}), got shape {tuple(x.shape)}")
    if x.shape[-1] != expected:
        raise ValueError(
            f"{name} must have {expected} features in its last dimension ({what}={expected}), "
            f"got shape {tuple(x.shape)}"
        )


class DotProductAttention(nn.Module):
    r"""Scaled dot-product attention as a module (chapter 2): no parameters, dropout on the weights.

    ``forward(query, key, value)`` computes :math:`\mathrm{normalise}(QK^\top \cdot s)\,V` with the scale
    :math:`s = 1/\sqrt{d}` by default. With the default softmax it is
    :func:`attnlib.functional.scaled_dot_product_attention`; another ``normalizer`` (chapter 2's experiment with
    replacements for softmax) goes through :func:`attnlib.functional.normalize_scores`.

    Parameters
    ----------
    dropout : float in [0, 1)
        Dropout on the attention weights, in training mode only.
    scale : float, optional
        Multiplies the scores; default ``1 / sqrt(d)``.
    normalizer : str
        One of :data:`attnlib.functional.NORMALIZERS`; default ``"softmax"``.

    Raises
    ------
    TypeError, ValueError
        On a bad ``dropout``, ``scale`` or ``normalizer``; in ``forward``, as
        :func:`attnlib.functional.scaled_dot_product_attention`.
    """

    def __init__(self, dropout: float = 0.0, scale: float | None = None, normalizer: str = "softmax") -> None:
        super().__init__()
        self.dropout = _check_dropout(dropout)
        if scale is not None:
            _check_scale(scale, 1)
        self.scale = scale
        if normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
        self.normalizer = normalizer

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None, need_weights: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` (..., Lq, d) over ``key`` (..., Lk, d) to ``value`` (..., Lk, dv).

        ``mask`` is boolean, broadcastable to (..., Lq, Lk), True = may attend. Returns ``(output (..., Lq, dv),
        weights (..., Lq, Lk))``, the weights before dropout; ``weights`` is None when ``need_weights`` is False
        (then softmax attention takes torch's fused kernel).
        """
        p = self.dropout if self.training else 0.0
        if self.normalizer == "softmax":
            return scaled_dot_product_attention(
                query, key, value, mask=mask, dropout_p=p, scale=self.scale, need_weights=need_weights
            )
        _check_qkv(query, key, value)
        scores = dot_product_scores(query, key, self.scale)  # (..., Lq, Lk)
        weights = normalize_scores(scores, mask, self.normalizer)  # (..., Lq, Lk)
        dropped = F.dropout(weights, p=p) if p > 0 else weights
        return dropped @ value, (weights if need_weights else None)  # (..., Lq, dv)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, scale={self.scale}, normalizer={self.normalizer!r}"


class AdditiveAttention(nn.Module):
    r"""Additive attention (Bahdanau et al., 2015): an MLP scores each query against each key.

    .. math:: e_{ij} = w^\top \tanh(W_q q_i + W_k k_j), \qquad a_{ij} = \mathrm{softmax}_j(e_{ij}), \qquad
              y_i = \sum_j a_{ij} v_j

    Query and key may have different sizes (a decoder state against encoder states, in chapter 4).

    Parameters
    ----------
    query_dim : int
        Features per query, ``dq``.
    key_dim : int
        Features per key, ``dk``.
    hidden_dim : int
        Width of the scoring MLP's hidden layer.
    dropout : float in [0, 1)
        Dropout on the attention weights, in training mode only.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``dropout`` is outside [0, 1).
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.query_dim = _check_length("query_dim", query_dim)
        self.key_dim = _check_length("key_dim", key_dim)
        self.hidden_dim = _check_length("hidden_dim", hidden_dim)
        self.dropout = _check_dropout(dropout)
        self.w_q = nn.Linear(query_dim, hidden_dim, bias=False)  # W_q
        self.w_k = nn.Linear(key_dim, hidden_dim, bias=False)  # W_k
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)  # w, the score vector

    def project_key(self, key: Tensor) -> Tensor:
        """``W_k k_j`` for every key: (..., Lk, dk) -> (..., Lk, hidden_dim).

        A decoder that attends over the same keys at every step computes this once and passes it to
        :meth:`scores` or :meth:`forward` as ``key_proj``.
        """
        _check_features("key", key, self.key_dim, "key_dim")
        return self.w_k(key)  # (..., Lk, hidden)

    def scores(self, query: Tensor, key: Tensor, key_proj: Tensor | None = None) -> Tensor:
        """The alignment scores ``e`` of ``query`` (..., Lq, dq) against ``key`` (..., Lk, dk): (..., Lq, Lk).

        ``key_proj``, if given, is ``project_key(key)``, reused instead of being computed again.
        """
        _check_features("query", query, self.query_dim, "query_dim")
        if key_proj is None:
            key_proj = self.project_key(key)
        elif key_proj.shape[-2:] != (key.shape[-2], self.hidden_dim):
            raise ValueError(
                f"key_proj must have shape (..., {key.shape[-2]}, {self.hidden_dim}) = project_key(key), "
                f"got {tuple(key_proj.shape)}"
            )
        hidden = self.w_q(query).unsqueeze(-2) + key_proj.unsqueeze(-3)  # (..., Lq, Lk, hidden)
        return self.w_v(torch.tanh(hidden)).squeeze(-1)  # (..., Lq, Lk)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        key_proj: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attend from ``query`` (..., Lq, dq) over ``key`` (..., Lk, dk) to ``value`` (..., Lk, dv).

        ``mask`` is boolean, broadcastable to (..., Lq, Lk), True = may attend (e.g. the padding mask of the
        source, lifted to (B, 1, Lk)). ``key_proj`` is an optional precomputed :meth:`project_key` of ``key``.
        Returns ``(output (..., Lq, dv), weights (..., Lq, Lk))``, the weights before dropout. A query with
        nothing to attend to gets zero weights and a zero output.
        """
        _check_features("query", query, self.query_dim, "query_dim")
        _check_features("key", key, self.key_dim, "key_dim")
        if not isinstance(value, Tensor):
            raise TypeError(f"value must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() < 2 or value.shape[-2] != key.shape[-2]:
            raise ValueError(
                f"key and value must have the same length Lk: key has shape {tuple(key.shape)}, "
                f"value has shape {tuple(value.shape)}"
            )
        scores = self.scores(query, key, key_proj)  # (..., Lq, Lk)
        if mask is not None:
            mask = _check_mask(mask, scores.shape, scores.device, "scores (..., Lq, Lk)")
        weights = masked_softmax(scores, mask, dim=-1)  # (..., Lq, Lk)
        dropped = F.dropout(weights, p=self.dropout) if self.training and self.dropout > 0 else weights
        return dropped @ value, weights  # (..., Lq, dv), (..., Lq, Lk)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"


class SingleHeadAttention(nn.Module):
    r"""One attention head with learned projections :math:`W_Q, W_K, W_V` (chapter 3).

    .. math:: Q = X_q W_Q,\quad K = X_k W_K,\quad V = X_v W_V,\qquad
              \mathrm{output} = \mathrm{softmax}(QK^\top / \sqrt{d_{head}})\,V

    Called with one input, ``layer(x)``, it is **self-attention** (query, key and value all come from ``x``);
    called with two, ``layer(x, memory)``, it is **cross-attention** (queries from ``x``, keys and values from
    ``memory``). The weights are stored as ``nn.Linear`` layers, so ``W_Q`` is ``q_proj.weight.T``.

    Parameters
    ----------
    embed_dim : int
        Features per query input, ``d_model``.
    head_dim : int, optional
        Features per projected query, key and value, ``d_k`` (= ``d_v``); default ``embed_dim``.
    kdim : int, optional
        Features per key input, when it differs from ``embed_dim`` (cross-attention from a source of another
        width); default ``embed_dim``.
    vdim : int, optional
        Features per value input; default ``kdim`` (keys and values usually come from the same source).
    bias : bool
        Whether the projections have a bias; default False, as in the equations.
    dropout : float in [0, 1)
        Dropout on the attention weights, in training mode only.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``dropout`` is outside [0, 1).
    """

    def __init__(
        self,
        embed_dim: int,
        head_dim: int | None = None,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed_dim = _check_length("embed_dim", embed_dim)
        self.head_dim = embed_dim if head_dim is None else _check_length("head_dim", head_dim)
        self.kdim = embed_dim if kdim is None else _check_length("kdim", kdim)
        self.vdim = self.kdim if vdim is None else _check_length("vdim", vdim)
        self.dropout = _check_dropout(dropout)
        self.q_proj = nn.Linear(self.embed_dim, self.head_dim, bias=bias)  # W_Q
        self.k_proj = nn.Linear(self.kdim, self.head_dim, bias=bias)  # W_K
        self.v_proj = nn.Linear(self.vdim, self.head_dim, bias=bias)  # W_V

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` (..., Lq, embed_dim) over ``key`` (..., Lk, kdim) to ``value`` (..., Lk, vdim).

        ``key`` defaults to ``query`` (self-attention) and ``value`` to ``key``. ``mask`` is boolean,
        broadcastable to (..., Lq, Lk), True = may attend. Returns ``(output (..., Lq, head_dim), weights
        (..., Lq, Lk))``, the weights before dropout, or ``weights=None`` when ``need_weights`` is False (then
        torch's fused kernel does the work).

        Raises
        ------
        TypeError, ValueError
            If an input is not a tensor of shape (..., L, features) with the features this layer was built for,
            if key and value differ in length, or as :func:`attnlib.functional.scaled_dot_product_attention`.
        """
        key = query if key is None else key
        value = key if value is None else value
        _check_features("query", query, self.embed_dim, "embed_dim")
        _check_features("key", key, self.kdim, "kdim")
        _check_features("value", value, self.vdim, "vdim")
        if key.shape[-2] != value.shape[-2]:
            raise ValueError(
                f"key and value must have the same length Lk: key has shape {tuple(key.shape)}, "
                f"value has shape {tuple(value.shape)}"
            )
        q = self.q_proj(query)  # (..., Lq, head_dim)
        k = self.k_proj(key)  # (..., Lk, head_dim)
        v = self.v_proj(value)  # (..., Lk, head_dim)
        p = self.dropout if self.training else 0.0
        return scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p, need_weights=need_weights)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, head_dim={self.head_dim}, kdim={self.kdim}, vdim={self.vdim}"


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention (Vaswani et al., 2017), batch first, with the argument names of ``torch.nn``.

    The queries, keys and values are projected to ``embed_dim`` features, split into ``num_heads`` heads of
    ``head_dim = embed_dim // num_heads`` features, attended per head with scaled dot-product attention, joined
    again and projected by ``W_O``:

    .. math:: \mathrm{head}_i = \mathrm{softmax}\big(Q W_Q^{(i)} (K W_K^{(i)})^\top / \sqrt{d_{head}}\big)\,
              V W_V^{(i)}, \qquad \mathrm{output} = [\mathrm{head}_1; \dots; \mathrm{head}_H]\, W_O

    :meth:`from_torch` copies the weights of a ``torch.nn.MultiheadAttention(batch_first=True)``, after which both
    give the same output. Mind the masks: here a boolean mask says **True = may attend**; torch's boolean
    ``attn_mask`` and ``key_padding_mask`` say True = *blocked*, so pass ``~mask`` to torch.

    Parameters
    ----------
    embed_dim : int
        Features per query input and per output, ``d_model``; must be divisible by ``num_heads``.
    num_heads : int
        Number of heads ``H``.
    dropout : float in [0, 1)
        Dropout on the attention weights, in training mode only.
    bias : bool
        Whether the four projections have biases.
    kdim, vdim : int, optional
        Features per key and per value input; default ``embed_dim`` (as in torch).

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``embed_dim`` is not divisible by ``num_heads``, or ``dropout`` is outside
        [0, 1).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        self.embed_dim = _check_length("embed_dim", embed_dim)
        self.num_heads = _check_length("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads: got embed_dim={embed_dim}, num_heads={num_heads} "
                f"(embed_dim / num_heads = {embed_dim / num_heads:.3g})"
            )
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else _check_length("kdim", kdim)
        self.vdim = embed_dim if vdim is None else _check_length("vdim", vdim)
        self.dropout = _check_dropout(dropout)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)  # W_Q for all heads side by side
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias)  # W_K
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)  # W_V
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)  # W_O

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, head_dim)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` (B, Lq, embed_dim) over ``key`` (B, Lk, kdim) to ``value`` (B, Lk, vdim).

        ``mask`` is boolean, True = may attend. A 2-D (Lq, Lk) or 3-D (B, Lq, Lk) mask applies to every head;
        a 4-D mask must broadcast to (B, H, Lq, Lk). A padding mask from :func:`attnlib.functional.padding_mask`
        of shape (B, Lk) goes in as ``mask[:, None, :]``. ``is_causal`` adds the causal mask (query ``i`` sees
        keys ``0..i``) and, without another mask and weights, hands it to torch's causal kernel (see
        :func:`attnlib.functional.scaled_dot_product_attention`).

        Returns ``(output (B, Lq, embed_dim), weights (B, H, Lq, Lk))``, the weights per head and before
        dropout; ``weights`` is None when ``need_weights`` is False, and then torch's fused kernel does the work.

        Raises
        ------
        TypeError, ValueError
            If an input is not a 3-D float tensor with the features this layer was built for, the batch sizes
            or the key and value lengths differ, or the mask is not boolean or cannot broadcast.
        """
        _check_features("query", query, self.embed_dim, "embed_dim")
        _check_features("key", key, self.kdim, "kdim")
        _check_features("value", value, self.vdim, "vdim")
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.dim() != 3:
                raise ValueError(f"{name} must have shape (B, L, features), got shape {tuple(x.shape)}")
        if not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError(
                f"query, key and value must share the batch size B, got shapes {tuple(query.shape)}, "
                f"{tuple(key.shape)} and {tuple(value.shape)}"
            )
        if key.shape[1] != value.shape[1]:
            raise ValueError(
                f"key and value must have the same length Lk: key has shape {tuple(key.shape)}, "
                f"value has shape {tuple(value.shape)}"
            )
        return self.attend(
            query, *self.project_kv(key, value), mask=mask, need_weights=need_weights, is_causal=is_causal
        )

    def project_kv(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """The keys and values of every head: ``key`` (B, Lk, kdim), ``value`` (B, Lk, vdim) ->
        ``(k, v)``, each (B, H, Lk, head_dim). This is what a KV cache stores (:class:`attnlib.efficient.KVCache`):
        a position's keys and values do not change once computed, so they can be kept instead of recomputed."""
        return self._split(self.k_proj(key)), self._split(self.v_proj(value))

    def attend(
        self,
        query: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """The rest of :meth:`forward` once the keys and values are projected: ``query`` (B, Lq, embed_dim)
        attends over ``k``, ``v`` (B, H, Lk, head_dim) from :meth:`project_kv`. Returns as :meth:`forward`."""
        if mask is not None and isinstance(mask, Tensor) and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # (B, 1, Lq, Lk): the same for every head
        q = self._split(self.q_proj(query))  # (B, H, Lq, head_dim)
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(
            q, k, v, mask=mask, dropout_p=p, need_weights=need_weights, is_causal=is_causal
        )  # (B, H, Lq, head_dim), (B, H, Lq, Lk) or None
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.embed_dim)  # (B, Lq, E): heads joined
        return self.out_proj(out), weights  # (B, Lq, E), (B, H, Lq, Lk) or None

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """A :class:`MultiHeadAttention` with the weights of ``module``, a ``torch.nn.MultiheadAttention``.

        The module must be ``batch_first=True`` and use neither ``add_bias_kv`` nor ``add_zero_attn``. The copy
        is independent of ``module`` (later training of one does not change the other).

        Raises
        ------
        TypeError
            If ``module`` is not a ``torch.nn.MultiheadAttention``.
        ValueError
            If it is not batch first, or uses ``add_bias_kv`` or ``add_zero_attn``.
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module must be a torch.nn.MultiheadAttention, got {type(module).__name__}")
        if not module.batch_first:
            raise ValueError("module must be built with batch_first=True, as attnlib's layers are")
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("module uses add_bias_kv or add_zero_attn, which MultiHeadAttention does not have")
        bias = module.in_proj_bias is not None
        p = next(module.parameters())
        # Build in the module's dtype before copying, so that float64 weights are copied exactly.
        layer = cls(module.embed_dim, module.num_heads, module.dropout, bias, module.kdim, module.vdim)
        layer = layer.to(device=p.device, dtype=p.dtype)
        e = module.embed_dim
        if module._qkv_same_embed_dim:
            w_q, w_k, w_v = module.in_proj_weight.detach().split(e)  # torch packs W_Q, W_K, W_V in one matrix
        else:
            w_q, w_k, w_v = (
                module.q_proj_weight.detach(),
                module.k_proj_weight.detach(),
                module.v_proj_weight.detach(),
            )
        with torch.no_grad():
            for proj, w in ((layer.q_proj, w_q), (layer.k_proj, w_k), (layer.v_proj, w_v)):
                proj.weight.copy_(w)
            layer.out_proj.weight.copy_(module.out_proj.weight)
            if bias:
                for proj, bvec in zip(
                    (layer.q_proj, layer.k_proj, layer.v_proj), module.in_proj_bias.split(e), strict=True
                ):
                    proj.bias.copy_(bvec)
                layer.out_proj.bias.copy_(module.out_proj.bias)
        return layer

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"kdim={self.kdim}, vdim={self.vdim}, dropout={self.dropout}"
        )
