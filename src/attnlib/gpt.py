r"""A GPT, a decoder-only language model, built from the course's parts (chapter 9).

- :class:`GroupedQueryAttention`: causal self-attention in which groups of query heads share one head of keys and
  values (grouped-query attention, Ainslie et al., 2023; one shared head is multi-query attention, Shazeer, 2019;
  as many as there are query heads is ordinary multi-head attention), optionally with rotary positions
  (:func:`attnlib.positional.apply_rotary`) and a KV cache (:class:`attnlib.efficient.LayerKVCache`).
- :class:`GPTBlock`: one pre-LN block, ``x = x + attn(ln1(x)); x = x + ff(ln2(x))``, with the MLP of chapter 6
  (:class:`attnlib.transformer.FeedForward`).
- :class:`GPT`: token embedding, positions (rotary, learned, sinusoidal or none), a stack of blocks, a final
  LayerNorm and a head that shares the embedding's weights, as in GPT-2 (Radford et al., 2019). It predicts each
  next token from the ones before it, and :meth:`GPT.generate` writes text one token at a time.
- :func:`sample_next`: how a next token is picked from the logits: greedy, or sampled after temperature, top-k
  (Fan et al., 2018) and top-p (nucleus, Holtzman et al., 2020) filtering.
- :func:`kv_cache_bytes`: the memory of a model's full KV cache, which grouped-query attention shrinks.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor, nn

from attnlib.efficient import KVCache, LayerKVCache
from attnlib.functional import (
    _check_dropout,
    _check_int,
    _check_length,
    _check_token_ids,
    causal_mask,
    scaled_dot_product_attention,
)
from attnlib.positional import apply_rotary, sinusoidal_encoding
from attnlib.transformer import FeedForward, _check_sequence
from attnlib.utils import eval_mode

__all__ = ["POSITIONAL_ENCODINGS", "GroupedQueryAttention", "GPTBlock", "GPT", "sample_next", "kv_cache_bytes"]

POSITIONAL_ENCODINGS = ("rope", "learned", "sinusoidal", "none")
"""The ways :class:`GPT` can tell positions apart: ``"rope"`` rotates the queries and keys of every layer
(:func:`attnlib.positional.apply_rotary`), ``"learned"`` adds a trained vector per position to the token embeddings,
``"sinusoidal"`` adds :func:`attnlib.positional.sinusoidal_encoding`, ``"none"`` gives no position at all (the
causal mask alone still lets a decoder infer some order)."""


def _check_heads(d_model: object, nhead: object, num_kv_heads: object) -> tuple[int, int, int]:
    """Check the head counts of grouped-query attention; return ``(d_model, nhead, num_kv_heads)``."""
    d_model, nhead = _check_length("d_model", d_model), _check_length("nhead", nhead)
    num_kv_heads = _check_length("num_kv_heads", num_kv_heads)
    if d_model % nhead:
        raise ValueError(f"d_model must be divisible by nhead, got d_model={d_model}, nhead={nhead}")
    if nhead % num_kv_heads:
        raise ValueError(
            f"num_kv_heads must divide nhead (each key/value head serves nhead / num_kv_heads query heads), got "
            f"nhead={nhead}, num_kv_heads={num_kv_heads}"
        )
    return d_model, nhead, num_kv_heads


class GroupedQueryAttention(nn.Module):
    r"""Causal self-attention with ``nhead`` query heads and ``num_kv_heads`` key/value heads (Ainslie et al., 2023).

    The queries are projected as in :class:`attnlib.attention.MultiHeadAttention`, to ``nhead`` heads of
    ``head_dim = d_model / nhead`` features; the keys and values to ``num_kv_heads`` heads only. Key/value head
    ``j`` serves the ``g = nhead / num_kv_heads`` query heads ``j g, ..., (j + 1) g - 1``: its keys and values are
    repeated ``g`` times before the attention. ``num_kv_heads = nhead`` is ordinary multi-head attention,
    ``num_kv_heads = 1`` multi-query attention (Shazeer, 2019). The key and value projections, and the keys and
    values a KV cache stores, shrink by the factor ``g``; the queries, the attention and the output do not.

    With ``rotary``, the queries and keys of each position are rotated by :func:`attnlib.positional.apply_rotary`
    after the projection (RoPE, Su et al., 2021), at their absolute positions.

    Parameters
    ----------
    d_model : int
        Features per input and output position; divisible by ``nhead``.
    nhead : int
        Query heads ``H``.
    num_kv_heads : int
        Key/value heads; must divide ``nhead``.
    dropout : float in [0, 1)
        Dropout on the attention weights, in training mode only.
    rotary : bool
        Rotate the queries and keys by their positions (then ``head_dim`` must be even).

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``d_model`` is not divisible by ``nhead``, ``num_kv_heads`` does not divide
        ``nhead``, ``dropout`` is outside [0, 1), or ``rotary`` is set with an odd ``head_dim``.
    """

    def __init__(
        self, d_model: int, nhead: int, num_kv_heads: int, dropout: float = 0.0, rotary: bool = False
    ) -> None:
        super().__init__()
        self.d_model, self.nhead, self.num_kv_heads = _check_heads(d_model, nhead, num_kv_heads)
        self.head_dim = d_model // nhead
        self.group = nhead // num_kv_heads  # query heads per key/value head
        self.dropout = _check_dropout(dropout)
        if not isinstance(rotary, bool):
            raise TypeError(f"rotary must be a bool, got {type(rotary).__name__}")
        if rotary and self.head_dim % 2:
            raise ValueError(
                f"rotary positions rotate pairs of features, so head_dim = d_model / nhead must be even, got "
                f"d_model={d_model}, nhead={nhead} (head_dim={self.head_dim})"
            )
        self.rotary = rotary
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model)  # W_Q for all H query heads side by side
        self.k_proj = nn.Linear(d_model, kv_dim)  # W_K for the num_kv_heads key heads
        self.v_proj = nn.Linear(d_model, kv_dim)  # W_V
        self.out_proj = nn.Linear(d_model, d_model)  # W_O

    def _split(self, x: Tensor, heads: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, heads, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)

    def forward(
        self, x: Tensor, need_weights: bool = False, cache: LayerKVCache | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Causal self-attention over ``x`` (B, T, d_model): ``(output (B, T, d_model), weights (B, H, T, T) or
        None)``, the weights (before dropout) only when ``need_weights``.

        Without weights the attention takes the causal kernel path of
        :func:`attnlib.functional.scaled_dot_product_attention` (``need_weights=False, is_causal=True``).

        With a ``cache`` (:class:`attnlib.efficient.LayerKVCache`), ``x`` holds only the ``T`` new positions,
        which come after the ``cache.length`` cached ones: their queries and keys are rotated at those absolute
        positions (with ``rotary``), their keys and values are stored, ``num_kv_heads`` heads of them, and they
        attend causally over every cached position; the weights are then (B, H, T, cached + T).

        Raises
        ------
        TypeError, ValueError
            If ``x`` is not a float tensor (B, T, d_model) or ``cache`` is not a ``LayerKVCache``; as
            :meth:`attnlib.efficient.LayerKVCache.append` when the new positions do not fit in the cache.
        RuntimeError
            With a cache, if gradients are enabled (a cache is for decoding, under ``torch.no_grad()``).
        """
        _check_sequence("x", x, self.d_model)
        if cache is not None and not isinstance(cache, LayerKVCache):
            raise TypeError(f"cache must be an attnlib.efficient.LayerKVCache, got {type(cache).__name__}")
        b, t, _ = x.shape
        start = 0 if cache is None else cache.length  # positions already cached
        q = self._split(self.q_proj(x), self.nhead)  # (B, H, T, head_dim)
        k = self._split(self.k_proj(x), self.num_kv_heads)  # (B, Hkv, T, head_dim)
        v = self._split(self.v_proj(x), self.num_kv_heads)  # (B, Hkv, T, head_dim)
        if self.rotary:
            positions = torch.arange(start, start + t, device=x.device)  # (T,) absolute positions
            q, k = apply_rotary(q, positions), apply_rotary(k, positions)  # rotated before k is cached
        if cache is not None:
            k, v = cache.append(k, v)  # (B, Hkv, start + T, head_dim): the grouped heads are what is stored
        k = k.repeat_interleave(self.group, dim=1)  # (B, H, start + T, head_dim): kv head j for query heads jg..
        v = v.repeat_interleave(self.group, dim=1)  # (B, H, start + T, head_dim)
        p = self.dropout if self.training else 0.0
        if start == 0:  # the whole sequence (or a cache's first chunk): the causal kernel path
            out, weights = scaled_dot_product_attention(q, k, v, dropout_p=p, need_weights=need_weights, is_causal=True)
        else:  # new position start + i may attend to 0 .. start + i; a single new one may attend to all
            mask = None if t == 1 else causal_mask(start + t, device=x.device)[start:]  # (T, start + T)
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p, need_weights=need_weights)
        out = out.transpose(1, 2).reshape(b, t, self.d_model)  # (B, T, d_model): heads joined
        return self.out_proj(out), weights  # (B, T, d_model), (B, H, T, start + T) or None

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, nhead={self.nhead}, num_kv_heads={self.num_kv_heads}, "
            f"head_dim={self.head_dim}, rotary={self.rotary}, dropout={self.dropout}"
        )


