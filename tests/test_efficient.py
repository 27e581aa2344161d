"""attnlib.efficient.chunked_attention against scaled_dot_product_attention and torch's own SDPA."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlib.efficient import ATTENTION_METHODS, attention_peak_memory, attention_seconds, chunked_attention
from attnlib.functional import causal_mask, padding_mask, scaled_dot_product_attention


def _qkv(batch, lq, lk, d, dv, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*batch, lq, d, generator=g, dtype=dtype),
        torch.randn(*batch, lk, d, generator=g, dtype=dtype),
        torch.randn(*batch, lk, dv, generator=g, dtype=dtype),
    )


@settings(max_examples=60, deadline=None)
@given(
    batch=st.sampled_from([(), (1,), (2,), (2, 3)]),
    lq=st.integers(1, 20),
    lk=st.integers(1, 20),
    d=st.integers(1, 8),
    dv=st.integers(1, 8),
    chunk=st.integers(1, 25),
    seed=st.integers(0, 10_000),
)
def test_equals_torch_sdpa_for_any_shape_and_chunk(batch, lq, lk, d, dv, chunk, seed):
    q, k, v = _qkv(batch, lq, lk, d, dv, seed)
    expected = F.scaled_dot_product_attention(q, k, v)  # torch's own, an independent implementation
    torch.testing.assert_close(chunked_attention(q, k, v, chunk_size=chunk), expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    lq=st.integers(1, 16),
    lk=st.integers(1, 16),
    chunk=st.integers(1, 20),
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["causal", "padding", "random"]),
)
def test_masks_match_the_plain_attention(lq, lk, chunk, seed, kind):
    q, k, v = _qkv((2, 3), lq, lk, 4, 5, seed)
    g = torch.Generator().manual_seed(seed)
    if kind == "causal":
        mask = causal_mask(lq, lk)
    elif kind == "padding":
        lengths = torch.randint(1, lk + 1, (2,), generator=g)
        mask = padding_mask(lengths, lk)[:, None, None, :]  # (2, 1, 1, Lk)
    else:
        mask = torch.rand(2, 3, lq, lk, generator=g) < 0.6  # some rows may be all False
    expected, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    got = chunked_attention(q, k, v, mask=mask, chunk_size=chunk)
    assert not torch.isnan(got).any()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_a_row_with_nothing_to_attend_to_gives_zeros_not_nan():
    q, k, v = _qkv((1,), 3, 6, 4, 4)
    mask = torch.ones(1, 3, 6, dtype=torch.bool)
    mask[0, 1] = False  # the second query may attend to nothing
    out = chunked_attention(q, k, v, mask=mask, chunk_size=4)
    assert torch.equal(out[0, 1], torch.zeros(4, dtype=out.dtype))
    assert (out[0, 0] != 0).any() and (out[0, 2] != 0).any()


def test_large_scores_do_not_overflow():
    # the online softmax subtracts the running maximum, so scores of 1e4 are as safe as the plain softmax's
    q, k, v = _qkv((), 5, 9, 4, 3)
    out = chunked_attention(q * 100, k * 100, v, chunk_size=2)
    expected, _ = scaled_dot_product_attention(q * 100, k * 100, v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected)


def test_a_worked_example():
    # one query, keys with scores 0 and ln 3 (scale 1): weights 1/4 and 3/4, in two chunks of one key
    q = torch.tensor([[1.0]], dtype=torch.float64)
    k = torch.tensor([[0.0], [torch.log(torch.tensor(3.0)).item()]], dtype=torch.float64)
    v = torch.tensor([[4.0], [8.0]], dtype=torch.float64)
    out = chunked_attention(q, k, v, chunk_size=1, scale=1.0)
    torch.testing.assert_close(out, torch.tensor([[0.25 * 4 + 0.75 * 8]], dtype=torch.float64))


def test_custom_scale_and_float32():
    q, k, v = _qkv((2,), 7, 11, 8, 8, dtype=torch.float32)
    expected, _ = scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(chunked_attention(q, k, v, chunk_size=3, scale=0.3), expected, rtol=1e-5, atol=1e-6)


def test_gradients_match_in_float64():
    q, k, v = (t.requires_grad_() for t in _qkv((2,), 4, 7, 3, 2))
    mask = causal_mask(4, 7)
    assert torch.autograd.gradcheck(lambda a, b, c: chunked_attention(a, b, c, mask=mask, chunk_size=3), (q, k, v))
    plain, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    grads_plain = torch.autograd.grad(plain.sum(), (q, k, v))
    grads_chunked = torch.autograd.grad(chunked_attention(q, k, v, mask=mask, chunk_size=3).sum(), (q, k, v))
    for a, b in zip(grads_plain, grads_chunked, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(chunk_size=2.5), TypeError, "chunk_size"),
        (dict(mask=torch.ones(3, 5)), TypeError, "mask"),
        (dict(mask=torch.ones(4, 4, dtype=torch.bool)), ValueError, "mask"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, word):
    q, k, v = _qkv((), 3, 5, 4, 4)
    with pytest.raises(error, match=word):
        chunked_attention(q, k, v, **kwargs)


def test_mismatched_shapes_are_reported():
    q, k, v = _qkv((), 3, 5, 4, 4)
    with pytest.raises(ValueError, match="feature size"):
        chunked_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="same length"):
        chunked_attention(q, k, v[:4])


# ----------------------------------------------------------------------------------------------------------------
# The three methods chapter 8 and the benchmark compare, and how they are measured


def test_the_three_methods_compute_the_same_attention():
    q, k, v = _qkv((2, 3), 300, 300, 16, 16, seed=4, dtype=torch.float32)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1) @ v  # by hand, d = 16
    assert set(ATTENTION_METHODS) == {"plain", "chunked", "fused"}
    for name, method in ATTENTION_METHODS.items():
        torch.testing.assert_close(method(q, k, v), expected, atol=1e-5, rtol=1e-4, msg=name)


def test_attention_seconds_times_one_call_and_checks_its_arguments():
    seconds = attention_seconds("chunked", 64, repeats=1)
    assert isinstance(seconds, float) and 0 < seconds < 10
    with pytest.raises(ValueError, match="method"):
        attention_seconds("flash", 64)
    with pytest.raises(ValueError, match="length"):
        attention_seconds("plain", 0)
    with pytest.raises(TypeError, match="heads"):
        attention_seconds("plain", 8, heads=2.0)


def test_attention_peak_memory_sees_the_weight_matrix_and_its_absence():
    # plain attention at L = 1024 with 4 heads builds (4, 1024, 1024) float32 matrices of 16 MiB each; chunked
    # attention one (4, 1024, 128) block of 2 MiB at a time. Measured in fresh processes (a few seconds).
    matrix = 4 * 1024 * 1024 * 4
    plain = attention_peak_memory("plain", 1024)
    chunked = attention_peak_memory("chunked", 1024)
    assert matrix <= plain < 4 * matrix, (plain, matrix)
    assert chunked < plain / 2, (chunked, plain)
    with pytest.raises(ValueError, match="method"):
        attention_peak_memory("naive", 8)
    with pytest.raises(ValueError, match="batch"):
        attention_peak_memory("plain", 8, batch=0)
    with pytest.raises(ValueError, match="empty sequence"):
        attention_peak_memory("plain", [])
    with pytest.raises(ValueError, match="length"):
        attention_peak_memory("plain", [512, 0])


def test_attention_peak_memory_of_several_lengths_in_one_process_matches_separate_processes():
    # One process measuring 2048, 512 and 1024 in turn (the largest first, so that a peak left behind would show
    # in the smaller ones) agrees with a process per length, within 10% and 1 MiB.
    together = attention_peak_memory("plain", [2048, 512, 1024])
    apart = [attention_peak_memory("plain", n) for n in (2048, 512, 1024)]
    assert isinstance(together, list) and len(together) == 3
    for one, other in zip(together, apart, strict=True):
        assert abs(one - other) <= 0.1 * other + 2**20, (together, apart)
    assert together[1] < together[2] < together[0]  # and they grow with L


@pytest.mark.parametrize(("dtype", "margin"), [(torch.float16, 1.02), (torch.bfloat16, 1.05)])
def test_half_precision_is_accumulated_in_float32_and_no_less_exact_than_torch(dtype, margin):
    # At L = 2048 the running sum and output, if kept in half precision, lose about twice torch's accuracy.
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 2048, 64, generator=g) for _ in range(3))
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    half = [t.to(dtype) for t in (q, k, v)]
    ours = chunked_attention(*half, chunk_size=128)
    assert ours.dtype == dtype and ours.shape == exact.shape
    torch_error = (F.scaled_dot_product_attention(*half).double() - exact).abs().max()
    our_error = (ours.double() - exact).abs().max()
    assert our_error <= margin * torch_error, f"{our_error:.3g} against torch's {torch_error:.3g}"
