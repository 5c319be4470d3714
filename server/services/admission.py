"""Consent-gated admission (DESIGN §3): who may take part in a thread right now.

A member is *invited* (in `thread_members`) and *admitted* while the thread's current consent
admits their organisation and role (`crypto.consent.ConsentBook.refusal`, the rule every client
applies too). Invited is enough to see the thread's consents and to record one; taking part
(receiving deliveries, sending, committing) needs admission. The server decides:

- at join (an invitation), at every reconnect (hello) and on every send or commit;
- whenever a consent changes: the professionals it no longer admits are cut off at once
  (`on_removed`: their connections are told why and leave the thread, the epoch is fenced);
- when a consent reaches its end by time alone: a scheduler wakes at the next `valid_from` or
  `valid_until` of any thread's consent, without anyone's action.

The thread's *current* consent is the latest version of the consent given last; the registry keeps
at most one in force per thread (`ConsentService`). Every decision is written to the audit trail
of the member's organisation, with the consent version and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from crypto.clock import Clock
from crypto.consent import NO_CONSENT, ConsentBook, ConsentRecord
from server.db.tables import AuditEvent
from server.errors import ApiError
from server.principal import Principal
from server.repositories.consents import ConsentRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import Member, ThreadRepository

log = structlog.get_logger(__name__)

NOT_MEMBER = ApiError(403, "koppi.not_member", "you are not a member of that thread")
ADMITTED = "koppi.admitted"
MAX_NAP_S = 0.5  # the scheduler looks again at least this often (a clock that jumps is noticed)


@dataclass(frozen=True)
class Decision:
    """One admission decision: allowed or refused, why, and under which consent version."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    allowed: bool
    reason: str  # ADMITTED, or the refusal code of the rule (docs/protocol.md §6)
    consent_id: bytes | None = None
    version: int | None = None

    def subject(self, thread_id: uuid.UUID) -> str:
        consent = "-" if self.consent_id is None else f"{self.consent_id.hex()}v{self.version}"
        return f"{thread_id} {self.user_id} {consent} {self.reason}"

    def error(self) -> ApiError:
        return ApiError(403, self.reason, "no consent of the client admits you to this thread now")


class ThreadAccess:
    """One thread's invited members judged by its current consent; answers are cached until the
    consent's next change in time (so a send costs a set lookup)."""

    def __init__(
        self, members: dict[uuid.UUID, Member], records: Iterable[bytes], closed: bool = False
    ) -> None:
        self.members = members
        self.closed = closed  # a closed thread takes no new message or commit
        self.book = ConsentBook()
        self.current: ConsentRecord | None = None
        for raw in records:  # in recording order: the last consent given is the current one
            record = ConsentRecord.decode(raw)
            self.book.accept(record)
            if record.core.version == 1 or (
                self.current is not None and record.core.consent_id == self.current.core.consent_id
            ):
                self.current = record
        self._admitted: tuple[int, int | None, frozenset[uuid.UUID]] | None = None
        # What a storage label may name: the organisations the current consent lets store.
        self.may_store: frozenset[bytes] = frozenset(
            o.org_id
            for o in (self.current.core.organisations if self.current else ())
            if o.may_store
        )

    def decide(self, member: Member, now_s: int) -> Decision:
        current = self.current
        if current is None:
            return Decision(member.user_id, member.org_id, False, NO_CONSENT)
        core = current.core
        refusal = self.book.refusal(core.core_hash, member.org_id.bytes, member.roles, now_s)
        return Decision(
            member.user_id,
            member.org_id,
            refusal is None,
            refusal or ADMITTED,
            core.consent_id,
            core.version,
        )

    def decisions(self, now_s: int) -> dict[uuid.UUID, Decision]:
        return {u: self.decide(m, now_s) for u, m in self.members.items()}

    def admitted(self, now_s: int) -> frozenset[uuid.UUID]:
        cached = self._admitted
        if cached is not None and cached[0] <= now_s and (cached[1] is None or now_s < cached[1]):
            return cached[2]
        users = frozenset(u for u, d in self.decisions(now_s).items() if d.allowed)
        self._admitted = (now_s, self.next_change(now_s), users)
        return users

    def next_change(self, now_s: int) -> int | None:
        """When the current consent next starts or ends by time alone (None: never)."""
        if self.current is None or self.current.core.status != "active":
            return None
        core = self.current.core
        return next((t for t in (core.valid_from, core.valid_until) if now_s < t), None)


