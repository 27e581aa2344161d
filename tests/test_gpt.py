"""Chapter 9's GPT: grouped-query attention against MultiHeadAttention with copied (and, for shared heads, repeated)
weights, the model's causality and attention weights for every kind of position, the KV cache against full passes
and uncached generation, greedy generation against an argmax loop, sampling (temperature, top-k, top-p, seeds),
eos, train/eval modes, the size of the cache, and argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlib.attention import MultiHeadAttention
from attnlib.efficient import KVCache, LayerKVCache
from attnlib.gpt import GPT, POSITIONAL_ENCODINGS, GroupedQueryAttention, kv_cache_bytes, sample_next

V, D, H, LAYERS, MAX_LEN = 13, 16, 4, 2, 24  # a tiny model: head_dim 4
TOL64 = dict(atol=1e-10, rtol=1e-8)


def _gpt(positional="rope", num_kv_heads=None, seed=0, dropout=0.0, **kwargs) -> GPT:
    torch.manual_seed(seed)
    settings = dict(d_model=D, nhead=H, num_layers=LAYERS, max_len=MAX_LEN) | kwargs
    return GPT(V, num_kv_heads=num_kv_heads, positional=positional, dropout=dropout, **settings).double().eval()


def _tokens(b, t, seed=0) -> torch.Tensor:
    return torch.randint(V, (b, t), generator=torch.Generator().manual_seed(seed))


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# Grouped-query attention


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_gqa_parameter_count(num_kv_heads):
    d, h, hd = 24, 4, 6
    layer = GroupedQueryAttention(d, h, num_kv_heads)
    kv = num_kv_heads * hd
    expected = 2 * (d * d + d) + 2 * (d * kv + kv)  # q and out projections, then the shrunken k and v
    assert sum(p.numel() for p in layer.parameters()) == expected
    assert layer.k_proj.out_features == layer.v_proj.out_features == kv


def _mha_with(gqa: GroupedQueryAttention) -> MultiHeadAttention:
    """A MultiHeadAttention whose head h has the keys and values of the GQA's kv head h // group: the
    repetition done in the weights instead of on the keys and values."""
    mha = MultiHeadAttention(gqa.d_model, gqa.nhead).double()
    hd, g = gqa.head_dim, gqa.group
    rows = torch.cat([torch.arange(j * hd, (j + 1) * hd) for h in range(gqa.nhead) for j in [h // g]])  # (d_model,)
    with torch.no_grad():
        for ours, theirs in ((mha.q_proj, gqa.q_proj), (mha.out_proj, gqa.out_proj)):
            ours.load_state_dict(theirs.state_dict())
        for ours, theirs in ((mha.k_proj, gqa.k_proj), (mha.v_proj, gqa.v_proj)):
            ours.weight.copy_(theirs.weight[rows])
            ours.bias.copy_(theirs.bias[rows])
    return mha


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("need_weights", [True, False])
def test_gqa_equals_multihead_attention_with_repeated_key_value_weights(num_kv_heads, need_weights):
    torch.manual_seed(1)
    gqa = GroupedQueryAttention(D, H, num_kv_heads).double()
    mha = _mha_with(gqa)
    if num_kv_heads == H:  # no repetition: the weights are copied as they are
        assert torch.equal(mha.k_proj.weight, gqa.k_proj.weight)
    x = _randn(3, 7, D, seed=2)
    out, w = gqa(x, need_weights=need_weights)
    ref_out, ref_w = mha(x, x, x, need_weights=need_weights, is_causal=True)
    torch.testing.assert_close(out, ref_out, **TOL64)
    if need_weights:
        assert w.shape == (3, H, 7, 7)
        torch.testing.assert_close(w, ref_w, **TOL64)
    else:
        assert w is None


def test_gqa_query_heads_of_one_group_share_keys():
    # with one kv head (multi-query), two query heads with the same W_Q rows attend identically
    torch.manual_seed(2)
    gqa = GroupedQueryAttention(D, H, 1).double()
    with torch.no_grad():
        gqa.q_proj.weight[4:8] = gqa.q_proj.weight[0:4]
        gqa.q_proj.bias[4:8] = gqa.q_proj.bias[0:4]
    _, w = gqa(_randn(2, 5, D, seed=3), need_weights=True)
    torch.testing.assert_close(w[:, 1], w[:, 0], **TOL64)
    assert not torch.allclose(w[:, 2], w[:, 0])


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_gqa_cache_stores_the_kv_heads_only_and_matches_one_pass(num_kv_heads):
    torch.manual_seed(3)
    gqa = GroupedQueryAttention(D, H, num_kv_heads, rotary=True).double()
    x = _randn(2, 9, D, seed=4)
    full, full_w = gqa(x, need_weights=True)
    cache = LayerKVCache(9)
    with torch.no_grad():
        for a, b in ((0, 4), (4, 5), (5, 7), (7, 9)):
            out, w = gqa(x[:, a:b], need_weights=True, cache=cache)
            torch.testing.assert_close(out, full[:, a:b], **TOL64)
            torch.testing.assert_close(w, full_w[:, :, a:b, :b], **TOL64)
    assert cache.keys.shape == cache.values.shape == (2, num_kv_heads, 9, D // H)


# ----------------------------------------------------------------------------------------------------------------
# The model


def test_defaults_settings_and_tied_head():
    model = GPT(V)
    assert (model.vocab_size, model.d_model, model.nhead, model.num_layers) == (V, 64, 4, 2)
    assert (model.num_kv_heads, model.max_len, model.positional, model.dim_feedforward) == (4, 128, "rope", 256)
    assert model.head.weight is model.token_embedding.weight  # weight tying
    assert model.head.bias is None
    # the shared matrix is one parameter, counted once
    assert sum(p is model.token_embedding.weight for p in model.parameters()) == 1
    small = GPT(V, d_model=D, nhead=H, num_kv_heads=1, dim_feedforward=8)
    assert small.num_kv_heads == 1 and small.blocks[0].ff.linear1.out_features == 8
    assert small.blocks[0].attn.k_proj.out_features == D // H


@pytest.mark.parametrize("positional", POSITIONAL_ENCODINGS)
def test_positions_are_stored_as_asked(positional):
    model = _gpt(positional)
    assert (model.position_embedding is not None) == (positional == "learned")
    assert (model.pe is not None) == (positional == "sinusoidal")
    assert all(block.attn.rotary == (positional == "rope") for block in model.blocks)
    if positional == "sinusoidal":
        assert "pe" not in model.state_dict()  # rebuilt from the settings, not saved


@pytest.mark.parametrize("num_kv_heads", [4, 1])
@pytest.mark.parametrize("positional", POSITIONAL_ENCODINGS)
def test_changing_token_t_changes_no_logit_before_t(positional, num_kv_heads):
    model = _gpt(positional, num_kv_heads)
    tokens = _tokens(2, 10, seed=1)
    logits, _ = model(tokens)
    assert logits.shape == (2, 10, V)
    for t in (0, 4, 9):
        changed = tokens.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        other, _ = model(changed)
        torch.testing.assert_close(other[:, :t], logits[:, :t], atol=1e-12, rtol=0)
        assert not torch.allclose(other[:, t], logits[:, t])  # the changed position does see its token


@pytest.mark.parametrize("positional", ["rope", "learned", "sinusoidal"])
def test_positions_matter_unless_there_are_none(positional):
    # In one layer, the last position of a sequence and of the sequence with the tokens before it shuffled reads the
    # same token and attends over the same set: only positions tell them apart. (With more layers the causal mask
    # alone lets a model infer some order.)
    tokens, shuffled = torch.tensor([[3, 5, 7, 9, 11]]), torch.tensor([[9, 3, 7, 5, 11]])
    for kind, differ in ((positional, True), ("none", False)):
        model = _gpt(kind, num_layers=1)
        a, _ = model(tokens)
        b, _ = model(shuffled)
        assert torch.allclose(a[:, -1], b[:, -1], atol=1e-10) is not differ


@pytest.mark.parametrize("positional", POSITIONAL_ENCODINGS)
def test_weights_are_causal_rows_summing_to_one(positional):
    model = _gpt(positional, num_kv_heads=2)
    tokens = _tokens(3, 6, seed=2)
    logits, weights = model(tokens, need_weights=True)
    plain, none = model(tokens)
    assert none is None
    torch.testing.assert_close(logits, plain, **TOL64)  # the weights change nothing computed
    assert len(weights) == LAYERS
    above = ~torch.ones(6, 6, dtype=torch.bool).tril()
    for w in weights:
        assert w.shape == (3, H, 6, 6)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, H, 6, dtype=torch.float64), **TOL64)
        assert torch.all(w[..., above] == 0)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("positional", POSITIONAL_ENCODINGS)
@pytest.mark.parametrize("sizes", [[1] * 10, [4, 1, 1, 1, 1, 1, 1], [3, 2, 5], [10]])
def test_cached_forward_gives_the_logits_of_one_pass(positional, num_kv_heads, sizes):
    model = _gpt(positional, num_kv_heads)
    tokens = _tokens(2, 10, seed=3)
    full, full_w = model(tokens, need_weights=True)
    cache = KVCache(LAYERS, 10)
    start = 0
    with torch.no_grad():
        for n in sizes:
            logits, weights = model(tokens[:, start : start + n], need_weights=True, cache=cache)
            torch.testing.assert_close(logits, full[:, start : start + n], **TOL64)
            for w, ref in zip(weights, full_w, strict=True):
                torch.testing.assert_close(w, ref[:, :, start : start + n, : start + n], **TOL64)
            start += n
    assert cache.length == 10


# ----------------------------------------------------------------------------------------------------------------
# Generation


def test_greedy_generate_equals_an_argmax_loop():
    model = _gpt("rope", num_kv_heads=2)
    prompt = _tokens(3, 4, seed=4)
    expected = prompt
    for _ in range(8):
        logits, _ = model(expected)
        expected = torch.cat([expected, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    for use_cache in (True, False):
        out = model.generate(prompt, 8, temperature=0.0, use_cache=use_cache)
        assert out.shape == (3, 12) and out.dtype == torch.long
        assert torch.equal(out, expected)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("positional", ["rope", "learned", "sinusoidal"])
def test_generate_with_cache_equals_without(positional, num_kv_heads):
    model = _gpt(positional, num_kv_heads, seed=5)
    prompt = _tokens(3, 5, seed=5)
    greedy = model.generate(prompt, 12, temperature=0, use_cache=True)
    assert torch.equal(greedy, model.generate(prompt, 12, temperature=0, use_cache=False))
    for kwargs in (dict(), dict(temperature=1.5, top_k=6, top_p=0.9)):
        cached = model.generate(prompt, 12, generator=_gen(7), **kwargs)
        plain = model.generate(prompt, 12, generator=_gen(7), use_cache=False, **kwargs)
        assert torch.equal(cached, plain)
        assert torch.equal(cached[:, :5], prompt)


def test_generate_feeds_the_prompt_once_then_one_token_per_step(monkeypatch):
    model = _gpt("rope")
    lengths = []
    forward = GPT.forward

    def spy(self, tokens, *args, **kwargs):
        lengths.append(tokens.shape[1])
        return forward(self, tokens, *args, **kwargs)

    monkeypatch.setattr(GPT, "forward", spy)
    model.generate(_tokens(2, 5), 4, temperature=0)
    assert lengths == [5, 1, 1, 1]
    lengths.clear()
    model.generate(_tokens(2, 5), 4, temperature=0, use_cache=False)
    assert lengths == [5, 6, 7, 8]


def test_generate_zero_new_tokens_and_up_to_max_len():
    model = _gpt()
    prompt = _tokens(2, 3).int()
    out = model.generate(prompt, 0)
    assert torch.equal(out, prompt.long()) and out.dtype == torch.long
    assert model.generate(prompt, MAX_LEN - 3, temperature=0).shape == (2, MAX_LEN)


def test_same_seed_same_samples():
    model = _gpt()
    prompt = _tokens(4, 3, seed=6)
    a = model.generate(prompt, 10, generator=_gen(11))
    b = model.generate(prompt, 10, generator=_gen(11))
    c = model.generate(prompt, 10, generator=_gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_generate_restores_train_and_eval_modes():
    model = _gpt(dropout=0.5)
    prompt = _tokens(2, 4, seed=7)
    expected = model.eval().generate(prompt, 8, temperature=0)
    for mode in ("train", "eval", "mixed"):
        model.train(mode != "eval")
        if mode == "mixed":
            model.blocks[1].eval()  # a caller's own mix of modes must come back as it was
        modes = {name: m.training for name, m in model.named_modules()}
        assert torch.equal(model.generate(prompt, 8, temperature=0), expected)
        assert torch.equal(model.generate(prompt, 8, temperature=0, use_cache=False), expected)
        assert {name: m.training for name, m in model.named_modules()} == modes
    model.train()
    with pytest.raises(ValueError):
        model.generate(prompt, 8, top_p=0.0)
    assert model.training and all(m.training for m in model.modules())
    # the premise: in train mode dropout does change the logits
    a, _ = model(prompt)
    b, _ = model(prompt)
    assert not torch.allclose(a, b)


def test_generate_restores_the_mode_when_it_fails_inside(monkeypatch):
    model = _gpt().train()

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr("attnlib.gpt.sample_next", broken)
    with pytest.raises(RuntimeError, match="broken"):
        model.generate(_tokens(1, 2), 3)
    assert all(m.training for m in model.modules())


def test_eos_stops_a_row_and_generation():
    model = _gpt(seed=8)
    prompt = _tokens(4, 3, seed=8)
    free = model.generate(prompt, 15, temperature=0)  # without eos
    eos = int(free[0, 3 + 2])  # row 0's third new token
    firsts = [row.index(eos) if eos in row else None for row in free[:, 3:].tolist()]
    # generation stops once the last row has emitted eos, if every row does within 15 tokens
    n = 15 if None in firsts else max(firsts) + 1
    for use_cache in (True, False):
        out = model.generate(prompt, 15, temperature=0, eos_id=eos, use_cache=use_cache)
        assert out.shape == (4, 3 + n)
        for row, free_row, first in zip(out[:, 3:].tolist(), free[:, 3:].tolist(), firsts, strict=True):
            first = n if first is None else first
            assert row[:first] == free_row[:first]  # the same tokens until eos
            assert all(t == eos for t in row[first:])  # then eos only
    # identical rows emit eos together, so generation stops right after it
    same = prompt[:1].expand(3, -1)
    first = int(model.generate(same[:1], 1, temperature=0)[0, -1])
    out = model.generate(same, 10, temperature=0, eos_id=first)
    assert out.shape == (3, 4) and torch.all(out[:, -1] == first)


def test_eos_rows_keep_eos_while_sampling():
    model = _gpt(seed=9)
    prompt = _tokens(8, 2, seed=9)
    out = model.generate(prompt, 20, temperature=2.0, generator=_gen(3), eos_id=5)
    for row in out[:, 2:].tolist():
        if 5 in row:
            assert set(row[row.index(5) :]) == {5}


# ----------------------------------------------------------------------------------------------------------------
# sample_next


def test_temperature_zero_is_argmax():
    logits = _randn(6, V, seed=10)
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(sample_next(logits, temperature=0.0, top_k=3, top_p=0.5), logits.argmax(-1))
    # a tiny temperature samples the argmax too
    assert torch.equal(sample_next(logits * 100, temperature=1e-3, generator=_gen(0)), logits.argmax(-1))


def test_sampling_follows_the_softmax():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]])).expand(20000, 3)
    draws = sample_next(logits, generator=_gen(1))
    assert draws.shape == (20000,) and draws.dtype == torch.long
    freq = torch.bincount(draws, minlength=3) / 20000
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.02, rtol=0)
    # temperature 2 flattens: p ~ sqrt(p)
    flat = torch.tensor([0.2, 0.5, 0.3]).sqrt()
    freq2 = torch.bincount(sample_next(logits, temperature=2.0, generator=_gen(2)), minlength=3) / 20000
    torch.testing.assert_close(freq2, flat / flat.sum(), atol=0.02, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_top_k_samples_only_and_all_of_the_k_best(k):
    logits = _randn(1, 20, seed=k).float().expand(3000, 20)
    best = set(logits[0].topk(k).indices.tolist())
    draws = sample_next(logits, top_k=k, generator=_gen(k))
    assert set(draws.tolist()) == best
    assert set(sample_next(logits, top_k=50, generator=_gen(0)).tolist()) > best  # k >= V: no filtering


@pytest.mark.parametrize(
    ("top_p", "nucleus"),
    [
        (0.3, {1}),
        (0.49, {1}),
        (0.51, {1, 3}),
        (0.7, {1, 3}),
        (0.8, {1, 3, 2}),
        (0.95, {1, 3, 2, 0}),
        (1.0, {0, 1, 2, 3}),
    ],
)
def test_top_p_keeps_exactly_the_nucleus(top_p, nucleus):
    probs = torch.tensor([0.1, 0.5, 0.15, 0.25], dtype=torch.float64)  # sorted: 1 (0.5), 3 (0.75), 2 (0.9), 0 (1)
    logits = probs.log().expand(4000, 4)
    draws = sample_next(logits, top_p=top_p, generator=_gen(3))
    assert set(draws.tolist()) == nucleus
    kept = torch.tensor(sorted(nucleus))
    freq = torch.bincount(draws, minlength=4)[kept] / 4000
    torch.testing.assert_close(freq, (probs[kept] / probs[kept].sum()).float(), atol=0.03, rtol=0)


def test_top_k_comes_before_top_p():
    probs = torch.tensor([0.1, 0.5, 0.15, 0.25])
    logits = probs.log().expand(2000, 4)
    # alone, top_p = 0.6 keeps {1, 3}; after top_k = 2 the two renormalise to 2/3 and 1/3, and 2/3 reaches 0.6
    assert set(sample_next(logits, top_p=0.6, generator=_gen(4)).tolist()) == {1, 3}
    assert set(sample_next(logits, top_k=2, top_p=0.6, generator=_gen(4)).tolist()) == {1}
    # temperature comes first: at T = 0.5 the probabilities are ~ p^2, so 1 alone holds 0.25 / 0.3975 > 0.6
    assert set(sample_next(logits, temperature=0.5, top_p=0.6, generator=_gen(5)).tolist()) == {1}


def test_sample_next_same_generator_seed_same_draws():
    logits = _randn(50, V, seed=12)
    a = sample_next(logits, top_k=5, top_p=0.9, generator=_gen(7))
    b = sample_next(logits, top_k=5, top_p=0.9, generator=_gen(7))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------------------------------
# The cache's size


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kv_cache_bytes_is_what_a_filled_cache_holds(num_kv_heads, dtype):
    model = _gpt(num_kv_heads=num_kv_heads).to(dtype)
    cache = KVCache(LAYERS, 11)
    with torch.no_grad():
        model(_tokens(3, 11), cache=cache)
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert kv_cache_bytes(model, 3, 11, dtype) == held
    assert all(layer.keys.shape == (3, num_kv_heads, 11, D // H) for layer in cache.layers)
    assert kv_cache_bytes(model, 3, 11, dtype) == 2 * LAYERS * 3 * num_kv_heads * 11 * (D // H) * dtype.itemsize


def test_kv_cache_bytes_shrinks_with_the_kv_heads():
    mha, gqa, mqa = (GPT(V, d_model=64, nhead=8, num_kv_heads=n) for n in (8, 2, 1))
    assert kv_cache_bytes(mha, 4, 128) == 2 * 2 * 4 * 8 * 128 * 8 * 4
    assert kv_cache_bytes(mha, 4, 128) == 4 * kv_cache_bytes(gqa, 4, 128) == 8 * kv_cache_bytes(mqa, 4, 128)
    assert kv_cache_bytes(mha, 4, 128, torch.float16) * 2 == kv_cache_bytes(mha, 4, 128)
    assert kv_cache_bytes(mha, 1, 10_000) > 0  # beyond max_len: what a longer context would cost


# ----------------------------------------------------------------------------------------------------------------
# Argument checks


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(num_kv_heads=3), ValueError, ["num_kv_heads", "nhead", "nhead=4", "num_kv_heads=3"]),
        (dict(num_kv_heads=8), ValueError, ["num_kv_heads=8", "nhead=4"]),
        (dict(num_kv_heads=0), ValueError, ["num_kv_heads", "at least 1"]),
        (dict(num_kv_heads=2.0), TypeError, ["num_kv_heads", "float"]),
        (dict(d_model=18), ValueError, ["d_model", "nhead", "d_model=18"]),
        (dict(positional="alibi"), ValueError, ["positional", "rope", "learned", "sinusoidal", "none", "alibi"]),
        (dict(d_model=8, nhead=8), ValueError, ["head_dim", "even", "d_model=8", "nhead=8"]),
        (dict(vocab_size=0), ValueError, ["vocab_size"]),
        (dict(max_len=0), ValueError, ["max_len"]),
        (dict(num_layers=0), ValueError, ["num_layers"]),
        (dict(dim_feedforward=0), ValueError, ["dim_feedforward"]),
        (dict(dropout=1.0), ValueError, ["dropout", "[0, 1)"]),
        (dict(nhead="4"), TypeError, ["nhead", "str"]),
    ],
)
def test_gpt_rejects_bad_settings(kwargs, error, words):
    args = dict(vocab_size=V, d_model=D, nhead=H) | kwargs
    with pytest.raises(error) as info:
        GPT(**args)
    for word in words:
        assert word in str(info.value)


def test_odd_head_dim_is_fine_without_rope():
    GPT(V, d_model=12, nhead=4, positional="learned")  # head_dim 3
    with pytest.raises(ValueError, match="head_dim"):
        GroupedQueryAttention(12, 4, 2, rotary=True)
    with pytest.raises(TypeError, match="rotary"):
        GroupedQueryAttention(12, 4, 2, rotary=1)


@pytest.mark.parametrize(
    ("tokens", "error", "words"),
    [
        ([[1, 2]], TypeError, ["tokens", "list"]),
        (torch.ones(2, 3), TypeError, ["tokens", "integer", "torch.float32"]),
        (torch.ones(3, dtype=torch.long), ValueError, ["tokens", "2 dimensions", "(3,)"]),
        (torch.ones(1, 2, 3, dtype=torch.long), ValueError, ["tokens", "(1, 2, 3)"]),
        (torch.full((2, 3), V), ValueError, ["tokens", f"[0, {V})", f"{V}"]),
        (torch.full((2, 3), -1), ValueError, ["tokens", "-1"]),
        (torch.ones(2, MAX_LEN + 1, dtype=torch.long), ValueError, [f"T={MAX_LEN + 1}", f"max_len={MAX_LEN}"]),
        (torch.ones(2, 0, dtype=torch.long), ValueError, ["tokens", "at least one"]),
    ],
)
def test_forward_rejects_bad_tokens(tokens, error, words):
    with pytest.raises(error) as info:
        _gpt()(tokens)
    for word in words:
        assert word in str(info.value)


def test_forward_rejects_bad_caches():
    model = _gpt()
    with pytest.raises(TypeError, match="KVCache"):
        model(_tokens(1, 2), cache=LayerKVCache(4))
    with pytest.raises(ValueError, match="num_layers=2"):
        model(_tokens(1, 2), cache=KVCache(3, 4))
    cache = KVCache(LAYERS, MAX_LEN)
    with torch.no_grad():
        model(_tokens(1, MAX_LEN - 2), cache=cache)
        with pytest.raises(ValueError) as info:
            model(_tokens(1, 3), cache=cache)
    assert "T=3" in str(info.value) and f"{MAX_LEN - 2} cached" in str(info.value)
    with pytest.raises(TypeError, match="LayerKVCache"):
        model.blocks[0].attn(_randn(1, 2, D), cache=cache)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        ((torch.ones(1, 3), 2), {}, TypeError, ["prompt", "integer", "torch.float32"]),
        ((torch.ones(3, dtype=torch.long), 2), {}, ValueError, ["prompt", "2 dimensions", "(3,)"]),
        (([[1, 2]], 2), {}, TypeError, ["prompt", "list"]),
        ((torch.ones(1, 0, dtype=torch.long), 2), {}, ValueError, ["prompt", "at least one"]),
        ((torch.ones(1, 20, dtype=torch.long), 5), {}, ValueError, ["20", "max_new_tokens=5", "25", "max_len=24"]),
        ((torch.ones(1, 3, dtype=torch.long), -1), {}, ValueError, ["max_new_tokens", "-1"]),
        ((torch.ones(1, 3, dtype=torch.long), 2.0), {}, TypeError, ["max_new_tokens", "float"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(top_p=0.0), ValueError, ["top_p", "(0, 1]", "0.0"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(top_p=1.5), ValueError, ["top_p", "1.5"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(top_p="0.9"), TypeError, ["top_p", "str"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(top_k=0), ValueError, ["top_k", "at least 1", "0"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(top_k=2.0), TypeError, ["top_k", "int", "float"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(top_k=True), TypeError, ["top_k", "bool"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(temperature=-0.5), ValueError, ["temperature", "-0.5"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(temperature="hot"), TypeError, ["temperature", "str"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(generator=0), TypeError, ["generator", "int"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(eos_id=V), ValueError, ["eos_id", f"[0, {V})"]),
        ((torch.ones(1, 3, dtype=torch.long), 2), dict(use_cache="yes"), TypeError, ["use_cache", "str"]),
    ],
)
def test_generate_rejects_bad_arguments(args, kwargs, error, words):
    with pytest.raises(error) as info:
        _gpt().generate(*args, **kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("logits", "kwargs", "error", "words"),
    [
        ([[0.0, 1.0]], {}, TypeError, ["logits", "list"]),
        (torch.ones(2, 3, dtype=torch.long), {}, TypeError, ["logits", "floating-point", "torch.int64"]),
        (torch.ones(3), {}, ValueError, ["logits", "(B, V)", "(3,)"]),
        (torch.ones(2, 0), {}, ValueError, ["logits", "(2, 0)"]),
        (torch.ones(2, 3), dict(temperature=-1.0), ValueError, ["temperature", "-1.0"]),
        (torch.ones(2, 3), dict(temperature=float("nan")), ValueError, ["temperature", "nan"]),
        (torch.ones(2, 3), dict(top_k=0), ValueError, ["top_k", "0"]),
        (torch.ones(2, 3), dict(top_k=1.5), TypeError, ["top_k", "float"]),
        (torch.ones(2, 3), dict(top_p=0.0), ValueError, ["top_p", "0.0"]),
        (torch.ones(2, 3), dict(top_p=-0.1), ValueError, ["top_p", "-0.1"]),
        (torch.ones(2, 3), dict(top_p=None, generator="seed"), TypeError, ["generator", "str"]),
    ],
)
def test_sample_next_rejects_bad_arguments(logits, kwargs, error, words):
    with pytest.raises(error) as info:
        sample_next(logits, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_kv_cache_bytes_rejects_bad_arguments():
    model = _gpt()
    with pytest.raises(TypeError, match="model"):
        kv_cache_bytes(nn.Linear(2, 2), 1, 4)
    with pytest.raises(ValueError, match="batch_size"):
        kv_cache_bytes(model, 0, 4)
    with pytest.raises(ValueError, match="seq_len"):
        kv_cache_bytes(model, 1, 0)
    with pytest.raises(TypeError, match="dtype"):
        kv_cache_bytes(model, 1, 4, dtype="float32")


def test_gqa_rejects_bad_input():
    layer = GroupedQueryAttention(D, H, 2)
    with pytest.raises(ValueError, match="d_model=16"):
        layer(torch.randn(2, 3, 8))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(2, 3, D, dtype=torch.long))
    with pytest.raises(ValueError, match="num_kv_heads=3"):
        GroupedQueryAttention(D, H, 3)
