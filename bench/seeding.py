"""A client's consent written straight to the registry, for benchmarks and tests whose threads
need one to take part (admission is consent-gated). It skips what recording through the API does
(the recorder's logged certificate, the log entry): tests of recording go through the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from crypto.clock import OsRng, SystemClock
from crypto.consent import ConsentCore, ConsentRecord, CoveredOrganisation, sign_consent
from crypto.primitives import SigningKey, sha256
from crypto.trust import device_id_of
from server.db.tables import ConsentVersion, Thread
from server.repositories.accounts import AccountRepository
from server.repositories.consents import ConsentRepository
from server.repositories.threads import ThreadRepository
from server.services.auth import TEST_HASH_COST, AuthService

RECORDER = SigningKey.from_seed(bytes(range(100, 132)))
DAY = 86400


async def seed_consent(
    engine: AsyncEngine,
    thread_id: uuid.UUID,
    client_ref: bytes,
    org_ids: Sequence[uuid.UUID],
    now_s: int,
    *,
    purpose: str = "rehabilitation-planning",
    consent_id: bytes | None = None,
) -> ConsentRecord:
    """Version 1 of a consent covering `org_ids` (every role, may store), valid from a day ago
    for a year."""
    core = ConsentCore(
        consent_id=consent_id or thread_id.bytes,
        version=1,
        prev_version_hash=b"",
        client_ref=client_ref,
        purpose=purpose,
        organisations=tuple(CoveredOrganisation(o.bytes, True, "consent") for o in org_ids),
        data_categories=frozenset({"social-welfare", "income"}),
        valid_from=now_s - DAY,
        valid_until=now_s + 365 * DAY,
        status="active",
        disclosure_basis="consent",
        how_obtained="written",
        info_text_hash=sha256(b"Suostumusteksti v1"),
        details_hash=b"",
        recorder=device_id_of(RECORDER.public),
        recorded_at=now_s - DAY,
    )
    record = sign_consent(core, RECORDER)
    await ConsentRepository(engine).add(
        ConsentVersion(
            record_hash=record.record_hash,
            consent_id=core.consent_id,
            version=1,
            thread_id=thread_id,
            record=record.encode(),
            log_index=0,
            created_at=(now_s - DAY) * 1000,
        )
    )
    return record


async def consented_thread(
    engine: AsyncEngine, label: str, members: Sequence[uuid.UUID], org_ids: Sequence[uuid.UUID]
) -> tuple[uuid.UUID, ConsentRecord]:
    """A case-conference thread of a client named by `label` (hashed into the pseudonymous
    reference), with `members` and a consent covering `org_ids`."""
    ref = sha256(label.encode())
    thread = Thread(
        id=uuid.uuid4(),
        client_ref=ref.hex(),
        purpose="rehabilitation-planning",
        next_seq=1,
        created_at=0,
    )
    await ThreadRepository(engine).add_thread(thread, members)
    consent = await seed_consent(engine, thread.id, ref, org_ids, SystemClock().now())
    return thread.id, consent


def bench_auth(engine: AsyncEngine) -> AuthService:
    """Accounts with a cheap password hash and no login throttling: seeding many users is fast."""
    return AuthService(
        AccountRepository(engine),
        SystemClock(),
        OsRng(),
        session_lifetime_s=3600,
        token_lifetime_s=3600,
        attempts=100,
        window_s=1,
        cost=TEST_HASH_COST,
    )
