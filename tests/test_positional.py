"""Position encodings against the formula in plain Python, the relative-position property, and their modules."""

from __future__ import annotations

import math

import pytest
import torch

from attnlib.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding


def _formula(max_len: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    rows = []
    for p in range(max_len):
        row = []
        for j in range(dim):
            i = j // 2  # dimensions 2i and 2i+1 share one frequency
            angle = p / base ** (2 * i / dim)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize(
    ("max_len", "dim", "base"), [(1, 1, 10000.0), (20, 8, 10000.0), (13, 7, 10000.0), (9, 6, 50.0)]
)
def test_sinusoidal_matches_formula(max_len, dim, base):
    table = sinusoidal_encoding(max_len, dim, base, dtype=torch.float64)
    assert table.shape == (max_len, dim)
    torch.testing.assert_close(table, _formula(max_len, dim, base), atol=1e-12, rtol=0)


def test_sinusoidal_dtype():
    assert sinusoidal_encoding(4, 6).dtype == torch.float32
    torch.testing.assert_close(sinusoidal_encoding(4, 6), _formula(4, 6).float())


def _pairs(table: torch.Tensor) -> torch.Tensor:
    return table.reshape(table.shape[0], -1, 2)  # (max_len, dim/2, 2): (sin, cos) of one frequency


@pytest.mark.parametrize("k", [1, 3, 10])
def test_shift_by_k_is_a_rotation_that_depends_on_k_only(k):
    pairs = _pairs(sinusoidal_encoding(40, 16, dtype=torch.float64))
    start, end = pairs[:-k], pairs[k:]  # P[p] and P[p + k] for every p
    for i in range(pairs.shape[1]):
        a, b = start[:, i], end[:, i]  # (positions, 2)
        # One matrix R with b_p = R a_p for every p: solve least squares over all positions, then check the fit
        r = torch.linalg.lstsq(a, b).solution.T  # (2, 2)
        torch.testing.assert_close(a @ r.T, b, atol=1e-10, rtol=0)
        # R is a rotation: orthogonal with determinant 1
        torch.testing.assert_close(r @ r.T, torch.eye(2, dtype=torch.float64), atol=1e-10, rtol=0)
        assert torch.linalg.det(r).item() == pytest.approx(1.0, abs=1e-10)


def test_dot_product_depends_on_offset_only():
    table = sinusoidal_encoding(50, 12, dtype=torch.float64)
    gram = table @ table.T  # gram[p, q] = P[p] . P[q]
    for k in range(-10, 11):
        diagonal = torch.diagonal(gram, offset=k)  # all P[p] . P[p + k]
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), atol=1e-10, rtol=0)
    assert not torch.allclose(torch.diagonal(gram, 1)[0], torch.diagonal(gram, 2)[0])  # but does depend on k


@pytest.mark.parametrize(
    ("args", "error", "word"),
    [
        ((0, 4), ValueError, "max_len"),
        ((4, 0), ValueError, "dim"),
        ((4, 4.0), TypeError, "dim"),
        ((4.0, 4), TypeError, "max_len"),
        ((4, 4, 1.0), ValueError, "base"),
        ((4, 4, 0.5), ValueError, "base"),
        ((4, 4, float("inf")), ValueError, "base"),
        ((4, 4, "10000"), TypeError, "base"),
    ],
)
def test_sinusoidal_rejects_bad_arguments(args, error, word):
    with pytest.raises(error, match=word):
        sinusoidal_encoding(*args)


# ----------------------------------------------------------------------------------------------------------------
# Modules


def test_sinusoidal_module_adds_exactly_the_table():
    layer = SinusoidalPositionalEncoding(6, max_len=10)
    x = torch.randn(3, 7, 6)
    torch.testing.assert_close(layer(x), x + _formula(7, 6).float())
    torch.testing.assert_close(layer(torch.zeros(7, 6)), _formula(7, 6).float())  # no batch dimension
    assert list(layer.parameters()) == []  # nothing to train


def test_sinusoidal_module_eval_ignores_dropout():
    layer = SinusoidalPositionalEncoding(6, max_len=10, dropout=0.5).eval()
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(layer(x), x + _formula(4, 6).float())


@pytest.mark.parametrize(
    ("x", "error", "word"),
    [
        (torch.randn(2, 11, 6), ValueError, "max_len"),
        (torch.randn(2, 5, 4), ValueError, "(..., L, 6)"),
        (torch.randn(6), ValueError, "shape"),
        (torch.ones(2, 5, 6, dtype=torch.long), TypeError, "floating-point"),
    ],
)
def test_positional_modules_reject_bad_input(x, error, word):
    for layer in (SinusoidalPositionalEncoding(6, max_len=10), LearnedPositionalEmbedding(10, 6)):
        with pytest.raises(error) as info:
            layer(x)
        assert word in str(info.value)


def test_sinusoidal_module_moves_with_to():
    layer = SinusoidalPositionalEncoding(4, max_len=8).to(torch.float64)
    assert layer.pe.dtype == torch.float64
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    # the buffer was built in float32, so .to(float64) keeps float32 precision
    torch.testing.assert_close(layer(x), x + _formula(5, 4), atol=1e-6, rtol=0)
    meta = SinusoidalPositionalEncoding(4, max_len=8).to("meta")  # a device move without a GPU
    assert meta.pe.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_sinusoidal_module_moves_to_gpu():
    layer = SinusoidalPositionalEncoding(4, max_len=8).to("cuda")
    x = torch.randn(2, 5, 4, device="cuda")
    torch.testing.assert_close(layer(x).cpu(), x.cpu() + _formula(5, 4).float())


def test_learned_embedding_adds_its_weight_and_learns():
    torch.manual_seed(0)
    layer = LearnedPositionalEmbedding(10, 6)
    x = torch.randn(3, 7, 6)
    y = layer(x)
    torch.testing.assert_close(y, x + layer.weight[:7].detach())
    y.sum().backward()
    # d(sum)/d weight[p] counts the 3 batch items at each used position, and nothing beyond L = 7
    expected = torch.zeros(10, 6)
    expected[:7] = 3.0
    torch.testing.assert_close(layer.weight.grad, expected)
    assert layer.weight.requires_grad and any(p is layer.weight for p in layer.parameters())
