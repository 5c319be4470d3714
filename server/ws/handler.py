"""The websocket endpoint: authenticate, parse, call the messaging service, render (thin).

One connection = one reader (this coroutine) and an outbox of ready websocket frames that is
written to the socket once per turn of the event loop: a burst of deliveries costs one write,
not one per frame, and an idle connection holds no task. The bus pushes deliveries straight into
the outbox while the connection is live; while it reads its backlog from the database (after
hello, or to fill a hole), live deliveries are held and then merged, skipping anything already
sent: no duplicate and no gap at the resume seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import typing
import uuid
import weakref

import msgspec
import structlog
from aiohttp import WSMsgType, web

from crypto.clock import Clock
from crypto.message import BASIS_CODES
from server.appkeys import (
    ADMISSION,
    AUTHENTICATOR,
    BUS,
    CLOCK,
    COMMITS,
    CONFIG,
    DELIVERIES,
    MESSAGING,
    METRICS,
    ORGS,
    SOCKETS,
)
from server.bus import Delivery, FanoutBus, Subscription
from server.config import Config
from server.db.tables import Device
from server.errors import ApiError
from server.metrics import Metrics
from server.principal import Principal
from server.repositories.threads import NewEnvelope
from server.services.admission import AdmissionService, Decision
from server.services.commits import CommitService
from server.services.deliveries import DeliveryAudit, DeliveryRanges
from server.services.messaging import Accepted, MessagingService
from server.services.organisations import OrganisationService
from server.ws import frames
from server.ws.frames import b64u_decode, b64u_encode

log = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 64  # sends awaiting their commit per connection; more pauses reading
OUTBOX_BYTES = 4 * 1024 * 1024  # bytes a slow reader may leave unread before it is dropped
SLOW_CONSUMER = 4008  # websocket close code: too slow, reconnect and resume (nothing is lost)
DEVICE_REVOKED = 4010  # websocket close code: this device was revoked by its organisation
USER_DISABLED = 4011  # websocket close code: the user was disabled by their organisation
BACKLOG_PAGE = 500
HOLD_MAX = 4096  # live deliveries held during a backlog read; past this, re-read instead


class TokenBucket:
    """Per-connection frame rate limit on the injected clock."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self._clock, self._rate, self._burst = clock, rate, float(burst)
        self._tokens, self._at = float(burst), clock.now_ms()

    def take(self) -> bool:
        now = self._clock.now_ms()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate / 1000)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


