"""Chapter 8's KV cache: MultiHeadAttention split into project_kv and attend (against its own forward, torch's
attention and the projections by hand), the positional offset, LayerKVCache and KVCache on their own, the decoder
layer, stack and model fed a few new positions at a time against one uncached pass under the causal mask (and the
layer against torch's), greedy decoding with and without the cache against a by-hand loop, and argument checks."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from seq2seq_inputs import random_source, random_target_in
from torch import nn

from attnlib.attention import MultiHeadAttention
from attnlib.data import CharVocab
from attnlib.efficient import KVCache, LayerKVCache
from attnlib.functional import causal_mask, padding_mask
from attnlib.positional import SinusoidalPositionalEncoding
from attnlib.transformer import TransformerDecoder, TransformerDecoderLayer, TransformerSeq2Seq

PAD, BOS, EOS = CharVocab.PAD, CharVocab.BOS, CharVocab.EOS
D, H, FF = 8, 2, 16  # the layers' size in the layer tests
SRC_V, TGT_V = 11, 13
MAX_LEN = 16  # the models' positional table
TOL64 = dict(atol=1e-10, rtol=1e-8)

# Ways to feed a target of 9 positions through a cache: one at a time, a prefill then one at a time, uneven
# chunks, and all at once.
CHUNKINGS = [[1] * 9, [4, 1, 1, 1, 1, 1], [3, 2, 1, 3], [9]]


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter (the LayerNorms' included) with random values drawn in float32."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float32))
    return module


def _chunks(sizes):
    """[3, 2, 4] -> [(0, 3), (3, 5), (5, 9)]: the positions each piece covers."""
    ends = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    return list(zip([0, *ends[:-1]], ends, strict=True))


# ----------------------------------------------------------------------------------------------------------------
# MultiHeadAttention: project_kv and attend


def test_project_kv_equals_the_projections_by_hand_split_per_head():
    torch.manual_seed(0)
    mha = _randomize(MultiHeadAttention(12, 3, kdim=5, vdim=7).double(), seed=1)
    key, value = _randn(2, 6, 5, seed=2), _randn(2, 6, 7, seed=3)
    k, v = mha.project_kv(key, value)
    assert k.shape == v.shape == (2, 3, 6, 4)
    hd = 4
    for h in range(3):  # head h owns the rows h*hd .. (h+1)*hd - 1 of W_K and W_V
        rows = slice(h * hd, (h + 1) * hd)
        expected_k = key @ mha.k_proj.weight[rows].T + mha.k_proj.bias[rows]
        expected_v = value @ mha.v_proj.weight[rows].T + mha.v_proj.bias[rows]
        torch.testing.assert_close(k[:, h], expected_k, **TOL64)
        torch.testing.assert_close(v[:, h], expected_v, **TOL64)


@pytest.mark.parametrize("need_weights", [True, False])
def test_attend_over_project_kv_equals_forward_and_torch(need_weights):
    torch.manual_seed(1)
    theirs = _randomize(nn.MultiheadAttention(D, H, batch_first=True, kdim=5, vdim=3).double(), seed=4)
    ours = MultiHeadAttention.from_torch(theirs)
    q, key, value = _randn(3, 4, D, seed=5), _randn(3, 6, 5, seed=6), _randn(3, 6, 3, seed=7)
    keep = padding_mask(torch.tensor([6, 2, 4]), 6)
    for mask, their_kw in (
        (None, {}),
        (causal_mask(4, 6), dict(attn_mask=~causal_mask(4, 6))),
        (keep[:, None, :], dict(key_padding_mask=~keep)),
    ):
        out, w = ours.attend(q, *ours.project_kv(key, value), mask=mask, need_weights=need_weights)
        ref_out, ref_w = ours(q, key, value, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(out, ref_out, **TOL64)
        their_out, their_w = theirs(q, key, value, average_attn_weights=False, **their_kw)
        torch.testing.assert_close(out, their_out, **TOL64)
        if need_weights:
            assert w.shape == (3, H, 4, 6)
            torch.testing.assert_close(w, ref_w, **TOL64)
            torch.testing.assert_close(w, their_w, **TOL64)
        else:
            assert w is None and ref_w is None


# ----------------------------------------------------------------------------------------------------------------
# The positional offset


def _sin_table(max_len, dim):
    """The sinusoidal table from the formula in plain Python (sine on even dimensions, cosine on odd ones)."""
    return torch.tensor(
        [
            [
                math.sin(p / 10000 ** (2 * (j // 2) / dim))
                if j % 2 == 0
                else math.cos(p / 10000 ** (2 * (j // 2) / dim))
                for j in range(dim)
            ]
            for p in range(max_len)
        ],
        dtype=torch.float64,
    )


@pytest.mark.parametrize(("a", "b"), [(0, 10), (0, 1), (3, 4), (2, 9), (9, 10), (5, 10)])
def test_positional_offset_gives_the_rows_of_the_whole_sequence(a, b):
    pe = SinusoidalPositionalEncoding(6, max_len=10)
    x = _randn(2, 10, 6, seed=8)
    torch.testing.assert_close(pe(x[:, a:b], offset=a), pe(x)[:, a:b], atol=0, rtol=0)
    zeros = torch.zeros(b - a, 6, dtype=torch.float64)  # also without a batch dimension
    torch.testing.assert_close(pe(zeros, offset=a), _sin_table(10, 6)[a:b], atol=1e-6, rtol=0)  # a float32 table
    assert not torch.allclose(pe(zeros, offset=a), pe(zeros)) or a == 0


def test_positional_offset_errors_name_the_argument():
    pe = SinusoidalPositionalEncoding(6, max_len=10)
    x = torch.zeros(1, 3, 6)
    for bad in (1.0, True, "1", None, torch.tensor(1)):
        with pytest.raises(TypeError, match="offset"):
            pe(x, offset=bad)
    with pytest.raises(ValueError, match="offset"):
        pe(x, offset=-1)
    for offset, length in ((8, 3), (10, 1), (1, 10)):
        with pytest.raises(ValueError, match="max_len"):
            pe(torch.zeros(1, length, 6), offset=offset)
    assert pe(x, offset=7).shape == (1, 3, 6)  # the last positions fit exactly


# ----------------------------------------------------------------------------------------------------------------
# LayerKVCache and KVCache on their own


def test_layer_cache_append_returns_every_position_so_far_in_one_buffer():
    cache = LayerKVCache(max_len=10)
    assert cache.length == 0 and cache.keys is None and cache.memory is None
    ks, vs, first = [], [], None
    for i, n in enumerate([3, 1, 4, 2]):
        k, v = _randn(2, 3, n, 5, seed=10 + i), _randn(2, 3, n, 5, seed=20 + i)
        ks.append(k), vs.append(v)
        all_k, all_v = cache.append(k, v)
        assert cache.length == sum(x.shape[2] for x in ks)
        assert torch.equal(all_k, torch.cat(ks, dim=2)) and torch.equal(all_v, torch.cat(vs, dim=2))
        if first is None:
            first = (cache.keys.data_ptr(), cache.values.data_ptr(), all_k, all_v)
            assert cache.keys.shape == cache.values.shape == (2, 3, 10, 5)
        # allocated once: the same buffers, and what append returns are views of them
        assert (cache.keys.data_ptr(), cache.values.data_ptr()) == first[:2]
        assert all_k.data_ptr() == cache.keys.data_ptr() and all_v.data_ptr() == cache.values.data_ptr()
    assert cache.length == 10
    torch.testing.assert_close(first[2], ks[0], atol=0, rtol=0)  # later appends leave earlier positions alone
    torch.testing.assert_close(first[3], vs[0], atol=0, rtol=0)
    assert cache.keys.dtype == torch.float64
    assert "length=10" in repr(cache) and "max_len=10" in repr(cache)


def test_layer_cache_projects_the_memory_once():
    cache = LayerKVCache(max_len=4)
    calls = []
    pair = (_randn(1, 2, 3, 4, seed=1), _randn(1, 2, 3, 4, seed=2))

    def project():
        calls.append(1)
        return pair

    memory = _randn(1, 3, 8, seed=3)
    for _ in range(3):
        k, v = cache.memory_kv(memory, project)
        assert k is pair[0] and v is pair[1]
    assert len(calls) == 1
    assert cache.memory_kv(memory, lambda: pytest.fail("projected again")) == pair
    with pytest.raises(ValueError, match="memory"):  # another source: the stored pair would be wrong for it
        cache.memory_kv(memory.clone(), project)


def test_layer_cache_errors_name_the_argument_and_leave_the_cache_unchanged():
    for bad in (0, -2):
        with pytest.raises(ValueError, match="max_len"):
            LayerKVCache(bad)
    for bad in (2.0, True, "3", None):
        with pytest.raises(TypeError, match="max_len"):
            LayerKVCache(bad)
    cache = LayerKVCache(max_len=5)
    k, v = _randn(2, 3, 2, 4, seed=1), _randn(2, 3, 2, 4, seed=2)
    with pytest.raises(TypeError, match="k must"):
        cache.append(k.tolist(), v)
    with pytest.raises(TypeError, match="v must"):
        cache.append(k, None)
    with pytest.raises(ValueError, match="k must"):
        cache.append(k[0], v[0])
    with pytest.raises(ValueError, match="v must"):
        cache.append(k, v.reshape(2, 3, 8))
    with pytest.raises(ValueError, match="k and v"):
        cache.append(k, v[:, :, :1])
    assert cache.length == 0
    cache.append(k, v)
    before = cache.keys.clone(), cache.values.clone()
    for shape in ((1, 3, 1, 4), (2, 2, 1, 4), (2, 3, 1, 5)):  # batch, heads, head_dim other than the cached ones
        with pytest.raises(ValueError, match="k has shape"):
            cache.append(_randn(*shape), _randn(*shape))
    with pytest.raises(ValueError, match="max_len"):  # 2 + 4 > 5
        cache.append(_randn(2, 3, 4, 4), _randn(2, 3, 4, 4))
    assert cache.length == 2
    assert torch.equal(cache.keys[:, :, :2], before[0][:, :, :2])
    assert torch.equal(cache.values[:, :, :2], before[1][:, :, :2])
    cache.append(_randn(2, 3, 3, 4), _randn(2, 3, 3, 4))  # 2 + 3 = 5 fits exactly
    assert cache.length == 5
    with pytest.raises(ValueError, match="max_len"):
        cache.append(_randn(2, 3, 1, 4), _randn(2, 3, 1, 4))


def test_layer_cache_refuses_gradients_other_dtypes_and_a_failed_first_append():
    cache = LayerKVCache(max_len=3)
    k = _randn(1, 2, 1, 4, seed=1)
    with pytest.raises(RuntimeError, match="no_grad"):  # in-place writes would break earlier steps' gradients
        cache.append(k.clone().requires_grad_(), k)
    with pytest.raises(ValueError, match="do not fit"):
        cache.append(_randn(1, 2, 5, 4, seed=2), _randn(1, 2, 5, 4, seed=3))
    assert cache.keys is None and cache.length == 0  # the failed first append allocated nothing
    cache.append(_randn(3, 2, 1, 4, seed=4), _randn(3, 2, 1, 4, seed=5))  # so another batch size still fits
    with pytest.raises(ValueError, match="float32"):  # float32 would silently round what the cache holds
        cache.append(k.float(), k.float())
    with pytest.raises(ValueError, match="k and v"):
        cache.append(_randn(3, 2, 1, 4, seed=6), _randn(3, 2, 1, 4, seed=7).float())
    assert cache.length == 1


def test_kv_cache_layers_length_and_indexing():
    cache = KVCache(3, max_len=6)
    assert len(cache) == 3 and cache.length == 0
    assert len({id(layer) for layer in cache.layers}) == 3  # one LayerKVCache per layer, not one shared
    for i in range(3):
        assert isinstance(cache[i], LayerKVCache) and cache[i] is cache.layers[i] and cache[i].max_len == 6
    assert cache[-1] is cache.layers[2]
    with pytest.raises(IndexError):
        cache[3]
    for layer in cache.layers:
        layer.append(_randn(1, 2, 4, 3), _randn(1, 2, 4, 3))
    assert cache.length == 4 and "length=4" in repr(cache)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_layers"):
            KVCache(bad, 6)
    for bad in (2.0, True):
        with pytest.raises(TypeError, match="num_layers"):
            KVCache(bad, 6)
    with pytest.raises(ValueError, match="max_len"):
        KVCache(2, 0)
    with pytest.raises(TypeError, match="max_len"):
        KVCache(2, 6.0)


# ----------------------------------------------------------------------------------------------------------------
# The decoder layer and stack with a cache


def _torch_decoder_layer(norm_first, seed=0):
    torch.manual_seed(seed)
    layer = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first)
    return _randomize(layer, seed).double().eval()


@pytest.mark.parametrize("sizes", [[1] * 7, [3, 1, 1, 1, 1], [2, 4, 1], [7]])
@pytest.mark.parametrize("norm_first", [False, True])
@torch.no_grad()
def test_decoder_layer_with_cache_equals_uncached_and_torch(norm_first, sizes):
    theirs = _torch_decoder_layer(norm_first, seed=1)
    ours = TransformerDecoderLayer.from_torch(theirs).eval()
    x, memory = _randn(3, 7, D, seed=2), _randn(3, 5, D, seed=3)
    keep = padding_mask(torch.tensor([5, 2, 4]), 5)
    causal = causal_mask(7)
    ref = theirs(x, memory, tgt_mask=~causal, memory_key_padding_mask=~keep)
    full, full_self, full_cross = ours(x, memory, mask=causal, memory_mask=keep[:, None, :], need_weights=True)
    torch.testing.assert_close(full, ref, **TOL64)
    for need_weights in (True, False):
        cache = LayerKVCache(max_len=9)  # room to spare
        outs = []
        for a, b in _chunks(sizes):
            out, s, c = ours(x[:, a:b], memory, memory_mask=keep[:, None, :], need_weights=need_weights, cache=cache)
            assert out.shape == (3, b - a, D) and cache.length == b
            outs.append(out)
            if need_weights:
                assert s.shape == (3, H, b - a, b) and c.shape == (3, H, b - a, 5)
                torch.testing.assert_close(s, full_self[:, :, a:b, :b], **TOL64)
                torch.testing.assert_close(c, full_cross[:, :, a:b], **TOL64)
            else:
                assert s is None and c is None
        torch.testing.assert_close(torch.cat(outs, dim=1), ref, **TOL64)
    # what the cache holds: the self-attention's keys and values of its input, and the memory's projected once
    h = ours.norm1(x) if norm_first else x
    k, v = ours.self_attn.project_kv(h, h)
    torch.testing.assert_close(cache.keys[:, :, :7], k, **TOL64)
    torch.testing.assert_close(cache.values[:, :, :7], v, **TOL64)
    mk, mv = ours.multihead_attn.project_kv(memory, memory)
    torch.testing.assert_close(cache.memory[0], mk, **TOL64)
    torch.testing.assert_close(cache.memory[1], mv, **TOL64)


@pytest.mark.parametrize("norm_first", [False, True])
@torch.no_grad()
def test_decoder_stack_with_cache_equals_uncached(norm_first):
    torch.manual_seed(2)
    dec = _randomize(TransformerDecoder(3, D, H, FF, dropout=0.0, norm_first=norm_first), seed=2).double().eval()
    x, memory = _randn(2, 6, D, seed=4), _randn(2, 4, D, seed=5)
    memory_mask = padding_mask(torch.tensor([4, 1]), 4)[:, None, :]
    full, full_self, full_cross = dec(x, memory, mask=causal_mask(6), memory_mask=memory_mask, need_weights=True)
    cache = KVCache(3, max_len=6)
    outs = []
    for a, b in _chunks([2, 1, 3]):
        out, s, c = dec(x[:, a:b], memory, memory_mask=memory_mask, need_weights=True, cache=cache)
        outs.append(out)
        assert cache.length == b and all(layer.length == b for layer in cache.layers)
        for i in range(3):
            torch.testing.assert_close(s[i], full_self[i][:, :, a:b, :b], **TOL64)
            torch.testing.assert_close(c[i], full_cross[i][:, :, a:b], **TOL64)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# The encoder-decoder model with a cache


@functools.cache
def _model(norm_first: bool = True, layers: int = 3, seed: int = 0) -> TransformerSeq2Seq:
    """An untrained model, float64, eval mode, with the generator's bias at 0: then the argmax depends on the
    decoder's output rather than on fixed biases, and greedy decoding writes varied tokens. Do not modify it:
    it is shared (copy it first)."""
    torch.manual_seed(seed)
    model = TransformerSeq2Seq(
        SRC_V,
        TGT_V,
        d_model=16,
        nhead=2,
        num_encoder_layers=2,
        num_decoder_layers=layers,
        dim_feedforward=32,
        dropout=0.0,
        norm_first=norm_first,
        max_len=MAX_LEN,
    )
    with torch.no_grad():
        model.generator.bias.zero_()
    return model.double().eval()


_source = functools.partial(random_source, vocab_size=SRC_V)
_target_in = functools.partial(random_target_in, vocab_size=TGT_V)


def _decode_in_chunks(model, target_in, memory, memory_mask, sizes, need_weights=False):
    """Feed ``target_in`` through a fresh cache, ``sizes[i]`` tokens at a time: (logits, [(a, b, self, cross)])."""
    cache = KVCache(len(model.decoder.layers), MAX_LEN)
    logits, weights = [], []
    for a, b in _chunks(sizes):
        out, s, c = model.decode(target_in[:, a:b], memory, memory_mask, need_weights=need_weights, cache=cache)
        assert out.shape == (target_in.shape[0], b - a, TGT_V) and cache.length == b
        logits.append(out)
        weights.append((a, b, s, c))
    return torch.cat(logits, dim=1), weights


@pytest.mark.parametrize("sizes", CHUNKINGS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_decode_with_cache_equals_one_uncached_pass(norm_first, sizes):
    model = _model(norm_first)
    source, lengths = _source([6, 2, 4], seed=1)
    target_in = _target_in(3, 9, seed=2)
    with torch.no_grad():
        memory, memory_mask, _ = model.encode(source, lengths)
        expected, full_self, full_cross = model.decode(target_in, memory, memory_mask, need_weights=True)
        logits, _ = _decode_in_chunks(model, target_in, memory, memory_mask, sizes)
        torch.testing.assert_close(logits, expected, **TOL64)
        logits_w, weights = _decode_in_chunks(model, target_in, memory, memory_mask, sizes, need_weights=True)
    torch.testing.assert_close(logits_w, expected, **TOL64)
    for a, b, s, c in weights:
        assert len(s) == len(c) == 3
        for layer in range(3):
            assert s[layer].shape == (3, 2, b - a, b) and c[layer].shape == (3, 2, b - a, 6)
            torch.testing.assert_close(s[layer], full_self[layer][:, :, a:b, :b], **TOL64)
            torch.testing.assert_close(c[layer], full_cross[layer][:, :, a:b], **TOL64)
            assert torch.all(full_self[layer][:, :, a:b, b:] == 0)  # the uncached rows see nothing beyond b either
            assert torch.all(c[layer][1, :, :, 2:] == 0)  # the padded source of row 1


def test_decode_with_cache_reaches_the_last_position_of_the_table():
    model = _model(False)
    source, lengths = _source([5, 3], seed=3)
    target_in = _target_in(2, MAX_LEN, seed=4)
    with torch.no_grad():
        memory, memory_mask, _ = model.encode(source, lengths)
        expected, _, _ = model.decode(target_in, memory, memory_mask)
        logits, _ = _decode_in_chunks(model, target_in, memory, memory_mask, [MAX_LEN - 1, 1])
    torch.testing.assert_close(logits, expected, **TOL64)


@settings(max_examples=15, deadline=None)
@given(norm_first=st.booleans(), steps=st.integers(1, MAX_LEN), seed=st.integers(0, 1000), data=st.data())
def test_any_chunking_through_the_cache_gives_the_uncached_logits(norm_first, steps, seed, data):
    model = _model(norm_first)
    cuts = sorted(data.draw(st.sets(st.integers(1, steps - 1), max_size=steps - 1), label="cuts")) if steps > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, steps], strict=True)]
    source, lengths = _source([5, 1, 3], seed=seed)
    target_in = _target_in(3, steps, seed=seed + 1)
    with torch.no_grad():
        memory, memory_mask, _ = model.encode(source, lengths)
        expected, _, _ = model.decode(target_in, memory, memory_mask)
        logits, _ = _decode_in_chunks(model, target_in, memory, memory_mask, sizes)
    torch.testing.assert_close(logits, expected, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# Greedy decoding with and without the cache


def _with_eos_bias(model, eos_bias):
    forced = copy.deepcopy(model)
    with torch.no_grad():
        forced.generator.bias[EOS] = eos_bias
    return forced


@torch.no_grad()
def _greedy_by_hand(model, source, lengths, max_len):
    """Greedy decoding written out: re-read the whole prefix under the causal mask at every step, PAD after EOS."""
    memory, memory_mask, _ = model.encode(source, lengths)
    prefix = torch.full((source.shape[0], 1), BOS)
    rows = [[] for _ in range(source.shape[0])]
    for _ in range(max_len):
        logits, _, _ = model.decode(prefix, memory, memory_mask)
        nxt = []
        for b, row in enumerate(rows):
            row.append(PAD if EOS in row else int(logits[b, -1].argmax()))
            nxt.append(row[-1])
        prefix = torch.cat([prefix, torch.tensor(nxt)[:, None]], dim=1)
        if all(EOS in row for row in rows):
            break
    return torch.tensor(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("norm_first", [False, True])
def test_greedy_decode_with_cache_equals_without_and_by_hand(norm_first, seed):
    model = _with_eos_bias(_model(norm_first, seed=seed), -1e4)  # EOS never wins: run to max_len
    source, lengths = _source([6, 2, 4, 5], seed=seed)
    cached, maps_cached = model.greedy_decode(source, lengths, max_len=14, need_weights=True)
    plain, maps_plain = model.greedy_decode(source, lengths, max_len=14, need_weights=True, use_cache=False)
    assert cached.shape == (4, 14) and not torch.any(cached == EOS)
    assert torch.equal(cached, plain)
    assert torch.equal(cached, _greedy_by_hand(model, source, lengths, 14))
    assert len(set(cached.flatten().tolist())) >= 4 and len({tuple(r) for r in cached.tolist()}) > 1  # premise
    assert set(maps_cached) == set(maps_plain) == {"encoder", "decoder", "cross"}
    for key in maps_cached:
        for a, b in zip(maps_cached[key], maps_plain[key], strict=True):
            assert torch.equal(a, b)
    assert torch.equal(cached, model.greedy_decode(source, lengths, max_len=14)[0])  # need_weights changes nothing


@pytest.mark.parametrize(
    ("norm_first", "eos_bias", "all_end"), [(False, 1.0, True), (True, 1.0, True), (True, 0.0, False)]
)
def test_greedy_decode_stops_at_eos_the_same_with_and_without_cache(norm_first, eos_bias, all_end):
    model = _with_eos_bias(_model(norm_first, seed=2), eos_bias)
    source, lengths = _source([6, 2, 4, 5], seed=2)
    cached, _ = model.greedy_decode(source, lengths, max_len=14)
    plain, _ = model.greedy_decode(source, lengths, max_len=14, use_cache=False)
    assert cached.shape == plain.shape and torch.equal(cached, plain)
    assert torch.equal(cached, _greedy_by_hand(model, source, lengths, 14))
    rows = cached.tolist()
    eos = [row.index(EOS) if EOS in row else None for row in rows]
    assert len(set(eos)) > 1, "want rows that end at different steps"  # the premise
    if all_end:
        assert None not in eos and cached.shape[1] == max(eos) + 1 < 14  # stopped early, with the last row's EOS
    else:
        assert None in eos and any(e is not None for e in eos) and cached.shape[1] == 14
    for row, e in zip(rows, eos, strict=True):
        if e is not None:
            assert all(tok == PAD for tok in row[e + 1 :])


def _counting(f, calls, i):
    def wrapper(*args, **kwargs):
        calls.append(i)
        return f(*args, **kwargs)

    return wrapper


def test_greedy_decode_feeds_one_token_per_step_and_projects_the_memory_once():
    model = _with_eos_bias(_model(True), -1e4)  # a copy
    source, lengths = _source([3, 5], seed=4)
    widths, caches = [], []

    def record(module, args, kwargs, output):
        widths.append(args[0].shape[1])
        caches.append(kwargs.get("cache"))

    handle = model.decoder.register_forward_hook(record, with_kwargs=True)
    memory_calls, self_calls = [], []
    for i, layer in enumerate(model.decoder.layers):
        for attn, calls in ((layer.multihead_attn, memory_calls), (layer.self_attn, self_calls)):
            attn.project_kv = _counting(attn.project_kv, calls, i)  # an instance attribute: the model is a copy
    tokens, _ = model.greedy_decode(source, lengths, max_len=10)
    assert tokens.shape == (2, 10)
    assert widths == [1] * 10  # the newest token alone, BOS first
    assert all(c is caches[0] for c in caches) and isinstance(caches[0], KVCache)
    assert caches[0].length == 10 and caches[0][0].max_len == 10
    assert sorted(memory_calls) == [0, 1, 2]  # each layer projects the memory once
    assert sorted(self_calls) == sorted(list(range(3)) * 10)  # and its one new position at each step
    widths.clear(), caches.clear()
    plain, _ = model.greedy_decode(source, lengths, max_len=10, use_cache=False)
    handle.remove()
    assert widths == list(range(1, 11)) and caches == [None] * 10  # the whole prefix at every step
    assert torch.equal(plain, tokens)


# ----------------------------------------------------------------------------------------------------------------
# Errors


def test_cache_argument_errors():
    layer = TransformerDecoderLayer(D, H, FF, dropout=0.0).double()
    x, memory = _randn(2, 3, D), _randn(2, 4, D)
    with pytest.raises(ValueError, match="mask"):
        layer(x, memory, mask=causal_mask(3), cache=LayerKVCache(5))
    with pytest.raises(TypeError, match="cache"):
        layer(x, memory, cache=KVCache(1, 5))
    dec = TransformerDecoder(2, D, H, FF, dropout=0.0).double()
    with pytest.raises(TypeError, match="cache"):
        dec(x, memory, cache=LayerKVCache(5))
    for n in (1, 3):
        with pytest.raises(ValueError, match="layers"):
            dec(x, memory, cache=KVCache(n, 5))
    model = _model(True)
    source, lengths = _source([4, 2])
    with torch.no_grad():
        memory, memory_mask, _ = model.encode(source, lengths)
        with pytest.raises(TypeError, match="cache"):
            model.decode(_target_in(2, 1), memory, memory_mask, cache=LayerKVCache(MAX_LEN))
        with pytest.raises(ValueError, match="layers"):
            model.decode(_target_in(2, 1), memory, memory_mask, cache=KVCache(2, MAX_LEN))
        cache = KVCache(3, MAX_LEN + 4)  # the cache has room; the model's positional table does not
        model.decode(_target_in(2, MAX_LEN - 2), memory, memory_mask, cache=cache)
        with pytest.raises(ValueError, match="max_len"):
            model.decode(_target_in(2, 3), memory, memory_mask, cache=cache)
        assert cache.length == MAX_LEN - 2  # nothing appended by the failed call
        model.decode(_target_in(2, 2), memory, memory_mask, cache=cache)  # the last two positions still fit
        assert cache.length == MAX_LEN
        with pytest.raises(ValueError, match="max_len"):
            model.decode(_target_in(2, 1), memory, memory_mask, cache=cache)
        small = KVCache(3, 4)  # and the other way round: the cache is full first
        model.decode(_target_in(2, 4), memory, memory_mask, cache=small)
        with pytest.raises(ValueError, match="max_len"):
            model.decode(_target_in(2, 1), memory, memory_mask, cache=small)


# Decoding runs in eval mode, whatever mode the caller left the model in, and gives the modes back.


def test_greedy_decode_in_train_mode_is_the_eval_mode_decode_and_restores_every_mode():
    torch.manual_seed(7)
    model = TransformerSeq2Seq(SRC_V, TGT_V, d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                               dim_feedforward=32, dropout=0.5, max_len=MAX_LEN).double()
    with torch.no_grad():
        model.generator.bias[EOS] = -1e4  # run to max_len, so that every step counts
    source, lengths = _source([6, 2, 4, 5], seed=3)
    expected, _ = model.eval().greedy_decode(source, lengths, max_len=12)
    model.train()
    model.encoder.layers[0].eval()  # a caller's own mix of modes must come back as it was
    modes = {name: m.training for name, m in model.named_modules()}
    cached, _ = model.greedy_decode(source, lengths, max_len=12)
    plain, _ = model.greedy_decode(source, lengths, max_len=12, use_cache=False)
    assert torch.equal(cached, expected) and torch.equal(plain, expected)
    assert {name: m.training for name, m in model.named_modules()} == modes
    # The premise: in train mode dropout does change what the decoder computes.
    logits_a, _ = model(source, lengths, expected[:, :5])
    logits_b, _ = model(source, lengths, expected[:, :5])
    assert not torch.allclose(logits_a, logits_b)
