"""A running Koppi app on an empty, migrated database, with a small cast:

alice (organisation A) and bob (organisation B) are members of one thread; mallory (A) is not.
The thread has the client's consent (version 1, covering A and B, every role, valid for a year),
written to the database as the registry would hold it (tests of recording consents go through the
API, `test_consents.py`); `Cast.consent` is that record.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bench.seeding import seed_consent
from crypto.clock import FakeClock, SeededRng
from crypto.consent import ConsentRecord
from crypto.primitives import SigningKey, sha256
from server.app import create_app
from server.appkeys import AUTH, ENGINE
from server.config import Config
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.tables import Organisation, Thread
from server.repositories.accounts import AccountRepository
from server.repositories.threads import ThreadRepository
from server.services.auth import TEST_HASH_COST

PASSWORD = "correct horse battery"
CLIENT_REF = sha256(b"asiakas-1")  # the seeded thread's pseudonymous client reference


@dataclass
class Cast:
    app: web.Application
    client: TestClient[Any, Any]
    clock: FakeClock
    thread: uuid.UUID
    org_a: uuid.UUID
    org_b: uuid.UUID
    users: dict[str, uuid.UUID]
    seeded: ConsentRecord | None  # the thread's consent, unless the test records its own

    @property
    def consent(self) -> ConsentRecord:
        assert self.seeded is not None, "this test's thread has no seeded consent"
        return self.seeded

    async def login(self, username: str) -> dict[str, Any]:
        """Log in on this client's cookie jar; returns the login body (with csrf_token)."""
        r = await self.client.post("/api/login", json={"username": username, "password": PASSWORD})
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body

    async def token(self, username: str) -> str:
        body = await self.login(username)
        r = await self.client.post(
            "/api/tokens", json={"label": "t"}, headers={"X-CSRF-Token": body["csrf_token"]}
        )
        assert r.status == 201
        self.client.session.cookie_jar.clear()
        token: str = (await r.json())["token"]
        return token


def without_logins(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An audit trail's events but its logins (`login`, `login.refused`): every test user logs in,
    and most tests look at what else happened."""
    return [e for e in events if not e["action"].startswith("login")]


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def seed(
    app: web.Application, clock: FakeClock, with_consent: bool = True
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, dict[str, uuid.UUID], ConsentRecord | None]:
    engine = app[ENGINE]
    accounts, auth = AccountRepository(engine), app[AUTH]
    now = clock.now_ms()
    orgs = []
    for name, business_id in (("Kela", "0246246-0"), ("Hyvinvointialue", "3221308-6")):
        org = Organisation(
            id=uuid.uuid4(), name=name, business_id=business_id, status="active", created_at=now
        )
        await accounts.add_organisation(org)
        orgs.append(org.id)
    users = {}
    cast_of = (
        ("alice", orgs[0], {"professional"}),
        ("bob", orgs[1], {"professional"}),
        ("mallory", orgs[0], {"professional"}),
        ("anna", orgs[0], {"org-admin"}),  # Kela's admin
        ("bert", orgs[1], {"org-admin"}),  # the county's admin
    )
    for username, org_id, roles in cast_of:
        users[username] = (await auth.create_user(org_id, username, PASSWORD, frozenset(roles))).id
    thread = Thread(
        id=uuid.uuid4(),
        client_ref=CLIENT_REF.hex(),
        purpose="rehabilitation-planning",
        next_seq=1,
        created_at=now,
    )
    await ThreadRepository(engine).add_thread(thread, [users["alice"], users["bob"]])
    consent = None
    if with_consent:
        consent = await seed_consent(
            engine, thread.id, CLIENT_REF, orgs, clock.now(), consent_id=bytes(range(16))
        )
    return thread.id, orgs[0], orgs[1], users, consent


async def migrated(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {}


LOG_KEY = SigningKey.from_seed(bytes(range(32)))  # the test deployment's transparency-log key


@pytest.fixture
def log_key() -> SigningKey | None:
    return LOG_KEY


@pytest.fixture
def with_consent() -> bool:
    """Whether the seeded thread has the client's consent (tests of recording one say no)."""
    return True


@pytest.fixture
async def cast(
    database_url: str,
    aiohttp_client: Any,
    config_overrides: dict[str, Any],
    log_key: SigningKey | None,
    with_consent: bool,
) -> AsyncIterator[Cast]:
    await migrated(database_url)
    clock = FakeClock()
    cfg = Config(database_url=database_url, **config_overrides)
    app = create_app(
        cfg, clock=clock, rng=SeededRng(os.urandom(8)), hash_cost=TEST_HASH_COST, log_key=log_key
    )
    client = await aiohttp_client(app)
    thread, org_a, org_b, users, consent = await seed(app, clock, with_consent)
    yield Cast(app, client, clock, thread, org_a, org_b, users, consent)
