"""Storage of consent versions (no decisions here)."""

from __future__ import annotations

import uuid

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
