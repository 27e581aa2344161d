"""The chapter models: shapes, the structure of their attention weights, and what position information changes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlib.data import associative_recall, two_relations
from attnlib.functional import NORMALIZERS
from attnlib.models import KeyValueRecall, RelationReader, SelfAttentionTagger, TransformerTagger
from attnlib.positional import sinusoidal_encoding

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


def test_key_value_recall_by_hand_with_and_without_shared_keys_and_values():
    # The attended vector is the weighted sum of V = x W_V, or of V = K = x W_K when they are shared.
    keys, values, query, _ = associative_recall(3, num_pairs=5, num_keys=12, num_values=7, seed=3)
    counts = {}
    for shared in (False, True):
        torch.manual_seed(4)
        model = KeyValueRecall(num_keys=12, num_values=7, d_model=8, shared_kv=shared).double()
        logits, weights = model(keys, values, query)
        x = model.key_embedding(keys) + model.value_embedding(values)  # (B, P, d)
        q = model.q_proj(model.query_embedding(query))  # (B, d)
        k = model.k_proj(x)
        v = k if shared else model.v_proj(x)
        a = torch.softmax((k @ q[:, :, None]).squeeze(-1) / 8**0.5, dim=-1)  # (B, P)
        torch.testing.assert_close(weights, a)
        torch.testing.assert_close(logits, model.classifier((a[:, :, None] * v).sum(1)))
        assert (model.v_proj is None) == shared
        counts[shared] = sum(p.numel() for p in model.parameters())
    assert counts[True] == counts[False] - 8 * 8  # one d x d projection fewer


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


# ----------------------------------------------------------------------------------------------------------------
# SelfAttentionTagger with a causal mask


@pytest.mark.parametrize("position", [None, "learned"])
@pytest.mark.parametrize("residual", [False, True])
def test_tagger_causal_weights_are_lower_triangular(position, residual):
    model = _tagger(causal=True, position=position, residual=residual)
    tokens = torch.randint(10, (3, 7), generator=torch.Generator().manual_seed(2))
    logits, weights = model(tokens)
    assert weights.shape == (3, 7, 7)
    assert torch.all(torch.triu(weights, diagonal=1) == 0)  # nothing from the future
    below = torch.ones(7, 7, dtype=torch.bool).tril()
    assert torch.all(weights[:, below] > 0)  # everything allowed gets some weight
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7, dtype=torch.float64))
    torch.testing.assert_close(weights[:, 0, 0], torch.ones(3, dtype=torch.float64))  # the first sees only itself
    logits_fused, none = model(tokens, need_weights=False)
    assert none is None
    torch.testing.assert_close(logits_fused, logits)


def test_tagger_causal_with_mask_diagonal_sees_only_earlier_positions():
    model = _tagger(causal=True, mask_diagonal=True)
    tokens = torch.randint(10, (4, 6), generator=torch.Generator().manual_seed(3))
    logits, weights = model(tokens)
    assert torch.all(weights[:, 0] == 0)  # the first position attends to nothing
    assert torch.all(torch.triu(weights, diagonal=0) == 0)  # strictly lower triangular
    strictly_below = torch.ones(6, 6, dtype=torch.bool).tril(diagonal=-1)
    assert torch.all(weights[:, strictly_below] > 0)
    torch.testing.assert_close(weights[:, 1:].sum(-1), torch.ones(4, 5, dtype=torch.float64))
    torch.testing.assert_close(weights[:, 1, 0], torch.ones(4, dtype=torch.float64))  # the second sees the first
    # with no residual, the first position's attention output is zero: its logits are the MLP's output at 0
    torch.testing.assert_close(logits[:, 0], model.mlp(torch.zeros(4, 8, dtype=torch.float64)))
    logits_fused, _ = model(tokens, need_weights=False)
    assert torch.isfinite(logits_fused).all()
    torch.testing.assert_close(logits_fused, logits)


@pytest.mark.parametrize("mask_diagonal", [False, True])
@pytest.mark.parametrize("need_weights", [True, False])
@given(data=st.data())
def test_tagger_causal_earlier_logits_ignore_later_tokens(mask_diagonal, need_weights, data):
    model = _tagger(causal=True, mask_diagonal=mask_diagonal, position="sinusoidal", residual=True)
    length = data.draw(st.integers(2, 10), label="length")
    changed = data.draw(st.integers(1, length - 1), label="changed position")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    tokens = torch.randint(10, (2, length), generator=torch.Generator().manual_seed(seed))
    other = tokens.clone()
    other[:, changed] = (tokens[:, changed] + data.draw(st.integers(1, 9), label="shift")) % 10  # a new token
    logits, _ = model(tokens, need_weights=need_weights)
    logits_other, _ = model(other, need_weights=need_weights)
    assert torch.equal(logits_other[:, :changed], logits[:, :changed])  # exactly, not just close
    assert not torch.allclose(logits_other[:, changed], logits[:, changed])  # the changed token itself does count


@pytest.mark.parametrize("mask_diagonal", [False, True])
@given(length=st.integers(2, 10), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_tagger_without_causal_later_tokens_change_earlier_logits(mask_diagonal, length, seed, data):
    model = _tagger(mask_diagonal=mask_diagonal)
    changed = data.draw(st.integers(1, length - 1), label="changed position")
    tokens = torch.randint(10, (2, length), generator=torch.Generator().manual_seed(seed))
    other = tokens.clone()
    other[:, changed] = (tokens[:, changed] + data.draw(st.integers(1, 9), label="shift")) % 10
    diff = (model(other)[0] - model(tokens)[0]).abs().amax(-1)  # (2, length)
    assert torch.all(diff[:, :changed] > 1e-9)  # every earlier position sees the change


@pytest.mark.parametrize("mask_diagonal", [False, True])
@given(length=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_tagger_causal_equals_the_full_model_on_each_prefix(mask_diagonal, length, seed):
    # position i of the causal model sees exactly what the unmasked model sees when it reads tokens[:, : i + 1]
    causal = _tagger(causal=True, mask_diagonal=mask_diagonal, position="learned", residual=True)
    full = _tagger(causal=False, mask_diagonal=mask_diagonal, position="learned", residual=True)
    full.load_state_dict(causal.state_dict())
    tokens = torch.randint(10, (3, length), generator=torch.Generator().manual_seed(seed))
    logits, weights = causal(tokens)
    for i in range(length):
        prefix_logits, prefix_weights = full(tokens[:, : i + 1])
        torch.testing.assert_close(logits[:, i], prefix_logits[:, i])
        torch.testing.assert_close(weights[:, i, : i + 1], prefix_weights[:, i])


# ----------------------------------------------------------------------------------------------------------------
# RelationReader


def _reader(num_heads: int = 2, d_model: int = 8) -> RelationReader:
    torch.manual_seed(0)
    return RelationReader(num_traits=6, num_names=10, d_model=d_model, num_heads=num_heads).double()


def _people(n: int = 3, length: int = 6, seed: int = 0) -> torch.Tensor:
    return two_relations(n, length=length, num_traits=6, num_names=10, seed=seed)[0]


@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_relation_reader_shapes_and_weights(num_heads):
    model = _reader(num_heads)
    people = _people(3, 6)
    logits, weights = model(people)
    assert logits.shape == (3, 6, 2, 10) and weights.shape == (3, num_heads, 6, 6)
    assert torch.all(torch.diagonal(weights, dim1=-2, dim2=-1) == 0)  # nobody attends to themselves
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    assert torch.all(weights[..., off_diagonal] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, num_heads, 6, dtype=torch.float64))
    logits_fused, none = model(people, need_weights=False)
    assert none is None
    torch.testing.assert_close(logits_fused, logits)


def test_relation_reader_parameter_count_does_not_depend_on_heads():
    t, n, d = 16, 32, 32
    expected = 2 * t * d + n * d + 4 * (d * d + d) + (d * 2 * n + 2 * n)  # embeddings, W_Q/K/V/O, classifier
    for num_heads in (1, 2, 4):
        model = RelationReader(num_traits=t, num_names=n, d_model=d, num_heads=num_heads)
        assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("num_heads", [1, 2])
@given(half=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_relation_reader_is_permutation_equivariant(num_heads, half, seed):
    # no positions: reordering the people of a group reorders the answers and the weights, nothing more
    model = _reader(num_heads)
    people = _people(2, 2 * half, seed=seed)
    perm = torch.randperm(2 * half, generator=torch.Generator().manual_seed(seed))
    logits, weights = model(people)
    logits_p, weights_p = model(people[:, perm])
    torch.testing.assert_close(logits_p, logits[:, perm])
    torch.testing.assert_close(weights_p, weights[:, :, perm][:, :, :, perm])


def _reader_by_hand(model: RelationReader, people: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's forward pass written out with torch.nn.functional, one layer and one head at a time."""
    x = (
        F.embedding(people[..., 0], model.looks_embedding.weight)
        + F.embedding(people[..., 1], model.character_embedding.weight)
        + F.embedding(people[..., 2], model.name_embedding.weight)
    )  # (B, L, d)
    all_weights = []
    for att in (model.attention, *model.more_layers):
        q = F.linear(x, att.q_proj.weight, att.q_proj.bias)
        k = F.linear(x, att.k_proj.weight, att.k_proj.bias)
        v = F.linear(x, att.v_proj.weight, att.v_proj.bias)
        length, d, num_heads = x.shape[1], x.shape[2], att.num_heads
        hd = d // num_heads
        self_mask = torch.eye(length, dtype=torch.bool)
        outs = []
        for h in range(num_heads):
            cols = slice(h * hd, (h + 1) * hd)
            scores = q[..., cols] @ k[..., cols].transpose(-2, -1) / math.sqrt(hd)  # (B, L, L)
            w = F.softmax(scores.masked_fill(self_mask, float("-inf")), dim=-1)
            outs.append(w @ v[..., cols])
            all_weights.append(w)
        x = x + F.linear(torch.cat(outs, dim=-1), att.out_proj.weight, att.out_proj.bias)  # (B, L, d)
    flat = F.linear(x, model.classifier.weight, model.classifier.bias)  # (B, L, 2 * num_names)
    n = model.num_names
    return torch.stack([flat[..., :n], flat[..., n:]], dim=-2), torch.stack(all_weights, dim=1)


