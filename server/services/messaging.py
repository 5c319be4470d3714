"""Accepting, ordering and storing envelopes: the guarantees of the wire protocol live here.

- **Ack after durable commit.** `send()` returns only after the transaction that stored the
  envelope committed (SQLite WAL with synchronous=FULL, or PostgreSQL).
- **Group commit.** One writer task takes every send that is waiting and stores them in one
  transaction, so many senders share one fsync. No send waits for a timer: a lone send is
  committed at once, a busy server commits in batches.
- **Idempotency.** A (thread, message id) pair is stored once. A resend, with the same or other
  bytes (a client may re-encrypt an unacknowledged message for a new epoch under the same id),
  gets the original sequence number back; receivers deduplicate by id. The same id from another
  device is refused (`koppi.duplicate_message_id`).
- **One order per thread.** Sequence numbers come from the thread row inside the insert's
  transaction: gap-free, strictly increasing, identical for every member.
- **Every stored message audited.** Its `message.stored` event (metadata only) joins the audit
  chain in the same transaction as the envelope: an acknowledged message is always audited, and
  a batch costs one append, not one round trip per message (docs/protocol.md §11).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import msgspec
import structlog
from sqlalchemy.engine import Connection

from crypto.clock import Clock
from server.audit import NewEvent, stored_subject
from server.bus import Delivery, FanoutBus
from server.errors import ApiError
from server.metrics import Metrics
from server.principal import Principal
from server.repositories.devices import append_audit
from server.repositories.threads import (
    DuplicateEnvelope,
    NewEnvelope,
    ThreadRepository,
)
from server.services.admission import NOT_MEMBER, AdmissionService, ThreadAccess

log = structlog.get_logger(__name__)

FOREIGN_SENDER = ApiError(403, "koppi.forbidden", "an envelope is sent as its own user only")
COMMIT_REFUSED = {
    "koppi.stale_commit": ApiError(
        409, "koppi.stale_commit", "a commit for that epoch was sequenced first: apply it, retry"
    ),
    "koppi.epoch_gap": ApiError(409, "koppi.epoch_gap", "the thread is not at the epoch before"),
    "koppi.bad_prev_hash": ApiError(
        409, "koppi.bad_prev_hash", "the commit does not name the thread's head commit"
    ),
    "koppi.roster_refused": ApiError(
        403, "koppi.roster_refused", "a roster device is no longer an approved device"
    ),
}
REKEY_DUE = ApiError(
    409,
    "koppi.removal_due",
    "a device of this thread's epoch was revoked or its member cut off: commit a new epoch "
    "without it before sending",
)
LABEL_NOT_COVERED = ApiError(
    403,
    "koppi.label_not_covered",
    "the storage label names an organisation the thread's consent does not let store content",
)
THREAD_CLOSED = ApiError(409, "koppi.thread_closed", "the thread is closed: nothing more is sent")


def wrong_epoch(sent: int, head: int) -> ApiError:
    if sent > head:
        return ApiError(409, "koppi.unknown_epoch", f"no commit for epoch {sent}: the thread "
                        f"is at epoch {head}")  # fmt: skip
    return ApiError(409, "koppi.stale_epoch", f"the thread is at epoch {head}: apply its "
                    "commits and re-encrypt the message under the same id")  # fmt: skip


DUPLICATE_ID = ApiError(
    409, "koppi.duplicate_message_id", "that message id is taken in this thread"
)


@dataclass(frozen=True)
class Accepted:
    thread_id: uuid.UUID
    msg_id: bytes
    seq: int
    duplicate: bool  # True when the id was already stored: nothing new was written


@dataclass
class _Pending:
    envelope: NewEnvelope
    done: asyncio.Future[Accepted]
    org_id: uuid.UUID  # the sender's organisation, whose trail records the stored message


class _Label(msgspec.Struct):
    """The stored (canonical) storage label, read back for the audit subject."""

    basis: str
    orgs: list[str]


_label = msgspec.json.Decoder(_Label)


class MessagingService:
    def __init__(
        self,
        threads: ThreadRepository,
        bus: FanoutBus,
        clock: Clock,
        metrics: Metrics,
        admission: AdmissionService,
        *,
        batch_max: int = 512,
    ) -> None:
        self._threads, self._bus, self._clock, self._metrics = threads, bus, clock, metrics
        self._admission = admission
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()  # None: stop
        self._writer: asyncio.Task[None] | None = None
        # Called for each newly sequenced commit, after its transaction and before its ack: the
        # transparency log records the thread's new head (docs/protocol.md §4 "Commit head").
        self.on_commit: Callable[[NewEnvelope], Awaitable[None]] | None = None
        # Threads whose head roster holds a revoked device: messages wait for the next commit.
        self._fenced: set[uuid.UUID] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="koppi-group-commit")

    async def load_fences(self) -> None:
        self._fenced = await self._threads.fenced_threads()

    async def fence_members(self, thread_id: uuid.UUID, users: Iterable[uuid.UUID]) -> bool:
        """Members lost admission: if a device of theirs holds the current epoch, the thread
        takes no message until a commit without them. Returns whether it was fenced."""
        if not await self._threads.roster_users(thread_id) & set(users):
            return False
        await self._threads.fence_thread(thread_id)
        self._fenced.add(thread_id)
        return True

    async def fence_device(self, device_id: bytes) -> list[uuid.UUID]:
        """A device was revoked: the threads whose current epoch it holds take no message until
        a commit without it is sequenced (which the roster check guarantees)."""
        threads = await self._threads.fence_device(device_id)
        self._fenced.update(threads)
        return threads

    async def stop(self) -> None:
        """Finish the batch being committed (never cut a transaction in half), then refuse the
        rest: their senders resend with the same id after reconnecting."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=10)
            except TimeoutError:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if pending is not None and not pending.done.done():
                pending.done.set_exception(
                    ApiError(503, "koppi.shutting_down", "server shutting down; resend")
                )

    # --- membership -----------------------------------------------------------------------------

    async def threads_of(self, principal: Principal) -> dict[uuid.UUID, int]:
        return await self._threads.threads_of(principal.user_id)

    async def threads_of_user(self, user_id: uuid.UUID) -> frozenset[uuid.UUID]:
        return frozenset(await self._threads.threads_of(user_id))

    async def require_member(
        self, principal: Principal, thread_id: uuid.UUID
    ) -> frozenset[uuid.UUID]:
        """Deny by default: the caller must be an admitted member of the thread right now
        (`AdmissionService`). Returns the thread's admitted members (users)."""
        return await self._admission.require_admitted(principal, thread_id)

    def prefetch_members(self, thread_ids: Iterable[uuid.UUID]) -> None:
        self._admission.prefetch(thread_ids)

    def forget_membership(self, thread_id: uuid.UUID) -> None:
        """Drop the cached roster of a thread after its membership changed."""
        self._admission.forget(thread_id)

    # --- sending --------------------------------------------------------------------------------

    def submit(self, principal: Principal, envelope: NewEnvelope) -> asyncio.Future[Accepted]:
        """`send` without a task per envelope: with the thread's access cached (the usual
        case), the checks run now and the envelope joins the next group commit; the future
        resolves after that commit."""
        access = self._admission.cached(envelope.thread_id)
        if access is None:
            return asyncio.ensure_future(self.send(principal, envelope))
        done: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        refused = self._refusal(principal, envelope, access)
        if refused is not None:
            done.set_exception(refused)
        else:
            self._queue.put_nowait(_Pending(envelope, done, principal.org_id))
        return done

    async def send(self, principal: Principal, envelope: NewEnvelope) -> Accepted:
        refused = self._refusal(
            principal, envelope, await self._admission.access(envelope.thread_id)
        )
        if refused is not None:
            raise refused
        done: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(envelope, done, principal.org_id))
        return await done

    def _refusal(
        self, principal: Principal, envelope: NewEnvelope, access: ThreadAccess
    ) -> ApiError | None:
        """Deny by default: an admitted member, as themself, on an epoch that is not fenced, with
        a storage label the thread's consent allows (only organisations it lets store content)."""
        member = access.members.get(principal.user_id)
        now_s = self._clock.now_ms() // 1000
        if member is None:
            return NOT_MEMBER
        if principal.user_id not in access.admitted(now_s):
            return access.decide(member, now_s).error()
        if envelope.sender_user != principal.user_id:
            return FOREIGN_SENDER
        if access.closed:
            return THREAD_CLOSED
        if envelope.commit is None and envelope.thread_id in self._fenced:
            return REKEY_DUE
        if not envelope.label_orgs <= access.may_store:
            return LABEL_NOT_COVERED
        return None

    async def backlog(
        self, thread_id: uuid.UUID, after_seq: int, limit: int = 500
    ) -> list[Delivery]:
        return await self._threads.envelopes_after(thread_id, after_seq, limit)

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                try:
                    await self._commit(batch, check_stored=False)
                except DuplicateEnvelope:
                    # A resend of a stored id (rare): look the batch's ids up, then store.
                    await self._commit(batch, check_stored=True)
            except Exception:
                # One bad envelope must not fail its neighbours: retry each alone.
                log.warning("group_commit.split", size=len(batch))
                for pending in batch:
                    try:
                        await self._commit([pending], check_stored=True)
                    except Exception as e:
                        if not pending.done.done():
                            log.error("envelope.store_failed", error=type(e).__name__)
                            pending.done.set_exception(
                                ApiError(500, "koppi.store_failed", "could not store; resend")
                            )

    async def _commit(self, batch: list[_Pending], *, check_stored: bool) -> None:
        """Store a batch in one transaction. The fast path skips the lookup of already stored
        ids: the unique (thread, msg id) index refuses a duplicate, and the caller retries the
        batch with `check_stored`, which answers resends with their original sequence."""
        live = [p for p in batch if not p.done.done()]
        if not live:
            return
        started = now = self._clock.now_ms()
        claimed: dict[tuple[uuid.UUID, bytes], _Pending] = {}

        def store(
            conn: Connection,
        ) -> tuple[list[tuple[_Pending, Accepted | ApiError]], list[Delivery], int]:
            """The whole transaction as one synchronous body: on SQLite it runs on the
            repository's writer thread in a single hop (docs/operations.md)."""
            results: list[tuple[_Pending, Accepted | ApiError]] = []
            deliveries: list[Delivery] = []
            keys = [(p.envelope.thread_id, p.envelope.msg_id) for p in live]
            stored = self._threads.existing(conn, keys) if check_stored else {}
            fresh: dict[uuid.UUID, list[_Pending]] = {}
            commits: list[_Pending] = []
            for p in live:
                key = (p.envelope.thread_id, p.envelope.msg_id)
                if (
                    key in claimed
                    and claimed[key].envelope.sender_device == p.envelope.sender_device
                ):
                    continue  # same id twice in one batch: answered with the first one's seq
                if key in claimed or (key in stored and stored[key][1] != p.envelope.sender_device):
                    results.append((p, DUPLICATE_ID))
                    continue
                if key in stored:
                    results.append((p, Accepted(key[0], key[1], stored[key][0], True)))
                    continue
                claimed[key] = p
                fresh.setdefault(p.envelope.thread_id, []).append(p)
                if p.envelope.commit is not None:
                    commits.append(p)
            heads = self._threads.head_epochs(conn, fresh) if fresh else {}
            for p in commits:  # a commit moves the head only from where it says it is (rare)
                e = p.envelope
                assert e.commit is not None
                refused = self._threads.advance_head(conn, e.thread_id, e.commit)
                if refused is None:
                    continue
                fresh[e.thread_id].remove(p)
                if not fresh[e.thread_id]:
                    del fresh[e.thread_id]
                seen = self._threads.existing(conn, [(e.thread_id, e.msg_id)]).get(
                    (e.thread_id, e.msg_id)
                )
                if seen is not None and seen[1] == e.sender_device:  # a resend
                    results.append((p, Accepted(e.thread_id, e.msg_id, seen[0], True)))
                else:
                    results.append((p, COMMIT_REFUSED[refused]))
            for thread_id in list(fresh):
                # A message is sealed on the epoch in force where it is sequenced: the head,
                # or a commit earlier in this batch. Receivers refuse any other (§7.4 step 2),
                # so the sender hears now, and re-encrypts under the same id.
                epoch, kept = heads.get(thread_id), []
                for p in fresh[thread_id]:
                    if p.envelope.commit is not None:
                        epoch = p.envelope.epoch
                    elif epoch is not None and p.envelope.epoch != epoch:
                        results.append((p, wrong_epoch(p.envelope.epoch, epoch)))
                        continue
                    kept.append(p)
                if kept:
                    fresh[thread_id] = kept
                else:
                    del fresh[thread_id]
            rows: list[tuple[NewEnvelope, int]] = []
            events: list[NewEvent] = []
            if fresh:
                firsts = self._threads.reserve_seqs(conn, {t: len(i) for t, i in fresh.items()})
                for thread_id, items in fresh.items():
                    for offset, p in enumerate(items):
                        seq, e = firsts[thread_id] + offset, p.envelope
                        rows.append((e, seq))
                        results.append((p, Accepted(thread_id, e.msg_id, seq, False)))
                        if e.commit is None:  # commits are audited as thread.committed
                            label = _label.decode(e.label)
                            subject = stored_subject(
                                thread_id, seq, e.msg_id, label.basis, label.orgs
                            )
                            events.append(
                                NewEvent(p.org_id, e.sender_user, "message.stored", subject, now)
                            )
                        deliveries.append(
                            Delivery(
                                thread_id,
                                seq,
                                e.msg_id,
                                e.epoch,
                                e.sender_device,
                                e.label,
                                e.body,
                                now,
                                e.kind,
                            )
                        )
                self._threads.insert(conn, rows, now)
                append_audit(conn, events)  # last: it serialises every appender
            return results, deliveries, len(rows)

        results, deliveries, stored_count = await self._threads.in_write_transaction(
            store, audited=True
        )
        # The transaction has committed: only now may anyone hear of these envelopes.
        self._metrics.commit_latency.observe((self._clock.now_ms() - started) / 1000)
        self._metrics.messages_accepted.inc(stored_count)
        for p, result in results:
            head = p.envelope.commit
            if head is None or not isinstance(result, Accepted) or result.duplicate:
                continue
            self._fenced.discard(p.envelope.thread_id)  # its roster passed the check: unfenced
            if self.on_commit is not None:
                try:
                    await self.on_commit(p.envelope)
                except Exception as e:  # sequenced all the same; its head logged at next start
                    log.error("commit.after_failed", error=type(e).__name__)
        answers = {id(p): outcome for p, outcome in results}
        for p in live:
            if p.done.done():
                continue
            outcome = answers.get(id(p))
            if outcome is None:  # a second copy of an id claimed in this batch
                outcome = answers[id(claimed[(p.envelope.thread_id, p.envelope.msg_id)])]
                if isinstance(outcome, Accepted):
                    outcome = Accepted(outcome.thread_id, outcome.msg_id, outcome.seq, True)
            if isinstance(outcome, ApiError):
                p.done.set_exception(outcome)
            else:
                p.done.set_result(outcome)
        deliveries.sort(key=lambda d: (d.thread_id, d.seq))
        await self._bus.publish(deliveries)
