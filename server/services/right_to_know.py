"""The client's right-to-know report (Act 703/2023, section 11): who processed the client's case
data, to whom it was disclosed, when and on what basis (`server.right_to_know` builds it).

Two ways in. A member of a thread prints the report of that thread for the client: it covers
that thread only, so that a professional does not learn of the client's other case
conferences. The operator (the registrar answering a formal request) runs `koppi report
--client-ref`, which covers every thread of that client reference in the deployment.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from crypto.clock import Clock
from crypto.consent import ConsentRecord
from server.db.tables import Thread
from server.errors import ApiError
from server.principal import Principal
from server.repositories.accounts import AccountRepository
from server.repositories.consents import ConsentRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.right_to_know import ACCOUNT_ENDED, Directory, Json, ThreadLogs, build_report
from server.services.admission import NOT_MEMBER, AdmissionService
from server.services.threads import CLIENT_REF


class RightToKnowService:
    def __init__(
        self,
        threads: ThreadRepository,
        consents: ConsentRepository,
        trail: DeviceRepository,
        accounts: AccountRepository,
        admission: AdmissionService,
        clock: Clock,
    ) -> None:
        self._threads, self._consents, self._trail = threads, consents, trail
        self._accounts, self._admission, self._clock = accounts, admission, clock

    async def of_thread(self, principal: Principal, thread_id: uuid.UUID) -> Json:
        """The report of one thread, for a member to print for the client."""
        await self._admission.require_invited(principal, thread_id)
        thread = await self._threads.get(thread_id)
        if thread is None:  # invited implies it exists; deny by default all the same
            raise NOT_MEMBER
        return await self._report("thread", thread.client_ref, [thread])

    async def of_client(self, client_ref: str) -> Json:
        """The report of every thread of one client reference (the operator's, no principal)."""
        if not CLIENT_REF.fullmatch(client_ref):
            raise ApiError(400, "koppi.bad_client_ref", "client_ref: 64 lowercase hex characters")
        return await self._report("client", client_ref, await self._threads.of_client(client_ref))

    async def _report(self, scope: str, client_ref: str, threads: Sequence[Thread]) -> Json:
        ids = [t.id for t in threads]
        events = await self._trail.audit_of_threads(ids)
        messages = await self._threads.message_headers(ids)
        consents = {
            t: sorted(await self._consents.of_thread(t), key=lambda v: (v.created_at, v.log_index))
            for t in ids
        }  # in recording order, as admission reads them
        disclosures = {t: await self._threads.disclosures(t) for t in ids}
        users = {e.actor for e in events} | {m.sender_user for m in messages}
        users |= {_user_in(e.subject) for e in events if e.action.startswith("admission.")}
        users |= {d.user_id for found in disclosures.values() for d in found}
        known = await self._accounts.users_by_id(u for u in users if u is not None)
        account_events = await self._trail.audit_about_users([ACCOUNT_ENDED], known)
        orgs = {u.org_id for u in known.values()} | {e.org_id for e in events}
        orgs |= {d.org_id for found in disclosures.values() for d in found}
        orgs |= {
            uuid.UUID(bytes=o.org_id)
            for found in consents.values()
            for v in found
            for o in ConsentRecord.decode(v.record).core.organisations
        }
        names = Directory(
            users={u.id: (u.username, u.org_id) for u in known.values()},
            orgs=await self._accounts.organisations_by_id(orgs),
            devices={d.device_id: d.user_id for d in await self._trail.of_users(known)},
        )
        logs = [
            ThreadLogs(
                thread=t,
                events=[e for e in events if e.subject.split(" ", 1)[0] == str(t.id)],
                consents=consents[t.id],
                disclosures=disclosures[t.id],
                messages=[m for m in messages if m.thread_id == t.id],
                account_events=account_events,
            )
            for t in threads
        ]
        return build_report(scope, client_ref, logs, names, self._clock.now_ms())


def _user_in(subject: str) -> uuid.UUID | None:
    """The member an admission decision is about (its subject's second field)."""
    parts = subject.split(" ")
    try:
        return uuid.UUID(parts[1]) if len(parts) > 1 else None
    except ValueError:
        return None
