"""The browser's log follower (web/static/protocol/follower.js) agrees with the Python one
(client/trust.py `LogFollower`) on the same log, in real Chromium: the same paths asked, the same
recomputed tree, the same entries trusted and the same ones refused with the same codes, across a
second follow that needs a consistency proof; and both refuse a log whose entries are not the
head's tree, a shrunk log and a head of another log in the same way. Its Merkle tree gives the
same roots and proofs as crypto/merkle.py for every size."""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from client.trust import LogFollower
from crypto.errors import KoppiError
from crypto.identity import TrustStore
from crypto.logentries import CommitHead, WebManifest
from crypto.merkle import MerkleTree, leaf_hash
from crypto.primitives import SigningKey, sha256
from crypto.treehead import LogConfig, LogView, key_id, sign_tree_head
from crypto.vectors.world import World

pytestmark = pytest.mark.browser
RUNNER = "/tests/browser/runner.js"


def call(page: Any, fn: str, *args: Any) -> Any:
    return page.evaluate(f"async (a) => (await import('{RUNNER}')).{fn}(...a)", list(args))


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def served(world: World, head: bytes | None = None, *, start: int = 0, tamper: int | None = None,
           drop: int | None = None) -> dict[str, Any]:  # fmt: skip
    """What the server answers for the paths a follower asks: the head (as `/api/log/head` and
    `?cosigned=k`) and the entries from `start` in pages of at most 1000."""
    cth = world.head().encode() if head is None else head
    body = {"head": b64u(cth)}
    out: dict[str, Any] = {"/api/log/head": body}
    for k in range(1, 4):
        out[f"/api/log/head?cosigned={k}"] = body
    entries = []
    for i, (kind, _, payload) in enumerate(world.entries):
        if i < start or i == drop:
            continue
        data = payload if i != tamper else payload[:-1] + bytes([payload[-1] ^ 1])
        entries.append({"index": i, "kind": kind, "data": b64u(data)})
    size = len(world.entries)
    for lo in range(start, size, 1000):
        page = [e for e in entries if lo <= e["index"] < min(lo + 1000, size)]
        out[f"/api/log/entries?start={lo}&end={min(lo + 1000, size)}"] = {"entries": page}
    return out


def pins(world: World, consents: list[bytes]) -> dict[str, Any]:
    return {
        "root_public": world.root.public.hex(), "log_public": world.log_key.public.hex(),
        "witness_publics": [w.public.hex() for w in world.witnesses],
        "quorum": world.config.quorum, "now_ms": world.clock.now_ms(),
        "consents": [c.hex() for c in consents],
    }  # fmt: skip


def python_follow(follower: LogFollower, answers: dict[str, Any]) -> tuple[list[str], str | None]:
    asked: list[str] = []

    async def get(path: str) -> Any:
        asked.append(path)
        return answers[path]

    def run() -> str | None:
        try:
            asyncio.run(follower.follow(get))
        except KoppiError as err:
            return err.code
        return None

    # Playwright's sync API holds this thread's event loop: Python's follower runs beside it.
    with ThreadPoolExecutor(1) as pool:
        return asked, pool.submit(run).result()


def new_follower(world: World, config: LogConfig | None = None) -> LogFollower:
    return LogFollower(TrustStore(world.root.public, LogView(config or world.config, world.clock)))


def python_view(world: World, follower: LogFollower, consents: list[bytes]) -> dict[str, Any]:
    trust = follower.trust
    devices = {}
    for d in world.devices:
        found = trust.device(d.device_id)
        if found is not None:
            devices[d.device_id.hex()] = {
                "cert_log_index": found.cert_log_index,
                "revoked_at_index": found.revoked_at_index,
                "cert_hash": found.cert_hash.hex(),
            }
    return {
        "size": follower.size,
        "root": MerkleTree.from_leaf_hashes(follower.leaf_hashes()).root().hex(),
        "refused": {str(i): [r.kind, r.code] for i, r in follower.refused.items()},
        "devices": devices,
        "links": sorted(d.device_id.hex() for d in world.devices if trust.linked(d.device_id)),
        "consents": [trust.consent(c) is not None for c in consents],
    }


def grow(world: World) -> tuple[list[bytes], dict[str, Any]]:
    """A log with every kind of entry, and some that an honest client refuses."""
    kela, county = world.add_org("Kela"), world.add_org("County")
    alice, bob = world.add_device(kela), world.add_device(county)
    laptop = world.add_device(kela, user_id=alice.user_id)
    world.link(alice, laptop)
    world.link(alice, bob)  # across users: koppi.bad_device_link
    world.add_device(kela, signed_by=SigningKey.generate(world.rng))  # koppi.unknown_org_key
    evidence = world.consent([kela, county])
    manifest = WebManifest("1.2.3", {"app.js": sha256(b"app"), "protocol/x.js": sha256(b"x")})
    world._log("web-release", manifest.log_entry(), manifest.encode())
    world._log("commit-head", CommitHead(b"\x01" * 16, 0, b"\x02" * 32).encode())
    lost = world.add_device(county)
    world.revoke(lost)
    return [evidence], {"kela": kela, "county": county, "alice": alice}