Removed = Callable[[uuid.UUID, list[Decision]], Awaitable[None]]


class AdmissionService:
    def __init__(
        self,
        threads: ThreadRepository,
        consents: ConsentRepository,
        trail: DeviceRepository,
        clock: Clock,
    ) -> None:
        self._threads, self._consents, self._trail, self._clock = threads, consents, trail, clock
        self._access: dict[uuid.UUID, asyncio.Future[ThreadAccess]] = {}
        self._prefetching: set[asyncio.Future[Any]] = set()  # loads under way
        # Called with the members a change cut off (websocket handler: eject; messaging: fence).
        self.on_removed: Removed | None = None
        # Called for each member a change admitted again (websocket handler: subscribe them).
        self.on_admitted: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None
        self._due: list[tuple[int, uuid.UUID]] = []  # (time, thread): the scheduler's heap
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None

    def now_s(self) -> int:
        return self._clock.now_ms() // 1000

    # --- the cache ------------------------------------------------------------------------------

    async def access(self, thread_id: uuid.UUID) -> ThreadAccess:
        loading = self._access.get(thread_id)
        if loading is None:  # one load per thread however many requests arrive at once
            task = asyncio.ensure_future(self._load(thread_id))
            self._prefetching.add(task)
            task.add_done_callback(self._prefetching.discard)
            self._access[thread_id] = loading = task
        try:
            return await asyncio.shield(loading)
        except Exception:
            if self._access.get(thread_id) is loading:
                del self._access[thread_id]
            raise

    def cached(self, thread_id: uuid.UUID) -> ThreadAccess | None:
        loading = self._access.get(thread_id)
        if loading is None or not loading.done() or loading.cancelled() or loading.exception():
            return None
        return loading.result()

    async def _load(self, thread_id: uuid.UUID) -> ThreadAccess:
        members = await self._threads.members(thread_id)
        records = (await self._consents.records_of([thread_id]))[thread_id]
        closed = await self._threads.closed_among([thread_id])
        return ThreadAccess(members, records, thread_id in closed)

    def prefetch(self, thread_ids: Iterable[uuid.UUID]) -> None:
        """Load the access of several threads in two queries (a connection's hello), so that the
        first send to each does not wait for its own."""
        missing = [t for t in thread_ids if t not in self._access]
        if not missing:
            return
        loop = asyncio.get_running_loop()
        futures = {t: loop.create_future() for t in missing}
        self._access.update(futures)

        async def load() -> None:
            try:
                members = await self._threads.members_of(missing)
                records = await self._consents.records_of(missing)
                closed = await self._threads.closed_among(missing)
            except Exception as e:
                for t, f in futures.items():
                    if self._access.get(t) is f:
                        del self._access[t]
                    f.set_exception(e)
                    f.exception()  # retrieved: a later request retries with its own query
                return
            for t, f in futures.items():
                f.set_result(ThreadAccess(members[t], records[t], t in closed))

        task = loop.create_task(load())
        self._prefetching.add(task)
        task.add_done_callback(self._prefetching.discard)

    def forget(self, thread_id: uuid.UUID) -> None:
        """Drop a thread's cached access after its members or consents changed."""
        self._access.pop(thread_id, None)

    # --- decisions ------------------------------------------------------------------------------

    async def require_invited(self, principal: Principal, thread_id: uuid.UUID) -> ThreadAccess:
        """Invited members may see the thread's consents and record one (the first consent is
        recorded before anyone is admitted)."""
        access = await self.access(thread_id)
        if principal.user_id not in access.members:
            raise NOT_MEMBER
        return access

    async def require_admitted(
        self, principal: Principal, thread_id: uuid.UUID
    ) -> frozenset[uuid.UUID]:
        """Deny by default: the caller takes part only while the current consent admits them.
        Returns the thread's admitted members."""
        access = await self.require_invited(principal, thread_id)
        now = self.now_s()
        admitted = access.admitted(now)
        if principal.user_id not in admitted:
            raise access.decide(access.members[principal.user_id], now).error()
        return admitted

    async def at_reconnect(
        self, principal: Principal, thread_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Decision]:
        """A connection's hello: the decision for each of the caller's threads, audited."""
        members = await self._threads.members_of(thread_ids)
        records = await self._consents.records_of(thread_ids)
        now = self.now_s()
        decisions = {}
        for t in thread_ids:
            member = members[t].get(principal.user_id)
            if member is not None:
                decisions[t] = ThreadAccess(members[t], records[t]).decide(member, now)
        await self.audit(principal.user_id, "admission.reconnect", decisions.items())
        return decisions

    async def at_join(self, inviter: Principal, thread_id: uuid.UUID, member: Member) -> Decision:
        """An invitation: the invitee joins only if the current consent admits them now."""
        access = await self.access(thread_id)
        decision = access.decide(member, self.now_s())
        await self.audit(inviter.user_id, "admission.join", [(thread_id, decision)])
        return decision

    async def changed(self, thread_id: uuid.UUID, actor: uuid.UUID | None) -> list[Decision]:
        """A consent of the thread changed, or reached its end in time: decide again for every
        member, audit it, and cut off those no longer admitted. Returns the removed."""
        before = self.cached(thread_id)
        now = self.now_s()
        was = before.admitted(now - 1) if before is not None else None
        self.forget(thread_id)
        access = await self.access(thread_id)
        decisions = access.decisions(now)
        await self.audit(
            actor, "admission.consent_change", [(thread_id, d) for d in decisions.values()]
        )
        removed = [d for u, d in decisions.items() if not d.allowed and (was is None or u in was)]
        self.watch(thread_id, access.next_change(now))
        if removed and self.on_removed is not None:
            await self.on_removed(thread_id, removed)
        if was is not None and self.on_admitted is not None:
            for user_id in access.admitted(now) - was:
                await self.on_admitted(thread_id, user_id)
        return removed

    async def _audit_ending(self, thread_id: uuid.UUID, now_s: int) -> None:
        """The scheduler found the thread's consent at its end: `consent.expired`, in every
        member organisation's trail."""
        access = await self.access(thread_id)
        current = access.current
        if current is None or current.core.status != "active":
            return
        if current.core.valid_until > now_s:
            return
        core = current.core
        subject = f"{thread_id} {core.consent_id.hex()}v{core.version}"
        at = self._clock.now_ms()
        orgs = sorted({m.org_id for m in access.members.values()})
        await self._trail.audit_many(
            [
                AuditEvent(org_id=o, actor=None, action="consent.expired", subject=subject, at=at)
                for o in orgs
            ]
        )

    async def audit(
        self,
        actor: uuid.UUID | None,
        action: str,
        decisions: Iterable[tuple[uuid.UUID, Decision]],
    ) -> None:
        """Each decision to its member's organisation's trail (thread, user, consent, reason)."""
        at = self._clock.now_ms()
        await self._trail.audit_many(
            [
                AuditEvent(org_id=d.org_id, actor=actor, action=action, subject=d.subject(t), at=at)
                for t, d in decisions
            ]
        )

    # --- the expiry scheduler ---------------------------------------------------------------------

    async def start(self) -> None:
        """Learn every thread's next change in time, then watch the clock."""
        now = self.now_s()
        for thread_id, records in (await self._consents.records_of()).items():
            self.watch(thread_id, ThreadAccess({}, records).next_change(now))
        self._scheduler = asyncio.create_task(self._run(), name="koppi-consent-scheduler")

    async def stop(self) -> None:
        """Stop the scheduler and let loads under way finish: a query cut in half would not hand
        its database connection back before the engine goes."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        await asyncio.gather(*self._prefetching, return_exceptions=True)

    def watch(self, thread_id: uuid.UUID, at_s: int | None) -> None:
        if at_s is not None:
            heapq.heappush(self._due, (at_s, thread_id))
            self._wake.set()

    async def _run(self) -> None:
        while True:
            now = self.now_s()
            due: set[uuid.UUID] = set()
            while self._due and self._due[0][0] <= now:
                due.add(heapq.heappop(self._due)[1])
            for thread_id in sorted(due):
                try:
                    await self._audit_ending(thread_id, now)
                    removed = await self.changed(thread_id, None)
                except Exception as e:  # try again on the next turn
                    log.error("admission.scheduler_failed", error=type(e).__name__)
                    self.watch(thread_id, now + 1)
                    continue
                if removed:
                    log.info("admission.consent_ended", thread=str(thread_id), removed=len(removed))
            nap = MAX_NAP_S
            if self._due:
                nap = min(nap, max(0.0, self._due[0][0] * 1000 - self._clock.now_ms()) / 1000)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=nap)
