"""Minibatches, the toy tasks, the language-model tasks and the handwritten digits, checked with plain Python loops,
seeds and scikit-learn."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlib.data import (
    DATE_SOURCE_CHARS,
    Batches,
    CharVocab,
    DatePair,
    associative_recall,
    copy_task,
    date_lm_vocabulary,
    date_splits,
    delayed_copy_task,
    digits_splits,
    encode_date_lm,
    reversal_task,
    shift_images,
    two_relations,
)

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


# ----------------------------------------------------------------------------------------------------------------
# two_relations


@pytest.mark.parametrize(
    ("n", "length", "num_traits", "num_names"), [(1, 2, 1, 2), (5, 8, 16, 32), (3, 6, 3, 6), (4, 10, 9, 40)]
)
def test_two_relations_shapes_and_dtypes(n, length, num_traits, num_names):
    people, targets, partners = two_relations(n, length, num_traits, num_names, seed=0)
    assert people.shape == (n, length, 3) and targets.shape == partners.shape == (n, length, 2)
    assert people.dtype == targets.dtype == partners.dtype == torch.int64


def _check_group(people: list, targets: list, partners: list, num_traits: int, num_names: int) -> None:
    """Check one group against the rules of two_relations, with plain Python only."""
    length = len(people)
    names = [person[2] for person in people]
    assert len(set(names)) == length and all(0 <= name < num_names for name in names)
    for r in range(2):  # 0: looks, 1: character
        traits = [person[r] for person in people]
        assert all(0 <= t < num_traits for t in traits)
        assert len(set(traits)) == length // 2
        assert all(traits.count(t) == 2 for t in traits)  # every trait shared by exactly two people
        for i in range(length):
            p = partners[i][r]
            assert 0 <= p < length and p != i
            assert partners[p][r] == i  # the partner of my partner is me
            assert [j for j in range(length) if j != i and traits[j] == traits[i]] == [p]  # the only one like me
            assert targets[i][r] == names[p]


@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 2**31 - 1),
)
def test_two_relations_pairs_people_by_shared_traits(n, half, extra_traits, extra_names, seed):
    length, num_traits, num_names = 2 * half, half + extra_traits, 2 * half + extra_names
    people, targets, partners = two_relations(n, length, num_traits, num_names, seed=seed)
    for b in range(n):
        _check_group(people[b].tolist(), targets[b].tolist(), partners[b].tolist(), num_traits, num_names)


def test_two_relations_with_just_enough_traits_and_names():
    # num_traits = length / 2 and num_names = length: every trait is used twice and the names are a permutation
    people, targets, partners = two_relations(20, length=6, num_traits=3, num_names=6, seed=1)
    for b in range(20):
        assert sorted(people[b, :, 0].tolist()) == sorted(people[b, :, 1].tolist()) == [0, 0, 1, 1, 2, 2]
        assert sorted(people[b, :, 2].tolist()) == list(range(6))
    # two people: each is the other's partner in both relations, and the targets are the names swapped
    people, targets, partners = two_relations(5, length=2, num_traits=1, num_names=2, seed=3)
    assert torch.equal(partners, torch.tensor([[1, 1], [0, 0]]).expand(5, 2, 2))
    assert torch.equal(people[..., :2], torch.zeros(5, 2, 2, dtype=torch.int64))
    assert torch.equal(targets, people[:, [1, 0], 2, None].expand(5, 2, 2))


def test_two_relations_seeds():
    a = two_relations(30, seed=4)
    b = two_relations(30, seed=4)
    c = two_relations(30, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(not torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_two_relations_does_not_touch_global_rng():
    state = torch.get_rng_state()
    two_relations(50, seed=9)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("length", [4, 8])
def test_two_relations_same_person_for_both_about_once_in_length_minus_one(length):
    # the two pairings are independent: my kindred spirit is my look-alike with probability 1 / (length - 1)
    _, _, partners = two_relations(2000, length=length, seed=0)
    rate = (partners[..., 0] == partners[..., 1]).double().mean().item()
    assert abs(rate - 1 / (length - 1)) < 0.03


def test_two_relations_partners_and_traits_are_spread_evenly():
    _, _, partners = two_relations(2000, length=8, seed=2)
    for r in range(2):
        counts = torch.bincount(partners[:, 0, r], minlength=8).double() / 2000
        assert counts[0] == 0  # never one's own partner
        assert torch.all((counts[1:] - 1 / 7).abs() < 0.03)  # anyone else equally often
    people, _, _ = two_relations(2000, length=8, num_traits=16, num_names=32, seed=2)
    for column, size in ((0, 16), (1, 16), (2, 32)):
        per_group = torch.bincount(people[..., column].flatten(), minlength=size).double() / 2000
        assert torch.all((per_group - 8 / size).abs() < 0.08)  # every trait / name used about equally often


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        (dict(length=7), ValueError, "length"),
        (dict(length=0), ValueError, "length"),
        (dict(num_traits=3), ValueError, "num_traits"),
        (dict(num_traits=0), ValueError, "num_traits"),
        (dict(num_names=7), ValueError, "num_names"),
        (dict(n=0), ValueError, "n must"),
        (dict(n=2.0), TypeError, "n must"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(seed="a"), TypeError, "seed"),
        (dict(length=8.0), TypeError, "length"),
    ],
)
def test_two_relations_rejects_bad_arguments(kwargs, error, word):
    with pytest.raises(error) as info:
        two_relations(**{"n": 3, **kwargs})
    assert word in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# Language-model tasks: date_lm_vocabulary, encode_date_lm, delayed_copy_task

PAD, BOS, EOS = CharVocab.PAD, CharVocab.BOS, CharVocab.EOS


def test_date_lm_vocabulary():
    vocab = date_lm_vocabulary()
    assert vocab.tokens()[:3] == ["<pad>", "<bos>", "<eos>"]
    assert vocab.chars == DATE_SOURCE_CHARS + "-=" and len(vocab) == 3 + len(DATE_SOURCE_CHARS) + 2
    assert vocab.index["-"] == len(vocab) - 2 and vocab.index["="] == len(vocab) - 1


def test_encode_date_lm_by_hand():
    vocab = date_lm_vocabulary()
    pairs = [DatePair("tue 03 mar 1998", "1998-03-03", "tue 03 mar 1998"), DatePair("1998/3/3", "1998-03-03", "x")]
    inputs, targets, prompt_lengths = encode_date_lm(pairs, vocab)
    text = "tue 03 mar 1998=1998-03-03"
    sequence = [BOS] + [vocab.index[c] for c in text] + [EOS]  # 28 tokens
    assert inputs.shape == targets.shape == (2, 27) and inputs.dtype == targets.dtype == torch.int64
    assert inputs[0].tolist() == sequence[:-1]
    answer_start = len("tue 03 mar 1998=") + 1  # position of the ISO date's first character in the sequence
    assert targets[0].tolist() == [PAD] * (answer_start - 1) + sequence[answer_start:]
    assert prompt_lengths.tolist() == [answer_start, len("1998/3/3=") + 1] and prompt_lengths.dtype == torch.int64
    # the short row: its sequence, then PAD; its targets: the answer, then PAD
    short = [BOS] + [vocab.index[c] for c in "1998/3/3=1998-03-03"] + [EOS]
    assert inputs[1].tolist() == short + [PAD] * (27 - len(short))
    assert targets[1].tolist() == [PAD] * 9 + short[10:] + [PAD] * (27 - len(short) + 1)
    assert vocab.decode(inputs[0, : prompt_lengths[0]]) == "tue 03 mar 1998="


def test_encode_date_lm_trains_on_the_answer_only():
    train, _, _ = date_splits(50, 0, 0, seed=3)
    inputs, targets, prompt_lengths = encode_date_lm(train, date_lm_vocabulary())
    kept = targets != PAD
    assert kept.sum(1).tolist() == [len(p.target) + 1 for p in train]  # the ISO date and EOS
    vocab = date_lm_vocabulary()
    for i, p in enumerate(train):
        n = int(prompt_lengths[i])
        assert n == len(p.source) + 2
        assert vocab.decode(inputs[i, :n]) == p.source + "="
        assert not kept[i, : n - 1].any() and kept[i, n - 1 : n + len(p.target)].all()
        assert vocab.decode(targets[i, n - 1 :]) == p.target  # decode stops at EOS
        assert int(targets[i, n - 1 + len(p.target)]) == EOS
        # targets are the inputs shifted by one wherever they are kept
        assert torch.equal(targets[i, :-1][kept[i, :-1]], inputs[i, 1:][kept[i, :-1]])
    # a cross-entropy with ignore_index=PAD averages over exactly those positions
    logits = torch.zeros(*targets.shape, len(vocab))
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD, reduction="sum")
    torch.testing.assert_close(loss, kept.sum() * torch.log(torch.tensor(float(len(vocab)))))


@pytest.mark.parametrize(
    ("pairs", "vocab", "error", "word"),
    [
        ([DatePair("a", "b", "f")], CharVocab("ab"), ValueError, "'='"),
        ([DatePair("a", "b", "f")], "abc", TypeError, "vocab"),
        (DatePair("a", "b", "f"), date_lm_vocabulary(), TypeError, "pairs"),
        ([("a", "b")], date_lm_vocabulary(), TypeError, "pairs[0]"),
        ([], date_lm_vocabulary(), ValueError, "pairs"),
        ([DatePair("a=b", "c", "f")], date_lm_vocabulary(), ValueError, "separator"),
        ([DatePair("a", "b", "f"), DatePair("é", "b", "f")], date_lm_vocabulary(), ValueError, "vocabulary"),
    ],
)
def test_encode_date_lm_rejects_bad_arguments(pairs, vocab, error, word):
    with pytest.raises(error) as info:
        encode_date_lm(pairs, vocab)
    assert word in str(info.value)


@pytest.mark.parametrize(("min_len", "max_len", "delay", "vocab_size"), [(2, 2, 1, 1), (4, 9, 3, 5), (6, 16, 5, 10)])
def test_delayed_copy_task_against_plain_python(min_len, max_len, delay, vocab_size):
    inputs, targets, lengths = delayed_copy_task(40, min_len, max_len, delay, vocab_size, seed=5)
    assert inputs.shape == targets.shape == (40, max_len) and lengths.shape == (40,)
    assert inputs.dtype == targets.dtype == lengths.dtype == torch.int64
    for row_in, row_t, m in zip(inputs.tolist(), targets.tolist(), lengths.tolist(), strict=True):
        assert min_len <= m <= max_len
        x = row_in[:m]
        assert all(3 <= s < 3 + vocab_size for s in x) and row_in[m:] == [PAD] * (max_len - m)
        assert row_t == [PAD] * delay + x[: m - delay] + [PAD] * (max_len - m)
    assert max(map(max, inputs.tolist())) < 3 + vocab_size  # a model needs vocab_size + 3 ids


def test_delayed_copy_task_draws_every_length_and_symbol_and_is_seeded():
    inputs, _, lengths = delayed_copy_task(500, 4, 9, delay=3, vocab_size=4, seed=1)
    assert set(lengths.tolist()) == set(range(4, 10))
    assert set(inputs.unique().tolist()) == {PAD, 3, 4, 5, 6}
    first = delayed_copy_task(20, 4, 6, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(first, delayed_copy_task(20, 4, 6, seed=2), strict=True))
    assert not torch.equal(first[0], delayed_copy_task(20, 4, 6, seed=3)[0])
    state = torch.random.get_rng_state()
    delayed_copy_task(10, 4, 5)
    assert torch.equal(torch.random.get_rng_state(), state)  # its own generator


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        (dict(n=0), ValueError, "n"),
        (dict(min_len=0), ValueError, "min_len"),
        (dict(max_len=0), ValueError, "max_len"),
        (dict(min_len=7, max_len=6), ValueError, "min_len=7 > max_len=6"),
        (dict(min_len=3), ValueError, "min_len=3, delay=3"),
        (dict(delay=0), ValueError, "delay"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(vocab_size=2.0), TypeError, "vocab_size"),
        (dict(seed="a"), TypeError, "seed"),
    ],
)
def test_delayed_copy_task_rejects_bad_arguments(kwargs, error, word):
    with pytest.raises(error) as info:
        delayed_copy_task(**(dict(n=3, min_len=4, max_len=6) | kwargs))
    assert word in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# digits_splits, shift_images


@pytest.fixture(scope="module")
def sklearn_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.int64), digits.target.astype(np.int64)  # grey levels 0..16


def _grey_levels(images: torch.Tensor) -> np.ndarray:
    """Back to sklearn's integer grey levels; the split's values must be exactly level / 16."""
    levels = images.double() * 16
    assert torch.equal(levels, levels.round())
    return levels.round().squeeze(1).numpy().astype(np.int64)


def _multiset(images: np.ndarray, labels: np.ndarray) -> Counter:
    """(image bytes, label) with multiplicities: the dataset holds some identical images."""
    return Counter((image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True))


@pytest.fixture(scope="module")
def default_splits():
    return digits_splits()


def test_digits_sizes_dtypes_and_values(default_splits):
    for (images, labels), n in zip(default_splits, (1097, 300, 400), strict=True):
        assert images.shape == (n, 1, 8, 8) and images.dtype == torch.float32
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert images.min() >= 0 and images.max() <= 1
        assert set(labels.tolist()) == set(range(10))
    assert default_splits[0][0].max() == 1  # scaled by 16, the largest grey level, not by the largest value seen


@pytest.mark.parametrize(("n_val", "n_test"), [(300, 400), (100, 50), (697, 1000)])
def test_digits_splits_partition_the_dataset(sklearn_digits, n_val, n_test):
    all_images, all_labels = sklearn_digits
    splits = digits_splits(n_val=n_val, n_test=n_test, seed=1)
    assert [len(labels) for _, labels in splits] == [1797 - n_val - n_test, n_val, n_test]
    parts = [_multiset(_grey_levels(images), labels.numpy()) for images, labels in splits]
    # every image keeps its label, and together the splits are the dataset, each image exactly once
    assert parts[0] + parts[1] + parts[2] == _multiset(all_images, all_labels)


def test_digits_splits_are_disjoint_up_to_duplicates(sklearn_digits, default_splits):
    whole = _multiset(*sklearn_digits)
    parts = [_multiset(_grey_levels(images), labels.numpy()) for images, labels in default_splits]
    for i in range(3):
        for j in range(i + 1, 3):
            for key in parts[i].keys() & parts[j].keys():  # only an image the dataset holds more than once
                assert parts[i][key] + parts[j][key] <= whole[key]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_splits_are_stratified(sklearn_digits, seed):
    _, all_labels = sklearn_digits
    share = np.bincount(all_labels, minlength=10) / len(all_labels)
    for _, labels in digits_splits(seed=seed):
        n = len(labels)
        counts = np.bincount(labels.numpy(), minlength=10)
        assert np.all(np.abs(counts / n - share) <= 0.02)
        # a stratified split is off by rounding only: at most 2 images per class (a random one is off by ~5)
        assert np.all(np.abs(counts - n * share) <= 2)


def test_digits_splits_seeds(default_splits):
    again = digits_splits(seed=0)
    for (a, la), (b, lb) in zip(default_splits, again, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other = digits_splits(seed=1)
    for (a, la), (b, lb) in zip(default_splits, other, strict=True):
        assert not torch.equal(a, b) and not torch.equal(la, lb)


def test_digits_splits_do_not_touch_global_rng():
    state = torch.get_rng_state()
    digits_splits(seed=3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        (dict(n_val=900, n_test=800), ValueError, "n_val"),  # leaves 97 < 100 for training
        (dict(n_val=1797), ValueError, "n_val"),
        (dict(n_val=0), ValueError, "n_val"),
        (dict(n_test=0), ValueError, "n_test"),
        (dict(n_test=400.0), TypeError, "n_test"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(seed="0"), TypeError, "seed"),
        (dict(seed=None), TypeError, "seed"),
    ],
)
def test_digits_splits_reject_bad_arguments(kwargs, error, word):
    with pytest.raises(error) as info:
        digits_splits(**kwargs)
    assert word in str(info.value)


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` (C, H, W) moved down by dy and right by dx, zeros coming in: out[y, x] = image[y - dy, x - dx]."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _shifts_used(images: torch.Tensor, shifted: torch.Tensor, max_shift: int) -> list:
    """For each image the (dy, dx) that gives its output; fails unless exactly one does."""
    found = []
    steps = range(-max_shift, max_shift + 1)
    for image, out in zip(images, shifted, strict=True):
        matches = [(dy, dx) for dy in steps for dx in steps if torch.equal(out, _shifted(image, dy, dx))]
        assert len(matches) == 1, matches
        found.append(matches[0])
    return found


def test_shifted_helper_by_hand():
    image = torch.arange(1.0, 10).reshape(1, 3, 3)
    assert _shifted(image, 1, 0).tolist() == [[[0, 0, 0], [1, 2, 3], [4, 5, 6]]]
    assert _shifted(image, 0, -1).tolist() == [[[2, 3, 0], [5, 6, 0], [8, 9, 0]]]
    assert _shifted(image, -1, 1).tolist() == [[[0, 4, 5], [0, 7, 8], [0, 0, 0]]]
    assert _shifted(image, 0, 0).tolist() == image.tolist()
    assert _shifted(image, 3, 0).tolist() == [[[0, 0, 0]] * 3]


@pytest.mark.parametrize(("channels", "max_shift"), [(1, 1), (2, 1), (1, 2)])
def test_shift_images_moves_each_image_by_one_whole_shift(channels, max_shift):
    g = torch.Generator().manual_seed(0)
    n = 10 * (2 * max_shift + 1) ** 2
    images = torch.rand(n, channels, 6, 5, generator=g) + 0.5  # no zeros: every shift looks different
    shifted = shift_images(images, max_shift=max_shift, generator=torch.Generator().manual_seed(1))
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    used = _shifts_used(images, shifted, max_shift)  # the channels of an image move together
    assert len(set(used)) == (2 * max_shift + 1) ** 2  # every shift is drawn


def test_shift_images_with_max_shift_zero_is_the_identity():
    images = torch.rand(10, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(shift_images(images, max_shift=0, generator=torch.Generator().manual_seed(0)), images)
    assert torch.equal(shift_images(images, max_shift=0), images)


def test_shift_images_keeps_the_mass_of_a_digit_away_from_the_border(default_splits):
    images = torch.zeros(50, 1, 8, 8)
    images[:, :, 1:7, 1:7] = torch.rand(50, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    shifted = shift_images(images, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(shifted.sum((1, 2, 3)), images.sum((1, 2, 3)))
    assert not torch.equal(shifted, images)
    # a digit at the border can lose pixels, never gain any
    digits = default_splits[0][0][:100]
    assert (
        shift_images(digits, generator=torch.Generator().manual_seed(2)).sum((1, 2, 3)) <= digits.sum((1, 2, 3)) + 1e-5
    ).all()


def test_shift_images_uses_the_generator():
    images = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.5
    a = shift_images(images, generator=torch.Generator().manual_seed(5))
    b = shift_images(images, generator=torch.Generator().manual_seed(5))
    c = shift_images(images, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    state = torch.get_rng_state()
    shift_images(images, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    original = images.clone()
    shift_images(images)
    assert torch.equal(images, original)  # the input is not changed in place


@pytest.mark.parametrize(
    ("images", "kwargs", "error", "word"),
    [
        (torch.zeros(2, 8, 8), dict(), ValueError, "(N, C, H, W)"),
        (torch.zeros(2, 1, 1, 8, 8), dict(), ValueError, "(N, C, H, W)"),
        ([[[[0.0]]]], dict(), TypeError, "images"),
        (torch.zeros(2, 1, 8, 8), dict(max_shift=-1), ValueError, "max_shift"),
        (torch.zeros(2, 1, 8, 8), dict(max_shift=1.0), TypeError, "max_shift"),
    ],
)
def test_shift_images_rejects_bad_arguments(images, kwargs, error, word):
    with pytest.raises(error) as info:
        shift_images(images, **kwargs)
    assert word in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "word"), [(dict(n_test=5), "n_test"), (dict(n_val=9), "n_val"), (dict(seed=-1), "seed")]
)
def test_digits_splits_names_the_argument_before_scikit_learn_does(kwargs, word):
    with pytest.raises(ValueError, match=word):
        digits_splits(**kwargs)
