"""Attention layers as ``nn.Module`` s: they hold the parameters, :mod:`attnlib.functional` does the math."""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor, nn

from attnlib.functional import gaussian_kernel_attention

__all__ = ["NadarayaWatson"]


class NadarayaWatson(nn.Module):
    r"""Nadaraya-Watson kernel regression with a learnable Gaussian bandwidth (chapter 1).

    ``forward`` returns :func:`attnlib.functional.gaussian_kernel_attention` of its inputs with the current
    bandwidth :math:`h`. The bandwidth is stored as :math:`\log h`, so gradient descent keeps it positive.

    Parameters
    ----------
    bandwidth : float, > 0
        The initial bandwidth.

    Raises
    ------
    TypeError
        If ``bandwidth`` is not a real number.
    ValueError
        If ``bandwidth`` is not positive and finite.
    """

    def __init__(self, bandwidth: float = 1.0) -> None:
        super().__init__()
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, Real):
            raise TypeError(f"bandwidth must be a positive float, got {type(bandwidth).__name__}")
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be a positive, finite number, got {bandwidth!r}")
        self.log_bandwidth = nn.Parameter(torch.tensor(math.log(float(bandwidth))))

    @property
    def bandwidth(self) -> Tensor:
        """The current bandwidth :math:`h = e^{\\log h}`, a scalar tensor."""
        return self.log_bandwidth.exp()

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Predict at ``query`` (..., Lq, d) from observations at ``key`` (..., Lk, d) with values (..., Lk, dv).

        ``mask`` (bool, broadcastable to (..., Lq, Lk), True = may attend) can, for instance, hide each
        training point from itself for a leave-one-out fit. Returns ``(output (..., Lq, dv), weights
        (..., Lq, Lk))``. Raises as :func:`attnlib.functional.gaussian_kernel_attention`.
        """
        return gaussian_kernel_attention(query, key, value, bandwidth=self.bandwidth, mask=mask)

    def extra_repr(self) -> str:
        return f"bandwidth={self.bandwidth.item():.4g}"
