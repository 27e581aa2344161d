"""Position encodings against the formula in plain Python, the relative-position property, and their modules; rotary
position embedding against complex multiplication, a 2x2 rotation by hand and its relative-position property."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlib.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
    sinusoidal_encoding,
)


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


# ----------------------------------------------------------------------------------------------------------------
# Rotary position embedding


def _rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE as complex multiplication: the pair (x_2i, x_2i+1) is the number x_2i + i x_2i+1, times e^{i m theta}."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angle = positions.double()[:, None] * theta  # (T, d/2)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())  # (..., T, d/2)
    turned = z * torch.polar(torch.ones_like(angle), angle)  # (..., T, d/2)
    return torch.view_as_real(turned).flatten(-2).to(x.dtype)  # (..., T, d)


def _one(x: torch.Tensor, m: int) -> torch.Tensor:
    """Rotate one vector x (d,) as if it stood at position m."""
    return apply_rotary(x[None, :], torch.tensor([m]))[0]


@pytest.mark.parametrize(("shape", "base"), [((2, 3, 7, 8), 10000.0), ((5, 2), 10000.0), ((4, 6), 50.0)])
def test_rotary_equals_complex_multiplication(shape, base):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = shape[-2]
    for positions in (torch.arange(t), torch.randint(-20, 300, (t,), generator=torch.Generator().manual_seed(1))):
        torch.testing.assert_close(apply_rotary(x, positions, base), _rope_complex(x, positions, base))
    torch.testing.assert_close(apply_rotary(x, base=base), _rope_complex(x, torch.arange(t), base))


def test_rotary_keeps_norms_shape_and_dtype():
    x = torch.randn(3, 4, 11, 16)
    y = apply_rotary(x, torch.arange(100, 111))
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    assert not torch.allclose(y, x)


def test_rotary_position_zero_is_the_identity():
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    y = apply_rotary(x, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    torch.testing.assert_close(apply_rotary(x)[:, 0], x[:, 0], atol=0, rtol=0)  # the default starts at 0


@pytest.mark.parametrize("m", [0, 1, 2, 5, -3])
def test_rotary_in_two_dimensions_is_a_rotation_by_m(m):
    # d = 2: a single pair, theta_0 = base^0 = 1, so position m rotates by m radians
    x = torch.tensor([0.3, -1.7], dtype=torch.float64)
    c, s = math.cos(m), math.sin(m)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    torch.testing.assert_close(_one(x, m), rotation @ x, atol=1e-12, rtol=0)


def test_rotary_frequencies_by_hand():
    # d = 4, base = 100: the pairs turn by m * 1 and m * 100^(-2/4) = m / 10
    x = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    y = apply_rotary(x[None], torch.tensor([3]), base=100.0)[0]
    expected = torch.tensor([math.cos(3), math.sin(3), math.cos(0.3), math.sin(0.3)], dtype=torch.float64)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)


@given(
    m=st.integers(0, 500),
    n=st.integers(0, 500),
    shift=st.integers(-200, 500),
    half=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_rotary_scores_depend_on_the_offset_only(m, n, shift, half, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 2 * half, generator=g, dtype=torch.float64)
    score = _one(q, m) @ _one(k, n)
    torch.testing.assert_close(_one(q, m + shift) @ _one(k, n + shift), score, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(_one(q, m - n) @ k, score, atol=1e-9, rtol=1e-9)  # <R_m q, R_n k> = <R_{m-n} q, k>


def test_rotary_gradcheck():
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: apply_rotary(t, torch.arange(3, 8)), (x,))
    assert torch.autograd.gradgradcheck(lambda t: apply_rotary(t), (x,))


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "words"),
    [
        ([1.0, 2.0], {}, TypeError, ["x", "torch.Tensor", "list"]),
        (torch.ones(3, 4, dtype=torch.long), {}, TypeError, ["x", "floating-point", "torch.int64"]),
        (torch.ones(4), {}, ValueError, ["x", "(..., T, d)", "(4,)"]),
        (torch.ones(3, 5), {}, ValueError, ["even", "d=5"]),
        (torch.ones(3, 4), dict(positions=[0, 1, 2]), TypeError, ["positions", "list"]),
        (torch.ones(3, 4), dict(positions=torch.arange(3.0)), TypeError, ["positions", "integers", "torch.float32"]),
        (torch.ones(3, 4), dict(positions=torch.ones(3, dtype=torch.bool)), TypeError, ["positions", "torch.bool"]),
        (torch.ones(3, 4), dict(positions=torch.arange(4)), ValueError, ["positions", "(3,)", "(4,)"]),
        (torch.ones(3, 4), dict(positions=torch.arange(3)[None]), ValueError, ["positions", "(1, 3)"]),
        (torch.ones(3, 4), dict(positions=torch.arange(3, device="meta")), ValueError, ["positions", "meta"]),
        (torch.ones(3, 4), dict(base=0.0), ValueError, ["base", "positive", "0.0"]),
        (torch.ones(3, 4), dict(base=-2.0), ValueError, ["base", "-2.0"]),
        (torch.ones(3, 4), dict(base=float("inf")), ValueError, ["base", "inf"]),
        (torch.ones(3, 4), dict(base="10000"), TypeError, ["base", "str"]),
        (torch.ones(3, 4), dict(base=True), TypeError, ["base", "bool"]),
    ],
)
def test_rotary_rejects_bad_arguments(x, kwargs, error, words):
    with pytest.raises(error) as info:
        apply_rotary(x, **kwargs)
    for word in words:
        assert word in str(info.value)
