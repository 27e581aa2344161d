r"""The Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of patches (chapter 7).

- :func:`patchify` and :func:`unpatchify`: cut images (B, C, H, W) into non-overlapping ``p x p`` patches, each
  flattened to a vector of ``C * p * p`` numbers, in reading order (left to right, top to bottom), and back.
- :class:`PatchEmbedding`: a linear map of each flattened patch to ``d_model`` features (the same as a convolution
  with kernel size and stride ``p``).
- :class:`VisionTransformer`: patch embedding, a learned CLS token in front, learned position embeddings, pre-LN
  encoder layers from :mod:`attnlib.transformer`, a final LayerNorm, and a linear head on the CLS token's output.
- :func:`attention_rollout` (Abnar and Zuidema, 2020): how much each patch contributes to the CLS token through
  all layers, from the per-layer attention weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlib.functional import _check_length
from attnlib.transformer import TransformerEncoder

__all__ = ["patchify", "unpatchify", "PatchEmbedding", "VisionTransformer", "attention_rollout"]


def _check_images(images: object, patch_size: int) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    h, w = images.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"the image size {h}x{w} must be divisible by patch_size={patch_size} (patches do not overlap or pad)"
        )
    return images


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut ``images`` (B, C, H, W) into patches: (B, N, C * p * p) with ``N = (H / p) * (W / p)``.

    Patch ``n`` is the one in row ``n // (W / p)`` and column ``n % (W / p)`` of the grid of patches; its vector holds
    the channels one after another, each as ``p`` rows of ``p`` pixels.

    Raises
    ------
    TypeError, ValueError
        If ``images`` is not a 4-D float tensor, or H or W is not divisible by ``patch_size``.
    """
    p = _check_length("patch_size", patch_size)
    b, c, h, w = _check_images(images, p).shape
    grid = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, rows, p, cols, p)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)  # (B, N, C*p*p)


def unpatchify(patches: Tensor, patch_size: int, image_size: tuple[int, int], channels: int = 1) -> Tensor:
    """The inverse of :func:`patchify`: (B, N, C * p * p) back to images (B, C, H, W)."""
    p = _check_length("patch_size", patch_size)
    channels = _check_length("channels", channels)
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise TypeError(f"image_size must be a pair (H, W), got {image_size!r}")
    h, w = (_check_length("image_size", n) for n in image_size)
    if h % p or w % p:
        raise ValueError(f"image_size {h}x{w} must be divisible by patch_size={p}")
    rows, cols = h // p, w // p
    if not isinstance(patches, Tensor) or patches.dim() != 3 or patches.shape[1:] != (rows * cols, channels * p * p):
        got = tuple(patches.shape) if isinstance(patches, Tensor) else type(patches).__name__
        raise ValueError(f"patches must have shape (B, {rows * cols}, {channels * p * p}), got {got}")
    b = patches.shape[0]
    grid = patches.reshape(b, rows, cols, channels, p, p)  # (B, rows, cols, C, p, p)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, h, w)


