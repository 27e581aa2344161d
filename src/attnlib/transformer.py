r"""The Transformer (Vaswani et al., 2017): its layers, their stacks, and an encoder-decoder model (chapter 6).

- :class:`FeedForward`: the position-wise MLP, ``linear2(dropout(activation(linear1(x))))``, applied to every
  position separately.
- :class:`TransformerEncoderLayer`: self-attention and the MLP, each wrapped in a residual connection and a
  LayerNorm, after the sub-layer (post-LN, ``norm_first=False``, as in the paper) or before it (pre-LN).
- :class:`TransformerDecoderLayer`: masked self-attention, cross-attention to the encoder's output (the memory) and
  the MLP, wrapped the same way.
- :class:`TransformerEncoder`, :class:`TransformerDecoder`: stacks of layers (with a final LayerNorm in pre-LN).
- :class:`TransformerSeq2Seq`: embeddings, sinusoidal positions, the two stacks and a generator, with the same
  interface as :class:`attnlib.seq2seq.Seq2Seq` (``forward`` with teacher forcing, ``greedy_decode``).

Both layers take the argument names of ``torch.nn.TransformerEncoderLayer`` / ``DecoderLayer`` and have
``from_torch(module)``, which copies a torch layer's weights so that both compute the same function. Masks follow
attnlib's convention, **True = may attend** (torch's boolean masks mean the opposite).

Every layer returns its attention weights when asked (``need_weights=True``), for plotting; training leaves it
False, and then the attention runs in torch's fused kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlib.attention import MultiHeadAttention
from attnlib.data import CharVocab
from attnlib.efficient import KVCache, LayerKVCache
from attnlib.functional import _check_dropout, _check_length, _check_token_ids, causal_mask, padding_mask
from attnlib.positional import SinusoidalPositionalEncoding
from attnlib.utils import eval_mode

__all__ = [
    "FeedForward",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
    "TransformerSeq2Seq",
]

PAD, BOS, EOS = CharVocab.PAD, CharVocab.BOS, CharVocab.EOS
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _check_activation(activation: object) -> str:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    return str(activation)


def _check_sequence(name: str, x: object, d_model: int) -> Tensor:
    """A float tensor (B, L, d_model)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (B, L, d_model={d_model}), got {tuple(x.shape)}")
    return x


def _torch_activation(module: nn.Module) -> str:
    # torch stores the activation as a function (F.relu, F.gelu) or a module (nn.ReLU(), nn.GELU())
    act = module.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"module uses the activation {act!r}; attnlib's layers offer relu and (exact) gelu")


def _copy_linear(target: nn.Linear, source: nn.Linear) -> None:
    target.load_state_dict(source.state_dict())


