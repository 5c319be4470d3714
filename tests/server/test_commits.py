"""Commits through the server (docs/protocol.md §5, §11): the server orders them in the thread's
one sequence, moves the thread's head only from where a commit says it is (the first valid
commit for an epoch wins), fences rosters to approved devices of members, and logs every head.

The server does not verify commit signatures or wraps (members do, `crypto.group.Chain`), so
these tests build structurally valid commits directly."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse

from bench.seeding import RECORDER as SEED_RECORDER
from crypto.commit import REMOVE, Change, Commit, CommitCore, Genesis, RosterEntry
from crypto.consent import next_version, sign_consent
from crypto.logentries import CommitHead
from server.appkeys import ADMISSION, AUTH, COMMITS, ENGINE, MESSAGING, TRANSLOG
from server.db.tables import ConsentVersion, Device
from server.repositories.consents import ConsentRepository
from server.repositories.devices import DeviceRepository
from tests.server.conftest import CLIENT_REF, Cast, b64u
from tests.server.test_ws import connect, recv

pytestmark = pytest.mark.usefixtures("devices")
D = {name: bytes([n]) * 32 for n, name in enumerate(("alice", "bob", "mallory", "old", "new"), 1)}


@pytest.fixture
async def devices(cast: Cast) -> None:
    """alice (Kela) and bob (county) are members; mallory's device is approved but she is not a
    member; bob's old device was revoked and his new one is still pending."""
    repo = DeviceRepository(cast.app[ENGINE])
    for name, user, org, status in (
        ("alice", "alice", cast.org_a, "approved"),
        ("bob", "bob", cast.org_b, "approved"),
        ("mallory", "mallory", cast.org_a, "approved"),
        ("old", "bob", cast.org_b, "revoked"),
        ("new", "bob", cast.org_b, "pending"),
    ):
        await repo.add(
            Device(
                device_id=D[name],
                user_id=cast.users[user],
                org_id=org,
                signing_public=bytes(32),
                kem_public=bytes(32),
                label=name,
                status=status,
                cert_log_index=None,
                revocation_log_index=None,
                created_at=0,
            )
        )