async def websocket(request: web.Request) -> web.StreamResponse:
    app = request.app
    principal = await app[AUTHENTICATOR].authenticate(request)
    if principal is None:
        raise ApiError(401, "koppi.unauthenticated", "log in first")
    if principal.via == "session" and not _same_origin(request):
        # A cookie rides along on cross-site websocket requests; the Origin check stops that.
        raise ApiError(403, "koppi.bad_origin", "websocket from another origin")
    cfg = app[CONFIG]
    ws = web.WebSocketResponse(max_msg_size=cfg.max_frame_bytes * 4, heartbeat=30)
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # the client went away during the handshake
        return ws
    conn = Connection(
        ws, transport, principal, app[MESSAGING], app[BUS], app[CLOCK], cfg, app[METRICS]
    )
    conn.orgs, conn.commits, conn.admission = app[ORGS], app[COMMITS], app[ADMISSION]
    conn.deliveries = app[DELIVERIES]
    app[CONNECTIONS].add(conn)
    app[SOCKETS].add(ws)
    app[METRICS].connections.inc()
    try:
        await conn.run()
    finally:
        app[METRICS].connections.dec()
        app[SOCKETS].discard(ws)
    return ws


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: browsers always send Origin on websocket requests
    return origin in {f"{request.scheme}://{request.host}", f"https://{request.host}"}


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport,
        principal: Principal,
        messaging: MessagingService,
        bus: FanoutBus,
        clock: Clock,
        cfg: Config,
        metrics: Metrics,
    ) -> None:
        self.ws, self.principal, self.messaging, self.bus = ws, principal, messaging, bus
        self.cfg, self.metrics = cfg, metrics
        self.bucket = TokenBucket(clock, cfg.ws_rate, cfg.ws_burst)
        # Any event loop's stream transport (asyncio's, uvloop's) has write and buffer size.
        self.transport = typing.cast(asyncio.WriteTransport, transport)
        self.outbox: list[bytes] = []  # complete websocket frames, written once per loop turn
        self.outbox_items: list[Delivery | None] = []  # each frame's envelope (None: a notice)
        self.outbox_bytes = OUTBOX_BYTES
        self.delivered = 0
        self.in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.subscription: Subscription | None = None
        self.device_id: bytes | None = None  # the device this connection speaks for, if named
        self.orgs: OrganisationService | None = None
        self.commits: CommitService | None = None
        self.admission: AdmissionService | None = None
        self.deliveries: DeliveryAudit | None = None
        self.delivered_ranges: DeliveryRanges | None = None  # what was written, for the trail
        self.last: dict[uuid.UUID, int] = {}  # highest seq sent, per thread
        self.held: list[Delivery] | None = None  # None: live; a list: reading the backlog
        self.overflowed = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing: asyncio.Task[None] | None = None  # the slow-consumer close, if any
        self.log = log.bind(user=str(principal.user_id))

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._error(ApiError(400, "koppi.frame_malformed", "text frames only"))
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            if self.closing is not None:  # let the close handshake finish (it has a timeout)
                await self.closing
            for task in self.tasks:
                task.cancel()
            # Wait for the cancellations: a task stopped mid-query must hand its database
            # connection back while the engine still exists.
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.subscription is not None:
                self.bus.unsubscribe(self.subscription)
            self._drop_outbox()
            if self.delivered_ranges is not None:
                self.delivered_ranges.close()

    async def _on_text(self, data: str) -> None:
        if len(data) > self.cfg.max_frame_bytes:
            return self._error(ApiError(413, "koppi.frame_too_large", "frame too large"))
        if not self.bucket.take():
            return self._error(ApiError(429, "koppi.rate_limited", "slow down"))
        try:
            frame = frames.decode_client_frame(data)
            if isinstance(frame, frames.Hello):
                await self._hello(frame)
            elif self.subscription is None:
                raise ApiError(400, "koppi.hello_required", "send hello first")
            elif isinstance(frame, frames.Send):
                await self._send(frame)
            elif isinstance(frame, frames.CommitFrame):
                await self._commit(frame)
            else:
                self._put(frames.Pong())
        except ApiError as e:
            self._error(e, _frame_id(data))

    async def _hello(self, hello: frames.Hello) -> None:
        if self.subscription is not None:
            raise ApiError(400, "koppi.frame_invalid", "hello was already sent")
        if hello.v != frames.PROTOCOL_VERSION:
            raise ApiError(400, "koppi.unsupported_version", "this server speaks version 1")
        if hello.device is not None:
            device_id = b64u_decode(hello.device, field="device", length=32)
            assert self.orgs is not None  # set by websocket() before the first frame
            device = await self.orgs.device(self.principal, device_id)  # 404 if not the caller's
            if device.user_id != self.principal.user_id or device.status != "approved":
                raise ApiError(403, "koppi.device_not_approved", "this device is not approved")
            self.device_id = device_id
        if self.deliveries is not None:
            self.delivered_ranges = self.deliveries.connection(self.principal, self.device_id)
        invited = await self.messaging.threads_of(self.principal)
        strangers = [t for t in hello.resume if t not in invited]
        if strangers:
            raise ApiError(403, "koppi.not_member", f"not a member of thread {strangers[0]}")
        assert self.admission is not None  # set by websocket() before the first frame
        decisions = await self.admission.at_reconnect(self.principal, list(invited))
        heads = {t: seq for t, seq in invited.items() if decisions[t].allowed}
        refused = {t: d.reason for t, d in decisions.items() if not d.allowed}
        self.last = {t: hello.resume.get(t, 0) for t in heads}
        self.held = []  # hold live deliveries until the backlog has been read
        self.subscription = Subscription(frozenset(heads), self._on_delivery)
        self.bus.subscribe(self.subscription)  # before reading the backlog: nothing slips by
        self.messaging.prefetch_members(heads)
        self._put(frames.Ready(v=frames.PROTOCOL_VERSION, threads=heads, refused=refused))
        self._spawn(self._catch_up(set(heads)))

    async def _send(self, send: frames.Send) -> None:
        msg_id = b64u_decode(send.id, field="id", length=16)
        sender = b64u_decode(send.sender, field="sender", length=32)
        body = b64u_decode(send.body, field="body")
        if len(body) > self.cfg.max_body_bytes:
            raise ApiError(413, "koppi.body_too_large", "message body too large")
        orgs = send.label.orgs
        if any(a.bytes >= b.bytes for a, b in itertools.pairwise(orgs)):
            raise ApiError(400, "koppi.frame_invalid", "label.orgs must be sorted and unique")
        if send.label.basis not in BASIS_CODES:
            raise ApiError(400, "koppi.bad_label", "label.basis is not a storage basis code")
        envelope = NewEnvelope(
            thread_id=send.thread,
            msg_id=msg_id,
            sender_device=sender,
            sender_user=self.principal.user_id,
            epoch=send.epoch,
            label=send.label.canonical(),
            body=body,
            label_orgs=frozenset(o.bytes for o in orgs),
        )
        await self.in_flight.acquire()  # back-pressure: stop reading while too many are pending
        stored = self.messaging.submit(self.principal, envelope)
        stored.add_done_callback(functools.partial(self._stored, send.id))

    async def _commit(self, frame: frames.CommitFrame) -> None:
        assert self.commits is not None  # set by websocket() before the first frame
        msg_id = b64u_decode(frame.id, field="id", length=16)
        body = b64u_decode(frame.body, field="body")
        if len(body) > self.cfg.max_body_bytes:
            raise ApiError(413, "koppi.body_too_large", "commit too large")
        genesis = None if frame.genesis is None else b64u_decode(frame.genesis, field="genesis")
        await self.in_flight.acquire()
        try:
            stored = await self.commits.submit(self.principal, frame.thread, msg_id, body, genesis)
        except BaseException:
            self.in_flight.release()
            raise
        stored.add_done_callback(functools.partial(self._stored, frame.id))

    def _stored(self, wire_id: str, stored: asyncio.Future[Accepted]) -> None:
        """Answer a send once its commit is done: an ack, or the error's code."""
        self.in_flight.release()
        if stored.cancelled():
            return
        error = stored.exception()
        if error is None:
            accepted = stored.result()
            self._put(
                frames.Ack(
                    id=wire_id,
                    thread=accepted.thread_id,
                    seq=accepted.seq,
                    duplicate=accepted.duplicate,
                )
            )
        elif isinstance(error, ApiError):
            self._error(error, wire_id)
        else:
            self.log.error("ws.store_failed", error=type(error).__name__)
            self._error(ApiError(500, "koppi.store_failed", "could not store; resend"), wire_id)

    def _on_delivery(self, d: Delivery) -> None:
        """Called by the bus for every committed delivery of a subscribed thread."""
        if self.held is not None:
            if len(self.held) >= HOLD_MAX:  # re-read from the database instead of growing
                self.held.clear()
                self.overflowed = True
            else:
                self.held.append(d)
            return
        last = self.last[d.thread_id]
        if d.seq == last + 1:
            self._deliver(d)
            self.last[d.thread_id] = d.seq
        elif d.seq > last + 1:  # a hole (e.g. a lost bus event): fill it from the database
            self.held = [d]
            self._spawn(self._catch_up({d.thread_id}))

    async def _catch_up(self, threads: set[uuid.UUID]) -> None:
        """Read the backlog of `threads`, then merge what the bus delivered meanwhile; the
        connection is live again when nothing is left to read."""
        while threads:
            for thread in sorted(threads & self.last.keys()):
                await self._read_backlog(thread)
            held, self.held = self.held or [], []
            threads = set()
            if self.overflowed:
                self.overflowed = False
                threads = set(self.last)
                continue
            for d in sorted(held, key=lambda d: (d.thread_id.bytes, d.seq)):
                last = self.last.get(d.thread_id)
                if last is None:  # the connection left that thread meanwhile
                    continue
                if d.seq == last + 1:
                    self._deliver(d)
                    self.last[d.thread_id] = d.seq
                elif d.seq > last + 1:
                    threads.add(d.thread_id)
            threads |= {d.thread_id for d in self.held}
        self.held = None

    async def _read_backlog(self, thread: uuid.UUID) -> None:
        while True:
            page = await self.messaging.backlog(thread, self.last[thread], BACKLOG_PAGE)
            if thread not in self.last:  # cut off from the thread during the read
                return
            for d in page:
                self._deliver(d)
                self.last[thread] = d.seq
            if len(page) < BACKLOG_PAGE:
                return

    def _deliver(self, d: Delivery) -> None:
        self._enqueue(_deliver_frames.get(d), d)
        self.delivered += 1  # counted into the metric once per write, not once per frame

    def _enqueue(self, frame: bytes, delivery: Delivery | None = None) -> None:
        """Queue one complete websocket frame; the first of a burst schedules the write."""
        if self.closing is not None or self.ws.closed:
            return
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outbox.append(frame)
        self.outbox_items.append(delivery)

    def _flush(self) -> None:
        """Write every queued frame in one call. A reader that leaves OUTBOX_BYTES unread is
        disconnected with SLOW_CONSUMER instead of growing the server's memory; it resumes from
        its last seq."""
        if not self.outbox:
            return
        if self.closing is not None or self.ws.closed or self.transport.is_closing():
            self._drop_outbox()
            return
        data, written = b"".join(self.outbox), self.outbox_items
        self.outbox.clear()
        self.outbox_items = []
        self.transport.write(data)
        if self.delivered_ranges is not None:
            self.delivered_ranges.delivered(written)
        if self.delivered:
            self.metrics.messages_delivered.inc(self.delivered)
            self.delivered = 0
        if self.transport.get_write_buffer_size() > self.outbox_bytes:
            self.log.info("ws.slow_consumer")
            self.closing = asyncio.create_task(self._close_slow())

    def _drop_outbox(self) -> None:
        self.outbox.clear()
        self.outbox_items.clear()

    def leave(self, thread_id: uuid.UUID, notice: frames.Removed) -> None:
        """Cut this connection off one thread at once: no further delivery, and what is queued
        for it but not yet written is dropped; then say why."""
        sub = self.subscription
        if sub is None or thread_id not in sub.threads:
            return
        self.bus.unsubscribe(sub)
        sub.threads = sub.threads - {thread_id}
        self.bus.subscribe(sub)
        self.last.pop(thread_id, None)
        if self.held:
            self.held = [d for d in self.held if d.thread_id != thread_id]
        kept = [(f, d) for f, d in zip(self.outbox, self.outbox_items, strict=True)
                if d is None or d.thread_id != thread_id]  # fmt: skip
        self.outbox = [f for f, _ in kept]
        self.outbox_items = [d for _, d in kept]
        if self.delivered_ranges is not None:  # what it did receive there, to the trail now
            self.delivered_ranges.leave(thread_id)
        self._put(notice)

    def join(self, thread_id: uuid.UUID) -> None:
        """Start serving a thread this connection's user was just admitted to: its backlog,
        then live deliveries, as after hello."""
        sub = self.subscription
        if sub is None or thread_id in sub.threads:
            return
        self.bus.unsubscribe(sub)
        sub.threads = sub.threads | {thread_id}
        self.bus.subscribe(sub)  # before reading the backlog: nothing slips by
        self.last[thread_id] = 0
        self._put(frames.Joined(thread=thread_id))
        if self.held is None:
            self.held = []
            self._spawn(self._catch_up({thread_id}))
        else:  # a backlog read is under way: it reads every thread again before going live
            self.overflowed = True

    def notify(self, frame: msgspec.Struct) -> None:
        """Queue a server notice (not an envelope) behind whatever is already queued."""
        self._put(frame)

    def close_revoked(self) -> None:
        self.close_now(DEVICE_REVOKED, "koppi.device_revoked")

    def close_now(self, code: int, reason: str) -> None:
        """Drop what is queued and close with `code`; the reader loop then ends."""
        if self.closing is None and not self.ws.closed:
            self._drop_outbox()
            self.closing = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 2)

    async def _close_slow(self) -> None:
        self._drop_outbox()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.ws.close(code=SLOW_CONSUMER, message=b"koppi.slow_consumer"), 2
            )

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _put(self, frame: msgspec.Struct) -> None:
        self._enqueue(text_frame(frames.encoder.encode(frame)))

    def _error(self, e: ApiError, frame_id: str | None = None) -> None:
        self.metrics.frames_rejected.labels(code=e.code).inc()
        self._put(frames.Error(code=e.code, message=e.message, id=frame_id))


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final websocket text frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class _DeliverFrames:
    """Encodes each delivery once, however many members receive it: a thread's members are
    served from the same `Delivery` object within moments of each other, so a small cache keyed
    by object identity (checked, never trusted alone) holds every frame while it is needed."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._frames: dict[int, tuple[Delivery, bytes]] = {}

    def get(self, d: Delivery) -> bytes:
        hit = self._frames.get(id(d))
        if hit is not None and hit[0] is d:
            return hit[1]
        frame = text_frame(
            frames.encoder.encode(
                frames.Deliver(
                    kind=d.kind,
                    thread=d.thread_id,
                    seq=d.seq,
                    id=b64u_encode(d.msg_id),
                    epoch=d.epoch,
                    sender=b64u_encode(d.sender_device),
                    label=msgspec.Raw(d.label.encode()),
                    body=b64u_encode(d.body),
                    ts=d.created_at,
                )
            )
        )
        if len(self._frames) >= self._size:
            self._frames.clear()
        self._frames[id(d)] = (d, frame)
        return frame


_deliver_frames = _DeliverFrames()


def _frame_id(data: str) -> str | None:
    """The client message id of a rejected frame, when one can be read, so the client can match."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