def test_the_browser_follower_trusts_and_refuses_what_the_python_one_does(page: Any) -> None:
    world = World("browser-follower")
    consents, cast = grow(world)
    python = new_follower(world)
    answers = served(world)
    asked, error = python_follow(python, answers)
    assert error is None
    got = call(page, "followLog", pins(world, consents), answers, True)
    want = python_view(world, python, consents)
    assert got.pop("asked") == asked
    assert got == want
    assert sorted(want["refused"].values()) == [
        ["device", "koppi.unknown_org_key"], ["link", "koppi.bad_device_link"],
    ]  # fmt: skip
    assert want["consents"] == [True] and len(want["links"]) == 1

    # The log grows (a rotation, a certificate by the retired key, a revocation): both follow
    # from where they were, through a consistency proof.
    world.clock.advance(60)
    rotated = world.rotate_org(cast["kela"])
    world.add_device(rotated, signed_by=cast["kela"].key)  # koppi.cert_after_retirement
    world.revoke(cast["alice"])
    old_size = python.size
    answers = served(world, start=old_size)
    asked, error = python_follow(python, answers)
    assert error is None
    got = call(page, "followLog", pins(world, consents), answers)
    want = python_view(world, python, consents)
    assert got.pop("asked") == asked and got == want
    assert ["device", "koppi.cert_after_retirement"] in want["refused"].values()
    assert want["devices"][cast["alice"].device_id.hex()]["revoked_at_index"] is not None


@pytest.mark.parametrize(
    "bad",
    ["tampered-entry", "missing-entry", "shrunk-log", "another-log"],
)
def test_both_followers_refuse_a_log_that_is_not_the_heads_tree(page: Any, bad: str) -> None:
    world = World("browser-follower-bad")
    consents, _ = grow(world)
    size = len(world.entries)
    if bad == "tampered-entry":
        answers = served(world, tamper=3)
    elif bad == "missing-entry":
        answers = served(world, drop=size - 1)
    elif bad == "another-log":
        other = SigningKey.generate(world.rng)
        head = world.head().head
        forged = sign_tree_head(other, type(head)(head.size, head.root, head.timestamp_ms,
                                                  key_id(other.public)))  # fmt: skip
        answers = served(world, forged.encode())
    else:
        answers = served(world)
    python = new_follower(world)
    if bad == "shrunk-log":
        _, error = python_follow(python, answers)
        assert error is None and call(page, "followLog", pins(world, consents), answers,
                                      True).get("error") is None  # fmt: skip
        smaller = World("browser-follower-bad")  # the same log, a few entries shorter
        grow(smaller)
        del smaller.entries[size - 2 :]
        smaller.tree = MerkleTree.from_leaf_hashes(
            leaf_hash(e) for _, e, _ in smaller.entries
        )  # fmt: skip
        smaller.clock.advance(60)
        answers = served(smaller)
    _, error = python_follow(python, answers)
    got = call(page, "followLog", pins(world, consents), answers, bad != "shrunk-log")
    expected = {
        "tampered-entry": "koppi.bad_inclusion_proof",
        "missing-entry": "koppi.bad_inclusion_proof",
        "shrunk-log": "koppi.tree_head_rollback",
        "another-log": "koppi.unknown_log",
    }[bad]
    assert (error, got["error"]) == (expected, expected)
    assert got["size"] == python.size  # a refused head changes nothing


def test_the_browser_merkle_tree_gives_pythons_roots_and_proofs(page: Any) -> None:
    leaves = [leaf_hash(bytes([i]) * (i + 1)) for i in range(13)]
    got = call(page, "merkleProofs", [h.hex() for h in leaves])
    tree = MerkleTree.from_leaf_hashes(leaves)
    assert got["roots"] == [tree.root(n).hex() for n in range(14)]
    for n in range(14):
        for m in range(n):
            assert got["inclusion"][f"{m}/{n}"] == [p.hex() for p in tree.inclusion_proof(m, n)]
        for m in range(n + 1):
            assert got["consistency"][f"{m}/{n}"] == [p.hex() for p in tree.consistency_proof(m, n)]


def test_an_unwitnessed_pin_accepts_the_log_signature_alone(page: Any) -> None:
    """A deployment without witnesses (quorum 0) pins the log key only, as a Python client
    pinned without witnesses does (client/keystore.py `Pins.log_view`); a quorum of one refuses
    the same uncosigned head in both."""
    world = World("browser-follower-unwitnessed")
    consents, _ = grow(world)
    answers = served(world, sign_tree_head(world.log_key, world.head().head).encode())
    python = new_follower(world, LogConfig(world.log_key.public, {}, 0))
    _, error = python_follow(python, answers)
    got = call(page, "followLog", {**pins(world, consents), "quorum": 0}, answers, True)
    assert error is None and "error" not in got and got["size"] == python.size == len(world.entries)
    _, error = python_follow(new_follower(world), answers)
    got = call(page, "followLog", pins(world, consents), answers, True)
    assert (error, got["error"]) == ("koppi.cosignature_quorum", "koppi.cosignature_quorum")
