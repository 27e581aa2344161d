"""The attention explorers on the built site, clicked in a real browser.

For every explorer a chapter shows, the weights the page displays after a click (``data-weight`` on each key) are
checked against the weights the notebook computed, as stored in its output: for the last layer and head, the mean of
the heads and the rollout. Keyboard selection, a narrow window, a page opened from disk, and a browser with
JavaScript off (which must still show the static picture) are checked too. Nothing may leave 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from sitecheck import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from explorer_html import explorer_outputs, payloads, view  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# page -> the data of each explorer its notebook stores, in order
EXPLORERS = {
    f"notebooks/{path.stem}": [payloads(html)[0] for _, html in explorer_outputs(json.loads(path.read_text()))]
    for path in NOTEBOOKS
}
EXPLORERS = {page: found for page, found in EXPLORERS.items() if found}
WEIGHT = re.compile(r"^\d\.\d{4}$")
TOLERANCE = 0.5e-4 + 1e-9

SHOWN = """root => Array.from(root.querySelectorAll('[data-key-index]'))
    .sort((a, b) => Number(a.dataset.keyIndex) - Number(b.dataset.keyIndex))
    .map(c => c.getAttribute('data-weight'))"""


def _page_id(page: str) -> str:
    return Path(page).name


def test_the_chapters_show_explorers():
    assert len(EXPLORERS) >= 4 and sum(len(v) for v in EXPLORERS.values()) >= 5, sorted(EXPLORERS)


def _check_view(root, data, layer, head, query):
    """Pick the view and the query in the page; the weights shown must be the notebook's."""
    n_heads = len(data["w"][0])
    menu = root.locator("select.ae-layer")
    if menu.is_visible():
        menu.select_option(str(layer))
    if head is not None and n_heads > 1:
        root.locator("select.ae-head").select_option(str(n_heads if head == "mean" else head))
    root.locator(f'[data-query-index="{query}"]').click()
    assert root.get_attribute("data-active-query") == str(query)
    shown = root.evaluate(SHOWN)
    assert len(shown) == len(data["keys"]) and all(WEIGHT.match(w) for w in shown), shown
    expected = view(data, layer, None if head == "mean" else head)[query]
    wrong = [(k, s, e) for k, (s, e) in enumerate(zip(shown, expected, strict=True)) if abs(float(s) - e) > TOLERANCE]
    assert wrong == [], f"layer {layer}, head {head}, query {query}: (key, shown, computed) {wrong}"


@pytest.mark.parametrize("page", sorted(EXPLORERS), ids=_page_id)
def test_clicking_a_query_shows_the_weights_the_notebook_computed(page, visit, screenshots):
    v = visit(f"{page}.html")
    roots = v.page.locator("div.attention-explorer")
    stored = EXPLORERS[page]
    assert roots.count() == len(stored)
    for n, data in enumerate(stored):
        root = roots.nth(n)
        v.page.mouse.move(0, 0)  # hovering a query selects it: keep the pointer off the explorer while it scrolls in
        root.scroll_into_view_if_needed()
        assert root.get_attribute("data-ready") == "", "the explorer was not built"
        assert root.locator(".ae-fallback").is_hidden() and root.locator(".ae-app").is_visible()
        n_layers, n_heads, nq = len(data["w"]), len(data["w"][0]), len(data["queries"])
        # the view it opens on, then the last layer and head, then the mean of the heads, then the rollout
        start = data["start"]
        assert root.get_attribute("data-active-query") == str(start["query"])
        opened = root.evaluate(SHOWN)
        expected = view(data, start["layer"], start["head"] if start["layer"] < n_layers else None)[start["query"]]
        assert [float(w) for w in opened] == pytest.approx(expected, abs=TOLERANCE)
        _check_view(root, data, n_layers - 1, n_heads - 1, nq - 1)
        if n_heads > 1:
            _check_view(root, data, n_layers - 1, "mean", nq // 2)
        if data["rollout"] is not None:
            _check_view(root, data, n_layers, None, 0)
        # the keyboard: Tab lands on a query, Enter selects it
        target = root.locator('[data-query-index="1"]')
        target.focus()
        target.press("Enter")
        assert root.get_attribute("data-active-query") == "1"
        root.screenshot(path=str(screenshots / f"explorer-{_page_id(page)}-{n + 1}.png"))
    assert v.errors == [], f"JavaScript errors on {page}: {v.errors}"
    assert v.outside == [], f"{page} asked for something outside the site: {v.outside}"


@pytest.mark.parametrize("page", sorted(EXPLORERS), ids=_page_id)
def test_explorers_fit_a_narrow_window(page, visit, screenshots):
    v = visit(f"{page}.html", width=390)
    roots = v.page.locator("div.attention-explorer")
    for n in range(roots.count()):
        root = roots.nth(n)
        root.scroll_into_view_if_needed()
        box = root.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1, f"explorer {n + 1} is wider than the window"
        assert root.evaluate("r => r.scrollWidth <= r.clientWidth + 1"), f"explorer {n + 1} overflows its box"
        root.screenshot(path=str(screenshots / f"explorer-{_page_id(page)}-{n + 1}-narrow.png"))
    assert v.errors == []


def test_an_explorer_works_from_disk(from_disk):
    """Opened as a file, as a reader with a downloaded copy of the site would: the explorer still builds."""
    page = sorted(EXPLORERS)[0]
    d = from_disk(f"{page}.html")
    root = d.page.locator("div.attention-explorer").first
    data = EXPLORERS[page][0]
    last = len(data["queries"]) - 1
    root.locator(f'[data-query-index="{last}"]').click()
    shown = [float(w) for w in root.evaluate(SHOWN)]
    layer, head = data["start"]["layer"], data["start"]["head"]
    assert shown == pytest.approx(view(data, layer, head)[last], abs=TOLERANCE)
    assert d.outside == [] and d.errors == []


def test_without_javascript_the_static_picture_shows(browser, site_url):
    """A viewer that drops scripts (GitHub's notebook view, an untrusted notebook) sees the stored PNG."""
    context = browser.new_context(java_script_enabled=False)
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "data:"))
                  else r.abort())
    p = context.new_page()
    for page in sorted(EXPLORERS):
        p.goto(f"{site_url}/{page}.html")
        pictures = p.locator("div.attention-explorer img.ae-fallback")
        assert pictures.count() == len(EXPLORERS[page])
        for n in range(pictures.count()):
            img = pictures.nth(n)
            assert img.is_visible(), f"{page}: explorer {n + 1} shows nothing without scripts"
            assert img.evaluate("i => i.complete && i.naturalWidth > 0")
            assert len(img.get_attribute("alt")) > 40
        assert p.locator("[data-query-index]").count() == 0
    context.close()
