"""The audit trail is a hash chain (issue: storage rights, "Audit and disclosure log"): every event
names its predecessor's hash, appends are serialised, events stored before the chain existed are
chained by the migration, and `koppi audit verify` finds an event changed or removed afterwards."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import delete, text, update

from crypto.encoding import Encoder
from crypto.primitives import sha256
from server.appkeys import AUDIT, ENGINE
from server.audit import GENESIS, Link, event_hash, verify_chain
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.tables import AuditEvent
from server.repositories.devices import DeviceRepository
from tests.server.conftest import Cast
from tests.server.test_migrations_and_cli import _koppi
from tests.server.test_ws import connect

ORG = uuid.UUID(int=7)


def chain(n: int) -> list[Link]:
    links, prev = [], GENESIS
    for i in range(1, n + 1):
        own = event_hash(i, ORG, None, "test.event", f"subject {i}", 1000 + i, prev)
        links.append(Link(i, ORG, None, "test.event", f"subject {i}", 1000 + i, prev, own))
        prev = own
    return links


def test_the_event_hash_is_the_documented_encoding() -> None:
    """`event_hash` lays the encoding out by hand for speed; it must stay the `Encoder`'s."""
    for actor, subject, at in ((None, "", 0), (uuid.UUID(int=3), "ä" * 300, 2**63 + 5)):
        reference = sha256(
            Encoder("koppi/v1/audit-event").u64(41).bytes(ORG.bytes)
            .bytes(b"" if actor is None else actor.bytes).text("message.stored").text(subject)
            .u64(at).bytes(bytes(range(32))).finish()
        )  # fmt: skip
        assert event_hash(41, ORG, actor, "message.stored", subject, at, bytes(range(32))) == (
            reference
        )


def test_a_changed_or_removed_event_breaks_the_chain_where_it_happened() -> None:
    links = chain(5)
    assert verify_chain(links).broken_at is None and verify_chain(links).events == 5
    changed = [*links[:2], Link(**{**links[2].__dict__, "subject": "rewritten"}), *links[3:]]
    verdict = verify_chain(changed)
    assert (verdict.broken_at, verdict.events) == (3, 2) and "changed" in verdict.why
    removed = [*links[:2], *links[3:]]
    assert verify_chain(removed).broken_at == 4 and "removed" in verify_chain(removed).why


async def test_the_server_appends_a_chain_that_verifies_until_someone_tampers(
    cast: Cast, database_url: str
) -> None:
    await connect(cast, "alice")  # a reconnect: an admission decision, audited
    trail = DeviceRepository(cast.app[ENGINE])
    # Appenders racing each other still make one chain.
    await asyncio.gather(
        *(
            trail.audit_many(
                [
                    AuditEvent(
                        org_id=cast.org_a, actor=None, action="test.race", subject=f"{i}/{j}", at=i
                    )
                    for j in range(3)
                ]
            )
            for i in range(20)
        )
    )
    links = await trail.audit_chain()
    assert sum(link.action == "test.race" for link in links) == 60
    assert [link.action for link in links].count("admission.reconnect") == 1
    assert verify_chain(links).broken_at is None
    ok = _koppi("--database-url", database_url, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert f"audit chain intact: {len(links)} events" in ok.stdout
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(update(AuditEvent).where(AuditEvent.id == 7).values(subject="nothing"))
    broken = _koppi("--database-url", database_url, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN at event 7" in broken.stderr
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(update(AuditEvent).where(AuditEvent.id == 7).values(subject="7"))
        await conn.execute(delete(AuditEvent).where(AuditEvent.id == 7))
    gone = _koppi("--database-url", database_url, "audit", "verify")
    assert gone.returncode == 1 and "BROKEN at event 8" in gone.stderr


async def test_events_stored_before_the_chain_are_chained_by_the_migration(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url)
    try:
        await upgrade(engine, "0009_admission_audit")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO organisations (id, name, business_id, status, created_at) "
                     "VALUES (:id, 'Kela', '0246246-0', 'active', 0)"),
                {"id": ORG.hex},
            )  # fmt: skip
            for i in range(3):
                await conn.execute(
                    text("INSERT INTO audit_events (org_id, actor, action, subject, at) "
                         "VALUES (:org, NULL, 'old.event', :subject, :at)"),
                    {"org": ORG.hex, "subject": f"old {i}", "at": i},
                )  # fmt: skip
        await upgrade(engine)
        links = await DeviceRepository(engine).audit_chain()
        assert [link.subject for link in links] == ["old 0", "old 1", "old 2"]
        assert verify_chain(links).broken_at is None
        await DeviceRepository(engine).audit_many(
            [AuditEvent(org_id=ORG, actor=None, action="new.event", subject="after", at=9)]
        )
        assert verify_chain(await DeviceRepository(engine).audit_chain()).events == 4
    finally:
        await engine.dispose()


async def test_a_chain_rewritten_or_cut_short_fails_against_the_logged_checkpoint(
    cast: Cast, database_url: str
) -> None:
    """Whoever can write the database can recompute every hash after a change, or drop the
    newest events; the checkpoint in the (signed, cosigned) transparency log shows both."""
    trail = DeviceRepository(cast.app[ENGINE])
    await trail.audit_many(
        [
            AuditEvent(org_id=cast.org_a, actor=None, action="test.event", subject=str(i), at=i)
            for i in range(5)
        ]
    )
    index = await cast.app[AUDIT].checkpoint()
    assert index is not None and await cast.app[AUDIT].checkpoint() is None  # nothing new
    await trail.audit_many(
        [AuditEvent(org_id=cast.org_a, actor=None, action="test.event", subject="later", at=9)]
    )
    ok = _koppi("--database-url", database_url, "audit", "verify")
    assert ok.returncode == 0 and f"holds the checkpoint at log index {index}" in ok.stdout

    # Rewrite event 2 and recompute every hash after it: the chain alone looks whole.
    links = await trail.audit_chain()
    prev = links[0].hash
    async with cast.app[ENGINE].begin() as conn:
        for link in links[1:]:
            subject = "rewritten" if link.id == 2 else link.subject
            own = event_hash(link.id, link.org_id, link.actor, link.action, subject, link.at, prev)
            await conn.execute(
                update(AuditEvent)
                .where(AuditEvent.id == link.id)
                .values(subject=subject, prev_hash=prev, hash=own)
            )
            prev = own
    assert verify_chain(await trail.audit_chain()).broken_at is None
    rewritten = _koppi("--database-url", database_url, "audit", "verify")
    assert rewritten.returncode == 1 and f"checkpoint logged at index {index}" in rewritten.stderr

    # Cut short: the events up to the checkpoint, and the checkpointed one, gone from the end.
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(delete(AuditEvent).where(AuditEvent.id >= 5))
    cut = _koppi("--database-url", database_url, "audit", "verify")
    assert cut.returncode == 1 and "rewritten or cut short" in cut.stderr
