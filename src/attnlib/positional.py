"""Position information for attention, which by itself ignores order (chapter 3).

- :func:`sinusoidal_encoding`: the fixed sine/cosine table of Vaswani et al. (2017).
- :class:`SinusoidalPositionalEncoding`: a module that adds that table to a batch of embeddings.
- :class:`LearnedPositionalEmbedding`: a trained vector per position, added the same way (as in BERT and ViT).
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor, nn

from attnlib.functional import _check_dropout, _check_int, _check_length

__all__ = ["sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding"]


def sinusoidal_encoding(
    max_len: int,
    dim: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The sinusoidal positional encoding of Vaswani et al. (2017), a (max_len, dim) table.

    .. math:: P_{p, 2i} = \sin\!\left(p / \mathrm{base}^{2i/\mathrm{dim}}\right), \qquad
              P_{p, 2i+1} = \cos\!\left(p / \mathrm{base}^{2i/\mathrm{dim}}\right)

    Row ``p`` encodes position ``p`` (counting from 0): sine on the even dimensions, cosine on the odd ones,
    with wavelengths from :math:`2\pi` to :math:`2\pi \cdot \mathrm{base}` in a geometric progression. An odd
    ``dim`` is allowed (the last column is a sine).

    Parameters
    ----------
    max_len : int >= 1
        Number of positions.
    dim : int >= 1
        Features per position (``d_model``).
    base : float > 1
        The base of the wavelengths; 10000 in the paper.
    dtype, device
        Of the returned table. It is computed in float64 and then converted.

    Returns
    -------
    Tensor (max_len, dim)

    Raises
    ------
    TypeError
        If ``max_len`` or ``dim`` is not an int, or ``base`` is not a number.
    ValueError
        If ``max_len`` or ``dim`` is less than 1, or ``base`` is not greater than 1.
    """
    max_len = _check_length("max_len", max_len)
    dim = _check_length("dim", dim)
    if isinstance(base, bool) or not isinstance(base, Real):
        raise TypeError(f"base must be a float, got {type(base).__name__}")
    if not (math.isfinite(base) and base > 1):
        raise ValueError(f"base must be a finite number greater than 1, got {base}")
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (ceil(dim/2),) the even dimensions 2i
    angle = position / base ** (two_i / dim)  # (max_len, ceil(dim/2))
    table = torch.empty(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return table.to(dtype=dtype, device=device)


def _check_embeddings(x: object, dim: int, max_len: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of embeddings, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[-1] != dim:
        raise ValueError(f"x must have shape (..., L, {dim}), got shape {tuple(x.shape)}")
    if x.shape[-2] > max_len:
        raise ValueError(
            f"x has {x.shape[-2]} positions (shape {tuple(x.shape)}) but this encoding was built for "
            f"max_len={max_len}; build it with a larger max_len"
        )
    return x


class SinusoidalPositionalEncoding(nn.Module):
    """Add the sinusoidal table to a batch of embeddings, then apply dropout (as in Vaswani et al., 2017).

    The table is a buffer: it moves with ``.to(device)``, is not trained, and is not saved in the state dict
    (it is rebuilt from ``dim`` and ``max_len``). It is stored in float32 and cast to the input's dtype.

    Parameters
    ----------
    dim : int
        Features per position.
    max_len : int
        The longest sequence it can encode.
    dropout : float in [0, 1)
        Dropout on the sum, in training mode only.

    Raises
    ------
    TypeError, ValueError
        As :func:`sinusoidal_encoding`; ``ValueError`` if ``dropout`` is outside [0, 1).
    """

    pe: Tensor

    def __init__(self, dim: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim, self.max_len = _check_length("dim", dim), _check_length("max_len", max_len)
        self.dropout = nn.Dropout(_check_dropout(dropout))
        self.register_buffer("pe", sinusoidal_encoding(max_len, dim), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """``x`` (..., L, dim) -> ``x + P[offset : offset + L]`` (..., L, dim): the positions counted from
        ``offset`` (0 for a whole sequence; the number of positions already decoded when a KV cache feeds the
        new ones alone).

        Raises ``TypeError``/``ValueError`` if ``x`` is not a float tensor of shape (..., L, dim), or ``offset``
        is not an int >= 0, or ``offset + L > max_len``.
        """
        offset = _check_int("offset", offset)
        if offset < 0:
            raise ValueError(f"offset must be at least 0, got {offset}")
        x = _check_embeddings(x, self.dim, self.max_len)
        if offset + x.shape[-2] > self.max_len:
            raise ValueError(
                f"positions {offset} to {offset + x.shape[-2] - 1} (offset={offset}, {x.shape[-2]} new) do not fit in "
                f"max_len={self.max_len}; build the encoding with a larger max_len"
            )
        return self.dropout(x + self.pe[offset : offset + x.shape[-2]].to(x.dtype))  # (..., L, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_len={self.max_len}"


class LearnedPositionalEmbedding(nn.Module):
    """Add a learned vector per position to a batch of embeddings (as BERT and the Vision Transformer do).

    The vectors start small and random (normal, std 0.02) and are trained with the rest of the model; a
    position beyond ``max_len`` has no vector, so such inputs are refused.

    Parameters
    ----------
    max_len : int
        Number of positions with a vector.
    dim : int
        Features per position.
    dropout : float in [0, 1)
        Dropout on the sum, in training mode only.

    Raises
    ------
    TypeError, ValueError
        If ``max_len`` or ``dim`` is not a positive int, or ``dropout`` is outside [0, 1).
    """

    def __init__(self, max_len: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.max_len, self.dim = _check_length("max_len", max_len), _check_length("dim", dim)
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)  # (max_len, dim)
        self.dropout = nn.Dropout(_check_dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (..., L, dim) -> ``x + weight[:L]`` (..., L, dim); raises as :class:`SinusoidalPositionalEncoding`."""
        x = _check_embeddings(x, self.dim, self.max_len)
        return self.dropout(x + self.weight[: x.shape[-2]])  # (..., L, dim)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"
