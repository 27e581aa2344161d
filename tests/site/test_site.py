"""The built site in a real browser: what a reader meets, page by page, with no network.

Every page of the table of contents is opened in headless Chromium. The checks: no JavaScript error, no request
leaving the machine, every image loaded and described (alt text), headings in order, math typeset by the MathJax
that ships inside the site; on every chapter, the Colab button points at that chapter's notebook in the repository
and an exercise's solution opens on a click; the search page finds "softmax". A screenshot of each page is saved
under _build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from sitecheck import ROOT, SITE

TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def _toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


PAGES = _toc_files()
CHAPTERS = [f for f in PAGES if f.startswith("notebooks/")]
HOME = TOC["root"]
# Pages whose prose has mathematics: the home page's chapter map, the notation page and every chapter.
MATH_PAGES = [HOME, "book/notation", *CHAPTERS]


def _page_id(path: str) -> str:
    return Path(path).name


def test_the_table_of_contents_has_every_chapter():
    assert len(CHAPTERS) == len(list((ROOT / "notebooks").glob("*.ipynb"))) >= 8
    assert all((SITE / f"{page}.html").is_file() for page in PAGES), "build the site first: make book"


IMAGES = """() => Array.from(document.querySelectorAll('article img')).map(img => ({
    src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',
    loaded: img.complete && img.naturalWidth > 0}))"""

HEADINGS = """() => Array.from(document.querySelectorAll('article :is(h1, h2, h3, h4, h5, h6)'))
    .map(h => [Number(h.tagName[1]), h.textContent.trim()])"""


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_is_clean_complete_and_accessible(page, visit, screenshots):
    v = visit(f"{page}.html")
    p = v.page
    p.screenshot(path=str(screenshots / f"{_page_id(page)}.png"), full_page=True)

    assert v.errors == [], f"JavaScript errors on {page}: {v.errors}"
    assert v.outside == [], f"{page} asked for something outside the site (a reader offline would miss it): {v.outside}"

    images = p.evaluate(IMAGES)
    broken = [img["src"] for img in images if not img["loaded"]]
    assert broken == [], f"images that did not load on {page}: {broken}"
    undescribed = [
        img["src"]
        for img in images
        if len(img["alt"].strip()) < 5 or re.search(r"\.(png|svg|jpe?g|gif)$", img["alt"].strip(), re.IGNORECASE)
    ]
    assert undescribed == [], f"images without a real alt text on {page}: {undescribed}"
    if page in CHAPTERS:
        assert len(images) >= 2, f"a chapter with {len(images)} figures? ({page})"
    if page == HOME:
        assert any("chapter_map" in img["src"] for img in images), "the home page's chapter map is missing"

    levels = p.evaluate(HEADINGS)
    assert levels and levels[0][0] == 1, f"{page} does not open with one h1: {levels[:3]}"
    assert [lvl for lvl, _ in levels].count(1) == 1, f"{page} has more than one h1"
    skips = [(a, b) for a, b in zip(levels, levels[1:], strict=False) if b[0] > a[0] + 1]
    assert skips == [], f"{page} skips a heading level: {skips}"


@pytest.mark.parametrize("page", MATH_PAGES, ids=_page_id)
def test_math_is_typeset_offline(page, visit):
    v = visit(f"{page}.html")
    p = v.page
    assert p.evaluate("() => window.MathJax && MathJax.version"), f"MathJax did not load on {page}"
    assert p.locator("script[src*='_static/mathjax/']").count() == 1, "MathJax must come from inside the site"
    n_math = p.locator("article .math").count()
    n_typeset = p.locator("article .math mjx-container").count()
    assert n_math > 0, f"no math found on {page}"
    assert n_typeset == n_math, f"{n_math - n_typeset} of {n_math} formulas were not typeset on {page}"
    assert p.locator("mjx-merror").count() == 0, f"MathJax reported a TeX error on {page}"
    assert v.outside == []


def _colab_url(page: str) -> str:
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/{CONFIG['repository']['branch']}/{page}.ipynb"


@pytest.mark.parametrize("page", CHAPTERS, ids=_page_id)
def test_colab_button_opens_this_chapter(page, visit):
    p = visit(f"{page}.html").page
    links = p.locator("a[href^='https://colab.research.google.com/']")
    assert links.count() == 1, f"{page}: expected one Colab link, found {links.count()}"
    assert links.get_attribute("href") == _colab_url(page)
    # The link sits in the launch menu (the rocket): it must be reachable by a reader.
    p.locator(".dropdown-launch-buttons button").first.hover()
    links.wait_for(state="visible", timeout=5000)


@pytest.mark.parametrize("page", CHAPTERS, ids=_page_id)
def test_an_exercise_solution_opens_on_click(page, visit):
    p = visit(f"{page}.html").page
    # A solution is a sphinx-exercise dropdown (which may hold executed code cells), or, in the chapters not yet
    # moved to it, a sphinx-design dropdown titled "Solution".
    gated = p.locator(".solution.dropdown")
    designed = p.locator("details.sd-dropdown", has=p.locator("summary", has_text="Solution"))
    total = gated.count() + designed.count()
    assert total >= 3, f"{page} has {total} solutions (at least 3 exercises expected)"
    if gated.count():
        last = gated.last
        body = last.locator("section").first
        assert not body.is_visible(), "a solution must be hidden until the reader asks for it"
        last.locator("button.toggle-button").click()
        body.wait_for(state="visible", timeout=5000)
        assert len(body.inner_text().strip()) > 20
        # A solution with code shows the code and what it printed once opened.
        for cell in last.locator("div.cell").all():
            assert cell.locator("div.cell_input").is_visible() and cell.locator("div.cell_output").is_visible()
    else:
        last = designed.last
        body = last.locator(".sd-summary-content")
        assert not body.is_visible(), "a solution must be hidden until the reader asks for it"
        last.locator("summary").click()
        body.wait_for(state="visible", timeout=5000)
        assert len(body.inner_text().strip()) > 20


# Code lines are at most 88 characters (tests/test_notebooks.py); on a laptop screen 1440 pixels wide they must fit
# the text column, so that nobody has to scroll a code block sideways. Code means the code cells and the code blocks
# of the prose; what a cell printed is its output, not code.
CODE_WIDTH_VIEWPORT = 1440
WIDE_CODE = """() => Array.from(document.querySelectorAll('article div.highlight pre'))
    .filter(pre => !pre.closest('.cell_output'))
    .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => pre.textContent.split('\\n').reduce((a, b) => (a.length >= b.length ? a : b)).slice(0, 100))"""


@pytest.mark.parametrize("page", CHAPTERS, ids=_page_id)
def test_code_blocks_fit_their_column(page, visit):
    p = visit(f"{page}.html", width=CODE_WIDTH_VIEWPORT).page
    inputs = p.locator("article div.cell_input pre")
    assert inputs.count() > 0
    wide = p.evaluate(WIDE_CODE)
    assert wide == [], f"{page}: code blocks wider than the column at {CODE_WIDTH_VIEWPORT} px, e.g. {wide[:3]}"


# Displayed formulas must fit the column too (MathJax otherwise cuts them off behind a scroll bar).
WIDE_MATH = """() => {
  const right = document.querySelector('article').getBoundingClientRect().right;
  return Array.from(document.querySelectorAll('article mjx-container[display="true"]'))
    .filter(m => m.scrollWidth > m.clientWidth + 1 || m.getBoundingClientRect().right > right + 1)
    .map(m => m.textContent.slice(0, 60));
}"""


@pytest.mark.parametrize("page", MATH_PAGES, ids=_page_id)
def test_displayed_math_fits_the_column(page, visit):
    p = visit(f"{page}.html", width=CODE_WIDTH_VIEWPORT).page
    wide = p.evaluate(WIDE_MATH)
    assert wide == [], f"{page}: formulas wider than the column at {CODE_WIDTH_VIEWPORT} px: {wide[:3]}"


# The diagrams (attnlib.diagrams): described as diagrams, and their smallest label no smaller than the body text.
DIAGRAMS = """() => {
  const body = parseFloat(getComputedStyle(document.querySelector('article p')).fontSize);
  return [body, Array.from(document.querySelectorAll('article img'))
    .filter(img => img.alt.startsWith('Diagram:'))
    .map(img => ({src: img.getAttribute('src'), shown: img.getBoundingClientRect().width, natural: img.naturalWidth}))];
}"""


@pytest.mark.parametrize("page", CHAPTERS, ids=_page_id)
def test_diagram_labels_are_as_large_as_the_text(page, visit):
    from attnlib import diagrams

    p = visit(f"{page}.html").page
    body_px, shown = p.evaluate(DIAGRAMS)
    for image in shown:
        assert image["natural"] > 0, f"{page}: the diagram {image['src']} did not load"
        # CSS pixels per pixel of the PNG, times the PNG pixels of the smallest label
        label_px = image["shown"] / image["natural"] * diagrams.MIN_FONT_PT / 72 * diagrams.DPI
        assert label_px >= body_px, (
            f"{page}: {image['src']} is shown {image['shown']:.0f} px wide, so its smallest label is "
            f"{label_px:.1f} px, smaller than the {body_px:.0f} px of the text"
        )


def test_search_finds_softmax(visit):
    p = visit("search.html?q=softmax").page
    results = p.locator("#search-results ul.search li")
    results.first.wait_for(state="attached", timeout=15000)
    hrefs = [results.nth(i).locator("a").first.get_attribute("href") for i in range(results.count())]
    assert any("02_queries_keys_values" in h for h in hrefs), hrefs


def test_math_renders_from_disk_with_no_server(from_disk):
    """Opened as a file, as a reader who downloaded the built site would: math still renders."""
    d = from_disk("notebooks/02_queries_keys_values.html")
    p = d.page
    p.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    p.evaluate("() => MathJax.startup.promise")
    assert p.locator("article .math mjx-container").count() == p.locator("article .math").count() > 0
    assert d.outside == []
