"""Headless Debian Chromium driven by Playwright (no browser download: the system's binary)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

CHROMIUM = os.environ.get("SHIFTLAKE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# headless as root, and quiet on a machine without outside network
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@contextlib.contextmanager
def page(width: int = 1400, height: int = 1000):
    """A fresh page in a fresh headless Chromium profile."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise FileNotFoundError(f"no Chromium at {CHROMIUM}: `make browser` installs Debian's (apt-get install "
                                "chromium), or set SHIFTLAKE_CHROMIUM to a Chromium binary")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                        viewport={"width": width, "height": height})
        try:
            yield browser.pages[0] if browser.pages else browser.new_page()
        finally:
            browser.close()


def image_loaded(img) -> bool:
    """The <img> decoded to a picture with a size (a broken data URI has naturalWidth 0)."""
    return img.evaluate("i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0")
