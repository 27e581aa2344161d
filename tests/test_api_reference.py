"""The API reference (book/api.md) is generated from attnlib's docstrings, so check what it relies on: every public
name has a docstring of its own, and the page documents every module of the package, each once.

The build itself (`make book`, nitpicky) checks the rest: that every cross-reference resolves.
"""

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import attnlib

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "book" / "api.md"

# The modules the package docstring lists, in its order: the public modules of attnlib.
MODULES = re.findall(r":mod:`attnlib\.(\w+)`", attnlib.__doc__ or "")
# `.. automodule:: attnlib.x` lines of the page's {eval-rst} blocks.
AUTOMODULE = re.compile(r"^\.\. automodule:: +(\S+) *$", re.MULTILINE)
# Class members that the reference leaves out on purpose (`exclude-members` in _config.yml): torch plumbing.
EXCLUDED_MEMBERS = {"extra_repr", "torch_class", "layer_class"}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"attnlib.{name}")


def _public_names(module: ModuleType) -> list[str]:
    """The module's ``__all__``, or else every public name it defines itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
    ]


def _documented_constants(module: ModuleType) -> set[str]:
    """Module-level names assigned in the source with a docstring right after them (what autodoc shows)."""
    body = ast.parse(inspect.getsource(module)).body
    names = set()
    for node, following in zip(body, body[1:], strict=False):
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            if isinstance(following.value.value, str) and following.value.value.strip():
                names.update(targets)
    return names


def _own_doc(obj: object) -> str | None:
    if isinstance(obj, classmethod | staticmethod):
        obj = obj.__func__
    return getattr(obj, "__doc__", None)


def _undocumented_members(cls: type) -> list[str]:
    """Public methods and properties of ``cls`` that get no docstring from attnlib.

    A member may take its docstring from the attnlib base class it overrides (as autodoc does), but not from torch:
    an undocumented ``forward`` would otherwise show ``nn.Module.forward``'s generic text.
    """
    missing = []
    attnlib_classes = [c for c in cls.__mro__ if c.__module__.startswith("attnlib.")]
    names = {n for c in attnlib_classes for n, v in vars(c).items() if inspect.isroutine(v) or isinstance(v, property)}
    for name in sorted(names):
        if name.startswith("_") or name in EXCLUDED_MEMBERS:
            continue
        owners = [c for c in cls.__mro__ if name in vars(c) and _own_doc(vars(c)[name])]
        if not owners or not owners[0].__module__.startswith("attnlib."):
            missing.append(f"{cls.__name__}.{name}")
    return missing


def _api_page() -> str:
    return API_PAGE.read_text(encoding="utf-8")


def test_the_package_docstring_lists_the_modules():
    assert len(MODULES) == len(set(MODULES)) >= 12, MODULES
    for name in MODULES:
        _module(name)  # importable


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_a_docstring(name):
    module = _module(name)
    assert inspect.getdoc(module), f"attnlib.{name} has no module docstring"
    constants = _documented_constants(module)
    missing = []
    for public in _public_names(module):
        obj = getattr(module, public)  # a name in __all__ that does not exist fails here
        if inspect.isclass(obj) or inspect.isroutine(obj):
            assert obj.__module__ == module.__name__, f"attnlib.{name}.{public} is defined in {obj.__module__}"
            if not (obj.__doc__ or "").strip():
                missing.append(public)
            if inspect.isclass(obj):
                missing += _undocumented_members(obj)
        elif public not in constants:
            missing.append(f"{public} (a constant: put a docstring on the line after it)")
    assert not missing, f"attnlib.{name}: no docstring for {missing}"


def test_the_page_documents_every_module_once():
    documented = AUTOMODULE.findall(_api_page())
    assert sorted(documented) == sorted(f"attnlib.{name}" for name in MODULES)
    # The package itself is not documented: its re-exports would describe each object a second time.
    assert "attnlib" not in documented


def test_the_reexported_names_are_listed_and_have_a_target():
    page = _api_page()
    for name in attnlib.__all__:
        assert name in page, f"book/api.md does not list attnlib.{name}"
        obj = getattr(attnlib, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            # Documented once, as attnlib.<module>.<name>, which is where links to it point.
            module = obj.__module__.removeprefix("attnlib.")
            assert module in MODULES and name in _public_names(_module(module)), obj
            assert f"attnlib.{module}.{name}" in page


def test_the_page_is_in_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    assert "book/api" in files
