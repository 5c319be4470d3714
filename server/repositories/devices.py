"""Storage of devices and the organisations' audit trail."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.audit import GENESIS, Anchor, EventFields, Link, chained, thread_of
from server.db.tables import AuditAnchor, AuditEvent, Device, Disclosure, LogEntry, Organisation

AUDIT_LOCK = 0x6B6F707069  # PostgreSQL advisory lock key of the audit chain ("koppi")
_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def audit_lock(engine: AsyncEngine) -> asyncio.Lock:
    """One audit appender at a time per database in this process (the group commit, which
    appends in its own transaction on its own connection, holds it too)."""
    lock = _locks.get(engine)
    if lock is None:
        lock = _locks[engine] = asyncio.Lock()
    return lock


def append_audit(conn: Connection, events: Sequence[EventFields]) -> None:
    """Append events to the chain inside the caller's synchronous write transaction, so they
    commit, or not, with what they record (the group commit's `message.stored`). The caller
    holds `audit_lock`; on PostgreSQL the advisory lock is taken here, held until the
    transaction ends (take it last: it serialises every appender across servers). On SQLite
    the transaction already holds the database's write lock once it has written."""
    if not events:
        return
    if conn.dialect.name == "sqlite":
        return _SqliteAudit(conn).append(events)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
    last = conn.execute(_LAST_EVENT).first()
    start = conn.execute(_START).first() if last is None else None
    conn.execute(insert(AuditEvent), _rows(events, *_after(last, start)))


_LAST_EVENT = select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
_START = (  # the anchor the kept chain starts at, if its oldest events were pruned
    select(AuditAnchor.last_id, AuditAnchor.head_hash).order_by(AuditAnchor.last_id.desc()).limit(1)
)


def _after(last: Sequence[Any] | None, start: Sequence[Any] | None) -> tuple[int, bytes]:
    """(the next event's id, its prev_hash): after the newest event; with none left (all
    pruned), after the anchor; else the genesis."""
    head = last if last is not None else start
    return (1, GENESIS) if head is None else (int(head[0]) + 1, bytes(head[1]))


def _rows(events: Sequence[EventFields], next_id: int, prev: bytes) -> list[dict[str, object]]:
    return [{"id": event_id, "org_id": e.org_id, "actor": e.actor, "action": e.action,
             "subject": e.subject, "at": e.at, "thread_id": thread_of(e.action, e.subject),
             "prev_hash": prev_hash, "hash": own}
            for event_id, e, prev_hash, own in chained(events, next_id, prev)]  # fmt: skip


class _SqliteAudit:
    """The append in plain DB-API calls on the group commit's own connection (as
    `server/repositories/threads.py` `_SqliteWriter`, for the same reason: SQLAlchemy's
    per-statement cost would be most of the work). Ids as SQLAlchemy's `Uuid` stores them."""

    def __init__(self, conn: Connection) -> None:
        self._cur = conn.connection.cursor()

    def append(self, events: Sequence[EventFields]) -> None:
        self._cur.execute("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
        last = self._cur.fetchone()
        start = None
        if last is None:
            self._cur.execute(
                "SELECT last_id, head_hash FROM audit_anchor ORDER BY last_id DESC LIMIT 1"
            )
            start = self._cur.fetchone()
        rows = chained(events, *_after(last, start))
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            args: list[object] = []
            for event_id, e, prev_hash, own in chunk:
                actor = None if e.actor is None else e.actor.hex
                thread = thread_of(e.action, e.subject)
                args += [event_id, e.org_id.hex, actor, e.action, e.subject, e.at,
                         None if thread is None else thread.hex, prev_hash, own]  # fmt: skip
            values = ",".join("(?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
            self._cur.execute(
                "INSERT INTO audit_events (id, org_id, actor, action, subject, at, "  # noqa: S608
                f"thread_id, prev_hash, hash) VALUES {values}",
                args,
            )


class DeviceRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, device: Device) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Device).values(
                    {c.name: getattr(device, c.name) for c in Device.__table__.columns}
                )
            )

    async def get(self, device_id: bytes) -> Device | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(Device).where(Device.device_id == device_id))).first()
            return None if row is None else Device(**row._mapping)

    async def get_many(self, device_ids: Iterable[bytes]) -> list[Device]:
        query = select(Device).where(Device.device_id.in_(list(device_ids)))
        async with self._engine.connect() as conn:
            return [Device(**r._mapping) for r in await conn.execute(query)]

    async def of_org(self, org_id: uuid.UUID, status: str | None) -> list[Device]:
        query = select(Device).where(Device.org_id == org_id).order_by(Device.created_at)
        if status is not None:
            query = query.where(Device.status == status)
        async with self._engine.connect() as conn:
            return [Device(**r._mapping) for r in await conn.execute(query)]

    async def approved_of_users(self, user_ids: Iterable[uuid.UUID]) -> list[Device]:
        query = (
            select(Device)
            .where(Device.user_id.in_(list(user_ids)), Device.status == "approved")
            .order_by(Device.device_id)
        )
        async with self._engine.connect() as conn:
            return [Device(**r._mapping) for r in await conn.execute(query)]

    async def set_status(self, device_id: bytes, status: str, **log_index: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Device)
                .where(Device.device_id == device_id)
                .values(status=status, **log_index)
            )

    async def rotation_request(self, org_id: uuid.UUID) -> tuple[bytes, uuid.UUID] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Organisation.rotation_request, Organisation.rotation_requested_by).where(
                        Organisation.id == org_id
                    )
                )
            ).first()
        if row is None or row[0] is None or row[1] is None:
            return None
        return bytes(row[0]), row[1]

    async def set_rotation_request(
        self, org_id: uuid.UUID, request: bytes | None, by: uuid.UUID | None
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Organisation)
                .where(Organisation.id == org_id)
                .values(rotation_request=request, rotation_requested_by=by)
            )

    async def audit(self, org_id: uuid.UUID, actor: uuid.UUID, action: str, subject: str,
                    at: int) -> None:  # fmt: skip
        await self.audit_many(
            [AuditEvent(org_id=org_id, actor=actor, action=action, subject=subject, at=at)]
        )

    async def audit_many(self, events: Sequence[EventFields]) -> None:
        """Append events to the hash chain in one transaction (a consent change decides for many
        at once). One appender at a time: in this process a lock, across PostgreSQL servers an
        advisory lock held until the transaction ends."""
        if not events:
            return
        async with audit_lock(self._engine), self._engine.begin() as conn:
            await _lock_chain(conn)
            await _append(conn, events)

    async def audit_head(self) -> tuple[int, int, bytes] | None:
        """(how many events the chain has had, counting those pruned; the last one's id, its
        hash), or None for an empty trail."""
        async with self._engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
            last = (await conn.execute(_LAST_EVENT)).first()
            start = await _anchor(conn)
        if last is None:
            return None if start is None else (start.events, start.last_id, start.head_hash)
        pruned = 0 if start is None else start.events
        return pruned + int(count), int(last.id), bytes(last.hash)

    async def audit_anchor(self) -> tuple[Anchor, int] | None:
        """Where the kept chain starts, and the log index of the checkpoint it equals; None
        while nothing was pruned."""
        async with self._engine.connect() as conn:
            newest = select(AuditAnchor).order_by(AuditAnchor.last_id.desc()).limit(1)
            row = (await conn.execute(newest)).first()
        if row is None:
            return None
        return Anchor(int(row.last_id), bytes(row.head_hash), int(row.events)), int(row.log_index)

    async def first_event_since(self, at: int) -> int | None:
        """The id of the oldest event (in chain order) recorded at `at` or later. Walks the
        primary key from the oldest kept event, so it reads about what is due for pruning."""
        async with self._engine.connect() as conn:
            found = await conn.execute(
                select(AuditEvent.id).where(AuditEvent.at >= at).order_by(AuditEvent.id).limit(1)
            )
            first = found.scalar()
        return None if first is None else int(first)

    async def prune_audit(
        self,
        start: Anchor | None,
        new_start: tuple[Anchor, int] | None,
        disclosures_before: int,
        at: int,
        record: Callable[[dict[uuid.UUID, tuple[int, int]]], Sequence[EventFields]],
    ) -> dict[uuid.UUID, tuple[int, int]] | None:
        """In one transaction, as an appender: delete the events up to `new_start` (which
        becomes the chain's anchor, with the log index of its checkpoint) and the disclosures
        recorded before `disclosures_before`, then append what `record` makes of the counts,
        (events, disclosures) per organisation. None, and nothing done, if the chain's start is
        no longer `start` (another server pruned meanwhile)."""
        counts: dict[uuid.UUID, list[int]] = {}
        async with audit_lock(self._engine), self._engine.begin() as conn:
            await _lock_chain(conn)
            current = await _anchor(conn)
            if current != start:
                return None
            if new_start is not None:
                anchor, log_index = new_start
                gone = AuditEvent.id <= anchor.last_id
                for org, n in await conn.execute(
                    select(AuditEvent.org_id, func.count()).where(gone).group_by(AuditEvent.org_id)
                ):
                    counts.setdefault(org, [0, 0])[0] += int(n)
                await conn.execute(delete(AuditEvent).where(gone))
                await conn.execute(
                    insert(AuditAnchor).values(last_id=anchor.last_id, head_hash=anchor.head_hash,
                                               events=anchor.events, log_index=log_index, at=at)
                )  # fmt: skip
            old = Disclosure.at < disclosures_before
            for org, n in await conn.execute(
                select(Disclosure.org_id, func.count()).where(old).group_by(Disclosure.org_id)
            ):
                counts.setdefault(org, [0, 0])[1] += int(n)
            await conn.execute(delete(Disclosure).where(old))
            done = {org: (n[0], n[1]) for org, n in counts.items()}
            await _append(conn, record(done))
        return done

    async def audit_chain(self, after: int = 0, up_to: int | None = None) -> list[Link]:
        """The kept events in chain order (those with `after` < id <= `up_to`), for `koppi
        audit verify` and for the check before a prune."""
        query = select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)
        if up_to is not None:
            query = query.where(AuditEvent.id <= up_to)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return [
                Link(
                    r.id,
                    r.org_id,
                    r.actor,
                    r.action,
                    r.subject,
                    r.at,
                    bytes(r.prev_hash),
                    bytes(r.hash),
                )
                for r in rows
            ]

    async def audit_trail(self, org_id: uuid.UUID) -> list[AuditEvent]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id)
            )
            return [AuditEvent(**r._mapping) for r in rows]

    async def audit_of_threads(self, thread_ids: Sequence[uuid.UUID]) -> list[AuditEvent]:
        """Every organisation's events about these threads, in chain order (by the thread index,
        `server.audit.thread_of`): for the client's right-to-know report."""
        if not thread_ids:
            return []
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(AuditEvent)
                .where(AuditEvent.thread_id.in_(list(thread_ids)))
                .order_by(AuditEvent.id)
            )
            return [AuditEvent(**r._mapping) for r in rows]

    async def audit_about_users(
        self, actions: Sequence[str], user_ids: Iterable[uuid.UUID]
    ) -> list[AuditEvent]:
        """Events of these actions whose subject is one of these users (`user.disabled`...)."""
        subjects = [str(u) for u in user_ids]
        if not subjects:
            return []
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(AuditEvent)
                .where(AuditEvent.action.in_(list(actions)), AuditEvent.subject.in_(subjects))
                .order_by(AuditEvent.id)
            )
            return [AuditEvent(**r._mapping) for r in rows]

    async def of_users(self, user_ids: Iterable[uuid.UUID]) -> list[Device]:
        """Every device of these users, whatever its status."""
        query = select(Device).where(Device.user_id.in_(list(user_ids)))
        async with self._engine.connect() as conn:
            return [Device(**r._mapping) for r in await conn.execute(query)]

    async def log_entries_of_kind(
        self, kind: str, after: int = -1, limit: int | None = None
    ) -> list[tuple[int, bytes]]:
        """(log index, entry) of the log's entries of `kind` after index `after`, in order."""
        query = (
            select(LogEntry.idx, LogEntry.entry)
            .where(LogEntry.kind == kind, LogEntry.idx > after)
            .order_by(LogEntry.idx)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return [(int(i), bytes(e)) for i, e in rows]


async def _lock_chain(conn: AsyncConnection) -> None:
    """Across PostgreSQL servers, one appender at a time until the transaction ends."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})


async def _append(conn: AsyncConnection, events: Sequence[EventFields]) -> None:
    if not events:
        return
    last = (await conn.execute(_LAST_EVENT)).first()
    start = (await conn.execute(_START)).first() if last is None else None
    await conn.execute(insert(AuditEvent), _rows(events, *_after(last, start)))


async def _anchor(conn: AsyncConnection) -> Anchor | None:
    row = (
        await conn.execute(
            select(AuditAnchor.last_id, AuditAnchor.head_hash, AuditAnchor.events)
            .order_by(AuditAnchor.last_id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else Anchor(int(row[0]), bytes(row[1]), int(row[2]))
