"""Figures the chapters share. Every figure gets a title and labelled axes; heatmaps get a colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = ["attention_heatmap"]


def attention_heatmap(
    weights: torch.Tensor | np.ndarray,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    *,
    title: str = "Attention weights",
    xlabel: str = "key",
    ylabel: str = "query",
    ax: Axes | None = None,
    cmap: str = "viridis",
    vmin: float | None = 0.0,
    vmax: float | None = None,
    annotate: bool = False,
    colorbar_label: str = "weight",
    xtick_rotation: float | None = None,
) -> Axes:
    """Draw an attention map: one row per query, one column per key, with a colour bar.

    Parameters
    ----------
    weights : Tensor or ndarray (Lq, Lk)
        The weights to draw (e.g. one batch item of ``scaled_dot_product_attention``'s second output).
        Tensors are detached and moved to the CPU.
    query_labels, key_labels : sequence of str, optional
        Tick labels, one per row (``Lq``) and one per column (``Lk``): the tokens.
    title, xlabel, ylabel : str
        The figure's title and axis labels.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made if None.
    cmap : str
        A colour map; the default, viridis, stays readable in greyscale.
    vmin, vmax : float, optional
        The colour scale's limits; weights lie in [0, 1], so ``vmin`` defaults to 0 and ``vmax`` to the maximum.
    annotate : bool
        Write each weight in its cell (for small maps).
    colorbar_label : str
        The colour bar's label.
    xtick_rotation : float, optional
        Angle of the key labels in degrees; by default 90 when there are more than 8 keys or a label has a line
        longer than 8 characters, else 0.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    TypeError
        If ``weights`` is neither a tensor nor an array.
    ValueError
        If ``weights`` is not two-dimensional, or a label list does not match its side of the map.
    """
    if isinstance(weights, torch.Tensor):
        array = weights.detach().to("cpu", torch.float32).numpy()
    elif isinstance(weights, np.ndarray):
        array = weights.astype(np.float32)
    else:
        raise TypeError(f"weights must be a torch.Tensor or numpy.ndarray, got {type(weights).__name__}")
    if array.ndim != 2:
        raise ValueError(f"weights must be two-dimensional (Lq, Lk), got shape {tuple(array.shape)}")
    lq, lk = array.shape
    for name, labels, n, side in (("query_labels", query_labels, lq, "Lq"), ("key_labels", key_labels, lk, "Lk")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{name} must have {side}={n} entries for weights of shape {(lq, lk)}, got {len(labels)}")
    if ax is None:
        longest_query = max((len(str(t)) for t in query_labels), default=0) if query_labels is not None else 0
        width = max(3.0, 0.45 * lk + 2.0 + 0.07 * longest_query)
        _, ax = plt.subplots(figsize=(width, max(2.5, 0.4 * lq + 1.5)), layout="constrained")
    image = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    colorbar = ax.figure.colorbar(image, ax=ax)
    colorbar.set_label(colorbar_label)
    if query_labels is not None:
        ax.set_yticks(range(lq), labels=[str(t) for t in query_labels])
    if key_labels is not None:
        labels = [str(t) for t in key_labels]
        if xtick_rotation is None:
            longest_line = max((len(line) for t in labels for line in t.splitlines()), default=0)
            xtick_rotation = 90 if lk > 8 or longest_line > 8 else 0
        ax.set_xticks(range(lk), labels=labels, rotation=xtick_rotation)
    if annotate:
        low = image.norm.vmin  # the colour scale actually used, so the text stays readable on every cell
        threshold = (image.norm.vmax + low) / 2
        for i in range(lq):
            for j in range(lk):
                colour = "black" if array[i, j] > threshold else "white"
                ax.text(j, i, f"{array[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax
