"""requirements.txt locks the whole toolchain: every package pinned exactly, and everything they need pinned too.

A dependency left out of the lock is resolved afresh on every new machine, so CI would test one version and a
reader's `make book` install another. The check walks the installed metadata of each pinned package.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# pip's own tools come with every virtual environment and `pip freeze` leaves them out; they are not locked.
PACKAGING_TOOLS = {"pip", "setuptools", "wheel"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"requirements.txt: {line!r} is not pinned with =="
            assert _canonical(name) not in pins, f"requirements.txt names {name} twice"
            pins[_canonical(name)] = version
    return pins


def test_every_line_is_an_exact_pin_and_torch_is_pinned():
    pins = _pins()
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"].startswith("1."), "the course is built with Jupyter Book 1.x"


def test_every_dependency_of_a_pinned_package_is_pinned_too():
    pins = _pins()
    environment = default_environment()
    missing = {}
    for name in pins:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed here: run the check in the project's .venv")
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({**environment, "extra": ""}):
                continue  # an optional extra, or another platform's dependency
            if _canonical(requirement.name) not in pins.keys() | PACKAGING_TOOLS:
                missing.setdefault(_canonical(requirement.name), []).append(name)
    assert not missing, f"needed but not pinned in requirements.txt: {missing}"