class GPTBlock(nn.Module):
    r"""One pre-LN decoder-only block: ``x = x + attn(ln1(x)); x = x + ff(ln2(x))``.

    ``attn`` is :class:`GroupedQueryAttention` (causal), ``ff`` the position-wise MLP
    :class:`attnlib.transformer.FeedForward` with a GELU, as in GPT-2. Unlike
    :class:`attnlib.transformer.TransformerDecoderLayer` there is no cross-attention: nothing but the tokens before.
    Dropout, when set, acts on the attention weights, inside the MLP and on each sub-layer's output.

    Parameters
    ----------
    d_model, nhead, num_kv_heads, rotary
        As in :class:`GroupedQueryAttention`.
    dim_feedforward : int
        Width of the MLP's hidden layer.
    dropout : float in [0, 1)

    Raises
    ------
    TypeError, ValueError
        As :class:`GroupedQueryAttention` and :class:`attnlib.transformer.FeedForward`.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        num_kv_heads: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        rotary: bool = False,
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = GroupedQueryAttention(d_model, nhead, num_kv_heads, dropout=dropout, rotary=rotary)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, activation="gelu")
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, need_weights: bool = False, cache: LayerKVCache | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` (B, T, d_model) -> ``(output (B, T, d_model), attention weights (B, H, T, T) or None)``; with a
        ``cache``, ``x`` holds the new positions only, as in :meth:`GroupedQueryAttention.forward`."""
        out, weights = self.attn(self.ln1(x), need_weights=need_weights, cache=cache)
        x = x + self.dropout(out)  # (B, T, d_model)
        x = x + self.dropout(self.ff(self.ln2(x)))  # (B, T, d_model)
        return x, weights


