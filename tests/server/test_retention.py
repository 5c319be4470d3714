"""Retention (issue: storage rights): a member closes a thread, which then takes no new message;
its ciphertext is purged after the retention period (and any message after the maximum age),
gone from the database file itself, while consents, disclosures and the audit trail remain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.appkeys import ENGINE, RETENTION
from server.audit import verify_chain
from server.db.tables import Envelope
from server.repositories.devices import DeviceRepository
from tests.server.conftest import Cast
from tests.server.test_ghost_device import Api
from tests.server.test_ws import connect, recv, send_frame

DAY = 86400


async def stored(cast: Cast) -> int:
    async with cast.app[ENGINE].connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Envelope))).scalar_one())


def on_disk(database_url: str) -> bytes:
    """Every byte SQLite keeps for the database: the file and its write-ahead log."""
    path = Path(database_url.split("///", 1)[1])
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def test_a_closed_thread_takes_nothing_more(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    api = await Api.of(cast, "alice")
    path = f"/api/threads/{cast.thread}/close"
    mallory = await Api.of(cast, "mallory")
    r = await cast.client.post(path, headers=mallory.headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"
    closed = await api.post(path, {})
    assert closed["closed_at"] == cast.clock.now_ms()
    assert (await api.post(path, {}, 409))["error"]["code"] == "koppi.thread_closed"
    await alice.send_json(send_frame(cast, "alice", b"after closing"))
    assert (await recv(alice, "error"))["code"] == "koppi.thread_closed"
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(cast.org_a)
    assert [e.subject for e in trail if e.action == "thread.closed"] == [str(cast.thread)]


async def test_purged_content_is_gone_from_the_file_and_the_logs_remain(
    cast: Cast, database_url: str
) -> None:
    marker = b"SALAINEN-" + os.urandom(12).hex().encode()
    alice = await connect(cast, "alice")
    for i in range(3):
        await alice.send_json(send_frame(cast, "alice", marker + bytes([i])))
        await recv(alice, "ack")
    api = await Api.of(cast, "alice")
    await api.get(f"/api/threads/{cast.thread}/export")  # a disclosure (labels name nobody: none)
    await api.post(f"/api/threads/{cast.thread}/close", {})
    sqlite = database_url.startswith("sqlite")
    if sqlite:
        assert marker in on_disk(database_url)  # (so the check below can fail)
    retention = cast.app[RETENTION]
    cast.clock.advance(89 * DAY)
    assert await retention.purge() == {} and await stored(cast) == 3  # not yet due
    cast.clock.advance(1 * DAY)
    assert await retention.purge() == {cast.thread: 3}
    assert await stored(cast) == 0
    if sqlite:
        assert marker not in on_disk(database_url)
    assert await retention.purge() == {}  # once
    trail = DeviceRepository(cast.app[ENGINE])
    for org in (cast.org_a, cast.org_b):
        purges = [e for e in await trail.audit_trail(org) if e.action == "thread.purged"]
        assert [e.subject for e in purges] == [f"{cast.thread} 3"]
    assert verify_chain(await trail.audit_chain()).broken_at is None
    api = await Api.of(cast, "alice")  # (a new token: 90 days have passed)
    consents = await api.get(f"/api/threads/{cast.thread}/consents")
    assert len(consents["consents"]) == 1  # the record of who could see what stays


@pytest.mark.parametrize("config_overrides", [{"max_message_age_days": 30}])
async def test_no_message_outlives_the_maximum_age(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    await alice.send_json(send_frame(cast, "alice", b"old"))
    await recv(alice, "ack")
    cast.clock.advance(20 * DAY)
    await alice.send_json(send_frame(cast, "alice", b"new"))
    await recv(alice, "ack")
    retention = cast.app[RETENTION]
    assert await retention.purge() == {}
    cast.clock.advance(10 * DAY + 1)  # the first is now older than 30 days; the thread is open
    assert await retention.purge() == {cast.thread: 1}
    assert await stored(cast) == 1
