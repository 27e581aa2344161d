"""Data for the course, generated from a seed (nothing is downloaded), and minibatches of it.

- :class:`Batches`: shuffled minibatches of aligned tensors, the same order on every run with the same seed.
- Toy tasks of chapters 2 and 3: :func:`associative_recall`, :func:`reversal_task`, :func:`copy_task`.
- Chapter 5's task with two relations at once: :func:`two_relations`.
- Dates in many human formats to ISO 8601 (chapters 4 and 6): :func:`date_splits`, :class:`CharVocab`,
  :func:`encode_date_pairs`.
- Language-model versions of two tasks, for chapter 9's GPT: :func:`date_lm_vocabulary` and :func:`encode_date_lm`
  (a date, ``=``, its ISO form, as one sequence), and :func:`delayed_copy_task` (repeat the token read a few
  steps ago, for positions and length generalisation).
- Handwritten digits (chapter 7): :func:`digits_splits`, from the 1,797 8x8 images that ship inside scikit-learn,
  and :func:`shift_images` for augmentation.

Every generator takes a ``seed`` and uses its own ``torch.Generator``, so it neither reads nor changes torch's
global random state.
"""

from __future__ import annotations

import datetime as _dt
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlib.functional import _check_int, _check_length

__all__ = [
    "Batches",
    "associative_recall",
    "reversal_task",
    "copy_task",
    "two_relations",
    "DATE_FORMATS",
    "DatePair",
    "format_date",
    "date_splits",
    "CharVocab",
    "date_vocabularies",
    "encode_date_pairs",
    "copy_sequences",
    "date_lm_vocabulary",
    "encode_date_lm",
    "delayed_copy_task",
    "digits_splits",
    "shift_images",
]


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


