"""attnlib.functional against independent truths: torch's own functions, hand-worked cases and properties."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlib.functional import causal_mask, masked_softmax, padding_mask, scaled_dot_product_attention

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-9)}


@st.composite
def attention_inputs(draw):
    """Random query/key/value (3-D or 4-D, Lq != Lk, dv != dk), a random broadcastable mask or none, a scale."""
    dtype = draw(st.sampled_from(DTYPES))
    batch = draw(st.sampled_from([(2,), (3,), (2, 3), (1, 2)]))
    lq, lk = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    d, dv = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, lq, d, generator=g, dtype=dtype)
    k = torch.randn(*batch, lk, d, generator=g, dtype=dtype)
    v = torch.randn(*batch, lk, dv, generator=g, dtype=dtype)
    kind = draw(st.sampled_from(["none", "full", "shared", "causal", "padding"]))
    if kind == "none":
        mask = None
    elif kind == "full":  # one mask per batch item and query
        mask = torch.rand(*batch, lq, lk, generator=g) < 0.7
    elif kind == "shared":  # one (Lq, Lk) mask broadcast over the batch
        mask = torch.rand(lq, lk, generator=g) < 0.7
    elif kind == "causal":
        mask = causal_mask(lq, lk)
    else:  # a key padding mask lifted to (B..., 1, Lk)
        lengths = torch.randint(1, lk + 1, (math.prod(batch),), generator=g)
        mask = padding_mask(lengths, lk).reshape(*batch, 1, lk)
    scale = draw(st.one_of(st.none(), st.floats(0.05, 3.0)))
    return q, k, v, mask, scale


def _rows_with_keys(mask, shape):
    """Boolean (..., Lq): which query rows may attend to at least one key."""
    if mask is None:
        return torch.ones(shape[:-1], dtype=torch.bool)
    return mask.expand(shape).any(-1)


@given(attention_inputs())
def test_matches_torch_sdpa(inputs):
    q, k, v, mask, scale = inputs
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    live = _rows_with_keys(mask, q.shape[:-1] + (k.shape[-2],))  # (..., Lq)
    torch.testing.assert_close(out[live], ref[live], **TOL[q.dtype])
    # A query with nothing to attend to: zero weights, zero output, never NaN.
    assert torch.all(out[~live] == 0) and torch.all(weights[~live] == 0)
    # Rows sum to one over the keys they may see; masked keys get exactly zero.
    torch.testing.assert_close(weights.sum(-1)[live], torch.ones_like(weights.sum(-1)[live]), **TOL[q.dtype])
    if mask is not None:
        assert torch.all(weights[~mask.expand_as(weights)] == 0)


@given(attention_inputs())
def test_fused_path_matches_explicit_path(inputs):
    q, k, v, mask, scale = inputs
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    fused, none = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale, need_weights=False)
    assert none is None
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, out, **TOL[q.dtype])


@given(attention_inputs(), st.booleans())
def test_gradients_match_torch(inputs, need_weights):
    q, k, v, mask, scale = inputs
    live = _rows_with_keys(mask, q.shape[:-1] + (k.shape[-2],))
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(*q.shape[:-1], v.shape[-1], generator=g, dtype=q.dtype)
    probe = probe * live.unsqueeze(-1)  # torch's answer for empty rows is not ours; compare the rest

    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    out, _ = scaled_dot_product_attention(*ours, mask=mask, scale=scale, need_weights=need_weights)
    (out * probe).sum().backward()

    theirs = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(*theirs, attn_mask=mask, scale=scale)
    (ref * probe).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.isfinite(a.grad).all()
        torch.testing.assert_close(a.grad, b.grad, **TOL[q.dtype])


def test_hand_worked_example():
    # One query, two keys. Scores q.k = [1, 0], scale 1: weights = [e/(e+1), 1/(e+1)].
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[10.0], [20.0]])
    out, w = scaled_dot_product_attention(q, k, v, scale=1.0)
    e = math.e
    torch.testing.assert_close(w, torch.tensor([[e / (e + 1), 1 / (e + 1)]]))
    torch.testing.assert_close(out, torch.tensor([[(10 * e + 20) / (e + 1)]]))
    # The default scale is 1/sqrt(d) = 1/sqrt(2).
    _, w_default = scaled_dot_product_attention(q, k, v)
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(w_default[0, 0], torch.tensor(math.exp(s) / (math.exp(s) + 1)))


@pytest.mark.parametrize("need_weights", [True, False])
def test_gradcheck_float64_with_an_empty_row(need_weights):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(2, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(2, 5, 2, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.rand(2, 3, 5, generator=g) < 0.6
    mask[0, 1] = False  # a query with nothing to attend to
    mask[1, 2] = True

    def f(q, k, v):
        return scaled_dot_product_attention(q, k, v, mask=mask, need_weights=need_weights)[0]

    assert torch.autograd.gradcheck(f, (q, k, v))
    assert torch.autograd.gradgradcheck(f, (q, k, v))


def test_gradcheck_masked_softmax():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.rand(4, 6, generator=g) < 0.5
    mask[0] = False
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, mask), (scores,))


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_masked_softmax_matches_softmax_on_kept_entries(rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    mask = torch.rand(rows, cols, generator=g) < 0.5
    p = masked_softmax(scores, mask)
    for i in range(rows):
        if mask[i].any():
            expected = torch.softmax(scores[i][mask[i]], dim=0)
            torch.testing.assert_close(p[i][mask[i]], expected)
            assert torch.all(p[i][~mask[i]] == 0)
        else:
            assert torch.all(p[i] == 0)


def test_masked_softmax_other_dim_and_no_mask():
    scores = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(masked_softmax(scores, None, dim=0), torch.softmax(scores, dim=0))
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[:, 2] = False  # along dim 0, column 2 has nothing to keep
    p = masked_softmax(scores, mask, dim=0)
    torch.testing.assert_close(p[:, [0, 1, 3, 4]], torch.softmax(scores[:, [0, 1, 3, 4]], dim=0))
    assert torch.all(p[:, 2] == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_huge_logits_stay_finite(dtype):
    scores = torch.tensor([[1e30, -1e30, 0.0], [3e38, 3e38, -3e38]]).to(dtype)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    p = masked_softmax(scores, mask)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p.float(), torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]))
    g = torch.Generator().manual_seed(3)
    q = 1e3 * torch.randn(2, 4, 8, generator=g).to(dtype)
    k = 1e3 * torch.randn(2, 6, 8, generator=g).to(dtype)
    v = torch.randn(2, 6, 3, generator=g).to(dtype)
    for need_weights in (True, False):
        out, _ = scaled_dot_product_attention(q, k, v, need_weights=need_weights)
        assert torch.isfinite(out).all()


def test_fully_masked_everything_gives_zeros_and_zero_grad():
    q = torch.randn(2, 3, 4, requires_grad=True)
    k = torch.randn(2, 5, 4, requires_grad=True)
    v = torch.randn(2, 5, 6, requires_grad=True)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    for need_weights in (True, False):
        out, _ = scaled_dot_product_attention(q, k, v, mask=mask, need_weights=need_weights)
        assert torch.all(out == 0)
        out.sum().backward()
        for t in (q, k, v):
            assert torch.all(t.grad == 0)
            t.grad = None


def test_broadcast_batch_dimensions():
    # A single key/value set shared by every batch item and head broadcasts like torch.matmul.
    q = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    k = torch.randn(5, 8, dtype=torch.float64)
    v = torch.randn(5, 2, dtype=torch.float64)
    out, w = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 4, 2) and w.shape == (2, 3, 4, 5)
    fused, _ = scaled_dot_product_attention(q, k, v, need_weights=False)
    torch.testing.assert_close(fused, out)
    ref = F.scaled_dot_product_attention(q, k.expand(2, 3, 5, 8), v.expand(2, 3, 5, 2))
    torch.testing.assert_close(out, ref)


def test_dropout_zeroes_some_weights_but_reports_pre_dropout_weights():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 16, 8), torch.randn(1, 16, 8), torch.ones(1, 16, 1)
    out, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 16))  # the weights returned are before dropout
    # With all values 1, each output is the sum of the kept weights scaled by 1/(1-p): not all 1 any more.
    assert not torch.allclose(out, torch.ones_like(out))
    assert torch.isclose(out.mean(), torch.tensor(1.0), atol=0.3)
    out0, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    torch.testing.assert_close(out0, torch.ones_like(out0))


def test_permutation_equivariance_and_key_permutation_invariance():
    # Attention never uses order: permuting queries permutes outputs; permuting key/value pairs changes nothing.
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    out, _ = scaled_dot_product_attention(q, k, v)
    perm = torch.randperm(6, generator=g)
    out_q, _ = scaled_dot_product_attention(q[perm], k, v)
    out_kv, _ = scaled_dot_product_attention(q, k[perm], v[perm])
    torch.testing.assert_close(out_q, out[perm])
    torch.testing.assert_close(out_kv, out)


# ---------------------------------------------------------------------------------------------------------------
# Masks.


def test_causal_mask_by_hand():
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool))
    assert causal_mask(3).dtype == torch.bool


@given(st.integers(1, 8), st.integers(1, 8))
def test_causal_mask_matches_torch_is_causal(lq, lk):
    g = torch.Generator().manual_seed(lq * 10 + lk)
    q, k, v = torch.randn(lq, 4, generator=g), torch.randn(lk, 4, generator=g), torch.randn(lk, 3, generator=g)
    ours, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(lq, lk))
    ref = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
    torch.testing.assert_close(ours, ref)


def test_causality_property():
    # With a causal mask, changing a later key/value changes no earlier output.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 7, 4, generator=g, dtype=torch.float64)
    out, _ = scaled_dot_product_attention(x, x, x, mask=causal_mask(7))
    x2 = x.clone()
    x2[0, 5] += 10.0
    out2, _ = scaled_dot_product_attention(x2, x2, x2, mask=causal_mask(7))
    torch.testing.assert_close(out2[0, :5], out[0, :5])
    assert not torch.allclose(out2[0, 5:], out[0, 5:])


def test_padding_mask_by_hand():
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(padding_mask(torch.tensor([2, 4, 0]), 4), expected)
    assert torch.equal(padding_mask([2, 4, 0], 4), expected)
    assert padding_mask([1, 3]).shape == (2, 3)  # max_len defaults to the longest


def test_padding_mask_hides_padded_keys():
    # Attention over a padded batch equals attention over each sequence cut to its true length.
    g = torch.Generator().manual_seed(6)
    lengths = [3, 5]
    q, k, v = torch.randn(2, 4, 8, generator=g), torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 2, generator=g)
    out, _ = scaled_dot_product_attention(q, k, v, mask=padding_mask(lengths, 5)[:, None, :])
    for b, n in enumerate(lengths):
        alone, _ = scaled_dot_product_attention(q[b], k[b, :n], v[b, :n])
        torch.testing.assert_close(out[b], alone)


# is_causal: the same as the causal mask, and the pure causal case reaches torch's kernel as is_causal=True.


@pytest.mark.parametrize(("lq", "lk"), [(5, 5), (3, 6), (6, 3)])
@pytest.mark.parametrize("need_weights", [True, False])
def test_is_causal_equals_the_causal_mask_alone_and_with_another_mask(lq, lk, need_weights):
    g = torch.Generator().manual_seed(lq * 10 + lk)
    q = torch.randn(2, 3, lq, 4, generator=g)
    k, v = torch.randn(2, 3, lk, 4, generator=g), torch.randn(2, 3, lk, 5, generator=g)
    causal = causal_mask(lq, lk)
    out, w = scaled_dot_product_attention(q, k, v, is_causal=True, need_weights=need_weights)
    ref, ref_w = scaled_dot_product_attention(q, k, v, mask=causal, need_weights=True)
    torch.testing.assert_close(out, ref)
    if need_weights:
        torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    pad = padding_mask(torch.tensor([lk, max(1, lk - 2)]), lk)[:, None, None, :]  # (2, 1, 1, Lk)
    out, _ = scaled_dot_product_attention(q, k, v, mask=pad, is_causal=True, need_weights=need_weights)
    ref, _ = scaled_dot_product_attention(q, k, v, mask=pad & causal, need_weights=True)
    torch.testing.assert_close(out, ref)


def test_pure_causal_attention_reaches_torch_as_is_causal_without_a_mask():
    q = k = v = torch.randn(1, 2, 6, 4)
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    with mock.patch.object(F, "scaled_dot_product_attention", spy):
        scaled_dot_product_attention(q, k, v, is_causal=True, need_weights=False)
        scaled_dot_product_attention(q, k, v, mask=causal_mask(6), need_weights=False)
    assert calls[0].get("is_causal") is True and calls[0].get("attn_mask") is None
    assert not calls[1].get("is_causal") and calls[1]["attn_mask"] is not None  # an explicit mask stays a mask
    with pytest.raises(TypeError, match="is_causal must be a bool"):
        scaled_dot_product_attention(q, k, v, is_causal=1)


def test_is_causal_gradients_equal_the_causal_mask():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grads = []
    for options in ({"is_causal": True}, {"mask": causal_mask(5)}):
        out, _ = scaled_dot_product_attention(q, k, v, need_weights=False, **options)
        grads.append(torch.autograd.grad(out.sum(), (q, k, v)))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
