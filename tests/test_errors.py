"""Bad input gets a TypeError or ValueError that names the argument and what it got, before torch fails inside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlib.attention import NadarayaWatson
from attnlib.functional import (
    causal_mask,
    gaussian_kernel_attention,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
)

Q = torch.randn(2, 3, 8)
K = torch.randn(2, 5, 8)
V = torch.randn(2, 5, 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(key=torch.randn(2, 5, 7)), ValueError, ["query", "key", "d=8", "d=7"]),
        (dict(value=torch.randn(2, 6, 4)), ValueError, ["key", "value", "Lk=5", "Lk=6"]),
        (dict(query=torch.randn(3, 3, 8)), ValueError, ["batch", "(3,)", "(2,)"]),
        (dict(query=torch.randn(8)), ValueError, ["query", "at least 2 dimensions", "(8,)"]),
        (dict(query=torch.ones(2, 3, 8, dtype=torch.long)), TypeError, ["query", "floating-point", "torch.int64"]),
        (dict(key=torch.ones(2, 5, 8, dtype=torch.int32)), TypeError, ["key", "torch.int32"]),
        (dict(value=torch.ones(2, 5, 4, dtype=torch.bool)), TypeError, ["value", "torch.bool"]),
        (dict(value=V.double()), TypeError, ["dtype", "torch.float32", "torch.float64"]),
        (dict(query=Q.numpy()), TypeError, ["query", "torch.Tensor", "ndarray"]),
        (dict(mask=torch.ones(2, 3, 4, dtype=torch.bool)), ValueError, ["mask", "(2, 3, 4)", "(2, 3, 5)"]),
        (dict(mask=torch.ones(3, 2, 3, 5, dtype=torch.bool)), ValueError, ["mask", "(3, 2, 3, 5)", "(2, 3, 5)"]),
        (dict(mask=torch.ones(2, 3, 5)), TypeError, ["mask", "boolean", "torch.float32"]),
        (dict(mask=torch.ones(2, 3, 5, dtype=torch.uint8)), TypeError, ["mask", "torch.uint8"]),
        (dict(mask=[[True] * 5] * 3), TypeError, ["mask", "torch.Tensor", "list"]),
        (dict(dropout_p=1.0), ValueError, ["dropout_p", "[0, 1)", "1.0"]),
        (dict(dropout_p=-0.1), ValueError, ["dropout_p", "-0.1"]),
        (dict(dropout_p="0.1"), TypeError, ["dropout_p", "str"]),
        (dict(scale=float("nan")), ValueError, ["scale", "finite"]),
        (dict(scale="big"), TypeError, ["scale", "str"]),
        (dict(need_weights="no"), TypeError, ["need_weights", "bool", "str"]),
    ],
)
def test_scaled_dot_product_attention_rejects(kwargs, error, words):
    args = dict(query=Q, key=K, value=V) | kwargs
    with pytest.raises(error) as info:
        scaled_dot_product_attention(**args)
    for word in words:
        assert word in str(info.value), f"{word!r} not in: {info.value}"


@pytest.mark.parametrize("need_weights", [True, False])
def test_errors_come_on_both_paths(need_weights):
    with pytest.raises(ValueError, match="mask"):
        scaled_dot_product_attention(Q, K, V, mask=torch.ones(3, 4, dtype=torch.bool), need_weights=need_weights)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_mask_on_another_device():
    with pytest.raises(ValueError, match="mask is on"):
        scaled_dot_product_attention(Q.cuda(), K.cuda(), V.cuda(), mask=causal_mask(3, 5))


def test_masked_softmax_rejects():
    scores = torch.randn(3, 4)
    with pytest.raises(TypeError, match="scores.*torch.int64"):
        masked_softmax(torch.ones(3, 4, dtype=torch.long), None)
    with pytest.raises(TypeError, match="mask.*boolean.*torch.int64"):
        masked_softmax(scores, torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 3\).*\(3, 4\)"):
        masked_softmax(scores, torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3, 4\)"):
        masked_softmax(scores, torch.ones(2, 3, 4, dtype=torch.bool))  # would silently enlarge the result
    with pytest.raises(ValueError, match="dim=2"):
        masked_softmax(scores, None, dim=2)


@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        ((0,), ValueError, "lq must be at least 1, got 0"),
        ((3, 0), ValueError, "lk must be at least 1, got 0"),
        ((2.5,), TypeError, "lq must be an int, got float"),
        ((torch.tensor(3),), TypeError, "lq must be an int, got Tensor"),
        ((True,), TypeError, "lq must be an int, got bool"),
    ],
)
def test_causal_mask_rejects(args, error, pattern):
    with pytest.raises(error, match=pattern):
        causal_mask(*args)


def test_causal_mask_accepts_numpy_ints():
    assert causal_mask(np.int64(3)).shape == (3, 3)


@pytest.mark.parametrize(
    ("lengths", "max_len", "error", "pattern"),
    [
        (torch.tensor([2, 6]), 5, ValueError, r"at most max_len=5, got \[2, 6\]"),
        (torch.tensor([2, -1]), 5, ValueError, r"non-negative, got \[2, -1\]"),
        (torch.tensor([2.0, 3.0]), 5, TypeError, "integers, got dtype torch.float32"),
        (torch.tensor([[2, 3]]), 5, ValueError, r"one-dimensional \(B,\), got shape \(1, 2\)"),
        ([2, 3.5], 5, TypeError, "sequence of ints"),
        ("23", 5, TypeError, "sequence of ints"),
        ([2, 3], 4.0, TypeError, "max_len must be an int, got float"),
        ([], -1, ValueError, "max_len must be non-negative, got -1"),
    ],
)
def test_padding_mask_rejects(lengths, max_len, error, pattern):
    with pytest.raises(error, match=pattern):
        padding_mask(lengths, max_len)


def test_gaussian_kernel_attention_rejects():
    x = torch.randn(4, 1)
    with pytest.raises(ValueError, match="bandwidth must be positive and finite, got 0"):
        gaussian_kernel_attention(x, x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="bandwidth must be positive and finite, got -1"):
        gaussian_kernel_attention(x, x, x, bandwidth=torch.tensor(-1.0))
    with pytest.raises(ValueError, match=r"bandwidth must be a scalar, got a tensor of shape \(2,\)"):
        gaussian_kernel_attention(x, x, x, bandwidth=torch.ones(2))
    with pytest.raises(TypeError, match="bandwidth.*str"):
        gaussian_kernel_attention(x, x, x, bandwidth="wide")
    with pytest.raises(ValueError, match="query and key must have the same feature size"):
        gaussian_kernel_attention(x, torch.randn(4, 2), x)
    with pytest.raises(ValueError, match="bandwidth must be a positive, finite number"):
        NadarayaWatson(bandwidth=-2.0)
    with pytest.raises(TypeError, match="bandwidth must be a positive float, got bool"):
        NadarayaWatson(bandwidth=True)
    assert NadarayaWatson(bandwidth=np.float32(0.5)).bandwidth.item() == pytest.approx(0.5)