def _pairs(n: int, length: int, num_traits: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Give ``length`` people ``length // 2`` distinct traits, each to exactly two of them, at random places."""
    chosen = torch.rand(n, num_traits, generator=g).argsort(dim=1)[:, : length // 2]  # (n, L/2) distinct traits
    place = torch.rand(n, length, generator=g).argsort(dim=1)  # (n, L): slot s goes to person place[s]
    traits = torch.empty(n, length, dtype=torch.int64)
    traits.scatter_(1, place, chosen.repeat_interleave(2, dim=1))  # slots 2k and 2k+1 share trait k
    partner = torch.empty(n, length, dtype=torch.int64)
    other = torch.arange(length) ^ 1  # slot 2k <-> 2k+1
    partner.scatter_(1, place, place[:, other])
    return traits, partner


def two_relations(
    n: int, length: int = 8, num_traits: int = 16, num_names: int = 32, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Groups of people related in two ways at once (chapter 5, E10: do different heads take different relations?).

    Every group has ``length`` people. Each person has a *looks* trait, a *character* trait and a name. Within a
    group every looks trait is shared by exactly two people (a look-alike pair), every character trait likewise
    (a kindred pair), and the two pairings are drawn independently; names are distinct. The task: for every
    person, name their look-alike and their kindred spirit. One attention distribution cannot serve both
    questions at once, so a layer needs one head per relation.

    Returns
    -------
    people : Tensor of int64 (n, length, 3)
        ``[looks, character, name]`` per person; traits in ``0..num_traits-1``, names in ``0..num_names-1``.
    targets : Tensor of int64 (n, length, 2)
        The names of each person's look-alike and kindred spirit.
    partners : Tensor of int64 (n, length, 2)
        Their positions in the group. About one person in ``length - 1`` has the same person as both partners.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``length`` is odd, ``num_traits < length / 2`` or ``num_names < length``.
    """
    n, length = _check_length("n", n), _check_length("length", length)
    num_traits, num_names = _check_length("num_traits", num_traits), _check_length("num_names", num_names)
    if length % 2:
        raise ValueError(f"length must be even (people come in pairs), got {length}")
    if num_traits < length // 2:
        raise ValueError(f"num_traits must be at least length / 2 = {length // 2}, got {num_traits}")
    if num_names < length:
        raise ValueError(f"num_names must be at least length = {length} (names are distinct), got {num_names}")
    g = _generator(seed)
    looks, look_alike = _pairs(n, length, num_traits, g)
    character, kindred = _pairs(n, length, num_traits, g)
    names = torch.rand(n, num_names, generator=g).argsort(dim=1)[:, :length]  # (n, L) distinct names
    partners = torch.stack([look_alike, kindred], dim=-1)  # (n, L, 2)
    targets = torch.stack([names.gather(1, look_alike), names.gather(1, kindred)], dim=-1)  # (n, L, 2)
    return torch.stack([looks, character, names], dim=-1), targets, partners


# ----------------------------------------------------------------------------------------------------------------
# Dates (chapters 4 and 6): human-written dates to ISO 8601.

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# name -> how to write a date. Month and weekday names are English and built here, not by strftime, so the
# output does not depend on the machine's locale. Every format is unambiguous: the year has four digits, and
# where day and month are both numbers the year comes first (year-month-day, as in ISO 8601), an order nobody
# reads as year-day-month. "3.3.1998" is left out on purpose: 3.4.1998 is 3 April in Europe and March 4 in the US.
DATE_FORMATS: dict[str, Callable[[_dt.date], str]] = {
    "tue 03 mar 1998": lambda d: (
        f"{_WEEKDAYS[d.weekday()][:3]} {d.day:02d} {_MONTHS[d.month - 1][:3]} {d.year}".lower()
    ),
    "March 3, 1998": lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "3 march 1998": lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}".lower(),
    "1998/3/3": lambda d: f"{d.year}/{d.month}/{d.day}",
    "03 Mar 1998": lambda d: f"{d.day:02d} {_MONTHS[d.month - 1][:3]} {d.year}",
    "Tuesday, March 3, 1998": lambda d: f"{_WEEKDAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "mar 3 1998": lambda d: f"{_MONTHS[d.month - 1][:3]} {d.day} {d.year}".lower(),
    "3rd of March 1998": lambda d: f"{_ordinal(d.day)} of {_MONTHS[d.month - 1]} {d.year}",
    "1998.03.03": lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}",
    "Mar. 3, 1998": lambda d: f"{_MONTHS[d.month - 1][:3]}. {d.day}, {d.year}",
    "TUESDAY 3 MARCH 1998": lambda d: f"{_WEEKDAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]} {d.year}".upper(),
    "1998 Mar 03": lambda d: f"{d.year} {_MONTHS[d.month - 1][:3]} {d.day:02d}",
}
"""The human-readable formats, each named by how it writes Tuesday 3 March 1998.

:meta hide-value:
"""


def format_date(day: _dt.date, fmt: str) -> str:
    """Write ``day`` in the format named ``fmt`` (a key of :data:`DATE_FORMATS`).

    Raises ``TypeError`` if ``day`` is not a ``datetime.date``, ``ValueError`` if ``fmt`` is unknown.
    """
    if not isinstance(day, _dt.date):
        raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
    if fmt not in DATE_FORMATS:
        raise ValueError(f"fmt must be one of {list(DATE_FORMATS)}, got {fmt!r}")
    return DATE_FORMATS[fmt](day)


@dataclass(frozen=True)
class DatePair:
    """One example: ``source`` (a human-written date), ``target`` (ISO 8601), and the format's name."""

    source: str
    target: str
    format: str


def date_splits(
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int = 0,
    first_year: int = 1900,
    last_year: int = 2099,
) -> tuple[list[DatePair], list[DatePair], list[DatePair]]:
    """Train, validation and test sets of (human date, ISO date) pairs, disjoint in the dates themselves.

    All days from 1 January ``first_year`` to 31 December ``last_year`` are shuffled with ``seed`` and dealt
    out: the first ``n_train`` days to training, the next ``n_val`` to validation, the next ``n_test`` to the
    test set, so no calendar day appears in two sets (whatever its format). Each day is written in a format
    drawn uniformly from :data:`DATE_FORMATS`.

    Returns
    -------
    train, val, test : lists of DatePair

    Raises
    ------
    TypeError
        If a size, the seed or a year is not an int.
    ValueError
        If a size is negative, the years are not in 1000..9999 with ``first_year <= last_year``, or the range
        holds fewer days than asked for.
    """
    sizes = [_check_int(name, n) for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    if min(sizes) < 0:
        raise ValueError(f"n_train, n_val and n_test must be non-negative, got {sizes}")
    first_year, last_year = _check_int("first_year", first_year), _check_int("last_year", last_year)
    if not 1000 <= first_year <= last_year <= 9999:
        raise ValueError(
            f"years must satisfy 1000 <= first_year <= last_year <= 9999 (four digits), got {first_year}..{last_year}"
        )
    start = _dt.date(first_year, 1, 1)
    n_days = (_dt.date(last_year, 12, 31) - start).days + 1
    if sum(sizes) > n_days:
        raise ValueError(f"asked for {sum(sizes)} distinct days but {first_year}..{last_year} has only {n_days}")
    g = _generator(seed)
    order = torch.randperm(n_days, generator=g)[: sum(sizes)].tolist()
    names = list(DATE_FORMATS)
    picks = torch.randint(len(names), (sum(sizes),), generator=g).tolist()
    pairs = []
    for offset, pick in zip(order, picks, strict=True):
        day = start + _dt.timedelta(days=offset)
        pairs.append(DatePair(format_date(day, names[pick]), day.isoformat(), names[pick]))
    a, b = sizes[0], sizes[0] + sizes[1]
    return pairs[:a], pairs[a:b], pairs[b:]


class CharVocab:
    """A character vocabulary with the special tokens PAD = 0, BOS = 1 and EOS = 2.

    Parameters
    ----------
    chars : str
        The characters, each once; they get the ids 3, 4, ... in this order.

    Raises
    ------
    TypeError, ValueError
        If ``chars`` is not a string of distinct characters.
    """

    PAD, BOS, EOS = 0, 1, 2
    SPECIALS = ("<pad>", "<bos>", "<eos>")

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str):
            raise TypeError(f"chars must be a str, got {type(chars).__name__}")
        if len(set(chars)) != len(chars):
            raise ValueError(f"chars must be distinct, got repeats in {chars!r}")
        self.chars = chars
        self.index = {c: i + len(self.SPECIALS) for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.SPECIALS) + len(self.chars)

    def tokens(self) -> list[str]:
        """Every token, in id order: the specials, then the characters."""
        return [*self.SPECIALS, *self.chars]

    def encode(self, texts: Sequence[str], bos: bool = False, eos: bool = False) -> tuple[Tensor, Tensor]:
        """Encode strings as a padded batch: ``(ids (N, L) int64, lengths (N,) int64)``, PAD after each end.

        ``bos``/``eos`` put BOS before and EOS after each string (counted in its length). Raises ``ValueError``
        naming the string and the character when a character is not in the vocabulary.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a sequence of strings (wrap a single string in a list)")
        rows = []
        for t in texts:
            missing = [c for c in t if c not in self.index]
            if missing:
                raise ValueError(f"character {missing[0]!r} of {t!r} is not in the vocabulary")
            rows.append([self.BOS] * bos + [self.index[c] for c in t] + [self.EOS] * eos)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        ids = torch.full((len(rows), int(lengths.max()) if rows else 0), self.PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids, lengths

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Turn ids back into a string: BOS and PAD are skipped, and the string ends at the first EOS."""
        out = []
        for i in ids.tolist() if isinstance(ids, Tensor) else ids:
            if i == self.EOS:
                break
            if i >= len(self.SPECIALS):
                out.append(self.chars[i - len(self.SPECIALS)])
        return "".join(out)


DATE_SOURCE_CHARS = " ,./0123456789" + string.ascii_lowercase + string.ascii_uppercase
"""Every character a format in :data:`DATE_FORMATS` can write (and a few more: all ASCII letters)."""
DATE_TARGET_CHARS = "-0123456789"
"""Every character of an ISO 8601 date."""


def date_vocabularies() -> tuple[CharVocab, CharVocab]:
    """The source and target vocabularies of the date task, fixed (they do not depend on the data drawn)."""
    return CharVocab(DATE_SOURCE_CHARS), CharVocab(DATE_TARGET_CHARS)


def encode_date_pairs(
    pairs: Sequence[DatePair], source_vocab: CharVocab, target_vocab: CharVocab
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Tensors for training a seq2seq model with teacher forcing.

    Returns
    -------
    source : (N, S) int64, padded with PAD
    source_lengths : (N,) int64
    target_in : (N, T) int64, ``BOS + target`` (what the decoder reads)
    target_out : (N, T) int64, ``target + EOS`` (what it must predict), aligned with ``target_in``
    """
    source, source_lengths = source_vocab.encode([p.source for p in pairs])
    target, _ = target_vocab.encode([p.target for p in pairs], bos=True, eos=True)
    return source, source_lengths, target[:, :-1], target[:, 1:]


def copy_sequences(
    n: int, min_len: int, max_len: int, vocab_size: int = 10, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sequences to copy, of random lengths, as seq2seq tensors (chapter 4's test of the bottleneck).

    Each source holds ``L`` tokens, ``L`` uniform in ``[min_len, max_len]``, drawn from ``vocab_size`` symbols
    with the ids ``3 .. 3 + vocab_size - 1`` (after :class:`CharVocab`'s PAD, BOS, EOS); the target is the same
    sequence. The longer the sequence, the more a single summary vector has to hold.

    Returns
    -------
    source : (n, max_len) int64, PAD after each sequence
    lengths : (n,) int64
    target_in : (n, max_len + 1) int64, BOS then the sequence
    target_out : (n, max_len + 1) int64, the sequence then EOS

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``min_len > max_len``.
    """
    n, vocab_size = _check_length("n", n), _check_length("vocab_size", vocab_size)
    min_len, max_len = _check_length("min_len", min_len), _check_length("max_len", max_len)
    if min_len > max_len:
        raise ValueError(f"min_len must be at most max_len, got {min_len} > {max_len}")
    g = _generator(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)  # (n,)
    symbols = torch.randint(vocab_size, (n, max_len), generator=g) + len(CharVocab.SPECIALS)  # (n, max_len)
    real = torch.arange(max_len)[None, :] < lengths[:, None]  # (n, max_len)
    source = symbols.masked_fill(~real, CharVocab.PAD)
    target_in = torch.cat([torch.full((n, 1), CharVocab.BOS), source], dim=1)  # (n, max_len + 1)
    target_out = torch.cat([source, torch.full((n, 1), CharVocab.PAD)], dim=1)
    target_out[torch.arange(n), lengths] = CharVocab.EOS
    return source, lengths, target_in, target_out


# ----------------------------------------------------------------------------------------------------------------
# Language-model tasks (chapter 9): one sequence per example, a prompt and its answer, trained on the answer only.


def date_lm_vocabulary() -> CharVocab:
    """The vocabulary of the date task for a decoder-only model: ``DATE_SOURCE_CHARS`` and ``"-="``.

    One vocabulary serves the human date, the separator ``"="`` and the ISO date (whose digits the source shares;
    ``"-"`` is added), after the specials PAD = 0, BOS = 1, EOS = 2. Fixed: it does not depend on the data drawn.
    """
    return CharVocab(DATE_SOURCE_CHARS + "-=")


def _lm_targets(sequences: Tensor, answer_starts: Tensor) -> tuple[Tensor, Tensor]:
    """Next-token ``(inputs, targets)`` of right-padded ``sequences`` (N, L), each (N, L - 1), with every target
    before ``answer_starts`` (N,) (a position in the sequence) set to PAD."""
    inputs, targets = sequences[:, :-1], sequences[:, 1:].clone()  # targets[:, j] is the token at position j + 1
    before = torch.arange(targets.shape[1])[None, :] + 1 < answer_starts[:, None]  # (N, L - 1) in the prompt
    return inputs, targets.masked_fill(before, CharVocab.PAD)


def encode_date_lm(pairs: Sequence[DatePair], vocab: CharVocab) -> tuple[Tensor, Tensor, Tensor]:
    """The date task as next-token prediction: each pair becomes one sequence, ``BOS + source + "=" + target + EOS``.

    For example ``<bos>tue 03 mar 1998=1998-03-03<eos>``, right-padded with PAD. A decoder-only model reads it left
    to right and learns to continue the prompt ``BOS + source + "="`` with the ISO date and EOS; the targets are
    masked so that a cross-entropy with ``ignore_index=PAD`` trains on that answer only (the human date is given,
    not predicted).

    Parameters
    ----------
    pairs : sequence of DatePair
        E.g. from :func:`date_splits`.
    vocab : CharVocab
        Holds every character of the dates and ``"="``: :func:`date_lm_vocabulary`.

    Returns
    -------
    inputs : (N, L) int64
        The sequences without their last position.
    targets : (N, L) int64
        The sequences shifted by one (``targets[:, j]`` is the token after ``inputs[:, j]``), PAD at every position
        before the answer and in the padding: only the ISO date and EOS remain.
    prompt_lengths : (N,) int64
        ``len(BOS + source + "=")``: ``inputs[i, :prompt_lengths[i]]`` is the prompt to generate from.

    Raises
    ------
    TypeError
        If ``pairs`` is not a sequence of DatePair or ``vocab`` not a CharVocab.
    ValueError
        If ``pairs`` is empty, a source contains ``"="``, or a character is not in ``vocab``.
    """
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab must be a CharVocab (see date_lm_vocabulary()), got {type(vocab).__name__}")
    if isinstance(pairs, str) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a sequence of DatePair, got {type(pairs).__name__}")
    if not pairs:
        raise ValueError("pairs must hold at least one DatePair, got an empty sequence")
    for i, p in enumerate(pairs):
        if not isinstance(p, DatePair):
            raise TypeError(f"pairs[{i}] must be a DatePair, got {type(p).__name__}")
        if "=" in p.source:
            raise ValueError(f"pairs[{i}].source must not contain the separator '=', got {p.source!r}")
    sequences, _ = vocab.encode([p.source + "=" + p.target for p in pairs], bos=True, eos=True)  # (N, L + 1)
    prompt_lengths = torch.tensor([len(p.source) + 2 for p in pairs], dtype=torch.long)  # BOS, source, "="
    inputs, targets = _lm_targets(sequences, prompt_lengths)
    return inputs, targets, prompt_lengths


def delayed_copy_task(
    n: int, min_len: int, max_len: int, delay: int = 3, vocab_size: int = 10, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Repeat the token read ``delay`` steps ago, as next-token prediction: a test of positions and of length.

    Each sequence holds ``m`` symbols ``x_0 .. x_{m-1}``, ``m`` uniform in ``[min_len, max_len]``, drawn uniformly
    from ``vocab_size`` symbols; at every position ``t >= delay`` the target is ``x_{t - delay}``. A causal model
    can only solve it by knowing where each token stands relative to the current one, so it tells position
    schemes apart; trained on short sequences and tested on longer ones, it shows which schemes work at positions
    never trained on (chapter 9). The ids: PAD = 0 (BOS = 1 and EOS = 2 unused, as in :class:`CharVocab`) and the
    symbols ``3 .. 3 + vocab_size - 1``, so **a model needs ``vocab_size + 3`` token ids**.

    Returns
    -------
    inputs : (n, max_len) int64
        The symbols, right-padded with PAD.
    targets : (n, max_len) int64
        ``targets[:, t] = inputs[:, t - delay]`` for ``delay <= t < m``, PAD elsewhere (for a cross-entropy with
        ``ignore_index=PAD``).
    lengths : (n,) int64
        ``m`` per sequence.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``min_len > max_len``, ``min_len <= delay`` (a sequence with nothing to
        repeat), or ``seed`` is not an int.
    """
    n, vocab_size = _check_length("n", n), _check_length("vocab_size", vocab_size)
    min_len, max_len = _check_length("min_len", min_len), _check_length("max_len", max_len)
    delay = _check_length("delay", delay)
    if min_len > max_len:
        raise ValueError(f"min_len must be at most max_len, got min_len={min_len} > max_len={max_len}")
    if min_len <= delay:
        raise ValueError(
            f"min_len must be more than delay, so that every sequence has a token to repeat: got min_len={min_len}, "
            f"delay={delay}"
        )
    g = _generator(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)  # (n,) m
    symbols = torch.randint(vocab_size, (n, max_len), generator=g) + len(CharVocab.SPECIALS)  # (n, max_len)
    t = torch.arange(max_len)[None, :]  # (1, max_len) positions
    inside = t < lengths[:, None]  # (n, max_len) real tokens
    inputs = torch.where(inside, symbols, CharVocab.PAD)  # (n, max_len)
    targets = torch.full_like(inputs, CharVocab.PAD)  # (n, max_len)
    targets[:, delay:] = inputs[:, :-delay]  # the token delay steps back (PAD past the end stays PAD)
    targets = torch.where(inside & (t >= delay), targets, CharVocab.PAD)
    return inputs, targets, lengths


# ----------------------------------------------------------------------------------------------------------------
# Handwritten digits (chapter 7): the 8x8 images bundled with scikit-learn, so nothing is downloaded.


def digits_splits(
    n_val: int = 300, n_test: int = 400, seed: int = 0
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Split scikit-learn's 1,797 handwritten digits into train, validation and test sets, stratified by class.

    The images ship inside scikit-learn (``sklearn.datasets.load_digits``: 8x8 pixels, grey levels 0 to 16, ten
    classes of about 180 each), so nothing is downloaded. Every split has the classes in the same proportions, the
    same ``seed`` gives the same split on every machine, and no image is in two splits.

    Returns
    -------
    (train_images, train_labels), (val_images, val_labels), (test_images, test_labels)
        Images as float32 tensors (N, 1, 8, 8) scaled to [0, 1]; labels as int64 tensors (N,).

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int, ``n_val`` or ``n_test`` is below 10, ``n_val + n_test`` leaves fewer than
        100 training images, or ``seed`` is outside [0, 2**32).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    n_val, n_test, seed = _check_length("n_val", n_val), _check_length("n_test", n_test), _check_int("seed", seed)
    if n_val < 10 or n_test < 10:
        raise ValueError(f"n_val and n_test must be at least 10 (one image per class), got {n_val} and {n_test}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must lie in [0, 2**32) for scikit-learn's splitter, got {seed}")
    digits = load_digits()
    total = len(digits.target)
    if total - n_val - n_test < 100:
        raise ValueError(
            f"n_val + n_test must leave at least 100 of the {total} images for training, got {n_val} + {n_test}"
        )
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    labels = torch.tensor(digits.target, dtype=torch.int64)
    index = torch.arange(total).numpy()
    rest, test = train_test_split(index, test_size=n_test, stratify=digits.target, random_state=seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=digits.target[rest], random_state=seed)
    return tuple((images[torch.as_tensor(i)], labels[torch.as_tensor(i)]) for i in (train, val, test))


def shift_images(images: Tensor, max_shift: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Shift every image by a random whole number of pixels (at most ``max_shift`` each way), filling with zeros.

    A light augmentation for small images (chapter 7): a digit moved by a pixel is still the same digit.
    ``images`` is (N, C, H, W); each image gets its own shift, drawn from ``generator`` (or torch's global one).
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be a tensor of shape (N, C, H, W), got {tuple(images.shape)}")
    max_shift = _check_int("max_shift", max_shift)
    if max_shift < 0:
        raise ValueError(f"max_shift must be at least 0, got {max_shift}")
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # zeros around every image
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)  # (N, 2) offsets into the padding
    rows = (shifts[:, 0, None] + torch.arange(h)).to(images.device)  # (N, H)
    cols = (shifts[:, 1, None] + torch.arange(w)).to(images.device)  # (N, W)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
