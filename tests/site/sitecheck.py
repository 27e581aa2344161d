"""What the browser check needs to know: where the site is, where screenshots go, which browser to drive."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("SITE_DIR", ROOT / "_build" / "html"))
SCREENSHOTS = ROOT / "_build" / "screenshots"

# Looked for in this order; $CHROMIUM names another executable.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless, and quiet on a machine with no network: without the background-networking flags Chromium keeps
# trying to reach Google's services.
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

NO_BROWSER = """
==============================================================================================
 THE BROWSER CHECK CANNOT RUN: no Chromium was found ({names}).
 Install Debian's browser (sudo apt-get install chromium), or point $CHROMIUM at a Chromium or
 Chrome executable. To leave the check out knowingly: make test SITE_CHECK=skip
==============================================================================================
"""


def find_browser() -> str | None:
    """The Chromium executable to use, or None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None
