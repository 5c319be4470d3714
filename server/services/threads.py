"""Case-conference threads: one per client and purpose, started by a professional, joined by
invitation, and only while the client's consent admits the invitee (`AdmissionService`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from crypto.clock import Clock
from crypto.consent import PURPOSES
from crypto.message import LABEL_POLICIES
from server.db.tables import Organisation, Thread
from server.errors import ApiError
from server.principal import Principal
from server.repositories.accounts import AccountRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import Member, ThreadRepository
from server.services.admission import AdmissionService

CLIENT_REF = re.compile(r"^[0-9a-f]{64}$")  # 32 pseudonymous bytes, never an identity code
TAKES_PART = frozenset({"professional", "consent-recorder"})  # not admins or record systems
NOT_COVERED = ApiError(
    403, "koppi.not_covered", "the thread's current consent does not cover that organisation"
)


@dataclass(frozen=True)
class ThreadSummary:
    """One of the caller's threads as their thread list shows it: `admission` is
    `koppi.admitted` or the refusal code of the admission rule for the caller now."""

    thread: Thread
    admission: str


@dataclass(frozen=True)
class MemberView:
    """A member of a thread with the names a person recognises, and whether the current
    consent admits them now (`admission`: `koppi.admitted` or the refusal code)."""

    user_id: uuid.UUID
    username: str
    org_id: uuid.UUID
    org_name: str
    roles: list[str]
    admission: str


@dataclass(frozen=True)
class Professional:
    user_id: uuid.UUID
    username: str
    roles: list[str]


class ThreadService:
    def __init__(
        self,
        threads: ThreadRepository,
        accounts: AccountRepository,
        admission: AdmissionService,
        clock: Clock,
        trail: DeviceRepository,
    ) -> None:
        self._threads, self._accounts, self._trail = threads, accounts, trail
        self._admission, self._clock = admission, clock
        # Called after a user joined a thread (websocket handler: subscribe their connections).
        self.on_joined: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None

    async def start(self, principal: Principal, client_ref: str, purpose: str) -> uuid.UUID:
        """A professional starts the thread of a client and purpose and is its first member;
        nobody takes part until the client's consent is recorded."""
        if not CLIENT_REF.fullmatch(client_ref):
            raise ApiError(400, "koppi.bad_client_ref", "client_ref: 64 lowercase hex characters")
        if purpose not in PURPOSES:
            raise ApiError(400, "koppi.bad_purpose", "purpose outside the code list")
        thread = Thread(
            id=uuid.uuid4(),
            client_ref=client_ref,
            purpose=purpose,
            next_seq=1,
            created_at=self._clock.now_ms(),
        )
        try:
            await self._threads.add_thread(thread, [principal.user_id])
        except IntegrityError:
            raise ApiError(
                409, "koppi.thread_exists", "this client already has a thread for that purpose"
            ) from None
        return thread.id

    async def label_policy(self, thread_id: uuid.UUID) -> str:
        """The thread's default storage label policy (callers checked membership)."""
        return await self._threads.label_policy(thread_id)

    async def set_label_policy(
        self, principal: Principal, thread_id: uuid.UUID, policy: str
    ) -> None:
        """An admitted member sets what senders' labels start as; audited."""
        await self._admission.require_admitted(principal, thread_id)
        if policy not in LABEL_POLICIES:
            raise ApiError(
                400, "koppi.bad_label", f"policy: one of {', '.join(sorted(LABEL_POLICIES))}"
            )
        await self._threads.set_label_policy(thread_id, policy)
        await self._trail.audit(principal.org_id, principal.user_id, "thread.label_policy",
                                f"{thread_id} {policy}", self._clock.now_ms())  # fmt: skip

    async def organisations(self) -> list[Organisation]:
        """The deployment's active organisations, which a consent can name (any professional may
        list them: their keys are in the transparency log for anyone to read anyway)."""
        return await self._accounts.active_organisations()

    async def invite(self, principal: Principal, thread_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """An admitted member invites a professional, who joins only if the thread's current
        consent admits them now (decided and audited). Returns False if already a member."""
        await self._admission.require_admitted(principal, thread_id)
        user = await self._accounts.user_by_id(user_id)
        if user is None or user.disabled:
            raise ApiError(404, "koppi.unknown_user", "no such user")
        member = Member(user.id, user.org_id, frozenset(user.roles or ()))
        decision = await self._admission.at_join(principal, thread_id, member)
        if not decision.allowed:
            raise ApiError(403, decision.reason, "the client's consent does not admit them")
        added = await self._threads.add_member(thread_id, user.id, self._clock.now_ms())
        self._admission.forget(thread_id)
        if added and self.on_joined is not None:
            await self.on_joined(thread_id, user.id)
        return added

    async def mine(self, principal: Principal) -> list[ThreadSummary]:
        """The caller's threads, newest first, each with the admission decision for them now
        (not audited: listing decides nothing; hello and every send do)."""
        out = []
        for thread in await self._threads.threads_of_member(principal.user_id):
            access = await self._admission.access(thread.id)
            member = access.members.get(principal.user_id)
            reason = (
                "koppi.not_member"
                if member is None
                else access.decide(member, self._admission.now_s()).reason
            )
            out.append(ThreadSummary(thread, reason))
        return out

    async def members(self, principal: Principal, thread_id: uuid.UUID) -> list[MemberView]:
        """Who is in the conference (members only): usernames, organisation names, roles and
        whether the current consent admits each of them now, by organisation and username."""
        access = await self._admission.require_invited(principal, thread_id)
        users = await self._accounts.users_by_id(access.members)
        orgs = {m.org_id for m in access.members.values()}
        names = await self._accounts.organisations_by_id(orgs)
        now = self._admission.now_s()
        out = [
            MemberView(
                u,
                users[u].username,
                m.org_id,
                names.get(m.org_id, ""),
                sorted(m.roles),
                access.decide(m, now).reason,
            )
            for u, m in access.members.items()
        ]
        return sorted(out, key=lambda v: (v.org_name, v.username))

    async def directory(
        self, principal: Principal, thread_id: uuid.UUID, org_id: uuid.UUID
    ) -> list[Professional]:
        """The professionals of one organisation whom an admitted member of the thread may
        invite: only of an organisation the thread's current consent covers (deny by default:
        nobody browses another organisation's staff without a client's consent naming it)."""
        await self._admission.require_admitted(principal, thread_id)
        access = await self._admission.access(thread_id)
        covered = {o.org_id for o in access.current.core.organisations} if access.current else set()
        if org_id.bytes not in covered:
            raise NOT_COVERED
        return [
            Professional(u.id, u.username, sorted(u.roles or ()))
            for u in await self._accounts.users_of_org(org_id)
            if not u.disabled and TAKES_PART & set(u.roles or ())
        ]
