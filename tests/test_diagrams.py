"""The schematic diagrams (attnlib.diagrams): what each must show, and the rules that keep them readable."""

from __future__ import annotations

import io
import re

import matplotlib.image
import numpy as np
import pytest

from attnlib import diagrams

# The labels each diagram must carry: the parts of the mechanism a reader has to find in it.
REQUIRED = {
    "three_steps": ["query", "keys", "values", "1. score", "e_i = q", "2. softmax", "weights", "3. weighted sum",
                    "output"],
    "attention_layer": ["query $q$", "inputs $X$", "f_{att}", "scores $e$", "softmax", "weights $a$", "output $y$"],
    "sdpa_shapes": ["$Q$", "$K^\\top$", "scores $S$", "weights $A$", "$V$", "output", "$L_q$", "$L_k$", "$d_k$",
                    "$d_v$", "\\sqrt{d_k}", "softmax", "batch of $B$"],
    "self_attention_steps": ['"Thinking"', '"Machines"', "W_Q", "W_K", "W_V", "$q_1$", "$k_2$", "$v_2$", "softmax",
                             "$z_1 = a_{11}"],
    "qkv_sources": ["self-attention", "cross-attention", "$Q = XW_Q$", "$Q = YW_Q$", "$K = XW_K$", "$V = XW_V$",
                    "decoder", "encoder", "one row per query"],
    "context_vectors": ["without attention", "$c$", "$c_t = \\sum_j a_{tj} h_j$", "$h_1$", "$h_5$", "$s_1$", "$s_4$",
                        "$c_3$", "query $s_2$"],
    "bahdanau_luong_step": ["Bahdanau", "Luong", "score with $s_{t-1}$", "score with $s_t$",
                            "\\tanh(W s_{t-1} + U h_j)", "s_t^\\top W_a h_j", "GRU}([y_{t-1}; c_t]",
                            "GRU}(y_{t-1}", "W_c [c_t; s_t]"],
    "attention_masks": ["causal", "padding", "causal AND padding", "<pad>", "green", "scores $S$", "softmax",
                        "weights $A$", "-\\infty", "0 where blocked", "rows sum to 1", "may attend", "blocked"],
    "multihead_reshape": ["input $X$", "$W_Q$", "$(B, L, d)$", "$(B, H, L, d_k)$", "$Q_1$", "$Q_4$", "split",
                          "attention in each head", "$O_1$", "concat", "$W_O$", "output", "$K$ and $V$"],
    "post_pre_ln": ["post-LN", "pre-LN", "\\mathrm{LN}(x_l + F(x_l))", "x_l + F(\\mathrm{LN}(x_l))", "LayerNorm",
                    "sublayer $F$", "residual", "$x_{l+1}$"],
    "encoder_decoder_masks": ["encoder", "decoder", "source padding", "causal AND target padding",
                              "cross-attention", "memory", "$K, V$", "$Q$", "shifted right", "next token",
                              "\\times N"],
    "vit_pipeline": ["image", "16 patches", "linear $E$", "[CLS]", "position", "Transformer\nencoder",
                     "MLP head", "class", "output"],
    "kv_cache_steps": ["query", "cached keys", "cached values", "$t = 1$", "$t = 4$", "$q_4$", "4 scores",
                       "thick frame", "without the cache"],
    "flash_tiling": ["tile by tile", "$Q_1$", "$K_4$", "skipped if causal", "outer loop: query blocks",
                     "inner loop: key blocks", "slow memory (HBM)", "fast memory (SRAM", "$S_{32}$",
                     "row max, sum", "written", "at each $j$"],
    "gpt_decoder_only": ["encoder-decoder", "encoder", "with cross-attention", "tue 03\nmar 1998",
                         "<bos>\n1998-03-03", "$K, V$", "decoder-only", "<bos>", "<eos>", "...",
                         "pre-LN decoder block $\\times N$", "masked self-attention (causal mask) + MLP",
                         "LM head", "next token", "no loss", "loss here"],
    "grouped_query_attention": ["multi-head", "grouped-query", "multi-query", "$Q_1$", "$Q_4$", "$K_1$", "$V_1$",
                                "$K_4$", "$V_4$", "num_kv_heads = 4", "num_kv_heads = 2", "num_kv_heads = 1",
                                "KV cache $\\times 1$", "KV cache $\\times 1/2$", "KV cache $\\times 1/4$",
                                "$H = 4$ query heads"],
}


