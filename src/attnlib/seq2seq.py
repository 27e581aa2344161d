"""Sequence-to-sequence models with recurrent networks, with and without attention (chapter 4).

- :class:`Encoder`: embeddings and a bidirectional GRU; its outputs ``h_j`` are the keys and values of attention.
- Three decoders, one GRU step per output token:

  - :class:`PlainDecoder`: no attention; the whole source reaches it as one vector, the encoder's final state
    (the bottleneck of Cho et al., 2014 and Sutskever et al., 2014).
  - :class:`BahdanauDecoder`: attention of the previous state ``s_{t-1}`` over every ``h_j``; the context is fed
    into the GRU with the input token (Bahdanau et al., 2015).
  - :class:`LuongDecoder`: the GRU steps first; attention of the new state ``s_t``; the context is combined with
    ``s_t`` after the GRU (Luong et al., 2015).

  Both attend with either score, ``"additive"`` (an MLP, Bahdanau's) or ``"multiplicative"`` (``s^T W_a h_j``,
  Luong's "general" score), so that the score can be compared with everything else held fixed (chapter 4, E8).

- :class:`Seq2Seq`: an encoder and a decoder; ``forward`` runs with teacher forcing, :meth:`Seq2Seq.greedy_decode`
  emits the most likely token at each step until EOS and returns the attention weights for plotting.

Token ids follow :class:`attnlib.data.CharVocab`: PAD = 0, BOS = 1, EOS = 2. Padding is masked in every attention.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlib.attention import AdditiveAttention
from attnlib.data import CharVocab
from attnlib.functional import _check_length, _check_token_ids, padding_mask, scaled_dot_product_attention
from attnlib.utils import eval_mode

__all__ = [
    "Encoder",
    "PlainDecoder",
    "BahdanauDecoder",
    "LuongDecoder",
    "Seq2Seq",
    "make_seq2seq",
    "exact_match",
    "SCORES",
]

PAD, BOS, EOS = CharVocab.PAD, CharVocab.BOS, CharVocab.EOS

SCORES = ("additive", "multiplicative")
"""The two scores an RNN decoder can attend with, Bahdanau's MLP and Luong's ``s^T W_a h_j``."""


class Encoder(nn.Module):
    """Embed the source tokens and read them with a bidirectional GRU.

    Parameters
    ----------
    vocab_size, embed_dim, hidden_dim : int
        Source vocabulary, embedding width, GRU width per direction.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.vocab_size = _check_length("vocab_size", vocab_size)
        self.embedding = nn.Embedding(vocab_size, _check_length("embed_dim", embed_dim), padding_idx=PAD)
        self.rnn = nn.GRU(embed_dim, _check_length("hidden_dim", hidden_dim), batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden_dim

    def forward(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``source`` (B, S) token ids, ``lengths`` (B,) -> ``(outputs (B, S, 2*hidden_dim), final (B, 2*hidden_dim))``.

        ``outputs[:, j]`` is ``h_j``, the forward and backward states at position ``j`` side by side (zero on
        padding); ``final`` joins the forward GRU's last state and the backward GRU's first, a summary of the whole
        source. Raises ``TypeError``/``ValueError`` for ids outside the vocabulary or lengths outside [1, S].
        """
        _check_token_ids("source", source, 2, self.vocab_size)
        if not isinstance(lengths, Tensor) or lengths.shape != source.shape[:1]:
            raise ValueError(f"lengths must be a tensor of shape ({source.shape[0]},), got {lengths!r:.60}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > source.shape[1]):
            raise ValueError(f"lengths must lie in [1, {source.shape[1]}], got {lengths.tolist()}")
        embedded = self.embedding(source)  # (B, S, E)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed)  # final: (2, B, H)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=source.shape[1])  # (B, S, 2H)
        return outputs, torch.cat([final[0], final[1]], dim=-1)  # (B, S, 2H), (B, 2H)


class _Decoder(nn.Module):
    """What the three decoders share: the embedding, the initial state and the step interface.

    A decoder with attention holds one score, ``additive`` (:class:`attnlib.attention.AdditiveAttention` of the
    state against ``h_j``) or ``multiplicative`` (the query ``W_a s``, then a plain dot product with each ``h_j``);
    :meth:`attend` applies it.
    """

    uses_attention = True

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, memory_dim: int) -> None:
        super().__init__()
        self.vocab_size = _check_length("vocab_size", vocab_size)
        self.hidden_dim = _check_length("hidden_dim", hidden_dim)
        self.embedding = nn.Embedding(vocab_size, _check_length("embed_dim", embed_dim), padding_idx=PAD)
        self.init_state = nn.Linear(_check_length("memory_dim", memory_dim), hidden_dim)  # s_0 from the summary

    def start(self, summary: Tensor) -> Tensor:
        """The initial state ``s_0 = tanh(W summary)``: (B, memory_dim) -> (B, hidden_dim)."""
        return torch.tanh(self.init_state(summary))

    def _make_score(self, score: str, hidden_dim: int, memory_dim: int, attn_dim: int) -> None:
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.score = score
        if score == "additive":
            self.attention = AdditiveAttention(hidden_dim, memory_dim, _check_length("attn_dim", attn_dim))
        else:
            self.w_a = nn.Linear(hidden_dim, memory_dim, bias=False)  # s W_a: the query in the memory's space

    def prepare(self, memory: Tensor) -> Tensor | None:
        """Work on the memory that every step reuses (computed once per source); None when there is none.

        For the additive score it is ``U h_j`` for every ``j``, (B, S, attn_dim).
        """
        return self.attention.project_key(memory) if getattr(self, "score", None) == "additive" else None

    def attend(self, state: Tensor, memory: Tensor, mask: Tensor, prepared: Tensor | None) -> tuple[Tensor, Tensor]:
        """The context and weights of ``state`` (B, hidden) over ``memory`` (B, S, M), ``mask`` (B, S) True at
        real tokens -> ``(context (B, M), weights (B, S))``, with this decoder's score."""
        if self.score == "additive":
            context, weights = self.attention(
                state[:, None], memory, memory, mask=mask[:, None], key_proj=prepared
            )  # (B, 1, M), (B, 1, S)
        else:  # e_j = (s W_a) . h_j, unscaled as in Luong et al.
            query = self.w_a(state)[:, None]  # (B, 1, M)
            context, weights = scaled_dot_product_attention(query, memory, memory, mask=mask[:, None], scale=1.0)
        return context[:, 0], weights[:, 0]  # (B, M), (B, S)

    def step(
        self, token: Tensor, state: Tensor, memory: Tensor, mask: Tensor, summary: Tensor, prepared: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One output step: ``token`` (B,), ``state`` (B, hidden), ``memory`` (B, S, memory_dim), ``mask`` (B, S)
        True at real source tokens, ``summary`` (B, memory_dim), ``prepared`` = ``prepare(memory)``
        -> ``(logits (B, V), new state, weights (B, S) or None)``."""
        raise NotImplementedError


class PlainDecoder(_Decoder):
    """A GRU decoder without attention: every step sees the same context, the encoder's final summary.

    Input to the GRU at step t: ``[embedding(y_{t-1}); c]``; output layer on ``[s_t; c; embedding(y_{t-1})]``,
    with ``c`` the summary for every ``t`` (as in Cho et al., 2014). Returns no attention weights.
    """

    uses_attention = False

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, memory_dim: int) -> None:
        super().__init__(vocab_size, embed_dim, hidden_dim, memory_dim)
        self.cell = nn.GRUCell(embed_dim + memory_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim + memory_dim + embed_dim, vocab_size)

    def step(self, token, state, memory, mask, summary, prepared):
        emb = self.embedding(token)  # (B, E)
        state = self.cell(torch.cat([emb, summary], dim=-1), state)  # (B, Hd)
        return self.out(torch.cat([state, summary, emb], dim=-1)), state, None


class BahdanauDecoder(_Decoder):
    r"""Bahdanau et al. (2015): attend with the previous state, then step the GRU with the context.

    .. math:: e_{tj} = w^\top \tanh(W s_{t-1} + U h_j), \quad a_t = \mathrm{softmax}(e_t), \quad
              c_t = \sum_j a_{tj} h_j, \quad s_t = \mathrm{GRU}([y_{t-1}; c_t], s_{t-1})

    and the output layer reads ``[s_t; c_t; y_{t-1}]``. The score is :class:`attnlib.attention.AdditiveAttention`
    by default; ``score="multiplicative"`` puts Luong's :math:`e_{tj} = s_{t-1}^\top W_a h_j` in its place and
    changes nothing else. Raises ``ValueError`` for another ``score``.
    """

    def __init__(
        self, vocab_size: int, embed_dim: int, hidden_dim: int, memory_dim: int, attn_dim: int,
        score: str = "additive",
    ) -> None:
        super().__init__(vocab_size, embed_dim, hidden_dim, memory_dim)
        self._make_score(score, hidden_dim, memory_dim, attn_dim)
        self.cell = nn.GRUCell(embed_dim + memory_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim + memory_dim + embed_dim, vocab_size)

    def step(self, token, state, memory, mask, summary, prepared):
        emb = self.embedding(token)  # (B, E)
        context, weights = self.attend(state, memory, mask, prepared)  # (B, M), (B, S): the query is s_{t-1}
        state = self.cell(torch.cat([emb, context], dim=-1), state)  # (B, Hd)
        return self.out(torch.cat([state, context, emb], dim=-1)), state, weights


class LuongDecoder(_Decoder):
    r"""Luong et al. (2015), "general" score: step the GRU first, then attend with the new state.

    .. math:: s_t = \mathrm{GRU}(y_{t-1}, s_{t-1}), \quad e_{tj} = s_t^\top W_a h_j, \quad
              c_t = \sum_j a_{tj} h_j, \quad \tilde s_t = \tanh(W_c [c_t; s_t])

    and the output layer reads :math:`\tilde s_t`. The score is a dot product after one linear map, computed by
    :func:`attnlib.functional.scaled_dot_product_attention` with ``scale=1`` (Luong's score is not scaled);
    ``score="additive"`` puts Bahdanau's MLP of :math:`s_t` in its place (Luong's "concat" score) and changes
    nothing else. Raises ``ValueError`` for another ``score``.
    """

    def __init__(
        self, vocab_size: int, embed_dim: int, hidden_dim: int, memory_dim: int, attn_dim: int = 64,
        score: str = "multiplicative",
    ) -> None:
        super().__init__(vocab_size, embed_dim, hidden_dim, memory_dim)
        self._make_score(score, hidden_dim, memory_dim, attn_dim)
        self.cell = nn.GRUCell(embed_dim, hidden_dim)
        self.combine = nn.Linear(memory_dim + hidden_dim, hidden_dim)  # W_c
        self.out = nn.Linear(hidden_dim, vocab_size)

    def step(self, token, state, memory, mask, summary, prepared):
        state = self.cell(self.embedding(token), state)  # (B, Hd)
        context, weights = self.attend(state, memory, mask, prepared)  # (B, M), (B, S): the query is s_t
        attentional = torch.tanh(self.combine(torch.cat([context, state], dim=-1)))  # (B, Hd)
        return self.out(attentional), state, weights


class Seq2Seq(nn.Module):
    """An :class:`Encoder` and a decoder.

    :meth:`forward` runs the decoder with teacher forcing (it reads the true previous token); train it with
    cross-entropy against ``target_out``, ignoring PAD. :meth:`greedy_decode` is what the model does at test time.
    """

    def __init__(self, encoder: Encoder, decoder: _Decoder) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(memory (B, S, M), mask (B, S) True at real tokens, summary (B, M))``."""
        memory, summary = self.encoder(source, lengths)
        return memory, padding_mask(lengths.to(source.device), source.shape[1]), summary

    def forward(self, source: Tensor, lengths: Tensor, target_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Decode with teacher forcing: ``source`` (B, S), ``lengths`` (B,), ``target_in`` (B, T) (BOS, then the
        target) -> ``(logits (B, T, V), weights (B, T, S) or None)``.

        At each step the decoder reads the true previous token from ``target_in``; ``weights`` is None for a
        decoder without attention. Raises ``TypeError``/``ValueError`` for ids outside the vocabularies, an empty
        ``target_in`` or batch sizes that differ.
        """
        _check_token_ids("source", source, 2, self.encoder.vocab_size)
        _check_token_ids("target_in", target_in, 2, self.decoder.vocab_size)
        if target_in.shape[1] == 0:
            raise ValueError(f"target_in must hold at least one step (BOS), got shape {tuple(target_in.shape)}")
        if target_in.shape[0] != source.shape[0]:
            raise ValueError(
                f"source and target_in must share the batch size, got {source.shape[0]} and {target_in.shape[0]}"
            )
        memory, mask, summary = self.encode(source, lengths)
        state, prepared = self.decoder.start(summary), self.decoder.prepare(memory)
        logits, weights = [], []
        for t in range(target_in.shape[1]):
            step_logits, state, w = self.decoder.step(target_in[:, t], state, memory, mask, summary, prepared)
            logits.append(step_logits)
            weights.append(w)
        stacked = torch.stack(weights, dim=1) if self.decoder.uses_attention else None  # (B, T, S)
        return torch.stack(logits, dim=1), stacked  # (B, T, V)

    @torch.no_grad()
    def greedy_decode(self, source: Tensor, lengths: Tensor, max_len: int) -> tuple[Tensor, Tensor | None]:
        """Emit the most likely token at each step, starting from BOS, until every sequence has emitted EOS.

        Returns ``(tokens (B, T), weights (B, T, S) or None)`` with ``T <= max_len``: each row holds the emitted
        tokens up to and including its EOS, then PAD; a row's weights after its EOS are zero. It runs in eval mode
        and gives every submodule back its mode afterwards.
        """
        max_len = _check_length("max_len", max_len)
        with eval_mode(self):
            return self._greedy_decode(source, lengths, max_len)

    def _greedy_decode(self, source: Tensor, lengths: Tensor, max_len: int) -> tuple[Tensor, Tensor | None]:
        memory, mask, summary = self.encode(source, lengths)
        state, prepared = self.decoder.start(summary), self.decoder.prepare(memory)
        token = torch.full((source.shape[0],), BOS, dtype=torch.long, device=source.device)
        done = torch.zeros(source.shape[0], dtype=torch.bool, device=source.device)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, state, w = self.decoder.step(token, state, memory, mask, summary, prepared)
            token = logits.argmax(dim=-1).masked_fill(done, PAD)  # (B,)
            tokens.append(token)
            if w is not None:
                weights.append(w.masked_fill(done[:, None], 0.0))
            done = done | (token == EOS)
            if bool(done.all()):
                break
        out_weights = torch.stack(weights, dim=1) if weights else None  # (B, T, S)
        return torch.stack(tokens, dim=1), out_weights  # (B, T)


def make_seq2seq(
    attention: str,
    source_vocab_size: int,
    target_vocab_size: int,
    embed_dim: int = 32,
    hidden_dim: int = 64,
    attn_dim: int = 64,
    score: str | None = None,
) -> Seq2Seq:
    """Build a :class:`Seq2Seq` with ``attention`` one of ``"none"``, ``"bahdanau"`` or ``"luong"``.

    The encoder's GRU has ``hidden_dim`` units per direction, so the memory is ``2 * hidden_dim`` wide; the
    decoder's GRU has ``hidden_dim`` units. ``score`` is one of :data:`SCORES`; by default each family keeps its
    own (additive for Bahdanau, multiplicative for Luong). ``attn_dim`` is the hidden width of the additive score.
    Raises ``ValueError`` for an unknown ``attention`` or ``score``, or a ``score`` with ``attention="none"``.
    """
    encoder = Encoder(source_vocab_size, embed_dim, hidden_dim)
    m = encoder.output_dim
    if attention == "none":
        if score is not None:
            raise ValueError(f"a decoder without attention has no score, got score={score!r}")
        decoder: _Decoder = PlainDecoder(target_vocab_size, embed_dim, hidden_dim, m)
    elif attention == "bahdanau":
        decoder = BahdanauDecoder(target_vocab_size, embed_dim, hidden_dim, m, attn_dim, score=score or "additive")
    elif attention == "luong":
        decoder = LuongDecoder(target_vocab_size, embed_dim, hidden_dim, m, attn_dim, score=score or "multiplicative")
    else:
        raise ValueError(f"attention must be 'none', 'bahdanau' or 'luong', got {attention!r}")
    return Seq2Seq(encoder, decoder)


def exact_match(predicted: Tensor, target: Tensor) -> Tensor:
    """Per row, whether ``predicted`` (B, T1) equals ``target`` (B, T2) up to and including the first EOS.

    Both are token ids as produced by :meth:`Seq2Seq.greedy_decode` and :func:`attnlib.data.encode_date_pairs`
    (``target_out``). A prediction without EOS never matches. Returns a bool tensor (B,).
    """
    if predicted.shape[0] != target.shape[0]:
        raise ValueError(
            f"predicted and target must share the batch size, got {tuple(predicted.shape)} and {tuple(target.shape)}"
        )
    width = max(predicted.shape[1], target.shape[1])
    p = torch.nn.functional.pad(predicted, (0, width - predicted.shape[1]), value=PAD)  # (B, W)
    t = torch.nn.functional.pad(target, (0, width - target.shape[1]), value=PAD)  # (B, W)
    # Keep each row up to its target's EOS; everything after it must be ignored in the prediction too.
    after_eos = (t == EOS).long().cumsum(dim=1) - (t == EOS).long() > 0  # (B, W) True after the EOS
    return ((p == t) | after_eos).all(dim=1) & (t == EOS).any(dim=1)