@pytest.mark.parametrize(("num_heads", "num_layers"), [(1, 1), (2, 1), (4, 1), (1, 2), (2, 3)])
def test_relation_reader_matches_a_hand_computation(num_heads, num_layers):
    torch.manual_seed(0)
    model = RelationReader(num_traits=6, num_names=10, d_model=8, num_heads=num_heads, num_layers=num_layers)
    model = model.double()
    people = _people(4, 8, seed=5)
    expected_logits, expected_weights = _reader_by_hand(model, people)
    logits, weights = model(people)
    assert weights.shape == (4, num_heads * num_layers, 8, 8)  # every layer's heads, layer after layer
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(weights, expected_weights)
    logits_fused, none = model(people, need_weights=False)
    assert none is None
    torch.testing.assert_close(logits_fused, logits)


def test_relation_reader_layers_add_one_attention_layer_of_parameters_each():
    t, n, d = 16, 32, 32
    one = sum(p.numel() for p in RelationReader(t, n, d, num_heads=1).parameters())
    three = sum(p.numel() for p in RelationReader(t, n, d, num_heads=1, num_layers=3).parameters())
    assert three - one == 2 * 4 * (d * d + d)  # W_Q, W_K, W_V, W_O with biases, twice
    with pytest.raises(ValueError, match="num_layers"):
        RelationReader(t, n, d, num_layers=0)


