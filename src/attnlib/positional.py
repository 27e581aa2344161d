"""Position information for attention, which by itself ignores order (chapter 3).

- :func:`sinusoidal_encoding`: the fixed sine/cosine table of Vaswani et al. (2017).
- :class:`SinusoidalPositionalEncoding`: a module that adds that table to a batch of embeddings.
- :class:`LearnedPositionalEmbedding`: a trained vector per position, added the same way (as in BERT and ViT).
- :func:`apply_rotary`: rotary position embedding (RoPE, Su et al., 2021), which rotates the queries and keys
  instead of adding anything to the embeddings, so that their dot products depend on relative positions only
  (used by :class:`attnlib.gpt.GPT`, chapter 9).
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor, nn

from attnlib.functional import _check_dropout, _check_int, _check_length

__all__ = ["sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "apply_rotary"]


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


def apply_rotary(x: Tensor, positions: Tensor | None = None, base: float = 10000.0) -> Tensor:
    r"""Rotary position embedding (RoPE, Su et al., 2021): rotate each pair of features by an angle that grows
    with the position.

    The features are taken in pairs :math:`(x_{2i}, x_{2i+1})`, as in the paper, and the pair at position
    :math:`m` is rotated by the angle :math:`m\,\theta_i` with :math:`\theta_i = \mathrm{base}^{-2i/d}`:

    .. math:: \begin{pmatrix} y_{2i} \\ y_{2i+1} \end{pmatrix} =
              \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}
              \begin{pmatrix} x_{2i} \\ x_{2i+1} \end{pmatrix}

    The frequencies are those of :func:`sinusoidal_encoding`. A rotation keeps norms, and rotating a query at
    position :math:`m` and a key at position :math:`n` gives :math:`\langle R_m q, R_n k\rangle =
    \langle R_{m-n} q, k\rangle`: the attention score depends on the offset :math:`m - n` only, not on where the
    pair stands. Applied to the queries and keys of every layer (never to the values), this is how a model such as
    :class:`attnlib.gpt.GPT` learns about order without adding anything to its embeddings. Position 0 is the
    identity. The angles are computed in float64 and the rotation in ``x``'s dtype.

    Parameters
    ----------
    x : Tensor, floating point (..., T, d)
        Queries or keys (e.g. (B, H, T, head_dim)); ``d`` must be even.
    positions : Tensor of integers (T,), optional
        The position of each of the ``T`` rows, on ``x``'s device; default ``0 .. T - 1``. A decoder with a KV
        cache passes ``cached .. cached + T - 1`` for its new positions.
    base : float > 0
        The base of the wavelengths; 10000 in the paper.

    Returns
    -------
    Tensor (..., T, d)
        Same shape, dtype and device as ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor, ``positions`` is not a tensor of integers, or ``base`` is not a
        number.
    ValueError
        If ``x`` has fewer than 2 dimensions or an odd ``d``, ``positions`` is not of shape (T,) or lives on
        another device, or ``base`` is not positive and finite.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of queries or keys, got dtype {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., T, d) with at least 2 dimensions, got shape {tuple(x.shape)}")
    t, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"x must have an even number of features d (they are rotated in pairs), got d={d}")
    if isinstance(base, bool) or not isinstance(base, Real):
        raise TypeError(f"base must be a positive float, got {type(base).__name__}")
    if not (math.isfinite(base) and base > 0):
        raise ValueError(f"base must be a positive, finite number, got {base}")
    if positions is None:
        positions = torch.arange(t, device=x.device)
    elif not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a torch.Tensor of integers of shape ({t},), got {type(positions).__name__}")
    elif positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
        raise TypeError(f"positions must hold integers (e.g. int64), got dtype {positions.dtype}")
    elif positions.shape != (t,):
        raise ValueError(
            f"positions must have shape (T,) = ({t},), one per row of x of shape {tuple(x.shape)}, "
            f"got shape {tuple(positions.shape)}"
        )
    elif positions.device != x.device:
        raise ValueError(f"positions is on {positions.device} but x is on {x.device}; create it on {x.device}")
    two_i = torch.arange(0, d, 2, dtype=torch.float64, device=x.device)  # (d/2,) the even dimensions 2i
    theta = float(base) ** (-two_i / d)  # (d/2,) theta_i = base^(-2i/d)
    angle = positions.to(torch.float64)[:, None] * theta  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)  # (T, d/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each: the pairs (x_2i, x_2i+1)
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # (..., T, d/2, 2)
    return rotated.flatten(-2)  # (..., T, d): y_2i, y_2i+1 side by side again
