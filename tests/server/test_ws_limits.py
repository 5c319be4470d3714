"""Size and rate limits on a websocket, with small limits configured for the test."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiohttp import WSMsgType

from tests.server.conftest import Cast
from tests.server.test_ws import connect, recv, send_frame, stored


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"max_frame_bytes": 4096, "max_body_bytes": 1024, "ws_rate": 1.0, "ws_burst": 20}


async def test_oversized_frame_and_body_are_refused_and_the_connection_survives(cast: Cast) -> None:
    alice = await connect(cast, "alice")
    await alice.send_json(send_frame(cast, "alice", os.urandom(1025)))
    assert (await recv(alice, "error"))["code"] == "koppi.body_too_large"
    await alice.send_json(send_frame(cast, "alice", os.urandom(3500)))
    assert (await recv(alice, "error"))["code"] == "koppi.frame_too_large"
    await alice.send_json(send_frame(cast, "alice", b"ok"))
    assert (await recv(alice, "ack"))["seq"] == 1
    assert await stored(cast) == 1


async def test_frame_beyond_the_hard_cap_closes_with_1009_and_the_server_stays_up(
    cast: Cast,
) -> None:
    alice = await connect(cast, "alice")
    await alice.send_str("x" * (4096 * 4 + 1))
    msg = await alice.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert alice.close_code == 1009
    bob = await connect(cast, "bob")
    await bob.send_json(send_frame(cast, "bob", b"server fine"))
    assert (await recv(bob, "ack"))["seq"] == 1


async def test_a_flood_is_rate_limited_and_recovers(cast: Cast) -> None:
    alice = await connect(cast, "alice")  # hello used one token of the burst of 20
    for _ in range(25):
        await alice.send_json({"type": "ping"})
    replies = [await asyncio.wait_for(alice.receive_json(), 5) for _ in range(25)]
    codes = [r.get("code") for r in replies if r["type"] == "error"]
    assert sum(r["type"] == "pong" for r in replies) == 19
    assert codes == ["koppi.rate_limited"] * 6
    cast.clock.advance(2)
    await alice.send_json(send_frame(cast, "alice", b"after the flood"))
    assert (await recv(alice, "ack"))["seq"] == 1
