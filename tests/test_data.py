"""Minibatches and the toy tasks, checked with plain Python loops and seeds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlib.data import Batches, associative_recall, copy_task, reversal_task

# ----------------------------------------------------------------------------------------------------------------
# Batches


def _rows_of_epoch(batches: Batches) -> list[int]:
    return [int(i) for (idx,) in batches for i in idx]


@given(st.integers(1, 40), st.integers(1, 12), st.booleans(), st.integers(0, 1000))
def test_every_row_exactly_once_per_epoch(n, batch_size, shuffle, seed):
    batches = Batches(torch.arange(n), batch_size=batch_size, shuffle=shuffle, seed=seed)
    for _ in range(2):
        rows = _rows_of_epoch(batches)
        assert sorted(rows) == list(range(n))
        sizes = [len(idx) for (idx,) in batches]
        assert all(s == batch_size for s in sizes[:-1]) and 1 <= sizes[-1] <= batch_size


def test_tensors_stay_aligned():
    x = torch.arange(10)
    y = 100 + torch.arange(10)
    z = torch.arange(20).reshape(10, 2)
    for bx, by, bz in Batches(x, y, z, batch_size=3, seed=1):
        assert torch.equal(by, 100 + bx)
        assert torch.equal(bz[:, 0], 2 * bx)


def test_shuffle_changes_order_between_epochs():
    batches = Batches(torch.arange(50), batch_size=7, seed=0)
    first, second = _rows_of_epoch(batches), _rows_of_epoch(batches)
    assert first != second
    assert first != list(range(50))


def test_same_seed_same_sequence_of_epochs():
    a = Batches(torch.arange(30), batch_size=4, seed=5)
    b = Batches(torch.arange(30), batch_size=4, seed=5)
    c = Batches(torch.arange(30), batch_size=4, seed=6)
    epochs_a = [_rows_of_epoch(a) for _ in range(3)]
    assert epochs_a == [_rows_of_epoch(b) for _ in range(3)]
    assert epochs_a != [_rows_of_epoch(c) for _ in range(3)]


def test_no_shuffle_keeps_order():
    batches = Batches(torch.arange(11), batch_size=4, shuffle=False)
    assert [idx.tolist() for (idx,) in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert _rows_of_epoch(batches) == list(range(11))


def test_shuffle_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _rows_of_epoch(Batches(torch.arange(20), batch_size=3, seed=1))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "length"),
    [(10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (9, 3, True, 3), (2, 5, False, 1), (2, 5, True, 0)],
)
def test_len_with_and_without_drop_last(n, batch_size, drop_last, length):
    batches = Batches(torch.arange(n), batch_size=batch_size, drop_last=drop_last)
    assert len(batches) == length
    got = list(batches)
    assert len(got) == length
    if drop_last:
        assert all(len(idx) == batch_size for (idx,) in got)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "word"),
    [
        ((), dict(batch_size=2), ValueError, "at least one tensor"),
        ((torch.zeros(4), torch.zeros(5)), dict(batch_size=2), ValueError, "[4, 5]"),
        ((torch.zeros(4), [1, 2, 3, 4]), dict(batch_size=2), TypeError, "tensors[1]"),
        ((torch.tensor(1.0),), dict(batch_size=2), ValueError, "scalar"),
        ((torch.zeros(4),), dict(batch_size=0), ValueError, "batch_size"),
        ((torch.zeros(4),), dict(batch_size=2.0), TypeError, "batch_size"),
        ((torch.zeros(4),), dict(batch_size=2, seed=1.5), TypeError, "seed"),
    ],
)
def test_batches_rejects_bad_arguments(args, kwargs, error, word):
    with pytest.raises(error) as info:
        Batches(*args, **kwargs)
    assert word in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# associative_recall


@given(st.integers(1, 20), st.integers(1, 8), st.integers(0, 8), st.integers(1, 6), st.integers(0, 1000))
def test_associative_recall_is_a_lookup(n, num_pairs, extra_keys, num_values, seed):
    num_keys = num_pairs + extra_keys
    keys, values, query, target = associative_recall(n, num_pairs, num_keys, num_values, seed=seed)
    assert keys.shape == values.shape == (n, num_pairs) and query.shape == target.shape == (n,)
    for b in range(n):
        row = keys[b].tolist()
        assert len(set(row)) == num_pairs  # distinct keys
        assert all(0 <= key < num_keys for key in row)
        assert all(0 <= v < num_values for v in values[b].tolist())
        matches = [j for j in range(num_pairs) if row[j] == int(query[b])]
        assert len(matches) == 1  # the query is one of the example's keys
        assert int(target[b]) == int(values[b, matches[0]])


def test_associative_recall_seeds():
    a = associative_recall(50, seed=1)
    b = associative_recall(50, seed=1)
    c = associative_recall(50, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_associative_recall_queries_every_slot():
    keys, _, query, _ = associative_recall(400, num_pairs=4, seed=0)
    slots = (keys == query[:, None]).float().argmax(1)  # which position was asked for
    assert set(slots.tolist()) == {0, 1, 2, 3}


def test_associative_recall_too_many_pairs():
    with pytest.raises(ValueError, match="num_pairs"):
        associative_recall(5, num_pairs=9, num_keys=8)
    associative_recall(5, num_pairs=8, num_keys=8)  # exactly enough keys is fine


# ----------------------------------------------------------------------------------------------------------------
# reversal_task, copy_task


def test_reversal_task_target_is_reversed():
    tokens, target = reversal_task(20, length=7, vocab_size=5, seed=3)
    assert tokens.shape == target.shape == (20, 7) and tokens.dtype == torch.int64
    for row, t in zip(tokens.tolist(), target.tolist(), strict=True):
        assert t == row[::-1]
    assert tokens.min() >= 0 and tokens.max() < 5


def test_copy_task_target_is_tokens():
    tokens, target = copy_task(20, length=6, vocab_size=9, seed=4)
    assert tokens.shape == (20, 6) and torch.equal(target, tokens)
    target[0, 0] = -1  # a copy, not the same storage
    assert tokens[0, 0] != -1


@pytest.mark.parametrize("task", [reversal_task, copy_task])
def test_tasks_are_deterministic(task):
    assert all(torch.equal(x, y) for x, y in zip(task(10, seed=7), task(10, seed=7), strict=True))
    assert not torch.equal(task(10, seed=7)[0], task(10, seed=8)[0])


@pytest.mark.parametrize("task", [reversal_task, copy_task])
@pytest.mark.parametrize(
    ("kwargs", "error"), [(dict(n=0), ValueError), (dict(length=0), ValueError), (dict(seed="a"), TypeError)]
)
def test_tasks_reject_bad_arguments(task, kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        task(**{"n": 3, **kwargs})
