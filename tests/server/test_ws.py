"""The websocket core (docs/protocol.md §11): ack after commit, idempotency, one order, resume,
membership, and every kind of bad input answered with its code while the connection stays up."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from sqlalchemy import func, select

from server.appkeys import BUS, ENGINE, MESSAGING
from server.db.tables import Envelope
from tests.server.conftest import Cast, b64u

DEVICE = {"alice": bytes([1]) * 32, "bob": bytes([2]) * 32, "mallory": bytes([3]) * 32}
LABEL: dict[str, Any] = {"orgs": [], "basis": "consent"}


async def connect(
    cast: Cast, user: str, resume: dict[str, int] | None = None
) -> ClientWebSocketResponse:
    token = await cast.token(user)
    ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
    await ws.send_json({"type": "hello", "v": 1, "resume": resume or {}})
    ready = await ws.receive_json()
    assert ready["type"] == "ready", ready
    return ws


def send_frame(
    cast: Cast, user: str, body: bytes, msg_id: bytes | None = None, **over: Any
) -> dict[str, Any]:
    frame = {
        "type": "send",
        "id": b64u(msg_id or os.urandom(16)),
        "thread": str(cast.thread),
        "epoch": 0,
        "sender": b64u(DEVICE[user]),
        "label": LABEL,
        "body": b64u(body),
    }
    frame.update(over)
    return frame


async def recv(ws: ClientWebSocketResponse, kind: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), timeout)
        if msg["type"] == kind:
            return msg  # type: ignore[no-any-return]
        if msg["type"] == "error" and kind != "error":
            raise AssertionError(f"unexpected error {msg}")


async def stored(cast: Cast) -> int:
    async with cast.app[ENGINE].connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Envelope))).scalar_one())


async def test_websocket_without_credentials_is_refused(cast: Cast) -> None:
    r = await cast.client.get("/ws")
    assert r.status == 401


async def test_cookie_websocket_from_another_origin_is_refused(cast: Cast) -> None:
    await cast.login("alice")
    r = await cast.client.get("/ws", headers={"Origin": "https://evil.example"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.bad_origin"


async def test_cookie_websocket_from_its_own_origin_is_allowed(cast: Cast) -> None:
    await cast.login("alice")
    origin = f"http://{cast.client.host}:{cast.client.port}"
    ws = await cast.client.ws_connect("/ws", headers={"Origin": origin})
    await ws.send_json({"type": "hello", "v": 1})
    assert (await ws.receive_json())["type"] == "ready"
    await ws.close()


async def test_member_sends_and_other_member_receives_after_the_ack(cast: Cast) -> None:
    alice, bob = await connect(cast, "alice"), await connect(cast, "bob")
    frame = send_frame(cast, "alice", b"ciphertext")
    await alice.send_json(frame)
    ack = await recv(alice, "ack")
    assert (ack["seq"], ack["id"], ack["duplicate"]) == (1, frame["id"], False)
    got = await recv(bob, "deliver")
    assert (got["seq"], got["id"], got["body"]) == (1, frame["id"], b64u(b"ciphertext"))
    assert got["sender"] == b64u(DEVICE["alice"]) and got["label"] == LABEL
    assert await stored(cast) == 1


async def test_non_member_cannot_send_or_subscribe(cast: Cast) -> None:
    mallory = await connect(cast, "mallory")
    await mallory.send_json(send_frame(cast, "mallory", b"x"))
    err = await recv(mallory, "error")
    assert err["code"] == "koppi.not_member"
    token = await cast.token("mallory")
    ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
    await ws.send_json({"type": "hello", "v": 1, "resume": {str(cast.thread): 0}})
    assert (await ws.receive_json())["code"] == "koppi.not_member"
    assert await stored(cast) == 0


async def test_resend_of_the_same_id_returns_the_same_seq_and_stores_once(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    msg_id = os.urandom(16)
    await alice.send_json(send_frame(cast, "alice", b"one", msg_id))
    first = await recv(alice, "ack")
    await alice.send_json(send_frame(cast, "alice", b"one re-encrypted", msg_id))
    again = await recv(alice, "ack")
    assert again["seq"] == first["seq"] and again["duplicate"] is True
    assert await stored(cast) == 1


async def test_the_same_id_from_another_device_is_refused(cast: Cast) -> None:
    alice, bob = await connect(cast, "alice"), await connect(cast, "bob")
    msg_id = os.urandom(16)
    await alice.send_json(send_frame(cast, "alice", b"one", msg_id))
    await recv(alice, "ack")
    await bob.send_json(send_frame(cast, "bob", b"two", msg_id))
    err = await recv(bob, "error")
    assert err["code"] == "koppi.duplicate_message_id" and err["id"] == b64u(msg_id)
    assert await stored(cast) == 1


async def test_concurrent_senders_get_one_gap_free_order_seen_by_every_member(cast: Cast) -> None:
    senders = [await connect(cast, "alice") for _ in range(3)] + [
        await connect(cast, "bob") for _ in range(3)
    ]
    watchers = [await connect(cast, "alice"), await connect(cast, "bob")]
    per_sender = 40

    async def blast(ws: ClientWebSocketResponse, user: str) -> list[int]:
        frames = [send_frame(cast, user, os.urandom(64)) for _ in range(per_sender)]
        for f in frames:
            await ws.send_json(f)
        return [(await recv(ws, "ack"))["seq"] for _ in frames]

    users = ["alice"] * 3 + ["bob"] * 3
    acked = await asyncio.gather(*(blast(ws, u) for ws, u in zip(senders, users, strict=True)))
    total = per_sender * len(senders)
    assert sorted(s for seqs in acked for s in seqs) == list(range(1, total + 1))
    for seqs in acked:
        assert seqs == sorted(seqs)  # one sender's messages keep their order
    orders = []
    for w in watchers:
        orders.append([(await recv(w, "deliver"))["id"] for _ in range(total)])
    assert orders[0] == orders[1]


async def test_resume_delivers_exactly_what_was_missed_then_live(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    ids = []
    for i in range(10):
        f = send_frame(cast, "alice", bytes([i]))
        ids.append(f["id"])
        await alice.send_json(f)
        await recv(alice, "ack")
    bob = await connect(cast, "bob", resume={str(cast.thread): 4})
    backlog = [await recv(bob, "deliver") for _ in range(6)]
    assert [d["seq"] for d in backlog] == list(range(5, 11))
    assert [d["id"] for d in backlog] == ids[4:]
    live = send_frame(cast, "alice", b"live")
    await alice.send_json(live)
    got = await recv(bob, "deliver")
    assert (got["seq"], got["id"]) == (11, live["id"])
    with pytest.raises(asyncio.TimeoutError):
        await recv(bob, "deliver", timeout=0.3)  # no duplicate after the seam


async def test_resume_racing_live_sends_has_no_hole_and_no_duplicate(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    for i in range(50):
        await alice.send_json(send_frame(cast, "alice", bytes([i])))
    bob_task = asyncio.create_task(connect(cast, "bob", resume={str(cast.thread): 0}))
    for i in range(50):
        await alice.send_json(send_frame(cast, "alice", bytes([i])))
    bob = await bob_task
    seqs = [(await recv(bob, "deliver"))["seq"] for _ in range(100)]
    assert seqs == list(range(1, 101))
    with pytest.raises(asyncio.TimeoutError):
        await recv(bob, "deliver", timeout=0.3)


async def test_a_failed_commit_yields_no_ack_and_stores_nothing(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.repositories.threads import ThreadRepository

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ThreadRepository, "insert", broken)
    alice = await connect(cast, "alice")
    await alice.send_json(send_frame(cast, "alice", b"x"))
    msg = await asyncio.wait_for(alice.receive_json(), 5)
    assert msg["type"] == "error" and msg["code"] == "koppi.store_failed"
    assert await stored(cast) == 0
    monkeypatch.undo()
    await alice.send_json(send_frame(cast, "alice", b"y"))
    assert (await recv(alice, "ack"))["seq"] == 1  # the failed one consumed no sequence number


BAD_FRAMES = [
    ("not json", "koppi.frame_malformed"),
    (json.dumps({"type": "shout"}), "koppi.frame_unknown_type"),
    (json.dumps({"type": "send", "id": "AAAAAAAAAAAAAAAAAAAAAA"}), "koppi.frame_invalid"),
    (json.dumps({"type": "ping", "extra": 1}), "koppi.frame_invalid"),
    (json.dumps([1, 2]), "koppi.frame_invalid"),
]


@pytest.mark.parametrize(
    ("raw", "code"), BAD_FRAMES, ids=["malformed", "unknown", "missing", "extra", "array"]
)
async def test_bad_frames_get_their_code_and_the_connection_survives(
    cast: Cast, raw: str, code: str
) -> None:
    alice = await connect(cast, "alice")
    await alice.send_str(raw)
    assert (await recv(alice, "error"))["code"] == code
    await alice.send_json(send_frame(cast, "alice", b"still fine"))
    assert (await recv(alice, "ack"))["seq"] == 1
    assert await stored(cast) == 1


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"id": b64u(b"short")}, "koppi.frame_invalid"),
        ({"sender": "!!notbase64"}, "koppi.frame_invalid"),
        ({"epoch": -1}, "koppi.frame_invalid"),
        (
            {"label": {"orgs": [str(uuid.UUID(int=2)), str(uuid.UUID(int=1))], "basis": "consent"}},
            "koppi.frame_invalid",
        ),
        ({"label": {"orgs": [], "basis": "Free text!"}}, "koppi.frame_invalid"),
        ({"thread": str(uuid.uuid4())}, "koppi.not_member"),
    ],
    ids=[
        "short-id",
        "bad-base64",
        "negative-epoch",
        "unsorted-label",
        "free-text-basis",
        "unknown-thread",
    ],
)
async def test_invalid_send_fields_are_refused_and_nothing_is_stored(
    cast: Cast, over: dict[str, Any], code: str
) -> None:
    alice = await connect(cast, "alice")
    await alice.send_json(send_frame(cast, "alice", b"x", **over))
    assert (await recv(alice, "error"))["code"] == code
    assert await stored(cast) == 0


async def test_frames_before_hello_are_refused(cast: Cast) -> None:
    token = await cast.token("alice")
    ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
    await ws.send_json(send_frame(cast, "alice", b"x"))
    assert (await ws.receive_json())["code"] == "koppi.hello_required"
    await ws.send_json({"type": "hello", "v": 2})
    assert (await ws.receive_json())["code"] == "koppi.unsupported_version"


async def test_a_member_whose_held_deliveries_overflow_misses_nothing(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live deliveries held while a connection reads its backlog are bounded; past the bound it
    re-reads from the database: no hole, no duplicate."""
    import server.ws.handler

    monkeypatch.setattr(server.ws.handler, "HOLD_MAX", 1)
    messaging = cast.app[MESSAGING]
    read_backlog = messaging.backlog
    reads = 0

    async def slow_backlog(*args: Any, **kw: Any) -> Any:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.2)  # live deliveries pile up meanwhile
        return await read_backlog(*args, **kw)

    alice = await connect(cast, "alice")
    early = [send_frame(cast, "alice", bytes([i])) for i in range(20)]
    for f in early:
        await alice.send_json(f)
        await recv(alice, "ack")
    monkeypatch.setattr(messaging, "backlog", slow_backlog)
    bob = await connect(cast, "bob")  # reads its backlog slowly
    late = [send_frame(cast, "alice", bytes([100 + i])) for i in range(20)]
    for f in late:
        await alice.send_json(f)
    got = [await recv(bob, "deliver") for _ in early + late]
    assert [d["seq"] for d in got] == list(range(1, 41))
    assert [d["id"] for d in got] == [f["id"] for f in early + late]
    assert reads >= 2  # the overflow made it read again


