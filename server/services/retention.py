"""Retention (issue: storage rights): a thread can be closed, and the server keeps no content
longer than needed. A closed thread takes no new message; its ciphertext is purged
`retention_days` after closing, and no message anywhere is kept longer than
`max_message_age_days`. Consents, disclosures and the audit trail outlive the content (they are
the record of who saw what); each purge is itself audited, in every member organisation's trail.

The audit trail and the disclosure records have their own, longer period,
`audit_retention_days`. Deleting the oldest events would cut the chain's start off from
`koppi audit verify`, so events are pruned only up to a checkpoint of the chain's head that was
logged in the transparency log, and only after the pruned part verified: that checkpoint becomes
the chain's anchor, where `verify` then starts, and because it is in the signed, witnessed log,
nobody can substitute another start unseen. Events younger than the period are never pruned
(the chain keeps everything from the newest due checkpoint on); without a transparency log no
event is pruned. Each prune is audited (`audit.pruned`) in the trail of every organisation
that lost events or disclosure records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog

from crypto.clock import Clock
from crypto.logentries import AuditHead
from server.audit import Anchor, NewEvent, pruned_subject, verify_chain
from server.db.tables import AuditEvent
from server.errors import ApiError
from server.periodic import Periodic
from server.principal import Principal
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.services.admission import AdmissionService

log = structlog.get_logger(__name__)
DAY_MS = 86_400_000
CHECKPOINT_PAGE = 1000  # audit-head log entries read at a time when looking for the anchor


@dataclass(frozen=True)
class LogsPruned:
    """What one prune of the audit trail and disclosure records did."""

    anchor: Anchor | None  # where the kept chain starts now (None: nothing ever pruned)
    per_org: dict[uuid.UUID, tuple[int, int]]  # (events, disclosures) deleted per organisation


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
        audit_retention_days: int = 3650,
        interval_s: float,
    ) -> None:
        self._threads, self._admission, self._trail, self._clock = threads, admission, trail, clock
        self._retention_ms, self._max_age_ms = (
            retention_days * DAY_MS,
            max_message_age_days * DAY_MS,
        )
        self._audit_retention_ms = audit_retention_days * DAY_MS
        self._timer = Periodic("retention", self._round, interval_s, first_now=True)

    async def _round(self) -> None:
        await self.purge()
        await self.prune_logs()

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

    async def prune_logs(self) -> LogsPruned:
        """Delete the audit events and disclosure records older than `audit_retention_days`
        (the events only up to a logged checkpoint, which becomes the chain's anchor); audited
        as `audit.pruned` in each organisation's trail that lost any."""
        now = self._clock.now_ms()
        cutoff = now - self._audit_retention_ms
        found = await self._trail.audit_anchor()
        start = None if found is None else found[0]
        new_start = await self._due_checkpoint(found, cutoff)
        up_to = new_start[0].last_id if new_start else (0 if start is None else start.last_id)

        def record(counts: dict[uuid.UUID, tuple[int, int]]) -> list[NewEvent]:
            return [
                NewEvent(org, None, "audit.pruned", pruned_subject(e, d, up_to), now)
                for org, (e, d) in sorted(counts.items())
                if e or d
            ]

        done = await self._trail.prune_audit(start, new_start, cutoff, now, record)
        if done is None:  # another server pruned meanwhile: its round did this one's work
            return LogsPruned(start, {})
        if new_start is not None or done:
            log.info("retention.logs_pruned", up_to=up_to,
                     events=sum(e for e, _ in done.values()),
                     disclosures=sum(d for _, d in done.values()))  # fmt: skip
        return LogsPruned(new_start[0] if new_start else start, done)

    async def _due_checkpoint(
        self, found: tuple[Anchor, int] | None, cutoff: int
    ) -> tuple[Anchor, int] | None:
        """The newest checkpoint in the log that covers only events recorded before `cutoff`
        and is past the current anchor, with its log index; None if there is none, or if the
        chain up to it does not verify (then nothing is pruned: the evidence stays)."""
        start, log_index = (None, -1) if found is None else found
        after = 0 if start is None else start.last_id
        young = await self._trail.first_event_since(cutoff)  # None: every kept event is due
        best: tuple[Anchor, int] | None = None
        done = False
        while not done:  # checkpoints come in log order, each head later than the one before
            page = await self._trail.log_entries_of_kind("audit-head", log_index, CHECKPOINT_PAGE)
            for index, entry in page:
                head = AuditHead.decode(entry)
                if young is not None and head.last_id >= young:  # covers a young event
                    done = True
                    break
                if head.last_id > after:
                    best = Anchor(head.last_id, head.head_hash, head.events), index
            done = done or len(page) < CHECKPOINT_PAGE
            log_index = page[-1][0] if page else log_index
        if best is None:
            return None
        anchor = best[0]
        verdict = verify_chain(await self._trail.audit_chain(after, anchor.last_id), start)
        if verdict.broken_at is not None or (verdict.events, verdict.head) != (
            anchor.events,
            anchor.head_hash,
        ):
            why = verdict.why or "does not end at the logged head"
            log.error(
                "retention.audit_prune_refused",
                checkpoint=best[1],
                broken_at=verdict.broken_at,
                why=why,
            )
            return None
        return best

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()