@pytest.fixture(scope="module", params=sorted(diagrams.DIAGRAMS), ids=str)
def drawn(request) -> diagrams.Diagram:
    return diagrams.DIAGRAMS[request.param]()


def test_every_diagram_is_listed_and_public():
    public = {name for name in diagrams.__all__ if callable(getattr(diagrams, name)) and name[0].islower()}
    assert public == set(diagrams.DIAGRAMS) == set(REQUIRED)


def test_it_carries_the_labels_that_explain_it(drawn):
    text = drawn.text()
    missing = [label for label in REQUIRED[drawn.name] if label not in text]
    assert missing == [], f"{drawn.name} lacks {missing}"
    assert drawn.title and drawn.labels[0] == drawn.title


def test_no_label_is_small_overlapping_or_cut_off(drawn):
    assert min(drawn.font_sizes) >= diagrams.MIN_FONT_PT
    assert drawn.overlaps == (), f"{drawn.name}: labels that collide or leave the canvas: {drawn.overlaps}"


def test_alt_text_says_it_is_a_diagram_and_what_it_shows(drawn):
    assert drawn.alt.startswith("Diagram: ") and drawn.alt.endswith(".")
    assert len(drawn.alt) > 150, "an alt text should describe the whole picture"
    assert repr(drawn) == f"Diagram: {drawn.title}"


def test_png_is_high_dpi_shown_at_half_size_and_the_same_on_every_run(drawn):
    image = matplotlib.image.imread(io.BytesIO(drawn.png), format="png")
    assert image.shape[:2] == (drawn.height_px, drawn.width_px)
    assert drawn.width_px <= diagrams.MAX_WIDTH_IN * diagrams.DPI
    data, metadata = drawn._repr_png_()
    assert data == drawn.png and metadata == {"width": drawn.width_px // 2}
    again = diagrams.DIAGRAMS[drawn.name]()
    assert again.png == drawn.png, "a diagram must draw the same bytes on every run (nbval and git diffs rely on it)"


def test_it_reads_in_greyscale(drawn):
    # Most of the picture is white paper and black ink; every fill is light, so black text stays readable on it.
    image = matplotlib.image.imread(io.BytesIO(drawn.png), format="png")[..., :3]
    grey = image @ np.array([0.299, 0.587, 0.114])
    assert grey.mean() > 0.8
    ink = grey < 0.35
    assert 0.005 < ink.mean() < 0.25, "there should be dark lines and text, and not too much of them"


def test_overlap_check_catches_colliding_labels():
    fig, ax = diagrams._canvas(3.0, 2.0, "Test")
    diagrams._label(ax, 1.0, 1.0, "one label")
    diagrams._label(ax, 1.1, 1.0, "another label")
    diagrams._label(ax, 2.95, 0.5, "off the edge")
    diagrams._box(ax, 1.0, 1.6, 0.5, 0.3, "far too long for its box")
    diagrams._cells(ax, 0.2, 0.2, 1, 3, "key")
    diagrams._label(ax, 0.4, 0.3, "on the cells")
    drawn = diagrams._finish(fig, "test", "Test", "Diagram: a test of the checks.")
    assert ("one label", "another label") in drawn.overlaps
    assert ("off the edge", "<edge>") in drawn.overlaps
    assert ("far too long for its box", "<box edge>") in drawn.overlaps
    assert ("on the cells", "<cells>") in drawn.overlaps


def test_too_wide_or_undescribed_diagrams_are_refused():
    with pytest.raises(ValueError, match="at most 7.2 units wide"):
        diagrams._canvas(9.0, 2.0, "Too wide")
    fig, _ = diagrams._canvas(3.0, 2.0, "Test")
    with pytest.raises(ValueError, match="must begin with 'Diagram: '"):
        diagrams._finish(fig, "test", "Test", "A picture.")
    assert re.match(r"Diagram: ", diagrams.three_steps().alt)
