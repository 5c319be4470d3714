"""Messages in the audit trail (issue #8, "Audit and disclosure log"): every stored message is
one `message.stored` event of its sender's organisation (metadata only, in the storing
transaction, so an acknowledged message is always audited), and what each connection received is
`message.delivered` ranges of the receiver's organisation, coalesced per connection and thread
and written every `audit_delivery_flush_s`, when the connection leaves the thread and when it
closes (docs/protocol.md §11)."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse

from crypto.clock import FakeClock
from server.appkeys import DELIVERIES, ENGINE
from server.audit import Link, NewEvent, verify_chain
from server.bus import Delivery
from server.db.tables import Device
from server.principal import Principal
from server.repositories.devices import DeviceRepository
from server.services import deliveries
from tests.server.conftest import Cast, b64u
from tests.server.test_admission import Conference, conference, hello, message  # noqa: F401
from tests.server.test_export import label
from tests.server.test_migrations_and_cli import _koppi
from tests.server.test_ws import DEVICE, connect, recv, send_frame


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"audit_delivery_flush_s": 3600.0}  # flushed by the tests, never by the timer


async def events(cast: Cast, action: str) -> list[Link]:
    return [e for e in await DeviceRepository(cast.app[ENGINE]).audit_chain() if e.action == action]


async def test_a_stored_message_is_audited_once_with_its_label_and_never_its_content(
    cast: Cast,
) -> None:
    a, b = sorted((cast.org_a, cast.org_b), key=lambda o: o.bytes)
    alice, bob, mallory = [await connect(cast, u) for u in ("alice", "bob", "mallory")]
    secret = b"SALAINEN-" + os.urandom(8).hex().encode()
    msg_id = os.urandom(16)
    await alice.send_json(send_frame(cast, "alice", secret, msg_id, label=label(a, b)))
    ack = await recv(alice, "ack")
    # Audited in the storing transaction: there by the time of the ack.
    stored = await events(cast, "message.stored")
    assert [(e.org_id, e.actor, e.subject) for e in stored] == [
        (cast.org_a, cast.users["alice"],
         f"{cast.thread} seq {ack['seq']} {b64u(msg_id)} consent {a},{b}"),
    ]  # fmt: skip

    # A resend of the stored id, the same id from another device, a sender who is not a member
    # and a label the consent does not allow store nothing, and audit no message either.
    await alice.send_json(send_frame(cast, "alice", b"re-encrypted", msg_id))
    assert (await recv(alice, "ack"))["duplicate"] is True
    await bob.send_json(send_frame(cast, "bob", b"mine?", msg_id))
    assert (await recv(bob, "error"))["code"] == "koppi.duplicate_message_id"
    await mallory.send_json(send_frame(cast, "mallory", b"let me in"))
    assert (await recv(mallory, "error"))["code"] == "koppi.not_member"
    await alice.send_json(send_frame(cast, "alice", b"x", label=label(uuid.uuid4())))
    assert (await recv(alice, "error"))["code"] == "koppi.label_not_covered"
    assert await events(cast, "message.stored") == stored

    # bob's message, labelled for nobody, is in bob's organisation's trail with `-`.
    other = os.urandom(16)
    await bob.send_json(send_frame(cast, "bob", b"nobody stores this", other))
    seq = (await recv(bob, "ack"))["seq"]
    last = (await events(cast, "message.stored"))[-1]
    assert (last.org_id, last.actor) == (cast.org_b, cast.users["bob"])
    assert last.subject == f"{cast.thread} seq {seq} {b64u(other)} consent -"
    chain = await DeviceRepository(cast.app[ENGINE]).audit_chain()
    text = " ".join(e.subject for e in chain)
    assert secret.decode() not in text and base64.b64encode(secret).decode()[:12] not in text
    assert b64u(secret)[:12] not in text
    assert verify_chain(chain).broken_at is None


async def named_device(cast: Cast, user: str) -> ClientWebSocketResponse:
    """A connection whose hello names the user's (approved) device."""
    token = await cast.token(user)
    ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
    await ws.send_json({"type": "hello", "v": 1, "device": b64u(DEVICE[user])})
    assert (await ws.receive_json())["type"] == "ready"
    return ws