class PatchEmbedding(nn.Module):
    """Flatten each ``p x p`` patch and map it linearly to ``d_model`` features: images -> (B, N, d_model).

    Parameters
    ----------
    patch_size : int
    in_channels : int
    d_model : int
    """

    def __init__(self, patch_size: int, in_channels: int, d_model: int) -> None:
        super().__init__()
        self.patch_size = _check_length("patch_size", patch_size)
        self.in_channels = _check_length("in_channels", in_channels)
        self.proj = nn.Linear(self.in_channels * self.patch_size**2, _check_length("d_model", d_model))

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, in_channels, H, W) -> (B, N, d_model), one row per patch in reading order (see
        :func:`patchify`). Raises ``TypeError`` if ``images`` is not a floating-point tensor, ``ValueError`` if it
        is not 4-D, H or W is not divisible by the patch size, or the channels differ."""
        _check_images(images, self.patch_size)
        if images.shape[1] != self.in_channels:
            raise ValueError(f"images must have {self.in_channels} channel(s), got shape {tuple(images.shape)}")
        return self.proj(patchify(images, self.patch_size))  # (B, N, d_model)


class VisionTransformer(nn.Module):
    r"""A Vision Transformer for small images: patches, a CLS token, learned positions, pre-LN encoder layers.

    ``images (B, C, H, W) -> patches (B, N, C p^2) -> linear (B, N, d) -> [CLS; patches] + positions (B, N + 1, d)
    -> encoder -> LayerNorm -> head(output at the CLS position) -> logits (B, num_classes)``.

    The CLS token is a learned vector put in front of the patches (position 0); it belongs to no patch, so to
    classify it must gather, by attention, what the patches hold. Positions are learned, one vector per position.

    Parameters
    ----------
    image_size : int
        Height and width of the (square) images.
    patch_size : int
        Side of a patch; must divide ``image_size``.
    in_channels, num_classes : int
    d_model, nhead, num_layers, dim_feedforward, dropout
        The encoder's settings (pre-LN, as in the ViT paper).

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive int or ``image_size`` is not divisible by ``patch_size``.
    """

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 4,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.image_size = _check_length("image_size", image_size)
        self.patch_size = _check_length("patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(
                f"image_size={image_size} must be divisible by patch_size={patch_size} (patches do not overlap)"
            )
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embedding = PatchEmbedding(patch_size, in_channels, d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position_embedding = nn.Parameter(torch.zeros(1, self.num_patches + 1, d_model))
        nn.init.normal_(self.cls_token, std=0.02)  # as in the ViT reference code
        nn.init.normal_(self.position_embedding, std=0.02)
        self.encoder = TransformerEncoder(num_layers, d_model, nhead, dim_feedforward, dropout, norm_first=True)
        self.head = nn.Linear(d_model, _check_length("num_classes", num_classes))

    def tokens(self, images: Tensor) -> Tensor:
        """The encoder's input: (B, 1 + N, d_model), the CLS token at position 0, positions added."""
        _check_images(images, self.patch_size)
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size}x{self.image_size}, got shape {tuple(images.shape)}")
        patches = self.patch_embedding(images)  # (B, N, d)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # (B, 1, d)
        return torch.cat([cls, patches], dim=1) + self.position_embedding  # (B, 1 + N, d)

    def forward(self, images: Tensor, need_weights: bool = False) -> tuple[Tensor, list[Tensor] | None]:
        """``images`` (B, C, H, W) -> ``(logits (B, num_classes), per-layer weights (B, H, 1 + N, 1 + N) or None)``."""
        x, weights = self.encoder(self.tokens(images), need_weights=need_weights)  # final LayerNorm included
        return self.head(x[:, 0]), weights  # classify from the CLS position


def attention_rollout(weights: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    r"""Attention rollout (Abnar and Zuidema, 2020): how much each input token flows into each output token.

    Each layer's weights are averaged over the heads, the residual connection is accounted for by adding the
    identity (:math:`\tfrac12 (A + I)`, rows renormalised), and the layers are multiplied from the first to the last.
    Row ``i`` of the result says how much each input position contributes to output position ``i``; for a ViT,
    row 0 (the CLS token) over positions ``1..N`` is a map over the patches.

    Parameters
    ----------
    weights : list of Tensor (B, H, L, L)
        The per-layer attention weights, first layer first (as :class:`VisionTransformer` returns them).

    Returns
    -------
    Tensor (B, L, L), every row summing to one.
    """
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ValueError("weights must be a non-empty list of per-layer attention weights (B, H, L, L)")
    rollout = None
    first = weights[0].shape if isinstance(weights[0], Tensor) else None
    for w in weights:
        if not isinstance(w, Tensor) or w.dim() != 4 or w.shape[-1] != w.shape[-2] or not w.is_floating_point():
            got = f"{tuple(w.shape)} {w.dtype}" if isinstance(w, Tensor) else type(w).__name__
            raise ValueError(f"each layer's weights must be float tensors of shape (B, H, L, L), got {got}")
        if w.shape[0] != first[0] or w.shape[-1] != first[-1]:
            raise ValueError(
                f"all layers' weights must share B and L, got {tuple(first)} and {tuple(w.shape)} in weights"
            )
        a = w.mean(dim=1)  # (B, L, L): heads averaged
        a = 0.5 * (a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device))  # the residual path
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # later layers act on what earlier ones produced
    return rollout
