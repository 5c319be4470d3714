"""The server's part in commits (docs/protocol.md §5): it orders them and fences, it is never the
authority on membership.

A commit joins its thread's single order like a message, but only if it extends the thread's head
(epoch and parent hash, checked in the storing transaction: the first valid commit sequenced for
an epoch wins, RFC 9420 §14), if its committer is one of the sender's approved devices, and if
every device in its roster is an approved device of a member of the thread (a revoked device is
fenced out, whatever a client proposes). Every sequenced commit's head goes to the transparency
log, so witnesses see a fork. Members still verify everything themselves (`crypto.group.Chain`).
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from crypto.clock import Clock
from crypto.commit import REMOVE, Commit, CommitCore, Genesis, RosterEntry
from crypto.errors import KoppiError
from crypto.logentries import CommitHead
from server.db.tables import AuditEvent
from server.errors import ApiError
from server.principal import Principal
from server.repositories.devices import DeviceRepository
from server.repositories.threads import HeadAdvance, NewEnvelope, ThreadRepository
from server.services.admission import AdmissionService, ThreadAccess
from server.services.messaging import Accepted, MessagingService
from server.services.translog import TransparencyLog

log = structlog.get_logger(__name__)

COMMIT_LABEL = '{"basis":"commit","orgs":[]}'  # commits carry no content to store elsewhere


class CommitService:
    def __init__(
        self,
        messaging: MessagingService,
        admission: AdmissionService,
        devices: DeviceRepository,
        threads: ThreadRepository,
        clock: Clock,
    ) -> None:
        self._messaging, self._admission = messaging, admission
        self._devices, self._threads, self._clock = devices, threads, clock

    async def submit(
        self,
        principal: Principal,
        thread_id: uuid.UUID,
        msg_id: bytes,
        commit_bytes: bytes,
        genesis_bytes: bytes | None,
    ) -> asyncio.Future[Accepted]:
        members = await self._messaging.require_member(principal, thread_id)
        try:
            commit = Commit.decode(commit_bytes)
        except KoppiError as e:
            raise ApiError(400, "koppi.bad_commit", f"not a commit ({e.code})") from None
        core = commit.core
        if core.thread_id != thread_id.bytes:
            raise ApiError(400, "koppi.wrong_thread", "the commit is for another thread")
        committer = await self._devices.get(core.committer)
        if (
            committer is None
            or committer.user_id != principal.user_id
            or committer.status != "approved"
        ):
            raise ApiError(403, "koppi.forbidden", "commit from one of your approved devices")
        self._check_evidence(core, await self._admission.access(thread_id))
        await self._check_roster(core.roster, members)
        if core.epoch == 0:
            if genesis_bytes is None:
                raise ApiError(400, "koppi.bad_genesis", "the first commit comes with its genesis")
            subject = await self._threads.subject(thread_id)
            _check_genesis(genesis_bytes, thread_id, subject, core.prev_commit_hash, core.committer)
        elif genesis_bytes is not None:
            raise ApiError(400, "koppi.frame_invalid", "only the first commit has a genesis")
        envelope = NewEnvelope(
            thread_id=thread_id,
            msg_id=msg_id,
            sender_device=core.committer,
            sender_user=principal.user_id,
            epoch=core.epoch,
            label=COMMIT_LABEL,
            body=commit_bytes,
            commit=HeadAdvance(
                core.epoch,
                core.prev_commit_hash,
                commit.hash,
                genesis_bytes,
                tuple(e.device_id for e in core.roster),
            ),
        )
        return self._messaging.submit(principal, envelope)

    @staticmethod
    def _check_evidence(core: CommitCore, access: ThreadAccess) -> None:
        """The consent a commit cites is the thread's current one, in force, and the commit's
        coverage and may-store sets are that version's (members check the same, §5.4)."""
        current = access.current
        if access.book.cover(core.evidence, 0) is None:
            raise ApiError(
                403, "koppi.unknown_consent", "the commit cites no consent recorded for the thread"
            )
        assert current is not None
        if core.evidence != current.core.core_hash or current.core.status != "active":
            raise ApiError(
                403, "koppi.consent_inactive", "the commit cites a superseded or revoked consent"
            )
        covered = current.core.covered
        may_store = frozenset(o.org_id for o in current.core.organisations if o.may_store)
        if core.coverage != covered or core.may_store != may_store:
            raise ApiError(
                403, "koppi.coverage_mismatch", "coverage differs from the cited consent's"
            )

    async def _check_roster(
        self, roster: tuple[RosterEntry, ...], members: frozenset[uuid.UUID]
    ) -> None:
        known = {d.device_id: d for d in await self._devices.get_many(e.device_id for e in roster)}
        for entry in roster:
            d = known.get(entry.device_id)
            if (
                d is None
                or d.status != "approved"
                or d.user_id not in members
                or (entry.user_id, entry.org_id) != (d.user_id.bytes, d.org_id.bytes)
            ):
                raise ApiError(
                    403,
                    "koppi.roster_refused",
                    f"device {entry.device_id.hex()[:16]} is not an approved device of a member",
                )

    async def sequenced(self, translog: TransparencyLog | None, envelope: NewEnvelope) -> None:
        """After a commit's transaction, before its ack: its head to the transparency log, and
        the new epoch (with every removal it makes) to the committer's organisation's trail."""
        assert envelope.commit is not None
        if translog is not None:
            await log_commit_head(translog, envelope.thread_id, envelope.commit)
        core = Commit.decode(envelope.body).core
        member = (await self._admission.access(envelope.thread_id)).members.get(
            envelope.sender_user
        )
        if member is None:
            return
        thread, now = envelope.thread_id, self._clock.now_ms()
        events = [
            AuditEvent(org_id=member.org_id, actor=member.user_id, action="thread.committed",
                       subject=f"{thread} epoch {core.epoch}", at=now)
        ] + [
            AuditEvent(org_id=member.org_id, actor=member.user_id, action="member.removed",
                       subject=f"{thread} {c.device_id.hex()[:32]} {c.reason}", at=now)
            for c in core.changes
            if c.kind == REMOVE
        ]  # fmt: skip
        await self._devices.audit_many(events)

    async def genesis(
        self, principal: Principal, thread_id: uuid.UUID
    ) -> tuple[int | None, bytes | None]:
        await self._admission.require_invited(principal, thread_id)
        return await self.genesis_of(thread_id)

    async def subject(self, thread_id: uuid.UUID) -> tuple[str, str]:
        """(client reference, purpose) the server recorded for a thread (callers checked
        membership)."""
        subject = await self._threads.subject(thread_id)
        assert subject is not None
        return subject

    async def genesis_of(self, thread_id: uuid.UUID) -> tuple[int | None, bytes | None]:
        """(the newest sequenced epoch, the genesis) of a thread; (None, None) before epoch 0."""
        return await self._threads.thread_head(thread_id)

    async def log_missing_heads(self, translog: TransparencyLog) -> int:
        """At start: log the head of any commit sequenced by a process that stopped before it
        could log it. Returns how many were missing."""
        logged = {entry for _, entry in await self._devices.log_entries_of_kind("commit-head")}
        missing = 0
        for thread_id, epoch, body in await self._threads.commits():
            entry = CommitHead(thread_id.bytes, epoch, Commit.decode(body).hash).encode()
            if entry not in logged:
                await translog.append("commit-head", entry)
                missing += 1
        if missing:
            log.warning("commit_heads.logged_late", count=missing)
        return missing


def _check_genesis(
    raw: bytes, thread_id: uuid.UUID, subject: tuple[str, str] | None, prev: bytes, committer: bytes
) -> None:
    """Epoch 0's frame: this thread, the client and purpose the server recorded for it, the
    commit's parent, and the committer as its creator."""
    try:
        genesis = Genesis.decode(raw)
    except KoppiError:
        raise ApiError(400, "koppi.bad_genesis", "not a genesis") from None
    if (genesis.thread_id, genesis.hash, genesis.creator) != (thread_id.bytes, prev, committer):
        raise ApiError(
            400, "koppi.bad_genesis", "the genesis is for another thread, commit or creator"
        )
    if (genesis.client_ref.hex(), genesis.purpose) != subject:
        raise ApiError(400, "koppi.bad_genesis", "the genesis is for another client or purpose")


async def log_commit_head(
    translog: TransparencyLog, thread_id: uuid.UUID, head: HeadAdvance
) -> None:
    await translog.append(
        "commit-head", CommitHead(thread_id.bytes, head.epoch, head.commit_hash).encode()
    )
