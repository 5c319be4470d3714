"""Who received what (issue #8, "Audit and disclosure log"): the envelopes each websocket
connection handed to its user, as `message.delivered` ranges in the receiving user's
organisation's audit trail (docs/protocol.md §11).

One event per delivered envelope would swamp the chain, whose appenders are serialised (a
thread of ten members would add ten events per message). So each connection keeps, per thread,
the range of sequence numbers it has written to its socket, and the ranges go to the trail:
every `audit_delivery_flush_s`, all connections' ranges in one append; when a connection leaves
a thread (`removed`) or closes, its ranges at once; and at shutdown. A range is also ended where
the connection's sequence jumps (it rejoined a thread and reads it again from the start).

What a crash loses: the ranges not yet written, at most one flush interval of deliveries
(docs/threat-model.md "Stated limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from typing import Protocol

import structlog

from crypto.clock import Clock
from server.audit import NewEvent, delivered_subject
from server.bus import Delivery
from server.periodic import Periodic
from server.principal import Principal

log = structlog.get_logger(__name__)
WRITE_SLICE = 200  # events per append: about 2 ms of the chain's lock on SQLite


class AuditAppender(Protocol):
    async def audit_many(self, events: list[NewEvent]) -> None: ...


class DeliveryAudit:
    """Appends through `trail`: the server passes the write path (`ThreadRepository`), where the
    appends queue behind the group commits rather than compete with them."""

    def __init__(self, trail: AuditAppender, clock: Clock, *, flush_s: float) -> None:
        self._trail, self._clock = trail, clock
        self._open: set[DeliveryRanges] = set()  # connections with a range not yet written
        self._ended: list[NewEvent] = []  # ranges ended (leave, close, a jump), not yet written
        self._soon: asyncio.Task[None] | None = None
        self._timer = Periodic("delivery-audit", self.flush, flush_s)

    def connection(self, principal: Principal, device_id: bytes | None) -> DeliveryRanges:
        """The ranges of one websocket connection (after its hello named its device, or none)."""
        return DeliveryRanges(self, principal, device_id)

    async def flush(self) -> int:
        """Write every range delivered so far, open or ended, in one append; how many events.
        An open range goes on from where it was written, as a new range."""
        now = self._clock.now_ms()
        events, self._ended = self._ended, []
        for ranges in self._open:
            events += ranges.take(now)
        self._open.clear()
        return await self._write(events)

    async def _write(self, events: list[NewEvent]) -> int:
        """Append in slices: each append holds the chain's lock, which the group commit needs
        too, so a thousand connections' ranges must not hold it for one long transaction."""
        for start in range(0, len(events), WRITE_SLICE):
            try:
                await self._trail.audit_many(events[start : start + WRITE_SLICE])
            except Exception:
                self._ended[:0] = events[start:]  # tried again at the next flush
                raise
        return len(events)

    def _end(self, events: list[NewEvent]) -> None:
        """A connection left a thread or closed: write its ranges now (one task for all that end
        meanwhile), not at the next flush."""
        self._ended += events
        if self._soon is None or self._soon.done():
            self._soon = asyncio.create_task(self._write_ended(), name="koppi-delivery-audit")

    async def _write_ended(self) -> None:
        events, self._ended = self._ended, []
        try:
            await self._write(events)
        except Exception as e:  # kept for the next flush
            log.error("delivery_audit.failed", error=type(e).__name__, events=len(events))

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        """A last flush, so a clean shutdown leaves no delivery unlogged."""
        await self._timer.stop()
        if self._soon is not None:
            with contextlib.suppress(Exception):
                await self._soon
        try:
            await self.flush()
        except Exception as e:
            log.error("delivery_audit.failed", error=type(e).__name__, events=len(self._ended))


class DeliveryRanges:
    """One connection's delivered ranges, per thread: [first, last] sequence numbers written."""

    __slots__ = ("_audit", "_device", "_open", "_principal")

    def __init__(self, audit: DeliveryAudit, principal: Principal, device_id: bytes | None) -> None:
        self._audit, self._principal, self._device = audit, principal, device_id
        self._open: dict[uuid.UUID, list[int]] = {}

    def delivered(self, written: Iterable[Delivery | None]) -> None:
        """The connection wrote these frames to its socket (None: a frame that is no envelope)."""
        ranges = self._open
        for d in written:
            if d is None:
                continue
            r = ranges.get(d.thread_id)
            if r is not None and d.seq == r[1] + 1:
                r[1] = d.seq
            else:
                self._start(d.thread_id, d.seq)

    def _start(self, thread_id: uuid.UUID, seq: int) -> None:
        r = self._open.get(thread_id)
        if r is not None:  # not the next one: the range before it ends there
            self._audit._end([self._event(thread_id, r, self._audit._clock.now_ms())])
        elif not self._open:
            self._audit._open.add(self)
        self._open[thread_id] = [seq, seq]

    def leave(self, thread_id: uuid.UUID) -> None:
        """The connection no longer serves the thread: its range there is written now."""
        r = self._open.pop(thread_id, None)
        if r is None:
            return
        if not self._open:
            self._audit._open.discard(self)
        self._audit._end([self._event(thread_id, r, self._audit._clock.now_ms())])

    def close(self) -> None:
        """The connection closed: every range it has is written now."""
        events = self.take(self._audit._clock.now_ms())
        self._audit._open.discard(self)
        if events:
            self._audit._end(events)

    def take(self, now: int) -> list[NewEvent]:
        events = [self._event(t, r, now) for t, r in self._open.items()]
        self._open = {}
        return events

    def _event(self, thread_id: uuid.UUID, r: list[int], now: int) -> NewEvent:
        p = self._principal
        subject = delivered_subject(thread_id, self._device, r[0], r[1])
        return NewEvent(p.org_id, p.user_id, "message.delivered", subject, now)
