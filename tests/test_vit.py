"""Chapter 7's Vision Transformer and its CNN baseline: patches worked out by hand, with a plain loop and with torch's
``unfold``; the patch embedding against a strided convolution; the CLS token, the positions and the logits rebuilt
from the submodules; permuting the patches without positions; attention rollout by hand; argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from attnlib.models import SmallCNN
from attnlib.vit import PatchEmbedding, VisionTransformer, attention_rollout, patchify, unpatchify

TOL64 = dict(atol=1e-10, rtol=1e-8)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random values in every parameter (LayerNorms, CLS token and positions included), so that nothing hides
    behind torch's initialisation (ones, zeros, tiny positions)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float32))
    return module


def _vit(seed: int = 0, **kwargs) -> VisionTransformer:
    kwargs = dict(dict(image_size=8, patch_size=2, d_model=8, nhead=2, num_layers=2, dim_feedforward=16), **kwargs)
    torch.manual_seed(seed)
    return _randomize(VisionTransformer(**kwargs), seed).double().eval()


# ----------------------------------------------------------------------------------------------------------------
# patchify, unpatchify


def test_patchify_by_hand():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    # 0  1 |  2  3
    # 4  5 |  6  7
    # -----+------
    # 8  9 | 10 11
    # 12 13| 14 15
    expected = torch.tensor([[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]], dtype=torch.float32)
    assert torch.equal(patchify(image, 2), expected[None])
    assert torch.equal(patchify(image, 1), torch.arange(16.0).reshape(1, 16, 1))  # every pixel a patch
    assert torch.equal(patchify(image, 4), torch.arange(16.0).reshape(1, 1, 16))  # the whole image one patch


def test_patchify_by_hand_non_square():
    image = torch.arange(8.0).reshape(1, 1, 2, 4)  # one row of two patches
    assert torch.equal(patchify(image, 2), torch.tensor([[[0.0, 1, 4, 5], [2, 3, 6, 7]]]))


def _patchify_loop(images: torch.Tensor, p: int) -> list:
    """Patches in reading order, each vector channel after channel, each channel row after row of p pixels."""
    b, c, h, w = images.shape
    out = []
    for i in range(b):
        patches = []
        for r in range(h // p):
            for q in range(w // p):
                patches.append(
                    [float(images[i, ch, r * p + y, q * p + x]) for ch in range(c) for y in range(p) for x in range(p)]
                )
        out.append(patches)
    return out


@pytest.mark.parametrize(("shape", "p"), [((2, 3, 4, 6), 2), ((1, 2, 6, 3), 3), ((2, 1, 4, 4), 1)])
def test_patchify_multichannel_equals_plain_loop(shape, p):
    images = _randn(*shape, seed=1)
    got = patchify(images, p)
    assert got.shape == (shape[0], (shape[2] // p) * (shape[3] // p), shape[1] * p * p)
    assert got.tolist() == _patchify_loop(images, p)


def test_patchify_is_channel_major_inside_a_patch():
    # channel 0 all zeros, channel 1 all ones: in every patch the first p*p numbers are 0, the next p*p are 1
    images = torch.stack([torch.zeros(4, 4), torch.ones(4, 4)])[None]
    patches = patchify(images, 2)
    assert torch.equal(patches, torch.tensor([0.0] * 4 + [1.0] * 4).expand(1, 4, 8))


@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2**16),
)
def test_patchify_equals_unfold_and_unpatchify_inverts_it(b, c, rows, cols, p, seed):
    images = _randn(b, c, rows * p, cols * p, seed=seed)
    patches = patchify(images, p)
    # unfold gives (B, C*p*p, N), channel-major with each channel's p x p block row-major, patches in reading order
    assert torch.equal(patches, F.unfold(images, kernel_size=p, stride=p).transpose(1, 2))
    back = unpatchify(patches, p, (rows * p, cols * p), channels=c)
    assert back.shape == images.shape
    assert torch.equal(back, images)


def test_patchify_keeps_dtype_and_gradients():
    images = _randn(2, 1, 4, 4, dtype=torch.float32).requires_grad_()
    patches = patchify(images, 2)
    assert patches.dtype == torch.float32
    (patches * torch.arange(16.0).reshape(1, 4, 4)).sum().backward()
    # every pixel appears exactly once: its gradient is the weight of the slot it went to
    assert torch.equal(images.grad[0], unpatchify(torch.arange(16.0).reshape(1, 4, 4), 2, (4, 4))[0])


@pytest.mark.parametrize(
    ("images", "p", "error", "word"),
    [
        (torch.zeros(1, 1, 6, 6), 4, ValueError, "patch_size"),
        (torch.zeros(1, 1, 4, 6), 4, ValueError, "patch_size"),  # H divisible, W not
        (torch.zeros(1, 1, 6, 4), 4, ValueError, "patch_size"),  # W divisible, H not
        (torch.zeros(1, 4, 4), 2, ValueError, "(B, C, H, W)"),
        (torch.zeros(2, 1, 1, 4, 4), 2, ValueError, "(B, C, H, W)"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int64), 2, TypeError, "floating-point"),
        ([[[[0.0]]]], 1, TypeError, "torch.Tensor"),
        (torch.zeros(1, 1, 4, 4), 0, ValueError, "patch_size"),
        (torch.zeros(1, 1, 4, 4), 2.0, TypeError, "patch_size"),
    ],
)
def test_patchify_rejects_bad_arguments(images, p, error, word):
    with pytest.raises(error) as info:
        patchify(images, p)
    assert word in str(info.value)


@pytest.mark.parametrize(
    ("patches", "image_size", "channels"),
    [
        (torch.zeros(1, 3, 4), (4, 4), 1),  # 3 patches, 4 needed
        (torch.zeros(1, 4, 8), (4, 4), 1),  # 8 numbers per patch, 4 needed
        (torch.zeros(1, 4, 4), (4, 4), 2),  # 2 channels need 8 numbers per patch
        (torch.zeros(4, 4), (4, 4), 1),  # no batch dimension
        (torch.zeros(1, 1, 4, 4), (4, 4), 1),  # 4-D
        ([[[0.0] * 4] * 4], (4, 4), 1),  # not a tensor
    ],
)
def test_unpatchify_rejects_wrong_shapes(patches, image_size, channels):
    with pytest.raises(ValueError, match="patches"):
        unpatchify(patches, 2, image_size, channels=channels)


def test_unpatchify_rejects_bad_patch_size():
    with pytest.raises(ValueError, match="patch_size"):
        unpatchify(torch.zeros(1, 4, 4), 0, (4, 4))


# ----------------------------------------------------------------------------------------------------------------
# PatchEmbedding


@pytest.mark.parametrize(("c", "p", "h", "w"), [(1, 2, 8, 8), (3, 2, 4, 6), (2, 4, 8, 4), (2, 1, 3, 2)])
def test_patch_embedding_equals_strided_convolution(c, p, h, w):
    d = 5
    torch.manual_seed(0)
    embed = PatchEmbedding(p, c, d).double()
    conv = nn.Conv2d(c, d, kernel_size=p, stride=p).double()
    with torch.no_grad():  # a linear map of each flattened (channel-major) patch is this convolution
        conv.weight.copy_(embed.proj.weight.reshape(d, c, p, p))
        conv.bias.copy_(embed.proj.bias)
    images = _randn(2, c, h, w, seed=3)
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, N, d), patches in reading order
    got = embed(images)
    assert got.shape == (2, (h // p) * (w // p), d)
    torch.testing.assert_close(got, expected, **TOL64)


def test_patch_embedding_rejects_wrong_channels_and_sizes():
    embed = PatchEmbedding(2, 3, 4)
    with pytest.raises(ValueError, match="channel"):
        embed(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="patch_size"):
        embed(torch.zeros(1, 3, 5, 4))
    for name, args in [("patch_size", (0, 1, 4)), ("in_channels", (2, 0, 4)), ("d_model", (2, 1, 0))]:
        with pytest.raises(ValueError, match=name):
            PatchEmbedding(*args)


# ----------------------------------------------------------------------------------------------------------------
# VisionTransformer


@pytest.mark.parametrize(
    ("kwargs", "n"),
    [
        (dict(), 16),
        (dict(patch_size=4), 4),
        (dict(patch_size=1), 64),
        (dict(image_size=12, patch_size=3, in_channels=3, num_classes=7, num_layers=3), 16),
    ],
)
def test_vit_shapes_and_weights(kwargs, n):
    model = _vit(**kwargs)
    c, size = kwargs.get("in_channels", 1), kwargs.get("image_size", 8)
    images = _randn(3, c, size, size, seed=1)
    logits, weights = model(images, need_weights=True)
    assert logits.shape == (3, kwargs.get("num_classes", 10))
    assert model.num_patches == n
    assert len(weights) == kwargs.get("num_layers", 2)
    for w in weights:
        assert w.shape == (3, 2, 1 + n, 1 + n)
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 1 + n, dtype=torch.float64), **TOL64)
    logits_again, none = model(images)
    assert none is None
    torch.testing.assert_close(logits_again, logits, **TOL64)  # the same with or without the weights


def test_vit_default_settings():
    model = VisionTransformer()
    logits, weights = model(torch.rand(2, 1, 8, 8), need_weights=True)
    assert logits.shape == (2, 10) and len(weights) == 4 and weights[0].shape == (2, 4, 17, 17)
    assert model.cls_token.shape == (1, 1, 64) and model.position_embedding.shape == (1, 17, 64)


def test_vit_cls_token_is_at_position_zero_and_positions_are_added():
    model = _vit()
    images = _randn(4, 1, 8, 8, seed=2)
    tokens = model.tokens(images)
    assert tokens.shape == (4, 17, 8)
    cls = (model.cls_token[0, 0] + model.position_embedding[0, 0]).expand(4, 8)  # the same for every image
    torch.testing.assert_close(tokens[:, 0], cls, **TOL64)
    # the patches follow in reading order, each with its own position (by hand: the linear map of each patch)
    patches = patchify(images, 2) @ model.patch_embedding.proj.weight.T + model.patch_embedding.proj.bias
    torch.testing.assert_close(tokens[:, 1:], patches + model.position_embedding[:, 1:], **TOL64)
    torch.testing.assert_close(tokens[:, 1:], model.patch_embedding(images) + model.position_embedding[0, 1:], **TOL64)


def test_vit_logits_from_the_submodules():
    model = _vit(num_layers=3)
    images = _randn(3, 1, 8, 8, seed=4)
    w, b = model.patch_embedding.proj.weight, model.patch_embedding.proj.bias
    x = torch.cat([model.cls_token.expand(3, 1, 8), patchify(images, 2) @ w.T + b], dim=1) + model.position_embedding
    for layer in model.encoder.layers:
        x, _ = layer(x)
    x = model.encoder.norm(x)
    assert isinstance(model.encoder.norm, nn.LayerNorm)  # pre-LN: the stack ends with a LayerNorm
    expected = model.head(x[:, 0])
    logits, _ = model(images)
    torch.testing.assert_close(logits, expected, **TOL64)
    # and not from some other position, or from the mean over positions
    assert not torch.allclose(logits, model.head(x[:, 1]))
    assert not torch.allclose(logits, model.head(x.mean(1)))


def test_vit_layers_are_pre_ln():
    model = _vit()
    assert all(layer.norm_first for layer in model.encoder.layers)


def test_vit_prediction_does_not_depend_on_the_rest_of_the_batch():
    model = _vit()
    images = _randn(5, 1, 8, 8, seed=5)
    logits, weights = model(images, need_weights=True)
    for i in range(5):
        alone, alone_weights = model(images[i : i + 1], need_weights=True)
        torch.testing.assert_close(alone[0], logits[i], **TOL64)
        for w, w_alone in zip(weights, alone_weights, strict=True):
            torch.testing.assert_close(w_alone[0], w[i], **TOL64)


def _cls_output(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    x, _ = model.encoder(model.tokens(images))
    return x[:, 0]


def test_vit_every_pixel_reaches_the_cls_token():
    model = _vit(num_layers=1)  # one layer: the CLS token must attend to every patch directly
    image = _randn(1, 1, 8, 8, seed=6)
    changed = image.repeat(64, 1, 1, 1)
    changed.view(64, 64)[torch.arange(64), torch.arange(64)] += 1.0  # image k has pixel k changed
    base, outputs = _cls_output(model, image), _cls_output(model, changed)
    assert ((outputs - base).abs().amax(-1) > 1e-6).all()
    logits, _ = model(changed)
    assert ((logits - model(image)[0]).abs().amax(-1) > 1e-6).all()


def test_vit_without_positions_ignores_the_order_of_the_patches():
    model = _vit()
    images = _randn(2, 1, 8, 8, seed=7)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = unpatchify(patchify(images, 2)[:, perm], 2, (8, 8))
    assert not torch.equal(shuffled, images)
    with torch.no_grad():
        model.position_embedding.zero_()
    torch.testing.assert_close(model(shuffled)[0], model(images)[0], **TOL64)
    # with positions the order matters
    model = _vit()
    assert not torch.allclose(model(shuffled)[0], model(images)[0], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(image_size=8, patch_size=3), ValueError, ("patch_size", "image_size")),
        (dict(image_size=10, patch_size=4), ValueError, ("patch_size", "image_size")),
        (dict(image_size=0), ValueError, ("image_size",)),
        (dict(patch_size=0), ValueError, ("patch_size",)),
        (dict(image_size=8.0), TypeError, ("image_size",)),
        (dict(num_classes=0), ValueError, ("num_classes",)),
        (dict(in_channels=0), ValueError, ("in_channels",)),
        (dict(d_model=8, nhead=3), ValueError, ("nhead",)),
    ],
)
def test_vit_rejects_bad_settings(kwargs, error, words):
    with pytest.raises(error) as info:
        VisionTransformer(**kwargs)
    assert any(word in str(info.value) for word in words)


@pytest.mark.parametrize(
    ("images", "error", "word"),
    [
        (torch.zeros(1, 1, 4, 4), ValueError, "8x8"),  # divisible by the patch size, but not the model's size
        (torch.zeros(1, 1, 8, 6), ValueError, "8x8"),
        (torch.zeros(1, 1, 16, 16), ValueError, "8x8"),
        (torch.zeros(1, 3, 8, 8), ValueError, "channel"),
        (torch.zeros(1, 8, 8), ValueError, "(B, C, H, W)"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.int64), TypeError, "floating-point"),
    ],
)
def test_vit_rejects_bad_images(images, error, word):
    model = VisionTransformer(d_model=8, nhead=2, num_layers=1)
    with pytest.raises(error) as info:
        model(images)
    assert word in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# attention_rollout


def _softmax_weights(b, h, n, seed):
    return torch.softmax(3 * _randn(b, h, n, n, seed=seed), dim=-1)


def _residual(a: torch.Tensor) -> torch.Tensor:
    """0.5 (A + I), rows renormalised, one matrix (L, L) at a time, with plain loops."""
    n = len(a)
    m = [[0.5 * float(a[i, j]) + (0.5 if i == j else 0.0) for j in range(n)] for i in range(n)]
    return torch.tensor([[v / sum(row) for v in row] for row in m], dtype=torch.float64)


def test_rollout_rows_sum_to_one():
    weights = [_softmax_weights(2, 3, 5, seed) for seed in range(4)]
    rollout = attention_rollout(weights)
    assert rollout.shape == (2, 5, 5)
    assert (rollout >= 0).all()
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5, dtype=torch.float64), **TOL64)


def test_rollout_of_one_uniform_layer_by_hand():
    n = 4
    uniform = torch.full((1, 2, n, n), 1 / n, dtype=torch.float64)
    expected = torch.full((n, n), 0.5 / n, dtype=torch.float64) + 0.5 * torch.eye(n, dtype=torch.float64)
    # 0.5 (U + I): 5/8 on the diagonal, 1/8 elsewhere; the rows already sum to one
    assert expected[0].tolist() == [5 / 8, 1 / 8, 1 / 8, 1 / 8]
    torch.testing.assert_close(attention_rollout([uniform])[0], expected, **TOL64)


def test_rollout_of_identity_attention_is_the_identity():
    eye = torch.eye(6, dtype=torch.float64).expand(2, 3, 6, 6)
    for layers in (1, 3):
        torch.testing.assert_close(attention_rollout([eye] * layers), torch.eye(6).double().expand(2, 6, 6), **TOL64)


def test_rollout_averages_the_heads():
    w = _softmax_weights(1, 2, 4, seed=1)
    torch.testing.assert_close(attention_rollout([w])[0], _residual(w[0].mean(0)), **TOL64)
    torch.testing.assert_close(attention_rollout([w])[0], _residual((w[0, 0] + w[0, 1]) / 2), **TOL64)


def test_rollout_renormalises_rows():
    a = 3 * torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # rows != 1
    torch.testing.assert_close(attention_rollout([a])[0], _residual(a[0, 0]), **TOL64)


def test_rollout_of_two_layers_is_the_later_times_the_earlier():
    w1, w2 = _softmax_weights(2, 2, 5, seed=2), _softmax_weights(2, 2, 5, seed=3)
    rollout = attention_rollout([w1, w2])
    for b in range(2):
        a1, a2 = _residual(w1[b].mean(0)), _residual(w2[b].mean(0))
        torch.testing.assert_close(rollout[b], a2 @ a1, **TOL64)
        assert not torch.allclose(rollout[b], a1 @ a2)  # the order matters for these matrices
    three = attention_rollout([w1, w2, w1])
    torch.testing.assert_close(three[0], _residual(w1[0].mean(0)) @ rollout[0], **TOL64)


def test_rollout_of_a_vit():
    model = _vit(num_layers=3)
    _, weights = model(_randn(2, 1, 8, 8, seed=9), need_weights=True)
    rollout = attention_rollout(weights)
    assert rollout.shape == (2, 17, 17)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 17, dtype=torch.float64), **TOL64)
    assert (rollout[:, 0, 1:] > 0).all()  # every patch contributes to the CLS token


@pytest.mark.parametrize(
    "weights",
    [
        [],
        (),
        torch.ones(1, 1, 3, 3),  # a tensor, not a list of them
        [torch.ones(1, 3, 3)],  # 3-D
        [torch.ones(1, 1, 3, 4)],  # not square
        [torch.ones(1, 1, 3, 3) / 3, torch.ones(1, 1, 4)],
        [[[[1.0]]]],
        None,
    ],
)
def test_rollout_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="weights"):
        attention_rollout(weights)


# ----------------------------------------------------------------------------------------------------------------
# SmallCNN


def _cnn_parameters(w: int, in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> int:
    conv1 = (9 * in_channels + 1) * w
    conv2 = (9 * w + 1) * 2 * w
    conv3 = (9 * 2 * w + 1) * 4 * w
    head = (4 * w * (image_size // 4) ** 2 + 1) * num_classes  # two 2x2 poolings: (4w, s/4, s/4) features
    return conv1 + conv2 + conv3 + head


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(width=4),
        dict(width=1),
        dict(in_channels=3, num_classes=5, width=8, image_size=12),
        dict(image_size=4),
    ],
)
def test_small_cnn_shapes_and_parameter_count(kwargs):
    model = SmallCNN(**kwargs)
    c, size = kwargs.get("in_channels", 1), kwargs.get("image_size", 8)
    logits = model(torch.rand(3, c, size, size))
    assert logits.shape == (3, kwargs.get("num_classes", 10))
    expected = _cnn_parameters(kwargs.get("width", 16), c, kwargs.get("num_classes", 10), size)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_small_cnn_default_parameter_count():
    # w = 16: 160 + 4,640 + 18,496 + 2,570
    assert sum(p.numel() for p in SmallCNN().parameters()) == 25_866


def test_small_cnn_images_are_independent_in_a_batch():
    torch.manual_seed(0)
    model = SmallCNN(width=4).double()
    images = _randn(4, 1, 8, 8, seed=1)
    torch.testing.assert_close(model(images[2:3])[0], model(images)[2], **TOL64)


@pytest.mark.parametrize(
    "images", [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 6), torch.zeros(1, 1, 16, 16), torch.zeros(1, 8, 8), [0.0]]
)
def test_small_cnn_rejects_wrong_image_size(images):
    with pytest.raises(ValueError, match="images"):
        SmallCNN()(images)


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        (dict(image_size=6), ValueError, "image_size"),
        (dict(image_size=0), ValueError, "image_size"),
        (dict(width=0), ValueError, "width"),
        (dict(in_channels=0), ValueError, "in_channels"),
        (dict(num_classes=0), ValueError, "num_classes"),
        (dict(width=2.0), TypeError, "width"),
    ],
)
def test_small_cnn_rejects_bad_settings(kwargs, error, word):
    with pytest.raises(error, match=word):
        SmallCNN(**kwargs)


def test_bad_inputs_get_clear_errors_not_torch_ones():
    with pytest.raises(TypeError, match="images"):
        PatchEmbedding(2, 1, 4)([[1.0]])
    with pytest.raises(TypeError, match="images"):
        VisionTransformer()([[1.0]])
    with pytest.raises(ValueError, match="patch_size"):
        unpatchify(torch.zeros(1, 4, 4), 2, (5, 4))
    with pytest.raises(ValueError, match="share B and L"):
        attention_rollout([torch.ones(1, 1, 3, 3) / 3, torch.ones(1, 1, 4, 4) / 4])
    with pytest.raises(ValueError, match="float"):
        attention_rollout([torch.ones(1, 1, 3, 3, dtype=torch.long)])
    with pytest.raises(ValueError, match="images"):
        SmallCNN()(torch.zeros(1, 3, 8, 8))
