"""The browser twin (web/static/protocol/) on the same vector files as the Python core, in real
Chromium: every case, positive and negative, with the same error codes (docs/protocol.md §9)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

FILES = [
    "rfc8032-ed25519.json",
    "ed25519-speccheck.json",
    "rfc7748-x25519.json",
    "rfc5869-hkdf.json",
    "rfc9180-a1-1.json",
    "koppi-encoding.json",
    "koppi-schedule.json",
    "koppi-message.json",
    "koppi-merkle.json",
    "koppi-treehead.json",
    "koppi-identity.json",
    "koppi-consent.json",
    "koppi-fingerprint.json",
]

RUN = "async (file) => (await import('/tests/browser/runner.js')).run(file)"


@pytest.mark.parametrize("file", FILES)
def test_every_case_passes_in_chromium(page: Any, file: str) -> None:
    result = page.evaluate(RUN, file)
    assert result["cases"] > 0
    assert result["failures"] == [], f"{file}: {result['failures']}"


def test_private_keys_cannot_be_exported(page: Any) -> None:
    got = page.evaluate(
        "async () => (await import('/tests/browser/runner.js')).privateKeysAreNotExtractable()"
    )
    assert got == ["refused", "refused"]


def test_the_thread_story_replays_in_chromium(page: Any) -> None:
    """koppi-thread.json: genesis, commits, history, revocation, withdrawal and 29 forgeries,
    replayed by two observers exactly as tests/crypto/test_thread_vectors.py does in Python."""
    result = page.evaluate("async () => (await import('/tests/browser/runner.js')).replayThread()")
    assert result["cases"] > 40
    assert result["failures"] == []


def test_consent_covers_in_chromium(page: Any) -> None:
    result = page.evaluate("async () => (await import('/tests/browser/runner.js')).consentCovers()")
    assert result["cases"] == 5 and result["failures"] == []


def test_consent_admission_rule_in_chromium(page: Any) -> None:
    result = page.evaluate(
        "async () => (await import('/tests/browser/runner.js')).consentAdmissions()"
    )
    assert result["cases"] == 11 and result["failures"] == []


def test_a_consent_built_and_signed_in_chromium_matches_the_reference(page: Any) -> None:
    """koppi-consent.json's `record` rebuilt from its fields, whatever their order, and signed;
    its next two versions (one organisation dropped, then withdrawn) as Python built them."""
    result = page.evaluate("async () => (await import('/tests/browser/runner.js')).consentBuild()")
    assert result == {"cases": 9, "failures": []}


def test_default_labels_in_chromium(page: Any) -> None:
    result = page.evaluate("async () => (await import('/tests/browser/runner.js')).labelPolicies()")
    assert result["cases"] == 7 and result["failures"] == []
