"""Persistence of threads, their members and their envelopes (no decisions here)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import ColumnElement, case, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.audit import EventFields
from server.bus import Delivery
from server.db.engine import make_sync_engine
from server.db.tables import (
    Device,
    Disclosure,
    Envelope,
    Thread,
    ThreadMember,
    ThreadRosterDevice,
    User,
)
from server.repositories.devices import append_audit, audit_lock

T = TypeVar("T")


class DuplicateEnvelope(Exception):
    """An insert hit the unique (thread, msg id) index: the batch holds an already stored id."""


@dataclass(frozen=True)
class HeadAdvance:
    """A commit moves its thread's head from (epoch - 1, prev_hash) to (epoch, commit_hash);
    epoch 0 moves it from nothing, and stores the genesis (docs/protocol.md §5.1, §5.5)."""

    epoch: int
    prev_hash: bytes
    commit_hash: bytes
    genesis: bytes | None = None
    roster: tuple[bytes, ...] = ()  # device ids of the new epoch


@dataclass(frozen=True)
class NewEnvelope:
    thread_id: uuid.UUID
    msg_id: bytes
    sender_device: bytes
    sender_user: uuid.UUID
    epoch: int
    label: str
    body: bytes
    commit: HeadAdvance | None = None  # set for a commit, None for a message
    label_orgs: frozenset[bytes] = frozenset()  # the label's organisations (16-byte ids)

    @property
    def kind(self) -> str:
        return "message" if self.commit is None else "commit"


@dataclass(frozen=True)
class StoredMessage:
    """A stored message's header as the server keeps it (never its body): who sent it, when,
    and its storage label. What the right-to-know report reads while the message is kept."""

    thread_id: uuid.UUID
    seq: int
    msg_id: bytes
    sender_user: uuid.UUID
    at: int
    label: str  # canonical JSON: {"basis":..,"orgs":[..]}


@dataclass(frozen=True)
class Member:
    """An invited member of a thread, as admission judges them."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    roles: frozenset[str]


class ThreadRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._writer_engine: Engine | None = None  # made on the first write (SQLite only)
        self._writer_thread: ThreadPoolExecutor | None = None

    async def add_thread(self, thread: Thread, members: Sequence[uuid.UUID]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Thread).values(
                    id=thread.id,
                    client_ref=thread.client_ref,
                    purpose=thread.purpose,
                    next_seq=1,
                    created_at=thread.created_at,
                )
            )
            if members:
                await conn.execute(
                    insert(ThreadMember),
                    [
                        {"thread_id": thread.id, "user_id": m, "added_at": thread.created_at}
                        for m in members
                    ],
                )

    async def get(self, thread_id: uuid.UUID) -> Thread | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(Thread).where(Thread.id == thread_id))).first()
        return None if row is None else Thread(**row._mapping)

    async def of_client(self, client_ref: str) -> list[Thread]:
        """Every thread of one client (a client reference), oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Thread)
                .where(Thread.client_ref == client_ref)
                .order_by(Thread.created_at, Thread.id)
            )
            return [Thread(**r._mapping) for r in rows]

    async def message_headers(self, thread_ids: Sequence[uuid.UUID]) -> list[StoredMessage]:
        """The stored messages of these threads without their bodies, in each thread's order."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(
                    Envelope.thread_id,
                    Envelope.seq,
                    Envelope.msg_id,
                    Envelope.sender_user,
                    Envelope.created_at,
                    Envelope.label,
                )
                .where(Envelope.thread_id.in_(list(thread_ids)), Envelope.kind == "message")
                .order_by(Envelope.thread_id, Envelope.seq)
            )
            return [
                StoredMessage(
                    r.thread_id,
                    int(r.seq),
                    bytes(r.msg_id),
                    r.sender_user,
                    int(r.created_at),
                    r.label,
                )
                for r in rows
            ]

    async def threads_of(self, user_id: uuid.UUID) -> dict[uuid.UUID, int]:
        """The user's threads with their head sequence (0 when empty)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Thread.id, Thread.next_seq)
                .join(ThreadMember, ThreadMember.thread_id == Thread.id)
                .where(ThreadMember.user_id == user_id)
            )
            return {r.id: r.next_seq - 1 for r in rows}

    async def threads_of_member(self, user_id: uuid.UUID) -> list[Thread]:
        """The threads the user is invited to, newest first (what their thread list shows)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Thread)
                .join(ThreadMember, ThreadMember.thread_id == Thread.id)
                .where(ThreadMember.user_id == user_id)
                .order_by(Thread.created_at.desc(), Thread.id)
            )
            return [Thread(**r._mapping) for r in rows]

    async def members(self, thread_id: uuid.UUID) -> dict[uuid.UUID, Member]:
        return (await self.members_of([thread_id]))[thread_id]

    async def members_of(
        self, thread_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, dict[uuid.UUID, Member]]:
        """The invited members of several threads, with the organisation and roles admission is
        judged by, in one query (every id gets an entry). Disabled users are left out."""
        found: dict[uuid.UUID, dict[uuid.UUID, Member]] = {t: {} for t in thread_ids}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ThreadMember.thread_id, User.id, User.org_id, User.roles)
                .join(User, User.id == ThreadMember.user_id)
                .where(ThreadMember.thread_id.in_(list(thread_ids)), User.disabled.is_(False))
            )
            for r in rows:
                found[r.thread_id][r.id] = Member(r.id, r.org_id, frozenset(r.roles or ()))
        return found

    async def add_member(self, thread_id: uuid.UUID, user_id: uuid.UUID, at: int) -> bool:
        """Invite a user; False if they already were."""
        async with self._engine.begin() as conn:
            known = await conn.execute(
                select(ThreadMember.user_id).where(
                    ThreadMember.thread_id == thread_id, ThreadMember.user_id == user_id
                )
            )
            if known.first() is not None:
                return False
            await conn.execute(
                insert(ThreadMember).values(thread_id=thread_id, user_id=user_id, added_at=at)
            )
            return True

    async def message_span(
        self, thread_id: uuid.UUID, start_ms: int, end_ms: int
    ) -> tuple[int, int | None, int | None]:
        """(how many messages, the first and the last one's time) stored in the thread in
        [start_ms, end_ms): what an organisation covered in that span received."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(), func.min(Envelope.created_at), func.max(Envelope.created_at)
                    ).where(
                        Envelope.thread_id == thread_id,
                        Envelope.kind == "message",
                        Envelope.created_at >= start_ms,
                        Envelope.created_at < end_ms,
                    )
                )
            ).one()
        return int(row[0]), row[1], row[2]

    async def fence_thread(self, thread_id: uuid.UUID) -> None:
        """A member lost admission while holding a device of the head roster: no message until
        a commit without it."""
        async with self._engine.begin() as conn:
            await conn.execute(update(Thread).where(Thread.id == thread_id).values(rekey_due=True))

    async def roster_users(self, thread_id: uuid.UUID) -> frozenset[uuid.UUID]:
        """The users whose devices hold the thread's current epoch."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Device.user_id)
                .join(ThreadRosterDevice, ThreadRosterDevice.device_id == Device.device_id)
                .where(ThreadRosterDevice.thread_id == thread_id)
            )
            return frozenset(rows.scalars())

    async def envelopes_after(
        self, thread_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[Delivery]:
        return await self._page(thread_id, after_seq, limit)

    async def _page(
        self, thread_id: uuid.UUID, after_seq: int, limit: int, *only: ColumnElement[bool]
    ) -> list[Delivery]:
        """The thread's envelopes after `after_seq` (those matching `only`), in order."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Envelope)
                .where(Envelope.thread_id == thread_id, Envelope.seq > after_seq, *only)
                .order_by(Envelope.seq)
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    async def label_policy(self, thread_id: uuid.UUID) -> str:
        async with self._engine.connect() as conn:
            found = await conn.execute(select(Thread.label_policy).where(Thread.id == thread_id))
            return str(found.scalar_one())

    async def set_label_policy(self, thread_id: uuid.UUID, policy: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Thread).where(Thread.id == thread_id).values(label_policy=policy)
            )

    async def closed_among(self, thread_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Thread.id).where(
                    Thread.id.in_(list(thread_ids)), Thread.closed_at.is_not(None)
                )
            )
            return set(rows.scalars())

    async def close_thread(self, thread_id: uuid.UUID, at: int) -> bool:
        """Close a thread; False if it already was."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(Thread)
                .where(Thread.id == thread_id, Thread.closed_at.is_(None))
                .values(closed_at=at)
            )
            return bool(done.rowcount)

    async def purge(self, now: int, retention_ms: int, max_age_ms: int) -> dict[uuid.UUID, int]:
        """Delete the messages of threads closed `retention_ms` ago, and every message older
        than `max_age_ms`; returns how many envelopes each thread lost. On SQLite the deleted
        bytes are overwritten (secure_delete) and the write-ahead log is emptied, so no copy
        stays in free pages or in the log."""
        purged: dict[uuid.UUID, int] = {}
        async with self._engine.begin() as conn:
            due = list(
                (
                    await conn.execute(
                        select(Thread.id).where(
                            Thread.closed_at.is_not(None),
                            Thread.closed_at <= now - retention_ms,
                            Thread.purged_at.is_(None),
                        )
                    )
                ).scalars()
            )
            for thread_id in due:
                gone = await conn.execute(delete(Envelope).where(Envelope.thread_id == thread_id))
                purged[thread_id] = gone.rowcount
            if due:
                await conn.execute(update(Thread).where(Thread.id.in_(due)).values(purged_at=now))
            old = await conn.execute(
                select(Envelope.thread_id, func.count())
                .where(Envelope.created_at < now - max_age_ms)
                .group_by(Envelope.thread_id)
            )
            for thread_id, count in old.all():
                purged[thread_id] = purged.get(thread_id, 0) + int(count)
            await conn.execute(delete(Envelope).where(Envelope.created_at < now - max_age_ms))
        if purged and self._sqlite:
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return purged

    async def labelled_for(
        self, thread_id: uuid.UUID, org_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[Delivery]:
        """The thread's commits, and the messages whose storage label names `org_id`, after
        `after_seq` in order: what an organisation's record system may take."""
        named = f'"{org_id}"'  # the canonical label JSON holds each organisation as a string
        labelled = Envelope.label.contains(named, autoescape=True)
        return await self._page(thread_id, after_seq, limit, (Envelope.kind == "commit") | labelled)

    async def commits_after(
        self, thread_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[Delivery]:
        """The thread's commits after `after_seq`, in order: the epochs without any content."""
        return await self._page(thread_id, after_seq, limit, Envelope.kind == "commit")

    async def add_disclosure(self, disclosure: Disclosure) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                insert(Disclosure).values(
                    thread_id=disclosure.thread_id,
                    org_id=disclosure.org_id,
                    user_id=disclosure.user_id,
                    msg_ids=disclosure.msg_ids,
                    first_seq=disclosure.first_seq,
                    last_seq=disclosure.last_seq,
                    at=disclosure.at,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def disclosures(self, thread_id: uuid.UUID) -> list[Disclosure]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Disclosure).where(Disclosure.thread_id == thread_id).order_by(Disclosure.id)
            )
            return [Disclosure(**r._mapping) for r in rows]

    async def in_write_transaction(
        self, body: Callable[[Connection], T], *, audited: bool = False
    ) -> T:
        """Run `body` in one write transaction and commit; `audited`: the body appends to the
        audit chain (`server.repositories.devices.append_audit`), so this process's other
        appenders wait until it has committed.

        On SQLite the body runs on a dedicated writer thread over a synchronous connection: one
        thread hop per transaction instead of several per statement, which is what keeps group
        commits short while the event loop is busy delivering. On PostgreSQL it runs on the async
        engine (asyncpg is native asyncio)."""
        if audited:
            async with audit_lock(self._engine):
                return await self.in_write_transaction(body)
        if self._sqlite:
            if self._writer_engine is None or self._writer_thread is None:
                self._writer_engine = make_sync_engine(self._engine.url)
                self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="koppi-writer")
            engine = self._writer_engine

            def run() -> T:
                with engine.begin() as conn:
                    return body(conn)

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer_thread, run)
        async with self._engine.begin() as conn:
            return await conn.run_sync(body)

    async def audit_many(self, events: Sequence[EventFields]) -> None:
        """Append audit events on the write path (on SQLite the writer thread), queued behind
        the group commits instead of competing with them for the database's write lock: for
        appenders that run often, such as the delivered ranges (`server/services/deliveries.py`)."""
        if events:
            await self.in_write_transaction(lambda conn: append_audit(conn, events), audited=True)

    def close(self) -> None:
        if self._writer_thread is not None:
            self._writer_thread.shutdown(wait=True)
        if self._writer_engine is not None:
            self._writer_engine.dispose()

    @staticmethod
    def existing(
        conn: Connection, keys: Sequence[tuple[uuid.UUID, bytes]]
    ) -> dict[tuple[uuid.UUID, bytes], tuple[int, bytes]]:
        """Already stored (thread, msg id) -> (seq, sender device), for idempotent resends.
        One query per thread, each served by the unique (thread, msg id) index."""
        by_thread: dict[uuid.UUID, list[bytes]] = {}
        for thread_id, msg_id in keys:
            by_thread.setdefault(thread_id, []).append(msg_id)
        found: dict[tuple[uuid.UUID, bytes], tuple[int, bytes]] = {}
        if conn.dialect.name == "sqlite":
            return _SqliteWriter(conn).existing(by_thread)
        for thread_id, ids in by_thread.items():
            rows = conn.execute(
                select(Envelope.msg_id, Envelope.seq, Envelope.sender_device).where(
                    Envelope.thread_id == thread_id, Envelope.msg_id.in_(ids)
                )
            )
            for r in rows:
                found[(thread_id, r.msg_id)] = (r.seq, r.sender_device)
        return found

    @staticmethod
    def head_epochs(
        conn: Connection, thread_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, int | None]:
        """Each thread's newest sequenced epoch (None before epoch 0), locked for the rest of
        the transaction on PostgreSQL (in id order, as `reserve_seqs` locks), so no other
        writer moves a head between this read and the envelopes' sequence numbers."""
        ids = sorted(thread_ids, key=lambda t: t.bytes)
        if conn.dialect.name == "sqlite":  # one writer: nothing to lock
            return _SqliteWriter(conn).head_epochs(ids)
        rows = conn.execute(
            select(Thread.id, Thread.epoch)
            .where(Thread.id.in_(ids))
            .order_by(Thread.id)
            .with_for_update()
        )
        return {r.id: r.epoch for r in rows}

    @staticmethod
    def reserve_seqs(conn: Connection, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
        """Reserve `counts[t]` consecutive sequence numbers in each thread t in one statement;
        returns the first of each range. The UPDATE row-locks those threads until the
        transaction ends, so concurrent writers (several processes on PostgreSQL) get disjoint,
        gap-free ranges in commit order."""
        if conn.dialect.name == "sqlite":
            return _SqliteWriter(conn).reserve_seqs(counts)
        ids = sorted(counts, key=lambda t: t.bytes)
        result = conn.execute(
            update(Thread)
            .where(Thread.id.in_(ids))
            .values(next_seq=Thread.next_seq + case(counts, value=Thread.id))
            .returning(Thread.id, Thread.next_seq)
        )
        firsts = {row.id: int(row.next_seq) - counts[row.id] for row in result}
        if len(firsts) != len(ids):
            raise LookupError("a thread vanished while its envelopes were being stored")
        return firsts

    @staticmethod
    def advance_head(conn: Connection, thread_id: uuid.UUID, head: HeadAdvance) -> str | None:
        """Move the thread's head if it is where the commit says it is; else why not (an error
        code). Conditional in one UPDATE, so two writers cannot both sequence an epoch. The
        roster is checked again here, inside the transaction, so a device revoked while the
        commit waited cannot slip in (the revocation and this check are serialised)."""
        approved = conn.execute(
            select(func.count())
            .select_from(Device)
            .where(Device.device_id.in_(head.roster), Device.status == "approved")
        ).scalar_one()
        if approved != len(head.roster):
            return "koppi.roster_refused"
        parent = (
            Thread.epoch.is_(None)
            if head.epoch == 0
            else (Thread.epoch == head.epoch - 1) & (Thread.head_hash == head.prev_hash)
        )
        values: dict[str, object] = {
            "epoch": head.epoch,
            "head_hash": head.commit_hash,
            "rekey_due": False,
        }
        if head.genesis is not None:
            values["genesis"] = head.genesis
        moved = conn.execute(
            update(Thread).where(Thread.id == thread_id, parent).values(**values)
        ).rowcount
        if moved:
            stale = ThreadRosterDevice.thread_id == thread_id
            conn.execute(delete(ThreadRosterDevice).where(stale))
            if head.roster:
                conn.execute(
                    insert(ThreadRosterDevice),
                    [{"thread_id": thread_id, "device_id": d} for d in head.roster],
                )
            return None
        current = conn.execute(select(Thread.epoch).where(Thread.id == thread_id)).scalar()
        if current is not None and head.epoch <= current:
            return "koppi.stale_commit"
        if head.epoch > (-1 if current is None else current) + 1:
            return "koppi.epoch_gap"
        return "koppi.bad_prev_hash"

    async def fence_device(self, device_id: bytes) -> list[uuid.UUID]:
        """A device was revoked: every thread whose head roster holds it needs a new epoch
        before anyone sends again. Returns those threads."""
        async with self._engine.begin() as conn:
            threads = list(
                (
                    await conn.execute(
                        select(ThreadRosterDevice.thread_id).where(
                            ThreadRosterDevice.device_id == device_id
                        )
                    )
                ).scalars()
            )
            if threads:
                await conn.execute(
                    update(Thread).where(Thread.id.in_(threads)).values(rekey_due=True)
                )
            return threads

    async def fenced_threads(self) -> set[uuid.UUID]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(Thread.id).where(Thread.rekey_due.is_(True)))
            return set(rows.scalars())

    async def subject(self, thread_id: uuid.UUID) -> tuple[str, str] | None:
        """(client reference, purpose) of a thread, as the server recorded them."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Thread.client_ref, Thread.purpose).where(Thread.id == thread_id)
                )
            ).first()
        return None if row is None else (row.client_ref, row.purpose)

    async def thread_head(self, thread_id: uuid.UUID) -> tuple[int | None, bytes | None]:
        """(epoch, genesis) of a thread; (None, None) before its genesis commit."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Thread.epoch, Thread.genesis).where(Thread.id == thread_id)
                )
            ).first()
        return (None, None) if row is None else (row.epoch, row.genesis)

    async def commits(self) -> list[tuple[uuid.UUID, int, bytes]]:
        """Every sequenced commit (thread, epoch, body), in each thread's order."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(Envelope.thread_id, Envelope.epoch, Envelope.body)
                .where(Envelope.kind == "commit")
                .order_by(Envelope.thread_id, Envelope.seq)
            )
            return [(r.thread_id, int(r.epoch), bytes(r.body)) for r in rows]

    @staticmethod
    def insert(conn: Connection, rows: Sequence[tuple[NewEnvelope, int]], now: int) -> None:
        if conn.dialect.name == "sqlite":
            return _SqliteWriter(conn).insert(rows, now)
        try:
            ThreadRepository._insert_core(conn, rows, now)
        except IntegrityError:
            raise DuplicateEnvelope() from None

    @staticmethod
    def _insert_core(conn: Connection, rows: Sequence[tuple[NewEnvelope, int]], now: int) -> None:
        conn.execute(
            insert(Envelope),
            [
                {
                    "thread_id": e.thread_id,
                    "seq": seq,
                    "msg_id": e.msg_id,
                    "sender_device": e.sender_device,
                    "sender_user": e.sender_user,
                    "epoch": e.epoch,
                    "label": e.label,
                    "body": e.body,
                    "created_at": now,
                    "kind": e.kind,
                }
                for e, seq in rows
            ],
        )


class _SqliteWriter:
    """The SQLite write path in plain DB-API calls on the transaction's own connection.

    It runs on the writer thread inside `in_write_transaction`, where SQLAlchemy's per-statement
    overhead (about 0.4 ms) would be most of a group commit's time. The SQL is the same as the
    Core path's; ids are stored as SQLAlchemy's `Uuid` stores them on SQLite (32 hex digits).
    """

    def __init__(self, conn: Connection) -> None:
        self._cur = conn.connection.cursor()

    def existing(
        self, by_thread: dict[uuid.UUID, list[bytes]]
    ) -> dict[tuple[uuid.UUID, bytes], tuple[int, bytes]]:
        found: dict[tuple[uuid.UUID, bytes], tuple[int, bytes]] = {}
        for thread_id, ids in by_thread.items():
            marks = ",".join("?" * len(ids))
            self._cur.execute(
                "SELECT msg_id, seq, sender_device FROM envelopes "  # noqa: S608 - only ? marks
                f"WHERE thread_id = ? AND msg_id IN ({marks})",
                (thread_id.hex, *ids),
            )
            for msg_id, seq, device in self._cur.fetchall():
                found[(thread_id, bytes(msg_id))] = (int(seq), bytes(device))
        return found

    def head_epochs(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int | None]:
        found: dict[uuid.UUID, int | None] = {}
        for chunk in _chunks(list(ids), 2000):
            marks = ",".join("?" * len(chunk))
            self._cur.execute(
                f"SELECT id, epoch FROM threads WHERE id IN ({marks})",  # noqa: S608 - ? marks
                tuple(t.hex for t in chunk),
            )
            for id_hex, epoch in self._cur.fetchall():
                found[uuid.UUID(hex=id_hex)] = None if epoch is None else int(epoch)
        return found

    def reserve_seqs(self, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
        # One statement for the whole batch: the sqlite3 module releases the GIL around each
        # statement, and re-taking it from a busy event loop costs up to a switch interval.
        firsts: dict[uuid.UUID, int] = {}
        ids = sorted(counts, key=lambda t: t.bytes)
        for chunk in _chunks(ids, 2000):
            cases = " ".join("WHEN ? THEN ?" for _ in chunk)
            marks = ",".join("?" * len(chunk))
            args: list[object] = []
            for t in chunk:
                args += [t.hex, counts[t]]
            self._cur.execute(
                f"UPDATE threads SET next_seq = next_seq + CASE id {cases} END "  # noqa: S608
                f"WHERE id IN ({marks}) RETURNING id, next_seq",
                (*args, *(t.hex for t in chunk)),
            )
            for id_hex, next_seq in self._cur.fetchall():
                t = uuid.UUID(hex=id_hex)
                firsts[t] = int(next_seq) - counts[t]
        if len(firsts) != len(ids):
            raise LookupError("a thread vanished while its envelopes were being stored")
        return firsts

    def insert(self, rows: Sequence[tuple[NewEnvelope, int]], now: int) -> None:
        try:
            self._executemany(rows, now)
        except sqlite3.IntegrityError:
            raise DuplicateEnvelope() from None

    def _executemany(self, rows: Sequence[tuple[NewEnvelope, int]], now: int) -> None:
        # Multi-row INSERTs rather than executemany, for the same reason as reserve_seqs: one
        # GIL release per statement instead of one per row.
        for chunk in _chunks(rows, 500):
            values = ",".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
            args: list[object] = []
            for e, seq in chunk:
                args += [
                    e.thread_id.hex,
                    seq,
                    e.msg_id,
                    e.sender_device,
                    e.sender_user.hex,
                    e.epoch,
                    e.label,
                    e.body,
                    now,
                    e.kind,
                ]
            self._cur.execute(
                "INSERT INTO envelopes (thread_id, seq, msg_id, sender_device, sender_user, "  # noqa: S608
                f"epoch, label, body, created_at, kind) VALUES {values}",
                args,
            )


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _delivery(r: object) -> Delivery:
    return Delivery(
        thread_id=r.thread_id,  # type: ignore[attr-defined]
        seq=r.seq,  # type: ignore[attr-defined]
        msg_id=r.msg_id,  # type: ignore[attr-defined]
        epoch=r.epoch,  # type: ignore[attr-defined]
        sender_device=r.sender_device,  # type: ignore[attr-defined]
        label=r.label,  # type: ignore[attr-defined]
        body=r.body,  # type: ignore[attr-defined]
        created_at=r.created_at,  # type: ignore[attr-defined]
        kind=r.kind,  # type: ignore[attr-defined]
    )
