"""Export to an organisation's own records (issue: storage rights): a record system takes the
messages whose storage label names its organisation, and nothing else; each export is a
disclosure, recorded and audited.

The server hands out ciphertext: the record system decrypts on its side as a member device of
the thread (so it also gets the thread's commits, which carry no content). Exporting needs
admission now, as everything else in a thread does; a message's own label is what grants the
right to store it (chosen at send time, within the consent then in force).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from crypto.clock import Clock
from server.bus import Delivery
from server.db.tables import AuditEvent, Disclosure
from server.principal import Principal
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.services.admission import AdmissionService

PAGE_MAX = 500


@dataclass(frozen=True)
class Export:
    envelopes: list[Delivery]  # commits, and the messages labelled for the organisation
    disclosure: int | None  # the disclosure record of this page's messages, if it had any


class ExportService:
    def __init__(
        self,
        threads: ThreadRepository,
        admission: AdmissionService,
        trail: DeviceRepository,
        clock: Clock,
    ) -> None:
        self._threads, self._admission, self._trail, self._clock = threads, admission, trail, clock

    async def export(
        self, principal: Principal, thread_id: uuid.UUID, after_seq: int, limit: int
    ) -> Export:
        await self._admission.require_admitted(principal, thread_id)
        page = await self._threads.labelled_for(
            thread_id, principal.org_id, after_seq, min(limit, PAGE_MAX)
        )
        messages = [d for d in page if d.kind == "message"]
        if not messages:
            return Export(page, None)
        now = self._clock.now_ms()
        disclosure = await self._threads.add_disclosure(
            Disclosure(
                thread_id=thread_id,
                org_id=principal.org_id,
                user_id=principal.user_id,
                msg_ids=[_wire_id(d.msg_id) for d in messages],
                first_seq=messages[0].seq,
                last_seq=messages[-1].seq,
                at=now,
            )
        )
        subject = f"{thread_id} {len(messages)} seq {messages[0].seq}-{messages[-1].seq}"
        await self._trail.audit_many(
            [
                AuditEvent(
                    org_id=principal.org_id,
                    actor=principal.user_id,
                    action="export.disclosed",
                    subject=subject,
                    at=now,
                )
            ]
        )
        return Export(page, disclosure)

    async def commits(
        self, principal: Principal, thread_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[Delivery]:
        """A page of the thread's commits: an exporter resuming after a sequence number still
        verifies the chain from genesis, and this discloses nothing."""
        await self._admission.require_admitted(principal, thread_id)
        return await self._threads.commits_after(thread_id, after_seq, min(limit, PAGE_MAX))

    async def disclosures(self, principal: Principal, thread_id: uuid.UUID) -> list[Disclosure]:
        """Every export of the thread: what each participant (and the client's summary) sees."""
        await self._admission.require_invited(principal, thread_id)
        return await self._threads.disclosures(thread_id)

    async def thread_audit(self, principal: Principal, thread_id: uuid.UUID) -> list[AuditEvent]:
        """Every organisation's audit events about the thread (admissions, consents, commits,
        removals, exports, closing, purge): what its participants see of who did what."""
        await self._admission.require_invited(principal, thread_id)
        return await self._trail.audit_of_threads([thread_id])


def _wire_id(msg_id: bytes) -> str:
    """A message id as the wire protocol writes it (unpadded base64url)."""
    return base64.urlsafe_b64encode(msg_id).rstrip(b"=").decode()
