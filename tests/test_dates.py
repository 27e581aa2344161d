"""The date task: every generated input must parse back, with Python's own parser, to its ISO target."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import torch

from attnlib.data import (
    DATE_FORMATS,
    CharVocab,
    DatePair,
    date_splits,
    date_vocabularies,
    encode_date_pairs,
    format_date,
)

# An independent parser: one strptime pattern per format (Python's C-locale English names, case-insensitive).
STRPTIME = {
    "tue 03 mar 1998": "%a %d %b %Y",
    "March 3, 1998": "%B %d, %Y",
    "3 march 1998": "%d %B %Y",
    "1998/3/3": "%Y/%m/%d",
    "03 Mar 1998": "%d %b %Y",
    "Tuesday, March 3, 1998": "%A, %B %d, %Y",
    "mar 3 1998": "%b %d %Y",
    "3rd of March 1998": "%d of %B %Y",  # after removing the ordinal suffix
    "1998.03.03": "%Y.%m.%d",
    "Mar. 3, 1998": "%b. %d, %Y",
    "TUESDAY 3 MARCH 1998": "%A %d %B %Y",
    "1998 Mar 03": "%Y %b %d",
}
WEEKDAY = {"tue 03 mar 1998": "%a", "Tuesday, March 3, 1998": "%A", "TUESDAY 3 MARCH 1998": "%A"}


def _parse(pair: DatePair) -> dt.date:
    text = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", pair.source) if pair.format == "3rd of March 1998" else pair.source
    return dt.datetime.strptime(text, STRPTIME[pair.format]).date()


def test_there_are_at_least_ten_formats_and_each_is_named_by_its_own_output():
    assert len(DATE_FORMATS) >= 10
    assert set(STRPTIME) == set(DATE_FORMATS)
    for name in DATE_FORMATS:
        assert format_date(dt.date(1998, 3, 3), name) == name


@pytest.fixture(scope="module")
def splits():
    return date_splits(3000, 500, 500, seed=0)


def test_every_input_parses_back_to_its_target(splits):
    for pair in [p for split in splits for p in split]:
        day = _parse(pair)
        assert day.isoformat() == pair.target, pair
        if pair.format in WEEKDAY:  # strptime ignores the weekday, so check it separately
            weekday = pair.source.split()[0].rstrip(",")
            assert weekday.lower() == day.strftime(WEEKDAY[pair.format]).lower(), pair


def test_every_format_is_used(splits):
    assert {p.format for p in splits[0]} == set(DATE_FORMATS)


def test_splits_are_disjoint_in_the_dates(splits):
    train, val, test = ({p.target for p in s} for s in splits)
    assert len(train) == 3000 and len(val) == 500 and len(test) == 500  # no day twice within a split either
    assert not train & val and not train & test and not val & test


def test_same_seed_same_data_other_seed_other_data(splits):
    assert date_splits(3000, 500, 500, seed=0) == splits
    assert date_splits(3000, 500, 500, seed=1)[0] != splits[0]


def test_every_format_is_one_to_one_over_two_centuries():
    days = [
        dt.date(1900, 1, 1) + dt.timedelta(days=i)
        for i in range((dt.date(2099, 12, 31) - dt.date(1900, 1, 1)).days + 1)
    ]
    for name in DATE_FORMATS:
        written = {format_date(d, name) for d in days}
        assert len(written) == len(days), f"two days are written the same way in {name!r}"


def test_day_and_month_cannot_be_swapped():
    # Either the month is a word, or the four-digit year comes first (year-month-day).
    for name in DATE_FORMATS:
        text = format_date(dt.date(2001, 4, 5), name)
        assert re.search(r"[A-Za-z]{3}", text) or re.match(r"\d{4}\D", text), name


def test_split_errors():
    with pytest.raises(ValueError, match="only"):
        date_splits(400, 0, 0, first_year=2000, last_year=2000)
    with pytest.raises(ValueError, match="four digits"):
        date_splits(1, 1, 1, first_year=99, last_year=2000)
    with pytest.raises(ValueError, match="non-negative"):
        date_splits(-1, 1, 1)
    with pytest.raises(TypeError, match="n_train"):
        date_splits(1.5, 1, 1)


def test_vocabulary_ids_round_trip_and_specials():
    source_vocab, target_vocab = date_vocabularies()
    assert (CharVocab.PAD, CharVocab.BOS, CharVocab.EOS) == (0, 1, 2)
    assert len(target_vocab) == 3 + 11
    ids, lengths = source_vocab.encode(["Mar. 3, 1998", "1998/3/3"])
    assert lengths.tolist() == [12, 8]
    assert ids.shape == (2, 12) and ids[1, 8:].eq(CharVocab.PAD).all()
    assert [source_vocab.decode(r) for r in ids] == ["Mar. 3, 1998", "1998/3/3"]
    ids, lengths = target_vocab.encode(["1998-03-03"], bos=True, eos=True)
    assert ids[0, 0] == CharVocab.BOS and ids[0, -1] == CharVocab.EOS and lengths.item() == 12
    assert target_vocab.decode(ids[0]) == "1998-03-03"
    assert target_vocab.decode([5, 6, CharVocab.EOS, 7]) == target_vocab.decode([5, 6])  # stops at EOS


def test_vocabulary_errors():
    source_vocab, _ = date_vocabularies()
    with pytest.raises(ValueError, match="'#'"):
        source_vocab.encode(["3 # 1998"])
    with pytest.raises(TypeError, match="sequence of strings"):
        source_vocab.encode("1998")
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("aa")


def test_encoded_pairs_are_shifted_for_teacher_forcing(splits):
    source_vocab, target_vocab = date_vocabularies()
    pairs = splits[2][:50]
    source, source_lengths, target_in, target_out = encode_date_pairs(pairs, source_vocab, target_vocab)
    assert source.shape[0] == source_lengths.shape[0] == target_in.shape[0] == 50
    assert torch.equal(target_in[:, 1:], target_out[:, :-1])  # the decoder reads what it predicted one step before
    assert target_in[:, 0].eq(CharVocab.BOS).all() and target_out[:, -1].eq(CharVocab.EOS).all()
    for i, p in enumerate(pairs):
        assert source_vocab.decode(source[i, : source_lengths[i]]) == p.source
        assert target_vocab.decode(target_out[i]) == p.target
