"""Real headless Chromium (Debian's `chromium`, driven by Playwright), never a downloaded browser.

The project's files are served over loopback so that ES modules load as in production: the
browser twin from /web/static/protocol/, the vector files from /crypto/vectors/ and the test
runner from /tests/browser/. Without Chromium the tests are skipped locally and fail in CI
(KOPPI_TEST_REQUIRE_SERVICES=1), which installs it (.ci/run).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SERVED = ("/web/static/", "/crypto/vectors/", "/tests/browser/")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves only the three directories the tests need, with JavaScript's MIME type."""

    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
    }

    def do_GET(self) -> None:
        if self.path == "/":
            body = b"<!doctype html><meta charset=utf-8><title>Koppi twin tests</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not self.path.startswith(SERVED) or ".." in self.path:
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    handler = functools.partial(_Handler, directory=str(ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API runs an event loop in this thread while it is open,
    and the asyncio tests that follow need the thread to themselves."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("KOPPI_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site + "/")
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors
