"""The attention explorer's HTML: well formed, self-contained, carrying exactly the weights it was given.

What the explorer does in a browser (clicks, keys, menus, the static picture without scripts) is checked by the
browser check, tests/site/test_explorers.py.
"""

from __future__ import annotations

import base64
import html.parser
import re
import struct

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from explorer_html import payloads, view  # noqa: E402

from attnlib.plot import EXPLORER_DIGITS, EXPLORER_MAX_BYTES, AttentionExplorer, attention_explorer  # noqa: E402
from attnlib.vit import attention_rollout  # noqa: E402

TOLERANCE = 0.5 / 10**EXPLORER_DIGITS + 1e-12  # half a unit of the last decimal shown


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _weights(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g) * 2, dim=-1)


VOID = {"img", "br", "meta", "input", "hr", "link", "source"}


class _StrictParser(html.parser.HTMLParser):
    """Fails on a closing tag that does not match the open one; records the elements and their attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = [a for a, _ in attrs]
        if len(names) != len(set(names)):
            self.errors.append(f"repeated attribute in <{tag}>")
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _parse(markup: str) -> _StrictParser:
    parser = _StrictParser()
    parser.feed(markup)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    return parser


def test_html_is_well_formed_with_one_root_that_keeps_the_contract():
    e = attention_explorer(_weights(2, 5, 5), list("abcde"), title="toy", query=2)
    parser = _parse(e.html)
    tag, attrs = parser.elements[0]
    assert tag == "div" and "attention-explorer" in attrs["class"].split()
    assert attrs["data-active-query"] == "2"
    # MathJax must leave the tokens alone
    assert "tex2jax_ignore" in attrs["class"] and "mathjax_ignore" in attrs["class"]
    assert [t for t, _ in parser.elements].count("div") == 1  # the rest is built by the script
    scripts = [a for t, a in parser.elements if t == "script"]
    assert scripts == [{"type": "application/json", "class": "ae-data"}, {}]
    assert e.html.endswith("</div>")


@pytest.mark.parametrize(
    "weights, layers, heads",
    [
        (_weights(4, 6), 1, 1),
        (_weights(3, 4, 6), 1, 3),
        ([_weights(2, 4, 6, seed=s) for s in range(3)], 3, 2),
        (_weights(3, 4, 6).numpy(), 1, 3),
    ],
    ids=["(Lq, Lk)", "(H, Lq, Lk)", "layers", "ndarray"],
)
def test_the_weights_it_embeds_are_the_weights_given(weights, layers, heads):
    e = attention_explorer(weights, list("abcd"), list("uvwxyz"))
    (data,) = payloads(e.html)
    assert len(data["w"]) == layers and len(data["w"][0]) == heads
    given = np.stack([np.asarray(w) for w in weights]) if isinstance(weights, list) else np.asarray(weights)
    given = given.reshape(layers, heads, 4, 6)
    for layer in range(layers):
        for head in range(heads):
            np.testing.assert_allclose(view(data, layer, head), given[layer, head], atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(view(data, layer, None), given[layer].mean(0), atol=TOLERANCE, rtol=0)
    assert data["queries"] == list("abcd") and data["keys"] == list("uvwxyz")
    np.testing.assert_array_equal(e.weights, given)


def test_rollout_and_image_mode():
    layers = [_weights(1, 2, 5, 5, seed=s) for s in range(2)]  # (B, H, L, L) with one CLS and 2x2 patches
    rollout = attention_rollout(layers)[0]
    image = torch.rand(4, 6)
    e = attention_explorer([w[0] for w in layers], image=image, patch_grid=(2, 2), rollout=rollout, layer="rollout")
    (data,) = payloads(e.html)
    np.testing.assert_allclose(view(data, 2, None), rollout.numpy(), atol=TOLERANCE, rtol=0)
    assert data["start"] == {"layer": 2, "head": 0, "query": 0}
    assert data["queries"] == ["CLS", "patch (1, 1)", "patch (1, 2)", "patch (2, 1)", "patch (2, 2)"]
    assert data["grid"] == [2, 2]
    png = base64.b64decode(data["image"].removeprefix("data:image/png;base64,"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (6, 4)  # one pixel per pixel: width, height
    assert "rollout" in e.alt and "2x2 patches" in e.alt


def test_nothing_is_fetched_and_nothing_needs_a_loader():
    e = attention_explorer(_weights(2, 3, 3), ["http://x", "//y", "z"], title="see https://example.org")
    markup = e.html
    # every src is inline data; no stylesheet or script is pulled in from anywhere
    parser = _parse(markup)
    for tag, attrs in parser.elements:
        for name in ("src", "href"):
            if name in attrs:
                assert attrs[name].startswith("data:image/png;base64,"), (tag, name, attrs[name][:40])
    code = re.sub(r'<script type="application/json" class="ae-data">.*?</script>', "", markup, flags=re.DOTALL)
    code = code.replace(e.alt.replace('"', "&quot;"), "")  # the alt text quotes the title
    code = re.sub(r'aria-label="[^"]*"', "", code)
    for banned in ("http:", "https:", "url(", "@import", "require(", "import(", "fetch(", "XMLHttpRequest", "//cdn"):
        assert banned not in code, banned


def test_labels_cannot_break_out_of_the_page():
    nasty = ["</script><script>alert(1)</script>", 'a" onclick="x', "<b>&amp;"]
    e = attention_explorer(_weights(3, 3), nasty, title="<i>title</i>")
    (data,) = payloads(e.html)
    assert data["queries"] == nasty and data["title"] == "<i>title</i>"
    assert e.html.count("</script>") == 2
    assert "<b>" not in e.html and "<i>" not in e.html
    _parse(e.html)


def test_same_input_same_bytes_and_a_mime_bundle():
    w = _weights(2, 4, 4)
    a = attention_explorer(w, list("abcd"))
    b = attention_explorer(w.numpy().copy(), list("abcd"))
    assert a.html == b.html and a.png == b.png
    data, metadata = a._repr_mimebundle_()
    assert set(data) == {"text/html", "image/png", "text/plain"}
    assert base64.b64decode(data["image/png"]) == a.png and a.png[:4] == b"\x89PNG"
    assert metadata["image/png"]["alt"] == a.alt
    summary = "AttentionExplorer('Attention weights': 1 layer x 2 heads, 4 queries x 4 keys)"
    assert data["text/plain"] == repr(a) == summary
    # the static picture inside the HTML is the same PNG
    assert base64.b64encode(a.png).decode() in a.html
    assert isinstance(a, AttentionExplorer)


def test_course_sized_explorers_fit_the_budget():
    # the largest the chapters show: a date Transformer's 2 layers x 4 heads over 24 characters, and a ViT
    date = attention_explorer([_weights(4, 24, 24, seed=s) for s in range(2)], [f"c{i}" for i in range(24)])
    vit = attention_explorer(
        [_weights(4, 17, 17, seed=s) for s in range(3)], image=torch.rand(8, 8), patch_grid=(4, 4),
        rollout=_weights(17, 17),
    )
    for e in (date, vit):
        assert len(e.html.encode()) <= EXPLORER_MAX_BYTES


def test_the_static_picture_shows_the_starting_view():
    w = torch.zeros(2, 3, 3)
    w[1, :, 2] = 1.0  # head 2: every query on the last key
    w[0] = 1 / 3
    e = attention_explorer(w, list("abc"), head=1)
    assert "head 2" in e.alt and e.alt.endswith("explorer.")
    assert attention_explorer(w, list("abc"), head=0).png != e.png


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: attention_explorer([[0.5, 0.5]]), TypeError, "weights[0] must be a torch.Tensor"),
        (lambda: attention_explorer("weights"), TypeError, "weights must be a torch.Tensor"),
        (lambda: attention_explorer(torch.rand(1, 2, 3, 3)), ValueError, "got shape (1, 2, 3, 3)"),
        (lambda: attention_explorer([]), ValueError, "empty list"),
        (lambda: attention_explorer([_weights(2, 3, 3), _weights(1, 3, 3)]), ValueError, "weights[1] is (1, 3, 3)"),
        (lambda: attention_explorer(torch.full((2, 2), float("nan"))), ValueError, "finite"),
        (lambda: attention_explorer(torch.tensor([[1.5, -0.5]])), ValueError, "in [0, 1]"),
        (lambda: attention_explorer(_weights(2, 3), ["a", "b", "c"]), ValueError, "queries must have Lq=2"),
        (lambda: attention_explorer(_weights(2, 3), ["a", "b"]), ValueError, "keys is required"),
        (lambda: attention_explorer(_weights(2, 2), "ab"), TypeError, "not a str"),
        (lambda: attention_explorer(_weights(5, 5), image=torch.rand(4, 4)), ValueError, "image and patch_grid"),
        (lambda: attention_explorer(_weights(5, 5), image=torch.rand(4, 4), patch_grid=(3, 3)), ValueError, "L >= 9"),
        (lambda: attention_explorer(_weights(5, 5), image=torch.rand(3, 4), patch_grid=(2, 2)), ValueError,
         "does not split"),
        (lambda: attention_explorer(_weights(5, 5), image=torch.rand(4, 4) + 1, patch_grid=(2, 2)), ValueError,
         "image must hold"),
        (lambda: attention_explorer(_weights(5, 5), image=torch.rand(4, 4), patch_grid=(2, 0)), ValueError,
         "two positive ints"),
        (lambda: attention_explorer(_weights(3, 3), rollout=_weights(2, 3)), ValueError, "rollout must have shape"),
        (lambda: attention_explorer(_weights(3, 3), layer="rollout"), ValueError, "needs a rollout"),
        (lambda: attention_explorer(_weights(3, 3), layer=1), ValueError, "layer must be an int in [0, 1)"),
        (lambda: attention_explorer(_weights(2, 3, 3), head=2), ValueError, "head must be an int in [0, 2)"),
        (lambda: attention_explorer(_weights(3, 3), query=-1), ValueError, "query must be an int in [0, 3)"),
        (lambda: attention_explorer(_weights(2, 3, 3), head_names=["one"]), ValueError, "head_names must have H=2"),
        (lambda: attention_explorer([_weights(8, 80, 80, seed=s) for s in range(4)]), ValueError, "over the limit"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)


def test_the_script_builds_every_explorer_it_finds_once():
    # One script per explorer, each building the explorers not built yet: two on a page are both built, once.
    from attnlib.plot import _explorer_asset

    script = _explorer_asset("explorer.js")
    assert 'querySelectorAll("div.attention-explorer:not([data-ready])")' in script
    assert 'setAttribute("data-ready"' in script
    css = _explorer_asset("explorer.css")
    # every rule is scoped to the explorer, so the page around it is untouched
    selectors = [s.strip() for s in re.findall(r"(?:^|})\s*([^{}]+)\{", re.sub(r"/\*.*?\*/", "", css, flags=re.S))]
    assert selectors and all(part.strip().startswith(".attention-explorer") for s in selectors for part in s.split(","))


def test_a_built_wheel_carries_the_explorer_assets(tmp_path):
    """Colab installs attnlib from git as a wheel; without package-data the explorer would have no script."""
    pytest.importorskip("setuptools")
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy(root / name, source / name)
    shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(wheels)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("attnlib-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in sorted((root / "src" / "attnlib" / "assets").iterdir()):
        assert f"attnlib/assets/{asset.name}" in names, f"the wheel lacks attnlib/assets/{asset.name}"


def _sanitized(text: str) -> str:
    """``text`` after the replacements nbval makes (tests/nbval_sanitize.cfg), in the file's order."""
    from pathlib import Path

    from nbval.plugin import get_sanitize_patterns

    config = (Path(__file__).parent / "nbval_sanitize.cfg").read_text()
    for regex, replace in get_sanitize_patterns(config):
        text = re.sub(regex, replace, text)
    return text


def test_nbval_compares_an_explorer_but_not_its_last_digits():
    """Stored on the CPU, re-run on a GPU: the weights differ in the last digits, everything else must not."""
    w = _weights(2, 4, 4)
    nudged = (w + 1e-3 * torch.rand(2, 4, 4)).clamp(0, 1)
    a, b = attention_explorer(w, list("abcd")), attention_explorer(nudged, list("abcd"))
    assert a.html != b.html
    assert _sanitized(a.html) == _sanitized(b.html)
    assert "\"w\":WEIGHTS" in _sanitized(a.html) and "base64,PNG" in _sanitized(a.html)
    # a change a reader would see is still caught: labels, title, the number of heads
    for other in (
        attention_explorer(w, list("abce")),
        attention_explorer(w, list("abcd"), title="other"),
        attention_explorer(w[:1], list("abcd")),
    ):
        assert _sanitized(other.html) != _sanitized(a.html)
