"""Schematic diagrams of the mechanisms the chapters teach, drawn by code so that anyone can change them.

Each public function draws one diagram and returns a :class:`Diagram`: a picture that Jupyter shows as a PNG
(stored in the notebook, so the built site, Colab and GitHub's notebook view all show it), with the alt text that a
screen reader says for it. The chapters call them from cells whose input the site hides, and copy the alt text
into the cell's metadata, where Jupyter Book reads it (a test keeps the two equal).

The rules every diagram follows (tests/test_diagrams.py checks them):

- The PNG has :data:`DPI` pixels per inch and is shown at half its pixel width, so it stays crisp on a high-DPI
  screen; a diagram is at most :data:`MAX_WIDTH_IN` inches wide, so the site's text column never shrinks it.
- No text is smaller than :data:`MIN_FONT_PT` points: shown at 100 CSS pixels per inch, that is at least the size
  of the body text beside it. No two labels overlap, none leaves the canvas, none spills out of its box.
- Colour is never the only cue: queries, keys and values have light fills of their own and also a hatch of their
  own (none, ``///`` and dots), and every box carries a text label in black.
- The same call draws the same bytes on every run.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path
from matplotlib.text import Text

__all__ = [
    "Diagram",
    "DPI",
    "MIN_FONT_PT",
    "MAX_WIDTH_IN",
    "LAYOUT_WIDTH",
    "DIAGRAMS",
    "three_steps",
    "attention_layer",
    "sdpa_shapes",
    "self_attention_steps",
    "qkv_sources",
    "context_vectors",
    "bahdanau_luong_step",
    "attention_masks",
    "multihead_reshape",
    "post_pre_ln",
    "encoder_decoder_masks",
    "vit_pipeline",
    "kv_cache_steps",
    "flash_tiling",
    "gpt_decoder_only",
    "grouped_query_attention",
]

DPI = 200
"""Pixels per inch of the stored PNG. It is shown at half that (100 CSS pixels per inch), so a 2x screen gets
every pixel it can show."""

MIN_FONT_PT = 12.0
"""The smallest text in any diagram, in points. Shown at 100 CSS pixels per inch, 12 pt is 16.7 CSS pixels, at
least the size of the site's body text."""

MAX_WIDTH_IN = 6.8
"""The widest diagram, in inches. That is 680 CSS pixels, no wider than the text column of the site on a laptop
screen (688 CSS pixels in a window 1280 pixels wide), so the site shows it at full size."""

LAYOUT_WIDTH = 7.2
"""The width of the grid the diagrams are laid out on. It is drawn :data:`MAX_WIDTH_IN` inches wide, so a unit of
the grid is 0.94 inch across and 1 inch up; text keeps its size in points."""

# Fills of the roles, with a hatch each, so that they differ in greyscale too.
ROLES = {
    "query": {"facecolor": "#cfe2f3", "hatch": None},
    "key": {"facecolor": "#fce5cd", "hatch": "///"},
    "value": {"facecolor": "#d9ead3", "hatch": ".."},
    "input": {"facecolor": "#eeeeee", "hatch": None},
    "plain": {"facecolor": "white", "hatch": None},
}
INK = "#222222"
FONT = 12.0  # labels
SMALL = MIN_FONT_PT  # the smallest allowed, for sub-labels
TITLE = 14.0


@dataclass(frozen=True)
class Diagram:
    """A drawn diagram: a PNG shown at half its pixel width, its alt text, and every label it carries.

    Attributes
    ----------
    name : str
        The function that drew it, e.g. ``"three_steps"``.
    title : str
        The title drawn at its top.
    alt : str
        What a screen reader says for it; it begins with "Diagram:".
    png : bytes
        The image, :data:`DPI` pixels per inch.
    width_px, height_px : int
        The PNG's size in pixels.
    labels : tuple of str
        Every text drawn in it, in drawing order (mathtext as written, e.g. ``"$q \\cdot k_i$"``).
    font_sizes : tuple of float
        The size in points of each label, in the same order.
    overlaps : tuple of (str, str)
        Pairs of labels whose boxes overlap, and labels that leave the canvas (paired with ``"<edge>"``); empty
        for a good drawing.
    """

    name: str
    title: str
    alt: str
    png: bytes = field(repr=False)
    width_px: int
    height_px: int
    labels: tuple[str, ...] = field(repr=False)
    font_sizes: tuple[float, ...] = field(repr=False)
    overlaps: tuple[tuple[str, str], ...] = field(repr=False)

    @property
    def display_width(self) -> int:
        """The width it is shown at in CSS pixels, half its pixel width."""
        return self.width_px // 2

    def _repr_png_(self) -> tuple[bytes, dict]:
        return self.png, {"width": self.display_width}

    def __repr__(self) -> str:
        return f"Diagram: {self.title}"

    def text(self) -> str:
        """All its labels in one string, for searching (``"softmax" in d.text()``)."""
        return "\n".join(self.labels)


# Drawing helpers. Every diagram is drawn on one axes that fills the figure, in inches from the bottom left.


def _canvas(width: float, height: float, title: str) -> tuple[Figure, Axes]:
    """A figure ``width`` grid units wide (at most :data:`LAYOUT_WIDTH`) and ``height`` inches tall."""
    # A Figure of its own with the Agg canvas, never pyplot: nothing is shown twice in a notebook, and the
    # backend the reader chose for their own plots is left alone.
    if width > LAYOUT_WIDTH:
        raise ValueError(f"a diagram may be at most {LAYOUT_WIDTH} units wide, got {width}")
    fig = Figure(figsize=(width * MAX_WIDTH_IN / LAYOUT_WIDTH, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.text(width / 2, height - 0.12, title, ha="center", va="top", fontsize=TITLE, fontweight="bold", color=INK)
    return fig, ax


def _label(ax, x, y, text, size=FONT, ha="center", va="center", **kwargs):
    return ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=INK, **kwargs)


def _cells(ax, x, y, rows, cols, role, cell=0.2, shades=None):
    """A grid of rows x cols cells with its bottom left at (x, y); returns its (x0, y0, x1, y1).

    ``shades``, one number in [0, 1] per row, darkens the cells of each row (a weight)."""
    style = ROLES[role]
    for r in range(rows):
        for c in range(cols):
            face = style["facecolor"]
            if shades is not None:
                level = 1.0 - 0.85 * shades[r]
                face = (level, level, level)
            ax.add_patch(
                Rectangle(
                    (x + c * cell, y + (rows - 1 - r) * cell), cell, cell, facecolor=face, edgecolor=INK,
                    hatch=None if shades is not None else style["hatch"], linewidth=0.9,
                )
            )
    return x, y, x + cols * cell, y + rows * cell


def _box(ax, x, y, w, h, text, role="plain", size=FONT, rounded=True, bold_edge=False):
    """A box centred on (x, y), w x h, with its text in the middle; returns its (x0, y0, x1, y1)."""
    style = ROLES[role]
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.08" if rounded else "square,pad=0",
            facecolor=style["facecolor"], edgecolor=INK, hatch=style["hatch"], linewidth=2.0 if bold_edge else 1.2,
        )
    )
    _label(ax, x, y, text, size=size, bbox=None if style["hatch"] is None else _WHITE)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


_WHITE = {"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none"}


def _arrow(ax, points: Sequence[tuple[float, float]], dashed=False):
    """An arrow along the polyline ``points``, its head at the last point."""
    path = Path(points, [Path.MOVETO] + [Path.LINETO] * (len(points) - 1))
    ax.add_patch(
        FancyArrowPatch(
            path=path, arrowstyle="-|>", mutation_scale=14, color=INK, linewidth=1.3,
            linestyle=(0, (4, 3)) if dashed else "-", shrinkA=0, shrinkB=0,
        )
    )


