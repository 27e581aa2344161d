"""Chapter 4's seq2seq models: shapes, masking, padding invariance, greedy decoding against teacher forcing,
the attention scores written out by hand, the encoder against its own GRU, exact_match and copy_sequences."""

from __future__ import annotations

import pytest
import torch

from attnlib.data import CharVocab, copy_sequences
from attnlib.seq2seq import Encoder, Seq2Seq, exact_match, make_seq2seq

PAD, BOS, EOS = CharVocab.PAD, CharVocab.BOS, CharVocab.EOS
KINDS = ("none", "bahdanau", "luong")
ATTENTION_KINDS = ("bahdanau", "luong")
SRC_V, TGT_V = 11, 7
TOL64 = dict(atol=1e-10, rtol=1e-8)


def _model(kind: str, seed: int = 0, src_v: int = SRC_V, tgt_v: int = TGT_V) -> Seq2Seq:
    torch.manual_seed(seed)
    return make_seq2seq(kind, src_v, tgt_v, embed_dim=6, hidden_dim=8, attn_dim=5).double().eval()


def _source(lengths: list[int], seed: int = 0, src_v: int = SRC_V, width: int | None = None) -> tuple:
    """A padded batch of real ids in [3, src_v) with the given lengths: (source (B, S), lengths (B,))."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths) if width is None else width
    source = torch.randint(3, src_v, (len(lengths), width), generator=g)
    lens = torch.tensor(lengths)
    source[torch.arange(width)[None, :] >= lens[:, None]] = PAD
    return source, lens


def _target_in(batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    target_in = torch.randint(3, TGT_V, (batch, steps), generator=g)
    target_in[:, 0] = BOS
    return target_in


def _first_eos(tokens: torch.Tensor) -> list[int | None]:
    """Per row, the position of the first EOS, or None."""
    out = []
    for row in tokens.tolist():
        out.append(row.index(EOS) if EOS in row else None)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_greedy_shapes(kind):
    model = _model(kind)
    source, lengths = _source([4, 2, 5])
    logits, weights = model(source, lengths, _target_in(3, 6))
    assert logits.shape == (3, 6, TGT_V)
    assert logits.dtype == torch.float64
    if kind == "none":
        assert weights is None
    else:
        assert weights.shape == (3, 6, 5)
    tokens, gweights = model.greedy_decode(source, lengths, max_len=9)
    assert tokens.dtype == torch.long
    assert tokens.shape[0] == 3 and 1 <= tokens.shape[1] <= 9
    if kind == "none":
        assert gweights is None
    else:
        assert gweights.shape == (3, tokens.shape[1], 5)


# ----------------------------------------------------------------------------------------------------------------
# Masking and padding


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_weights_sum_to_one_on_real_tokens_and_vanish_on_padding(kind):
    model = _model(kind, seed=3)
    source, lengths = _source([5, 2, 3, 1], width=6)  # one extra column of padding for every row
    _, weights = model(source, lengths, _target_in(4, 5))
    real = torch.arange(6)[None, :] < lengths[:, None]  # (B, S)
    real = real[:, None, :].expand_as(weights)
    assert (weights[~real] == 0).all()
    assert (weights[real] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5, dtype=torch.float64), **TOL64)
    tokens, gweights = model.greedy_decode(source, lengths, max_len=6)
    assert (gweights.masked_select(~torch.arange(6).lt(lengths[:, None])[:, None, :]) == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_a_sequence_logits(kind):
    model = _model(kind, seed=4)
    source, lengths = _source([6, 3, 1, 4], seed=5, width=8)
    target_in = _target_in(4, 5)
    logits, weights = model(source, lengths, target_in)
    for b, n in enumerate(lengths.tolist()):
        alone_logits, alone_weights = model(source[b : b + 1, :n], lengths[b : b + 1], target_in[b : b + 1])
        torch.testing.assert_close(logits[b : b + 1], alone_logits, **TOL64)
        if kind != "none":
            torch.testing.assert_close(weights[b : b + 1, :, :n], alone_weights, **TOL64)
            assert (weights[b, :, n:] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_padding_token_ids_are_ignored(kind):
    """Whatever sits beyond a sequence's length (PAD or junk ids) does not reach the outputs."""
    model = _model(kind, seed=6)
    source, lengths = _source([5, 2, 3], seed=7)
    junk = source.clone()
    junk[source == PAD] = 9
    target_in = _target_in(3, 4)
    a, wa = model(source, lengths, target_in)
    b, wb = model(junk, lengths, target_in)
    torch.testing.assert_close(a, b, **TOL64)
    if kind != "none":
        torch.testing.assert_close(wa, wb, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# Greedy decoding


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_stops_after_one_step_when_eos_always_wins(kind):
    model = _model(kind, seed=8)
    with torch.no_grad():
        model.decoder.out.bias[EOS] = 1e6
    source, lengths = _source([4, 1, 3])
    tokens, weights = model.greedy_decode(source, lengths, max_len=10)
    assert tokens.tolist() == [[EOS]] * 3
    if kind != "none":
        assert weights.shape == (3, 1, 4)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 1, dtype=torch.float64), **TOL64)


