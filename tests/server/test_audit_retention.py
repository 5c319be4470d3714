"""Retention of the audit trail and the disclosure records (issue #8, "Audit and disclosure log";
docs/operations.md "Retention"): they are kept `audit_retention_days`, then deleted, the events
only up to a checkpoint of the chain logged in the transparency log, which becomes the anchor
`koppi audit verify` starts at. A kept event changed afterwards, or an anchor that is no logged
checkpoint, fails `verify`; each prune is audited (`audit.pruned`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from sqlalchemy import delete, func, select, update

from server.appkeys import AUDIT, ENGINE, RETENTION
from server.audit import Anchor, Link, verify_chain
from server.db.tables import AuditAnchor, AuditEvent, Disclosure
from server.repositories.devices import DeviceRepository
from tests.server.conftest import Cast
from tests.server.test_export import label
from tests.server.test_ghost_device import Api
from tests.server.test_migrations_and_cli import _koppi
from tests.server.test_ws import connect, recv, send_frame

DAY_MS = 86_400_000
PERIOD_DAYS = 30


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"audit_retention_days": PERIOD_DAYS, "audit_delivery_flush_s": 3600.0}


async def disclose(cast: Cast, *users: str) -> ClientWebSocketResponse:
    """alice sends a message every organisation may store; each user exports it (a disclosure
    record of their organisation). alice's connection stays open: its delivered range is
    written when the test says (nothing is appended behind the test's back)."""
    alice = await connect(cast, "alice")
    await alice.send_json(send_frame(cast, "alice", b"x", label=label(cast.org_a, cast.org_b)))
    seq = (await recv(alice, "ack"))["seq"]
    for user in users:
        api = await Api.of(cast, user)
        page = await api.get(f"/api/threads/{cast.thread}/export?after={seq - 1}")
        assert page["disclosure"] is not None
    return alice


async def disclosures(cast: Cast) -> list[tuple[uuid.UUID, int]]:
    async with cast.app[ENGINE].connect() as conn:
        rows = await conn.execute(select(Disclosure.org_id, Disclosure.at).order_by(Disclosure.id))
        return [(r.org_id, r.at) for r in rows]


async def chain(cast: Cast) -> list[Link]:
    return await DeviceRepository(cast.app[ENGINE]).audit_chain()


def verify(database_url: str) -> tuple[int, str]:
    done = _koppi("--database-url", database_url, "audit", "verify")
    return done.returncode, done.stdout + done.stderr


async def test_nothing_is_pruned_before_the_period_then_up_to_a_logged_checkpoint(
    cast: Cast, database_url: str
) -> None:
    trail, retention = DeviceRepository(cast.app[ENGINE]), cast.app[RETENTION]
    t0 = cast.clock.now_ms()
    ws = [await disclose(cast, "alice", "bob")]
    await cast.app[AUDIT].checkpoint()
    head = await trail.audit_head()
    assert head is not None
    old = await chain(cast)
    cast.clock.advance(10 * 86400)
    ws.append(await disclose(cast, "alice"))  # ten days younger: kept at the first prune
    await cast.app[AUDIT].checkpoint()

    # Due only once older than the period: at exactly its age, nothing goes.
    cast.clock.advance((PERIOD_DAYS - 10) * 86400)
    before = await chain(cast)
    nothing = await retention.prune_logs()
    assert (nothing.anchor, nothing.per_org) == (None, {})
    assert await chain(cast) == before and len(await disclosures(cast)) == 3

    cast.clock.advance(0.001)  # now every event and disclosure of t0 is older than the period
    pruned = await retention.prune_logs()
    events, last_id, head_hash = head
    assert pruned.anchor == Anchor(last_id, head_hash, events)
    kept = await chain(cast)
    assert kept[0].id == last_id + 1 and kept[0].prev_hash == head_hash
    assert old[-1].id == last_id  # every event of t0 is gone, and no younger one:
    assert {link.id for link in kept} >= {link.id for link in before if link.id > last_id}
    assert [(o, at) for o, at in await disclosures(cast)] == [(cast.org_a, t0 + 10 * DAY_MS)]
    per_org = {
        org: sum(1 for link in old if link.org_id == org) for org in (cast.org_a, cast.org_b)
    }
    assert pruned.per_org == {
        cast.org_a: (per_org[cast.org_a], 1),
        cast.org_b: (per_org[cast.org_b], 1),
    }
    audited = [link for link in kept if link.action == "audit.pruned"]
    assert sorted((link.org_id, link.subject, link.actor) for link in audited) == sorted(
        (org, f"{per_org[org]} events 1 disclosures up to {last_id}", None)
        for org in (cast.org_a, cast.org_b)
    )
    assert verify_chain(kept, pruned.anchor).broken_at is None
    code, out = verify(database_url)
    assert code == 0, out
    assert f"starts after pruned event {last_id}" in out and f"{events + len(kept)} events" in out

    # Once: a second round finds nothing more due; the chain goes on from where it was.
    again = await retention.prune_logs()
    assert again.per_org == {} and await chain(cast) == kept
    ws.append(await disclose(cast, "bob"))
    assert await cast.app[AUDIT].checkpoint() is not None
    assert (await trail.audit_head() or (0,))[0] == events + len(await chain(cast))
    code, out = verify(database_url)
    assert code == 0, out


async def pruned_deployment(cast: Cast) -> Anchor:
    """A deployment whose first events were pruned after the period."""
    _open = await disclose(cast, "alice")
    await cast.app[AUDIT].checkpoint()
    cast.clock.advance((PERIOD_DAYS + 1) * 86400)
    await disclose(cast, "bob")
    await cast.app[AUDIT].checkpoint()
    pruned = await cast.app[RETENTION].prune_logs()
    assert pruned.anchor is not None
    return pruned.anchor


async def test_a_kept_event_changed_or_removed_after_pruning_fails_verify(
    cast: Cast, database_url: str
) -> None:
    anchor = await pruned_deployment(cast)
    assert verify(database_url)[0] == 0
    first, second = (await chain(cast))[:2]
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(
            update(AuditEvent).where(AuditEvent.id == second.id).values(subject="rewritten")
        )
    code, out = verify(database_url)
    assert code == 1 and f"BROKEN at event {second.id}" in out and "changed" in out
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(
            update(AuditEvent).where(AuditEvent.id == second.id).values(subject=second.subject)
        )
        await conn.execute(delete(AuditEvent).where(AuditEvent.id == first.id))
    code, out = verify(database_url)
    assert code == 1 and f"BROKEN at event {second.id}" in out and "removed" in out
    assert first.prev_hash == anchor.head_hash


async def test_an_anchor_that_is_no_logged_checkpoint_fails_verify(
    cast: Cast, database_url: str
) -> None:
    """Whoever can write the database could prune more than was due, or rewrite the pruned
    start, and write an anchor for it: it is no checkpoint in the (signed, witnessed) log."""
    anchor = await pruned_deployment(cast)
    kept = await chain(cast)
    # Cut the first kept event too and anchor the chain after it, as if it had been pruned.
    cut = kept[0]
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(delete(AuditEvent).where(AuditEvent.id == cut.id))
        await conn.execute(
            update(AuditAnchor)
            .where(AuditAnchor.last_id == anchor.last_id)
            .values(last_id=cut.id, head_hash=cut.hash, events=anchor.events + 1)
        )
    assert (
        verify_chain(await chain(cast), Anchor(cut.id, cut.hash, anchor.events + 1)).broken_at
        is None
    )
    code, out = verify(database_url)
    assert code == 1 and f"starts after pruned event {cut.id}" in out and "no checkpoint" in out
    # The same anchor with another event count is no checkpoint either.
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(
            update(AuditAnchor).values(last_id=anchor.last_id, head_hash=anchor.head_hash,
                                       events=anchor.events + 5)
        )  # fmt: skip
    code, out = verify(database_url)
    assert code == 1 and "no checkpoint" in out


async def test_a_chain_that_does_not_verify_is_not_pruned(cast: Cast) -> None:
    """Pruning a broken stretch would destroy the evidence: the events stay (disclosure
    records, which are no part of the chain, still go after their period)."""
    _open = await disclose(cast, "alice")
    await cast.app[AUDIT].checkpoint()
    links = await chain(cast)
    async with cast.app[ENGINE].begin() as conn:
        await conn.execute(
            update(AuditEvent).where(AuditEvent.id == links[1].id).values(subject="rewritten")
        )
    cast.clock.advance((PERIOD_DAYS + 1) * 86400)
    pruned = await cast.app[RETENTION].prune_logs()
    assert pruned.anchor is None and pruned.per_org == {cast.org_a: (0, 1)}
    assert [link.id for link in await chain(cast)][: len(links)] == [link.id for link in links]
    assert await disclosures(cast) == []


@pytest.mark.parametrize("log_key", [None])
async def test_without_a_transparency_log_no_event_is_pruned(cast: Cast) -> None:
    _open = await disclose(cast, "alice")
    links = await chain(cast)
    cast.clock.advance((PERIOD_DAYS + 1) * 86400)
    pruned = await cast.app[RETENTION].prune_logs()
    assert pruned.anchor is None and pruned.per_org == {cast.org_a: (0, 1)}
    assert [link.id for link in await chain(cast)][: len(links)] == [link.id for link in links]
    async with cast.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(AuditAnchor))).scalar() == 0


async def test_when_every_event_is_pruned_the_chain_goes_on_from_the_anchor(
    cast: Cast, database_url: str
) -> None:
    _open = await disclose(cast, "alice")
    await cast.app[AUDIT].checkpoint()
    last = (await chain(cast))[-1]
    cast.clock.advance((PERIOD_DAYS + 1) * 86400)
    pruned = await cast.app[RETENTION].prune_logs()
    assert pruned.anchor is not None and pruned.anchor.last_id == last.id
    kept = await chain(cast)
    assert [link.action for link in kept] == ["audit.pruned"]
    assert (kept[0].id, kept[0].prev_hash) == (last.id + 1, last.hash)
    code, out = verify(database_url)  # the newest checkpoint is the anchor itself
    assert code == 0 and f"{pruned.anchor.events + 1} events" in out, out