def _finish(fig: Figure, name: str, title: str, alt: str) -> Diagram:
    if not alt.startswith("Diagram: ") or not alt.endswith("."):
        raise ValueError(f"alt text must begin with 'Diagram: ' and end with a full stop, got {alt!r}")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    canvas = fig.bbox
    # The cells of vectors and matrices (plain Rectangles), and the boxes with text inside (FancyBboxPatches).
    patches = [p for ax in fig.axes for p in ax.patches]
    cells = [p.get_window_extent(renderer) for p in patches if isinstance(p, Rectangle)]
    frames = [p.get_window_extent(renderer) for p in patches if isinstance(p, FancyBboxPatch)]
    overlaps = []
    for i, (t, b) in enumerate(zip(texts, boxes, strict=True)):
        if b.x0 < canvas.x0 - 1 or b.y0 < canvas.y0 - 1 or b.x1 > canvas.x1 + 1 or b.y1 > canvas.y1 + 1:
            overlaps.append((t.get_text(), "<edge>"))
        if any(b.overlaps(c) for c in cells):
            overlaps.append((t.get_text(), "<cells>"))
        centre = ((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2)
        for f in frames:
            inside = f.contains(*centre)
            margin = 6  # pixels of the PNG between the text and its frame
            fits = f.x0 + margin <= b.x0 and b.x1 <= f.x1 - margin and f.y0 + margin <= b.y0 and b.y1 <= f.y1 - margin
            if inside and not fits:
                overlaps.append((t.get_text(), "<box edge>"))
        for u, c in zip(texts[i + 1 :], boxes[i + 1 :], strict=True):
            if b.overlaps(c):
                overlaps.append((t.get_text(), u.get_text()))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    width_px, height_px = (round(v * DPI) for v in fig.get_size_inches())
    return Diagram(
        name=name, title=title, alt=alt, png=buffer.getvalue(), width_px=width_px, height_px=height_px,
        labels=tuple(t.get_text() for t in texts), font_sizes=tuple(float(t.get_fontsize()) for t in texts),
        overlaps=tuple(overlaps),
    )


# Chapter 1


def three_steps() -> Diagram:
    """Attention as data flow: query and keys -> scores -> softmax -> weights -> weighted sum of values -> output."""
    title = "Attention in three steps"
    fig, ax = _canvas(7.2, 3.7, title)
    c = 0.2  # cell size
    # The inputs, on the left: a query (3 numbers), four keys (4 x 3) and four values (4 x 2).
    _cells(ax, 0.35, 2.75, 1, 3, "query", c)
    _label(ax, 0.65, 3.13, "query $q$")
    _cells(ax, 0.35, 1.55, 4, 3, "key", c)
    _label(ax, 0.65, 2.53, "keys $k_i$")
    _cells(ax, 0.45, 0.2, 4, 2, "value", c)
    _label(ax, 0.65, 1.3, "values $v_i$")
    # Step 1: one score per key.
    y1 = 2.45
    s1 = _box(ax, 2.15, y1, 1.35, 0.62, "1. score\n$e_i = q \\cdot k_i$")
    _arrow(ax, [(0.98, 2.85), (1.25, 2.85), (1.25, y1 + 0.12), (s1[0], y1 + 0.12)])
    _arrow(ax, [(0.98, 1.95), (1.25, 1.95), (1.25, y1 - 0.12), (s1[0], y1 - 0.12)])
    _cells(ax, 3.1, y1 - 0.4, 4, 1, "input", c)
    _label(ax, 3.2, y1 + 0.62, "scores $e_i$")
    _arrow(ax, [(s1[2], y1), (3.08, y1)])
    # Step 2: softmax turns the scores into weights that sum to one (shaded by size).
    s2 = _box(ax, 4.15, y1, 1.15, 0.62, "2. softmax")
    _arrow(ax, [(3.32, y1), (s2[0], y1)])
    _cells(ax, 5.05, y1 - 0.4, 4, 1, "input", c, shades=[0.64, 0.09, 0.24, 0.03])
    _label(ax, 5.4, y1 + 0.2, "weights $\\alpha_i$", ha="left")
    _label(ax, 5.4, y1 - 0.2, "$\\alpha_i \\geq 0$, $\\sum_i \\alpha_i = 1$", size=SMALL, ha="left")
    _arrow(ax, [(s2[2], y1), (5.03, y1)])
    # Step 3: the weighted sum of the values.
    s3 = _box(ax, 5.15, 0.6, 1.75, 0.8, "3. weighted sum\n$\\sum_i \\alpha_i v_i$")
    _arrow(ax, [(5.15, y1 - 0.42), (5.15, s3[3])])
    _arrow(ax, [(0.87, 0.6), (s3[0], 0.6)])
    _cells(ax, 6.45, 0.5, 1, 2, "value", c)
    _label(ax, 6.65, 1.0, "output")
    _arrow(ax, [(s3[2], 0.6), (6.43, 0.6)])
    alt = (
        "Diagram: a query vector and four key vectors enter step 1, which computes one score per key as the dot "
        "product of the query with that key; step 2, the softmax, turns the four scores into four weights that "
        "are non-negative and sum to one; step 3 multiplies each of the four value vectors by its weight and adds "
        "them up, giving the output vector."
    )
    return _finish(fig, "three_steps", title, alt)


# Chapter 2


def attention_layer() -> Diagram:
    """The abstract attention layer of the notes: q, X, f_att, scores e, weights a, output y."""
    title = "The attention layer, in the abstract"
    fig, ax = _canvas(7.2, 3.9, title)
    c = 0.2
    y1 = 2.65
    _cells(ax, 0.3, y1 - 0.1, 1, 3, "query", c)
    _label(ax, 0.6, y1 + 0.33, "query $q$")
    _label(ax, 0.6, y1 - 0.33, "size $D_Q$", size=SMALL)
    _cells(ax, 0.3, 0.65, 4, 3, "input", c)
    _label(ax, 0.6, 1.63, "inputs $X$")
    _label(ax, 0.3, 0.42, "$N_X$ rows, size $D_X$", size=SMALL, ha="left")
    f = _box(ax, 2.3, y1, 1.75, 0.66, "similarity $f_{att}$\n$e_i = f_{att}(q, X_i)$")
    _arrow(ax, [(0.93, y1), (f[0], y1)])
    _arrow(ax, [(0.93, 1.25), (1.2, 1.25), (1.2, y1 - 0.2), (f[0], y1 - 0.2)])
    _cells(ax, 3.45, y1 - 0.4, 4, 1, "input", c)
    _label(ax, 3.55, y1 + 0.62, "scores $e$")
    _arrow(ax, [(f[2], y1), (3.43, y1)])
    s = _box(ax, 4.45, y1, 1.1, 0.62, "softmax")
    _arrow(ax, [(3.67, y1), (s[0], y1)])
    _cells(ax, 5.3, y1 - 0.4, 4, 1, "input", c, shades=[0.24, 0.09, 0.64, 0.03])
    _label(ax, 5.65, y1 + 0.12, "weights $a$", ha="left")
    _label(ax, 5.65, y1 - 0.22, "sum to 1", size=SMALL, ha="left")
    _arrow(ax, [(s[2], y1), (5.28, y1)])
    w = _box(ax, 5.4, 0.95, 1.7, 0.62, "$y = \\sum_i a_i X_i$")
    _arrow(ax, [(5.4, y1 - 0.42), (5.4, w[3])])
    _arrow(ax, [(0.93, 0.95), (w[0], 0.95)], dashed=True)
    _label(ax, 3.0, 0.7, "$X$ again: the same vectors are returned", size=SMALL)
    _cells(ax, 6.45, 0.85, 1, 3, "input", c)
    _label(ax, 6.75, 1.35, "output $y$")
    _label(ax, 6.75, 0.55, "size $D_X$", size=SMALL)
    _arrow(ax, [(w[2], 0.95), (6.43, 0.95)])
    alt = (
        "Diagram: the abstract attention layer. A query vector q of size D_Q and N_X input vectors X, each of "
        "size D_X, enter a similarity function f_att, which gives one score e_i per input vector; a softmax turns "
        "the scores into weights a that sum to one; the output y is the sum of the input vectors weighted by a. "
        "A dashed arrow shows that X is used twice, once to be scored and once to be returned."
    )
    return _finish(fig, "attention_layer", title, alt)


def _matrix(ax, x, y, rows, cols, role, name, row_label, col_label, c=0.17, batch=True):
    """A matrix of rows x cols cells, its top left at (x, y), with its name below and its sizes on two sides.

    With ``batch``, two shadow copies behind it stand for the other sequences of the batch. Returns its
    (x0, y0, x1, y1)."""
    w, h = cols * c, rows * c
    if batch:
        for k in (2, 1):
            ax.add_patch(
                Rectangle((x + 0.07 * k, y - h + 0.07 * k), w, h, facecolor="white", edgecolor="#777777",
                          linewidth=0.8)
            )
    box = _cells(ax, x, y - h, rows, cols, role, c)
    _label(ax, x - 0.08, y - h / 2, row_label, ha="right", size=SMALL)
    _label(ax, x + w / 2, y + 0.14 + (0.14 if batch else 0.0), col_label, size=SMALL)
    _label(ax, x + w / 2, y - h - 0.2, name)
    return box


def sdpa_shapes() -> Diagram:
    """softmax(QK^T / sqrt(d_k)) V with every shape: (Lq x d_k)(d_k x Lk) -> (Lq x Lk) -> (Lq x d_v), and B."""
    title = "Scaled dot-product attention, shape by shape"
    fig, ax = _canvas(7.2, 4.5, title)
    c = 0.17
    top = 3.55  # the first row: scores
    _matrix(ax, 0.55, top, 3, 4, "query", "$Q$", "$L_q$", "$d_k$", c)
    _label(ax, 1.62, top - 0.26, "$\\times$", size=16)
    k = _matrix(ax, 2.0, top, 4, 5, "key", "$K^\\top$", "$d_k$", "$L_k$", c)
    _arrow(ax, [(k[2] + 0.22, top - 0.26), (3.8, top - 0.26)])
    _label(ax, (k[2] + 4.02) / 2, top - 0.02, "$\\div\\sqrt{d_k}$")
    _matrix(ax, 4.2, top, 3, 5, "input", "scores $S$", "$L_q$", "$L_k$", c)
    _label(ax, 6.27, top - 0.1, "$S_{ij} = q_i \\cdot k_j / \\sqrt{d_k}$", size=SMALL)
    _label(ax, 6.27, top - 0.45, "one score for each", size=SMALL)
    _label(ax, 6.27, top - 0.75, "query and key", size=SMALL)
    bottom = 1.75  # the second row: weights and output
    _arrow(ax, [(4.62, top - 0.93), (4.62, 2.2), (1.2, 2.2), (1.2, bottom - 0.26), (1.55, bottom - 0.26)])
    _label(ax, 2.9, 2.34, "softmax of each row of $S$", size=SMALL)
    a = _matrix(ax, 2.0, bottom, 3, 5, "input", "weights $A$", "$L_q$", "$L_k$", c)
    _label(ax, a[2] + 0.37, bottom - 0.26, "$\\times$", size=16)
    v = _matrix(ax, 3.65, bottom, 5, 2, "value", "$V$", "$L_k$", "$d_v$", c)
    _label(ax, v[2] + 0.38, bottom - 0.26, "=", size=16)
    o = _matrix(ax, 4.85, bottom, 3, 2, "value", "output", "$L_q$", "$d_v$", c)
    for i, line in enumerate(["each row of $A$", "sums to 1, so each", "output row is an", "average of $V$'s rows"]):
        _label(ax, o[2] + 0.25, bottom - 0.05 - 0.3 * i, line, size=SMALL, ha="left")
    _label(ax, 3.6, 0.22, "The shadows: a batch of $B$ sequences, so $Q$ is $B \\times L_q \\times d_k$, and so on.",
           size=SMALL)
    alt = (
        "Diagram: the shapes of scaled dot-product attention. A query matrix Q with L_q rows and d_k columns "
        "times the transposed key matrix, d_k rows by L_k columns, divided by the square root of d_k, gives the "
        "L_q by L_k score matrix S. A softmax of each row gives the weight matrix A, also L_q by L_k, and A times "
        "the value matrix V, L_k rows by d_v columns, gives the output, L_q rows by d_v columns. Shadow copies "
        "behind every matrix stand for the batch dimension B in front of each shape."
    )
    return _finish(fig, "sdpa_shapes", title, alt)


# Chapter 3


def self_attention_steps() -> Diagram:
    """Self-attention for "Thinking Machines": X -> W_Q, W_K, W_V -> q, k, v -> scores -> softmax -> z_1."""
    title = 'Self-attention, step by step: the output $z_1$ for "Thinking"'
    fig, ax = _canvas(7.2, 4.85, title)
    c = 0.2
    cols = {"1": 3.85, "2": 5.85}  # the centres of the two word columns
    row = 0.4
    y = 4.25
    _label(ax, cols["1"], y, '"Thinking"', fontweight="bold")
    _label(ax, cols["2"], y, '"Machines"', fontweight="bold")
    steps = [
        ("input", "input", "x", 4, ""),
        ("query $q_i = x_i W_Q$", "query", "q", 3, ""),
        ("key $k_i = x_i W_K$", "key", "k", 3, ""),
        ("value $v_i = x_i W_V$", "value", "v", 3, ""),
    ]
    for text, role, name, n, _ in steps:
        y -= row
        _label(ax, 0.2, y, text, ha="left")
        for i, x in cols.items():
            _cells(ax, x - 0.15 - n * c / 2, y - c / 2, 1, n, role, c)
            _label(ax, x - 0.15 + n * c / 2 + 0.1, y, f"${name}_{i}$", ha="left")
    y -= row * 0.6
    ax.plot([0.2, 7.0], [y, y], color="#888888", lw=1.0, ls=(0, (2, 2)))
    _label(ax, 7.0, y - 0.17, 'from here on, for the query of "Thinking"', size=SMALL, ha="right", style="italic")
    for text, cell in [
        ("score", "$q_1 \\cdot k_@$"),
        ("divide by $\\sqrt{d_k}$", "$q_1 \\cdot k_@ / \\sqrt{d_k}$"),
        ("softmax over the row", "$a_{1@}$"),
        ("weight the values", "$a_{1@}\\, v_@$"),
    ]:
        y -= row
        _label(ax, 0.2, y - 0.05, text, ha="left")
        for i, x in cols.items():
            _label(ax, x, y - 0.05, cell.replace("@", i))
    y -= row
    _label(ax, 0.2, y - 0.1, "sum", ha="left")
    _box(ax, (cols["1"] + cols["2"]) / 2, y - 0.1, 2.9, 0.36, "$z_1 = a_{11}\\, v_1 + a_{12}\\, v_2$", role="value",
         bold_edge=True)
    alt = (
        "Diagram: self-attention for the two words Thinking and Machines, as a table with one column per word. "
        "Each word vector x_1, x_2 is multiplied by three learned matrices W_Q, W_K and W_V, giving a query, a key "
        "and a value per word. Below a dividing line, for the query of Thinking: the scores q_1 dot k_1 and q_1 "
        "dot k_2, each divided by the square root of d_k, a softmax over the row giving the weights a_11 and a_12, "
        "the values weighted by them, and their sum, z_1 = a_11 v_1 + a_12 v_2."
    )
    return _finish(fig, "self_attention_steps", title, alt)


def qkv_sources() -> Diagram:
    """Which sequence feeds Q, K and V: self-attention (all from X) against cross-attention (Q from Y)."""
    title = "Where the queries, keys and values come from"
    fig, ax = _canvas(7.2, 4.3, title)
    c = 0.22
    for x0, name in [(0.05, "self"), (3.6, "cross")]:
        heading = "(a) self-attention" if name == "self" else "(b) cross-attention"
        _label(ax, x0 + 1.78, 3.72, heading, fontweight="bold")
        xq, xk, xv = x0 + 0.6, x0 + 1.78, x0 + 2.96
        source = "X" if name == "self" else "Y"
        for x, role, text in [(xq, "query", f"$Q = {source}W_Q$"), (xk, "key", "$K = XW_K$"),
                              (xv, "value", "$V = XW_V$")]:
            _box(ax, x, 1.75, 1.14, 0.42, text, role=role)
        att = _box(ax, x0 + 1.78, 2.75, 3.15, 0.5, "attention: $\\mathrm{softmax}(QK^\\top/\\sqrt{d_k})\\,V$",
                   size=SMALL)
        for x in (xq, xk, xv):
            _arrow(ax, [(x, 1.96), (x, att[1])])
        if name == "self":
            _cells(ax, x0 + 1.78 - 1.5 * c, 0.55, 1, 3, "input", c)
            _label(ax, x0 + 1.78, 0.28, "one sequence $X$ ($L$ tokens)", size=SMALL)
            for x in (xq, xk, xv):
                _arrow(ax, [(x0 + 1.78, 0.79), (x0 + 1.78, 1.08), (x, 1.08), (x, 1.54)])
            out = "output: $L$ rows, one per token"
        else:
            _cells(ax, xq - c, 0.55, 1, 2, "input", c)
            _label(ax, xq, 0.28, "$Y$ (decoder)", size=SMALL)
            _arrow(ax, [(xq, 0.79), (xq, 1.54)])
            _cells(ax, (xk + xv) / 2 - 2 * c, 0.55, 1, 4, "input", c)
            _label(ax, (xk + xv) / 2, 0.28, "$X$ (encoder)", size=SMALL)
            for x in (xk, xv):
                _arrow(ax, [((xk + xv) / 2, 0.79), ((xk + xv) / 2, 1.08), (x, 1.08), (x, 1.54)])
            out = "output: one row per query (of $Y$)"
        _arrow(ax, [(x0 + 1.78, att[3]), (x0 + 1.78, 3.22)])
        _label(ax, x0 + 1.78, 3.38, out, size=SMALL)
    ax.plot([3.6, 3.6], [0.2, 3.9], color="#888888", lw=1.0, ls=(0, (2, 2)))
    alt = (
        "Diagram: two panels. (a) Self-attention: one sequence X feeds all three projections, Q, K and V, which "
        "enter the attention softmax(QK^T / sqrt(d_k)) V; the output has one row per token of X. (b) "
        "Cross-attention: the queries Q come from one sequence, Y (the decoder), and the keys K and values V from "
        "another, X (the encoder); the output has one row per query, that is per position of Y."
    )
    return _finish(fig, "qkv_sources", title, alt)


# Chapter 4


def context_vectors() -> Diagram:
    """One context vector for every decoder step (no attention) against a context vector per step (Bahdanau)."""
    title = "One context vector, or one per step"
    fig, ax = _canvas(7.2, 5.4, title)
    enc_x = [1.5 + 1.0 * j for j in range(5)]
    dec_x = [1.9 + 1.2 * t for t in range(4)]
    bw, bh = 0.62, 0.4

    def encoder(y):
        for j, x in enumerate(enc_x):
            _box(ax, x, y, bw, bh, f"$h_{j + 1}$", role="key", rounded=False)
            if j:
                _arrow(ax, [(enc_x[j - 1] + bw / 2, y), (x - bw / 2, y)])
        _label(ax, 0.15, y, "encoder", ha="left")

    def decoder(y):
        for t, x in enumerate(dec_x):
            _box(ax, x, y, bw, bh, f"$s_{t + 1}$", role="query", rounded=False)
            if t:
                _arrow(ax, [(dec_x[t - 1] + bw / 2, y), (x - bw / 2, y)])
        _label(ax, 0.15, y, "decoder", ha="left")

    # (a) Without attention: the encoder's final state is the one context c that every step reads.
    _label(ax, 0.15, 4.82, "(a) without attention: every step reads the same $c$", ha="left", fontweight="bold")
    encoder(3.2)
    c = _box(ax, 6.6, 3.2, 0.62, 0.45, "$c$", role="value", bold_edge=True)
    _arrow(ax, [(enc_x[-1] + bw / 2, 3.2), (c[0], 3.2)])
    decoder(4.3)
    ax.plot([6.6, 6.6, dec_x[0]], [c[3], 3.72, 3.72], color=INK, lw=1.3)
    for x in dec_x:
        _arrow(ax, [(x, 3.72), (x, 4.3 - bh / 2)])
    _label(ax, 6.5, 2.78, "final state", size=SMALL)
    # (b) Bahdanau: at step t, a context c_t = sum_j a_tj h_j; the fan for step 3 is drawn, its width the weight.
    _label(ax, 0.15, 2.42, "(b) attention: a context $c_t = \\sum_j a_{tj} h_j$ for each step $t$", ha="left",
           fontweight="bold")
    encoder(0.4)
    decoder(1.95)
    weights = [0.05, 0.1, 0.6, 0.2, 0.05]
    for t, x in enumerate(dec_x):
        box = _box(ax, x, 1.25, 0.5, 0.34, f"$c_{t + 1}$", role="value")
        _arrow(ax, [(x, box[3]), (x, 1.95 - bh / 2)])
        for j, xe in enumerate(enc_x):
            w = weights[j] if t == 2 else 0.0
            ax.plot([xe, x], [0.4 + bh / 2, box[1]], color=INK if t == 2 else "#aaaaaa",
                    lw=0.6 + 6 * w, ls="-" if t == 2 else (0, (1, 2)), solid_capstyle="butt", zorder=0)
    # The query of step 3 is the previous state s_2: it sets the weights.
    _arrow(ax, [(dec_x[1] + bw / 2, 1.95 - bh / 2 + 0.05), (dec_x[2] - 0.25, 1.3)], dashed=True)
    _label(ax, 6.55, 1.45, "widths: $a_{3j}$", size=SMALL)
    _label(ax, 6.55, 1.1, "dashed: the", size=SMALL)
    _label(ax, 6.55, 0.8, "query $s_2$", size=SMALL)
    alt = (
        "Diagram: two panels, each with an encoder row of states h_1 to h_5 and a decoder row of states s_1 to "
        "s_4. (a) Without attention, the encoder's final state becomes one context vector c, and the same c "
        "enters every decoder step. (b) With attention, each decoder step t has its own context vector c_t, a "
        "weighted sum of all five encoder states; for step 3 the lines from every h_j to c_3 are drawn with a "
        "width proportional to the weight a_3j, the widest from h_3, and a dashed arrow from the previous "
        "decoder state s_2 to c_3 shows the query that sets those weights."
    )
    return _finish(fig, "context_vectors", title, alt)


def bahdanau_luong_step() -> Diagram:
    """One decoder step of Bahdanau beside one of Luong: which state scores, and where the context enters."""
    title = "One decoder step: Bahdanau beside Luong"
    fig, ax = _canvas(7.2, 5.9, title)
    w, h = 2.75, 0.74

    def column(x, heading, boxes):
        _label(ax, x, 5.35, heading, fontweight="bold")
        placed = {}
        for key, (y, text, role) in boxes.items():
            placed[key] = _box(ax, x, y, w, h, text, role=role, size=SMALL)
        return placed

    # Bahdanau: score with s_{t-1}, context into the GRU, output from [s_t; c_t; y_{t-1}].
    bx = 1.8
    b = column(bx, "Bahdanau (2015)", {
        "score": (1.35, "1. score with $s_{t-1}$\n$e_{tj} = w^\\top \\tanh(W s_{t-1} + U h_j)$", "plain"),
        "context": (2.3, "2. softmax, then\n$c_t = \\sum_j a_{tj}\\, h_j$", "plain"),
        "gru": (3.25, "3. GRU step, $c_t$ inside\n$s_t = \\mathrm{GRU}([y_{t-1}; c_t],\\, s_{t-1})$", "plain"),
        "out": (4.2, "4. predict $y_t$\nfrom $[s_t; c_t; y_{t-1}]$", "plain"),
    })
    # Luong: GRU first, score with s_t, context combined after the GRU.
    lx = 5.45
    lu = column(lx, "Luong (2015)", {
        "gru": (1.35, "1. GRU step first\n$s_t = \\mathrm{GRU}(y_{t-1},\\, s_{t-1})$", "plain"),
        "score": (2.3, "2. score with $s_t$\n$e_{tj} = s_t^\\top W_a h_j$", "plain"),
        "context": (3.25, "3. softmax, then\n$c_t = \\sum_j a_{tj}\\, h_j$", "plain"),
        "out": (4.2, "4. $\\tilde s_t = \\tanh(W_c [c_t; s_t])$\npredicts $y_t$", "plain"),
    })
    for col, x in ((b, bx), (lu, lx)):
        order = sorted(col.values(), key=lambda box: box[1])
        for lower, upper in zip(order, order[1:], strict=False):
            _arrow(ax, [(x, lower[3]), (x, upper[1])])
        _arrow(ax, [(x, order[-1][3]), (x, 4.9)])
        _label(ax, x, 5.03, "$y_t$")
    # The inputs at the bottom: the previous state (the query role), the encoder states (keys and values).
    for x, query_into in ((bx, b["score"]), (lx, lu["gru"])):
        _box(ax, x - 0.8, 0.42, 0.86, 0.4, "$s_{t-1}$", role="query", rounded=False)
        _arrow(ax, [(x - 0.8, 0.62), (x - 0.8, query_into[1])])
        _box(ax, x + 0.8, 0.42, 0.86, 0.4, "$h_1 \\dots h_S$", role="key", rounded=False)
    # Bahdanau: h_j into the score directly; s_{t-1} also into the GRU (left wire); h_j into the context (right).
    _arrow(ax, [(bx + 0.8, 0.62), (bx + 0.8, b["score"][1])])
    _arrow(ax, [(bx - 0.8 - 0.43, 0.42), (0.2, 0.42), (0.2, 3.25), (b["gru"][0], 3.25)], dashed=True)
    _arrow(ax, [(bx + 0.8 + 0.43, 0.42), (3.4, 0.42), (3.4, 2.3), (b["context"][2], 2.3)], dashed=True)
    # Luong: h_j into the score and the context (right wire).
    _arrow(ax, [(lx + 0.8 + 0.43, 0.42), (7.05, 0.42), (7.05, 2.3), (lu["score"][2], 2.3)], dashed=True)
    _arrow(ax, [(7.05, 2.3), (7.05, 3.25), (lu["context"][2], 3.25)], dashed=True)
    # The previous output token enters the GRU step of each.
    _arrow(ax, [(3.52, 3.3), (b["gru"][2], 3.3)])
    _label(ax, 3.37, 3.62, "$y_{t-1}$")
    _box(ax, lx, 0.42, 0.58, 0.4, "$y_{t-1}$", rounded=False)
    _arrow(ax, [(lx, 0.62), (lx, lu["gru"][1])])
    ax.plot([3.62, 3.62], [0.2, 5.5], color="#888888", lw=1.0, ls=(0, (2, 2)))
    alt = (
        "Diagram: one decoder step of each model, read from bottom to top. Bahdanau: 1, the previous state "
        "s_(t-1) is scored against every encoder state h_j with the additive score w^T tanh(W s_(t-1) + U h_j); "
        "2, a softmax gives the weights and the context c_t is the weighted sum of the h_j; 3, the GRU step reads "
        "the previous output y_(t-1) together with c_t and gives the new state s_t; 4, y_t is predicted from s_t, "
        "c_t and y_(t-1). Luong: 1, the GRU step comes first, s_t = GRU(y_(t-1), s_(t-1)); 2, the new state s_t "
        "is scored with s_t^T W_a h_j; 3, softmax and context c_t; 4, c_t and s_t are combined after the GRU, "
        "tanh(W_c [c_t; s_t]), to predict y_t."
    )
    return _finish(fig, "bahdanau_luong_step", title, alt)


# Chapter 5


def _grid(ax, x, y, levels, cell, hatch_blocked=False):
    """A grid of cells, its top left at (x, y), one grey ``level`` in [0, 1] per cell (0 white, 1 darkest);
    with ``hatch_blocked`` the cells of level 0 get a cross hatch. Returns its (x0, y0, x1, y1)."""
    rows, cols = len(levels), len(levels[0])
    for r in range(rows):
        for c in range(cols):
            level = 1.0 - 0.75 * float(levels[r][c])
            blocked = hatch_blocked and float(levels[r][c]) == 0.0
            ax.add_patch(
                Rectangle((x + c * cell, y - (r + 1) * cell), cell, cell, facecolor=(level, level, level),
                          edgecolor=INK, linewidth=0.8, hatch="xx" if blocked else None)
            )
    return x, y - rows * cell, x + cols * cell, y


def multihead_reshape() -> Diagram:
    """Multi-head attention as reshapes: (B, L, d) -> (B, H, L, d_k) -> attention per head -> concat -> W_O."""
    title = "Multi-head attention: split, attend in each head, concatenate"
    fig, ax = _canvas(7.2, 4.6, title)
    c, gap, heads, dk, rows = 0.17, 0.06, 4, 2, 4
    mid = rows * c / 2

    def banded(x, top, role, name, shape, numbered=False):
        # A (L x d) matrix drawn as H bands of d_k columns, a small gap between them.
        for h in range(heads):
            _cells(ax, x + h * (dk * c + gap), top - rows * c, rows, dk, role, c)
            if numbered:
                _label(ax, x + h * (dk * c + gap) + dk * c / 2, top + 0.15, f"{h + 1}", size=SMALL)
        width = heads * dk * c + (heads - 1) * gap
        _label(ax, x + width / 2, top + (0.45 if numbered else 0.18), name)
        _label(ax, x + width / 2, top - rows * c - 0.2, shape, size=SMALL)
        return x, top - rows * c, x + width, top

    def split(x, top, role, name, shape):
        # H matrices of (L x d_k), one per head, side by side.
        step = dk * c + 0.2
        for h in range(heads):
            _cells(ax, x + h * step, top - rows * c, rows, dk, role, c)
            _label(ax, x + h * step + dk * c / 2, top + 0.18, f"${name}_{h + 1}$")
        width = (heads - 1) * step + dk * c
        _label(ax, x + width / 2, top - rows * c - 0.2, shape, size=SMALL)
        return x, top - rows * c, x + width, top

    top1, top2 = 3.6, 1.3
    x_in = _cells(ax, 0.2, top1 - rows * c, rows, heads * dk, "input", c)
    _label(ax, 0.2 + heads * dk * c / 2, top1 + 0.18, "input $X$")
    _label(ax, 0.2 + heads * dk * c / 2, top1 - rows * c - 0.2, "$(B, L, d)$", size=SMALL)
    wq = _box(ax, 2.0, top1 - mid, 0.55, 0.4, "$W_Q$", rounded=False)
    _arrow(ax, [(x_in[2] + 0.03, top1 - mid), (wq[0], top1 - mid)])
    q = banded(2.55, top1, "query", "$Q = XW_Q$, in $H$ bands", "$(B, L, H \\cdot d_k)$", numbered=True)
    _arrow(ax, [(wq[2], top1 - mid), (q[0] - 0.02, top1 - mid)])
    qh = split(4.8, top1, "query", "Q", "$(B, H, L, d_k)$")
    _arrow(ax, [(q[2] + 0.03, top1 - mid), (qh[0] - 0.03, top1 - mid)])
    _label(ax, (q[2] + qh[0]) / 2, top1 - mid + 0.22, "split", size=SMALL)
    centre = (qh[0] + qh[2]) / 2
    att = _box(ax, centre, 2.05, 2.2, 0.42, "attention in each head", bold_edge=True)
    _arrow(ax, [(centre, 2.55), (centre, att[3])])
    _label(ax, 2.3, 2.2, "$K$ and $V$ are split the same way", size=SMALL)
    _label(ax, 2.3, 1.9, "here $H = 4$, $d_k = 2$, $d = H \\cdot d_k = 8$", size=SMALL)
    oh = split(4.8, top2, "value", "O", "$(B, H, L, d_k)$")
    _arrow(ax, [(centre, att[1]), (centre, top2 + 0.32)])
    cat = banded(2.55, top2, "value", "$[O_1, \\dots, O_H]$", "$(B, L, H \\cdot d_k)$")
    _arrow(ax, [(oh[0] - 0.03, top2 - mid), (cat[2] + 0.03, top2 - mid)])
    _label(ax, (cat[2] + oh[0]) / 2, top2 - mid + 0.22, "concat", size=SMALL)
    wo = _box(ax, 2.0, top2 - mid, 0.55, 0.4, "$W_O$", rounded=False)
    _arrow(ax, [(cat[0] - 0.02, top2 - mid), (wo[2], top2 - mid)])
    out = _cells(ax, 0.2, top2 - rows * c, rows, heads * dk, "value", c)
    _label(ax, 0.2 + heads * dk * c / 2, top2 + 0.18, "output")
    _label(ax, 0.2 + heads * dk * c / 2, top2 - rows * c - 0.2, "$(B, L, d)$", size=SMALL)
    _arrow(ax, [(wo[0], top2 - mid), (out[2] + 0.03, top2 - mid)])
    alt = (
        "Diagram: multi-head attention as reshapes, for H = 4 heads. The input X of shape (B, L, d) is "
        "multiplied by W_Q, giving Q, whose d = H times d_k columns fall into four bands numbered 1 to 4. A view "
        "and a transpose split it into four matrices Q_1 to Q_4, of shape (B, H, L, d_k); K and V are split the "
        "same way. Attention runs in each head on its own, giving four outputs O_1 to O_4; a transpose and a "
        "reshape put them side by side again, concatenated to (B, L, H times d_k), and W_O mixes them into the "
        "output of shape (B, L, d)."
    )
    return _finish(fig, "multihead_reshape", title, alt)


def attention_masks() -> Diagram:
    """The causal and the padding mask as matrices, their AND, and what the softmax makes of it."""
    import torch  # the masks are attnlib's own, so the picture cannot drift from the code

    from attnlib.functional import causal_mask, masked_softmax, padding_mask

    title = "Masks: which query may attend to which key"
    fig, ax = _canvas(7.2, 5.2, title)
    words = ["I", "like", "green", "tea", "<pad>", "<pad>"]
    n, c = len(words), 0.2
    causal = causal_mask(n)
    pad = padding_mask(torch.tensor([4]), n)[0]
    both = causal & pad[None, :]
    allowed = 0.75
    top = 4.0
    panels = [
        (0.85, causal, "causal"),
        (3.0, pad[None, :].expand(n, n), "padding"),
        (5.15, both, "causal AND padding"),
    ]
    for x, mask, heading in panels:
        _grid(ax, x, top, (mask.float() * allowed).tolist(), c, hatch_blocked=True)
        _label(ax, x + n * c / 2, top + 0.2, heading, fontweight="bold")
        for j, word in enumerate(words):
            _label(ax, x + (j + 0.5) * c, top - n * c - 0.08, word, size=SMALL, rotation=90, va="top")
    for i, word in enumerate(words):
        _label(ax, 0.8, top - (i + 0.5) * c, word, size=SMALL, ha="right")
    _label(ax, 2.52, top - n * c / 2, "AND", size=SMALL)
    _label(ax, 4.67, top - n * c / 2, "=", size=16)
    _label(ax, 0.1, 4.6, '"I like green tea" and two pads; rows: queries, columns: keys', size=SMALL, ha="left",
           style="italic")
    # What the softmax makes of the combined mask: exact zeros where blocked, rows that still sum to one.
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(n, n, generator=generator)
    weights = masked_softmax(scores, both)
    c2, top2 = 0.17, 1.45
    shade = ((scores - scores.min()) / (scores.max() - scores.min()) * 0.6 + 0.1).tolist()
    s = _grid(ax, 0.3, top2, shade, c2)
    _label(ax, (s[0] + s[2]) / 2, top2 + 0.18, "scores $S$")
    _arrow(ax, [(s[2] + 0.05, top2 - n * c2 / 2), (2.55, top2 - n * c2 / 2)])
    _label(ax, (s[2] + 2.55) / 2, top2 - n * c2 / 2 + 0.45, "$S_{ij} = -\\infty$", size=SMALL)
    _label(ax, (s[2] + 2.55) / 2, top2 - n * c2 / 2 + 0.19, "if blocked", size=SMALL)
    soft = _box(ax, 3.15, top2 - n * c2 / 2, 1.1, 0.42, "softmax", rounded=True)
    _label(ax, 3.15, top2 - n * c2 / 2 - 0.4, "of each row", size=SMALL)
    a = _grid(ax, 4.1, top2, (weights / weights.max()).tolist(), c2, hatch_blocked=True)
    _arrow(ax, [(soft[2], top2 - n * c2 / 2), (a[0] - 0.05, top2 - n * c2 / 2)])
    _label(ax, (a[0] + a[2]) / 2, top2 + 0.18, "weights $A$")
    _label(ax, a[2] + 0.2, top2 - 0.12, "0 where blocked,", size=SMALL, ha="left")
    _label(ax, a[2] + 0.2, top2 - 0.4, "rows sum to 1", size=SMALL, ha="left")
    # The legend: darker is more (a weight, or "may attend"); crossed is blocked.
    for k, (level, hatch, text) in enumerate([(allowed, None, "may attend"), (0.0, "xx", "blocked")]):
        y = 0.55 - 0.32 * k
        face = 1.0 - 0.75 * level
        ax.add_patch(Rectangle((a[2] + 0.2, y - 0.09), 0.18, 0.18, facecolor=(face, face, face), edgecolor=INK,
                               linewidth=0.8, hatch=hatch))
        _label(ax, a[2] + 0.5, y, text, size=SMALL, ha="left")
    alt = (
        "Diagram: three 6 by 6 grids for the sentence I like green tea padded with two pad tokens, queries as "
        "rows and keys as columns, shaded where the query may attend and crossed out where it is blocked. The "
        "causal mask allows the lower triangle, the padding mask blocks the two pad columns for every query, and "
        "causal AND padding is both at once. Below, a grid of scores gets minus infinity where the combined mask "
        "blocks, and the softmax of each row gives weights that are exactly zero there while each row still sums "
        "to one."
    )
    return _finish(fig, "attention_masks", title, alt)



# Chapter 6


def _sum_node(ax, x, y, r=0.14):
    """A circle with a plus in it, centred on (x, y): a residual addition. Returns its (x0, y0, x1, y1)."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, linewidth=1.3))
    ax.plot([x - r * 0.6, x + r * 0.6], [y, y], color=INK, lw=1.3)
    ax.plot([x, x], [y - r * 0.6, y + r * 0.6], color=INK, lw=1.3)
    return x - r, y - r, x + r, y + r


def post_pre_ln() -> Diagram:
    """One sublayer with its residual in the post-LN order (2017) and in the pre-LN order, side by side."""
    title = "Where the LayerNorm goes: post-LN and pre-LN"
    fig, ax = _canvas(7.2, 5.4, title)
    w, h = 2.1, 0.46
    for x, heading, formula, order in [
        (1.75, "(a) post-LN", "$x_{l+1} = \\mathrm{LN}(x_l + F(x_l))$", ["F", "+", "LN"]),
        (5.35, "(b) pre-LN", "$x_{l+1} = x_l + F(\\mathrm{LN}(x_l))$", ["LN", "F", "+"]),
    ]:
        _label(ax, x, 4.8, heading, fontweight="bold")
        _label(ax, x, 4.45, formula)
        _label(ax, x, 0.3, "$x_l$")
        ys = {"F": None, "+": None, "LN": None}
        y, below = 1.55, 0.45
        for part in order:
            if part == "+":
                node = _sum_node(ax, x, y)
                ys["+"] = y
                _arrow(ax, [(x, below), (x, node[1])])
                below = node[3]
                y += 0.75
            else:
                text = "sublayer $F$\n(attention or FFN)" if part == "F" else "LayerNorm"
                box = _box(ax, x, y + 0.1, w, 0.62 if part == "F" else h, text, role="plain")
                ys[part] = y + 0.1
                _arrow(ax, [(x, below), (x, box[1])])
                below = box[3]
                y += 1.0
        _arrow(ax, [(x, below), (x, 3.8)])
        _label(ax, x, 3.9, "$x_{l+1}$", va="bottom")
        # The residual: from below the first part, around the right, into the sum.
        _arrow(ax, [(x, 0.85), (x + 1.45, 0.85), (x + 1.45, ys["+"]), (x + 0.14, ys["+"])])
        _label(ax, x + 1.6, 1.6, "residual", size=SMALL, rotation=90)
    ax.plot([3.6, 3.6], [0.2, 4.95], color="#888888", lw=1.0, ls=(0, (2, 2)))
    alt = (
        "Diagram: one sublayer F, attention or the feed-forward network, with its residual connection, in two "
        "orders. (a) Post-LN, the order of the 2017 paper: the input x_l goes through F, is added to the residual "
        "copy of x_l, and the sum goes through a LayerNorm, so x_(l+1) = LN(x_l + F(x_l)) and the residual path "
        "passes through every LayerNorm. (b) Pre-LN: the LayerNorm comes first, then F, and the residual adds the "
        "untouched x_l, so x_(l+1) = x_l + F(LN(x_l)) and the residual path runs from input to output without "
        "any LayerNorm on it."
    )
    return _finish(fig, "post_pre_ln", title, alt)


def _frame(ax, x0, y0, x1, y1):
    """A dashed grey frame around the boxes of one block (drawn as lines, so labels may sit inside)."""
    ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="#777777", lw=1.0, ls=(0, (3, 2)))


def encoder_decoder_masks() -> Diagram:
    """The encoder-decoder Transformer: which sequence feeds each attention, and the mask each one uses."""
    title = "The encoder-decoder Transformer and its three masks"
    fig, ax = _canvas(7.2, 5.6, title)
    ex, dx, ew, dw, bh = 1.45, 4.75, 1.9, 2.7, 0.62
    icon = 0.11

    def mask_icon(x, y, rows, cols, allowed):
        # A small mask: shaded where a query (row) may attend to a key (column), crossed where blocked.
        levels = [[0.75 if allowed(i, j) else 0.0 for j in range(cols)] for i in range(rows)]
        _grid(ax, x, y + rows * icon / 2, levels, icon, hatch_blocked=True)

    # The encoder: source tokens, self-attention with the source padding mask, FFN; N blocks.
    _label(ax, ex, 4.95, "encoder", fontweight="bold")
    _label(ax, ex, 0.3, "source tokens (padded)", size=SMALL)
    e1 = _box(ax, ex, 1.45, ew, bh, "self-attention\nsource padding", role="input")
    e2 = _box(ax, ex, 2.5, ew, bh, "feed-forward")
    _arrow(ax, [(ex, 0.48), (ex, e1[1])])
    _arrow(ax, [(ex, e1[3]), (ex, e2[1])])
    mask_icon(2.55, 1.45, 5, 5, lambda i, j: j < 4)
    _frame(ax, e1[0] - 0.1, e1[1] - 0.12, e2[2] + 0.1, e2[3] + 0.12)
    _label(ax, e1[0] - 0.1, e2[3] + 0.3, "$\\times N$", ha="left", size=SMALL)
    # The memory: the encoder's output, the keys and values of every cross-attention.
    _arrow(ax, [(ex, e2[3]), (ex, 3.6), (3.05, 3.6), (3.05, 2.45), (dx - dw / 2, 2.45)])
    _label(ax, 2.25, 3.8, "memory", size=SMALL)
    _label(ax, 2.95, 3.0, "$K, V$", size=SMALL, ha="right")
    # The decoder: target tokens shifted right, masked self-attention, cross-attention, FFN; then the head.
    _label(ax, dx, 4.95, "decoder", fontweight="bold")
    _label(ax, dx, 0.3, "target, shifted right (padded)", size=SMALL)
    d1 = _box(ax, dx, 1.45, dw, bh, "masked self-attention\ncausal AND target padding", role="input")
    d2 = _box(ax, dx, 2.45, dw, bh, "cross-attention\nsource padding", role="input")
    d3 = _box(ax, dx, 3.45, dw, bh, "feed-forward")
    head = _box(ax, dx, 4.45, dw, 0.42, "linear, softmax: next token")
    _arrow(ax, [(dx, 0.48), (dx, d1[1])])
    for lower, upper in ((d1, d2), (d2, d3)):
        _arrow(ax, [(dx, lower[3]), (dx, upper[1])])
    _label(ax, dx + 0.12, (d1[3] + d2[1]) / 2, "$Q$", size=SMALL, ha="left")
    _arrow(ax, [(dx, d3[3]), (dx, head[1])])
    _frame(ax, d1[0] - 0.1, d1[1] - 0.12, d3[2] + 0.1, d3[3] + 0.12)
    _label(ax, d3[2] + 0.17, d3[3] + 0.1, "$\\times N$", ha="left", size=SMALL)
    mask_icon(6.3, 1.45, 4, 4, lambda i, j: j <= i and j < 3)
    mask_icon(6.3, 2.45, 4, 5, lambda i, j: j < 4)
    _label(ax, 7.12, 0.85, "grid rows: queries", size=SMALL, ha="right")
    _label(ax, 7.12, 0.6, "grid columns: keys", size=SMALL, ha="right")
    alt = (
        "Diagram: the encoder-decoder Transformer with the mask of each attention drawn as a small grid, rows "
        "for queries and columns for keys. The encoder reads the padded source tokens; its self-attention uses "
        "the source padding mask, which blocks the padded key columns; a feed-forward network follows, and the "
        "pair repeats N times. The encoder's output, the memory, gives the keys and values of the decoder's "
        "cross-attention. The decoder reads the target shifted right by one; its masked self-attention uses the "
        "causal mask AND the target padding mask, a lower triangle without the padded columns; its "
        "cross-attention takes its queries from the decoder and uses the source padding mask; a feed-forward "
        "network follows, N times, and a linear layer with a softmax gives the next token."
    )
    return _finish(fig, "encoder_decoder_masks", title, alt)



# Chapter 7


# An 8 x 8 "zero", drawn by hand in the style of the digits of chapter 7 (0 paper, 1 ink).
_ZERO = [
    [0, 0, 1, 1, 1, 1, 0, 0],
    [0, 1, 1, 0, 0, 1, 1, 0],
    [0, 1, 0, 0, 0, 0, 1, 0],
    [1, 1, 0, 0, 0, 0, 1, 1],
    [1, 1, 0, 0, 0, 0, 1, 1],
    [0, 1, 0, 0, 0, 0, 1, 0],
    [0, 1, 1, 0, 0, 1, 1, 0],
    [0, 0, 1, 1, 1, 1, 0, 0],
]


def vit_pipeline() -> Diagram:
    """The Vision Transformer: image -> patches -> linear -> [CLS; ...] + positions -> encoder -> head."""
    title = "The Vision Transformer, from pixels to a class"
    fig, ax = _canvas(7.2, 4.55, title)
    px, patch = 0.13, 2  # pixel size; a patch is 2 x 2 pixels, so an 8 x 8 image has 16 patches
    ink = [[0.8 * v for v in row] for row in _ZERO]
    top1 = 3.85
    image = _grid(ax, 0.4, top1, ink, px)
    for k in range(1, 8 // patch):  # the patch grid, drawn over the pixels
        ax.plot([image[0] + k * patch * px] * 2, [image[1], image[3]], color="#c0392b", lw=2.2)
        ax.plot([image[0], image[2]], [image[3] - k * patch * px] * 2, color="#c0392b", lw=2.2)
    _label(ax, (image[0] + image[2]) / 2, image[1] - 0.2, "image, $8 \\times 8$", size=SMALL)
    _label(ax, (image[0] + image[2]) / 2, image[1] - 0.45, "16 patches of $2 \\times 2$", size=SMALL)
    # The patches in reading order: 1, 2, 3, ..., 16.
    x0, step, mid = 1.85, 0.42, top1 - 0.5
    _arrow(ax, [(image[2] + 0.08, mid), (x0 - 0.1, mid)])
    for n, (r, c) in zip((1, 2, 3, 16), ((0, 0), (0, 1), (0, 2), (3, 3)), strict=True):
        x = x0 + step * (n - 1 if n < 16 else 4)
        cells = [row[2 * c : 2 * c + 2] for row in ink[2 * r : 2 * r + 2]]
        _grid(ax, x, mid + px, cells, px)
        _label(ax, x + px, mid - 0.3, f"{n}", size=SMALL)
    _label(ax, x0 + step * 3 + px, mid, "$\\dots$")
    _label(ax, x0 + 0.95, top1 + 0.05, "a sequence of 16 patches", size=SMALL)
    lin = _box(ax, 5.2, mid, 1.5, 0.62, "flatten, then\nlinear $E$", rounded=True)
    _arrow(ax, [(x0 + step * 4 + 2 * px + 0.08, mid), (lin[0], mid)])
    _label(ax, 5.32, 2.45, "one token per patch", size=SMALL, ha="left")
    # The sequence the encoder reads: [CLS] and the 16 patch tokens, each plus its position embedding.
    c, n_cells, top2 = 0.15, 4, 1.6
    _arrow(ax, [(5.2, lin[1]), (5.2, 2.1), (1.6, 2.1), (1.6, top2 + 0.08)])
    _cells(ax, 0.32, top2 - n_cells * c, n_cells, 1, "query", c)
    _label(ax, 0.4, top2 - n_cells * c - 0.22, "[CLS]", size=SMALL)
    xs = [0.95, 1.25, 1.55, 2.1]
    for n, x in zip((1, 2, 3, 16), xs, strict=True):
        _cells(ax, x, top2 - n_cells * c, n_cells, 1, "input", c)
        _label(ax, x + c / 2, top2 - n_cells * c - 0.22, f"{n}", size=SMALL)
    _label(ax, 1.9, top2 - n_cells * c / 2, "$\\dots$")
    _label(ax, 1.3, top2 - n_cells * c - 0.55, "$+$ a learned position", size=SMALL)
    _label(ax, 1.3, top2 - n_cells * c - 0.8, "embedding each", size=SMALL)
    enc = _box(ax, 3.45, top2 - n_cells * c / 2, 1.5, 0.9, "Transformer\nencoder,\n$N$ blocks", bold_edge=True)
    _arrow(ax, [(xs[-1] + c + 0.1, top2 - n_cells * c / 2), (enc[0], top2 - n_cells * c / 2)])
    out = _cells(ax, 4.55, top2 - n_cells * c, n_cells, 1, "query", c)
    _arrow(ax, [(enc[2], top2 - n_cells * c / 2), (out[0] - 0.03, top2 - n_cells * c / 2)])
    _label(ax, 4.62, top2 - n_cells * c - 0.22, "output", size=SMALL)
    _label(ax, 4.62, top2 - n_cells * c - 0.47, "at [CLS]", size=SMALL)
    head = _box(ax, 5.6, top2 - n_cells * c / 2, 1.05, 0.5, "MLP head", rounded=True)
    _arrow(ax, [(out[2] + 0.03, top2 - n_cells * c / 2), (head[0], top2 - n_cells * c / 2)])
    _arrow(ax, [(head[2], top2 - n_cells * c / 2), (6.45, top2 - n_cells * c / 2)])
    _label(ax, 6.52, top2 - n_cells * c / 2 + 0.13, "class", size=SMALL, ha="left")
    _label(ax, 6.52, top2 - n_cells * c / 2 - 0.15, "0 to 9", size=SMALL, ha="left")
    alt = (
        "Diagram: the Vision Transformer on an 8 by 8 image of a zero. A red grid cuts the image into 16 "
        "patches of 2 by 2 pixels, which are read in order, 1, 2, 3 up to 16, as a sequence. Each patch is "
        "flattened and multiplied by a learned matrix E, giving one token per patch. A learned [CLS] token is "
        "put in front of the 16 patch tokens, each token gets a learned position embedding added, and the 17 "
        "tokens go through a Transformer encoder of N blocks. The encoder's output at the [CLS] position goes "
        "through an MLP head, which gives the class, a digit from 0 to 9."
    )
    return _finish(fig, "vit_pipeline", title, alt)



# Chapter 8


def _outline(ax, box, width=2.6):
    """A thick frame around the cells in ``box`` (x0, y0, x1, y1): what is new, or what is being worked on."""
    x0, y0, x1, y1 = box
    ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color=INK, lw=width, solid_joinstyle="miter")


def kv_cache_steps() -> Diagram:
    """Greedy decoding with a KV cache: at step t one new key and value join the cache; the query reads them all."""
    title = "The KV cache, step by step"
    fig, ax = _canvas(7.2, 5.0, title)
    c, dims, gap = 0.15, 3, 0.06
    xq, xk, xv = 0.95, 2.0, 3.75
    _label(ax, xq + 0.2, 4.4, "query", size=SMALL)
    _label(ax, xk + 0.6, 4.4, "cached keys", size=SMALL)
    _label(ax, xv + 0.6, 4.4, "cached values", size=SMALL)
    _label(ax, 6.15, 4.4, "work at step $t$", size=SMALL)
    for t in range(1, 5):
        top = 4.15 - (t - 1) * 0.88
        mid = top - dims * c / 2
        _label(ax, 0.15, mid, f"$t = {t}$", ha="left")
        _cells(ax, xq, top - dims * c, dims, 1, "query", c)
        _label(ax, xq + c + 0.08, mid, f"$q_{t}$", size=SMALL, ha="left")
        for x, role in ((xk, "key"), (xv, "value")):
            for j in range(t):
                box = _cells(ax, x + j * (c + gap), top - dims * c, dims, 1, role, c)
            _outline(ax, box)
        _arrow(ax, [(xq + c + 0.42, mid), (xk - 0.08, mid)])
        upto = "_1" if t == 1 else f"_{{\\leq {t}}}"
        _label(ax, xk + t * (c + gap) + 0.05, mid, f"$k{upto}$", size=SMALL, ha="left")
        _label(ax, xv + t * (c + gap) + 0.05, mid, f"$v{upto}$", size=SMALL, ha="left")
        _label(ax, 6.15, mid + 0.12, "1 new key, value;", size=SMALL)
        _label(ax, 6.15, mid - 0.14, f"{t} score{'s' if t > 1 else ''}", size=SMALL)
    _label(ax, 3.6, 0.55, "thick frame: computed at this step; the others are read back from the cache", size=SMALL)
    _label(ax, 3.6, 0.25, "without the cache, every step would compute all $t$ keys and values again", size=SMALL)
    alt = (
        "Diagram: four steps of greedy decoding with a KV cache, one row per step t from 1 to 4. At each step "
        "the newest token gives one query vector q_t. The cache holds one key and one value per token so far, "
        "so at step t it has t keys and t values; only the newest of each, drawn with a thick frame, is computed "
        "at that step, and the others are read back. The query scores all t keys and averages all t values. A "
        "note says that without the cache every step would compute all t keys and values again."
    )
    return _finish(fig, "kv_cache_steps", title, alt)


def flash_tiling() -> Diagram:
    """FlashAttention's tiling over query blocks and key blocks, and what lives in slow and in fast memory."""
    title = "Tiled attention: blocks of queries and of keys"
    fig, ax = _canvas(7.2, 5.4, title)
    tiles, t = 4, 0.5  # a 4 x 4 grid of score tiles, each t wide
    # (a) The score matrix as tiles: only the tile being worked on ever exists, in fast memory.
    x0, top = 0.75, 4.3
    current = (2, 1)
    for i in range(tiles):
        for j in range(tiles):
            done = i < current[0] or (i == current[0] and j < current[1])
            skipped = j > i
            face = "#cfe2f3" if (i, j) == current else ("#bbbbbb" if done and not skipped else "white")
            ax.add_patch(Rectangle((x0 + j * t, top - (i + 1) * t), t, t, facecolor=face, edgecolor=INK,
                                   linewidth=0.9, hatch="xx" if skipped else None))
    _outline(ax, (x0 + current[1] * t, top - (current[0] + 1) * t, x0 + (current[1] + 1) * t,
                  top - current[0] * t))
    for k in range(tiles):
        _label(ax, x0 - 0.1, top - (k + 0.5) * t, f"$Q_{k + 1}$", size=SMALL, ha="right")
        _label(ax, x0 + (k + 0.5) * t, top + 0.15, f"$K_{k + 1}$", size=SMALL)
    _label(ax, x0 + tiles * t / 2, top + 0.5, "(a) the scores, tile by tile", fontweight="bold")
    legend = [("#bbbbbb", None, "done"), ("#cfe2f3", None, "now: $S_{32} = Q_3 K_2^\\top$"),
              ("white", "xx", "skipped if causal")]
    for k, (face, hatch, text) in enumerate(legend):
        y = 1.85 - 0.32 * k
        ax.add_patch(Rectangle((0.2, y - 0.09), 0.18, 0.18, facecolor=face, edgecolor=INK, linewidth=0.8,
                               hatch=hatch))
        _label(ax, 0.5, y, text, size=SMALL, ha="left")
    _label(ax, 0.2, 0.7, "outer loop: query blocks $i$", size=SMALL, ha="left")
    _label(ax, 0.2, 0.42, "inner loop: key blocks $j$", size=SMALL, ha="left")
    # (b) Slow memory holds Q, K, V and O whole; fast memory one block of each and the running statistics.
    _label(ax, 5.25, 4.8, "(b) slow memory (HBM)", fontweight="bold")
    for y0, y1, lw in ((3.05, 4.55, 1.2), (0.55, 2.05, 2.0)):
        ax.add_patch(FancyBboxPatch((3.45, y0), 3.6, y1 - y0, boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor="none", edgecolor=INK, linewidth=lw))
    _label(ax, 5.25, 0.3, "fast memory (SRAM, on chip)", fontweight="bold")
    strips = [("Q", "query", 3.8, "$Q_3$"), ("K", "key", 4.7, "$K_2$"), ("V", "value", 5.6, "$V_2$"),
              ("O", "value", 6.5, "$O_3$")]
    b = 0.25  # a block
    for name, role, x, block in strips:
        for k in range(tiles):
            _cells(ax, x, 4.2 - (k + 1) * b, 1, 1, role, b)
        _label(ax, x + b / 2, 4.36, f"${name}$", size=SMALL)
        row = 3 if name in "QO" else 2
        _outline(ax, (x, 4.2 - row * b, x + b, 4.2 - (row - 1) * b), width=2.2)
        _cells(ax, x, 1.4, 1, 1, role, b)
        _label(ax, x + b / 2, 1.82, block, size=SMALL)
        if name == "O":
            _arrow(ax, [(x + b / 2, 1.97), (x + b / 2, 3.18)])
        else:
            _arrow(ax, [(x + b / 2, 3.18), (x + b / 2, 1.97)])
    _cells(ax, 3.8, 0.75, 1, 1, "query", b)
    _label(ax, 4.12, 0.875, "$S_{32}$", size=SMALL, ha="left")
    _cells(ax, 4.95, 0.75, 2, 1, "input", b / 2)
    _label(ax, 5.15, 0.875, "$m, l$: row max, sum", size=SMALL, ha="left")
    _label(ax, 3.98, 2.6, "once", size=SMALL, ha="left")
    _label(ax, 5.225, 2.6, "at each $j$", size=SMALL)
    _label(ax, 6.57, 2.6, "written", size=SMALL, ha="right")
    _label(ax, 6.57, 2.33, "once", size=SMALL, ha="right")
    alt = (
        "Diagram: two panels on tiled attention as FlashAttention-2 orders it. (a) The score matrix as a 4 by 4 "
        "grid of tiles, query blocks Q_1 to Q_4 as rows and key blocks K_1 to K_4 as columns: the tiles done so "
        "far are grey, the current tile S_32 = Q_3 K_2 transposed is framed, and the tiles above the diagonal are "
        "crossed out, skipped under a causal mask; the outer loop runs over query blocks and the inner loop over "
        "key blocks. (b) Slow memory, the GPU's HBM, holds Q, K, V and the output O whole; fast on-chip memory, "
        "SRAM, holds one block of each: Q_3, K_2, V_2, the tile of scores S_32, the running maximum m and sum l "
        "of each row, and the output block O_3. Q_3 is read once, K_j and V_j are read at every step j, and O_3 "
        "is written to slow memory once, at the end."
    )
    return _finish(fig, "flash_tiling", title, alt)

# Chapter 9


def gpt_decoder_only() -> Diagram:
    """The encoder-decoder of chapter 6 beside a GPT: one sequence, one stack of blocks, a loss on the answer only."""
    title = "From encoder-decoder to decoder-only"
    fig, ax = _canvas(7.2, 4.6, title)
    # (a) Chapter 6: the source goes into an encoder, the decoder reads BOS + target and attends to the encoder.
    ex, dx, tx = 0.65, 1.3, 1.85
    _label(ax, dx, 3.95, "(a) encoder-decoder", fontweight="bold")
    _label(ax, ex, 0.6, "tue 03\nmar 1998")
    _label(ax, tx, 0.6, "<bos>\n1998-03-03")
    enc = _box(ax, ex, 1.5, 1.0, 0.4, "encoder")
    dec = _box(ax, dx, 2.85, 2.3, 0.62, "decoder\nwith cross-attention")
    _arrow(ax, [(ex, 0.84), (ex, enc[1])])
    _arrow(ax, [(ex, enc[3]), (ex, dec[1])])
    _label(ax, ex + 0.1, (enc[3] + dec[1]) / 2, "$K, V$", size=SMALL, ha="left")
    _arrow(ax, [(tx, 0.84), (tx, dec[1])])
    _arrow(ax, [(dx, dec[3]), (dx, 3.38)])
    _label(ax, dx, 3.5, "next token")
    _label(ax, dx, 0.2, "two sequences", size=SMALL)
    ax.plot([2.6, 2.6], [0.1, 4.1], color="#888888", lw=1.0, ls=(0, (2, 2)))
    # (b) A GPT: one sequence, BOS + source + "=" + answer; a prediction of the next token at every position.
    inputs = ["<bos>", "t", "u", "e", "...", "8", "=", "1", "9", "9", "8", "-", "0", "3", "-", "0", "3"]
    targets = inputs[1:4] + ["\u2423", "...", "="] + inputs[7:] + ["<eos>"]
    steps = [0.0, 0.4] + [0.2] * 4 + [0.3] + [0.2] * 9 + [0.4]  # wider where <bos> and <eos> need the room
    xs = [3.03 + sum(steps[: i + 1]) for i in range(len(inputs))]
    prompt = 6  # targets[:6] belong to the prompt: no loss there
    y_in, y_out = 0.62, 3.04
    block = _box(ax, 4.88, 1.5, 4.4, 0.9, "pre-LN decoder block $\\times N$\nmasked self-attention (causal mask) + MLP",
                 bold_edge=True)
    head = _box(ax, 4.88, 2.4, 4.4, 0.4, "LM head: the next token at every position")
    # The answer's targets sit in a bold frame, the prompt's in a crossed one: the loss sees only the former.
    ax.add_patch(FancyBboxPatch((2.86, y_out - 0.16), xs[prompt - 1] + 0.16 - 2.86, 0.32,
                                boxstyle="square,pad=0", facecolor="#f4f4f4", edgecolor="#888888", hatch="xx",
                                linewidth=1.0))
    ax.add_patch(FancyBboxPatch((xs[prompt] - 0.14, y_out - 0.16), xs[-1] + 0.38 - xs[prompt] + 0.14, 0.32,
                                boxstyle="square,pad=0", facecolor="white", edgecolor=INK, linewidth=2.0))
    for x, token, target in zip(xs, inputs, targets, strict=True):
        _label(ax, x, y_in, token)
        _label(ax, x, y_out, target, bbox=_WHITE)
        _arrow(ax, [(x, y_in + 0.16), (x, block[1])])
        _arrow(ax, [(x, block[3]), (x, head[1])])
        _arrow(ax, [(x, head[3]), (x, y_out - 0.16)])
    for x0, x1, text in ((2.86, xs[prompt - 1] + 0.16, "no loss: the prompt"),
                         (xs[prompt] - 0.14, xs[-1] + 0.38, "loss here: the answer")):
        ax.plot([x0, x0, x1, x1], [y_out + 0.22, y_out + 0.3, y_out + 0.3, y_out + 0.22], color=INK, lw=1.3)
        _label(ax, (x0 + x1) / 2, y_out + 0.47, text, size=SMALL)
    _label(ax, 4.88, 3.95, "(b) GPT: decoder-only", fontweight="bold")
    _label(ax, 4.88, 0.2, "one sequence: prompt, =, answer", size=SMALL)
    alt = (
        "Diagram: two panels on the date task. (a) The encoder-decoder of chapter 6: the source, tue 03 mar 1998, "
        "goes into an encoder; the decoder reads BOS and the target, 1998-03-03, takes the keys and values of its "
        "cross-attention from the encoder, and predicts the next token. (b) A GPT reads one sequence, BOS, the "
        "source, an equals sign and the answer, BOS t u e ... 8 = 1 9 9 8 - 0 3 - 0 3, through a stack of N "
        "pre-LN decoder blocks, each masked self-attention under a causal mask and an MLP, without any "
        "cross-attention. An LM head above predicts the next token at every position, so each prediction is the "
        "input shifted by one: t u e, a space, and so on up to the equals sign for the prompt, then 1 9 9 8 - 0 3 "
        "- 0 3 and EOS. The predictions in the prompt are cross-hatched under a bracket labelled no loss; the "
        "answer's predictions, from the one made at the equals sign to EOS, sit in a bold frame under a bracket "
        "labelled loss here, the only ones the loss is computed on."
    )
    return _finish(fig, "gpt_decoder_only", title, alt)


def grouped_query_attention() -> Diagram:
    """Four query heads with four, two or one key/value heads: multi-head, grouped-query and multi-query attention."""
    title = "Multi-head, grouped-query, multi-query attention"
    fig, ax = _canvas(7.2, 4.0, title)
    w, h, step = 0.42, 0.34, 0.52
    panels = [("multi-head", 4, "$\\times 1$"), ("grouped-query", 2, "$\\times 1/2$"),
              ("multi-query", 1, "$\\times 1/4$")]
    y_q, y_k = 2.8, 1.7
    for p, (name, kv, cache) in enumerate(panels):
        centre = 1.2 + 2.4 * p
        _label(ax, centre, 3.35, name, fontweight="bold")
        qx = [centre + (i - 1.5) * step for i in range(4)]
        group = 4 // kv
        kx = [sum(qx[j * group:(j + 1) * group]) / group for j in range(kv)]
        for i, x in enumerate(qx):
            q = _box(ax, x, y_q, w, h, f"$Q_{i + 1}$", role="query", rounded=False)
            ax.plot([x, kx[i // group]], [q[1], y_k + h / 2], color=INK, lw=1.4, zorder=0)
        for j, x in enumerate(kx):
            _box(ax, x, y_k, w, h, f"$K_{j + 1}$", role="key", rounded=False)
            _box(ax, x, y_k - h, w, h, f"$V_{j + 1}$", role="value", rounded=False)
        _label(ax, centre, 0.92, f"num_kv_heads = {kv}", size=SMALL)
        _label(ax, centre, 0.6, f"KV cache {cache}", size=SMALL)
        if p:
            ax.plot([centre - 1.2] * 2, [0.45, 3.5], color="#888888", lw=1.0, ls=(0, (2, 2)))
    _label(ax, 3.6, 0.2, "$H = 4$ query heads in each; a line joins a query head to the K, V it uses", size=SMALL)
    alt = (
        "Diagram: three panels, each with four query heads Q_1 to Q_4 in a row and, below them, the key and value "
        "heads, each a key K above its value V, with a line from every query head to the key/value head it "
        "attends with. Multi-head attention: four key/value heads, one for each query head, num_kv_heads = 4, and "
        "the KV cache at its full size. Grouped-query attention: two key/value heads, K_1 V_1 shared by Q_1 and "
        "Q_2, K_2 V_2 by Q_3 and Q_4, num_kv_heads = 2, and half the KV cache. Multi-query attention: one "
        "key/value head shared by all four query heads, num_kv_heads = 1, and a quarter of the KV cache. The "
        "query heads, H = 4, are the same in all three."
    )
    return _finish(fig, "grouped_query_attention", title, alt)


DIAGRAMS: dict[str, Callable[[], Diagram]] = {
    "three_steps": three_steps,
    "attention_layer": attention_layer,
    "sdpa_shapes": sdpa_shapes,
    "self_attention_steps": self_attention_steps,
    "qkv_sources": qkv_sources,
    "context_vectors": context_vectors,
    "bahdanau_luong_step": bahdanau_luong_step,
    "attention_masks": attention_masks,
    "multihead_reshape": multihead_reshape,
    "post_pre_ln": post_pre_ln,
    "encoder_decoder_masks": encoder_decoder_masks,
    "vit_pipeline": vit_pipeline,
    "kv_cache_steps": kv_cache_steps,
    "flash_tiling": flash_tiling,
    "gpt_decoder_only": gpt_decoder_only,
    "grouped_query_attention": grouped_query_attention,
}
"""Every diagram, by name, in the order the chapters show them."""