def _check_sampling(temperature: object, top_k: object, top_p: object, generator: object) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a float >= 0, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None:
        top_k = _check_int("top_k", top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or None for no top-k filtering), got {top_k}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, Real):
            raise TypeError(f"top_p must be a float in (0, 1] or None, got {type(top_p).__name__}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filtering), got {top_p}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Pick the next token of each row from its logits: greedily, or by sampling from a filtered distribution.

    With ``temperature = 0`` the most likely token (the argmax; ``top_k`` and ``top_p`` change nothing). Otherwise,
    in this order:

    1. divide the logits by ``temperature`` (below 1 sharpens the distribution, above 1 flattens it);
    2. top-k (Fan et al., 2018): keep the ``top_k`` largest logits (and any that tie with the k-th);
    3. top-p, the nucleus (Holtzman et al., 2020): of what is left, keep the smallest set of most likely tokens
       whose probability reaches ``top_p`` (the most likely token is always kept);
    4. draw one token from the softmax of what is kept, with ``torch.multinomial(..., generator=generator)``.

    Parameters
    ----------
    logits : Tensor, floating point (B, V)
        Scores over the vocabulary, one row per sequence.
    temperature : float >= 0
    top_k : int >= 1, optional
        No top-k filtering when None (or >= V).
    top_p : float in (0, 1], optional
        No nucleus filtering when None or 1.
    generator : torch.Generator, optional
        The random source, on the logits' device: the same seed gives the same tokens. Default: torch's global one.

    Returns
    -------
    Tensor of int64 (B,)

    Raises
    ------
    TypeError
        If ``logits`` is not a floating-point tensor, ``temperature`` or ``top_p`` is not a number, ``top_k`` is not
        an int, or ``generator`` is not a ``torch.Generator``.
    ValueError
        If ``logits`` is not 2-D (B, V) with V >= 1, ``temperature`` is negative or not finite, ``top_k`` < 1,
        ``top_p`` is outside (0, 1], or ``generator`` is on another kind of device than ``logits``.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor (B, V), got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (B, V) with V >= 1, got shape {tuple(logits.shape)}")
    _check_sampling(temperature, top_k, top_p, generator)
    if generator is not None and generator.device.type != logits.device.type:
        raise ValueError(f"generator is on {generator.device} but logits are on {logits.device}; use one device")
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits / temperature  # (B, V)
    if top_k is not None and top_k < logits.shape[1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        probs = logits.softmax(dim=-1)  # (B, V)
        sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, V) each
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (B, V) the mass of the more likely tokens
        drop_sorted = before >= top_p  # the nucleus already reached without this token (never the first)
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # (B, V) back in vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)


class GPT(nn.Module):
    r"""A decoder-only Transformer language model (GPT-2 style, Radford et al., 2019), from the course's parts.

    The tokens are embedded as in chapter 6 (the embedding scaled by :math:`\sqrt{d_{model}}` and initialised with
    standard deviation :math:`d_{model}^{-1/2}`, so that its entries have size 1, like the sinusoidal table's),
    given positions according to ``positional`` (see :data:`POSITIONAL_ENCODINGS`), passed through ``num_layers``
    pre-LN blocks (:class:`GPTBlock`: causal self-attention and an MLP), a final LayerNorm, and a linear head to the
    vocabulary. The head is **tied** to the token embedding, as in GPT-2 and nanoGPT: it is the same matrix
    :math:`E` (``head.weight is token_embedding.weight``), so the logits are :math:`\mathrm{LN}(h) E^\top`, the
    score of each token being the dot product of the final state with that token's embedding.

    Position ``t``'s logits predict token ``t + 1`` from tokens ``0..t``: the causal mask keeps every position from
    seeing later ones, so one pass over a sequence trains on all its next-token predictions at once.

    Parameters
    ----------
    vocab_size : int
        Number of token ids ``V``.
    d_model : int
        Width of the residual stream; divisible by ``nhead``.
    nhead : int
        Query heads per layer.
    num_layers : int
        Blocks.
    dim_feedforward : int, optional
        Width of the MLPs' hidden layer; default ``4 * d_model``.
    max_len : int
        The longest sequence (prompt and generated tokens together) the model takes.
    num_kv_heads : int, optional
        Key/value heads per layer (:class:`GroupedQueryAttention`); default ``nhead`` (multi-head attention); 1 is
        multi-query attention. Must divide ``nhead``.
    positional : str
        One of :data:`POSITIONAL_ENCODINGS`: ``"rope"`` (default; needs an even ``d_model / nhead``),
        ``"learned"`` (``nn.Embedding(max_len, d_model)`` added to the tokens, initialised with std 1, the size of
        the scaled token embeddings, so that positions are not drowned out at the start),
        ``"sinusoidal"`` (:func:`attnlib.positional.sinusoidal_encoding`, added) or ``"none"``.
    dropout : float in [0, 1)
        Dropout on the embeddings, the attention weights, inside the MLPs and on each sub-layer's output.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``d_model`` is not divisible by ``nhead``, ``num_kv_heads`` does not divide
        ``nhead``, ``positional`` is unknown, ``dropout`` is outside [0, 1), or ``"rope"`` meets an odd head size.
    """

    pe: Tensor | None

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        max_len: int = 128,
        num_kv_heads: int | None = None,
        positional: str = "rope",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = _check_length("vocab_size", vocab_size)
        num_kv_heads = nhead if num_kv_heads is None else num_kv_heads
        self.d_model, self.nhead, self.num_kv_heads = _check_heads(d_model, nhead, num_kv_heads)
        self.head_dim = self.d_model // self.nhead
        self.num_layers = _check_length("num_layers", num_layers)
        self.dim_feedforward = (
            4 * self.d_model if dim_feedforward is None else _check_length("dim_feedforward", dim_feedforward)
        )
        self.max_len = _check_length("max_len", max_len)
        if positional not in POSITIONAL_ENCODINGS:
            raise ValueError(f"positional must be one of {POSITIONAL_ENCODINGS}, got {positional!r}")
        self.positional = positional
        self.dropout_p = _check_dropout(dropout)

        self.token_embedding = nn.Embedding(self.vocab_size, self.d_model)
        # std d_model^-1/2: scaled by sqrt(d_model), the embeddings have entries of size 1 (see the docstring)
        nn.init.normal_(self.token_embedding.weight, std=self.d_model**-0.5)
        self.position_embedding = None
        self.register_buffer("pe", None, persistent=False)
        if positional == "learned":
            self.position_embedding = nn.Embedding(self.max_len, self.d_model)
            nn.init.normal_(self.position_embedding.weight, std=1.0)  # as large as the tokens
        elif positional == "sinusoidal":
            self.pe = sinusoidal_encoding(self.max_len, self.d_model)  # (max_len, d_model), not trained
        self.dropout = nn.Dropout(self.dropout_p)
        self.blocks = nn.ModuleList(
            GPTBlock(d_model, nhead, self.num_kv_heads, self.dim_feedforward, dropout, rotary=positional == "rope")
            for _ in range(self.num_layers)
        )
        self.norm = nn.LayerNorm(self.d_model)  # the final LayerNorm of a pre-LN stack
        self.head = nn.Linear(self.d_model, self.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying (GPT-2, nanoGPT): one (V, d_model) matrix

    def forward(
        self, tokens: Tensor, need_weights: bool = False, cache: KVCache | None = None
    ) -> tuple[Tensor, list[Tensor] | None]:
        """Next-token logits for every position: ``tokens`` (B, T) -> ``(logits (B, T, vocab_size), weights)``.

        ``weights`` is a list with one (B, H, T, T) tensor of attention weights per layer when ``need_weights``,
        else None (and the attention takes torch's causal kernel).

        With a ``cache`` (:class:`attnlib.efficient.KVCache` with one entry per layer, built by :meth:`generate`),
        ``tokens`` holds only the new tokens, which take the positions after the ``cache.length`` cached ones; the
        logits are theirs alone, and the weights (B, H, T, cached + T).

        Raises
        ------
        TypeError, ValueError
            If ``tokens`` is not a 2-D integer tensor of ids in [0, vocab_size) with at least one position, the
            positions run past ``max_len``, or ``cache`` is not a ``KVCache`` with one entry per layer.
        RuntimeError
            With a cache, if gradients are enabled (decode under ``torch.no_grad()``, as :meth:`generate` does).
        """
        _check_token_ids("tokens", tokens, 2, self.vocab_size)
        start = 0
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise TypeError(f"cache must be an attnlib.efficient.KVCache, got {type(cache).__name__}")
            if len(cache) != self.num_layers:
                raise ValueError(f"cache holds {len(cache)} layers, but this model has num_layers={self.num_layers}")
            start = cache.length
        t = tokens.shape[1]
        if t == 0:
            raise ValueError(f"tokens must hold at least one position, got shape {tuple(tokens.shape)}")
        if start + t > self.max_len:
            raise ValueError(
                f"tokens has T={t} positions (after {start} cached), more than the model's max_len={self.max_len}"
            )
        x = self.token_embedding(tokens) * math.sqrt(self.d_model)  # (B, T, d_model)
        if self.position_embedding is not None:
            positions = torch.arange(start, start + t, device=tokens.device)  # (T,)
            x = x + self.position_embedding(positions)  # (B, T, d_model)
        elif self.pe is not None:
            x = x + self.pe[start : start + t].to(x.dtype)  # (B, T, d_model)
        x = self.dropout(x)
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, need_weights=need_weights, cache=None if cache is None else cache[i])
            weights.append(w)
        logits = self.head(self.norm(x))  # (B, T, vocab_size)
        return logits, (weights if need_weights else None)

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        eos_id: int | None = None,
    ) -> Tensor:
        """Continue ``prompt`` (B, T0) by up to ``max_new_tokens`` tokens, one at a time: ``tokens (B, T0 + n)``,
        the prompt followed by the ``n`` new tokens.

        Each new token is picked by :func:`sample_next` from the logits of the last position, with
        ``temperature`` (0 = greedy), ``top_k``, ``top_p`` and ``generator`` (a seeded ``torch.Generator`` makes the
        samples reproducible). With ``use_cache`` (the default), the prompt runs through the model once, filling
        an :class:`attnlib.efficient.KVCache` with every layer's keys and values (``num_kv_heads`` heads of them),
        and then each step feeds the newest token alone; without it, every step re-runs the whole sequence. Both
        give the same tokens.

        With ``eos_id``, a row that has produced ``eos_id`` keeps producing it, and generation stops as soon as
        every row has: ``n <= max_new_tokens``. Otherwise ``n = max_new_tokens``.

        It runs without gradients and in eval mode (no dropout), and gives every submodule back its mode
        afterwards, even when it fails.

        Raises
        ------
        TypeError, ValueError
            If ``prompt`` is not a 2-D integer tensor of ids with at least one position, ``max_new_tokens`` is not an
            int >= 0, the prompt and ``max_new_tokens`` together exceed ``max_len``, ``eos_id`` is not an id, or as
            :func:`sample_next` for ``temperature``, ``top_k``, ``top_p`` and ``generator``.
        """
        _check_token_ids("prompt", prompt, 2, self.vocab_size)
        if prompt.shape[1] == 0:
            raise ValueError(f"prompt must hold at least one token, got shape {tuple(prompt.shape)}")
        max_new_tokens = _check_int("max_new_tokens", max_new_tokens)
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be at least 0, got {max_new_tokens}")
        total = prompt.shape[1] + max_new_tokens
        if total > self.max_len:
            raise ValueError(
                f"the prompt's {prompt.shape[1]} tokens and max_new_tokens={max_new_tokens} make {total} positions, "
                f"more than the model's max_len={self.max_len}"
            )
        _check_sampling(temperature, top_k, top_p, generator)
        if eos_id is not None:
            eos_id = _check_int("eos_id", eos_id)
            if not 0 <= eos_id < self.vocab_size:
                raise ValueError(f"eos_id must be a token id in [0, {self.vocab_size}), got {eos_id}")
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {type(use_cache).__name__}")
        with eval_mode(self):
            return self._generate(prompt, max_new_tokens, temperature, top_k, top_p, generator, use_cache, eos_id)

    def _generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        generator: torch.Generator | None,
        use_cache: bool,
        eos_id: int | None,
    ) -> Tensor:
        tokens = prompt.long()  # (B, T0)
        # the cache holds what is fed in: the prompt and every new token but the last
        cache = KVCache(self.num_layers, tokens.shape[1] + max_new_tokens) if use_cache else None
        done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)  # (B,) rows that emitted eos
        new = tokens  # what the cached model has not read yet: the prompt, then one token per step
        for _ in range(max_new_tokens):
            logits, _ = self(new if use_cache else tokens, cache=cache)  # (B, T, V)
            token = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
            if eos_id is not None:
                token = token.masked_fill(done, eos_id)  # a finished row keeps emitting eos
                done = done | (token == eos_id)
            tokens = torch.cat([tokens, token[:, None]], dim=1)  # (B, T + 1)
            new = token[:, None]  # (B, 1)
            if eos_id is not None and bool(done.all()):
                break
        return tokens

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, d_model={self.d_model}, nhead={self.nhead}, "
            f"num_kv_heads={self.num_kv_heads}, num_layers={self.num_layers}, max_len={self.max_len}, "
            f"positional={self.positional!r}"
        )


