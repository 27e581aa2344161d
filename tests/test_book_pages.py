"""The reader pages around the chapters: the home page's chapter map, the glossary and the references."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GLOSSARY = ROOT / "book" / "glossary.md"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _chapter_map_script():
    spec = importlib.util.spec_from_file_location("make_chapter_map", ROOT / "scripts" / "make_chapter_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf-8")


def _glossary_rows() -> list[list[str]]:
    lines = GLOSSARY.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith(("| English", "| ---"))]
    return [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows]


# The chapter map (home page)


def test_the_committed_chapter_map_is_what_the_script_draws():
    drawn = _chapter_map_script().draw()
    committed = (ROOT / "book" / "images" / "chapter_map.svg").read_text(encoding="utf-8")
    assert drawn == committed, "book/images/chapter_map.svg is stale: run scripts/make_chapter_map.py"


def test_the_chapter_map_has_every_chapter_and_only_earlier_to_later_arrows():
    script = _chapter_map_script()
    assert sorted(script.CHAPTERS) == list(range(1, len(NOTEBOOKS) + 1))
    assert all(a < b for a, b in script.EDGES)
    assert {b for _, b in script.EDGES} == set(range(2, len(NOTEBOOKS) + 1)), "every chapter after 1 builds on one"
    assert sorted(n for _, members in script.PARTS.values() for n in members) == sorted(script.CHAPTERS)
    for number, (title, *_rest) in script.CHAPTERS.items():
        heading = re.search(r"^# (.+)$", _markdown(NOTEBOOKS[number - 1]), re.MULTILINE).group(1)
        first_word = title.split()[0].rstrip(",").lower()
        assert first_word in heading.lower(), f"chapter {number} is {heading!r} in its notebook, {title!r} on the map"


def test_the_home_page_shows_the_map_with_alt_text_and_a_caption():
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    figure = re.search(r"```\{figure\} images/chapter_map\.svg\n(.*?)```", intro, re.DOTALL)
    assert figure, "the home page has no chapter-map figure"
    alt = re.search(r"^:alt: (.+)$", figure.group(1), re.MULTILINE)
    assert alt and len(alt.group(1)) > 100, "the chapter map needs an alt text that describes it"
    caption = [line for line in figure.group(1).splitlines() if line and not line.startswith(":")]
    assert caption, "the chapter map needs a caption"


def test_the_home_page_says_how_to_use_the_course_in_four_ways():
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    section = intro.split("## How to use this course", 1)[1].split("\n## ", 1)[0]
    tabs = re.findall(r"^:::\{tab-item\} (.+)$", section, re.MULTILINE)
    assert tabs == ["Read", "Run in Colab", "Build locally", "On a GPU"]


# The glossary


def test_glossary_rows_are_complete_sorted_and_linked():
    rows = _glossary_rows()
    assert len(rows) >= 100
    for row in rows:
        assert len(row) == 4, f"a glossary row needs English | 中文 | meaning | where taught: {row}"
        english, chinese, meaning, where = row
        assert english and meaning, row
        # a name used untranslated in Chinese too (FlashAttention) is written as it is
        assert CJK.search(chinese) or chinese == english, f"no Chinese term for {english!r}"
        links = re.findall(r"\{doc\}`[^<`]*<\.\./([^>]+)>`", where)
        assert links, f"{english!r} does not link to where it is taught"
        for link in links:
            assert (ROOT / f"{link}.ipynb").is_file() or (ROOT / f"{link}.md").is_file(), f"{english!r}: {link}"
    names = [row[0].lower() for row in rows]
    assert names == sorted(names), "keep the glossary in alphabetical order"
    assert len(set(names)) == len(names), "a term appears twice in the glossary"


# A Chinese term in parentheses after an English one, e.g. "self-attention (自注意力)" or "（自注意力）".
CHINESE_GLOSS = re.compile(r"[（(]([^()（）]*[\u4e00-\u9fff][^()（）]*)[)）]")
CHINESE_RUN = re.compile(r"[\u4e00-\u9fff](?:[\u4e00-\u9fffA-Za-z ]*[\u4e00-\u9fff])?")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chinese_term_a_chapter_gives_is_in_the_glossary(path):
    glossary_chinese = " ".join(row[1] for row in _glossary_rows())
    missing = {
        term
        for gloss in CHINESE_GLOSS.findall(_markdown(path))
        for term in CHINESE_RUN.findall(gloss)
        if term not in glossary_chinese
    }
    assert not missing, f"{path.name} gives Chinese terms the glossary lacks: {sorted(missing)}"


# The references


def test_every_reference_is_cited_somewhere():
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    pages = [*NOTEBOOKS, *sorted((ROOT / "book").glob("*.md"))]
    prose = "\n".join(_markdown(p) for p in pages)
    cited = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", prose) for k in group.split(",")}
    assert keys - cited == set(), f"references.bib holds entries no page cites: {sorted(keys - cited)}"
    assert cited - keys == set(), f"pages cite keys missing from references.bib: {sorted(cited - keys)}"
