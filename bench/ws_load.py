"""Load generator for the websocket core, beside a no-persistence relay measured in the same run.

R threads x N members: each thread has one sender connection (its own user) sending at full speed
with a window of in-flight messages, and N receiver connections (users who are members of every
thread). Both servers run as separate processes on loopback; this process drives them. Bounded in
time and count; it stops by itself.

Figures printed, for Koppi and for the relay ceiling:
- accepted msgs/s (acks), delivered msgs/s (deliver frames at receivers), end-to-end latency
  p50/p99 (send -> delivery at the first receiver, the only one that parses frames), at full
  speed and at a fixed offered load;
- Koppi server RSS per idle websocket (authenticated, subscribed, silent).

    python -m bench.ws_load                       # 100 x 10 on SQLite, 8 s per phase
    python -m bench.ws_load --threads 20 --members 5 --seconds 3 --idle 500
    python -m bench.ws_load --database-url postgresql+asyncpg://root@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.seeding import bench_auth, consented_thread
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.tables import Organisation
from server.principal import Principal
from server.repositories.accounts import AccountRepository

ROOT = Path(__file__).resolve().parent.parent
BODY = base64.urlsafe_b64encode(os.urandom(256)).rstrip(b"=").decode()  # a padded 256 B message
LABEL = {"orgs": [], "basis": "consent"}
WARMUP_S = 1.0  # first-use work (membership caches, first queries) is reported apart


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Cast:
    threads: list[str]
    sender_tokens: list[str]
    receiver_tokens: list[str]


async def seed(url: str, n_threads: int, n_members: int) -> Cast:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        accounts = AccountRepository(engine)
        auth = bench_auth(engine)
        org = Organisation(
            id=uuid.uuid4(),
            name="Bench",
            business_id=f"b-{os.getpid()}",
            status="active",
            created_at=0,
        )
        await accounts.add_organisation(org)

        async def user(name: str) -> tuple[uuid.UUID, str]:
            u = await auth.create_user(org.id, name, "bench password 123", frozenset())
            p = Principal(u.id, org.id, name, frozenset(), "bearer")
            return u.id, await auth.issue_token(p, "bench")

        receivers = [await user(f"r{i}-{os.getpid()}") for i in range(n_members)]
        threads, sender_tokens = [], []
        for i in range(n_threads):
            sender_id, token = await user(f"s{i}-{os.getpid()}")
            members = [sender_id, *(r for r, _ in receivers)]
            thread_id, _ = await consented_thread(
                engine, f"bench-{os.getpid()}-{i}", members, [org.id]
            )
            threads.append(str(thread_id))
            sender_tokens.append(token)
        return Cast(threads, sender_tokens, [tok for _, tok in receivers])
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                    await ws.close()
                return
            except aiohttp.WSServerHandshakeError:
                return  # Koppi answers 401 without a token: it is up
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Run:
    acks: int = 0
    delivered: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)  # the first second, reported apart
    elapsed: float = 0.0


async def drive(port: int, cast: Cast, seconds: float, rate: float | None, window: int = 16) -> Run:
    """Full speed (rate None: `window` messages in flight per sender) or a fixed total rate."""
    run = Run()
    base = f"http://127.0.0.1:{port}/ws"
    stop_at = 0.0
    warm_until = float("inf")
    # limit=0: aiohttp's default pool of 100 connections would stall the 101st websocket.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def open_ws(token: str, resume: dict[str, int]) -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(
                base, headers={"Authorization": f"Bearer {token}"}, max_msg_size=1 << 22
            )
            await ws.send_json({"type": "hello", "v": 1, "resume": resume})
            ready = await ws.receive_json()
            assert ready["type"] == "ready", ready
            return ws

        # Live traffic only: resume every thread from its current head (Koppi reports heads in
        # `ready`; the relay keeps no history and only reads the thread ids).
        heads_ready = await http.ws_connect(
            base, headers={"Authorization": f"Bearer {cast.receiver_tokens[0]}"}
        )
        await heads_ready.send_json(
            {"type": "hello", "v": 1, "resume": {t: 0 for t in cast.threads}}
        )
        heads = {t: 0 for t in cast.threads}
        reply = await heads_ready.receive_json()
        heads.update({t: s for t, s in reply["threads"].items() if t in heads})
        await heads_ready.close()

        receivers = [await open_ws(tok, heads) for tok in cast.receiver_tokens]
        senders = [
            await open_ws(tok, {t: heads[t]})
            for tok, t in zip(cast.sender_tokens, cast.threads, strict=True)
        ]

        async def receive(ws: aiohttp.ClientWebSocketResponse, timed: bool) -> None:
            """Count deliveries; only the timed receiver parses frames, so that the generator's
            own JSON work does not dominate the latency it measures."""
            async for msg in ws:
                if not timed:
                    run.delivered += 1
                    continue
                frame = json.loads(msg.data)
                if frame["type"] == "deliver":
                    run.delivered += 1
                    sent = run.sent_at.get(frame["id"])
                    if sent is not None:
                        now = time.perf_counter()
                        (run.latencies if sent >= warm_until else run.warmup).append(now - sent)

        async def send(
            ws: aiohttp.ClientWebSocketResponse, thread: str, device: str, phase: float
        ) -> None:
            credit = asyncio.Semaphore(window)
            interval = None if rate is None else len(senders) / rate
            # Senders are spread over the interval: the offered load is smooth, not one burst
            # of every sender at once (which would measure queueing inside the burst).
            next_at = time.perf_counter() + (0.0 if interval is None else phase * interval)

            async def acks() -> None:
                async for msg in ws:
                    frame = json.loads(msg.data)
                    if frame["type"] == "ack":
                        run.acks += 1
                        credit.release()
                    elif frame["type"] == "error":
                        raise SystemExit(f"server refused a frame: {frame}")

            reader = asyncio.create_task(acks())
            while time.perf_counter() < stop_at:
                if interval is not None:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                try:
                    await asyncio.wait_for(
                        credit.acquire(), max(0.01, stop_at - time.perf_counter())
                    )
                except TimeoutError:
                    break
                msg_id = b64u(os.urandom(16))
                run.sent_at[msg_id] = time.perf_counter()
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "send",
                            "id": msg_id,
                            "thread": thread,
                            "epoch": 0,
                            "sender": device,
                            "label": LABEL,
                            "body": BODY,
                        }
                    )
                )
            await asyncio.sleep(1.0)  # let the last acks and deliveries arrive
            reader.cancel()

        readers = [asyncio.create_task(receive(ws, i == 0)) for i, ws in enumerate(receivers)]
        started = time.perf_counter()
        stop_at = started + seconds
        warm_until = started + WARMUP_S
        await asyncio.gather(
            *(
                send(ws, t, b64u(bytes([i % 256]) * 32), i / len(senders))
                for i, (ws, t) in enumerate(zip(senders, cast.threads, strict=True))
            )
        )
        elapsed = time.perf_counter() - started
        for r in readers:
            r.cancel()
        await asyncio.gather(
            *(asyncio.wait_for(ws.close(), 2) for ws in receivers + senders),
            return_exceptions=True,
        )
    run.elapsed = elapsed
    return run


def summary(name: str, run: Run, seconds: float) -> dict[str, float]:
    lat = sorted(run.latencies) or [float("nan")]
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    warm = sorted(run.warmup)
    warm_p99 = warm[min(len(warm) - 1, int(len(warm) * 0.99))] * 1000 if warm else float("nan")
    row = {
        "accepted": run.acks / seconds,
        "delivered": run.delivered / seconds,
        "p50": p50,
        "p99": p99,
    }
    print(
        f"  {name:<22} accepted {row['accepted']:>9.0f}/s  delivered {row['delivered']:>9.0f}/s  "
        f"latency p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
        f"  (first {WARMUP_S:g} s: p99 {warm_p99:.1f} ms)"
    )
    return row


async def commit_figures(port: int) -> None:
    """Koppi's own view: how many group commits, how large, how long (from /metrics)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    values = {}
    for line in text.splitlines():
        for key in (
            "koppi_commit_latency_seconds_sum",
            "koppi_commit_latency_seconds_count",
            "koppi_messages_accepted_total",
        ):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    buckets = []
    for line in text.splitlines():
        if line.startswith("koppi_commit_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append(f"<={le}s:{float(line.split()[-1]):.0f}")
    print("commit latency histogram (cumulative):", ", ".join(buckets))
    commits = values.get("koppi_commit_latency_seconds_count", 0.0) or 1.0
    print(
        f"koppi group commits: {commits:.0f}, "
        f"{values.get('koppi_messages_accepted_total', 0) / commits:.1f} envelopes each, "
        f"{values.get('koppi_commit_latency_seconds_sum', 0) / commits * 1000:.2f} ms each"
    )


async def idle_rss(port: int, pid: int, tokens: list[str], threads: list[str], count: int) -> float:
    before = rss_kib(pid)
    sockets = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for i in range(count):
            ws = await http.ws_connect(
                f"http://127.0.0.1:{port}/ws",
                headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
            )
            await ws.send_json(
                {"type": "hello", "v": 1, "resume": {threads[i % len(threads)]: 2**62}}
            )
            await ws.receive_json()
            sockets.append(ws)
        await asyncio.sleep(1.0)
        after = rss_kib(pid)
        for ws in sockets:
            await ws.close()
    return (after - before) / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="fixed offered load, msgs/s")
    parser.add_argument("--idle", type=int, default=5000, help="idle websockets for the RSS figure")
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--phases", default="full,fixed,idle", help="which of full, fixed, idle to run"
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        cast = await seed(url, args.threads, args.members)
        kport, rport = free_port(), free_port()
        env = {
            **os.environ,
            "KOPPI_WS_RATE": "100000",
            "KOPPI_WS_BURST": "100000",
            "KOPPI_LOG_FORMAT": "json",
        }
        wrap = os.environ.get("KOPPI_BENCH_WRAP", "").split()  # e.g. a profiler command
        koppi = subprocess.Popen(
            [
                *wrap,
                sys.executable,
                "-m",
                "server",
                "--database-url",
                url,
                "serve",
                "--port",
                str(kport),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard)),
        )
        relay = subprocess.Popen(
            [sys.executable, "-m", "bench.relay_ceiling", "--port", str(rport)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_up(kport)
            await wait_up(rport)
            backend = (
                "PostgreSQL" if url.startswith("postgresql") else "SQLite (WAL, synchronous=FULL)"
            )
            print(
                f"{args.threads} threads x {args.members} members, 256 B bodies, "
                f"{args.seconds:g} s per phase, {backend}"
            )
            phases = set(args.phases.split(","))
            if "full" in phases:
                print("full speed (16 in flight per sender):")
                ceiling = summary(
                    "relay ceiling", await drive(rport, cast, args.seconds, None), args.seconds
                )
                ours = summary("koppi", await drive(kport, cast, args.seconds, None), args.seconds)
                print(
                    f"  koppi / ceiling: accepted {ours['accepted'] / ceiling['accepted']:.2f}x, "
                    f"delivered {ours['delivered'] / ceiling['delivered']:.2f}x"
                )
            if "fixed" in phases:
                print(f"fixed offered load {args.rate:g} msgs/s:")
                summary(
                    "relay ceiling", await drive(rport, cast, args.seconds, args.rate), args.seconds
                )
                summary("koppi", await drive(kport, cast, args.seconds, args.rate), args.seconds)
            await commit_figures(kport)
            if args.idle and "idle" in phases:
                # Sender i is a member of thread i only: resumed at the head, it has no backlog.
                per = await idle_rss(kport, koppi.pid, cast.sender_tokens, cast.threads, args.idle)
                print(f"koppi RSS per idle websocket: {per:.1f} KiB ({args.idle} connections)")
        finally:
            for p in (koppi, relay):
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    try:  # the generator shares the machine with the server: keep its own overhead low
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
