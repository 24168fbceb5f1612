"""Open a page in a real headless Chromium (Debian's package) and report what a reader would see."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
# Chromium flags for a closed network and a root user (see the machine notes).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    raise RuntimeError("Chromium not found: `make test` installs Debian's chromium package (apt-get install chromium)")


@dataclass
class PageCheck:
    title: str
    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)


def check_page(path: Path, screenshot: Path) -> PageCheck:
    """Load a local HTML file, collect console errors and image state, and save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete && e.naturalWidth > 0])")
            headings = page.eval_on_selector_all("h1, h2", "els => els.map(e => e.textContent)")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            return PageCheck(
                title=page.title(),
                console_errors=errors,
                images=len(images),
                broken_images=[alt for alt, ok in images if not ok],
                headings=headings,
            )
        finally:
            browser.close()
