"""Storage of devices and the organisations' audit trail."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Iterable, Sequence

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.audit import GENESIS, Link, event_hash, thread_of
from server.db.tables import AuditEvent, Device, LogEntry, Organisation

AUDIT_LOCK = 0x6B6F707069  # PostgreSQL advisory lock key of the audit chain ("koppi")
_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _append_lock(engine: AsyncEngine) -> asyncio.Lock:
    """One audit appender at a time per database in this process."""
    lock = _locks.get(engine)
    if lock is None:
        lock = _locks[engine] = asyncio.Lock()
    return lock


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

    async def audit_many(self, events: Sequence[AuditEvent]) -> None:
        """Append events to the hash chain in one transaction (a consent change decides for many
        at once). One appender at a time: in this process a lock, across PostgreSQL servers an
        advisory lock held until the transaction ends."""
        if not events:
            return
        async with _append_lock(self._engine), self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
            last = (
                await conn.execute(
                    select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
                )
            ).first()
            next_id, prev = (1, GENESIS) if last is None else (last.id + 1, bytes(last.hash))
            rows = []
            for offset, e in enumerate(events):
                event_id = next_id + offset
                own = event_hash(event_id, e.org_id, e.actor, e.action, e.subject, e.at, prev)
                rows.append({"id": event_id, "org_id": e.org_id, "actor": e.actor,
                             "action": e.action, "subject": e.subject, "at": e.at,
                             "thread_id": thread_of(e.action, e.subject),
                             "prev_hash": prev, "hash": own})  # fmt: skip
                prev = own
            await conn.execute(insert(AuditEvent), rows)

    async def audit_head(self) -> tuple[int, int, bytes] | None:
        """(how many events, the last one's id, its hash), or None for an empty trail."""
        async with self._engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
            last = (
                await conn.execute(
                    select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
                )
            ).first()
        return None if last is None else (int(count), int(last.id), bytes(last.hash))

    async def audit_chain(self) -> list[Link]:
        """Every event in chain order, for `koppi audit verify`."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(AuditEvent).order_by(AuditEvent.id))
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

    async def log_entries_of_kind(self, kind: str) -> list[tuple[int, bytes]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(LogEntry.idx, LogEntry.entry)
                .where(LogEntry.kind == kind)
                .order_by(LogEntry.idx)
            )
            return [(int(i), bytes(e)) for i, e in rows]
