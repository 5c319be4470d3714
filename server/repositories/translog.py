"""Storage of the transparency log: leaves in index order and every signed tree head."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.tables import LogEntry, SignedTreeHead


class LogRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def leaf_hashes(self, start: int = 0) -> list[bytes]:
        """The leaf hashes from index `start` on, in order (a tree is rebuilt or caught up with
        them: another process, e.g. the operator's CLI, may have appended)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(LogEntry.idx, LogEntry.leaf_hash)
                .where(LogEntry.idx >= start)
                .order_by(LogEntry.idx)
            )
            out = []
            for i, (idx, leaf) in enumerate(rows, start):
                if idx != i:
                    raise RuntimeError(f"transparency log has a hole at index {i}")
                out.append(bytes(leaf))
            return out

    async def append(
        self, idx: int, kind: str, entry: bytes, payload: bytes, leaf_hash: bytes, now: int
    ) -> bool:
        """Insert leaf `idx`; False if another writer took that index first (the primary key
        refuses it), so the caller catches up and tries the next one."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(LogEntry).values(
                        idx=idx, kind=kind, entry=entry, payload=payload, leaf_hash=leaf_hash,
                        created_at=now,
                    )
                )  # fmt: skip
        except IntegrityError:
            return False
        return True

    async def entries(self, start: int, end: int) -> list[LogEntry]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(LogEntry)
                .where(LogEntry.idx >= start, LogEntry.idx < end)
                .order_by(LogEntry.idx)
            )
            return [LogEntry(**r._mapping) for r in rows]

    async def latest_of_kind(self, kind: str) -> tuple[int, bytes] | None:
        """The newest leaf of one kind (index, payload): rare, so no index on `kind`."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(LogEntry.idx, LogEntry.payload)
                    .where(LogEntry.kind == kind)
                    .order_by(LogEntry.idx.desc())
                    .limit(1)
                )
            ).first()
            return None if row is None else (int(row[0]), bytes(row[1]))

    async def add_head(self, timestamp_ms: int, size: int, head: bytes) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(SignedTreeHead).values(timestamp_ms=timestamp_ms, size=size, head=head)
            )

    async def latest_head(self) -> bytes | None:
        async with self._engine.connect() as conn:
            newest = select(func.max(SignedTreeHead.timestamp_ms)).scalar_subquery()
            row = (
                await conn.execute(
                    select(SignedTreeHead.head).where(SignedTreeHead.timestamp_ms == newest)
                )
            ).first()
            return None if row is None else bytes(row[0])

    async def recent_heads(self, limit: int) -> list[bytes]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(SignedTreeHead.head)
                .order_by(SignedTreeHead.timestamp_ms.desc())
                .limit(limit)
            )
            return [bytes(r[0]) for r in rows]

    async def replace_head(self, timestamp_ms: int, head: bytes) -> bool:
        """Store a head with more cosignatures; False if no head was signed at that time."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(SignedTreeHead)
                .where(SignedTreeHead.timestamp_ms == timestamp_ms)
                .values(head=head)
            )
            return bool(result.rowcount)

    async def head_at(self, timestamp_ms: int) -> bytes | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(SignedTreeHead.head).where(SignedTreeHead.timestamp_ms == timestamp_ms)
                )
            ).first()
            return None if row is None else bytes(row[0])
