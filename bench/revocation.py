"""Consent revocation to cut-off, under load (issue: consent; goal: p99 <= 1 s).

A Koppi server process with `--threads` busy case-conference threads, plus `--trials` threads
whose consent is narrowed: in each, a Kela, a county and an employment-office professional (one
websocket each) and a message stream from the Kela member (`--rate` messages per second across all
threads; a trial thread's stream is refused once its epoch is fenced, the busy ones carry on). For
each trial thread in turn, the consent recorder's client records two new consent versions through
the API, as a browser would:

- **baseline**: a version that extends validity and removes nobody: the whole recording path
  (signature check, chain check, log append, admission re-decided and audited);
- **cut-off**: a version without the employment office: from the moment the request is sent until
  its professional's connection has received `removed` (the server fences the epoch before it
  sends `removed`, so the fence is in place by then; the bench checks that a send on the old
  epoch is refused with `koppi.removal_due`).

    python -m bench.revocation [--threads 100] [--trials 100] [--rate 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.seeding import bench_auth, consented_thread
from bench.ws_load import free_port, wait_up
from crypto.clock import OsRng, SystemClock
from crypto.consent import ConsentRecord, next_version, sign_consent
from crypto.identity import DeviceCert, OrgCert
from crypto.keyfile import seal_keyfile
from crypto.primitives import KemKey, SigningKey
from crypto.trust import device_id_of
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.tables import Device, Organisation, Thread, ThreadRosterDevice
from server.principal import Principal
from server.repositories.accounts import AccountRepository
from server.repositories.devices import DeviceRepository
from server.repositories.translog import LogRepository
from server.services.translog import TransparencyLog

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "bench log key passphrase"
BODY = base64.urlsafe_b64encode(os.urandom(256)).rstrip(b"=").decode()


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class ThreadCast:
    thread: str
    consent: ConsentRecord
    tokens: dict[str, str]  # kela | county | te -> bearer token
    te_org: bytes


@dataclass
class Cast:
    threads: list[ThreadCast]
    recorder_token: str
    recorder: SigningKey


async def seed(url: str, log_key_file: Path, n_threads: int) -> Cast:
    """Organisations, professionals, a logged consent-recorder device, and the threads with a
    consent and an epoch whose roster holds the employment office's device."""
    log_key = SigningKey.generate(OsRng())
    log_key_file.write_bytes(
        seal_keyfile({"log-signing-key": log_key.seed_bytes()}, PASSPHRASE, OsRng())
    )
    engine = make_engine(url)
    clock = SystemClock()
    try:
        await upgrade(engine)
        accounts, devices = AccountRepository(engine), DeviceRepository(engine)
        auth = bench_auth(engine)
        translog = TransparencyLog(LogRepository(engine), log_key, clock, head_interval_s=3600)
        await translog.start()
        root, kela_key = SigningKey.generate(OsRng()), SigningKey.generate(OsRng())
        orgs = {}
        for name in ("kela", "county", "te"):
            org = Organisation(
                id=uuid.uuid4(),
                name=name,
                business_id=f"{name}-{os.getpid()}",
                status="active",
                created_at=0,
            )
            await accounts.add_organisation(org)
            orgs[name] = org.id
        await translog.append(
            "org",
            OrgCert.issue(
                root=root,
                org_id=orgs["kela"].bytes,
                name="Kela",
                business_id="kela",
                org_public=kela_key.public,
                issued_at=1,
            ).encode(),
        )

        async def professional(org: str, roles: frozenset[str]) -> tuple[uuid.UUID, str]:
            user = await auth.create_user(
                orgs[org], f"{org}-{uuid.uuid4().hex[:12]}", "bench password 123", roles
            )
            principal = Principal(user.id, orgs[org], user.username, roles, "bearer")
            return user.id, await auth.issue_token(principal, "bench")

        recorder_id, recorder_token = await professional(
            "kela", frozenset({"professional", "consent-recorder"})
        )
        recorder = SigningKey.generate(OsRng())
        cert = DeviceCert.issue(
            kela_key,
            org_id=orgs["kela"].bytes,
            user_id=recorder_id.bytes,
            signing_public=recorder.public,
            kem_public=KemKey.generate(OsRng()).public,
            roles=["professional", "consent-recorder"],
            not_before=0,
            not_after=10**10,
        )
        index = await translog.append("device", cert.encode())
        await devices.add(
            Device(
                device_id=device_id_of(recorder.public),
                user_id=recorder_id,
                org_id=orgs["kela"],
                signing_public=recorder.public,
                kem_public=cert.kem_public,
                label="recorder",
                status="approved",
                cert_log_index=index,
                revocation_log_index=None,
                created_at=0,
            )
        )
        await translog.sign_head()
        await translog.stop()

        threads = []
        for i in range(n_threads):
            people = {o: await professional(o, frozenset({"professional"})) for o in orgs}
            members = [recorder_id, *(u for u, _ in people.values())]
            thread_id, consent = await consented_thread(
                engine, f"revocation-bench-{os.getpid()}-{i}", members, list(orgs.values())
            )
            te_device = os.urandom(32)
            await devices.add(
                Device(
                    device_id=te_device,
                    user_id=people["te"][0],
                    org_id=orgs["te"],
                    signing_public=bytes(32),
                    kem_public=bytes(32),
                    label="te",
                    status="approved",
                    cert_log_index=None,
                    revocation_log_index=None,
                    created_at=0,
                )
            )
            async with engine.begin() as conn:  # epoch 0 holds the employment office's device
                await conn.execute(
                    ThreadRosterDevice.__table__.insert().values(
                        thread_id=thread_id, device_id=te_device
                    )
                )
                await conn.execute(
                    Thread.__table__.update()
                    .where(Thread.id == thread_id)
                    .values(epoch=0, head_hash=bytes(32))
                )
            threads.append(
                ThreadCast(
                    str(thread_id),
                    consent,
                    {o: t for o, (_, t) in people.items()},
                    orgs["te"].bytes,
                )
            )
        return Cast(threads, recorder_token, recorder)
    finally:
        await engine.dispose()


