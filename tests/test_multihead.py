"""MultiHeadAttention against torch.nn.MultiheadAttention, chapter 3's single head, and the causal property."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from attnlib.attention import MultiHeadAttention, SingleHeadAttention
from attnlib.functional import causal_mask, padding_mask

TOL64 = dict(atol=1e-10, rtol=1e-8)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _pair(embed_dim=16, num_heads=4, kdim=None, vdim=None, bias=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, kdim=kdim, vdim=vdim, batch_first=True).double()
    return MultiHeadAttention.from_torch(theirs), theirs


@pytest.mark.parametrize("training", [False, True])  # dropout 0: train and eval must agree with torch alike
@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_equals_torch(training, bias):
    ours, theirs = _pair(bias=bias)
    ours.train(training), theirs.train(training)
    x = _randn(3, 6, 16)
    out, w = ours(x, x, x)
    ref_out, ref_w = theirs(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, **TOL64)
    torch.testing.assert_close(w, ref_w, **TOL64)
    fused, none = ours(x, x, x, need_weights=False)
    assert none is None
    torch.testing.assert_close(fused, ref_out, **TOL64)


@pytest.mark.parametrize("kdim, vdim", [(None, None), (12, 20), (12, None)])
def test_cross_attention_with_other_widths_equals_torch(kdim, vdim):
    ours, theirs = _pair(kdim=kdim, vdim=vdim)
    q, k, v = _randn(2, 5, 16, seed=1), _randn(2, 7, kdim or 16, seed=2), _randn(2, 7, vdim or 16, seed=3)
    out, w = ours(q, k, v)
    ref_out, ref_w = theirs(q, k, v, average_attn_weights=False)
    assert out.shape == (2, 5, 16) and w.shape == (2, 4, 5, 7)  # one output row per query, weights per head
    torch.testing.assert_close(out, ref_out, **TOL64)
    torch.testing.assert_close(w, ref_w, **TOL64)


@pytest.mark.parametrize("need_weights", [True, False])
def test_padding_and_causal_masks_equal_torch_with_the_opposite_convention(need_weights):
    ours, theirs = _pair()
    x = _randn(3, 6, 16, seed=4)
    keep = padding_mask(torch.tensor([6, 4, 2]), 6)  # (B, L) True at real tokens
    causal = causal_mask(6)  # (L, L) True on and below the diagonal
    both = keep[:, None, :] & causal  # (B, L, L)
    out, w = ours(x, x, x, mask=both, need_weights=need_weights)
    # torch: True = blocked. Its key_padding_mask and attn_mask combine like our single mask.
    ref_out, ref_w = theirs(x, x, x, key_padding_mask=~keep, attn_mask=~causal, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, **TOL64)
    if need_weights:
        torch.testing.assert_close(w, ref_w, **TOL64)
        assert torch.all(w.masked_select(~both[:, None]) == 0)


def test_four_dimensional_mask_per_head():
    ours, _ = _pair()
    x = _randn(2, 5, 16, seed=5)
    mask = torch.ones(2, 4, 5, 5, dtype=torch.bool)
    mask[:, 0] = torch.eye(5, dtype=torch.bool)  # head 0 may only look at itself
    _, w = ours(x, x, x, mask=mask)
    torch.testing.assert_close(w[:, 0], torch.eye(5, dtype=torch.float64).expand(2, 5, 5))


def test_one_head_equals_the_single_head_layer_of_chapter_3():
    torch.manual_seed(0)
    single = SingleHeadAttention(16, head_dim=16).double()
    multi = MultiHeadAttention(16, 1, bias=False).double()
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(multi, name).weight.copy_(getattr(single, name).weight)
        multi.out_proj.weight.copy_(torch.eye(16, dtype=torch.float64))  # W_O = I
    x = _randn(2, 5, 16, seed=6)
    out_s, w_s = single(x)
    out_m, w_m = multi(x, x, x)
    torch.testing.assert_close(out_m, out_s, **TOL64)
    torch.testing.assert_close(w_m[:, 0], w_s, **TOL64)


@given(length=st.integers(2, 8), changed=st.integers(0, 7), seed=st.integers(0, 2**31 - 1), fused=st.booleans())
def test_with_a_causal_mask_a_later_input_never_changes_an_earlier_output(length, changed, seed, fused):
    changed = changed % length
    ours, _ = _pair(seed=1)
    x = _randn(1, length, 16, seed=seed)
    y = x.clone()
    y[:, changed] = _randn(16, seed=seed + 1)
    mask = causal_mask(length)
    out_x, _ = ours(x, x, x, mask=mask, need_weights=not fused)
    out_y, _ = ours(y, y, y, mask=mask, need_weights=not fused)
    torch.testing.assert_close(out_y[:, :changed], out_x[:, :changed], **TOL64)
    assert not torch.allclose(out_y[:, changed:], out_x[:, changed:])  # and the change does reach later outputs


def test_from_torch_copies_rather_than_shares_the_weights():
    ours, theirs = _pair()
    with torch.no_grad():
        theirs.in_proj_weight.zero_()
    assert ours.q_proj.weight.abs().sum() > 0


def test_errors():
    with pytest.raises(ValueError, match="divisible by num_heads.*embed_dim=10, num_heads=4"):
        MultiHeadAttention(10, 4)
    ours, _ = _pair()
    x = _randn(2, 5, 16)
    with pytest.raises(ValueError, match="query.*embed_dim=16"):
        ours(_randn(2, 5, 8), x, x)
    with pytest.raises(ValueError, match="kdim=16"):
        ours(x, _randn(2, 5, 12), x)
    with pytest.raises(ValueError, match="same length Lk"):
        ours(x, x, _randn(2, 4, 16))
    with pytest.raises(ValueError, match="batch size"):
        ours(x, _randn(3, 5, 16), _randn(3, 5, 16))
    with pytest.raises(ValueError, match=r"shape \(B, L, features\)"):
        ours(_randn(5, 16), _randn(5, 16), _randn(5, 16))
    with pytest.raises(TypeError, match="boolean"):
        ours(x, x, x, mask=torch.ones(5, 5))
    with pytest.raises(TypeError, match="MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="batch_first"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(16, 4))
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(16, 4, add_bias_kv=True, batch_first=True))


@pytest.mark.parametrize("need_weights", [True, False])
def test_is_causal_is_the_causal_mask(need_weights):
    ours, _ = _pair(seed=4)
    x = _randn(2, 7, 16, seed=5)
    out, w = ours(x, x, x, is_causal=True, need_weights=need_weights)
    ref, ref_w = ours(x, x, x, mask=causal_mask(7))
    torch.testing.assert_close(out, ref, **TOL64)
    if need_weights:
        torch.testing.assert_close(w, ref_w, **TOL64)
    keep = padding_mask(torch.tensor([7, 4]), 7)[:, None, :]  # (B, 1, Lk): combined with the causal mask
    out, _ = ours(x, x, x, mask=keep, is_causal=True, need_weights=need_weights)
    ref, _ = ours(x, x, x, mask=keep & causal_mask(7))
    torch.testing.assert_close(out, ref, **TOL64)