async def received(ws: ClientWebSocketResponse, n: int) -> list[int]:
    return [(await recv(ws, "deliver"))["seq"] for _ in range(n)]


def ranges(subjects: list[str], prefix: str) -> list[tuple[int, int]]:
    """The `first-last` ranges of the subjects that start with `prefix`."""
    out = []
    for s in subjects:
        if s.startswith(prefix):
            first, last = s.removeprefix(prefix).split("-")
            out.append((int(first), int(last)))
    return out


async def test_deliveries_are_coalesced_ranges_per_connection_and_a_close_writes_its_own(
    cast: Cast, database_url: str
) -> None:
    await DeviceRepository(cast.app[ENGINE]).add(
        Device(device_id=DEVICE["bob"], user_id=cast.users["bob"], org_id=cast.org_b,
               signing_public=bytes(32), kem_public=bytes(32), label="bob", status="approved",
               cert_log_index=None, revocation_log_index=None, created_at=0)
    )  # fmt: skip
    audit = cast.app[DELIVERIES]
    alice, bob1 = await connect(cast, "alice"), await named_device(cast, "bob")
    # alice sends: her connection gets each delivery in the write that carries its ack.
    got: dict[str, list[int]] = {"alice": list(range(1, 7)), "bob1": [], "bob2": []}

    async def say(n: int) -> None:
        for _ in range(n):
            await alice.send_json(send_frame(cast, "alice", os.urandom(32)))
            await recv(alice, "ack")

    await say(2)
    got["bob1"] += await received(bob1, 2)
    bob2 = await connect(cast, "bob", resume={str(cast.thread): 1})  # no device; resumes at 1
    got["bob2"] += await received(bob2, 1)  # seq 2 from the backlog
    await say(1)
    for name, ws in (("bob1", bob1), ("bob2", bob2)):
        got[name] += await received(ws, 1)  # seq 3, live
    assert await events(cast, "message.delivered") == []  # nothing before a flush
    assert await audit.flush() == 3
    await say(2)
    for name, ws in (("bob1", bob1), ("bob2", bob2)):
        got[name] += await received(ws, 2)
    assert await audit.flush() == 3
    assert await audit.flush() == 0  # nothing new

    # A close writes that connection's range at once, without waiting for a flush.
    await say(1)
    for name, ws in (("bob1", bob1), ("bob2", bob2)):
        got[name] += await received(ws, 1)
    await bob2.close()
    async with asyncio.timeout(5):
        while len(await events(cast, "message.delivered")) < 7:
            await asyncio.sleep(0.02)
    assert len(await events(cast, "message.delivered")) == 7  # alice's and bob1's stay open
    assert await audit.flush() == 2

    delivered = await events(cast, "message.delivered")
    thread, device = str(cast.thread), DEVICE["bob"][:16].hex()
    bob_events = [e for e in delivered if e.org_id == cast.org_b]
    assert {e.actor for e in bob_events} == {cast.users["bob"]}
    assert all(e.actor == cast.users["alice"] for e in delivered if e.org_id == cast.org_a)
    subjects = {
        "alice": [e.subject for e in delivered if e.org_id == cast.org_a],
        "bob1": [e.subject for e in bob_events],
        "bob2": [e.subject for e in bob_events],
    }
    expected = {
        "alice": (f"{thread} - seq ", [(1, 3), (4, 5), (6, 6)]),
        "bob1": (f"{thread} {device} seq ", [(1, 3), (4, 5), (6, 6)]),
        "bob2": (f"{thread} - seq ", [(2, 3), (4, 5), (6, 6)]),
    }
    for name, (prefix, spans) in expected.items():
        assert ranges(subjects[name], prefix) == spans, name
        # The ranges cover exactly what the connection received, each seq once.
        covered = [s for first, last in spans for s in range(first, last + 1)]
        assert covered == got[name], name
    assert len(delivered) == 9
    ok = _koppi("--database-url", database_url, "audit", "verify")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("with_consent", [False])