CONNECTIONS: web.AppKey[weakref.WeakSet[Connection]] = web.AppKey("ws_connections")


async def device_revoked(app: web.Application, device: Device, log_index: int) -> None:
    """Cut a revoked device off at once (close 4010), fence the threads whose epoch it holds (no
    message until a commit without it), and tell the members of its user's threads, whose
    clients commit its removal (docs/protocol.md §5.6)."""
    await app[MESSAGING].fence_device(device.device_id)  # no message until it is re-keyed
    threads = await app[MESSAGING].threads_of_user(device.user_id)
    notice = frames.DeviceRevoked(device=b64u_encode(device.device_id), log_index=log_index)
    live: weakref.WeakSet[Connection] = app[CONNECTIONS]
    for conn in list(live):
        if conn.device_id == device.device_id:
            conn.close_revoked()
        elif conn.subscription is not None and conn.subscription.threads & threads:
            conn.notify(notice)


async def user_disabled(app: web.Application, user_id: uuid.UUID) -> None:
    """Close every open connection of a disabled user at once (close 4011): their websockets
    were authenticated at the upgrade, before the sessions and tokens were ended."""
    live: weakref.WeakSet[Connection] = app[CONNECTIONS]
    for conn in list(live):
        if conn.principal.user_id == user_id:
            conn.close_now(USER_DISABLED, "koppi.user_disabled")


