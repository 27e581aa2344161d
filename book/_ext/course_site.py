"""Small fixes and additions to what the theme puts in every page, checked by the browser check (tests/site).

- ``static/course.css``: code cells set a little smaller, so that 88-character lines fit the text column.
- sphinx-exercise gives the body of every exercise and solution the same id (``exercise-content``,
  ``solution-content``); repeated ids are invalid HTML and confuse assistive technology, so each gets a number.
- sphinx-thebe, which Jupyter Book always loads, adds its inline configuration script twice to each page; the
  second copy re-declares a ``const`` and throws "Identifier 'THEBE_JS_URL' has already been declared". Repeated
  scripts are dropped here, keeping the first of each.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # An inline script has filename None or "", depending on who added it: both mean "no file".
    return str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    seen: set[tuple] = set()
    unique = []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def number_repeated_ids(app, doctree, docname) -> None:
    from docutils import nodes

    counts: dict[str, int] = {}
    for node in doctree.findall(nodes.Element):
        ids = node.get("ids", [])
        for k, name in enumerate(ids):
            if name in ("exercise-content", "solution-content"):
                counts[name] = counts.get(name, 0) + 1
                ids[k] = f"{name}-{counts[name]}"


def add_course_css(app) -> None:
    app.config.html_static_path.append(str(STATIC))
    app.add_css_file("course.css")


def setup(app):
    app.connect("builder-inited", add_course_css)
    app.connect("doctree-resolved", number_repeated_ids)
    # Late (priority 900), after the theme and the other extensions have added their scripts.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