async def test_leaving_a_thread_writes_its_range_and_commits_are_no_stored_messages(
    conference: Conference,  # noqa: F811
) -> None:
    cast = conference.cast
    (alice, _), (carl, _) = [await hello(cast, u) for u in ("alice", "carl")]
    await alice.send_json(message(conference, "alice", b"before", 0))
    seq = (await recv(alice, "ack"))["seq"]
    assert [(await recv(carl, "deliver"))["seq"] for _ in range(2)] == [1, seq]  # commit, message
    stored = await events(cast, "message.stored")
    assert [e.subject.split(" ")[2] for e in stored] == [str(seq)]  # the commit is not in it
    assert [e.action for e in await events(cast, "thread.committed")] == ["thread.committed"]

    # The consent no longer covers carl's organisation: he is removed from the thread, and what
    # he received there is in his organisation's trail at once.
    kept = tuple(o for o in conference.consent.core.organisations
                 if o.org_id != conference.org_c.bytes)  # fmt: skip
    await conference.revise(organisations=kept)
    await recv(carl, "removed")

    async def carls() -> list[Link]:
        return [e for e in await events(cast, "message.delivered") if e.org_id == conference.org_c]

    async with asyncio.timeout(5):
        while not await carls():
            await asyncio.sleep(0.02)
    assert [(e.actor, e.subject) for e in await carls()] == [
        (cast.users["carl"], f"{cast.thread} - seq 1-{seq}")
    ]


@pytest.mark.parametrize("config_overrides", [{"audit_delivery_flush_s": 0.05}])
async def test_the_flush_timer_writes_open_ranges_by_itself(cast: Cast) -> None:
    alice, bob = await connect(cast, "alice"), await connect(cast, "bob")
    await alice.send_json(send_frame(cast, "alice", b"x"))
    await recv(alice, "ack")
    await recv(bob, "deliver")
    async with asyncio.timeout(5):
        while len(await events(cast, "message.delivered")) < 2:
            await asyncio.sleep(0.02)
    written = {(e.org_id, e.subject) for e in await events(cast, "message.delivered")}
    assert written == {(org, f"{cast.thread} - seq 1-1") for org in (cast.org_a, cast.org_b)}
    assert not alice.closed and not bob.closed  # written while both connections stay open


class FlakyTrail:
    """A trail whose second append fails once."""

    def __init__(self) -> None:
        self.appends: list[list[NewEvent]] = []
        self.written: list[NewEvent] = []

    async def audit_many(self, events: list[NewEvent]) -> None:
        self.appends.append(list(events))
        if len(self.appends) == 2:
            raise RuntimeError("database gone for a moment")
        self.written += events


async def test_ranges_are_written_in_slices_and_a_failed_append_loses_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deliveries, "WRITE_SLICE", 2)
    trail, thread = FlakyTrail(), uuid.uuid4()
    audit = deliveries.DeliveryAudit(trail, FakeClock(), flush_s=3600)  # type: ignore[arg-type]
    for n in range(5):
        user = uuid.UUID(int=n + 1)
        principal = Principal(user, uuid.UUID(int=99), f"u{n}", frozenset(), "bearer")
        ranges = audit.connection(principal, None)
        ranges.delivered(
            [None] + [Delivery(thread, seq, b"", 0, b"", "", b"", 0) for seq in range(1, n + 2)]
        )
    with pytest.raises(RuntimeError):
        await audit.flush()
    assert [len(a) for a in trail.appends] == [2, 2]
    assert await audit.flush() == 3  # the failed slice and the rest, at the next flush
    assert [len(a) for a in trail.appends] == [2, 2, 2, 1]
    assert sorted(e.subject for e in trail.written) == sorted(
        f"{thread} - seq 1-{n + 1}" for n in range(5)
    )
    assert {e.actor for e in trail.written} == {uuid.UUID(int=n + 1) for n in range(5)}
