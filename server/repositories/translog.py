"""Storage of the transparency log: leaves in index order and every signed tree head."""

from __future__ import annotations

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.tables import LogEntry, SignedTreeHead


class LogRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def leaf_hashes(self) -> list[bytes]:
        """Every leaf hash in index order (the service rebuilds its tree from them at start)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(LogEntry.idx, LogEntry.leaf_hash).order_by(LogEntry.idx)
            )
            out = []
            for i, (idx, leaf) in enumerate(rows):
                if idx != i:
                    raise RuntimeError(f"transparency log has a hole at index {i}")
                out.append(bytes(leaf))
            return out

    async def append(
        self, idx: int, kind: str, entry: bytes, payload: bytes, leaf_hash: bytes, now: int
    ) -> None:
        """Insert leaf `idx`; the primary key refuses a second writer for the same index."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(LogEntry).values(
                    idx=idx, kind=kind, entry=entry, payload=payload, leaf_hash=leaf_hash,
                    created_at=now,
                )
            )  # fmt: skip

    async def entries(self, start: int, end: int) -> list[LogEntry]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(LogEntry)
                .where(LogEntry.idx >= start, LogEntry.idx < end)
                .order_by(LogEntry.idx)
            )
            return [LogEntry(**r._mapping) for r in rows]

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