async def admission_ended(
    app: web.Application, thread_id: uuid.UUID, removed: list[Decision]
) -> None:
    """A consent change cut members off (docs/protocol.md §11 `removed`): their connections leave
    the thread at once and are told why; if they hold the current epoch, the thread takes no
    message until a commit without them; the members who stay are told to commit it."""
    users = {d.user_id: d for d in removed}
    await app[MESSAGING].fence_members(thread_id, users)
    live: weakref.WeakSet[Connection] = app[CONNECTIONS]
    for conn in list(live):
        decision = users.get(conn.principal.user_id)
        if decision is not None:
            consent = None if decision.consent_id is None else b64u_encode(decision.consent_id)
            conn.leave(
                thread_id, frames.Removed(thread=thread_id, reason=decision.reason, consent=consent)
            )
        elif conn.subscription is not None and thread_id in conn.subscription.threads:
            conn.notify(frames.ConsentChanged(thread=thread_id, removed=len(users)))


async def admitted(app: web.Application, thread_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A user joined a thread, or a consent admits them again: their open connections start
    receiving it at once."""
    live: weakref.WeakSet[Connection] = app[CONNECTIONS]
    for conn in list(live):
        if conn.principal.user_id == user_id:
            conn.join(thread_id)


async def member_changed(app: web.Application, user_id: uuid.UUID, actor: uuid.UUID) -> None:
    """A user's roles or state changed: each of their threads decides admission again (and cuts
    them off at once if the consent no longer admits them)."""
    for thread_id in await app[MESSAGING].threads_of_user(user_id):
        await app[ADMISSION].changed(thread_id, actor)