def kv_cache_bytes(model: GPT, batch_size: int, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
    r"""The bytes a full KV cache of ``model`` takes for ``batch_size`` sequences of ``seq_len`` positions.

    Every layer keeps a key and a value of ``head_dim`` numbers per key/value head, position and sequence:

    .. math:: 2 \cdot \mathrm{num\_layers} \cdot B \cdot \mathrm{num\_kv\_heads} \cdot T \cdot
              \mathrm{head\_dim} \cdot \mathrm{itemsize}

    Grouped-query attention divides it by ``nhead / num_kv_heads`` (multi-query attention by ``nhead``), which is
    what it is for: at long contexts and large batches the cache, not the weights, fills the memory of a server.
    It is what the :class:`attnlib.efficient.KVCache` that :meth:`GPT.generate` builds holds once filled (its
    buffers, allocated at their full length). ``seq_len`` may exceed ``model.max_len``, to ask what a longer
    context would cost.

    Parameters
    ----------
    model : GPT
    batch_size, seq_len : int >= 1
    dtype : torch.dtype
        Of the cached keys and values (the model's dtype); e.g. ``torch.float16`` halves the figure.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`GPT`, a size is not an int, or ``dtype`` is not a ``torch.dtype``.
    ValueError
        If a size is less than 1.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be an attnlib.gpt.GPT, got {type(model).__name__}")
    batch_size, seq_len = _check_length("batch_size", batch_size), _check_length("seq_len", seq_len)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype (e.g. torch.float32), got {type(dtype).__name__}")
    itemsize = torch.empty(0, dtype=dtype).element_size()
    return 2 * model.num_layers * batch_size * model.num_kv_heads * seq_len * model.head_dim * itemsize