@pytest.mark.parametrize(
    ("people", "error", "word"),
    [
        (torch.tensor([[[0, 1, 2, 3]]]), ValueError, "(B, L, 3)"),
        (torch.tensor([[[0, 1]]]), ValueError, "(B, L, 3)"),
        (torch.tensor([[0, 1, 2]]), ValueError, "3 dimensions"),
        (torch.tensor([[[0.0, 1.0, 2.0]]]), TypeError, "integer"),
        (torch.tensor([[[6, 1, 2]]]), ValueError, "[0, 6)"),  # looks >= num_traits
        (torch.tensor([[[0, 6, 2]]]), ValueError, "[0, 6)"),  # character >= num_traits
        (torch.tensor([[[0, 1, 10]]]), ValueError, "[0, 10)"),  # name >= num_names
        (torch.tensor([[[0, -1, 2]]]), ValueError, "people"),
        ([[[0, 1, 2]]], TypeError, "torch.Tensor"),
    ],
)
def test_relation_reader_rejects_bad_people(people, error, word):
    with pytest.raises(error) as info:
        _reader()(people)
    assert word in str(info.value)


def test_relation_reader_rejects_d_model_not_divisible_by_num_heads():
    with pytest.raises(ValueError, match="num_heads"):
        RelationReader(num_traits=6, num_names=10, d_model=30, num_heads=4)


