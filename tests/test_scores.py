"""Scores and their normalisers against hand-worked rows, torch's own functions and properties."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlib.functional import NORMALIZERS, cosine_scores, dot_product_scores, normalize_scores

TOL64 = dict(atol=1e-12, rtol=1e-10)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ----------------------------------------------------------------------------------------------------------------
# dot_product_scores


def test_dot_product_scores_by_hand():
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    k = torch.tensor([[5.0, 6.0], [7.0, 8.0]], dtype=torch.float64)
    # q_i . k_j: 1*5+2*6=17, 1*7+2*8=23, 3*5+4*6=39, 3*7+4*8=53
    plain = torch.tensor([[17.0, 23.0], [39.0, 53.0]], dtype=torch.float64)
    torch.testing.assert_close(dot_product_scores(q, k, scale=1.0), plain, **TOL64)
    torch.testing.assert_close(dot_product_scores(q, k), plain / math.sqrt(2), **TOL64)  # default 1/sqrt(d)
    torch.testing.assert_close(dot_product_scores(q, k, scale=0.25), plain * 0.25, **TOL64)


@given(
    st.sampled_from([(), (3,), (2, 3)]),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 8),
    st.one_of(st.none(), st.floats(0.05, 3.0)),
    st.integers(0, 2**31 - 1),
)
def test_dot_product_scores_match_matmul(batch, lq, lk, d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, lq, d, generator=g, dtype=torch.float64)
    k = torch.randn(*batch, lk, d, generator=g, dtype=torch.float64)
    s = 1 / math.sqrt(d) if scale is None else scale
    expected = torch.einsum("...id,...jd->...ij", q, k) * s
    got = dot_product_scores(q, k, scale=scale)
    assert got.shape == (*batch, lq, lk)
    torch.testing.assert_close(got, expected, **TOL64)


def test_dot_product_scores_broadcast_batch():
    q = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    k = torch.randn(1, 5, 6, 4, dtype=torch.float64)
    torch.testing.assert_close(dot_product_scores(q, k), q @ k.transpose(-2, -1) / 2.0, **TOL64)


# ----------------------------------------------------------------------------------------------------------------
# cosine_scores


@given(
    st.sampled_from([(), (2,), (2, 3)]), st.integers(1, 6), st.integers(1, 6), st.integers(1, 8), st.integers(0, 999)
)
def test_cosine_scores_match_torch(batch, lq, lk, d, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, lq, d, generator=g, dtype=torch.float64)
    k = torch.randn(*batch, lk, d, generator=g, dtype=torch.float64)
    expected = F.cosine_similarity(q.unsqueeze(-2), k.unsqueeze(-3), dim=-1)  # (..., Lq, 1, d) vs (..., 1, Lk, d)
    got = cosine_scores(q, k)
    assert got.shape == (*batch, lq, lk)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-9)
    assert torch.all(got.abs() <= 1 + 1e-12)


def test_cosine_scores_ignore_length():
    q = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    k = torch.tensor([[5.0, 0.0], [2.0, 2.0]])
    # cos(0) = 1, cos(45 deg) = 1/sqrt(2), cos(90 deg) = 0
    expected = torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]])
    torch.testing.assert_close(cosine_scores(q, k), expected)


def test_cosine_scores_zero_vector_gives_zero_not_nan():
    q = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], requires_grad=True)
    k = torch.tensor([[1.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    s = cosine_scores(q, k)
    assert torch.isfinite(s).all()
    assert s[0].eq(0).all() and s[:, 1].eq(0).all()
    s.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_cosine_scores_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        cosine_scores(torch.randn(2, 3), torch.randn(4, 3), eps=0.0)


# ----------------------------------------------------------------------------------------------------------------
# normalize_scores on one hand-worked row: scores s, key 2 masked, so n = 3 keys may be seen.

ROW = [1.0, -0.5, 2.0, 0.3]
KEEP = [True, True, False, True]


def _expected_row(method: str, keep: list[bool]) -> list[float]:
    n = sum(keep)
    seen = [s for s, m in zip(ROW, keep, strict=True) if m]
    if method == "softmax":
        z = sum(math.exp(s) for s in seen)
        w = [math.exp(s) / z for s in ROW]
    elif method == "relu":
        w = [max(s, 0.0) / n for s in ROW]
    elif method == "relu_norm":
        z = sum(max(s, 0.0) for s in seen)
        w = [max(s, 0.0) / z for s in ROW]
    else:  # sigmoid(s - log n)
        w = [_sigmoid(s - math.log(n)) for s in ROW]
    return [wi if m else 0.0 for wi, m in zip(w, keep, strict=True)]


@pytest.mark.parametrize("method", NORMALIZERS)
@pytest.mark.parametrize("keep", [KEEP, [True] * 4], ids=["masked", "unmasked"])
def test_normalize_scores_hand_worked_row(method, keep):
    scores = torch.tensor([ROW], dtype=torch.float64)
    mask = torch.tensor([keep]) if not all(keep) else None
    got = normalize_scores(scores, mask, method=method)
    expected = torch.tensor([_expected_row(method, keep)], dtype=torch.float64)
    torch.testing.assert_close(got, expected, **TOL64)


def test_normalize_scores_default_is_softmax():
    scores = torch.randn(3, 5)
    torch.testing.assert_close(normalize_scores(scores), torch.softmax(scores, dim=-1))


@st.composite
def scores_and_mask(draw):
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    lq, lk = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scores = 3 * torch.randn(*batch, lq, lk, generator=g, dtype=torch.float64)
    shape = draw(st.sampled_from(["full", "shared", "keys"]))
    if shape == "full":
        mask = torch.rand(*batch, lq, lk, generator=g) < 0.6
    elif shape == "shared":  # one (Lq, Lk) mask broadcast over the batch
        mask = torch.rand(lq, lk, generator=g) < 0.6
    else:  # one row of keys broadcast over the queries
        mask = torch.rand(*batch, 1, lk, generator=g) < 0.6
    return scores, mask


@pytest.mark.parametrize("method", NORMALIZERS)
@given(inputs=scores_and_mask())
def test_masked_keys_get_exactly_zero(method, inputs):
    scores, mask = inputs
    w = normalize_scores(scores, mask, method=method)
    full = mask.expand(scores.shape)
    assert w.shape == scores.shape
    assert torch.isfinite(w).all()
    assert torch.all(w[~full] == 0)
    assert torch.all(w >= 0)


@given(inputs=scores_and_mask())
def test_softmax_and_relu_norm_rows_sum_to_one(inputs):
    scores, mask = inputs
    full = mask.expand(scores.shape)
    live = full.any(-1)  # rows that may attend to something
    soft = normalize_scores(scores, mask, method="softmax").sum(-1)
    torch.testing.assert_close(soft[live], torch.ones_like(soft[live]))
    # relu_norm sums to one where some visible score is positive, and to zero where none is
    positive = ((scores > 0) & full).any(-1)
    rn = normalize_scores(scores, mask, method="relu_norm").sum(-1)
    torch.testing.assert_close(rn[positive], torch.ones_like(rn[positive]))
    assert torch.all(rn[~positive] == 0)


@pytest.mark.parametrize("method", NORMALIZERS)
def test_fully_masked_row_gives_zeros(method):
    # seeded, and row 0 holds a positive score: an unseeded draw of four negative scores (1 time in 16) would
    # silence that row under ReLU for a reason that has nothing to do with the mask
    scores = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    scores[0, 0, 0] = 1.0
    scores.requires_grad_()
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of batch item 0 may see no key
    w = normalize_scores(scores, mask, method=method)
    assert torch.all(w[0, 1] == 0)
    assert w[0, 0].abs().sum() > 0  # other rows are not silenced
    w.sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[0, 1] == 0)


def _away_from_zero(x: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    # ReLU has a kink at 0, where finite differences and the analytic gradient disagree
    return x + margin * torch.sign(x)


@pytest.mark.parametrize("method", NORMALIZERS)
@pytest.mark.parametrize("with_mask", [False, True])
def test_normalize_scores_gradcheck(method, with_mask):
    g = torch.Generator().manual_seed(3)
    scores = _away_from_zero(torch.randn(2, 3, 5, generator=g, dtype=torch.float64))
    scores[..., 0] = scores[..., 0].abs()  # at least one positive score per row, so relu_norm is smooth there
    mask = None
    if with_mask:
        mask = torch.rand(2, 3, 5, generator=g) < 0.6
        mask[..., 0] = True
        mask[1, 2] = False  # and one fully masked row
    scores.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: normalize_scores(s, mask, method=method), (scores,))


def test_unknown_method_raises_value_error():
    with pytest.raises(ValueError, match="method") as info:
        normalize_scores(torch.randn(2, 3), method="sparsemax")
    assert "sparsemax" in str(info.value)
