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


# --- commits and history wraps both ways -------------------------------------------------------


def sync_payload(world: Any, old_size: int) -> dict[str, Any]:
    cth = world.head()
    return {
        "tree_head": cth.encode().hex(),
        "consistency_proof": [
            p.hex()
            for p in (world.tree.consistency_proof(old_size, cth.head.size) if old_size else [])
        ],
        "entries": [
            {"index": i, "kind": kind, "data": payload.hex(),
             "proof": [p.hex() for p in world.tree.inclusion_proof(i, cth.head.size)]}
            for i, (kind, _, payload) in enumerate(world.entries) if i >= old_size
        ],
    }  # fmt: skip


def secrets_json(device: Any) -> dict[str, Any]:
    s = device.secrets
    return {
        "device_id": s.device_id.hex(),
        "signing_seed": s.signing.seed_bytes().hex(),
        "cert_kem_private": s.cert_kem.private_bytes().hex(),
        "package_keys": {h.hex(): k.private_bytes().hex() for h, k in s.package_keys.items()},
    }


def invite(device: Any) -> dict[str, str]:
    return {"device_id": device.device_id.hex(), "key_package": device.key_package.encode().hex()}


def test_commits_and_history_wraps_both_ways(page: Any) -> None:
    """The browser opens a thread (Python applies it), Python admits a device with history (the
    browser applies it), the browser admits another with history (Python reads it), and messages
    cross both ways in every epoch."""
    from crypto.group import ThreadState
    from crypto.vectors.world import World, member

    w = World("browser-cross-commits")
    kela, county = w.add_org("Kela"), w.add_org("County")
    alice = w.add_device(kela)  # lives in the browser
    bob, carol, dave = w.add_device(county), w.add_device(kela), w.add_device(county)
    evidence = w.consent([kela, county])
    genesis = w.genesis(alice)
    log: list[tuple[bytes, int]] = []
    trust = {d.device_id: w.client() for d in (bob, carol, dave)}
    call(page, "startMember", {
        "root_public": w.root.public.hex(), "log_public": w.log_key.public.hex(),
        "witness_publics": [k.public.hex() for k in w.witnesses], "quorum": w.config.quorum,
        "now_ms": w.clock.now_ms(), "sync": sync_payload(w, 0), "genesis": genesis.encode().hex(),
        "me": secrets_json(alice),
    })  # fmt: skip

    # Epoch 0 made in the browser, applied by Python.
    data0 = unhex(call(page, "proposeMember", {
        "add": [invite(alice), invite(bob)],
        "evidence": evidence.hex(), "thread_info": b"Asiakas 7F3A".hex(),
    }))  # fmt: skip
    log.append((data0, 1))
    assert call(page, "applyMember", data0.hex(), 1)["epoch"] == 0
    b = ThreadState.join(genesis, bob.secrets, log, trust[bob.device_id])
    assert b.thread_info == b"Asiakas 7F3A"
    m0 = unhex(call(page, "encryptMember", b"from the browser, epoch 0".hex()))
    assert b.decrypt(m0, 2).body == b"from the browser, epoch 0"

    # Epoch 1 made in Python (carol added with epoch 0's history), applied in the browser.
    data1 = b.propose(trust[bob.device_id], w.rng, w.clock,
                      add=[member(trust[bob.device_id], carol)])  # fmt: skip
    log.append((data1, 3))
    b.apply(data1, 3, trust[bob.device_id])
    assert call(page, "applyMember", data1.hex(), 3)["epoch"] == 1
    c = ThreadState.join(genesis, carol.secrets, log, trust[carol.device_id])
    assert c.decrypt(m0, 2).body == b"from the browser, epoch 0"  # history made in Python
    m1 = b.encrypt(b"from Python, epoch 1", label=m.StorageLabel(frozenset(), "consent"),
                   trust=trust[bob.device_id], rng=w.rng, clock=w.clock)  # fmt: skip
    assert unhex(call(page, "decryptMember", m1.hex(), 4)) == b"from Python, epoch 1"

    # Epoch 2 made in the browser (dave added with epochs 0 and 1), read by Python.
    data2 = unhex(call(page, "proposeMember", {
        "add": [invite(dave)],
    }))  # fmt: skip
    log.append((data2, 5))
    assert call(page, "applyMember", data2.hex(), 5)["readable"] == [0, 1, 2]
    d = ThreadState.join(genesis, dave.secrets, log, trust[dave.device_id])
    assert d.readable_epochs == {0, 1, 2}  # history wraps made in the browser
    assert d.decrypt(m0, 2).body == b"from the browser, epoch 0"
    assert d.decrypt(m1, 4).body == b"from Python, epoch 1"
    for state, t in ((b, bob), (c, carol)):
        state.apply(data2, 5, trust[t.device_id])
    m2 = unhex(call(page, "encryptMember", b"epoch 2".hex()))
    assert {s.decrypt(m2, 6).body for s in (b, c, d)} == {b"epoch 2"}