class FeedForward(nn.Module):
    r"""The position-wise feed-forward block: :math:`\mathrm{FFN}(x) = W_2\, \mathrm{dropout}(\mathrm{act}(W_1 x +
    b_1)) + b_2`, the same MLP at every position (positions do not meet here).

    Parameters
    ----------
    d_model : int
        Width of the input and output.
    dim_feedforward : int
        Width of the hidden layer (the paper uses ``4 * d_model``).
    dropout : float in [0, 1)
        Dropout after the activation, in training mode only.
    activation : {"relu", "gelu"}
    bias : bool
        Whether the two linear layers have biases.
    """

    def __init__(
        self, d_model: int, dim_feedforward: int, dropout: float = 0.0, activation: str = "relu", bias: bool = True
    ) -> None:
        super().__init__()
        d_model, dim_feedforward = _check_length("d_model", d_model), _check_length("dim_feedforward", dim_feedforward)
        self.activation = _check_activation(activation)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(_check_dropout(dropout))
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (..., d_model) -> (..., d_model)."""
        return self.linear2(self.dropout(_ACTIVATIONS[self.activation](self.linear1(x))))


class _Layer(nn.Module):
    """What the encoder and decoder layers share: the settings, the sub-layers, the residual wrapping and
    :meth:`from_torch`. The decoder adds cross-attention (``multihead_attn``, torch's name) and a third norm."""

    num_norms = 2
    cross_attention = False
    torch_class: type[nn.Module] = nn.Module

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.d_model, self.nhead = _check_length("d_model", d_model), _check_length("nhead", nhead)
        if d_model % nhead:
            raise ValueError(f"d_model must be divisible by nhead, got d_model={d_model}, nhead={nhead}")
        self.dim_feedforward = _check_length("dim_feedforward", dim_feedforward)
        self.dropout_p = _check_dropout(dropout)
        self.norm_first = bool(norm_first)
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, activation, bias)
        if self.cross_attention:
            self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        for i in range(1, self.num_norms + 1):
            setattr(self, f"norm{i}", nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
            setattr(self, f"dropout{i}", nn.Dropout(dropout))

    def _residual(self, x: Tensor, i: int, sublayer) -> tuple[Tensor, Tensor | None]:
        """Post-LN: ``norm(x + dropout(sublayer(x)))``; pre-LN: ``x + dropout(sublayer(norm(x)))``."""
        norm, dropout = getattr(self, f"norm{i}"), getattr(self, f"dropout{i}")
        if self.norm_first:
            out, weights = sublayer(norm(x))
            return x + dropout(out), weights
        out, weights = sublayer(x)
        return norm(x + dropout(out)), weights

    def _copy_from(self, module: nn.Module) -> None:
        with torch.no_grad():
            _copy_linear(self.ff.linear1, module.linear1)
            _copy_linear(self.ff.linear2, module.linear2)
            for i in range(1, self.num_norms + 1):
                getattr(self, f"norm{i}").load_state_dict(getattr(module, f"norm{i}").state_dict())
        self.self_attn = MultiHeadAttention.from_torch(module.self_attn)
        if self.cross_attention:
            self.multihead_attn = MultiHeadAttention.from_torch(module.multihead_attn)

    @classmethod
    def from_torch(cls, module: nn.Module) -> _Layer:
        """A layer with the settings and weights of ``module``, the torch layer of the same kind
        (``torch.nn.TransformerEncoderLayer`` or ``DecoderLayer``) built with ``batch_first=True``; both then
        give the same output (in training mode too, when dropout is 0).

        Raises
        ------
        TypeError
            If ``module`` is not the torch layer of the same kind.
        ValueError
            If it is not batch first, or uses an activation other than relu or (exact) gelu.
        """
        if not isinstance(module, cls.torch_class):
            raise TypeError(f"module must be a torch.nn.{cls.torch_class.__name__}, got {type(module).__name__}")
        p = next(module.parameters())
        layer = cls(**cls._settings(module)).to(device=p.device, dtype=p.dtype)  # then copy: exact in float64
        layer._copy_from(module)
        return layer

    @staticmethod
    def _settings(module: nn.Module) -> dict:
        if not module.self_attn.batch_first:
            raise ValueError("module must be built with batch_first=True, as attnlib's layers are")
        return dict(
            d_model=module.self_attn.embed_dim,
            nhead=module.self_attn.num_heads,
            dim_feedforward=module.linear1.out_features,
            dropout=module.dropout.p,
            norm_first=module.norm_first,
            activation=_torch_activation(module),
            layer_norm_eps=module.norm1.eps,
            bias=module.linear1.bias is not None,
        )

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"


class TransformerEncoderLayer(_Layer):
    r"""One encoder layer: self-attention, then the position-wise MLP, each with a residual and a LayerNorm.

    Post-LN (``norm_first=False``, the original): ``x = norm1(x + SA(x)); x = norm2(x + FFN(x))``.
    Pre-LN (``norm_first=True``): ``x = x + SA(norm1(x)); x = x + FFN(norm2(x))``. Dropout is applied to each
    sub-layer's output before the residual sum, to the attention weights, and inside the MLP.

    Parameters
    ----------
    d_model, nhead, dim_feedforward, dropout, norm_first, activation, layer_norm_eps, bias
        As in ``torch.nn.TransformerEncoderLayer`` (always batch first).

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``d_model`` is not divisible by ``nhead``, ``dropout`` is outside
        [0, 1), or ``activation`` is unknown.
    """

    torch_class = nn.TransformerEncoderLayer

    def forward(
        self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` (B, L, d_model) -> ``(output (B, L, d_model), weights (B, H, L, L) or None)``.

        ``mask`` (True = may attend) broadcasts as in :class:`~attnlib.attention.MultiHeadAttention`: a padding
        mask ``pad`` (B, L) goes in as ``pad[:, None, :]``.
        """
        _check_sequence("x", x, self.d_model)
        x, weights = self._residual(x, 1, lambda h: self.self_attn(h, h, h, mask=mask, need_weights=need_weights))
        x, _ = self._residual(x, 2, lambda h: (self.ff(h), None))
        return x, weights


class TransformerDecoderLayer(_Layer):
    r"""One decoder layer: masked self-attention, cross-attention to the memory, then the MLP.

    Post-LN: ``x = norm1(x + SA(x)); x = norm2(x + CA(x, memory)); x = norm3(x + FFN(x))``; pre-LN puts each norm
    on the sub-layer's input instead, as in :class:`TransformerEncoderLayer`. The queries of the cross-attention
    come from the decoder, its keys and values from the memory (the encoder's output).

    Parameters
    ----------
    d_model, nhead, dim_feedforward, dropout, norm_first, activation, layer_norm_eps, bias
        As in ``torch.nn.TransformerDecoderLayer`` (always batch first).
    """

    num_norms = 3
    cross_attention = True
    torch_class = nn.TransformerDecoderLayer

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        need_weights: bool = False,
        cache: LayerKVCache | None = None,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``x`` (B, T, d_model), ``memory`` (B, S, d_model) -> ``(output (B, T, d_model), self-attention weights
        (B, H, T, T), cross-attention weights (B, H, T, S))``, the weights None unless ``need_weights``.

        ``mask`` is the self-attention mask and ``is_causal`` adds the causal one; a decoder normally passes
        ``is_causal=True`` alone, which lets torch's causal kernel do the work (it equals
        ``mask=causal_mask(T)``). ``memory_mask`` says which memory positions each query may attend to
        (normally the source padding mask as ``pad[:, None, :]``).

        With a ``cache`` (:class:`attnlib.efficient.LayerKVCache`), ``x`` holds only the ``T`` new positions: their
        keys and values are appended to the cache and they attend causally over every cached position (so
        ``mask`` must be None, ``is_causal`` changes nothing, and the self-attention weights are
        (B, H, T, cached + T)); the memory's keys and values are projected once and reused.
        """
        _check_sequence("x", x, self.d_model)
        _check_sequence("memory", memory, self.d_model)
        if memory.shape[0] != x.shape[0]:
            raise ValueError(
                f"x and memory must share the batch size, got shapes {tuple(x.shape)} and {tuple(memory.shape)}"
            )
        if cache is None:
            x, self_w = self._residual(
                x, 1, lambda h: self.self_attn(h, h, h, mask=mask, need_weights=need_weights, is_causal=is_causal)
            )
            x, cross_w = self._residual(
                x, 2, lambda h: self.multihead_attn(h, memory, memory, mask=memory_mask, need_weights=need_weights)
            )
        else:
            if not isinstance(cache, LayerKVCache):
                raise TypeError(f"cache must be an attnlib.efficient.LayerKVCache, got {type(cache).__name__}")
            if mask is not None:
                raise ValueError("mask must be None with a cache: cached self-attention is causal by construction")
            x, self_w = self._residual(x, 1, lambda h: self._cached_self_attention(h, cache, need_weights))
            x, cross_w = self._residual(
                x,
                2,
                lambda h: self.multihead_attn.attend(
                    h,
                    *cache.memory_kv(memory, lambda: self.multihead_attn.project_kv(memory, memory)),
                    mask=memory_mask,
                    need_weights=need_weights,
                ),
            )
        x, _ = self._residual(x, 3, lambda h: (self.ff(h), None))
        return x, self_w, cross_w

    def _cached_self_attention(
        self, h: Tensor, cache: LayerKVCache, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        start, new = cache.length, h.shape[1]
        k, v = cache.append(*self.self_attn.project_kv(h, h))  # (B, H, start + new, head_dim)
        # new position start + i may attend to positions 0 .. start + i; one new position may attend to all
        mask = None if new == 1 else causal_mask(start + new, device=h.device)[start:]  # (new, start + new)
        return self.self_attn.attend(h, k, v, mask=mask, need_weights=need_weights)


class _Stack(nn.Module):
    """``num_layers`` layers of ``layer_class`` in a row; pre-LN stacks end with a LayerNorm (their residual stream
    is never normalised otherwise)."""

    layer_class: type[_Layer]

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        num_layers = _check_length("num_layers", num_layers)
        self.layers = nn.ModuleList(
            self.layer_class(d_model, nhead, dim_feedforward, dropout, norm_first, activation)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()


class TransformerEncoder(_Stack):
    """``num_layers`` encoder layers (:class:`TransformerEncoderLayer`) in a row; pre-LN stacks end with a LayerNorm.

    The parameters after ``num_layers`` are those of :class:`TransformerEncoderLayer`, the same for every layer.
    """

    layer_class = TransformerEncoderLayer

    def forward(
        self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, list[Tensor] | None]:
        """``x`` (B, L, d_model) -> ``(output (B, L, d_model), weights)``, ``weights`` a list of each layer's
        (B, H, L, L) attention weights when ``need_weights``, else None. ``mask`` goes to every layer, as in
        :meth:`TransformerEncoderLayer.forward`."""
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask=mask, need_weights=need_weights)
            weights.append(w)
        return self.norm(x), (weights if need_weights else None)


class TransformerDecoder(_Stack):
    """``num_layers`` decoder layers (:class:`TransformerDecoderLayer`) in a row; pre-LN stacks end with a LayerNorm.

    The parameters after ``num_layers`` are those of :class:`TransformerDecoderLayer`, the same for every layer.
    """

    layer_class = TransformerDecoderLayer

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        need_weights: bool = False,
        cache: KVCache | None = None,
        is_causal: bool = False,
    ) -> tuple[Tensor, list[Tensor] | None, list[Tensor] | None]:
        """``x`` (B, T, d_model), ``memory`` (B, S, d_model) -> ``(output (B, T, d_model), self_weights,
        cross_weights)``, the weights as lists over the layers when ``need_weights``, else None.

        The masks and ``is_causal`` go to every layer, as in :meth:`TransformerDecoderLayer.forward`. With a ``cache``
        (:class:`attnlib.efficient.KVCache` with one entry per layer), ``x`` holds only the new positions, as in
        :meth:`TransformerDecoderLayer.forward`.
        """
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise TypeError(f"cache must be an attnlib.efficient.KVCache, got {type(cache).__name__}")
            if len(cache) != len(self.layers):
                raise ValueError(f"cache holds {len(cache)} layers, but this decoder has {len(self.layers)}")
        self_weights, cross_weights = [], []
        for i, layer in enumerate(self.layers):
            x, s, c = layer(
                x,
                memory,
                mask=mask,
                memory_mask=memory_mask,
                need_weights=need_weights,
                cache=None if cache is None else cache[i],
                is_causal=is_causal,
            )
            self_weights.append(s)
            cross_weights.append(c)
        if not need_weights:
            return self.norm(x), None, None
        return self.norm(x), self_weights, cross_weights


class TransformerSeq2Seq(nn.Module):
    r"""An encoder-decoder Transformer for token sequences, e.g. chapter 4's dates.

    ``source`` tokens are embedded (scaled by :math:`\sqrt{d_{model}}`, as in Vaswani et al.), given sinusoidal
    positions and encoded with padding masked; the decoder reads ``target_in`` (BOS, then the target) under a
    causal mask and attends to the memory with the source padding masked; a linear generator gives logits over
    the target vocabulary. The interface is that of :class:`attnlib.seq2seq.Seq2Seq`.

    Parameters
    ----------
    source_vocab_size, target_vocab_size : int
    d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout, norm_first
        The Transformer's settings.
    max_len : int
        The longest source or target sequence (the positional table's length).
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        d_model: int = 64,
        nhead: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        norm_first: bool = True,
        max_len: int = 64,
    ) -> None:
        super().__init__()
        self.source_vocab_size = _check_length("source_vocab_size", source_vocab_size)
        self.target_vocab_size = _check_length("target_vocab_size", target_vocab_size)
        self.d_model, self.max_len = _check_length("d_model", d_model), _check_length("max_len", max_len)
        self.source_embedding = nn.Embedding(source_vocab_size, d_model)
        self.target_embedding = nn.Embedding(target_vocab_size, d_model)
        self.positional = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = TransformerEncoder(num_encoder_layers, d_model, nhead, dim_feedforward, dropout, norm_first)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, nhead, dim_feedforward, dropout, norm_first)
        self.generator = nn.Linear(d_model, target_vocab_size)
        for embedding in (self.source_embedding, self.target_embedding):
            # std d_model^-1/2, so that the embeddings scaled by sqrt(d_model) have entries of size 1, like the
            # positional encoding they are added to (torch's default std of 1 would drown the positions)
            nn.init.normal_(embedding.weight, std=d_model**-0.5)

    def _embed(self, name: str, embedding: nn.Embedding, tokens: Tensor, offset: int = 0) -> Tensor:
        if offset + tokens.shape[1] > self.max_len:
            raise ValueError(
                f"{name} does not fit in the model's positional table of max_len={self.max_len}: got "
                f"{tokens.shape[1]} tokens from position {offset}"
            )
        return self.positional(embedding(tokens) * math.sqrt(self.d_model), offset=offset)

    def encode(
        self, source: Tensor, lengths: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor, list[Tensor] | None]:
        """``(memory (B, S, d_model), memory_mask (B, 1, S) True at real tokens, encoder weights or None)``."""
        _check_token_ids("source", source, 2, self.source_vocab_size)
        if not isinstance(lengths, Tensor):
            raise TypeError(
                f"lengths must be a torch.Tensor of shape ({source.shape[0]},), got {type(lengths).__name__}"
            )
        if lengths.shape != source.shape[:1]:
            raise ValueError(f"lengths must be a tensor of shape ({source.shape[0]},), got {lengths!r:.60}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > source.shape[1]):
            raise ValueError(f"lengths must lie in [1, {source.shape[1]}], got {lengths.tolist()}")
        memory_mask = padding_mask(lengths.to(source.device), source.shape[1])[:, None, :]  # (B, 1, S)
        memory, weights = self.encoder(self._embed("source", self.source_embedding, source), memory_mask, need_weights)
        return memory, memory_mask, weights

    def decode(
        self,
        target_in: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[Tensor, list[Tensor] | None, list[Tensor] | None]:
        """``(logits (B, T, V), decoder self-attention weights, cross-attention weights)``, the weights lists over
        the layers or None.

        With a ``cache`` (:class:`attnlib.efficient.KVCache`), ``target_in`` holds only the new tokens, which take
        the positions after the cached ones; the logits are theirs alone.
        """
        _check_token_ids("target_in", target_in, 2, self.target_vocab_size)
        if target_in.shape[1] == 0:
            raise ValueError(f"target_in must hold at least one step (BOS), got shape {tuple(target_in.shape)}")
        if target_in.shape[0] != memory.shape[0]:
            raise ValueError(
                f"source and target_in must share the batch size, got {memory.shape[0]} and {target_in.shape[0]}"
            )
        if cache is None:
            # causal self-attention, through torch's causal kernel when no weights are needed
            x = self._embed("target_in", self.target_embedding, target_in)
        else:
            # the new tokens come after the cached ones; the cached self-attention applies the causal mask itself
            x = self._embed("target_in", self.target_embedding, target_in, offset=cache.length)
        x, self_w, cross_w = self.decoder(
            x, memory, memory_mask=memory_mask, need_weights=need_weights, cache=cache, is_causal=cache is None
        )
        return self.generator(x), self_w, cross_w

    def forward(
        self, source: Tensor, lengths: Tensor, target_in: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, dict[str, list[Tensor]] | None]:
        """Teacher forcing: ``(logits (B, T, V), maps or None)``; ``maps`` has the keys ``"encoder"``,
        ``"decoder"`` and ``"cross"``, each a list over the layers of (B, H, Lq, Lk) weights."""
        memory, memory_mask, enc_w = self.encode(source, lengths, need_weights)
        logits, self_w, cross_w = self.decode(target_in, memory, memory_mask, need_weights)
        if not need_weights:
            return logits, None
        return logits, {"encoder": enc_w, "decoder": self_w, "cross": cross_w}

    @torch.no_grad()
    def greedy_decode(
        self, source: Tensor, lengths: Tensor, max_len: int, need_weights: bool = False, use_cache: bool = True
    ) -> tuple[Tensor, dict[str, list[Tensor]] | None]:
        """Emit the most likely token at each step, starting from BOS, until every sequence has emitted EOS.

        The source is encoded once. With ``use_cache`` (the default) each step feeds the decoder the newest token
        alone and keeps every layer's keys and values in an :class:`attnlib.efficient.KVCache`; without it, the
        decoder re-reads the whole prefix at every step. Both give the same tokens (chapter 8 measures the
        difference in time). Returns ``(tokens (B, T), maps or None)`` with ``T <= max_len``: each row holds
        its tokens up to and including EOS, then PAD. With ``need_weights``, ``maps`` holds the attention
        weights of a final pass over the emitted tokens: thanks to the causal mask, row ``t`` of each map is what
        the decoder used when it emitted token ``t``. It runs in eval mode (no dropout) and gives every submodule
        back its mode afterwards.
        """
        max_len = _check_length("max_len", max_len)
        if max_len > self.max_len:
            raise ValueError(f"max_len must be at most the model's max_len={self.max_len}, got {max_len}")
        with eval_mode(self):
            return self._greedy_decode(source, lengths, max_len, need_weights, use_cache)

    def _greedy_decode(
        self, source: Tensor, lengths: Tensor, max_len: int, need_weights: bool, use_cache: bool
    ) -> tuple[Tensor, dict[str, list[Tensor]] | None]:
        memory, memory_mask, _ = self.encode(source, lengths)
        batch = source.shape[0]
        prefix = torch.full((batch, 1), BOS, dtype=torch.long, device=source.device)
        done = torch.zeros(batch, dtype=torch.bool, device=source.device)
        cache = KVCache(len(self.decoder.layers), max_len) if use_cache else None
        for _ in range(max_len):
            # with the cache, the newest token alone (BOS at the first step); without it, the whole prefix
            logits, _, _ = self.decode(prefix[:, -1:] if use_cache else prefix, memory, memory_mask, cache=cache)
            token = logits[:, -1].argmax(dim=-1).masked_fill(done, PAD)  # (B,)
            prefix = torch.cat([prefix, token[:, None]], dim=1)
            done = done | (token == EOS)
            if bool(done.all()):
                break
        tokens = prefix[:, 1:]  # (B, T): without BOS
        if not need_weights:
            return tokens, None
        _, maps = self.forward(source, lengths, prefix[:, :-1], need_weights=True)
        return tokens, maps
