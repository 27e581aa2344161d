"""Small models that chapters 2 and 3 train for their experiments, built from attnlib's layers.

- :class:`KeyValueRecall`: one query attends over (key, value) pairs; the normaliser is a choice (E3).
- :class:`SelfAttentionTagger`: one self-attention layer that labels every position; position information,
  a residual connection and a mask on the diagonal are choices (E5, E6).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlib.attention import DotProductAttention, SingleHeadAttention
from attnlib.functional import _check_length, _check_token_ids
from attnlib.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

__all__ = ["KeyValueRecall", "SelfAttentionTagger"]


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
    """

    def __init__(self, num_keys: int, num_values: int, d_model: int = 32, normalizer: str = "softmax") -> None:
        super().__init__()
        self.num_keys, self.num_values = _check_length("num_keys", num_keys), _check_length("num_values", num_values)
        d_model = _check_length("d_model", d_model)
        self.key_embedding = nn.Embedding(num_keys, d_model)
        self.value_embedding = nn.Embedding(num_values, d_model)
        self.query_embedding = nn.Embedding(num_keys, d_model)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)  # W_Q
        self.k_proj = nn.Linear(d_model, d_model, bias=False)  # W_K
        self.v_proj = nn.Linear(d_model, d_model, bias=False)  # W_V
        self.attention = DotProductAttention(normalizer=normalizer)
        self.classifier = nn.Linear(d_model, num_values)

    @property
    def normalizer(self) -> str:
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
        out, weights = self.attention(q, self.k_proj(pairs), self.v_proj(pairs))  # (B, 1, d), (B, 1, P)
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
    ) -> None:
        super().__init__()
        self.vocab_size = _check_length("vocab_size", vocab_size)
        num_classes, d_model = _check_length("num_classes", num_classes), _check_length("d_model", d_model)
        self.max_len = _check_length("max_len", max_len)
        if position not in (None, "sinusoidal", "learned"):
            raise ValueError(f"position must be None, 'sinusoidal' or 'learned', got {position!r}")
        self.position, self.residual, self.mask_diagonal = position, bool(residual), bool(mask_diagonal)
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
        mask = None
        if self.mask_diagonal:
            n = tokens.shape[1]
            mask = ~torch.eye(n, dtype=torch.bool, device=tokens.device)  # (L, L), False on the diagonal
        out, weights = self.attention(x, mask=mask, need_weights=need_weights)  # (B, L, d), (B, L, L)
        if self.residual:
            out = out + x
        return self.mlp(out), weights  # (B, L, C)
