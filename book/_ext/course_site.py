"""Small fixes to what the theme puts in every page, found by the browser check (tests/site).

- sphinx-thebe, which Jupyter Book always loads, adds its inline configuration script twice to each page; the
  second copy re-declares a ``const`` and throws "Identifier 'THEBE_JS_URL' has already been declared". Repeated
  scripts are dropped here, keeping the first of each.
"""

from __future__ import annotations


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


def setup(app):
    # Late (priority 900), after the theme and the other extensions have added their scripts.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
