"""Notebook-level checks that hold every chapter to the course's rules (nbval checks the outputs themselves)."""

from __future__ import annotations

import ast
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
    assert len(re.findall(r"\{dropdown\}", prose)) >= 3, f"{path.name}: fewer than three solutions in dropdowns"
    assert re.search(r"[\u4e00-\u9fff]", prose), f"{path.name}: no Chinese term beside the English one"


def test_every_citation_is_in_the_bibliography(notebook):
    path, nb = notebook
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    cited = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", prose) for k in group.split(",")}
    assert cited, f"{path.name} cites nothing"
    assert cited <= keys, f"{path.name} cites keys missing from references.bib: {sorted(cited - keys)}"