def owner(cast: Cast, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    user = {"old": "bob", "new": "bob"}.get(name, name)
    return cast.users[user], cast.org_a if user in ("alice", "mallory") else cast.org_b


def genesis(cast: Cast, creator: str = "alice") -> Genesis:
    return Genesis(cast.thread.bytes, CLIENT_REF, "rehabilitation-planning", "by-consent",
                   D[creator], 0)  # fmt: skip


def commit(
    cast: Cast, epoch: int, prev: bytes, roster: list[str], committer: str = "alice", **over: Any
) -> Commit:
    entries = []
    for name in roster:
        user, org = owner(cast, name)
        entries.append(RosterEntry(D[name], user.bytes, org.bytes, bytes(32), b""))
    fields: dict[str, Any] = dict(
        thread_id=cast.thread.bytes,
        epoch=epoch,
        prev_commit_hash=prev,
        roster=tuple(sorted(entries, key=lambda e: e.device_id)),
        changes=(),
        coverage=frozenset({cast.org_a.bytes, cast.org_b.bytes}),
        may_store=frozenset({cast.org_a.bytes, cast.org_b.bytes}),
        evidence=cast.consent.core.core_hash,
        committer=D[committer],
        tree_size=0,
        tree_head_hash=bytes(32),
        created_at=0,
    )
    fields.update(over)
    return Commit(CommitCore(**fields), (), (), b"", bytes(32), bytes(64))


def frame(cast: Cast, c: Commit | bytes, g: Genesis | None = None, **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "commit",
        "id": b64u(os.urandom(16)),
        "thread": str(cast.thread),
        "body": b64u(c if isinstance(c, bytes) else c.encode()),
    }
    if g is not None:
        out["genesis"] = b64u(g.encode())
    out.update(over)
    return out


async def refused(ws: ClientWebSocketResponse, sent: dict[str, Any], code: str) -> None:
    await ws.send_json(sent)
    error = await recv(ws, "error")
    assert error["code"] == code and error["id"] == sent["id"], error


async def logged_heads(cast: Cast) -> list[CommitHead]:
    translog = cast.app[TRANSLOG]
    return [
        CommitHead.decode(payload)
        for _, kind, payload in await translog.entries(0, translog.size)
        if kind == "commit-head"
    ]


async def test_commits_extend_the_head_in_order_and_their_heads_are_logged(cast: Cast) -> None:
    alice, bob = await connect(cast, "alice"), await connect(cast, "bob")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice"])
    first = frame(cast, c0, g)
    await alice.send_json(first)
    ack = await recv(alice, "ack")
    assert (ack["id"], ack["seq"], ack["duplicate"]) == (first["id"], 1, False)
    delivered = await recv(bob, "deliver")
    assert delivered["kind"] == "commit" and delivered["body"] == first["body"]
    assert delivered["epoch"] == 0 and delivered["sender"] == b64u(D["alice"])
    # A message between commits keeps the one order.
    await alice.send_json(
        {"type": "send", "id": b64u(os.urandom(16)), "thread": str(cast.thread), "epoch": 0,
         "sender": b64u(D["alice"]), "label": {"orgs": [], "basis": "consent"}, "body": "AAAA"}
    )  # fmt: skip
    assert (await recv(alice, "ack"))["seq"] == 2
    assert (await recv(bob, "deliver"))["kind"] == "message"
    c1 = commit(cast, 1, c0.hash, ["alice", "bob"])
    second = frame(cast, c1)
    await alice.send_json(second)
    assert (await recv(alice, "ack"))["seq"] == 3
    # Resending the same commit is answered with its seq, and logs nothing twice.
    await alice.send_json(second)
    again = await recv(alice, "ack")
    assert (again["seq"], again["duplicate"]) == (3, True)
    assert await logged_heads(cast) == [
        CommitHead(cast.thread.bytes, 0, c0.hash),
        CommitHead(cast.thread.bytes, 1, c1.hash),
    ]
    token = await cast.token("bob")
    r = await cast.client.get(
        f"/api/threads/{cast.thread}", headers={"Authorization": f"Bearer {token}"}
    )
    assert await r.json() == {
        "thread": str(cast.thread),
        "client_ref": CLIENT_REF.hex(),
        "purpose": "rehabilitation-planning",
        "label_policy": "own-organisation",
        "epoch": 1,
        "genesis": b64u(g.encode()),
    }


async def test_the_first_commit_for_an_epoch_wins(cast: Cast) -> None:
    alice, bob = await connect(cast, "alice"), await connect(cast, "bob")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice", "bob"])
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")
    winner = commit(cast, 1, c0.hash, ["alice", "bob"], created_at=1)
    loser = commit(cast, 1, c0.hash, ["alice", "bob"], committer="bob", created_at=2)
    await alice.send_json(frame(cast, winner))
    await recv(alice, "ack")
    await refused(bob, frame(cast, loser), "koppi.stale_commit")
    await refused(bob, frame(cast, commit(cast, 3, winner.hash, ["bob"], committer="bob")),
                  "koppi.epoch_gap")  # fmt: skip
    await refused(bob, frame(cast, commit(cast, 2, bytes(32), ["bob"], committer="bob")),
                  "koppi.bad_prev_hash")  # fmt: skip
    await refused(alice, frame(cast, commit(cast, 0, g.hash, ["alice"]), g), "koppi.stale_commit")
    heads = await logged_heads(cast)
    assert [(h.epoch, h.commit_hash) for h in heads] == [(0, c0.hash), (1, winner.hash)]


async def test_rosters_are_fenced_to_approved_devices_of_members(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    g = genesis(cast)
    for roster in (["alice", "mallory"], ["alice", "old"], ["alice", "new"]):
        await refused(
            alice, frame(cast, commit(cast, 0, g.hash, roster), g), "koppi.roster_refused"
        )
    # An entry naming another user or organisation than the device's is refused too.
    wrong = commit(cast, 0, g.hash, ["alice"])
    entry = wrong.core.roster[0]
    lying = RosterEntry(entry.device_id, cast.users["bob"].bytes, entry.org_id, bytes(32), b"")
    fake = Commit(replace(wrong.core, roster=(lying,)), (), (), b"", bytes(32), bytes(64))
    await refused(alice, frame(cast, fake, g), "koppi.roster_refused")
    # Allowed: the same commit with only approved devices of members.
    await alice.send_json(frame(cast, commit(cast, 0, g.hash, ["alice"]), g))
    assert (await recv(alice, "ack"))["seq"] == 1


async def test_only_a_members_own_approved_device_commits(cast: Cast) -> None:
    g = genesis(cast)
    alice, mallory = await connect(cast, "alice"), await connect(cast, "mallory")
    # mallory is not a member, even with an approved device and a roster of her own.
    await refused(mallory, frame(cast, commit(cast, 0, g.hash, ["alice"], committer="mallory"), g),
                  "koppi.not_member")  # fmt: skip
    # alice cannot commit as bob's device, nor as a device of hers that is not approved.
    await refused(alice, frame(cast, commit(cast, 0, genesis(cast, "bob").hash, ["bob"],
                                            committer="bob"), genesis(cast, "bob")),
                  "koppi.forbidden")  # fmt: skip


async def test_bad_commits_are_refused_and_nothing_is_stored(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice"])
    other = uuid.uuid4()
    other_client = replace(g, client_ref=bytes(32))
    other_purpose = replace(g, purpose="employment-services")
    cases: list[tuple[dict[str, Any], str]] = [
        (frame(cast, b"not a commit", g), "koppi.bad_commit"),
        (frame(cast, c0.encode()[:-1], g), "koppi.bad_commit"),
        (frame(cast, commit(cast, 0, g.hash, ["alice"], thread_id=other.bytes), g),
         "koppi.wrong_thread"),
        (frame(cast, c0), "koppi.bad_genesis"),  # the first commit needs its genesis
        (frame(cast, c0, genesis(cast, "bob")), "koppi.bad_genesis"),  # another creator
        (frame(cast, commit(cast, 0, bytes(32), ["alice"]), g), "koppi.bad_genesis"),
        (frame(cast, c0, genesis=b64u(b"junk")), "koppi.bad_genesis"),
        (frame(cast, commit(cast, 0, other_client.hash, ["alice"]), other_client),
         "koppi.bad_genesis"),  # another client than the thread's
        (frame(cast, commit(cast, 0, other_purpose.hash, ["alice"]), other_purpose),
         "koppi.bad_genesis"),
        (frame(cast, commit(cast, 1, c0.hash, ["alice"]), g), "koppi.frame_invalid"),
        (frame(cast, c0, g, id="short"), "koppi.frame_invalid"),
        (frame(cast, c0, g, extra=1), "koppi.frame_invalid"),
    ]  # fmt: skip
    for sent, code in cases:
        await refused(alice, sent, code)
    assert (await cast.app[COMMITS].genesis_of(cast.thread)) == (None, None)
    assert await logged_heads(cast) == []
    await alice.send_json(frame(cast, c0, g))  # the connection is still fine
    assert (await recv(alice, "ack"))["seq"] == 1


async def test_a_head_the_log_missed_is_logged_at_the_next_start(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    g = genesis(cast)
    messaging = cast.app[MESSAGING]
    hook, messaging.on_commit = messaging.on_commit, None  # the process stops before logging
    c0 = commit(cast, 0, g.hash, ["alice"])
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")
    messaging.on_commit = hook
    assert await logged_heads(cast) == []
    commits = cast.app[COMMITS]
    assert await commits.log_missing_heads(cast.app[TRANSLOG]) == 1
    assert await commits.log_missing_heads(cast.app[TRANSLOG]) == 0
    assert await logged_heads(cast) == [CommitHead(cast.thread.bytes, 0, c0.hash)]


async def test_the_thread_and_its_genesis_are_for_members_only(cast: Cast) -> None:
    for user, status in (("alice", 200), ("mallory", 403)):
        token = await cast.token(user)
        r = await cast.client.get(
            f"/api/threads/{cast.thread}", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status == status
    r = await cast.client.get(f"/api/threads/{cast.thread}")
    assert r.status == 401


async def test_a_revoked_device_fences_its_threads_until_a_commit_without_it(cast: Cast) -> None:
    from server.ws.handler import device_revoked

    alice = await connect(cast, "alice")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice", "bob"])
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")

    def message(epoch: int = 0) -> dict[str, Any]:
        return {"type": "send", "id": b64u(os.urandom(16)), "thread": str(cast.thread),
                "epoch": epoch, "sender": b64u(D["alice"]),
                "label": {"orgs": [], "basis": "consent"}, "body": "AAAA"}  # fmt: skip

    await alice.send_json(message())
    assert (await recv(alice, "ack"))["seq"] == 2  # allowed before the revocation
    repo = DeviceRepository(cast.app[ENGINE])
    await repo.set_status(D["bob"], "revoked")
    bob_device = await repo.get(D["bob"])
    assert bob_device is not None
    await device_revoked(cast.app, bob_device, 7)  # what the revocation endpoint triggers
    await refused(alice, message(), "koppi.removal_due")  # refused after it
    messaging = cast.app[MESSAGING]
    messaging._fenced.clear()
    await messaging.load_fences()  # the fence is stored: a restarted server keeps it
    await refused(alice, message(), "koppi.removal_due")
    await refused(alice, frame(cast, commit(cast, 1, c0.hash, ["alice", "bob"])),
                  "koppi.roster_refused")  # fmt: skip
    await alice.send_json(frame(cast, commit(cast, 1, c0.hash, ["alice"])))
    assert (await recv(alice, "ack"))["seq"] == 3
    await alice.send_json(message(1))
    assert (await recv(alice, "ack"))["seq"] == 4  # re-keyed: the thread is open again
    messaging._fenced.clear()
    await messaging.load_fences()
    assert cast.thread not in messaging._fenced


async def test_a_device_revoked_while_its_commit_waited_is_refused_in_the_transaction(
    cast: Cast,
) -> None:
    """The roster is checked again inside the storing transaction, after the revocation."""
    from server.errors import ApiError
    from server.repositories.threads import HeadAdvance, NewEnvelope
    from server.services.commits import COMMIT_LABEL

    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice", "bob"])
    await DeviceRepository(cast.app[ENGINE]).set_status(D["bob"], "revoked")
    token = await cast.token("alice")
    principal = await cast.app[AUTH].by_token(token)
    assert principal is not None
    envelope = NewEnvelope(
        cast.thread, os.urandom(16), D["alice"], cast.users["alice"], 0, COMMIT_LABEL,
        c0.encode(), HeadAdvance(0, g.hash, c0.hash, g.encode(), (D["alice"], D["bob"])),
    )  # fmt: skip
    with pytest.raises(ApiError) as refusal:
        await cast.app[MESSAGING].send(principal, envelope)
    assert refusal.value.code == "koppi.roster_refused"
    assert (await cast.app[COMMITS].genesis_of(cast.thread)) == (None, None)


async def test_a_commit_cites_the_threads_current_consent_in_force(cast: Cast) -> None:
    """The server checks the evidence as members do (§5.4): a consent recorded for the thread,
    its current version, with that version's coverage and may-store sets."""
    alice = await connect(cast, "alice")
    g = genesis(cast)
    both = frozenset({cast.org_a.bytes, cast.org_b.bytes})
    cases = [
        (dict(evidence=os.urandom(32)), "koppi.unknown_consent"),
        (dict(coverage=frozenset({cast.org_a.bytes})), "koppi.coverage_mismatch"),
        (dict(may_store=frozenset({cast.org_b.bytes})), "koppi.coverage_mismatch"),
    ]
    for over, code in cases:
        await refused(alice, frame(cast, commit(cast, 0, g.hash, ["alice"], **over), g), code)
    c0 = commit(cast, 0, g.hash, ["alice", "bob"], coverage=both)
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")
    # A second version supersedes the first: commits must cite it now.
    v1 = cast.consent
    v2 = sign_consent(next_version(v1, recorded_at=cast.clock.now(), recorder=v1.core.recorder,
                                   valid_until=v1.core.valid_until + 1), SEED_RECORDER)  # fmt: skip
    await ConsentRepository(cast.app[ENGINE]).add(
        ConsentVersion(
            record_hash=v2.record_hash,
            consent_id=v2.core.consent_id,
            version=2,
            thread_id=cast.thread,
            record=v2.encode(),
            log_index=0,
            created_at=cast.clock.now_ms(),
        )
    )
    await cast.app[ADMISSION].changed(cast.thread, None)
    await refused(alice, frame(cast, commit(cast, 1, c0.hash, ["alice", "bob"])),
                  "koppi.consent_inactive")  # fmt: skip
    c1 = commit(cast, 1, c0.hash, ["alice", "bob"], evidence=v2.core.core_hash)
    await alice.send_json(frame(cast, c1))
    assert (await recv(alice, "ack"))["seq"] == 2


async def test_every_new_epoch_and_removal_is_in_the_committers_audit_trail(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice", "bob"])
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")
    c1 = commit(cast, 1, c0.hash, ["alice"],
                changes=(Change(D["bob"], REMOVE, "consent-narrowed"),))  # fmt: skip
    await alice.send_json(frame(cast, c1))
    await recv(alice, "ack")
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(cast.org_a)
    events = [(e.action, e.subject) for e in trail if e.action in ("thread.committed",
                                                                   "member.removed")]  # fmt: skip
    assert events == [
        ("thread.committed", f"{cast.thread} epoch 0"),
        ("thread.committed", f"{cast.thread} epoch 1"),
        ("member.removed", f"{cast.thread} {D['bob'].hex()[:32]} consent-narrowed"),
    ]
    assert {e.actor for e in trail if e.action == "thread.committed"} == {cast.users["alice"]}


async def test_a_message_on_another_epoch_than_the_threads_is_refused(cast: Cast) -> None:
    """Receivers refuse a message sequenced outside its epoch (docs/protocol.md §7.4): the
    server refuses it first, stores nothing, and the sender re-encrypts under the same id."""
    alice = await connect(cast, "alice")
    g = genesis(cast)
    c0 = commit(cast, 0, g.hash, ["alice"])
    await alice.send_json(frame(cast, c0, g))
    await recv(alice, "ack")
    await alice.send_json(frame(cast, commit(cast, 1, c0.hash, ["alice"])))
    assert (await recv(alice, "ack"))["seq"] == 2

    def message(epoch: int, msg_id: bytes) -> dict[str, Any]:
        return {"type": "send", "id": b64u(msg_id), "thread": str(cast.thread), "epoch": epoch,
                "sender": b64u(D["alice"]), "label": {"orgs": [], "basis": "consent"},
                "body": "AAAA"}  # fmt: skip

    msg_id = os.urandom(16)
    await refused(alice, message(0, msg_id), "koppi.stale_epoch")
    await refused(alice, message(2, msg_id), "koppi.unknown_epoch")
    await alice.send_json(message(1, msg_id))  # the same id, on the thread's epoch
    ack = await recv(alice, "ack")
    assert (ack["seq"], ack["duplicate"]) == (3, False)
