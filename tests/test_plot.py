"""The shared attention heatmap: labels, colour bar, title, and clear errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnlib.plot import attention_heatmap, log_axes  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_heatmap_has_labels_colorbar_and_title():
    w = torch.softmax(torch.randn(2, 3), dim=-1)
    ax = attention_heatmap(w, ["I", "am"], ["je", "suis", "."], title="Toy map", xlabel="source", ylabel="target")
    assert ax.get_title() == "Toy map"
    assert ax.get_xlabel() == "source" and ax.get_ylabel() == "target"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["I", "am"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["je", "suis", "."]
    image = ax.get_images()[0]
    np.testing.assert_allclose(image.get_array(), w.numpy(), rtol=1e-6)
    colorbars = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "weight"


def test_heatmap_rotates_long_key_labels():
    ax = attention_heatmap(torch.rand(2, 2), key_labels=["tiny", "enormously long"])
    assert ax.get_xticklabels()[0].get_rotation() == 90
    ax = attention_heatmap(torch.rand(2, 2), key_labels=["a", "History\nof AI"])
    assert ax.get_xticklabels()[0].get_rotation() == 0
    ax = attention_heatmap(torch.rand(2, 2), key_labels=["tiny", "enormous"], xtick_rotation=45)
    assert ax.get_xticklabels()[0].get_rotation() == 45


def test_heatmap_annotates_and_draws_on_given_axes():
    fig, axes = plt.subplots(1, 2)
    w = np.array([[0.25, 0.75], [1.0, 0.0]])
    ax = attention_heatmap(w, ax=axes[1], annotate=True)
    assert ax is axes[1]
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.25", "0.75", "1.00"]


def test_heatmap_text_colour_follows_the_colour_scale():
    # With vmax=1, a 0.3 cell is dark (viridis), so its number must be white even if 0.3 is near the data's maximum.
    ax = attention_heatmap(np.array([[0.3, 0.35]]), annotate=True, vmax=1.0)
    assert [t.get_color() for t in ax.texts] == ["white", "white"]
    ax = attention_heatmap(np.array([[0.9, 0.1]]), annotate=True, vmax=1.0)
    assert [t.get_color() for t in ax.texts] == ["black", "white"]


def test_heatmap_accepts_gradients_and_other_dtypes():
    w = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    ax = attention_heatmap(w * 1)  # a float64 tensor that needs grad: drawn without a detach() by the caller
    np.testing.assert_allclose(ax.get_images()[0].get_array(), w.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("weights", "kwargs", "error", "pattern"),
    [
        (torch.rand(2, 3, 4), {}, ValueError, r"two-dimensional \(Lq, Lk\), got shape \(2, 3, 4\)"),
        ([[0.5, 0.5]], {}, TypeError, "torch.Tensor or numpy.ndarray, got list"),
        (torch.rand(2, 3), dict(query_labels=["a"]), ValueError, "query_labels must have Lq=2 entries.*got 1"),
        (torch.rand(2, 3), dict(key_labels=list("abcd")), ValueError, "key_labels must have Lk=3 entries.*got 4"),
    ],
)
def test_heatmap_rejects(weights, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        attention_heatmap(weights, **kwargs)


@pytest.mark.parametrize(
    ("ys", "at_least"),
    [([0.4, 1.3, 6.0, 30.0, 140.0], 6), ([33.0, 130.0, 520.0], 3), ([2.1, 2.6, 3.2], 3)],
)
def test_log_axes_labels_are_plain_numbers_inside_the_data(ys, at_least):
    fig, ax = plt.subplots()
    lengths = [256, 512, 1024, 2048, 4096][: len(ys)]
    ax.plot(lengths, ys)
    log_axes(ax, lengths)
    fig.canvas.draw()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(n) for n in lengths]  # not 2^8
    ticks = ax.get_yticks()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) >= at_least and all(min(ys) / 1.06 <= t <= max(ys) * 1.06 for t in ticks)
    assert all(label and "^" not in label and "$" not in label for label in labels)
    assert [float(label) for label in labels] == pytest.approx(list(ticks), rel=1e-2)
    plt.close(fig)


def test_log_axes_rejects_bad_arguments():
    fig, ax = plt.subplots()
    ax.plot([1, 2], [0.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        log_axes(ax, [])
    with pytest.raises(ValueError, match="'log10' or 'linear'"):
        log_axes(ax, [1, 2], y="log2")
    with pytest.raises(ValueError, match="positive data"):
        log_axes(ax, [1, 2])
    plt.close(fig)

