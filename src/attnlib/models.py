"""Small models that chapters 2, 3, 5, 6 and 7 train for their experiments, built from attnlib's layers.

- :class:`KeyValueRecall`: one query attends over (key, value) pairs; the normaliser is a choice (E3).
- :class:`SelfAttentionTagger`: one self-attention layer that labels every position; position information,
  a residual connection, a mask on the diagonal and a causal mask are choices (E5, E6, chapter 5).
- :class:`RelationReader`: one multi-head self-attention layer that answers two questions per person of a group
  (chapter 5, E10).
- :class:`TransformerTagger`: a stack of Transformer encoder layers that labels every position (chapter 6, E12).
- :class:`SmallCNN`: a three-layer convolutional network for small images, the baseline of chapter 7 (E14).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlib.attention import DotProductAttention, MultiHeadAttention, SingleHeadAttention
from attnlib.functional import _check_length, _check_token_ids, causal_mask
from attnlib.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from attnlib.transformer import TransformerEncoder

__all__ = ["KeyValueRecall", "SelfAttentionTagger", "RelationReader", "TransformerTagger", "SmallCNN"]


class KeyValueRecall(nn.Module):
    """Answer "which value goes with this key?" by attention of one query over the pairs (chapter 2, E3).

    Each pair ``j`` becomes a vector ``x_j = E_key[key_j] + E_value[value_j]``; the query key becomes
    ``E_query[query]``. One attention step with learned ``W_Q, W_K, W_V`` (queries from the query key, keys and
    values from the pairs) gives a vector that a linear layer maps to a score per possible value.

    Parameters
    ----------
    num_keys, num_values : int
        Sizes of the key and value vocabularies.
    d_model : int
        Width of the embeddings and of the attention.
    normalizer : str
        How scores become weights: one of :data:`attnlib.functional.NORMALIZERS`.
    shared_kv : bool
        Use the keys as the values too (``V = K = X W_K``, no ``W_V``): the ablation of chapter 2 that asks what
        two projections buy over one.
    """

    def __init__(
        self, num_keys: int, num_values: int, d_model: int = 32, normalizer: str = "softmax", shared_kv: bool = False
    ) -> None:
        super().__init__()
        self.num_keys, self.num_values = _check_length("num_keys", num_keys), _check_length("num_values", num_values)
        d_model = _check_length("d_model", d_model)
        self.key_embedding = nn.Embedding(num_keys, d_model)
        self.value_embedding = nn.Embedding(num_values, d_model)
        self.query_embedding = nn.Embedding(num_keys, d_model)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)  # W_Q
        self.k_proj = nn.Linear(d_model, d_model, bias=False)  # W_K
        self.shared_kv = bool(shared_kv)
        self.v_proj = None if self.shared_kv else nn.Linear(d_model, d_model, bias=False)  # W_V
        self.attention = DotProductAttention(normalizer=normalizer)
        self.classifier = nn.Linear(d_model, num_values)

    @property
    def normalizer(self) -> str:
        """How scores become weights, one of :data:`attnlib.functional.NORMALIZERS` (read only)."""
        return self.attention.normalizer

    def forward(self, keys: Tensor, values: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        """``keys``, ``values`` (B, P) and ``query`` (B,) of int64 -> ``(logits (B, num_values), weights (B, P))``.

        Raises ``TypeError``/``ValueError`` if the ids are not int64 of those shapes or lie outside the vocabularies.
        """
        _check_token_ids("keys", keys, 2, self.num_keys)
        _check_token_ids("values", values, 2, self.num_values)
        _check_token_ids("query", query, 1, self.num_keys)
        if values.shape != keys.shape or query.shape[0] != keys.shape[0]:
            raise ValueError(
                f"keys and values must have the same shape (B, P) and query (B,): got {tuple(keys.shape)}, "
                f"{tuple(values.shape)} and {tuple(query.shape)}"
            )
        pairs = self.key_embedding(keys) + self.value_embedding(values)  # (B, P, d)
        q = self.q_proj(self.query_embedding(query)).unsqueeze(1)  # (B, 1, d)
        k = self.k_proj(pairs)  # (B, P, d)
        v = k if self.v_proj is None else self.v_proj(pairs)  # (B, P, d)
        out, weights = self.attention(q, k, v)  # (B, 1, d), (B, 1, P)
        return self.classifier(out.squeeze(1)), weights.squeeze(1)  # (B, num_values), (B, P)


class SelfAttentionTagger(nn.Module):
    """Label every token of a sequence with one self-attention layer (chapter 3, E5 and E6).

    ``tokens -> embedding (+ positions) -> SingleHeadAttention (+ input, if residual) -> MLP -> logits``.
    The MLP acts on each position separately, so the attention layer is the only place where positions meet.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    num_classes : int
        Number of labels per position.
    d_model : int
        Width of the embeddings and of the attention.
    max_len : int
        The longest sequence (for the position table).
    position : {None, "sinusoidal", "learned"}
        Which position information is added to the embeddings; None adds none.
    residual : bool
        Add the layer's input to the attention output (as a Transformer block does).
    mask_diagonal : bool
        Forbid each position to attend to itself.
    causal : bool
        Let each position attend only to itself and earlier positions (a causal mask). With ``mask_diagonal``
        too, only to earlier ones; the first position then attends to nothing and its attention output is zero.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 64,
        max_len: int = 64,
        position: str | None = None,
        residual: bool = False,
        mask_diagonal: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size = _check_length("vocab_size", vocab_size)
        num_classes, d_model = _check_length("num_classes", num_classes), _check_length("d_model", d_model)
        self.max_len = _check_length("max_len", max_len)
        if position not in (None, "sinusoidal", "learned"):
            raise ValueError(f"position must be None, 'sinusoidal' or 'learned', got {position!r}")
        self.position, self.residual, self.mask_diagonal = position, bool(residual), bool(mask_diagonal)
        self.causal = bool(causal)
        self.embedding = nn.Embedding(vocab_size, d_model)
        if position == "sinusoidal":
            self.positional: nn.Module = SinusoidalPositionalEncoding(d_model, max_len)
        elif position == "learned":
            self.positional = LearnedPositionalEmbedding(max_len, d_model)
        else:
            self.positional = nn.Identity()
        self.attention = SingleHeadAttention(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, num_classes))

    def forward(self, tokens: Tensor, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """``tokens`` (B, L) of int64 -> ``(logits (B, L, num_classes), weights (B, L, L) or None)``.

        Raises ``TypeError``/``ValueError`` if ``tokens`` is not int64 (B, L) with ids below ``vocab_size``
        and ``L <= max_len``.
        """
        _check_token_ids("tokens", tokens, 2, self.vocab_size)
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens has length {tokens.shape[1]} > max_len={self.max_len}")
        x = self.positional(self.embedding(tokens))  # (B, L, d)
        n, mask = tokens.shape[1], None
        if self.mask_diagonal:
            mask = ~torch.eye(n, dtype=torch.bool, device=tokens.device)  # (L, L), False on the diagonal
        if self.causal and n:
            future = causal_mask(n, device=tokens.device)  # (L, L), True on and below the diagonal
            mask = future if mask is None else mask & future
        out, weights = self.attention(x, mask=mask, need_weights=need_weights)  # (B, L, d), (B, L, L)
        if self.residual:
            out = out + x
        return self.mlp(out), weights  # (B, L, C)


class RelationReader(nn.Module):
    """For every person of a group, name two partners found by two different relations (chapter 5, E10).

    A person ``[looks, character, name]`` becomes ``x = E_looks[looks] + E_character[character] + E_name[name]``.
    A :class:`~attnlib.attention.MultiHeadAttention` layer lets every person attend to the *others* (the
    diagonal is masked), a residual connection adds ``x`` back, and a linear layer reads two answers per person:
    the name of the look-alike and the name of the kindred spirit (see :func:`attnlib.data.two_relations`).
    The parameter count does not depend on ``num_heads``, so models with 1, 2 or 4 heads compare fairly.
    With ``num_layers`` > 1, that many attention layers, each with its residual, come one after another before
    the linear layer (the control of E10: more layers instead of more heads).

    Parameters
    ----------
    num_traits, num_names : int
        Sizes of the trait and name vocabularies.
    d_model : int
        Width of the embeddings and of the attention; divisible by ``num_heads``.
    num_heads : int
        Heads of each attention layer.
    num_layers : int
        Attention layers, one after another (default 1).
    """

    def __init__(
        self, num_traits: int, num_names: int, d_model: int = 32, num_heads: int = 2, num_layers: int = 1
    ) -> None:
        super().__init__()
        self.num_traits, self.num_names = _check_length("num_traits", num_traits), _check_length("num_names", num_names)
        d_model, num_heads = _check_length("d_model", d_model), _check_length("num_heads", num_heads)
        num_layers = _check_length("num_layers", num_layers)
        if d_model % num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads (each head gets d_model / num_heads features): "
                f"got d_model={d_model}, num_heads={num_heads}"
            )
        self.looks_embedding = nn.Embedding(num_traits, d_model)
        self.character_embedding = nn.Embedding(num_traits, d_model)
        self.name_embedding = nn.Embedding(num_names, d_model)
        self.attention = MultiHeadAttention(d_model, num_heads)
        # Layers after the first, for num_layers > 1 (the first keeps its name, so one-layer models load as before).
        self.more_layers = nn.ModuleList(MultiHeadAttention(d_model, num_heads) for _ in range(num_layers - 1))
        self.classifier = nn.Linear(d_model, 2 * num_names)

    def forward(self, people: Tensor, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """``people`` (B, L, 3) of int64 -> ``(logits (B, L, 2, num_names), weights or None)``.

        The weights are (B, H, L, L) for one layer; with ``num_layers`` layers they are those of every layer,
        layer after layer along the head axis: (B, num_layers * H, L, L).

        Raises ``TypeError``/``ValueError`` if ``people`` is not int64 (B, L, 3) with traits below ``num_traits``
        and names below ``num_names``.
        """
        _check_token_ids("people", people, 3, max(self.num_traits, self.num_names))  # a tensor of int ids, 3-D
        if people.shape[-1] != 3:
            raise ValueError(f"people must have shape (B, L, 3) = [looks, character, name], got {tuple(people.shape)}")
        _check_token_ids("people[..., 0] (looks)", people[..., 0], 2, self.num_traits)
        _check_token_ids("people[..., 1] (character)", people[..., 1], 2, self.num_traits)
        _check_token_ids("people[..., 2] (names)", people[..., 2], 2, self.num_names)
        x = (
            self.looks_embedding(people[..., 0])
            + self.character_embedding(people[..., 1])
            + self.name_embedding(people[..., 2])
        )  # (B, L, d)
        n = people.shape[1]
        others = ~torch.eye(n, dtype=torch.bool, device=people.device)  # (L, L): attend to everyone else
        all_weights = []
        for layer in (self.attention, *self.more_layers):
            out, weights = layer(x, x, x, mask=others, need_weights=need_weights)  # (B, L, d), (B, H, L, L)
            x = x + out
            all_weights.append(weights)
        logits = self.classifier(x)  # (B, L, 2 * num_names)
        weights = torch.cat(all_weights, dim=1) if need_weights else None
        return logits.view(*people.shape[:2], 2, self.num_names), weights


class TransformerTagger(nn.Module):
    """Label every token with a stack of Transformer encoder layers (chapter 6, E12: post-LN against pre-LN).

    ``tokens -> embedding * sqrt(d_model) + sinusoidal positions -> TransformerEncoder -> linear -> logits``.

    Parameters
    ----------
    vocab_size, num_classes : int
    d_model, nhead, num_layers, dim_feedforward, dropout, norm_first
        The encoder's settings (see :class:`attnlib.transformer.TransformerEncoder`).
    max_len : int
        The longest sequence.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 6,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
        norm_first: bool = False,
        max_len: int = 64,
    ) -> None:
        super().__init__()
        self.vocab_size = _check_length("vocab_size", vocab_size)
        num_classes, self.d_model = _check_length("num_classes", num_classes), _check_length("d_model", d_model)
        self.max_len = _check_length("max_len", max_len)
        self.embedding = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)  # scaled by sqrt(d_model): entries of size 1
        self.positional = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, nhead, dim_feedforward, dropout, norm_first)
        self.classifier = nn.Linear(d_model, num_classes)

    def forward(self, tokens: Tensor, need_weights: bool = False) -> tuple[Tensor, list[Tensor] | None]:
        """``tokens`` (B, L) of int64 -> ``(logits (B, L, num_classes), per-layer weights (B, H, L, L) or None)``."""
        _check_token_ids("tokens", tokens, 2, self.vocab_size)
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens has length {tokens.shape[1]} > max_len={self.max_len}")
        x = self.positional(self.embedding(tokens) * self.d_model**0.5)  # (B, L, d)
        x, weights = self.encoder(x, need_weights=need_weights)
        return self.classifier(x), weights


class SmallCNN(nn.Module):
    """A small convolutional network for 8x8 images (chapter 7's baseline against the Vision Transformer, E14).

    Three 3x3 convolutions with ReLU (``width``, ``2 * width`` and ``4 * width`` channels), a 2x2 max-pool after the
    second and the third, then a linear layer on the flattened (4 * width, 2, 2) features. Its built-in assumptions
    (nearby pixels belong together, and a pattern means the same anywhere in the image) are what a ViT must learn
    from data.

    Parameters
    ----------
    in_channels, num_classes, width : int
    image_size : int
        Height and width of the square input; divisible by 4.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 8) -> None:
        super().__init__()
        in_channels, num_classes = _check_length("in_channels", in_channels), _check_length("num_classes", num_classes)
        width, self.image_size = _check_length("width", width), _check_length("image_size", image_size)
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (two 2x2 poolings), got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(4 * width * (image_size // 4) ** 2, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, C, H, W) -> logits (B, num_classes)."""
        if (
            not isinstance(images, Tensor)
            or images.dim() != 4
            or images.shape[-2:] != (self.image_size,) * 2
            or images.shape[1] != self.features[0].in_channels
        ):
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            c = self.features[0].in_channels
            raise ValueError(f"images must have shape (B, {c}, {self.image_size}, {self.image_size}), got {got}")
        return self.head(self.features(images).flatten(1))
