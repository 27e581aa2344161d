"""Gaussian-kernel (Nadaraya-Watson) attention against hand computations and its known limits."""

from __future__ import annotations

import numpy as np
import torch

from attnlib.attention import NadarayaWatson
from attnlib.functional import causal_mask, gaussian_kernel_attention, scaled_dot_product_attention


def test_matches_numpy_by_hand():
    rng = np.random.default_rng(0)
    xq, xk, y = rng.normal(size=(4, 2)), rng.normal(size=(6, 2)), rng.normal(size=(6, 3))
    h = 0.7
    kernel = np.exp(-((xq[:, None, :] - xk[None, :, :]) ** 2).sum(-1) / (2 * h**2))  # (4, 6)
    expected_w = kernel / kernel.sum(1, keepdims=True)
    out, w = gaussian_kernel_attention(*(torch.from_numpy(a) for a in (xq, xk, y)), bandwidth=h)
    np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-10)
    np.testing.assert_allclose(out.numpy(), expected_w @ y, rtol=1e-10)


def test_is_dot_product_attention_with_a_key_bias():
    # -|q-k|^2 / 2h^2 = (q.k - |k|^2/2)/h^2 - |q|^2/2h^2, and the last term cancels in the softmax.
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    v = torch.randn(7, 2, generator=g, dtype=torch.float64)
    h = 1.3
    q_aug = torch.cat([q, torch.ones(5, 1, dtype=torch.float64)], dim=-1)
    k_aug = torch.cat([k, -0.5 * k.pow(2).sum(-1, keepdim=True)], dim=-1)
    ref, ref_w = scaled_dot_product_attention(q_aug, k_aug, v, scale=1 / h**2)
    out, w = gaussian_kernel_attention(q, k, v, bandwidth=h)
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(out, ref)


def test_wide_bandwidth_is_mean_pooling_and_narrow_is_nearest_neighbour():
    x = torch.linspace(0, 5, 11, dtype=torch.float64)[:, None]
    y = torch.sin(x)
    query = torch.tensor([[0.1], [2.4], [4.9]], dtype=torch.float64)
    wide, _ = gaussian_kernel_attention(query, x, y, bandwidth=1e4)
    torch.testing.assert_close(wide, y.mean(0).expand(3, 1))
    narrow, _ = gaussian_kernel_attention(query, x, y, bandwidth=1e-3)
    nearest = y[(query - x.T).abs().argmin(-1)]
    torch.testing.assert_close(narrow, nearest)


def test_mask_and_module():
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(8, 1, generator=g), torch.rand(8, 1, generator=g)
    model = NadarayaWatson(bandwidth=0.5)
    torch.testing.assert_close(model.bandwidth, torch.tensor(0.5))
    loo = ~torch.eye(8, dtype=torch.bool)  # leave one out: nobody sees itself
    out, w = model(x, x, y, mask=loo)
    assert torch.all(w.diagonal() == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(8))
    expected, _ = gaussian_kernel_attention(x, x, y, bandwidth=0.5, mask=loo)
    torch.testing.assert_close(out, expected)
    # The bandwidth is learnable: a gradient reaches it.
    out.pow(2).mean().backward()
    assert model.log_bandwidth.grad is not None and torch.isfinite(model.log_bandwidth.grad)
    assert "bandwidth=0.5" in repr(model)
    # A causal mask works too: the first query only sees the first key.
    out, w = model(x, x, y, mask=causal_mask(8))
    torch.testing.assert_close(out[0], y[0])


def test_gradcheck_bandwidth_and_inputs():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, 1, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, v, h: gaussian_kernel_attention(q, k, v, h)[0], (q, k, v, h))
