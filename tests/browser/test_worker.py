"""The protocol runs in a module Web Worker, off the UI thread; keys cross as CryptoKeys."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_seal_and_open_in_a_worker(page: Any) -> None:
    got = page.evaluate("async () => (await import('/tests/browser/runner.js')).sealInWorker()")
    assert got == {
        "body": "sealed off the UI thread",
        "workerBody": "sealed off the UI thread",
        "refusal": "koppi.auth_failed",
    }