async def test_a_lost_bus_event_is_filled_from_the_database(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hole in the live stream (a bus event that never came) is read from the database."""
    bus = cast.app[BUS]
    publish = bus.publish

    async def lossy(deliveries: list[Any]) -> None:
        await publish([d for d in deliveries if d.seq != 2])

    monkeypatch.setattr(bus, "publish", lossy)
    alice, bob = await connect(cast, "alice"), await connect(cast, "bob")
    frames = [send_frame(cast, "alice", bytes([i])) for i in range(5)]
    for f in frames:
        await alice.send_json(f)
        await recv(alice, "ack")
    got = [await recv(bob, "deliver") for _ in frames]
    assert [d["seq"] for d in got] == [1, 2, 3, 4, 5]


async def test_a_slow_reader_is_disconnected_and_resumes_without_loss(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server never buffers without bound for a reader that does not keep up: it closes the
    connection with 4008, and the member resumes from its last sequence number."""
    import socket

    import server.ws.handler

    alice = await connect(cast, "alice")
    original = server.ws.handler.Connection.__init__

    def small_buffers(self: Any, ws: Any, transport: Any, *args: Any, **kw: Any) -> None:
        original(self, ws, transport, *args, **kw)
        self.outbox_bytes = 64 * 1024  # the limit, for bob's connection only
        # A small kernel send buffer, so unread bytes pile up where the server can see them.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    monkeypatch.setattr(server.ws.handler.Connection, "__init__", small_buffers)
    bob = await connect(cast, "bob")
    monkeypatch.undo()
    frames = [send_frame(cast, "alice", bytes([i]) * 100_000) for i in range(60)]
    for f in frames:
        await alice.send_json(f)
    for _ in frames:
        await recv(alice, "ack")
    seen: list[int] = []
    while (msg := await bob.receive(timeout=5)).type is WSMsgType.TEXT:
        frame = msg.json()
        if frame["type"] == "deliver":
            seen.append(frame["seq"])
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4008, "koppi.slow_consumer")
    assert len(seen) < 60
    again = await connect(cast, "bob", resume={str(cast.thread): seen[-1] if seen else 0})
    rest = [(await recv(again, "deliver"))["seq"] for _ in range(60 - len(seen))]
    assert seen + rest == list(range(1, 61))


async def test_hello_loads_the_rosters_of_its_threads_in_one_query(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold server's first send does not wait for a roster query of its own."""
    messaging = cast.app[MESSAGING]
    repo = messaging._threads
    single: list[uuid.UUID] = []
    original = repo.members

    async def counting(thread_id: uuid.UUID) -> frozenset[uuid.UUID]:
        single.append(thread_id)
        return await original(thread_id)

    monkeypatch.setattr(repo, "members", counting)
    alice = await connect(cast, "alice")
    await alice.send_json(send_frame(cast, "alice", b"first"))
    assert (await recv(alice, "ack"))["seq"] == 1
    assert single == []  # answered from the hello's prefetch
    # After a membership change the roster is read again, and a non-member is still refused.
    messaging.forget_membership(cast.thread)
    mallory = await connect(cast, "mallory")
    await mallory.send_json(send_frame(cast, "mallory", b"x", thread=str(cast.thread)))
    assert (await recv(mallory, "error"))["code"] == "koppi.not_member"
    assert single == [cast.thread]
