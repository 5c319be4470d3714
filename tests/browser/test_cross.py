"""Cross tests both ways: what the browser seals Python opens, and the reverse (issue: browser
twin, "Proof"). Messages, HPKE, and epoch-secret wraps."""

from __future__ import annotations

import os
from typing import Any

import pytest

from crypto import commit
from crypto import message as m
from crypto.epoch import Epoch
from crypto.primitives import KemKey, SigningKey, hpke_open, hpke_seal
from crypto.schedule import EpochKeys
from crypto.trust import VerifiedDevice
from tests.crypto.vectors import load, unhex

pytestmark = pytest.mark.browser

DOC = load("koppi-message.json").doc
RUNNER = "/tests/browser/runner.js"


def call(page: Any, fn: str, *args: Any) -> Any:
    return page.evaluate(f"async (a) => (await import('{RUNNER}')).{fn}(...a)", list(args))


def vector_epoch() -> Epoch:
    e = DOC["epochs"]["main"]
    thread, core_hash = unhex(e["thread_id"]), unhex(e["core_hash"])
    devices = {}
    for d in DOC["devices"].values():
        devices[unhex(d["device_id"])] = VerifiedDevice(
            device_id=unhex(d["device_id"]), user_id=unhex(d["user_id"]),
            org_id=unhex(d["org_id"]), roles=frozenset(d["roles"]),
            signing_public=unhex(d["signing_public"]), kem_public=unhex(d["kem_public"]),
            cert_hash=unhex(d["cert_hash"]), cert_log_index=d["cert_log_index"],
            revoked_at_index=d["revoked_at_index"],
        )  # fmt: skip
    roster = {k: v for k, v in devices.items()
              if k.hex() in {DOC["devices"][n]["device_id"] for n in e["roster"]}}  # fmt: skip
    return Epoch(
        thread_id=thread, number=e["number"], epoch_id=unhex(e["epoch_id"]),
        commit_hash=unhex(e["commit_hash"]), core_hash=core_hash,
        keys=EpochKeys.derive(unhex(e["epoch_secret"]), core_hash, thread, e["number"]),
        roster=roster, coverage=frozenset(unhex(o) for o in e["coverage"]),
        may_store=frozenset(unhex(o) for o in e["may_store"]), tree_size=e["tree_size"],
    )  # fmt: skip


def test_a_message_sealed_in_the_browser_opens_in_python(page: Any) -> None:
    ep = vector_epoch()
    label = m.StorageLabel(frozenset(ep.may_store), "consent", 30)
    body = "Selaimessa sinetöity viesti 🙂".encode()
    fields = {
        "counter": 41, "message_id": os.urandom(16).hex(), "timestamp_ms": 1_790_000_000_123,
        "reuse_guard": os.urandom(4).hex(), "label": label.encode().hex(),
        "content_type": "text/plain", "body": body.hex(), "tree_size": 10,
        "tree_head_hash": os.urandom(32).hex(),
    }  # fmt: skip
    sealed = unhex(call(page, "sealForPython", DOC["sender_seeds"]["alice"], fields))
    opened = m.open(ep, sealed)
    assert opened.body == body and opened.header.counter == 41 and opened.label == label
    # Byte for byte what Python seals from the same inputs (Ed25519 and AES-GCM are deterministic).
    again = m.seal(ep, SigningKey.from_seed(unhex(DOC["sender_seeds"]["alice"])), counter=41,
                   message_id=unhex(fields["message_id"]), timestamp_ms=fields["timestamp_ms"],
                   reuse_guard=unhex(fields["reuse_guard"]), label=label,
                   content_type="text/plain", body=body, tree_size=10,
                   tree_head_hash=unhex(fields["tree_head_hash"]))  # fmt: skip
    assert again == sealed


def test_a_message_sealed_in_python_opens_in_the_browser(page: Any) -> None:
    ep = vector_epoch()
    alice = SigningKey.from_seed(unhex(DOC["sender_seeds"]["alice"]))
    body = os.urandom(5000)
    sealed = m.seal(ep, alice, counter=7, message_id=os.urandom(16), timestamp_ms=1,
                    reuse_guard=os.urandom(4), label=m.StorageLabel(frozenset(), "consent"),
                    content_type="application/octet-stream", body=body, tree_size=10,
                    tree_head_hash=b"")  # fmt: skip
    got = call(page, "openFromPython", sealed.hex())
    assert got == {"body": body.hex(), "sender": m.peek_header(sealed).sender.hex(), "counter": 7}


def test_hpke_both_ways(page: Any) -> None:
    recipient = KemKey.from_bytes(os.urandom(32))
    info, pt = b"koppi/v1/wrap" + os.urandom(32), os.urandom(45)
    from_browser = unhex(
        call(page, "hpkeSealForPython", recipient.public.hex(), info.hex(), pt.hex())
    )
    assert hpke_open(recipient, info, from_browser) == pt
    from_python = hpke_seal(recipient.public, info, pt)
    assert call(page, "hpkeOpenFromPython", recipient.private_bytes().hex(), info.hex(),
                from_python.hex()) == pt.hex()  # fmt: skip


def test_epoch_secret_wraps_both_ways(page: Any) -> None:
    recipient = KemKey.from_bytes(os.urandom(32))
    thread, core_hash, device, kp = os.urandom(16), os.urandom(32), os.urandom(32), os.urandom(32)
    secret = os.urandom(32)
    sealed = unhex(call(page, "wrapSecretForPython", recipient.public.hex(), thread.hex(), 5,
                        core_hash.hex(), device.hex(), kp.hex(), secret.hex()))  # fmt: skip
    info = commit.wrap_info(thread, 5, core_hash, device, kp)
    assert commit.open_secret(recipient, info, sealed, 5) == secret
    from_python = commit.seal_secret(recipient.public, info, 5, secret)
    opened = call(page, "unwrapSecretFromPython", recipient.private_bytes().hex(), thread.hex(),
                  5, core_hash.hex(), device.hex(), kp.hex(), from_python.hex())  # fmt: skip
    assert opened == secret.hex()
