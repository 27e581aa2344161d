"""The device and the random seed: the two pieces of run-time state every notebook sets, in one place.

Also ``rounded`` for printing and ``median_seconds`` for the timings that chapters and benchmarks show.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["get_device", "set_seed", "rounded", "median_seconds", "eval_mode", "DEVICE_ENV_VAR"]

DEVICE_ENV_VAR = "ATTNLIB_DEVICE"
"""The environment variable that overrides the device :func:`get_device` picks."""


def get_device() -> torch.device:
    """Return the device the course runs on: CUDA when present, else the CPU.

    The environment variable ``ATTNLIB_DEVICE`` overrides the choice (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    ``make execute`` sets it to ``cpu`` so that stored outputs are made on the CPU; ``make test-gpu`` sets it
    to ``cuda``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``ATTNLIB_DEVICE`` is not a device string torch understands.
    RuntimeError
        If ``ATTNLIB_DEVICE`` asks for CUDA and torch sees no CUDA device.
    """
    requested = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ValueError(
            f"{DEVICE_ENV_VAR}={requested!r} is not a device torch understands; expected e.g. 'cpu' or 'cuda'"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{DEVICE_ENV_VAR}={requested!r} asks for CUDA, but torch {torch.__version__} sees no CUDA device"
        )
    return device


def set_seed(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's random number generators (CUDA's too, when present).

    Call it once at the top of a notebook; two runs on the CPU then give the same numbers.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Returns
    -------
    torch.Generator
        A CPU generator seeded with ``seed``, for code that wants its own stream of random numbers
        (e.g. ``torch.randn(3, generator=g)``) without touching the global one.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer.
    ValueError
        If ``seed`` is negative.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- the legacy global generator is what notebook code uses
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def rounded(tensor: torch.Tensor, digits: int = 3) -> float | list:
    """A tensor as plain Python floats rounded to ``digits`` decimals: how notebooks print results.

    The last digits of a float32 result differ a little between a CPU and a GPU (and between machines);
    rounded figures do not, so stored notebook outputs stay the same on every device. ``-0.0`` becomes ``0.0``.

    Parameters
    ----------
    tensor : Tensor, any shape, on any device
    digits : int, >= 0

    Returns
    -------
    float or nested lists of floats, shaped like ``tensor.tolist()``

    Raises
    ------
    TypeError
        If ``tensor`` is not a tensor or ``digits`` not an int.
    ValueError
        If ``digits`` is negative.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if isinstance(digits, bool) or not isinstance(digits, int):
        raise TypeError(f"digits must be an int, got {type(digits).__name__}")
    if digits < 0:
        raise ValueError(f"digits must be non-negative, got {digits}")
    scale = 10**digits
    values = tensor.detach().to("cpu", torch.float64)
    return (values * scale).round().div(scale).add(0.0).tolist()  # add(0.0) turns -0.0 into 0.0


def median_seconds(
    fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: torch.device | None = None
) -> float:
    """The median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    On a CUDA ``device`` the GPU is synchronised before and after each call, so that the time covers the work
    and not only its launch. Timings depend on the machine: print them, and never assert on them in a test.

    Raises
    ------
    ValueError
        If ``repeats`` < 1 or ``warmup`` < 0.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    sync = torch.cuda.synchronize if device is not None and torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``module`` in eval mode for a block, then give every submodule back the mode it had.

    Decoding and other inference inside a library method use it, so that dropout never changes what a model
    emits, whatever mode the caller left the model in (``with eval_mode(model): ...``).

    Raises
    ------
    TypeError
        If ``module`` is not a ``torch.nn.Module``.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:  # each one's own flag, not train() on the root, which would set them all
            m.training = training
