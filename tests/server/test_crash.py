"""Kill -9: every acknowledged message survives a crash of the server process, exactly once and in
order (docs/protocol.md §11, "Ack after durable commit")."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.seeding import bench_auth, consented_thread
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.tables import Organisation
from server.repositories.accounts import AccountRepository
from tests.server.conftest import PASSWORD, b64u

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def seed(url: str) -> uuid.UUID:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        accounts = AccountRepository(engine)
        auth = bench_auth(engine)
        org = Organisation(
            id=uuid.uuid4(), name="Kela", business_id="0246246-0", status="active", created_at=0
        )
        await accounts.add_organisation(org)
        users = [
            (await auth.create_user(org.id, n, PASSWORD, frozenset())).id for n in ("alice", "bob")
        ]
        thread_id, _ = await consented_thread(engine, "asiakas-1", users, [org.id])
        return thread_id
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--database-url", url, "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


async def bearer(http: aiohttp.ClientSession, base: str, user: str) -> str:
    async with http.post(f"{base}/api/login", json={"username": user, "password": PASSWORD}) as r:
        csrf = (await r.json())["csrf_token"]
    async with http.post(
        f"{base}/api/tokens", json={"label": "crash"}, headers={"X-CSRF-Token": csrf}
    ) as r:
        token: str = (await r.json())["token"]
    http.cookie_jar.clear()
    return token


async def test_acknowledged_messages_survive_kill_9(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.sqlite3'}"
    thread = await seed(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await start_server(url, port)
    acked: dict[str, int] = {}
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            tokens = [await bearer(http, base, u) for u in ("alice", "bob")]

            async def sender(token: str, device: bytes) -> None:
                async with http.ws_connect(
                    f"{base}/ws", headers={"Authorization": f"Bearer {token}"}
                ) as ws:
                    await ws.send_json({"type": "hello", "v": 1, "resume": {}})
                    await ws.receive_json()
                    while True:  # until the server dies under us
                        ids = [b64u(os.urandom(16)) for _ in range(20)]
                        for i in ids:
                            await ws.send_json(
                                {
                                    "type": "send",
                                    "id": i,
                                    "thread": str(thread),
                                    "epoch": 0,
                                    "sender": b64u(device),
                                    "label": {"orgs": [], "basis": "consent"},
                                    "body": b64u(os.urandom(100)),
                                }
                            )
                        for _ in ids:
                            msg = await ws.receive()
                            if msg.type != aiohttp.WSMsgType.TEXT:
                                return
                            frame: dict[str, Any] = msg.json()
                            if frame["type"] == "ack":
                                acked[frame["id"]] = frame["seq"]

            tasks = [asyncio.create_task(sender(tokens[i % 2], bytes([i]) * 32)) for i in range(4)]
            async with asyncio.timeout(60):  # a refused send never acks: fail, don't hang
                while len(acked) < 400:
                    await asyncio.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)  # mid-load: sends are in flight right now
            proc.wait(10)
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 400

    proc = await start_server(url, free_port_again := free_port())
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            base = f"http://127.0.0.1:{free_port_again}"
            token = await bearer(http, base, "alice")
            async with http.ws_connect(
                f"{base}/ws", headers={"Authorization": f"Bearer {token}"}
            ) as ws:
                await ws.send_json({"type": "hello", "v": 1, "resume": {}})
                ready = await ws.receive_json()
                head = ready["threads"][str(thread)]
                delivered = [await asyncio.wait_for(ws.receive_json(), 10) for _ in range(head)]
    finally:
        proc.terminate()
        proc.wait(10)
    seqs = [d["seq"] for d in delivered]
    ids = [d["id"] for d in delivered]
    assert seqs == list(range(1, head + 1))  # in order, no hole
    assert len(set(ids)) == len(ids)  # exactly once
    by_id = dict(zip(ids, seqs, strict=True))
    lost = [i for i in acked if i not in by_id]
    assert not lost, f"{len(lost)} acknowledged messages lost"
    assert all(by_id[i] == s for i, s in acked.items())  # at the sequence the ack promised
