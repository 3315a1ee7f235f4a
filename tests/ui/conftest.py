"""The web-page tests drive a real browser: Debian's Chromium, headless, through Playwright
(the Python package only; no browser download). One browser per module, a fresh
context (no cookies) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.oci import encode_json
from tests.support.tools import missing, require_module

CHROMIUM = os.environ.get("OCIREG_TEST_CHROMIUM", "/usr/bin/chromium")
UI = {"search": {"enable": True}, "ui": {"enable": True}}
TIMEOUT_MS = 10_000


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and tests elsewhere call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        missing(f"no Chromium at {CHROMIUM} (make test-deps installs Debian's chromium)")
    sync_api = require_module("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def login(page: Any, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def login_status(page: Any, base: str, user: str, password: str) -> int:
    """Submit the login form; the status of its answer (the page stays where it leads)."""
    page.goto(f"{base}/ui/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    with page.expect_response(lambda r: r.url.endswith("/ui/login")) as answer:
        page.get_by_role("button", name="Log in").click()
    return int(answer.value.status)


def repo_names(page: Any) -> list[str]:
    """The names in the repositories table, as shown."""
    return [str(t) for t in page.locator("#results tbody tr td:first-child").all_inner_texts()]


def image_config(**config: Any) -> bytes:
    """An image config as builders write it (OCI image-spec)."""
    return encode_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-02T03:04:05Z",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [
                {"created": "2026-01-02T03:04:05Z", "created_by": "/bin/sh -c #(nop) ADD file"},
                {"created_by": 'ENTRYPOINT ["/app"]', "empty_layer": True},
            ],
        }
    )
