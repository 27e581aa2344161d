"""Figures the chapters share. Every figure gets a title and labelled axes; heatmaps get a colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = ["attention_heatmap", "log_axes"]


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


def log_axes(ax: Axes, x: Sequence[float], y: str = "log10") -> Axes:
    """Put both axes of a plot against sequence length on log scales with ticks a reader can read.

    The x axis gets base 2 with one plain label at each value of ``x`` (e.g. ``256, 512, 1024``), not ``2^8``.
    The y axis (``"log10"``) gets plain labels on the 1-2-5 steps inside the data's range (``0.5, 1, 2, 5, 10``),
    at least three of them, and unlabelled minor ticks; ``y="linear"`` leaves it linear. Call it after plotting.

    Raises ``ValueError`` if ``x`` is empty or not positive, or ``y`` is not ``"log10"`` or ``"linear"``.
    """
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    values = [float(v) for v in x]
    if not values or min(values) <= 0:
        raise ValueError(f"x must be positive tick values (the sequence lengths), got {list(x)!r}")
    if y not in ("log10", "linear"):
        raise ValueError(f"y must be 'log10' or 'linear', got {y!r}")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.set_xticklabels([f"{v:g}" for v in values])
    ax.xaxis.set_minor_locator(NullLocator())
    if y == "log10":
        ax.set_yscale("log")
        low, high = ax.dataLim.y0, ax.dataLim.y1
        if not (np.isfinite(low) and np.isfinite(high) and low > 0):
            raise ValueError(f"a log y axis needs positive data; the plotted data span {low} to {high}")
        decades = range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1)
        ticks = [m * 10.0**k for k in decades for m in (1, 2, 5)]
        inside = [t for t in ticks if low / 1.05 <= t <= high * 1.05]
        if len(inside) < 3:  # a narrow range: add the steps of 1.5 and 3 as well
            ticks = sorted(ticks + [m * 10.0**k for k in decades for m in (1.5, 3)])
            inside = [t for t in ticks if low / 1.05 <= t <= high * 1.05]
        if len(inside) < 3:  # narrower still: the ends and the middle of the data
            inside = [low, float(np.sqrt(low * high)), high]
        ax.yaxis.set_major_locator(FixedLocator(inside))
        ax.set_yticklabels([f"{t:.3g}" for t in inside])
        ax.yaxis.set_minor_formatter(NullFormatter())
    return ax