def _force_eos(model: Seq2Seq, row: int, at_step: int) -> None:
    """Wrap the decoder's step so that row ``row`` emits EOS at step ``at_step`` (0-based), and never before."""
    real_step = model.decoder.step
    count = {"t": 0}

    def step(token, state, memory, mask, summary, prepared):
        logits, state, w = real_step(token, state, memory, mask, summary, prepared)
        logits = logits.clone()
        logits[:, EOS] = -1e6  # nobody stops on their own
        if count["t"] == at_step:
            logits[row, EOS] = 1e6
        count["t"] += 1
        return logits, state, w

    model.decoder.step = step


@pytest.mark.parametrize("kind", KINDS)
def test_after_a_row_eos_tokens_are_pad_and_weights_zero(kind):
    model = _model(kind, seed=9)
    source, lengths = _source([4, 2, 5], seed=10)
    _force_eos(model, row=1, at_step=2)
    tokens, weights = model.greedy_decode(source, lengths, max_len=7)
    assert tokens.shape == (3, 7)  # rows 0 and 2 never stop: all max_len steps are taken
    assert tokens[1, 2] == EOS
    assert (tokens[1, 3:] == PAD).all()
    assert (tokens[1, :2] != EOS).all() and (tokens[[0, 2]] != EOS).all()  # EOS was forbidden elsewhere
    if kind != "none":
        assert (weights[1, 3:] == 0).all()
        ones = torch.ones(3, dtype=torch.float64)
        torch.testing.assert_close(weights[1, :3].sum(-1), ones, **TOL64)  # the EOS step itself still attends
        torch.testing.assert_close(weights[[0, 2]].sum(-1), torch.ones(2, 7, dtype=torch.float64), **TOL64)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_stops_as_soon_as_every_row_is_done(kind):
    model = _model(kind, seed=11)
    source, lengths = _source([3, 3], seed=12)
    real_step = model.decoder.step
    count = {"t": 0}

    def step(token, state, memory, mask, summary, prepared):  # row 0 stops at step 1, row 1 at step 3
        logits, state, w = real_step(token, state, memory, mask, summary, prepared)
        logits = logits.clone()
        logits[:, EOS] = -1e6
        if count["t"] == 1:
            logits[0, EOS] = 1e6
        if count["t"] == 3:
            logits[1, EOS] = 1e6
        count["t"] += 1
        return logits, state, w

    model.decoder.step = step
    tokens, weights = model.greedy_decode(source, lengths, max_len=20)
    assert tokens.shape == (2, 4)
    assert _first_eos(tokens) == [1, 3]
    assert (tokens[0, 2:] == PAD).all()
    assert count["t"] == 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_greedy_invariants_on_untrained_models(kind, seed):
    model = _model(kind, seed=20 + seed, tgt_v=4)  # few symbols: EOS comes up now and then
    with torch.no_grad():
        model.decoder.out.bias[EOS] += 0.5
    source, lengths = _source([5, 1, 3, 4, 2, 5], seed=seed)
    tokens, weights = model.greedy_decode(source, lengths, max_len=8)
    eos = _first_eos(tokens)
    assert tokens.shape[1] == (8 if None in eos else max(eos) + 1)
    for b, e in enumerate(eos):
        stop = tokens.shape[1] if e is None else e + 1
        assert (tokens[b, : stop - 1] != EOS).all()
        assert (tokens[b, stop:] == PAD).all()
        if weights is not None:
            assert (weights[b, stop:] == 0).all()
            torch.testing.assert_close(weights[b, :stop].sum(-1), torch.ones(stop, dtype=torch.float64), **TOL64)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_decodes_as_its_items_one_by_one(kind):
    model = _model(kind, seed=13, tgt_v=5)
    source, lengths = _source([6, 1, 3, 4, 2], seed=14)
    tokens, weights = model.greedy_decode(source, lengths, max_len=8)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_w = model.greedy_decode(source[b : b + 1, :n], lengths[b : b + 1], max_len=8)
        t = alone.shape[1]
        assert tokens[b, :t].tolist() == alone[0].tolist()
        assert (tokens[b, t:] == PAD).all()
        if kind != "none":
            torch.testing.assert_close(weights[b, :t, :n], alone_w[0], **TOL64)
            assert (weights[b, :, n:] == 0).all() and (weights[b, t:] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_first_step_is_argmax_of_teacher_forced_bos(kind):
    model = _model(kind, seed=15)
    source, lengths = _source([5, 2, 3, 4], seed=16)
    logits, weights = model(source, lengths, torch.full((4, 1), BOS))
    tokens, gweights = model.greedy_decode(source, lengths, max_len=1)
    assert tokens.shape == (4, 1)
    assert tokens[:, 0].tolist() == logits[:, 0].argmax(-1).tolist()
    if kind != "none":
        torch.testing.assert_close(gweights, weights, **TOL64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_teacher_forcing_on_greedy_output_reproduces_it(kind, seed):
    model = _model(kind, seed=30 + seed, tgt_v=5)
    source, lengths = _source([6, 1, 3, 4, 2], seed=seed)
    tokens, gweights = model.greedy_decode(source, lengths, max_len=7)
    target_in = torch.cat([torch.full((5, 1), BOS), tokens[:, :-1]], dim=1)
    logits, weights = model(source, lengths, target_in)
    predicted = logits.argmax(-1)
    for b, e in enumerate(_first_eos(tokens)):
        stop = tokens.shape[1] if e is None else e + 1
        assert predicted[b, :stop].tolist() == tokens[b, :stop].tolist()
        if kind != "none":
            torch.testing.assert_close(weights[b, :stop], gweights[b, :stop], **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# The scores by hand, at the first step


def _gru_cell(cell: torch.nn.GRUCell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """torch's GRU equations written out, for one vector."""
    n = h.shape[0]
    gi, gh = cell.weight_ih @ x + cell.bias_ih, cell.weight_hh @ h + cell.bias_hh
    r = torch.sigmoid(gi[:n] + gh[:n])
    z = torch.sigmoid(gi[n : 2 * n] + gh[n : 2 * n])
    cand = torch.tanh(gi[2 * n :] + r * gh[2 * n :])
    return (1 - z) * cand + z * h


def _first_step_inputs(model: Seq2Seq, source, lengths):
    """(memory, summary, s_0 = tanh(W summary + b) by hand, emb(BOS))."""
    memory, summary = model.encoder(source, lengths)
    dec = model.decoder
    s0 = torch.tanh(summary @ dec.init_state.weight.T + dec.init_state.bias)
    return memory, summary, s0, dec.embedding.weight[BOS]


def _masked_softmax(e: torch.Tensor, width: int) -> torch.Tensor:
    expected = torch.zeros(width, dtype=torch.float64)
    expected[: e.shape[0]] = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
    return expected


def _score_by_hand(dec, query: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The decoder's score of one encoder state h_j for one query, written out."""
    if dec.score == "additive":
        W, U, w = dec.attention.w_q.weight, dec.attention.w_k.weight, dec.attention.w_v.weight[0]
        return w @ torch.tanh(W @ query + U @ h)  # w^T tanh(W s + U h_j)
    return query @ dec.w_a.weight.T @ h  # s^T W_a h_j, unscaled


def _check_first_step_by_hand(kind: str, score: str | None, seed: int) -> None:
    """Step 1 of a decoder with attention, by hand: Bahdanau scores s_0 and feeds the context into the GRU;
    Luong steps the GRU first, scores s_1, and combines the context with it after the GRU."""
    torch.manual_seed(seed)
    model = make_seq2seq(kind, SRC_V, TGT_V, embed_dim=6, hidden_dim=8, attn_dim=5, score=score).double().eval()
    source, lengths = _source([5, 3], seed=seed + 1)
    logits, weights = model(source, lengths, torch.full((2, 1), BOS))
    memory, _, s0, emb = _first_step_inputs(model, source, lengths)
    dec = model.decoder
    for b, n in enumerate(lengths.tolist()):
        query = s0[b] if kind == "bahdanau" else _gru_cell(dec.cell, emb, s0[b])  # Luong: the GRU steps first
        e = torch.stack([_score_by_hand(dec, query, memory[b, j]) for j in range(n)])
        a = _masked_softmax(e, 5)
        torch.testing.assert_close(weights[b, 0], a, **TOL64)
        context = a[:n] @ memory[b, :n]
        if kind == "bahdanau":
            s1 = _gru_cell(dec.cell, torch.cat([emb, context]), s0[b])
            expected = dec.out.weight @ torch.cat([s1, context, emb]) + dec.out.bias
        else:
            attentional = torch.tanh(dec.combine.weight @ torch.cat([context, query]) + dec.combine.bias)
            expected = dec.out.weight @ attentional + dec.out.bias
        torch.testing.assert_close(logits[b, 0], expected, **TOL64)


@pytest.mark.parametrize(
    ("kind", "score", "seed"),
    [
        ("bahdanau", None, 17),  # its own additive score
        ("luong", None, 19),  # its own multiplicative ("general") score
        ("bahdanau", "multiplicative", 21),  # only the score changes
        ("luong", "additive", 23),  # Luong's "concat" score: Bahdanau's MLP of s_1
    ],
)
def test_first_step_by_hand(kind, score, seed):
    _check_first_step_by_hand(kind, score, seed)


def _scored_model(kind: str, score: str, seed: int) -> Seq2Seq:
    torch.manual_seed(seed)
    return make_seq2seq(kind, SRC_V, TGT_V, embed_dim=6, hidden_dim=8, attn_dim=5, score=score).double().eval()


def test_each_family_keeps_its_own_score_by_default():
    assert _model("bahdanau").decoder.score == "additive"
    assert _model("luong").decoder.score == "multiplicative"
    for kind, score in [("bahdanau", "multiplicative"), ("luong", "additive")]:
        decoder = _scored_model(kind, score, seed=0).decoder
        assert decoder.score == score
        # The rest of the decoder is the same as with the family's own score.
        own = _model(kind).decoder
        rest = {n: p.shape for n, p in decoder.named_parameters() if not n.startswith(("attention.", "w_a."))}
        assert rest == {n: p.shape for n, p in own.named_parameters() if not n.startswith(("attention.", "w_a."))}


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="score must be one of"):
        make_seq2seq("bahdanau", SRC_V, TGT_V, score="dot")
    with pytest.raises(ValueError, match="score must be one of"):
        make_seq2seq("luong", SRC_V, TGT_V, score="Additive")
    with pytest.raises(ValueError, match="without attention has no score"):
        make_seq2seq("none", SRC_V, TGT_V, score="additive")


def test_plain_decoder_first_two_steps_by_hand():
    model = _model("none", seed=24)
    source, lengths = _source([5, 3], seed=25)
    target_in = torch.tensor([[BOS, 4], [BOS, 6]])
    logits, weights = model(source, lengths, target_in)
    assert weights is None
    _, summary, s0, _ = _first_step_inputs(model, source, lengths)
    dec = model.decoder
    for b in range(2):
        state = s0[b]
        for t in range(2):
            emb = dec.embedding.weight[target_in[b, t]]
            state = _gru_cell(dec.cell, torch.cat([emb, summary[b]]), state)  # the same context c at every step
            expected = dec.out.weight @ torch.cat([state, summary[b], emb]) + dec.out.bias
            torch.testing.assert_close(logits[b, t], expected, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# exact_match


def test_exact_match_by_hand():
    E, P = EOS, PAD
    # Equal up to EOS, different padding widths, both ways round.
    assert exact_match(torch.tensor([[5, 6, E]]), torch.tensor([[5, 6, E, P, P]])).tolist() == [True]
    assert exact_match(torch.tensor([[5, 6, E, P, P, P]]), torch.tensor([[5, 6, E]])).tolist() == [True]
    # A wrong token before EOS.
    assert exact_match(torch.tensor([[5, 7, E]]), torch.tensor([[5, 6, E]])).tolist() == [False]
    # Differences after the EOS do not count.
    assert exact_match(torch.tensor([[5, 6, E, 9, 4]]), torch.tensor([[5, 6, E, P, P]])).tolist() == [True]
    # No EOS in the prediction: never a match, even if the tokens so far are right.
    assert exact_match(torch.tensor([[5, 6]]), torch.tensor([[5, 6, E]])).tolist() == [False]
    assert exact_match(torch.tensor([[5, 6, P, P]]), torch.tensor([[5, 6, E, P]])).tolist() == [False]
    assert exact_match(torch.tensor([[5, 6, P]]), torch.tensor([[5, 6, P]])).tolist() == [False]
    # Stopping too early or too late.
    assert exact_match(torch.tensor([[5, E, P]]), torch.tensor([[5, 6, E]])).tolist() == [False]
    assert exact_match(torch.tensor([[5, 6, 6, E]]), torch.tensor([[5, 6, E, P]])).tolist() == [False]
    # Row by row in a batch.
    predicted = torch.tensor([[5, E, P, P], [5, 6, E, 3], [4, 4, 4, 4]])
    target = torch.tensor([[5, E, P], [5, 5, E], [4, 4, E]])
    result = exact_match(predicted, target)
    assert result.dtype == torch.bool and result.tolist() == [True, False, False]


def test_exact_match_of_greedy_with_its_own_output():
    model = _model("bahdanau", seed=21, tgt_v=4)
    with torch.no_grad():
        model.decoder.out.bias[EOS] += 0.5
    source, lengths = _source([5, 1, 3, 4, 2, 5], seed=1)
    tokens, _ = model.greedy_decode(source, lengths, max_len=8)
    has_eos = [e is not None for e in _first_eos(tokens)]
    assert exact_match(tokens, tokens).tolist() == has_eos


def test_exact_match_rejects_batch_mismatch():
    with pytest.raises(ValueError, match="batch"):
        exact_match(torch.tensor([[EOS]]), torch.tensor([[EOS], [EOS]]))


# ----------------------------------------------------------------------------------------------------------------
# Encoder


def test_encoder_against_its_gru_run_on_each_unpadded_sequence():
    torch.manual_seed(22)
    encoder = Encoder(SRC_V, 6, 8).double()
    source, lengths = _source([5, 2, 4, 1], seed=23, width=7)
    outputs, final = encoder(source, lengths)
    assert outputs.shape == (4, 7, 16) and final.shape == (4, 16)
    H = 8
    for b, n in enumerate(lengths.tolist()):
        assert (outputs[b, n:] == 0).all()
        # Independent truth: torch's GRU on the sequence alone, without packing or padding.
        alone, h_n = encoder.rnn(encoder.embedding(source[b : b + 1, :n]))
        torch.testing.assert_close(outputs[b, :n], alone[0], **TOL64)
        # The summary: forward half at the last real token, backward half at position 0.
        torch.testing.assert_close(final[b, :H], outputs[b, n - 1, :H], **TOL64)
        torch.testing.assert_close(final[b, H:], outputs[b, 0, H:], **TOL64)
        torch.testing.assert_close(final[b], torch.cat([h_n[0, 0], h_n[1, 0]]), **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# copy_sequences


def test_copy_sequences_layout():
    source, lengths, target_in, target_out = copy_sequences(50, 2, 6, vocab_size=4, seed=3)
    assert source.shape == (50, 6) and lengths.shape == (50,)
    assert target_in.shape == (50, 7) and target_out.shape == (50, 7)
    assert lengths.min() >= 2 and lengths.max() <= 6
    assert set(lengths.tolist()) == {2, 3, 4, 5, 6}  # every length turns up in 50 draws
    for b, n in enumerate(lengths.tolist()):
        seq = source[b, :n]
        assert ((seq >= 3) & (seq < 3 + 4)).all()
        assert (source[b, n:] == PAD).all()
        assert target_in[b].tolist() == [BOS, *seq.tolist()] + [PAD] * (6 - n)
        assert target_out[b].tolist() == [*seq.tolist(), EOS] + [PAD] * (6 - n)
    assert set(source[source != PAD].tolist()) == {3, 4, 5, 6}


def test_copy_sequences_is_deterministic_by_seed():
    a = copy_sequences(20, 1, 5, seed=7)
    b = copy_sequences(20, 1, 5, seed=7)
    c = copy_sequences(20, 1, 5, seed=8)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])


def test_copy_sequences_fixed_length_and_errors():
    source, lengths, _, target_out = copy_sequences(5, 3, 3, seed=0)
    assert (lengths == 3).all() and (target_out[:, 3] == EOS).all()
    with pytest.raises(ValueError, match="min_len"):
        copy_sequences(5, 4, 3)


# ----------------------------------------------------------------------------------------------------------------
# Errors


def test_make_seq2seq_rejects_unknown_attention():
    with pytest.raises(ValueError, match="attention"):
        make_seq2seq("dot", SRC_V, TGT_V)


@pytest.mark.parametrize("kind", KINDS)
def test_make_seq2seq_builds_the_right_decoder(kind):
    model = _model(kind)
    assert model.decoder.uses_attention == (kind != "none")


@pytest.mark.parametrize("call", ["forward", "greedy"])
def test_bad_inputs_are_rejected(call):
    model = _model("bahdanau")
    source, lengths = _source([3, 2])

    def run(src, lens):
        if call == "forward":
            return model(src, lens, torch.full((2, 2), BOS))
        return model.greedy_decode(src, lens, max_len=3)

    run(source, lengths)  # the valid call goes through
    too_big = source.clone()
    too_big[0, 0] = SRC_V
    negative = source.clone()
    negative[1, 0] = -1
    for bad in (too_big, negative):
        with pytest.raises(ValueError, match="source"):
            run(bad, lengths)
    for bad_lengths in (torch.tensor([3, 2, 1]), torch.tensor([[3, 2]]), torch.tensor([3])):
        with pytest.raises(ValueError, match="lengths"):
            run(source, bad_lengths)
    for bad_lengths in (torch.tensor([3, 0]), torch.tensor([4, 2])):  # 0, and longer than the source
        with pytest.raises(ValueError, match="lengths"):
            run(source, bad_lengths)
    with pytest.raises(TypeError, match="source"):
        run(source.double(), lengths)
    with pytest.raises(ValueError, match="source"):
        run(source[0], lengths)  # 1-D


def test_forward_rejects_bad_targets_and_greedy_bad_max_len():
    model = _model("luong")
    source, lengths = _source([3, 2])
    with pytest.raises(ValueError, match="target_in"):
        model(source, lengths, torch.full((2, 2), TGT_V))
    with pytest.raises(ValueError, match="batch"):
        model(source, lengths, torch.full((3, 2), BOS))
    with pytest.raises(TypeError, match="target_in"):
        model(source, lengths, torch.full((2, 2), float(BOS)))
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(source, lengths, max_len=0)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_decode_runs_in_eval_mode_and_gives_the_modes_back(kind):
    model = _model(kind, seed=5)
    source, lengths = _source([4, 2, 5], seed=6)
    expected, _ = model.greedy_decode(source, lengths, max_len=7)
    model.train()
    model.encoder.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    tokens, _ = model.greedy_decode(source, lengths, max_len=7)
    assert torch.equal(tokens, expected)
    assert {name: m.training for name, m in model.named_modules()} == modes
