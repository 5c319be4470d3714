"""The server-side transparency log (issue: organisations): append-only leaves, signed tree heads,
inclusion and consistency proofs over HTTP, each checked by a real client (`crypto.TrustStore`)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from crypto.clock import FakeClock
from crypto.identity import TrustStore
from crypto.treehead import CosignedTreeHead, LogConfig, LogView
from crypto.vectors.world import World
from server.appkeys import TRANSLOG
from tests.server.conftest import LOG_KEY, Cast


def unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


async def get(cast: Cast, token: str, path: str, status: int = 200) -> Any:
    r = await cast.client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status == status, await r.text()
    return await r.json()


async def publish(cast: Cast, world: World) -> None:
    """Append the world's new entries; leaf 0 is the release the server logged at start."""
    translog = cast.app[TRANSLOG]
    for kind, entry, payload in world.entries[translog.size - 1 :]:
        await translog.append(kind, entry, payload)


def witnessed(world: World, cth: CosignedTreeHead) -> CosignedTreeHead:
    """The world's witness cosigns what the server's log signed (a monitor's job)."""
    from crypto.treehead import cosign

    return cosign(cth, world.witnesses[0], cth.head.timestamp_ms)


async def test_a_client_verifies_every_entry_it_fetches(cast: Cast) -> None:
    token = await cast.token("alice")
    world = World("server-log")
    kela = world.add_org("Kela")
    world.add_device(kela)
    device = world.add_device(kela)
    world.consent([kela])
    await publish(cast, world)
    cast.clock.advance(301)  # past the signing interval: the next read signs a fresh head
    head = await get(cast, token, "/api/log/head")
    assert head["size"] == 1 + len(world.entries)
    assert unb64(head["log_public_key"]) == LOG_KEY.public
    cth = witnessed(world, CosignedTreeHead.decode(unb64(head["head"])))
    clock = FakeClock(cth.head.timestamp_ms // 1000)
    config = LogConfig.create(LOG_KEY.public, [w.public for w in world.witnesses], quorum=1)
    store = TrustStore(world.root.public, LogView(config, clock))
    store.log.update(cth, [])
    page = await get(cast, token, f"/api/log/entries?start=0&end={head['size']}")
    for e in page["entries"]:
        proof = await get(cast, token, f"/api/log/inclusion?index={e['index']}&size={head['size']}")
        if e["kind"] == "web-release":
            continue
        adder = {
            "org": store.add_org_cert, "device": store.add_device_cert,
            "consent": store.add_consent,
        }[e["kind"]]  # fmt: skip
        adder(unb64(e["data"]), e["index"], [unb64(p) for p in proof["proof"]])
    assert store.device(device.device_id) is not None


async def test_heads_move_forward_along_consistency_proofs(cast: Cast) -> None:
    token = await cast.token("alice")
    world = World("server-log-consistency")
    kela = world.add_org("Kela")
    world.add_device(kela)
    await publish(cast, world)
    cast.clock.advance(301)
    first = await get(cast, token, "/api/log/head")
    for _ in range(5):
        world.add_device(kela)
    await publish(cast, world)
    cast.clock.advance(301)
    second = await get(cast, token, "/api/log/head")
    assert second["size"] == first["size"] + 5 and second["timestamp_ms"] > first["timestamp_ms"]
    config = LogConfig.create(LOG_KEY.public, [w.public for w in world.witnesses], quorum=1)
    old = witnessed(world, CosignedTreeHead.decode(unb64(first["head"])))
    new = witnessed(world, CosignedTreeHead.decode(unb64(second["head"])))
    view = LogView(config, FakeClock(new.head.timestamp_ms // 1000), old)
    proof = await get(cast, token, f"/api/log/consistency?old={first['size']}&new={second['size']}")
    view.update(new, [unb64(p) for p in proof["proof"]])
    assert view.current == new


async def test_the_log_survives_a_restart_with_the_same_root(cast: Cast) -> None:
    world = World("server-log-restart")
    kela = world.add_org("Kela")
    world.add_device(kela)
    await publish(cast, world)
    translog = cast.app[TRANSLOG]
    before = (await translog.sign_head()).head
    from server.repositories.translog import LogRepository
    from server.services.translog import TransparencyLog

    reopened = TransparencyLog(
        LogRepository(translog._repo._engine), LOG_KEY, cast.clock, head_interval_s=300
    )
    await reopened.start()
    after = (await reopened.head()).head
    await reopened.stop()
    assert (after.size, after.root) == (before.size, before.root)
    assert after.timestamp_ms > before.timestamp_ms  # never an older head than one signed


async def test_bad_requests_and_strangers_are_refused(cast: Cast) -> None:
    r = await cast.client.get("/api/log/head")
    assert r.status == 401 and (await r.json())["error"]["code"] == "koppi.unauthenticated"
    token = await cast.token("alice")
    for path, status, code in (
        ("/api/log/inclusion?index=5&size=9", 404, "koppi.log_out_of_range"),
        ("/api/log/inclusion?index=x&size=1", 400, "koppi.bad_request"),
        ("/api/log/consistency?old=3&new=1", 404, "koppi.log_out_of_range"),
        ("/api/log/entries?start=0&end=5000", 400, "koppi.bad_request"),
        ("/api/log/entries?start=0", 400, "koppi.bad_request"),
    ):
        body = await get(cast, token, path, status)
        assert body["error"]["code"] == code, path


@pytest.mark.parametrize("log_key", [None])
async def test_without_a_log_key_the_log_is_unavailable(cast: Cast) -> None:
    token = await cast.token("alice")
    body = await get(cast, token, "/api/log/head", 503)
    assert body["error"]["code"] == "koppi.log_unavailable"


async def test_the_database_refuses_to_rewrite_history(cast: Cast) -> None:
    """No update or delete path exists in the code, and the database refuses one anyway."""
    from sqlalchemy import delete, text, update
    from sqlalchemy.exc import DBAPIError

    from server.appkeys import ENGINE
    from server.db.tables import LogEntry
    from server.repositories.translog import LogRepository

    translog = cast.app[TRANSLOG]
    index = await translog.append("device", b"koppi test leaf")
    repo = LogRepository(cast.app[ENGINE])
    assert not await repo.append(index, "device", b"other", b"other", bytes(32), 0)  # taken
    engine = cast.app[ENGINE]
    rewrites = [
        update(LogEntry).where(LogEntry.idx == index).values(entry=b"rewritten"),
        delete(LogEntry).where(LogEntry.idx == index),
    ]
    if engine.dialect.name == "postgresql":
        rewrites.append(text("TRUNCATE log_entries"))
    for statement in rewrites:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(statement)
    (kept,) = await translog.entries(index, index + 1)
    assert kept[2] == b"koppi test leaf"