@dataclass
class Member:
    """One professional's websocket: the time each `removed` frame arrived, per thread."""

    ws: aiohttp.ClientWebSocketResponse
    removed: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    delivered: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            frame: dict[str, Any] = msg.json()
            if frame["type"] == "deliver":
                self.delivered += 1
            elif frame["type"] == "removed":
                self.removed[frame["thread"]] = time.perf_counter()
                self.arrived.set()
            elif frame["type"] == "error":
                self.errors[frame.get("id") or ""] = frame["code"]
                self.arrived.set()


async def connect(http: aiohttp.ClientSession, base: str, token: str) -> Member:
    ws = await http.ws_connect(
        f"{base}/ws", headers={"Authorization": f"Bearer {token}"}, max_msg_size=0
    )
    await ws.send_json({"type": "hello", "v": 1, "resume": {}})
    ready = await ws.receive_json()
    assert ready["type"] == "ready" and ready["refused"] == {}, ready
    return Member(ws)


async def stream(member: Member, thread: str, interval: float, stop: asyncio.Event) -> None:
    """A steady message stream on one thread (acks and errors are read by `Member.read`)."""
    next_at = time.perf_counter()
    while not stop.is_set():
        await member.ws.send_json(
            {
                "type": "send",
                "id": b64u(os.urandom(16)),
                "thread": thread,
                "epoch": 0,
                "sender": b64u(bytes(32)),
                "label": {"orgs": [], "basis": "consent"},
                "body": BODY,
            }
        )
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def record(
    http: aiohttp.ClientSession, base: str, token: str, thread: str, version: ConsentRecord
) -> None:
    async with http.post(
        f"{base}/api/threads/{thread}/consents",
        json={"record": b64u(version.encode())},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 201, await r.text()


def deliveries(members: dict[str, dict[str, Member]]) -> int:
    return sum(m.delivered for ms in members.values() for m in ms.values())


def figures(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"  {name:<10} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms   p99 {p99:7.1f} ms"
        f"   max {ms[-1]:7.1f} ms"
    )


async def run(args: argparse.Namespace, url: str, work: Path) -> None:
    key_file = work / "log.key"
    cast = await seed(url, key_file, args.threads + args.trials)
    port = free_port()
    env = {
        **os.environ,
        "KOPPI_LOG_KEY_FILE": str(key_file),
        "KOPPI_LOG_KEY_PASSPHRASE": PASSPHRASE,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--database-url", url, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_up(port)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            members = {}
            for t in cast.threads:
                members[t.thread] = {
                    o: await connect(http, base, tok) for o, tok in t.tokens.items()
                }
            readers = [
                asyncio.create_task(m.read()) for ms in members.values() for m in ms.values()
            ]
            stop = asyncio.Event()
            interval = len(cast.threads) / args.rate
            streams = [
                asyncio.create_task(stream(members[t.thread]["kela"], t.thread, interval, stop))
                for t in cast.threads
            ]
            await asyncio.sleep(1.0)  # the load is steady before the first measurement
            recorder_device = device_id_of(cast.recorder.public)
            baseline, cutoff = [], []
            delivered_before, window = deliveries(members), time.perf_counter()
            for t in cast.threads[args.threads :]:
                now = int(time.time())
                v2 = sign_consent(
                    next_version(
                        t.consent,
                        recorded_at=now,
                        recorder=recorder_device,
                        valid_until=t.consent.core.valid_until + 86400,
                    ),
                    cast.recorder,
                )
                started = time.perf_counter()
                await record(http, base, cast.recorder_token, t.thread, v2)
                baseline.append(time.perf_counter() - started)
                kept = tuple(o for o in v2.core.organisations if o.org_id != t.te_org)
                v3 = sign_consent(
                    next_version(v2, recorded_at=now, recorder=recorder_device, organisations=kept),
                    cast.recorder,
                )
                te = members[t.thread]["te"]
                started = time.perf_counter()
                await record(http, base, cast.recorder_token, t.thread, v3)
                while t.thread not in te.removed:
                    te.arrived.clear()
                    await asyncio.wait_for(te.arrived.wait(), 10)
                cutoff.append(te.removed[t.thread] - started)
            # The epoch is fenced: a send on the old epoch is refused until a commit without it.
            probe = members[cast.threads[args.threads].thread]["county"]
            probe_id = b64u(os.urandom(16))
            await probe.ws.send_json(
                {
                    "type": "send",
                    "id": probe_id,
                    "thread": cast.threads[args.threads].thread,
                    "epoch": 0,
                    "sender": b64u(bytes(32)),
                    "label": {"orgs": [], "basis": "consent"},
                    "body": BODY,
                }
            )
            while probe_id not in probe.errors:
                probe.arrived.clear()
                await asyncio.wait_for(probe.arrived.wait(), 10)
            assert probe.errors[probe_id] == "koppi.removal_due", probe.errors[probe_id]
            window = time.perf_counter() - window
            delivered = deliveries(members) - delivered_before
            stop.set()
            await asyncio.gather(*streams)
            for r in readers:
                r.cancel()
    finally:
        server.terminate()
        server.wait(10)
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite (WAL, synchronous=FULL)"
    print(
        f"{args.threads} busy threads + {args.trials} trial threads (3 professionals each), "
        f"{args.rate:g} msgs/s offered, {backend}"
    )
    print(f"deliveries while measuring: {delivered / window:.0f}/s over {window:.1f} s")
    print("consent version recorded -> (baseline: removes nobody; cut-off: until `removed`):")
    print(figures("baseline", baseline))
    print(figures("cut-off", cutoff))
    p99 = sorted(cutoff)[min(len(cutoff) - 1, int(len(cutoff) * 0.99))]
    ratio = statistics.median(cutoff) / statistics.median(baseline)
    verdict = "met" if p99 <= 1.0 else "NOT met"
    print(f"  cut-off / baseline at p50: {ratio:.2f}x; goal p99 <= 1000 ms: {verdict}")
    print("  fence checked: a send on the old epoch was refused with koppi.removal_due")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100, help="busy threads, never narrowed")
    parser.add_argument("--trials", type=int, default=100, help="threads whose consent narrows")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered msgs/s, all threads")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(work) / 'revocation.sqlite3'}"
        asyncio.run(run(args, url, Path(work)))


if __name__ == "__main__":
    main()
