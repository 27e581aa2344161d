"""Chapter 6's Transformer: the layers against torch's (outputs and gradients), the residual wiring written out by
hand, the stacks, causality and padding through the whole encoder-decoder, the attention maps, greedy decoding,
argument checks and the embedding initialisation."""

from __future__ import annotations

import copy
import functools
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from seq2seq_inputs import random_source, random_target_in
from torch import nn

from attnlib.data import CharVocab
from attnlib.functional import causal_mask, padding_mask
from attnlib.transformer import (
    FeedForward,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    TransformerSeq2Seq,
)

PAD, BOS, EOS = CharVocab.PAD, CharVocab.BOS, CharVocab.EOS
D, H, FF = 8, 2, 16  # the layers' size in most tests
SRC_V, TGT_V = 11, 9
TOL64 = dict(atol=1e-10, rtol=1e-8)
TOL32 = dict(atol=1e-5, rtol=1e-5)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter (the LayerNorms' included, which torch starts at 1 and 0) with random values drawn in
    float32, so that they are exact in float32 and float64 alike."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float32))
    return module


def _torch_layer(kind: str, dtype=torch.float64, seed=0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    kwargs = dict(dict(dim_feedforward=FF, dropout=0.0, batch_first=True), **kwargs)
    cls = nn.TransformerEncoderLayer if kind == "encoder" else nn.TransformerDecoderLayer
    return _randomize(cls(D, H, **kwargs), seed).to(dtype)


def _masks(lengths=(5, 3, 1), width=5):
    keep = padding_mask(torch.tensor(lengths), width)  # (B, L) True at real tokens
    return keep, causal_mask(width)  # (L, L) True on and below the diagonal


# ----------------------------------------------------------------------------------------------------------------
# The layers against torch's


@pytest.mark.parametrize("training", [False, True])  # dropout 0: both modes must agree with torch
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_equals_torch(norm_first, activation, training):
    theirs = _torch_layer("encoder", norm_first=norm_first, activation=activation)
    ours = TransformerEncoderLayer.from_torch(theirs)
    ours.train(training), theirs.train(training)
    x = _randn(3, 5, D, seed=1)
    keep, causal = _masks()
    real = keep[:, :, None].expand(-1, -1, D)  # compare at real positions only under the padding mask
    cases = [
        (dict(), dict(), None),
        (dict(mask=keep[:, None, :]), dict(src_key_padding_mask=~keep), real),
        (dict(mask=causal), dict(src_mask=~causal), None),
    ]
    for our_kw, their_kw, where in cases:
        ref = theirs(x, **their_kw)
        for need_weights in (True, False):  # the explicit softmax and torch's fused kernel
            out, w = ours(x, need_weights=need_weights, **our_kw)
            assert out.shape == (3, 5, D) and out.dtype == torch.float64
            assert (w is None) != need_weights
            if where is None:
                torch.testing.assert_close(out, ref, **TOL64)
            else:
                torch.testing.assert_close(out[where], ref[where], **TOL64)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_equals_torch_fast_path_float32(norm_first, activation):
    # torch's eval-mode inference fast path (no grad, float32). For one layer it does not zero the padded
    # positions (only TransformerEncoder's nested tensors do), but we compare at the real positions regardless.
    theirs = _torch_layer("encoder", dtype=torch.float32, norm_first=norm_first, activation=activation).eval()
    ours = TransformerEncoderLayer.from_torch(theirs).eval()
    x = _randn(3, 5, D, seed=2, dtype=torch.float32)
    keep, causal = _masks()
    with torch.inference_mode():
        torch.testing.assert_close(ours(x)[0], theirs(x), **TOL32)
        out = ours(x, mask=keep[:, None, :])[0]
        ref = theirs(x, src_key_padding_mask=~keep)
        torch.testing.assert_close(out[keep], ref[keep], **TOL32)
        torch.testing.assert_close(ours(x, mask=causal)[0], theirs(x, src_mask=~causal), **TOL32)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_equals_torch(norm_first, activation, training):
    theirs = _torch_layer("decoder", norm_first=norm_first, activation=activation)
    ours = TransformerDecoderLayer.from_torch(theirs)
    ours.train(training), theirs.train(training)
    x, memory = _randn(3, 4, D, seed=3), _randn(3, 5, D, seed=4)
    keep, _ = _masks()
    causal = causal_mask(4)
    ref_plain = theirs(x, memory)
    ref_masked = theirs(x, memory, tgt_mask=~causal, memory_key_padding_mask=~keep)
    for need_weights in (True, False):
        out, self_w, cross_w = ours(x, memory, need_weights=need_weights)
        torch.testing.assert_close(out, ref_plain, **TOL64)
        out, self_w, cross_w = ours(x, memory, mask=causal, memory_mask=keep[:, None, :], need_weights=need_weights)
        torch.testing.assert_close(out, ref_masked, **TOL64)  # every query is real: compare everywhere
        if need_weights:
            assert self_w.shape == (3, H, 4, 4) and cross_w.shape == (3, H, 4, 5)
        else:
            assert self_w is None and cross_w is None


def _assert_same_grads(pairs):
    for name, ours, theirs in pairs:
        assert ours is not None and theirs is not None, name
        torch.testing.assert_close(ours, theirs, **TOL64, msg=lambda m, name=name: f"{name}: {m}")


def _attention_grads(prefix, ours, theirs):
    w_q, w_k, w_v = theirs.in_proj_weight.grad.split(D)
    b_q, b_k, b_v = theirs.in_proj_bias.grad.split(D)
    return [
        (f"{prefix}.q_proj.weight", ours.q_proj.weight.grad, w_q),
        (f"{prefix}.k_proj.weight", ours.k_proj.weight.grad, w_k),
        (f"{prefix}.v_proj.weight", ours.v_proj.weight.grad, w_v),
        (f"{prefix}.q_proj.bias", ours.q_proj.bias.grad, b_q),
        (f"{prefix}.k_proj.bias", ours.k_proj.bias.grad, b_k),
        (f"{prefix}.v_proj.bias", ours.v_proj.bias.grad, b_v),
        (f"{prefix}.out_proj.weight", ours.out_proj.weight.grad, theirs.out_proj.weight.grad),
    ]


def _layer_grads(ours, theirs, norms):
    pairs = [
        ("linear1.weight", ours.ff.linear1.weight.grad, theirs.linear1.weight.grad),
        ("linear1.bias", ours.ff.linear1.bias.grad, theirs.linear1.bias.grad),
        ("linear2.weight", ours.ff.linear2.weight.grad, theirs.linear2.weight.grad),
        ("linear2.bias", ours.ff.linear2.bias.grad, theirs.linear2.bias.grad),
    ]
    for i in range(1, norms + 1):
        for p in ("weight", "bias"):
            ours_p, theirs_p = getattr(getattr(ours, f"norm{i}"), p), getattr(getattr(theirs, f"norm{i}"), p)
            pairs.append((f"norm{i}.{p}", ours_p.grad, theirs_p.grad))
    return pairs + _attention_grads("self_attn", ours.self_attn, theirs.self_attn)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_gradients_equal_torch(norm_first):
    theirs = _torch_layer("encoder", norm_first=norm_first, activation="gelu")
    ours = TransformerEncoderLayer.from_torch(theirs)
    keep, _ = _masks()
    x = _randn(3, 5, D, seed=5)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    probe = _randn(3, 5, D, seed=6) * keep[:, :, None]  # a loss on the real positions only
    (ours(x_ours, mask=keep[:, None, :])[0] * probe).sum().backward()
    (theirs(x_theirs, src_key_padding_mask=~keep) * probe).sum().backward()
    _assert_same_grads([("x", x_ours.grad, x_theirs.grad), *_layer_grads(ours, theirs, 2)])


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradients_equal_torch(norm_first):
    theirs = _torch_layer("decoder", norm_first=norm_first)
    ours = TransformerDecoderLayer.from_torch(theirs)
    keep, _ = _masks()
    causal = causal_mask(4)
    x, memory = _randn(3, 4, D, seed=7), _randn(3, 5, D, seed=8)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ms = [memory.clone().requires_grad_() for _ in range(2)]
    probe = _randn(3, 4, D, seed=9)
    (ours(xs[0], ms[0], mask=causal, memory_mask=keep[:, None, :])[0] * probe).sum().backward()
    (theirs(xs[1], ms[1], tgt_mask=~causal, memory_key_padding_mask=~keep) * probe).sum().backward()
    _assert_same_grads(
        [
            ("x", xs[0].grad, xs[1].grad),
            ("memory", ms[0].grad, ms[1].grad),
            *_layer_grads(ours, theirs, 3),
            *_attention_grads("multihead_attn", ours.multihead_attn, theirs.multihead_attn),
        ]
    )
    assert torch.all(ms[0].grad[~keep] == 0)  # padded memory positions are never read


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_from_torch_copies_bias_free_layers_eps_and_width(kind):
    theirs = _torch_layer(kind, bias=False, layer_norm_eps=0.5, dim_feedforward=24, norm_first=True)
    cls = TransformerEncoderLayer if kind == "encoder" else TransformerDecoderLayer
    ours = cls.from_torch(theirs)
    assert ours.ff.linear1.bias is None and ours.ff.linear2.bias is None and ours.self_attn.q_proj.bias is None
    assert ours.norm1.bias is None and ours.ff.linear1.out_features == 24 and ours.norm1.eps == 0.5
    x, memory = _randn(2, 4, D, seed=10), _randn(2, 3, D, seed=11)
    args = (x,) if kind == "encoder" else (x, memory)
    torch.testing.assert_close(ours(*args)[0], theirs(*args), **TOL64)  # eps 0.5 instead of 1e-5 would show


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_from_torch_keeps_float64_weights_exactly(kind):
    # Weights that float32 cannot hold: a copy made through a float32 layer would round them (~1e-8).
    theirs = _torch_layer(kind)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(1e-9 * torch.rand_like(p))
    ours = (TransformerEncoderLayer if kind == "encoder" else TransformerDecoderLayer).from_torch(theirs)
    for name, a, b in (
        ("linear1.weight", ours.ff.linear1.weight, theirs.linear1.weight),
        ("norm1.weight", ours.norm1.weight, theirs.norm1.weight),
        ("self_attn W_Q", ours.self_attn.q_proj.weight, theirs.self_attn.in_proj_weight[:D]),
    ):
        assert a.dtype == torch.float64
        assert (a - b).abs().max().item() == 0, f"{name} was rounded in the copy"
    x = _randn(2, 4, D, seed=12)
    args = (x,) if kind == "encoder" else (x, _randn(2, 3, D, seed=13))
    torch.testing.assert_close(ours(*args)[0], theirs(*args), atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_from_torch_makes_an_independent_copy(kind):
    theirs = _torch_layer(kind)
    ours = (TransformerEncoderLayer if kind == "encoder" else TransformerDecoderLayer).from_torch(theirs)
    x = _randn(2, 4, D, seed=14)
    args = (x,) if kind == "encoder" else (x, _randn(2, 3, D, seed=15))
    before = ours(*args)[0].detach().clone()
    params_before = {k: v.clone() for k, v in ours.state_dict().items()}
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(1.0)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, params_before[k]), k
    torch.testing.assert_close(ours(*args)[0], before, **TOL64)
    assert not torch.allclose(theirs(*args), before)


def test_from_torch_rejects_other_modules_and_settings():
    with pytest.raises(TypeError, match="module"):
        TransformerEncoderLayer.from_torch(nn.Linear(D, D))
    with pytest.raises(TypeError, match="module"):
        TransformerEncoderLayer.from_torch(nn.TransformerDecoderLayer(D, H, FF, batch_first=True))
    with pytest.raises(TypeError, match="module"):
        TransformerDecoderLayer.from_torch(nn.TransformerEncoderLayer(D, H, FF, batch_first=True))
    for cls, tcls in (
        (TransformerEncoderLayer, nn.TransformerEncoderLayer),
        (TransformerDecoderLayer, nn.TransformerDecoderLayer),
    ):
        with pytest.raises(ValueError, match="batch_first"):
            cls.from_torch(tcls(D, H, FF, batch_first=False))
        with pytest.raises(ValueError, match="activation"):
            cls.from_torch(tcls(D, H, FF, batch_first=True, activation=F.silu))
        with pytest.raises(ValueError, match="activation"):
            cls.from_torch(tcls(D, H, FF, batch_first=True, activation=nn.GELU(approximate="tanh")))
    # modules, rather than functions, that compute relu and exact gelu are fine
    theirs = _torch_layer("encoder", activation=nn.GELU())
    x = _randn(2, 4, D, seed=16)
    torch.testing.assert_close(TransformerEncoderLayer.from_torch(theirs)(x)[0], theirs(x), **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# The residual wiring by hand


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_by_hand(activation):
    torch.manual_seed(0)
    ff = FeedForward(D, FF, dropout=0.0, activation=activation).double()
    x = _randn(2, 3, D, seed=17)
    hidden = x @ ff.linear1.weight.T + ff.linear1.bias
    act = hidden.clamp(min=0) if activation == "relu" else 0.5 * hidden * (1 + torch.erf(hidden / 2**0.5))
    torch.testing.assert_close(ff(x), act @ ff.linear2.weight.T + ff.linear2.bias, **TOL64)


def _norm(x, ln):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_residual_wiring_by_hand(norm_first):
    torch.manual_seed(1)
    layer = _randomize(TransformerEncoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).double(), seed=1)
    x = _randn(2, 5, D, seed=18)
    mask = causal_mask(5)

    def sa(h):
        return layer.self_attn(h, h, h, mask=mask)[0]

    if norm_first:
        h = x + sa(_norm(x, layer.norm1))
        expected = h + layer.ff(_norm(h, layer.norm2))
    else:
        h = _norm(x + sa(x), layer.norm1)
        expected = _norm(h + layer.ff(h), layer.norm2)
    out, w = layer(x, mask=mask, need_weights=True)
    torch.testing.assert_close(out, expected, **TOL64)
    x_attn = _norm(x, layer.norm1) if norm_first else x  # the weights are those the attention used
    torch.testing.assert_close(w, layer.self_attn(x_attn, x_attn, x_attn, mask=mask)[1], **TOL64)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_residual_wiring_by_hand(norm_first):
    torch.manual_seed(2)
    layer = _randomize(TransformerDecoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).double(), seed=2)
    x, memory = _randn(2, 4, D, seed=19), _randn(2, 6, D, seed=20)
    mask, memory_mask = causal_mask(4), padding_mask(torch.tensor([6, 2]), 6)[:, None, :]

    def sa(h):
        return layer.self_attn(h, h, h, mask=mask)[0]

    def ca(h):
        return layer.multihead_attn(h, memory, memory, mask=memory_mask)[0]

    n1, n2, n3 = (lambda h, i=i: _norm(h, getattr(layer, f"norm{i}")) for i in (1, 2, 3))
    if norm_first:
        h = x + sa(n1(x))
        h = h + ca(n2(h))
        expected = h + layer.ff(n3(h))
    else:
        h = n1(x + sa(x))
        h = n2(h + ca(h))
        expected = n3(h + layer.ff(h))
    out, _, cross_w = layer(x, memory, mask=mask, memory_mask=memory_mask, need_weights=True)
    torch.testing.assert_close(out, expected, **TOL64)
    assert torch.all(cross_w[1, :, :, 2:] == 0)


# ----------------------------------------------------------------------------------------------------------------
# The stacks


def _plain_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-5)  # a fresh LayerNorm: weight 1, bias 0


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_applies_its_layers_then_the_final_norm(norm_first):
    torch.manual_seed(3)
    enc = TransformerEncoder(2, D, H, FF, dropout=0.0, norm_first=norm_first).double().eval()
    keep, _ = _masks((6, 2, 4), 6)
    mask = keep[:, None, :]
    x = _randn(3, 6, D, seed=21)
    out, weights = enc(x, mask=mask, need_weights=True)
    h, expected_w = x, []
    for layer in enc.layers:
        h, w = layer(h, mask=mask, need_weights=True)
        expected_w.append(w)
    expected = _plain_norm(h) if norm_first else h  # pre-LN ends with a LayerNorm, post-LN with nothing
    torch.testing.assert_close(out, expected, **TOL64)
    assert isinstance(weights, list) and len(weights) == 2
    for w, ew in zip(weights, expected_w, strict=True):
        assert w.shape == (3, H, 6, 6)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, H, 6, dtype=torch.float64), **TOL64)
        torch.testing.assert_close(w, ew, **TOL64)
        assert torch.all(w.masked_select(~mask[:, None].expand_as(w)) == 0)
    fused, none = enc(x, mask=mask)
    assert none is None
    torch.testing.assert_close(fused, out, **TOL64)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_stack_applies_its_layers_then_the_final_norm(norm_first):
    torch.manual_seed(4)
    dec = TransformerDecoder(2, D, H, FF, dropout=0.0, norm_first=norm_first).double().eval()
    x, memory = _randn(3, 4, D, seed=22), _randn(3, 5, D, seed=23)
    mask, memory_mask = causal_mask(4), padding_mask(torch.tensor([5, 3, 1]), 5)[:, None, :]
    out, self_w, cross_w = dec(x, memory, mask=mask, memory_mask=memory_mask, need_weights=True)
    h = x
    for layer in dec.layers:
        h, _, _ = layer(h, memory, mask=mask, memory_mask=memory_mask)
    torch.testing.assert_close(out, _plain_norm(h) if norm_first else h, **TOL64)
    assert len(self_w) == len(cross_w) == 2
    for s, c in zip(self_w, cross_w, strict=True):
        assert s.shape == (3, H, 4, 4) and c.shape == (3, H, 4, 5)
        assert torch.all(s.triu(1) == 0) and torch.all(c[2, :, :, 1:] == 0)
    fused, s_none, c_none = dec(x, memory, mask=mask, memory_mask=memory_mask)
    assert s_none is None and c_none is None
    torch.testing.assert_close(fused, out, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# The encoder-decoder: causality, padding, maps


@functools.cache
def _model(norm_first: bool = True, layers: int = 2, seed: int = 0) -> TransformerSeq2Seq:
    torch.manual_seed(seed)
    model = TransformerSeq2Seq(
        SRC_V,
        TGT_V,
        d_model=16,
        nhead=2,
        num_encoder_layers=layers,
        num_decoder_layers=layers,
        dim_feedforward=32,
        dropout=0.0,
        norm_first=norm_first,
        max_len=12,
    )
    return model.double().eval()


_source = functools.partial(random_source, vocab_size=SRC_V)
_target_in = functools.partial(random_target_in, vocab_size=TGT_V)


@settings(max_examples=30)
@given(
    norm_first=st.booleans(),
    layers=st.integers(1, 2),
    steps=st.integers(2, 8),
    data=st.data(),
)
def test_logits_before_a_changed_target_token_do_not_change(norm_first, layers, steps, data):
    model = _model(norm_first, layers)
    t = data.draw(st.integers(1, steps - 1), label="t")
    seed = data.draw(st.integers(0, 1000), label="seed")
    source, lengths = _source([5, 3], seed=seed)
    target_in = _target_in(2, steps, seed=seed + 1)
    changed = target_in.clone()
    changed[:, t] = 3 + (changed[:, t] - 3 + data.draw(st.integers(1, TGT_V - 4), label="shift")) % (TGT_V - 3)
    assert torch.all(changed[:, t] != target_in[:, t])
    with torch.no_grad():
        logits, _ = model(source, lengths, target_in)
        logits_changed, _ = model(source, lengths, changed)
    torch.testing.assert_close(logits_changed[:, :t], logits[:, :t], atol=1e-12, rtol=0)
    assert (logits_changed[:, t] - logits[:, t]).abs().max() > 1e-6  # the change is seen from t on


@settings(max_examples=20)
@given(norm_first=st.booleans(), seed=st.integers(0, 1000), data=st.data())
def test_padded_source_tokens_change_nothing_and_real_ones_do(norm_first, seed, data):
    model = _model(norm_first)
    source, lengths = _source([3, 6, 1], seed=seed, width=7)
    target_in = _target_in(3, 4, seed=seed)
    row = data.draw(st.integers(0, 2), label="row")
    length = int(lengths[row])
    with torch.no_grad():
        logits, _ = model(source, lengths, target_in)
        padded = source.clone()
        col = data.draw(st.integers(length, 6), label="padded column")
        padded[row, col] = data.draw(st.integers(1, SRC_V - 1), label="token")
        torch.testing.assert_close(model(padded, lengths, target_in)[0], logits, atol=1e-12, rtol=0)
        real = source.clone()
        col = data.draw(st.integers(0, length - 1), label="real column")
        real[row, col] = 3 + (real[row, col] - 3 + 1) % (SRC_V - 3)
        diff = (model(real, lengths, target_in)[0] - logits).abs()
    assert diff[row].max() > 1e-6
    others = [b for b in range(3) if b != row]
    assert diff[others].max() == 0  # the rows of a batch do not meet


@pytest.mark.parametrize("norm_first", [False, True])
def test_attention_maps_shapes_masks_and_sums(norm_first):
    model = _model(norm_first)
    source, lengths = _source([5, 2, 3], seed=3, width=6)
    target_in = _target_in(3, 4, seed=4)
    logits, maps = model(source, lengths, target_in, need_weights=True)
    assert set(maps) == {"encoder", "decoder", "cross"}
    keep = padding_mask(lengths, 6)
    for key, shape in (("encoder", (3, 2, 6, 6)), ("decoder", (3, 2, 4, 4)), ("cross", (3, 2, 4, 6))):
        assert isinstance(maps[key], list) and len(maps[key]) == 2
        for w in maps[key]:
            assert w.shape == shape
            torch.testing.assert_close(w.sum(-1), torch.ones(shape[:-1], dtype=torch.float64), **TOL64)
            if key == "decoder":
                assert torch.all(w.triu(1) == 0)
            else:
                assert torch.all(w.masked_select(~keep[:, None, None, :].expand_as(w)) == 0)
    plain, none = model(source, lengths, target_in)
    assert none is None
    torch.testing.assert_close(plain, logits, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# Greedy decoding


def _first_eos(row):
    return row.index(EOS) if EOS in row else None


@pytest.mark.parametrize("norm_first", [False, True])
def test_greedy_decode_pads_after_eos_and_equals_teacher_forcing_on_its_own_output(norm_first):
    model = _model(norm_first)
    source, lengths = _source([7, 3, 5, 1], seed=0)
    tokens, maps = model.greedy_decode(source, lengths, max_len=10)
    assert maps is None and tokens.dtype == torch.long
    assert tokens.shape[0] == 4 and 1 <= tokens.shape[1] <= 10
    rows = tokens.tolist()
    eos = [_first_eos(r) for r in rows]
    assert len(set(eos)) > 1 and None not in eos, "want rows that end at different steps"  # the seed's premise
    assert tokens.shape[1] == max(eos) + 1  # it stopped when the last row emitted EOS
    for row, e in zip(rows, eos, strict=True):
        assert all(tok == PAD for tok in row[e + 1 :])
    target_in = torch.cat([torch.full((4, 1), BOS), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        predicted = model(source, lengths, target_in)[0].argmax(-1)
    for b, e in enumerate(eos):
        assert predicted[b, : e + 1].tolist() == rows[b][: e + 1]


def _with_generator_bias(model, eos_bias):
    forced = copy.deepcopy(model)
    with torch.no_grad():
        forced.generator.weight.zero_()
        forced.generator.bias.zero_()
        forced.generator.bias[EOS] = eos_bias
    return forced


def test_greedy_decode_stops_as_soon_as_every_row_has_emitted_eos():
    model = _with_generator_bias(_model(), 5.0)  # EOS is always the argmax
    source, lengths = _source([4, 2, 3])
    tokens, maps = model.greedy_decode(source, lengths, max_len=10, need_weights=True)
    assert tokens.shape == (3, 1) and torch.all(tokens == EOS)
    assert maps["cross"][0].shape == (3, 2, 1, 4)


def test_greedy_decode_runs_to_max_len_without_eos():
    model = _with_generator_bias(_model(), -5.0)  # EOS never wins: all other logits are 0
    source, lengths = _source([4, 2])
    tokens, _ = model.greedy_decode(source, lengths, max_len=6)
    assert tokens.shape == (2, 6) and not torch.any(tokens == EOS)


@pytest.mark.parametrize("norm_first", [False, True])
def test_greedy_decode_of_a_batch_equals_each_row_alone(norm_first):
    model = _model(norm_first)
    source, lengths = _source([7, 3, 5, 1], seed=0, width=8)  # one column of padding more than needed
    tokens, _ = model.greedy_decode(source, lengths, max_len=10)
    for b, n in enumerate(lengths.tolist()):
        alone, _ = model.greedy_decode(source[b : b + 1, :n], lengths[b : b + 1], max_len=10)
        t = alone.shape[1]
        assert tokens[b, :t].tolist() == alone[0].tolist()
        assert torch.all(tokens[b, t:] == PAD)


def test_greedy_decode_maps():
    model = _model()
    source, lengths = _source([7, 3, 5, 1], seed=0)
    tokens, maps = model.greedy_decode(source, lengths, max_len=10, need_weights=True)
    t = tokens.shape[1]
    assert set(maps) == {"encoder", "decoder", "cross"}
    for w in maps["cross"]:
        assert w.shape == (4, 2, t, 7)
        assert torch.all(w[3, :, :, 1:] == 0)
    for w in maps["decoder"]:
        assert w.shape == (4, 2, t, t)
    for w in maps["encoder"]:
        assert w.shape == (4, 2, 7, 7)
    target_in = torch.cat([torch.full((4, 1), BOS), tokens[:, :-1]], dim=1)
    _, expected = model(source, lengths, target_in, need_weights=True)
    torch.testing.assert_close(maps["cross"][-1], expected["cross"][-1], **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# Errors


def test_layer_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoderLayer(10, 3)
    with pytest.raises(ValueError, match="divisible"):
        TransformerSeq2Seq(SRC_V, TGT_V, d_model=10, nhead=4)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="dropout"):
            TransformerDecoderLayer(D, H, dropout=bad)
        with pytest.raises(ValueError, match="dropout"):
            TransformerSeq2Seq(SRC_V, TGT_V, dropout=bad)
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoderLayer(D, H, activation="tanh")
    with pytest.raises(ValueError, match="activation"):
        FeedForward(D, FF, activation="silu")
    layer = TransformerEncoderLayer(D, H, FF)
    with pytest.raises(ValueError, match=r"^x must"):
        layer(torch.randn(2, 5, D + 1))
    with pytest.raises(ValueError, match=r"^x must"):
        layer(torch.randn(5, D))
    with pytest.raises(TypeError, match=r"^x must"):
        layer(torch.ones(2, 5, D, dtype=torch.long))
    dec = TransformerDecoderLayer(D, H, FF)
    with pytest.raises(ValueError, match=r"^memory must"):
        dec(torch.randn(2, 4, D), torch.randn(2, 5, D - 1))
    with pytest.raises(ValueError, match="memory.*batch|batch.*memory"):
        dec(torch.randn(2, 4, D), torch.randn(3, 5, D))


def test_model_argument_errors_name_the_argument():
    model = _model()
    source, lengths = _source([4, 2])
    target_in = _target_in(2, 3)
    with pytest.raises(TypeError, match="source"):
        model(source.double(), lengths, target_in)
    with pytest.raises(TypeError, match="target_in"):
        model(source, lengths, target_in.double())
    bad = source.clone()
    bad[0, 0] = SRC_V
    with pytest.raises(ValueError, match="source"):
        model(bad, lengths, target_in)
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="source"):
        model(bad, lengths, target_in)
    bad = target_in.clone()
    bad[1, 2] = TGT_V
    with pytest.raises(ValueError, match="target_in"):
        model(source, lengths, bad)
    for bad_lengths in (torch.tensor([4, 2, 1]), torch.tensor([[4, 2]]), torch.tensor([0, 2]), torch.tensor([5, 2])):
        with pytest.raises(ValueError, match="lengths"):
            model(source, bad_lengths, target_in)
    with pytest.raises(ValueError, match="batch"):
        model(source, lengths, _target_in(3, 3))
    long_source, long_lengths = _source([13, 2])  # the model's max_len is 12
    with pytest.raises(ValueError, match="^source .*max_len"):
        model(long_source, long_lengths, target_in)
    with pytest.raises(ValueError, match="^target_in .*max_len"):
        model(source, lengths, _target_in(2, 13))
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(source, lengths, max_len=0)
    with pytest.raises(ValueError, match="max_len must be at most the model's max_len=12"):
        model.greedy_decode(source, lengths, max_len=13)  # checked before decoding, not 12 steps later
    with pytest.raises(TypeError, match="lengths"):
        model(source, [4, 2], target_in)


# ----------------------------------------------------------------------------------------------------------------
# Initialisation


def test_embeddings_start_at_the_scale_of_the_positional_encoding():
    torch.manual_seed(0)
    d_model = 64
    model = TransformerSeq2Seq(100, 80, d_model=d_model, nhead=4)
    for embedding in (model.source_embedding, model.target_embedding):
        std = embedding.weight.std().item()
        assert abs(std - d_model**-0.5) < 0.05 * d_model**-0.5
        assert abs(embedding.weight.mean().item()) < 0.01
        scaled_rms = (embedding.weight * d_model**0.5).pow(2).mean().sqrt().item()
        pe_rms = model.positional.pe.pow(2).mean().sqrt().item()  # sin and cos: about 1/sqrt(2)
        assert 0.5 < scaled_rms / pe_rms < 2.0


# The decoder's self-attention is causal through is_causal, which must equal the explicit causal mask.


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_is_causal_equals_the_causal_mask_and_torch(norm_first):
    theirs = _torch_layer("decoder", norm_first=norm_first)
    ours = TransformerDecoderLayer.from_torch(theirs).eval()
    theirs.eval()
    x, memory = _randn(3, 5, D, seed=2), _randn(3, 4, D, seed=3)
    _, causal = _masks()
    out, _, _ = ours(x, memory, is_causal=True)
    ref, _, _ = ours(x, memory, mask=causal)
    torch.testing.assert_close(out, ref, **TOL64)
    torch.testing.assert_close(out, theirs(x, memory, tgt_mask=~causal), **TOL64)


def test_seq2seq_decoding_hands_torch_a_causal_flag_not_a_mask():
    torch.manual_seed(0)
    model = TransformerSeq2Seq(SRC_V, TGT_V, d_model=D, nhead=H, num_encoder_layers=1, num_decoder_layers=2,
                               dim_feedforward=FF, dropout=0.0, max_len=12).eval()
    source, lengths = random_source([4, 3], vocab_size=SRC_V)
    target_in = random_target_in(2, 5, vocab_size=TGT_V)
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    with mock.patch.object(F, "scaled_dot_product_attention", spy):
        logits, _ = model(source, lengths, target_in)
    causal_calls = [c for c in calls if c.get("is_causal")]
    assert len(causal_calls) == 2 and all(c.get("attn_mask") is None for c in causal_calls)  # one per layer
    # the same logits as with the mask written out
    memory, memory_mask, _ = model.encode(source, lengths)
    x = model._embed("target_in", model.target_embedding, target_in)
    masked, _, _ = model.decoder(x, memory, mask=causal_mask(5), memory_mask=memory_mask)
    torch.testing.assert_close(logits, model.generator(masked), **TOL32)
