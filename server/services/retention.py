"""Retention (issue: storage rights): a thread can be closed, and the server keeps no content
longer than needed. A closed thread takes no new message; its ciphertext is purged
`retention_days` after closing, and no message anywhere is kept longer than
`max_message_age_days`. Consents, disclosures and the audit trail stay (they are the record of
who saw what); each purge is itself audited, in every member organisation's trail.
"""

from __future__ import annotations

import uuid

import structlog

from crypto.clock import Clock
from server.db.tables import AuditEvent
from server.errors import ApiError
from server.periodic import Periodic
from server.principal import Principal
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.services.admission import AdmissionService

log = structlog.get_logger(__name__)
DAY_MS = 86_400_000


class RetentionService:
    def __init__(
        self,
        threads: ThreadRepository,
        admission: AdmissionService,
        trail: DeviceRepository,
        clock: Clock,
        *,
        retention_days: int,
        max_message_age_days: int,
        interval_s: float,
    ) -> None:
        self._threads, self._admission, self._trail, self._clock = threads, admission, trail, clock
        self._retention_ms, self._max_age_ms = (
            retention_days * DAY_MS,
            max_message_age_days * DAY_MS,
        )
        self._timer = Periodic("retention", self.purge, interval_s, first_now=True)

    async def close(self, principal: Principal, thread_id: uuid.UUID) -> int:
        """An admitted member closes the thread; returns when (ms)."""
        await self._admission.require_admitted(principal, thread_id)
        now = self._clock.now_ms()
        if not await self._threads.close_thread(thread_id, now):
            raise ApiError(409, "koppi.thread_closed", "the thread is already closed")
        self._admission.forget(thread_id)
        await self._trail.audit(principal.org_id, principal.user_id, "thread.closed",
                                str(thread_id), now)  # fmt: skip
        return now

    async def purge(self) -> dict[uuid.UUID, int]:
        """Purge what is due now; audited per thread in each member organisation's trail."""
        now = self._clock.now_ms()
        purged = await self._threads.purge(now, self._retention_ms, self._max_age_ms)
        events = []
        for thread_id, count in purged.items():
            orgs = {m.org_id for m in (await self._threads.members(thread_id)).values()}
            events += [
                AuditEvent(
                    org_id=org,
                    actor=None,
                    action="thread.purged",
                    subject=f"{thread_id} {count}",
                    at=now,
                )
                for org in sorted(orgs)
            ]
        await self._trail.audit_many(events)
        if purged:
            log.info("retention.purged", threads=len(purged), envelopes=sum(purged.values()))
        return purged

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()
