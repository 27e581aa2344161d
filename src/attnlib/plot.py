"""Figures the chapters share. Every figure gets a title and labelled axes; heatmaps get a colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = [
    "attention_heatmap",
    "log_axes",
    "EXPLORER_DIGITS",
    "EXPLORER_MAX_BYTES",
    "attention_explorer",
    "AttentionExplorer",
]


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



# The attention explorer: an interactive attention map that needs no kernel and no network.

EXPLORER_DIGITS = 4
"""Decimals of the weights an explorer embeds and shows (``data-weight="0.1234"``)."""

EXPLORER_MAX_BYTES = 150_000
"""The most HTML one explorer may weigh; :func:`attention_explorer` refuses to make a bigger one."""


def _explorer_asset(name: str) -> str:
    from importlib.resources import files

    return files("attnlib").joinpath("assets", name).read_text(encoding="utf-8")


def _as_array(value: object, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.number):
            raise TypeError(f"{name} must hold numbers, got an array of {value.dtype}")
        return value.astype(np.float64)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def _explorer_weights(weights: object) -> np.ndarray:
    """``weights`` as an array (layers, H, Lq, Lk), checked."""
    if isinstance(weights, (list, tuple)):
        if not weights:
            raise ValueError("weights must not be an empty list: give one (H, Lq, Lk) array per layer")
        layers = [_as_array(w, f"weights[{i}]") for i, w in enumerate(weights)]
        for i, w in enumerate(layers):
            if w.ndim != 3:
                raise ValueError(f"weights[{i}] must have shape (H, Lq, Lk), got {tuple(w.shape)}")
            if w.shape != layers[0].shape:
                raise ValueError(
                    f"every layer's weights must have the same shape (H, Lq, Lk): weights[0] is "
                    f"{tuple(layers[0].shape)}, weights[{i}] is {tuple(w.shape)}"
                )
        array = np.stack(layers)
    else:
        array = _as_array(weights, "weights")
        if array.ndim == 2:
            array = array[None, None]
        elif array.ndim == 3:
            array = array[None]
        else:
            raise ValueError(
                f"weights must have shape (Lq, Lk) or (H, Lq, Lk), or be a list of (H, Lq, Lk) per layer; "
                f"got shape {tuple(array.shape)}"
            )
    if min(array.shape) == 0:
        raise ValueError(f"weights must not be empty, got shape {tuple(array.shape)}")
    _check_weight_values(array, "weights")
    return array


def _check_weight_values(array: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {int(np.sum(~np.isfinite(array)))} NaN or infinite values")
    if array.min() < -1e-6 or array.max() > 1 + 1e-5:
        raise ValueError(
            f"{name} must be attention weights in [0, 1], got values from {array.min():.4g} to {array.max():.4g}"
        )


def _labels(labels: Sequence[object] | None, n: int, name: str, side: str) -> list[str]:
    if isinstance(labels, str):
        raise TypeError(f"{name} must be a sequence of labels, one per token, not a str ({labels!r})")
    if labels is None:
        return [str(i) for i in range(n)]
    labels = [str(t) for t in labels]
    if len(labels) != n:
        raise ValueError(f"{name} must have {side}={n} labels, got {len(labels)}")
    return labels


def _units(array: np.ndarray, scale: int) -> list:
    """Weights as nested lists of ints in units of ``1 / scale`` (compact, and exact to read back)."""
    return np.rint(np.clip(array, 0, 1) * scale).astype(int).tolist()


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    return buffer.getvalue()


class AttentionExplorer:
    """An interactive attention map, made by :func:`attention_explorer`; Jupyter displays it.

    It displays as self-contained HTML (inline CSS and JavaScript, nothing fetched) with a static PNG inside it for
    viewers that drop scripts, and also offers that PNG (``image/png``) and a line of text (``text/plain``).

    Attributes
    ----------
    weights : numpy.ndarray
        The weights shown, as given, in float64, of shape (layers, H, Lq, Lk).
    rollout : numpy.ndarray or None
        The extra "rollout" view of shape (Lq, Lk), if one was given.
    queries, keys : list of str
        The labels of the queries and the keys.
    html : str
        The whole output: a root ``<div class="attention-explorer">`` holding the static picture, the data and the
        script.
    png : bytes
        The static picture of the starting view.
    alt : str
        The static picture's alt text.
    """

    def __init__(self, *, weights, rollout, queries, keys, html, png, alt, summary):
        self.weights = weights
        self.rollout = rollout
        self.queries = queries
        self.keys = keys
        self.html = html
        self.png = png
        self.alt = alt
        self._summary = summary

    def _repr_mimebundle_(self, include=None, exclude=None):
        import base64

        data = {
            "text/html": self.html,
            "image/png": base64.b64encode(self.png).decode("ascii"),
            "text/plain": self._summary,
        }
        return data, {"image/png": {"alt": self.alt}}

    def __repr__(self) -> str:
        return self._summary


def attention_explorer(
    weights: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray],
    queries: Sequence[object] | None = None,
    keys: Sequence[object] | None = None,
    *,
    title: str = "Attention weights",
    query_label: str = "query",
    key_label: str = "key",
    layer_names: Sequence[str] | None = None,
    head_names: Sequence[str] | None = None,
    image: torch.Tensor | np.ndarray | None = None,
    patch_grid: tuple[int, int] | None = None,
    rollout: torch.Tensor | np.ndarray | None = None,
    layer: int | str = 0,
    head: int = 0,
    query: int = 0,
) -> AttentionExplorer:
    """An attention map the reader explores: pick a query (click, hover, or Tab and Enter), see its weights.

    The keys are shaded from white (0) to dark grey (the active query's largest weight), with each weight written
    under its key and given exactly on hover or focus. Menus pick the layer and the head (or the mean of the heads).
    With ``image`` and ``patch_grid`` (a ViT), the query is picked on the image's patches and the weights are drawn
    over the image. It works wherever the output may run scripts and needs nothing from the network.

    Parameters
    ----------
    weights : Tensor or ndarray (Lq, Lk) or (H, Lq, Lk), or a list of (H, Lq, Lk), one per layer
        One batch item's attention weights, each in [0, 1]. Tensors are detached and moved to the CPU.
    queries, keys : sequence of str, optional
        A label per query (``Lq``) and per key (``Lk``): the tokens. ``keys`` defaults to ``queries`` (self-attention).
        Without labels the positions are numbered; with ``patch_grid``, the patches are named by row and column.
    title : str
        Shown above the explorer and in the static picture's title.
    query_label, key_label : str
        What the queries and the keys are, e.g. ``"decoder step"`` and ``"source character"``.
    layer_names, head_names : sequence of str, optional
        Names for the layer and head menus; by default "layer 1", ... and "head 1", ....
    image : Tensor or ndarray (h, w), (h, w, 3) or (C, h, w), optional
        The image the tokens come from, values in [0, 1] (0 is drawn white for one channel: ink on paper).
    patch_grid : (rows, cols), optional
        With ``image``: the last ``rows * cols`` tokens are the image's patches, row by row; any before them (the CLS
        token) are shown beside the image. Needs ``Lq == Lk``.
    rollout : Tensor or ndarray (Lq, Lk), optional
        An extra entry of the layer menu, "rollout (all layers)", e.g. a row of
        :func:`attnlib.vit.attention_rollout`.
    layer, head, query : int
        The view the explorer opens on and the static picture shows; ``layer="rollout"`` opens on the rollout.

    Returns
    -------
    AttentionExplorer

    Raises
    ------
    TypeError
        If ``weights``, ``image`` or ``rollout`` is not a tensor or array, or a label list is a str.
    ValueError
        If a shape does not fit (naming what was given and what was expected), the weights are not finite or not in
        [0, 1], a starting index is out of range, or the HTML would be over :data:`EXPLORER_MAX_BYTES`.

    Notes
    -----
    The output's contract, which the course's browser check relies on: the root element has class
    ``attention-explorer`` and ``data-active-query``; once built, every query has ``data-query-index`` and every key
    ``data-key-index`` and ``data-weight`` (the active query's weight, :data:`EXPLORER_DIGITS` decimals). The data
    ride in ``<script type="application/json" class="ae-data">``: ``w[layer][head][query][key]`` in units of
    ``1 / scale``. The same input gives the same bytes.
    """
    import base64
    import html as html_lib
    import json

    from matplotlib.figure import Figure

    array = _explorer_weights(weights)
    n_layers, n_heads, lq, lk = array.shape
    query_labels = _labels(queries, lq, "queries", "Lq")
    if keys is None and queries is not None and lq != lk:
        raise ValueError(f"keys is required when there are not as many keys as queries (Lq={lq}, Lk={lk})")
    layer_list = (
        [f"layer {i + 1}" for i in range(n_layers)]
        if layer_names is None
        else _labels(layer_names, n_layers, "layer_names", "layers")
    )
    head_list = (
        [f"head {i + 1}" for i in range(n_heads)]
        if head_names is None
        else _labels(head_names, n_heads, "head_names", "H")
    )

    grid = None
    image_uri = None
    picture = None
    if (image is None) != (patch_grid is None):
        raise ValueError("image and patch_grid go together: give both (a ViT's patches) or neither")
    if patch_grid is not None:
        if (
            not isinstance(patch_grid, (tuple, list))
            or len(patch_grid) != 2
            or not all(isinstance(n, int) and n > 0 for n in patch_grid)
        ):
            raise ValueError(f"patch_grid must be (rows, cols), two positive ints, got {patch_grid!r}")
        rows, cols = patch_grid
        prefix = lk - rows * cols
        if lq != lk or prefix < 0:
            raise ValueError(
                f"with patch_grid={tuple(patch_grid)} the weights must be (..., L, L) with L >= {rows * cols} "
                f"(any tokens before the patches, then the patches), got Lq={lq}, Lk={lk}"
            )
        picture = _as_array(image, "image")
        if picture.ndim == 3 and picture.shape[0] in (1, 3) and picture.shape[-1] not in (1, 3):
            picture = np.moveaxis(picture, 0, -1)  # (C, h, w) -> (h, w, C)
        if picture.ndim == 3 and picture.shape[-1] == 1:
            picture = picture[..., 0]
        if not (picture.ndim == 2 or (picture.ndim == 3 and picture.shape[-1] == 3)):
            raise ValueError(f"image must have shape (h, w), (h, w, 3) or (C, h, w), got {tuple(picture.shape)}")
        if not np.all(np.isfinite(picture)) or picture.min() < 0 or picture.max() > 1:
            raise ValueError("image must hold finite values in [0, 1]")
        if picture.shape[0] % rows or picture.shape[1] % cols:
            raise ValueError(
                f"image of {picture.shape[0]}x{picture.shape[1]} pixels does not split into a {rows}x{cols} grid"
            )
        grid = [rows, cols]
        default = ["CLS"] if prefix == 1 else [f"token {i}" for i in range(prefix)]
        default += [f"patch ({r + 1}, {c + 1})" for r in range(rows) for c in range(cols)]
        if queries is None:
            query_labels = default
        if keys is None:
            keys = query_labels
        tiny = Figure(figsize=(picture.shape[1] / 80, picture.shape[0] / 80))  # one pixel per pixel at 80 dpi
        tiny.figimage(picture, cmap="gray_r" if picture.ndim == 2 else None, vmin=0, vmax=1, resize=False)
        image_uri = "data:image/png;base64," + base64.b64encode(_png(tiny)).decode("ascii")
    key_labels = _labels(keys if keys is not None else (query_labels if lq == lk else None), lk, "keys", "Lk")

    rollout_array = None
    if rollout is not None:
        rollout_array = _as_array(rollout, "rollout")
        if rollout_array.shape != (lq, lk):
            raise ValueError(f"rollout must have shape (Lq, Lk) = {(lq, lk)}, got {tuple(rollout_array.shape)}")
        _check_weight_values(rollout_array, "rollout")
    if layer == "rollout":
        if rollout_array is None:
            raise ValueError("layer='rollout' needs a rollout to open on")
        start_layer = n_layers
    elif isinstance(layer, int) and 0 <= layer < n_layers:
        start_layer = layer
    else:
        raise ValueError(f"layer must be an int in [0, {n_layers}) or 'rollout', got {layer!r}")
    for name, value, n in (("head", head, n_heads), ("query", query, lq)):
        if not isinstance(value, int) or not 0 <= value < n:
            raise ValueError(f"{name} must be an int in [0, {n}), got {value!r}")

    scale = 10**EXPLORER_DIGITS
    payload = {
        "title": title,
        "query_label": query_label,
        "key_label": key_label,
        "queries": query_labels,
        "keys": key_labels,
        "layers": layer_list,
        "heads": head_list,
        "digits": EXPLORER_DIGITS,
        "scale": scale,
        "w": _units(array, scale),
        "rollout": None if rollout_array is None else _units(rollout_array, scale),
        "rollout_name": "rollout (all layers)",
        "grid": grid,
        "image": image_uri,
        "start": {"layer": start_layer, "head": head, "query": query},
    }
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # safe inside <script>

    # The static picture: the starting view, as a heatmap (or over the image).
    shown = rollout_array if start_layer == n_layers else array[start_layer, head]
    view = "rollout (all layers)" if start_layer == n_layers else f"{layer_list[start_layer]}, {head_list[head]}"
    if n_layers == n_heads == 1 and rollout_array is None:
        view = ""  # a single map has no view to name
    named = f"{title}, {view}" if view else title
    if grid is None:
        width = min(6.8, max(3.5, 0.3 * lk + 2.2))
        fig = Figure(figsize=(width, min(6.0, max(2.6, 0.28 * lq + 1.6))), layout="constrained")
        def short(labels: list[str]) -> list[str]:  # tick labels of the static picture only
            return [t if len(t) <= 12 else t[:11] + "\u2026" for t in labels]

        attention_heatmap(
            shown, short(query_labels), short(key_labels), ax=fig.add_subplot(), title=f"{title}\n{view}".strip(),
            xlabel=key_label, ylabel=query_label,
        )
        alt = (
            f"{named}: a heatmap with one row per {query_label} ({lq}) and one column per {key_label} "
            f"({lk}), brighter for larger weights; the static view of an interactive explorer."
        )
    else:
        rows, cols = grid
        fig = Figure(figsize=(6.0, 3.0), layout="constrained")
        left, right = fig.subplots(1, 2)
        cmap = "gray_r" if picture.ndim == 2 else None
        left.imshow(picture, cmap=cmap, vmin=0, vmax=1)
        left.set(title="image", xticks=[], yticks=[])
        patch_map = shown[query, lk - rows * cols :].reshape(rows, cols)
        drawn = right.imshow(patch_map, cmap="viridis", vmin=0)
        fig.colorbar(drawn, ax=right, label="weight")
        right.set(title=f"{query_labels[query]} over the patches", xlabel="patch column", ylabel="patch row")
        right.set_xticks(range(cols), labels=[str(c + 1) for c in range(cols)])
        right.set_yticks(range(rows), labels=[str(r + 1) for r in range(rows)])
        fig.suptitle(f"{title}: {view}" if view else title)
        alt = (
            f"{named}: the image beside the weights {query_labels[query]} puts on each of its {rows}x{cols} "
            f"patches, brighter for larger weights; the static view of an interactive explorer."
        )
    png = _png(fig)

    html = (
        f'<div class="attention-explorer tex2jax_ignore mathjax_ignore" data-active-query="{query}" '
        f'role="group" aria-label="{html_lib.escape("Attention explorer: " + title)}">'
        f"<style>{_explorer_asset('explorer.css')}</style>"
        f'<img class="ae-fallback" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
        f'alt="{html_lib.escape(alt)}">'
        f'<script type="application/json" class="ae-data">{data}</script>'
        f"<script>{_explorer_asset('explorer.js')}</script>"
        "</div>"
    )
    size = len(html.encode("utf-8"))
    if size > EXPLORER_MAX_BYTES:
        raise ValueError(
            f"this explorer would be {size:,} bytes of HTML, over the limit of {EXPLORER_MAX_BYTES:,}: show fewer "
            f"layers, heads or tokens (weights of shape {tuple(array.shape)})"
        )
    parts = [f"{n_layers} layer{'s' if n_layers > 1 else ''}", f"{n_heads} head{'s' if n_heads > 1 else ''}"]
    summary = f"AttentionExplorer({title!r}: {' x '.join(parts)}, {lq} queries x {lk} keys)"
    return AttentionExplorer(
        weights=array, rollout=rollout_array, queries=query_labels, keys=key_labels, html=html, png=png, alt=alt,
        summary=summary,
    )
