"""Data for the course, generated from a seed (nothing is downloaded), and minibatches of it.

- :class:`Batches`: shuffled minibatches of aligned tensors, the same order on every run with the same seed.
- Toy tasks of chapters 2 and 3: :func:`associative_recall`, :func:`reversal_task`, :func:`copy_task`.

Every generator takes a ``seed`` and uses its own ``torch.Generator``, so it neither reads nor changes torch's
global random state.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from attnlib.functional import _check_int, _check_length

__all__ = ["Batches", "associative_recall", "reversal_task", "copy_task"]


def _generator(seed: object) -> torch.Generator:
    return torch.Generator().manual_seed(_check_int("seed", seed))


class Batches:
    """Minibatches of aligned tensors (same first dimension), for :func:`attnlib.training.fit`.

    Iterating gives tuples ``(t1[idx], t2[idx], ...)`` of at most ``batch_size`` rows. With ``shuffle`` the rows
    are drawn in a new random order on each pass, from a generator seeded once with ``seed``: the sequence of
    epochs is the same on every run. The tensors stay where they are (normally the CPU);
    :func:`~attnlib.training.fit` moves each batch to the model's device.

    Parameters
    ----------
    *tensors : Tensor
        One or more tensors with the same size ``N`` in dimension 0.
    batch_size : int >= 1
    shuffle : bool
        Reshuffle on every pass (for training); False keeps the order (for evaluation).
    seed : int
        Seeds the shuffling.
    drop_last : bool
        Skip a last batch smaller than ``batch_size``.

    Raises
    ------
    TypeError
        If an argument is not a tensor, or ``batch_size``/``seed`` is not an int.
    ValueError
        If no tensor is given, their first dimensions differ, or ``batch_size`` < 1.
    """

    def __init__(
        self, *tensors: Tensor, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> None:
        if not tensors:
            raise ValueError("Batches needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"tensors[{i}] must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() == 0:
                raise ValueError(f"tensors[{i}] must have a first (batch) dimension, got a scalar")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"all tensors must have the same size in dimension 0, got sizes {sizes}")
        self.tensors = tensors
        self.batch_size = _check_length("batch_size", batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self._generator = _generator(seed)

    def __len__(self) -> int:
        n = self.tensors[0].shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n = self.tensors[0].shape[0]
        order = torch.randperm(n, generator=self._generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def associative_recall(
    n: int, num_pairs: int = 8, num_keys: int = 16, num_values: int = 16, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Key-value recall (chapter 2): given pairs (key, value) and a query key, name the query's value.

    Each example holds ``num_pairs`` distinct keys drawn from ``0..num_keys-1``, each with a value drawn
    uniformly from ``0..num_values-1`` (values may repeat); the query is one of the example's keys, uniformly.
    It is a soft dictionary lookup: attention has to put its weight on the pair whose key matches the query.

    Returns
    -------
    keys : Tensor of int64 (n, num_pairs)
    values : Tensor of int64 (n, num_pairs)
    query : Tensor of int64 (n,)
    target : Tensor of int64 (n,)
        ``values[b, j]`` for the ``j`` with ``keys[b, j] == query[b]``.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, or ``num_pairs > num_keys`` (keys must be distinct).
    """
    n, num_pairs = _check_length("n", n), _check_length("num_pairs", num_pairs)
    num_keys, num_values = _check_length("num_keys", num_keys), _check_length("num_values", num_values)
    if num_pairs > num_keys:
        raise ValueError(f"num_pairs={num_pairs} distinct keys cannot be drawn from num_keys={num_keys}")
    g = _generator(seed)
    keys = torch.rand(n, num_keys, generator=g).argsort(dim=1)[:, :num_pairs]  # (n, P) distinct per row
    values = torch.randint(num_values, (n, num_pairs), generator=g)  # (n, P)
    slot = torch.randint(num_pairs, (n,), generator=g)  # (n,) which pair is asked for
    rows = torch.arange(n)
    return keys, values, keys[rows, slot], values[rows, slot]


def _tokens(n: object, length: object, vocab_size: object, seed: object) -> Tensor:
    n, length = _check_length("n", n), _check_length("length", length)
    vocab_size = _check_length("vocab_size", vocab_size)
    return torch.randint(vocab_size, (n, length), generator=_generator(seed))  # (n, length)


def reversal_task(n: int, length: int = 8, vocab_size: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Reverse a sequence (chapter 3): ``target[b, i] = tokens[b, length - 1 - i]``.

    An order-dependent task: the answer at position ``i`` depends on which token stands at position
    ``length - 1 - i``, so a model that cannot tell positions apart cannot learn it.

    Returns
    -------
    tokens, target : Tensor of int64 (n, length)
        Tokens uniform in ``0..vocab_size-1``.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, or ``seed`` is not an int.
    """
    tokens = _tokens(n, length, vocab_size, seed)
    return tokens, tokens.flip(-1)


def copy_task(n: int, length: int = 8, vocab_size: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Label every token with itself (chapter 3): ``target = tokens``.

    The simplest task in which a position's own content matters: a layer that may not look at its own
    position can only recover the token when the same token also occurs elsewhere in the sequence.

    Returns
    -------
    tokens, target : Tensor of int64 (n, length)

    Raises
    ------
    TypeError, ValueError
        As :func:`reversal_task`.
    """
    tokens = _tokens(n, length, vocab_size, seed)
    return tokens, tokens.clone()
