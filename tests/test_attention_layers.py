"""Attention layers against torch's own kernels and modules, equations written out by hand, and symmetries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlib.attention import AdditiveAttention, DotProductAttention, SingleHeadAttention
from attnlib.functional import NORMALIZERS, normalize_scores

TOL64 = dict(atol=1e-10, rtol=1e-8)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mask_with_a_key_per_row(*shape, seed=0):
    mask = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    mask[..., 0] = True  # torch's kernel gives NaN for a row with nothing to attend to
    return mask


# ----------------------------------------------------------------------------------------------------------------
# DotProductAttention


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_dot_product_attention_matches_torch_sdpa(need_weights, use_mask, scale):
    q, k, v = _randn(2, 3, 4, seed=1), _randn(2, 5, 4, seed=2), _randn(2, 5, 6, seed=3)
    mask = _mask_with_a_key_per_row(2, 3, 5) if use_mask else None
    out, weights = DotProductAttention(scale=scale)(q, k, v, mask=mask, need_weights=need_weights)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    torch.testing.assert_close(out, expected, **TOL64)
    if need_weights:
        s = 1 / math.sqrt(4) if scale is None else scale
        scores = q @ k.transpose(-2, -1) * s
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        torch.testing.assert_close(weights, torch.softmax(scores, dim=-1), **TOL64)
    else:
        assert weights is None


def test_dot_product_attention_eval_mode_ignores_dropout():
    q, k, v = _randn(2, 3, 4, seed=1), _randn(2, 5, 4, seed=2), _randn(2, 5, 6, seed=3)
    layer = DotProductAttention(dropout=0.9)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    train_out, _ = layer(q, k, v)
    assert not torch.allclose(train_out, expected)  # dropout is live in training mode
    layer.eval()
    for need_weights in (True, False):
        out, _ = layer(q, k, v, need_weights=need_weights)
        torch.testing.assert_close(out, expected, **TOL64)


@pytest.mark.parametrize("method", [m for m in NORMALIZERS if m != "softmax"])
@pytest.mark.parametrize("use_mask", [False, True])
def test_dot_product_attention_other_normalizers(method, use_mask):
    q, k, v = _randn(2, 3, 4, seed=4), _randn(2, 5, 4, seed=5), _randn(2, 5, 6, seed=6)
    mask = _mask_with_a_key_per_row(2, 3, 5, seed=7) if use_mask else None
    layer = DotProductAttention(normalizer=method)
    out, weights = layer(q, k, v, mask=mask)
    expected_w = normalize_scores(q @ k.transpose(-2, -1) / 2.0, mask, method=method)  # 1/sqrt(d), d = 4
    torch.testing.assert_close(weights, expected_w, **TOL64)
    torch.testing.assert_close(out, expected_w @ v, **TOL64)
    out2, none = layer(q, k, v, mask=mask, need_weights=False)
    assert none is None
    torch.testing.assert_close(out2, out, **TOL64)


def test_dot_product_attention_rejects_unknown_normalizer():
    with pytest.raises(ValueError, match="normalizer"):
        DotProductAttention(normalizer="sparsemax")


# ----------------------------------------------------------------------------------------------------------------
# AdditiveAttention


def test_additive_scores_match_loops():
    torch.manual_seed(0)
    layer = AdditiveAttention(query_dim=3, key_dim=5, hidden_dim=4).double()
    q, k = _randn(2, 3, 3, seed=1), _randn(2, 4, 5, seed=2)
    w_q, w_k, w = layer.w_q.weight, layer.w_k.weight, layer.w_v.weight[0]  # (h, dq), (h, dk), (h,)
    expected = torch.empty(2, 3, 4, dtype=torch.float64)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                expected[b, i, j] = w @ torch.tanh(w_q @ q[b, i] + w_k @ k[b, j])  # w^T tanh(W_q q_i + W_k k_j)
    with torch.no_grad():
        torch.testing.assert_close(layer.scores(q, k), expected, **TOL64)
        out, weights = layer(q, k, _randn(2, 4, 6, seed=3))
        torch.testing.assert_close(weights, torch.softmax(expected, dim=-1), **TOL64)


def test_additive_weights_sum_to_one_over_unmasked_keys():
    torch.manual_seed(0)
    layer = AdditiveAttention(query_dim=6, key_dim=2, hidden_dim=8).double()
    q, k, v = _randn(3, 5, 6, seed=1), _randn(3, 7, 2, seed=2), _randn(3, 7, 4, seed=3)
    mask = _mask_with_a_key_per_row(3, 1, 7, seed=4)  # a key padding mask, lifted to (B, 1, Lk)
    out, weights = layer(q, k, v, mask=mask)
    assert out.shape == (3, 5, 4) and weights.shape == (3, 5, 7)  # output length = query length
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5, dtype=torch.float64), **TOL64)
    assert torch.all(weights[~mask.expand(3, 5, 7)] == 0)
    torch.testing.assert_close(out, weights @ v, **TOL64)


def test_additive_fully_masked_query_gives_zeros():
    layer = AdditiveAttention(query_dim=2, key_dim=2, hidden_dim=3)
    mask = torch.ones(1, 2, 4, dtype=torch.bool)
    mask[0, 1] = False
    out, weights = layer(torch.randn(1, 2, 2), torch.randn(1, 4, 2), torch.randn(1, 4, 3), mask=mask)
    assert torch.all(out[0, 1] == 0) and torch.all(weights[0, 1] == 0)


@pytest.mark.parametrize(
    ("args", "word"),
    [
        ((torch.randn(2, 3, 4), torch.randn(2, 5, 5), torch.randn(2, 5, 1)), "query"),
        ((torch.randn(2, 3, 3), torch.randn(2, 5, 4), torch.randn(2, 5, 1)), "key"),
        ((torch.randn(2, 3, 3), torch.randn(2, 5, 5), torch.randn(2, 4, 1)), "value"),
    ],
)
def test_additive_rejects_wrong_sizes(args, word):
    layer = AdditiveAttention(query_dim=3, key_dim=5, hidden_dim=4)
    with pytest.raises(ValueError, match=word):
        layer(*args)


# ----------------------------------------------------------------------------------------------------------------
# SingleHeadAttention


def _single_head(*args, **kwargs) -> SingleHeadAttention:
    torch.manual_seed(0)
    return SingleHeadAttention(*args, **kwargs).double()


def test_self_attention_written_out():
    layer = _single_head(6, head_dim=4)
    x = _randn(2, 5, 6, seed=1)
    w_q, w_k, w_v = layer.q_proj.weight.T, layer.k_proj.weight.T, layer.v_proj.weight.T  # (6, 4) each
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)
    out, got_w = layer(x)
    torch.testing.assert_close(got_w, weights, **TOL64)
    torch.testing.assert_close(out, weights @ v, **TOL64)
    fused, none = layer(x, need_weights=False)
    assert none is None
    torch.testing.assert_close(fused, out, **TOL64)


def test_cross_attention_with_other_widths():
    layer = _single_head(6, head_dim=3, kdim=5, vdim=2)
    x, memory, values = _randn(2, 4, 6, seed=1), _randn(2, 7, 5, seed=2), _randn(2, 7, 2, seed=3)
    out, weights = layer(x, memory, values)
    assert out.shape == (2, 4, 3) and weights.shape == (2, 4, 7)  # output length = query length
    q, k, v = layer.q_proj(x), layer.k_proj(memory), layer.v_proj(values)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(3), dim=-1) @ v
    torch.testing.assert_close(out, expected, **TOL64)


def test_cross_attention_value_defaults_to_key():
    layer = _single_head(4, kdim=3)
    x, memory = _randn(1, 2, 4, seed=1), _randn(1, 6, 3, seed=2)
    torch.testing.assert_close(layer(x, memory)[0], layer(x, memory, memory)[0], **TOL64)


@pytest.mark.parametrize("use_mask", [False, True])
def test_single_head_matches_torch_multihead_attention(use_mask):
    e = 6
    layer = _single_head(e)
    mha = torch.nn.MultiheadAttention(e, 1, batch_first=True, bias=False).double()
    with torch.no_grad():
        # torch stacks the nn.Linear-style weights of W_Q, W_K, W_V into one (3E, E) matrix
        mha.in_proj_weight.copy_(torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight]))
        mha.out_proj.weight.copy_(torch.eye(e, dtype=torch.float64))
    mha.eval()
    x = _randn(3, 5, e, seed=1)
    mask = _mask_with_a_key_per_row(5, 5, seed=2) if use_mask else None
    out, weights = layer(x, mask=mask)
    # torch's boolean attn_mask means "may NOT attend", the opposite of attnlib's
    ref_out, ref_w = mha(x, x, x, attn_mask=None if mask is None else ~mask, need_weights=True)
    torch.testing.assert_close(out, ref_out, **TOL64)
    torch.testing.assert_close(weights, ref_w, **TOL64)


@given(st.integers(1, 7), st.integers(0, 2**31 - 1), st.booleans())
def test_self_attention_is_permutation_equivariant(length, seed, need_weights):
    layer = _single_head(4, head_dim=3)
    x = _randn(2, length, 4, seed=seed)
    perm = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    out, _ = layer(x, need_weights=need_weights)
    out_perm, _ = layer(x[:, perm], need_weights=need_weights)
    torch.testing.assert_close(out_perm, out[:, perm], **TOL64)


@given(st.integers(1, 4), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_cross_attention_ignores_order_of_key_value_pairs(lq, lk, seed):
    layer = _single_head(4, head_dim=3, kdim=2, vdim=5)
    x, memory, values = _randn(lq, 4, seed=seed), _randn(lk, 2, seed=seed + 1), _randn(lk, 5, seed=seed + 2)
    perm = torch.randperm(lk, generator=torch.Generator().manual_seed(seed))
    out, weights = layer(x, memory, values)
    out_perm, weights_perm = layer(x, memory[perm], values[perm])  # the same pairs, in another order
    torch.testing.assert_close(out_perm, out, **TOL64)
    torch.testing.assert_close(weights_perm, weights[:, perm], **TOL64)


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        ((torch.randn(2, 3, 5),), ValueError, ["query", "embed_dim", "(2, 3, 5)"]),
        ((torch.randn(2, 3, 4), torch.randn(2, 6, 4)), ValueError, ["key", "kdim", "(2, 6, 4)"]),
        ((torch.randn(2, 3, 4), torch.randn(2, 6, 3), torch.randn(2, 6, 3)), ValueError, ["value", "vdim"]),
        ((torch.randn(2, 3, 4), torch.randn(2, 6, 3), torch.randn(2, 5, 2)), ValueError, ["key", "value", "length"]),
        ((torch.randn(4),), ValueError, ["query"]),
        (([[0.0] * 4],), TypeError, ["query", "torch.Tensor"]),
    ],
)
def test_single_head_rejects_bad_inputs(args, error, words):
    layer = SingleHeadAttention(4, kdim=3, vdim=2)
    with pytest.raises(error) as info:
        layer(*args)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(embed_dim=0), ValueError),
        (dict(embed_dim=4.0), TypeError),
        (dict(embed_dim=4, head_dim=0), ValueError),
        (dict(embed_dim=4, dropout=1.0), ValueError),
    ],
)
def test_single_head_rejects_bad_sizes(kwargs, error):
    with pytest.raises(error):
        SingleHeadAttention(**kwargs)