@pytest.mark.parametrize(("num_heads", "num_layers", "learns"), [(2, 1, True), (1, 1, False), (1, 2, True)])
def test_relation_reader_needs_two_heads_for_two_relations(num_heads, num_layers, learns):
    # about 1 s each on a laptop CPU: one head in one layer cannot point at two partners at once; two heads side
    # by side can, and so can two heads one after another (two layers of one head)
    torch.manual_seed(0)
    people, targets, _ = two_relations(2000, seed=0)
    test_people, test_targets, _ = two_relations(500, seed=1000)
    model = RelationReader(num_traits=16, num_names=32, d_model=32, num_heads=num_heads, num_layers=num_layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        idx = torch.randint(2000, (200,), generator=g)
        logits, _ = model(people[idx], need_weights=False)
        loss = F.cross_entropy(logits.reshape(-1, 32), targets[idx].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(test_people, need_weights=False)[0].argmax(-1) == test_targets).double().mean().item()
    assert accuracy > 0.9 if learns else accuracy < 0.8


# ----------------------------------------------------------------------------------------------------------------
# TransformerTagger (chapter 6, E12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_tagger_is_embedding_positions_encoder_classifier(norm_first):
    torch.manual_seed(0)
    model = TransformerTagger(
        10, 7, d_model=16, nhead=2, num_layers=2, dim_feedforward=32, norm_first=norm_first, max_len=9
    ).eval()
    tokens = torch.randint(10, (3, 9))
    logits, weights = model(tokens, need_weights=True)
    x = model.embedding(tokens) * 4.0 + sinusoidal_encoding(9, 16)  # sqrt(16) = 4
    for layer in model.encoder.layers:
        x, _ = layer(x)
    if norm_first:
        x = model.encoder.norm(x)
    torch.testing.assert_close(logits, model.classifier(x))
    assert logits.shape == (3, 9, 7) and len(weights) == 2 and weights[0].shape == (3, 2, 9, 9)
    fused, none = model(tokens)
    assert none is None
    torch.testing.assert_close(fused, logits, atol=1e-5, rtol=1e-5)


def test_transformer_tagger_embeddings_start_at_the_scale_of_the_positions():
    torch.manual_seed(0)
    model = TransformerTagger(500, 3, d_model=64)
    assert abs(model.embedding.weight.std().item() - 64**-0.5) < 0.05 * 64**-0.5


def test_transformer_tagger_rejects_bad_tokens():
    model = TransformerTagger(10, 3, d_model=16, nhead=2, num_layers=1, max_len=5)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.full((2, 5), 10))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(TypeError, match="tokens"):
        model(torch.zeros(2, 5))
