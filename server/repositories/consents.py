"""Storage of consent versions (no decisions here)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.tables import ConsentVersion


class ConsentRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, version: ConsentVersion) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(ConsentVersion).values(
                    record_hash=version.record_hash,
                    consent_id=version.consent_id,
                    version=version.version,
                    thread_id=version.thread_id,
                    record=version.record,
                    log_index=version.log_index,
                    created_at=version.created_at,
                )
            )

    async def versions(self, consent_id: bytes) -> list[bytes]:
        """Every recorded version of one consent, oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ConsentVersion.record)
                .where(ConsentVersion.consent_id == consent_id)
                .order_by(ConsentVersion.version)
            )
            return [bytes(r) for r in rows.scalars()]

    async def of_thread(self, thread_id: uuid.UUID) -> list[ConsentVersion]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ConsentVersion)
                .where(ConsentVersion.thread_id == thread_id)
                .order_by(ConsentVersion.consent_id, ConsentVersion.version)
            )
            return [ConsentVersion(**r._mapping) for r in rows]

    async def records_of(
        self, thread_ids: Sequence[uuid.UUID] | None = None
    ) -> dict[uuid.UUID, list[bytes]]:
        """The signed versions of the given threads' consents (of every thread: None), each
        thread's in the order they were recorded."""
        query = select(ConsentVersion.thread_id, ConsentVersion.record).order_by(
            ConsentVersion.created_at,
            ConsentVersion.log_index,  # the log orders equal times
        )
        found: dict[uuid.UUID, list[bytes]] = {}
        if thread_ids is not None:
            query = query.where(ConsentVersion.thread_id.in_(list(thread_ids)))
            found = {t: [] for t in thread_ids}
        async with self._engine.connect() as conn:
            for r in await conn.execute(query):
                found.setdefault(r.thread_id, []).append(bytes(r.record))
        return found
