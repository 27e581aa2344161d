"""Draw the course's chapter map (book/images/chapter_map.svg), the figure on the home page.

Run it after a chapter is added or renamed: `.venv/bin/python scripts/make_chapter_map.py`. The SVG is committed;
tests/test_book_pages.py fails when it differs from what this script draws, or names a chapter that is not in _toc.yml.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "images" / "chapter_map.svg"

# number: (title, what it adds, column, row). Rows run top to bottom in reading order.
CHAPTERS = {
    1: ("Attention intuition", "a weighted average", 1, 0),
    2: ("Queries, keys and values", "scores, softmax, scale", 1, 1),
    3: ("Self- and cross-attention", "order and position", 1, 2),
    4: ("Seq2seq with Bahdanau attention", "attention in an RNN", 0, 3),
    5: ("Masked and multi-head attention", "masks and heads", 2, 3),
    6: ("The Transformer", "the whole block", 1, 4),
    7: ("Vision Transformer", "images as patches", 0, 5),
    8: ("Efficient attention", "memory and speed", 2, 5),
    9: ("GPT from the parts", "a decoder-only model", 1, 6),
}
# What each chapter builds on (arrows from the earlier chapter to the later one).
EDGES = [(1, 2), (2, 3), (3, 4), (3, 5), (4, 6), (5, 6), (6, 7), (6, 8), (6, 9), (8, 9)]
# The parts, as light fills under black text; the legend names the chapters of each, so colour is never the only cue.
PARTS = {
    "the mechanism": ("#d6e6f5", (1, 2, 3)),
    "sequence models": ("#fde0c2", (4, 5, 6)),
    "vision": ("#cfe8cb", (7,)),
    "efficiency": ("#e3dcef", (8,)),
    "language models": ("#f6d5d5", (9,)),
}


def _colour(number: int) -> str:
    return next(colour for colour, members in PARTS.values() if number in members)


def draw() -> str:
    """The map as SVG text, the same bytes on every run."""
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "chapter-map", "font.family": "DejaVu Sans"})
    fig, ax = plt.subplots(figsize=(7.5, 7.4))
    ax.set_xlim(-0.75, 2.75)
    ax.set_ylim(-6.4, 0.4)
    ax.axis("off")
    boxes = {}
    for number, (title, adds, col, row) in CHAPTERS.items():
        # Each box is the text's own frame, so it always fits the words.
        boxes[number] = ax.text(
            col, -row, f"{number}. {title}\n({adds})", ha="center", va="center", fontsize=10, linespacing=1.35,
            bbox={"boxstyle": "round,pad=0.6", "facecolor": _colour(number), "edgecolor": "#333333", "linewidth": 1.2},
        )
    fig.canvas.draw()  # the boxes' sizes are known only once drawn
    for a, b in EDGES:
        ax.annotate(
            "", xy=(0.5, 1), xycoords=boxes[b].get_bbox_patch(), xytext=(0.5, 0), textcoords=boxes[a].get_bbox_patch(),
            arrowprops={"arrowstyle": "-|>", "color": "#333333", "linewidth": 1.3, "mutation_scale": 14,
                        "shrinkA": 4, "shrinkB": 4},
        )
    handles = [
        Patch(facecolor=colour, edgecolor="#333333", label=f"{label} (chapter{'s' if len(members) > 1 else ''} "
              + ", ".join(map(str, members)) + ")")
        for label, (colour, members) in PARTS.items()
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=10)
    ax.set_title("Chapter map: an arrow means the later chapter\nbuilds on the earlier one", fontsize=12)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buffer.getvalue()


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(draw(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
