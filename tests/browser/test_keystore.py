"""Browser key storage (issue: browser twin, "Key storage"), in real Chromium: non-extractable
device keys in IndexedDB that survive a reload, persistence requested and reported, epoch secrets
sealed under a non-extractable storage key, one sending tab per device, and the message counter
persisted before a message is sealed."""

from __future__ import annotations

import os
from typing import Any

import pytest

from crypto.primitives import ed25519_verify
from tests.crypto.vectors import load, unhex

pytestmark = pytest.mark.browser
RUNNER = "/tests/browser/runner.js"


def call(page: Any, fn: str, *args: Any) -> Any:
    return page.evaluate(f"async (a) => (await import('{RUNNER}')).{fn}(...a)", list(args))


def test_device_keys_are_made_here_survive_a_reload_and_never_leave(page: Any) -> None:
    db = "keys-" + os.urandom(4).hex()
    first = call(page, "deviceKeysRound", db, b"first".hex())
    assert first["exported"] == [False, False] and first["extractable"] == [False, False]
    ed25519_verify(unhex(first["signingPublic"]), b"first", unhex(first["signature"]))
    page.reload()
    again = call(page, "deviceKeysRound", db, b"second".hex())
    assert (again["signingPublic"], again["kemPublic"]) == (
        first["signingPublic"],
        first["kemPublic"],
    )
    assert again["exported"] == [False, False]
    ed25519_verify(unhex(again["signingPublic"]), b"second", unhex(again["signature"]))


def test_durable_storage_is_requested_and_its_answer_reported(page: Any) -> None:
    got = call(page, "persistence")
    assert got["supported"] is True
    assert isinstance(got["persisted"], bool) and got["reported"] == got["persisted"]


def test_epoch_secrets_are_stored_sealed(page: Any) -> None:
    db, secret = "sealed-" + os.urandom(4).hex(), os.urandom(32)
    got = call(page, "sealedRound", db, "epoch/7", secret.hex(), False)
    assert got["opened"] == secret.hex() and secret.hex() not in got["stored"]
    bad = call(page, "sealedRound", db, "epoch/8", secret.hex(), True)
    assert bad["opened"] is None and bad["error"] == "koppi.auth_failed"


def test_only_one_tab_per_device_sends(page: Any) -> None:
    other = page.context.new_page()
    other.goto(page.url)
    device = os.urandom(8).hex()
    assert call(page, "takeSendLock", device) is True
    assert call(other, "takeSendLock", device) is False
    call(page, "dropSendLock", device)
    assert call(other, "takeSendLock", device) is True
    other.close()


def test_the_counter_is_persisted_before_a_message_is_sealed(page: Any) -> None:
    got = call(page, "counterSurvivesRestart", "counter-" + os.urandom(4).hex())
    assert got["second"] == got["first"] + 1
    epochs = [
        c
        for c in load("koppi-thread.json").cases
        if c["kind"] == "commit" and c["observer"] == "bob" and "expected_error" not in c
    ]
    assert got["readable"] == list(range(len(epochs)))  # bob is in every epoch from the start
