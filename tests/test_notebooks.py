"""Notebook-level checks that hold every chapter to the course's rules (nbval checks the outputs themselves)."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import yaml

import attnlib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]
IGNORE = "# NBVAL_IGNORE_OUTPUT"
SKIP = "# NBVAL_SKIP"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        if "root" in node:
            files.append(node["root"])
        for value in node.values():
            files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no chapter"


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    listed = _toc_files(TOC)
    assert len(listed) == len(set(listed)), f"a page is listed twice in _toc.yml: {listed}"
    for entry in listed:
        assert (ROOT / f"{entry}.md").exists() or (ROOT / f"{entry}.ipynb").exists(), f"_toc.yml lists {entry}"
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in listed, f"{path.name} is not in _toc.yml"


def test_config_names_one_repository_and_colab():
    assert REPO_URL.startswith("https://github.com/")
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["execute"]["execute_notebooks"] == "off"  # the site shows stored outputs, which nbval checks
    assert REPO_URL in (ROOT / "pyproject.toml").read_text()


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request) -> tuple[Path, dict]:
    return request.param, _load(request.param)


def _setup_cell(nb: dict) -> str:
    return _code_cells(nb)[0]


def test_first_code_cell_installs_attnlib_from_the_repository_at_the_release_tag(notebook):
    _, nb = notebook
    cell = _setup_cell(nb)
    assert "google.colab" in cell, "the first code cell must be the Colab setup cell"
    match = re.search(r"attnlib @ git\+(\S+?)@([\w.\-]+)\"", cell)
    assert match, "the setup cell must pip-install 'attnlib @ git+URL@REF'"
    assert match.group(1) == REPO_URL, "install from the repository named in _config.yml"
    assert match.group(2) == f"v{attnlib.__version__}", "install the release tag of this attnlib version"


def test_setup_cell_is_silent_outside_colab_and_installs_inside(notebook):
    _, nb = notebook
    code = compile(_setup_cell(nb), "setup-cell", "exec")
    # Outside Colab: nothing is run.
    with mock.patch("subprocess.run") as run, mock.patch.dict(sys.modules, {"google.colab": None}):
        exec(code, {})
    run.assert_not_called()
    # In Colab without attnlib: pip installs it once.
    fake = types.ModuleType("google.colab")
    with (
        mock.patch("subprocess.run") as run,
        mock.patch.dict(sys.modules, {"google": types.ModuleType("google"), "google.colab": fake}),
        mock.patch("importlib.util.find_spec", return_value=None),
    ):
        exec(code, {})
    run.assert_called_once()
    argv = run.call_args.args[0]
    assert argv[:4] == [sys.executable, "-m", "pip", "install"]
    assert any(a.startswith("attnlib @ git+") for a in argv)
    # In Colab with attnlib already there: nothing is run.
    with (
        mock.patch("subprocess.run") as run,
        mock.patch.dict(sys.modules, {"google": types.ModuleType("google"), "google.colab": fake}),
    ):
        exec(code, {})
    run.assert_not_called()


def test_most_outputs_are_compared_and_ignored_ones_are_asserted(notebook):
    path, nb = notebook
    cells = _code_cells(nb)
    ignored = [i for i, c in enumerate(cells) if c.lstrip().startswith((IGNORE, SKIP))]
    assert len(ignored) <= 0.2 * len(cells), f"{path.name}: {len(ignored)} of {len(cells)} cells are not compared"
    for i in ignored:
        later = cells[i + 1 : i + 3]
        assert any(isinstance(n, ast.Assert) for c in later for n in ast.walk(ast.parse(c))), (
            f"{path.name}: code cell {i} ignores its output, but neither of the next two cells asserts anything"
        )


def test_outputs_are_stored_clean_and_in_order(notebook):
    path, nb = notebook
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom in one kernel: {counts}"
    for c in code:
        for out in c["outputs"]:
            assert out["output_type"] != "error", f"{path.name}: a stored error: {out.get('ename')}"
            if out["output_type"] == "stream" and out["name"] == "stderr":
                text = "".join(out["text"])
                assert "Warning" not in text and "Traceback" not in text, f"{path.name}: stderr: {text[:200]}"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_chapter_shape(notebook):
    path, nb = notebook
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert prose.lstrip().startswith("# "), f"{path.name}: the first cell must be the chapter's title"
    assert re.search(r"^#+ What you will learn", prose, re.MULTILINE), f"{path.name}: no 'What you will learn'"
    assert re.search(r"^#+ Summary", prose, re.MULTILINE), f"{path.name}: no summary"
    assert re.search(r"^#+ Exercises", prose, re.MULTILINE), f"{path.name}: no exercises"
    solutions = len(re.findall(r"\{dropdown\}", prose)) + len(re.findall(r"\{solution-start\}", prose))
    assert solutions >= 3, f"{path.name}: fewer than three solutions in dropdowns"
    assert re.search(r"[\u4e00-\u9fff]", prose), f"{path.name}: no Chinese term beside the English one"


def test_every_citation_is_in_the_bibliography(notebook):
    path, nb = notebook
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    cited = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", prose) for k in group.split(",")}
    assert cited, f"{path.name} cites nothing"
    assert cited <= keys, f"{path.name} cites keys missing from references.bib: {sorted(cited - keys)}"


# Accessibility: alt text, heading order, colour maps that survive greyscale, and links to the API reference.

IMAGE_TYPES = ("image/png", "image/svg+xml")


def _is_explorer(out: dict) -> bool:
    return 'class="attention-explorer' in "".join(out.get("data", {}).get("text/html", ""))


def _has_image(cell: dict) -> bool:
    # an attention explorer carries a PNG for viewers without scripts, but it is an explorer, not a figure
    return any(
        t in out.get("data", {}) and not _is_explorer(out) for out in cell.get("outputs", []) for t in IMAGE_TYPES
    )


def test_every_figure_has_alt_text(notebook):
    # myst-nb reads cell.metadata.mystnb.image.alt into the <img alt="..."> of the site; without it the alt is the
    # figure's file name, which tells a screen reader nothing.
    path, nb = notebook
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not _has_image(cell):
            continue
        alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")
        assert isinstance(alt, str) and len(alt.strip()) >= 20, f"{path.name}: cell {i} draws a figure without alt text"
        assert not re.search(r"\.(png|svg|jpe?g)\b|_images/", alt), (
            f"{path.name}: cell {i}: the alt text is a file name"
        )
        assert alt.strip().endswith("."), f"{path.name}: cell {i}: the alt text should be a sentence"


def _markdown_lines(text: str):
    """The lines of a markdown text outside fenced code blocks (where a # is a comment, not a heading)."""
    fence = None
    for line in text.splitlines():
        match = re.match(r"\s*(`{3,}|~{3,})", line)
        if match and (fence is None or match.group(1).startswith(fence)):
            fence = match.group(1) if fence is None else None
            continue
        if fence is None:
            yield line


def _heading_levels(text: str) -> list[int]:
    return [len(m.group(1)) for line in _markdown_lines(text) if (m := re.match(r"(#{1,6})\s", line))]


def _check_heading_order(name: str, levels: list[int]) -> None:
    assert levels[:1] == [1], f"{name}: the first heading must be the one '#' title"
    assert levels.count(1) == 1, f"{name}: more than one '#' title"
    for above, below in zip(levels, levels[1:], strict=False):
        assert below <= above + 1, f"{name}: a heading skips from level {above} to level {below}"


def test_headings_start_with_the_title_and_never_skip_a_level(notebook):
    path, nb = notebook
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    _check_heading_order(path.name, _heading_levels(prose))


@pytest.mark.parametrize("page", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.name)
def test_book_page_headings_never_skip_a_level(page):
    _check_heading_order(page.name, _heading_levels(page.read_text(encoding="utf-8")))


def test_heading_check_catches_a_skip():
    with pytest.raises(AssertionError, match="skips"):
        _check_heading_order("planted", _heading_levels("# Title\n\n## Part\n\n#### Too deep\n"))
    _check_heading_order("fenced", _heading_levels("# Title\n\n```python\n### a comment, not a heading\n```\n"))


# Colour maps whose lightness rises monotonically, so that they still read in greyscale. A diverging map such as
# RdBu or coolwarm is not allowed: both of its ends turn dark. Signed data uses one of these with a symmetric
# vmin=-m, vmax=m, so that dark is negative and light positive, and the colour bar shows the sign.
GREYSCALE_SAFE_CMAPS = {"viridis", "cividis", "magma", "inferno", "plasma", "Greys", "gray", "gray_r", "Blues"}


def _cmaps(source: str) -> list[str]:
    # cmap="name", cmap: str = "name", or a dict entry "cmap": "name"
    return re.findall(r"""cmap["']?\s*(?::\s*str\s*)?[=:]\s*["']([\w.]+)["']""", source)


def test_colour_maps_read_in_greyscale(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        bad = set(_cmaps(source)) - GREYSCALE_SAFE_CMAPS
        assert not bad, f"{path.name}: cell {i} uses {sorted(bad)}, which does not read in greyscale"
        assert "set_cmap" not in source and "image.cmap" not in source, f"{path.name}: cell {i} sets a default"


def test_attnlib_plot_defaults_read_in_greyscale():
    source = (ROOT / "src" / "attnlib" / "plot.py").read_text(encoding="utf-8")
    found = _cmaps(source)
    assert found, "attnlib/plot.py names no default colour map"
    assert set(found) <= GREYSCALE_SAFE_CMAPS, f"attnlib/plot.py defaults to {found}"
    assert _cmaps('imshow(x, cmap="RdBu_r", vmin=-1)') == ["RdBu_r"] and _cmaps("cmap: str = 'viridis',") == ["viridis"]
    assert _cmaps('imshow(x, cmap=cmap, aspect="auto")') == []


# Links to the API reference (book/api.md documents attnlib with autodoc). A link is written
# [`MultiHeadAttention`](#attnlib.attention.MultiHeadAttention): MyST resolves "#target" to the Python object, the
# build (-W -n) fails on a target that does not exist, and on GitHub or in Colab it still reads as the name.
# Each chapter links every attnlib class and every main function below that its code uses or its prose names in
# code font, at the first mention, and before the first code cell that uses it (imports aside).
LINKED_FUNCTIONS = {
    "set_seed",
    "get_device",
    "scaled_dot_product_attention",
    "masked_softmax",
    "causal_mask",
    "padding_mask",
    "gaussian_kernel_attention",
    "sinusoidal_encoding",
    "make_seq2seq",
    "fit",
    "patchify",
    "attention_rollout",
    "chunked_attention",
}
API_LINK = re.compile(r"\[`[^`\n]+`\]\(#(attnlib\.[\w.]+)\)")


def _api_objects() -> dict[str, str]:
    """{name: target} for every public class of attnlib and the functions in LINKED_FUNCTIONS."""
    objects = {}
    for module_name in attnlib.__all__:
        module = getattr(attnlib, module_name)
        if not isinstance(module, types.ModuleType):
            continue
        for name in module.__all__:
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # data (tables, constants) and names imported from elsewhere
            if inspect.isclass(obj) or (inspect.isfunction(obj) and name in LINKED_FUNCTIONS):
                objects[name] = f"{obj.__module__}.{obj.__qualname__}"
    return objects


def _first_code_uses(nb: dict, objects: dict[str, str]) -> dict[str, int]:
    """{target: index of the first cell that uses it}, counting names imported from attnlib and attnlib.x.Name."""
    targets = set(objects.values())
    imported: dict[str, str] = {}  # local name -> target
    first: dict[str, int] = {}
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not source.strip():
            continue
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "attnlib":
                for alias in node.names:
                    obj = getattr(importlib.import_module(node.module), alias.name)
                    target = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
                    if target in targets:
                        imported[alias.asname or alias.name] = target
        for node in ast.walk(tree):
            target = None
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                target = imported.get(node.id)
            elif isinstance(node, ast.Attribute) and ast.unparse(node).startswith("attnlib."):
                obj = attnlib
                for part in ast.unparse(node).split(".")[1:]:
                    obj = getattr(obj, part, None)
                target = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            if target in targets:
                first.setdefault(target, i)
    return first


def _markdown_mentions(nb: dict, objects: dict[str, str]) -> dict[str, list[tuple[int, str | None]]]:
    """{name: [(cell index, link target or None), ...]} for each code-font mention in the prose, in order."""
    mentions: dict[str, list[tuple[int, str | None]]] = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = "\n".join(_markdown_lines("".join(cell["source"])))
        links = {m.start(): m.group(1) for m in API_LINK.finditer(text)}
        for span in re.finditer(r"`[^`\n]+`", text):
            for name in objects:
                # `fit`, `attnlib.fit`, `attnlib.training.fit(...)`; not torch's `F.scaled_dot_product_attention`
                if re.search(rf"(?<![\w.])(attnlib\.(\w+\.)?)?{name}\b", span.group(0)):
                    mentions.setdefault(name, []).append((i, links.get(span.start() - 1)))
    return mentions


def test_api_links_point_to_public_attnlib_objects(notebook):
    path, nb = notebook
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for target in API_LINK.findall(prose):
        module_name, _, name = target.rpartition(".")
        module = importlib.import_module(module_name)
        assert name in module.__all__, f"{path.name} links {target}, which is not public in {module_name}"
        obj = getattr(module, name)
        assert f"{obj.__module__}.{obj.__qualname__}" == target, f"{path.name}: {target} is documented elsewhere"
    assert not re.search(r"\]\(#attnlib\.[^)]*\s", prose), f"{path.name}: an API link with a space in its target"


def test_chapters_link_the_attnlib_names_they_use_at_first_mention(notebook):
    path, nb = notebook
    objects = _api_objects()
    uses = _first_code_uses(nb, objects)
    mentions = _markdown_mentions(nb, objects)
    names = {name for name, target in objects.items() if target in uses} | set(mentions)
    assert names, f"{path.name} uses no attnlib class"
    for name in sorted(names):
        target = objects[name]
        seen = mentions.get(name, [])
        assert seen, f"{path.name} uses {name} (code cell {uses[target]}) but never links it: [`{name}`](#{target})"
        first_cell, first_link = seen[0]
        assert first_link == target, (
            f"{path.name}: the first mention of {name} (cell {first_cell}) must be a link to #{target}"
        )
        if target in uses:
            assert first_cell < uses[target], (
                f"{path.name}: {name} is used in cell {uses[target]} before its first link (cell {first_cell})"
            )


def test_link_check_catches_an_unlinked_first_mention():
    nb = {
        "cells": [
            {
                "cell_type": "markdown",
                "source": [
                    "Chapter 5's `MultiHeadAttention`, then a link: "
                    "[`MultiHeadAttention`](#attnlib.attention.MultiHeadAttention)."
                ],
            },
            {"cell_type": "code", "source": ["from attnlib import MultiHeadAttention\n", "MultiHeadAttention(8, 2)"]},
        ]
    }
    objects = _api_objects()
    assert _first_code_uses(nb, objects) == {"attnlib.attention.MultiHeadAttention": 1}
    assert [t for _, t in _markdown_mentions(nb, objects)["MultiHeadAttention"]] == [
        None,
        "attnlib.attention.MultiHeadAttention",
    ]


# Second edition: diagrams, hidden setup, code that fits the page, solutions that run.

MAX_CODE_LINE = 88
# Diagrams each chapter must show (attnlib.diagrams), at least.
DIAGRAMS_PER_CHAPTER = {"01": 1, "02": 2, "03": 2, "04": 2, "05": 2, "06": 2, "07": 1, "08": 2, "09": 2}
# Chapters whose solutions are sphinx-exercise dropdowns with their code in executed cells. The others still keep
# their solution code in the prose, where nothing runs it; the second edition of chapters 5-8 moves them.
EXECUTED_SOLUTIONS = {"01", "02", "03", "04", "05", "06", "07", "08", "09"}


def _fenced_code(text: str) -> list[str]:
    """The lines inside the fenced code blocks of a markdown text (not MyST directives such as ```{note})."""
    lines, fence, is_code = [], None, False
    for line in text.splitlines():
        match = re.match(r"\s*(`{3,}|~{3,})(.*)$", line)
        if match and fence is None:
            fence, is_code = match.group(1), not match.group(2).strip().startswith("{")
            continue
        if match and match.group(1).startswith(fence) and not match.group(2).strip():
            fence = None
            continue
        if fence is not None and is_code:
            lines.append(line)
    return lines


def test_no_code_line_is_wider_than_the_page(notebook):
    # The site shows 88 characters of code without scrolling sideways (tests/site checks it in a browser).
    path, nb = notebook
    wide = []
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        lines = source.splitlines() if cell["cell_type"] == "code" else _fenced_code(source)
        wide += [(i, len(line)) for line in lines if len(line) > MAX_CODE_LINE and "http" not in line]
    assert wide == [], f"{path.name}: code lines over {MAX_CODE_LINE} characters (cell, length): {wide[:8]}"


def _setup_cells(nb: dict) -> list[tuple[int, dict]]:
    """The code cells before the first section after "What you will learn": the Colab setup, imports, checks."""
    seen_goals = False
    cells = []
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            headings = re.findall(r"^## (.+)$", source, re.MULTILINE)
            if seen_goals and any(h != "What you will learn" for h in headings):
                break
            seen_goals = seen_goals or "What you will learn" in headings
        elif seen_goals and source.strip():
            cells.append((i, cell))
    return cells


def test_setup_cells_are_hidden_on_the_site(notebook):
    path, nb = notebook
    cells = _setup_cells(nb)
    assert len(cells) >= 2, f"{path.name}: no setup cells found after 'What you will learn'"
    for i, cell in cells:
        tags = cell["metadata"].get("tags", [])
        assert "hide-cell" in tags or "remove-cell" in tags, f"{path.name}: setup cell {i} is shown on the site"


def _diagram_cells(nb: dict) -> list[tuple[int, dict, str]]:
    found = []
    for i, cell in enumerate(nb["cells"]):
        match = re.fullmatch(r"(?:attnlib\.)?diagrams\.(\w+)\(\)", "".join(cell["source"]).strip())
        if cell["cell_type"] == "code" and match:
            found.append((i, cell, match.group(1)))
    return found


def test_diagrams_are_shown_described_and_captioned(notebook):
    from attnlib import diagrams

    path, nb = notebook
    cells = _diagram_cells(nb)
    assert len(cells) >= DIAGRAMS_PER_CHAPTER.get(path.name[:2], 0), f"{path.name}: too few diagrams"
    for i, cell, name in cells:
        assert name in diagrams.DIAGRAMS, f"{path.name}: cell {i} draws an unknown diagram {name!r}"
        assert "hide-input" in cell["metadata"].get("tags", []), f"{path.name}: cell {i} shows its drawing code"
        alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")
        assert alt == diagrams.DIAGRAMS[name]().alt, (
            f"{path.name}: cell {i}: the alt text must be attnlib.diagrams.{name}().alt, which describes it"
        )
        images = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
        assert len(images) == 1 and "width" in images[0]["metadata"]["image/png"], f"{path.name}: cell {i}"
        caption = "".join(nb["cells"][i + 1]["source"])
        assert re.match(r"\*\*Figure \d+\.\d+\.\*\* ", caption), f"{path.name}: diagram {i} has no caption"


def test_figures_are_numbered_in_order(notebook):
    path, nb = notebook
    chapter = int(path.name[:2])
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    numbers = [(int(a), int(b)) for a, b in re.findall(r"^\*\*Figure (\d+)\.(\d+)\.\*\*", prose, re.MULTILINE)]
    assert numbers == [(chapter, k) for k in range(1, len(numbers) + 1)], f"{path.name}: figures {numbers}"
    images = sum(_has_image(c) for c in nb["cells"])
    assert len(numbers) == images, f"{path.name}: {images} figures but {len(numbers)} captions"


def test_solutions_run_and_every_exercise_has_one(notebook):
    path, nb = notebook
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    if path.name[:2] not in EXECUTED_SOLUTIONS:
        return
    labels = re.findall(r"^:label: (ex-[\w-]+)$", prose, re.MULTILINE)
    starts = re.findall(r"\{solution-start\} (ex-[\w-]+)", prose)
    assert len(labels) >= 3 and labels == starts, f"{path.name}: exercises {labels}, solutions {starts}"
    assert prose.count("{solution-end}") == len(starts)
    assert "{dropdown}" not in prose, f"{path.name}: a solution outside sphinx-exercise"
    # Code in a solution is a code cell, so nbval runs it and checks what it prints.
    inside, code_lines = False, []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if "{solution-start}" in source:
                inside = True
            code_lines += _fenced_code(source) if inside else []
            if "{solution-end}" in source:
                inside = False
    assert code_lines == [], f"{path.name}: solution code in the prose is never run: {code_lines[:2]}"
    titles = re.findall(r"^:::\{exercise\} (.+)$", prose, re.MULTILINE)
    assert any(t.startswith("Implement") for t in titles), f"{path.name}: no exercise asks to implement something"


# Attention explorers: interactive maps in the chapters where a reader wants to look (the browser check clicks them).
EXPLORERS_PER_CHAPTER = {"03": 1, "05": 1, "06": 2, "07": 1, "09": 1}


def test_explorers_are_where_readers_look_captioned_and_within_budget(notebook):
    from attnlib.plot import EXPLORER_MAX_BYTES

    path, nb = notebook
    chapter = int(path.name[:2])
    found = [
        (i, out) for i, cell in enumerate(nb["cells"]) for out in cell.get("outputs", []) if _is_explorer(out)
    ]
    assert len(found) == EXPLORERS_PER_CHAPTER.get(path.name[:2], 0), f"{path.name}: {len(found)} explorers"
    for k, (i, out) in enumerate(found, start=1):
        html = "".join(out["data"]["text/html"])
        assert set(out["data"]) == {"text/html", "image/png", "text/plain"}, f"{path.name}: cell {i}"
        assert len(html.encode()) <= EXPLORER_MAX_BYTES, f"{path.name}: cell {i}: {len(html.encode()):,} bytes"
        assert re.findall(r'\bsrc="([^"]{0,22})', html) == ["data:image/png;base64,"], f"{path.name}: cell {i}"
        caption = "".join(nb["cells"][i + 1]["source"])
        assert caption.startswith(f"**Explorer {chapter}.{k}.** "), f"{path.name}: explorer in cell {i}"
