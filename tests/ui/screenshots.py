"""`make screenshots`: the main pages, wide and on a phone, as PNGs for docs/ui.md.

    python -m tests.ui.screenshots docs/images

Starts an ocireg with the pages' sample content (tests/ui/sample.py) and Debian's Chromium
through Playwright, as the page tests do. Not part of `make test`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.support.server import base_config, running_registry
from tests.ui.conftest import CHROMIUM, UI
from tests.ui.sample import push_sample

SIZES = {"wide": (1280, 800), "phone": (390, 844)}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = base_config(Path(tmp) / "root", workers=1, extensions=UI)
        with running_registry(Path(tmp), cfg) as registry:
            with httpx.Client(base_url=registry.url, timeout=30) as c:
                content = push_sample(c)
            pages = {
                "repositories": "/",
                "repository": "/ui/repo/pub/app",
                "image": f"/ui/image/pub/app@{content.plain.digest}",
            }
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for size, (width, height) in SIZES.items():
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    for name, path in pages.items():
                        page.goto(registry.url + path)
                        page.screenshot(path=str(out / f"ui-{name}-{size}.png"), full_page=True)
                    context.close()
                browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
