"""The chapter models: shapes, the structure of their attention weights, and what position information changes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlib.data import associative_recall
from attnlib.functional import NORMALIZERS
from attnlib.models import KeyValueRecall, SelfAttentionTagger

# ----------------------------------------------------------------------------------------------------------------
# KeyValueRecall


@pytest.mark.parametrize("normalizer", NORMALIZERS)
def test_key_value_recall_shapes(normalizer):
    torch.manual_seed(0)
    model = KeyValueRecall(num_keys=12, num_values=7, d_model=8, normalizer=normalizer)
    keys, values, query, _ = associative_recall(5, num_pairs=6, num_keys=12, num_values=7, seed=0)
    logits, weights = model(keys, values, query)
    assert logits.shape == (5, 7) and weights.shape == (5, 6)
    assert torch.isfinite(logits).all() and torch.all(weights >= 0)
    assert model.normalizer == normalizer


def test_key_value_recall_softmax_weights_sum_to_one():
    torch.manual_seed(0)
    model = KeyValueRecall(num_keys=12, num_values=7, d_model=8)
    keys, values, query, _ = associative_recall(9, num_pairs=5, num_keys=12, num_values=7, seed=1)
    _, weights = model(keys, values, query)
    torch.testing.assert_close(weights.sum(-1), torch.ones(9))


def test_key_value_recall_ignores_the_order_of_pairs():
    # attention over the pairs has no notion of position: shuffling the pairs permutes the weights only
    torch.manual_seed(0)
    model = KeyValueRecall(num_keys=12, num_values=7, d_model=8).double()
    keys, values, query, _ = associative_recall(4, num_pairs=6, num_keys=12, num_values=7, seed=2)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    logits, weights = model(keys, values, query)
    logits_p, weights_p = model(keys[:, perm], values[:, perm], query)
    torch.testing.assert_close(logits_p, logits)
    torch.testing.assert_close(weights_p, weights[:, perm])


@pytest.mark.parametrize(
    ("args", "error", "word"),
    [
        ((torch.tensor([[0, 12]]), torch.tensor([[0, 1]]), torch.tensor([0])), ValueError, "keys"),
        ((torch.tensor([[0, 1]]), torch.tensor([[0, 7]]), torch.tensor([0])), ValueError, "values"),
        ((torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), torch.tensor([-1])), ValueError, "query"),
        ((torch.tensor([[0.0, 1.0]]), torch.tensor([[0, 1]]), torch.tensor([0])), TypeError, "keys"),
        ((torch.tensor([[0, 1]]), torch.tensor([[0, 1, 2]]), torch.tensor([0])), ValueError, "same shape"),
        ((torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), torch.tensor([0, 1])), ValueError, "query"),
    ],
)
def test_key_value_recall_rejects_bad_ids(args, error, word):
    model = KeyValueRecall(num_keys=12, num_values=7, d_model=4)
    with pytest.raises(error, match=word):
        model(*args)


# ----------------------------------------------------------------------------------------------------------------
# SelfAttentionTagger


def _tagger(**kwargs) -> SelfAttentionTagger:
    torch.manual_seed(0)
    return SelfAttentionTagger(vocab_size=10, num_classes=5, d_model=8, max_len=12, **kwargs).double()


@pytest.mark.parametrize("position", [None, "sinusoidal", "learned"])
@pytest.mark.parametrize("residual", [False, True])
def test_tagger_shapes(position, residual):
    model = _tagger(position=position, residual=residual)
    tokens = torch.randint(10, (3, 7), generator=torch.Generator().manual_seed(0))
    logits, weights = model(tokens)
    assert logits.shape == (3, 7, 5) and weights.shape == (3, 7, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7, dtype=torch.float64))
    logits_fused, none = model(tokens, need_weights=False)
    assert none is None
    torch.testing.assert_close(logits_fused, logits)


def test_tagger_mask_diagonal_zeroes_self_attention():
    model = _tagger(mask_diagonal=True)
    tokens = torch.randint(10, (4, 6), generator=torch.Generator().manual_seed(1))
    _, weights = model(tokens)
    assert torch.all(torch.diagonal(weights, dim1=-2, dim2=-1) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 6, dtype=torch.float64))
    _, unmasked = _tagger()(tokens)
    assert torch.all(torch.diagonal(unmasked, dim1=-2, dim2=-1) > 0)  # the mask is what zeroes them


@pytest.mark.parametrize("mask_diagonal", [False, True])
@pytest.mark.parametrize("residual", [False, True])
@given(length=st.integers(2, 8), seed=st.integers(0, 2**31 - 1))
def test_tagger_without_positions_is_permutation_equivariant(mask_diagonal, residual, length, seed):
    model = _tagger(mask_diagonal=mask_diagonal, residual=residual)
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(10, (2, length), generator=g)
    perm = torch.randperm(length, generator=g)
    logits, _ = model(tokens)
    logits_p, _ = model(tokens[:, perm])
    torch.testing.assert_close(logits_p, logits[:, perm])


@pytest.mark.parametrize("position", ["sinusoidal", "learned"])
def test_tagger_with_positions_is_not_permutation_equivariant(position):
    model = _tagger(position=position)
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6]])  # distinct tokens: a permutation really moves something
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    logits, _ = model(tokens)
    logits_p, _ = model(tokens[:, perm])
    assert not torch.allclose(logits_p, logits[:, perm], atol=1e-6)


@pytest.mark.parametrize(
    ("tokens", "error", "word"),
    [
        (torch.tensor([[0, 10]]), ValueError, "[0, 10)"),
        (torch.tensor([[-1, 3]]), ValueError, "tokens"),
        (torch.tensor([[0.0, 1.0]]), TypeError, "integer"),
        (torch.tensor([0, 1]), ValueError, "2 dimensions"),
        (torch.zeros(1, 13, dtype=torch.long), ValueError, "max_len"),
        ([[0, 1]], TypeError, "torch.Tensor"),
    ],
)
def test_tagger_rejects_bad_tokens(tokens, error, word):
    with pytest.raises(error) as info:
        _tagger(position="learned")(tokens)
    assert word in str(info.value)


def test_tagger_rejects_unknown_position():
    with pytest.raises(ValueError, match="position"):
        SelfAttentionTagger(vocab_size=4, num_classes=2, position="rotary")
