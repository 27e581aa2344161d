"""Fixtures for the browser check of the built site (``make site-check``, the last step of ``make test``).

The site in ``_build/html`` is served on 127.0.0.1 and opened in headless Chromium, driven by Playwright with the
system's browser (Playwright never downloads one). Every request that leaves 127.0.0.1 is refused and recorded, so
the pages are checked as a reader without a network would see them.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
from sitecheck import BROWSER_ARGS, BROWSER_NAMES, NO_BROWSER, SCREENSHOTS, SITE, find_browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would drown pytest's report
        pass


@pytest.fixture(scope="session")
def site_url():
    """The built site, served on an unused port of 127.0.0.1 for the whole session."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site at {SITE}: run `make book` first", pytrace=False)
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    executable = find_browser()
    if executable is None:
        looked_for = f"$CHROMIUM={os.environ['CHROMIUM']}" if os.environ.get("CHROMIUM") else ", ".join(BROWSER_NAMES)
        pytest.fail(NO_BROWSER.format(names=looked_for), pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class PageVisit:
    """One page opened in a fresh browser context, with what went wrong on the way recorded."""

    def __init__(self, browser, site_url: str, path: str, width: int = 1280):
        self.url = f"{site_url}/{path}"
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900}, service_workers="block")
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.on("console", self._console)

    def _only_local(self, route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def open(self):
        self.page.goto(self.url, wait_until="load")
        # MathJax typesets after load; its startup promise settles when the page's math is done.
        self.page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)")
        self.page.evaluate("() => window.MathJax && MathJax.startup.promise")
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site_url):
    visits: list[PageVisit] = []

    def _open(path: str, width: int = 1280) -> PageVisit:
        """Open ``path`` of the site in a window ``width`` CSS pixels wide (900 high)."""
        v = PageVisit(browser, site_url, path, width)
        visits.append(v)
        v.open()
        return v

    yield _open
    for v in visits:
        v.close()


class DiskPage:
    """A page of the built site opened from disk (file://), as a reader with a downloaded copy would, with every
    request that is not a file recorded in ``outside`` and refused, and uncaught script errors in ``errors``."""

    def __init__(self, browser):
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context()
        self.context.route("**/*", self._only_files)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _only_files(self, route) -> None:
        if route.request.url.startswith(("file://", "data:", "about:")):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


@pytest.fixture
def from_disk(browser):
    """``from_disk(path)`` opens ``path`` of the built site as a file; returns the :class:`DiskPage`."""
    opened: list[DiskPage] = []

    def _open(path: str) -> DiskPage:
        d = DiskPage(browser)
        opened.append(d)
        d.page.goto((SITE / path).as_uri())
        return d

    yield _open
    for d in opened:
        d.context.close()
