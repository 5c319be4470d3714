"""The consent registry (issue: consent): a signed consent version is recorded once for a thread,
by a consent recorder's device, checked against the thread's client and purpose and against the
versions before it, logged as a hash, and visible with its whole history to every participant
(who verify it themselves: `client.trust.LogFollower` accepts what the server logged)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from client.trust import LogFollower, unb64u
from crypto.clock import FakeClock, SeededRng
from crypto.commit import Commit, CommitCore, Genesis, RosterEntry
from crypto.consent import (
    ConsentCore,
    ConsentRecord,
    CoveredOrganisation,
    next_version,
    sign_consent,
)
from crypto.identity import DeviceCert, TrustStore, device_id_of
from crypto.primitives import KemKey, SigningKey, sha256
from crypto.treehead import LogConfig, LogView
from server.appkeys import ENGINE, TRANSLOG
from server.repositories.devices import DeviceRepository
from tests.server.conftest import CLIENT_REF, LOG_KEY, Cast, b64u
from tests.server.test_ghost_device import KELA_KEY, ROOT, Api, admit
from tests.server.test_ws import connect, recv

RNG = SeededRng("consent-registry")
PURPOSE = "rehabilitation-planning"


@pytest.fixture
def with_consent() -> bool:
    return False  # these tests record the thread's consent themselves


async def device(cast: Cast, user: str, roles: list[str]) -> SigningKey:
    """A device of `user` (Kela), certified with `roles` through the admin endpoint."""
    signing, kem = SigningKey.generate(RNG), KemKey.generate(RNG)
    owner, anna = await Api.of(cast, user), await Api.of(cast, "anna")
    enrolled = await owner.post(
        "/api/devices",
        {"signing_public": b64u(signing.public), "kem_public": b64u(kem.public), "label": "pc"},
        201,
    )
    cert = DeviceCert.issue(KELA_KEY, org_id=cast.org_a.bytes, user_id=cast.users[user].bytes,
                            signing_public=signing.public, kem_public=kem.public, roles=roles,
                            not_before=0, not_after=10**10)  # fmt: skip
    path = f"/api/org/devices/{enrolled['device_id']}/certificate"
    await anna.post(path, {"certificate": b64u(cert.encode())})
    return signing


async def thread_with_genesis(cast: Cast, creator: SigningKey, evidence: ConsentRecord) -> None:
    me = device_id_of(creator.public)
    genesis = Genesis(cast.thread.bytes, CLIENT_REF, PURPOSE, "by-consent", me, 0)
    entry = RosterEntry(me, cast.users["alice"].bytes, cast.org_a.bytes, bytes(32), b"")
    covered = evidence.core.covered
    may_store = frozenset(o.org_id for o in evidence.core.organisations if o.may_store)
    core = CommitCore(cast.thread.bytes, 0, genesis.hash, (entry,), (), covered, may_store,
                      evidence.core.core_hash, me, 0, bytes(32), 0)  # fmt: skip
    commit = Commit(core, (), (), b"", bytes(32), bytes(64))
    ws = await connect(cast, "alice")
    frame = {"type": "commit", "id": b64u(os.urandom(16)), "thread": str(cast.thread),
             "body": b64u(commit.encode()), "genesis": b64u(genesis.encode())}  # fmt: skip
    await ws.send_json(frame)
    assert (await recv(ws, "ack"))["seq"] == 1
    await ws.close()


def first_version(cast: Cast, recorder: SigningKey, **over: Any) -> ConsentRecord:
    fields: dict[str, Any] = dict(
        consent_id=os.urandom(16),
        version=1,
        prev_version_hash=b"",
        client_ref=CLIENT_REF,
        purpose=PURPOSE,
        organisations=(
            CoveredOrganisation(cast.org_a.bytes, True, "consent"),
            CoveredOrganisation(cast.org_b.bytes, False, "consent"),
        ),
        data_categories=frozenset({"social-welfare"}),
        valid_from=0,
        valid_until=10**10,
        status="active",
        disclosure_basis="consent",
        how_obtained="written",
        info_text_hash=sha256(b"information text v1"),
        details_hash=b"",
        recorder=device_id_of(recorder.public),
        recorded_at=1,
    )
    fields.update(over)
    return sign_consent(ConsentCore(**fields), recorder)


async def post(cast: Cast, user: str, record: ConsentRecord | bytes, status: int) -> Any:
    raw = record if isinstance(record, bytes) else record.encode()
    token = await cast.token(user)
    r = await cast.client.post(
        f"/api/threads/{cast.thread}/consents",
        json={"record": b64u(raw)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status == status, await r.text()
    return await r.json()


@pytest.fixture
async def recorder(cast: Cast) -> SigningKey:
    await admit(cast, cast.org_a, "Kela", "0246246-0", KELA_KEY)
    return await device(cast, "alice", ["professional", "consent-recorder"])


async def test_a_consent_is_recorded_superseded_and_revoked_with_its_history(
    cast: Cast, recorder: SigningKey
) -> None:
    v1 = first_version(cast, recorder)
    done = await post(cast, "alice", v1, 201)
    assert done["version"] == 1 and unb64u(done["record_hash"]) == v1.record_hash
    v2 = sign_consent(
        next_version(v1, recorded_at=2, recorder=v1.core.recorder, valid_until=10**9), recorder
    )
    assert (await post(cast, "alice", v2, 201))["version"] == 2
    v3 = sign_consent(
        next_version(v2, recorded_at=3, recorder=v1.core.recorder, status="revoked",
                     revocation_channel="in-person"), recorder)  # fmt: skip
    assert (await post(cast, "alice", v3, 201))["version"] == 3
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(cast.org_a)
    recorded = [(e.action, e.subject.split()[1]) for e in trail if e.action.startswith("consent.")]
    cid = v1.core.consent_id.hex()
    assert recorded == [
        ("consent.given", f"{cid}v1"), ("consent.superseded", f"{cid}v2"),
        ("consent.revoked", f"{cid}v3"),
    ]  # fmt: skip
    # Final: nothing after a revocation; no rollback to an older version.
    v4 = sign_consent(next_version(v3, recorded_at=4, recorder=v1.core.recorder,
                                   status="active", revocation_channel=""), recorder)  # fmt: skip
    assert (await post(cast, "alice", v4, 409))["error"]["code"] == "koppi.consent_final"
    forked = sign_consent(
        next_version(v1, recorded_at=5, recorder=v1.core.recorder, valid_until=10**8), recorder
    )
    assert (await post(cast, "alice", forked, 409))["error"]["code"] == "koppi.consent_rollback"
    # Every participant sees the whole history, and a client accepts it from the log alone.
    token = await cast.token("bob")
    r = await cast.client.get(
        f"/api/threads/{cast.thread}/consents", headers={"Authorization": f"Bearer {token}"}
    )
    history = (await r.json())["consents"]
    assert [h["version"] for h in history] == [1, 2, 3]
    assert [unb64u(h["record"]) for h in history] == [v1.encode(), v2.encode(), v3.encode()]
    await cast.app[TRANSLOG].sign_head()
    bob = await Api.of(cast, "bob")
    view = LogView(LogConfig(LOG_KEY.public, {}, 0), FakeClock(cast.clock.now()))
    follower = LogFollower(TrustStore(ROOT.public, view))
    await follower.follow(bob.get)
    assert follower.refused == {}
    assert follower.trust.consents.state(v1.core.consent_id, 10) == "revoked"


async def test_only_a_consent_recorder_of_the_thread_records(
    cast: Cast, recorder: SigningKey
) -> None:
    plain = await device(cast, "alice", ["professional"])
    cases: list[tuple[str, ConsentRecord | bytes, int, str]] = [
        ("alice", first_version(cast, plain), 403, "koppi.not_consent_recorder"),
        ("mallory", first_version(cast, recorder), 403, "koppi.not_member"),
        ("bob", first_version(cast, recorder), 403, "koppi.forbidden"),  # not bob's device
        ("alice", first_version(cast, recorder, client_ref=sha256(b"another client")), 400,
         "koppi.consent_mismatch"),
        ("alice", first_version(cast, recorder, purpose="employment-services"), 400,
         "koppi.consent_mismatch"),
        ("alice", first_version(cast, recorder).encode()[:-1], 400, "koppi.bad_consent"),
        ("alice", ConsentRecord(first_version(cast, recorder).core, bytes(64)), 400,
         "koppi.auth_failed"),
        ("alice", first_version(cast, recorder, version=2, prev_version_hash=bytes(32)), 409,
         "koppi.consent_chain"),
    ]  # fmt: skip
    for user, record, status, code in cases:
        assert (await post(cast, user, record, status))["error"]["code"] == code, code
    token = await cast.token("alice")
    r = await cast.client.get(
        f"/api/threads/{cast.thread}/consents", headers={"Authorization": f"Bearer {token}"}
    )
    assert (await r.json())["consents"] == []  # nothing refused was stored


async def test_a_consent_comes_before_the_genesis_that_cites_it(cast: Cast) -> None:
    """Epoch 0's commit cites the consent as evidence, so the consent is recorded first: it is
    checked against the client and purpose the server recorded for the thread."""
    await admit(cast, cast.org_a, "Kela", "0246246-0", KELA_KEY)
    key = await device(cast, "alice", ["professional", "consent-recorder"])
    consent = first_version(cast, key)
    assert (await post(cast, "alice", consent, 201))["version"] == 1
    await thread_with_genesis(cast, key, consent)
    token = await cast.token("mallory")
    r = await cast.client.get(
        f"/api/threads/{uuid.uuid4()}/consents", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status == 403


@pytest.mark.parametrize("log_key", [None])
async def test_without_a_log_no_consent_is_recorded(cast: Cast) -> None:
    token = await cast.token("alice")
    r = await cast.client.post(
        f"/api/threads/{cast.thread}/consents",
        json={"record": b64u(b"x")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status == 503 and (await r.json())["error"]["code"] == "koppi.log_unavailable"


async def test_one_consent_in_force_per_thread(cast: Cast, recorder: SigningKey) -> None:
    """A thread's consent changes by versions; a second consent starts only after the first
    ended, and an older consent takes no new version."""
    first = first_version(cast, recorder)
    await post(cast, "alice", first, 201)
    second = first_version(cast, recorder)
    assert (await post(cast, "alice", second, 409))["error"]["code"] == "koppi.consent_exists"
    revocation = next_version(
        first, recorded_at=2, recorder=first.core.recorder, status="revoked",
        revocation_channel="phone",
    )  # fmt: skip
    revoked = sign_consent(revocation, recorder)
    await post(cast, "alice", revoked, 201)
    await post(cast, "alice", second, 201)  # the first was withdrawn: a new consent may start
    third = first_version(cast, recorder)
    assert (await post(cast, "alice", third, 409))["error"]["code"] == "koppi.consent_exists"
