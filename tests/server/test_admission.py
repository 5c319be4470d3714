"""Consent-gated admission through the server (issue: consent; DESIGN §3).

Three professionals of three organisations share a thread under the client's consent. When a new
version no longer covers one organisation, or the consent expires, the affected connections are
told why and leave the thread at once, receive nothing sent afterwards, cannot rejoin by
reconnecting, and the epoch is fenced until a commit without them; the others continue. Every
decision is in the audit trail of the member's organisation. (The rule itself is table-tested in
tests/crypto/test_consent.py, from the vectors the browser twin runs too.)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from fhir.resources.consent import Consent
from sqlalchemy import select

from crypto.commit import Commit, CommitCore, Genesis, RosterEntry
from crypto.consent import ConsentRecord, CoveredOrganisation, next_version, sign_consent
from crypto.primitives import SigningKey
from crypto.trust import device_id_of
from server.appkeys import AUTH, ENGINE
from server.db.tables import AuditEvent, Device, Organisation, Thread
from server.repositories.accounts import AccountRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from tests.server.conftest import CLIENT_REF, PASSWORD, Cast, b64u
from tests.server.test_consents import device, first_version, post
from tests.server.test_ghost_device import KELA_KEY, Api, admit
from tests.server.test_ws import recv

PURPOSE = "rehabilitation-planning"
DEV = {"bob": bytes([2]) * 32, "carl": bytes([3]) * 32}


@pytest.fixture
def with_consent() -> bool:
    return False  # these tests record the consent through the API


@dataclass
class Conference:
    cast: Cast
    recorder: SigningKey  # alice's device, with the consent-recorder role
    org_c: uuid.UUID
    consent: ConsentRecord

    def device(self, user: str) -> bytes:
        return device_id_of(self.recorder.public) if user == "alice" else DEV[user]

    def org(self, user: str) -> uuid.UUID:
        return {"alice": self.cast.org_a, "bob": self.cast.org_b, "carl": self.org_c}[user]

    async def revise(self, **changes: Any) -> ConsentRecord:
        """Record the next version of the consent, as alice's device signs it."""
        core = next_version(
            self.consent, recorded_at=self.cast.clock.now(), recorder=self.consent.core.recorder,
            **changes,
        )  # fmt: skip
        self.consent = sign_consent(core, self.recorder)
        await post(self.cast, "alice", self.consent, 201)
        return self.consent

    def commit(self, epoch: int, prev: bytes, roster: list[str]) -> Commit:
        entries = sorted(
            (
                RosterEntry(
                    self.device(u), self.cast.users[u].bytes, self.org(u).bytes, bytes(32), b""
                )
                for u in roster
            ),
            key=lambda e: e.device_id,
        )
        core = self.consent.core
        may_store = frozenset(o.org_id for o in core.organisations if o.may_store)
        return Commit(
            CommitCore(self.cast.thread.bytes, epoch, prev, tuple(entries), (), core.covered,
                       may_store, core.core_hash, self.device("alice"), 0, bytes(32), 0),
            (), (), b"", bytes(32), bytes(64),
        )  # fmt: skip


async def hello(cast: Cast, user: str) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    token = await cast.token(user)
    ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
    await ws.send_json({"type": "hello", "v": 1, "resume": {}})
    ready: dict[str, Any] = await ws.receive_json()
    assert ready["type"] == "ready", ready
    return ws, ready


def message(conf: Conference, user: str, body: bytes, epoch: int) -> dict[str, Any]:
    return {"type": "send", "id": b64u(os.urandom(16)), "thread": str(conf.cast.thread),
            "epoch": epoch, "sender": b64u(conf.device(user)),
            "label": {"orgs": [], "basis": "consent"}, "body": b64u(body)}  # fmt: skip


async def commit_frame(ws: ClientWebSocketResponse, conf: Conference, c: Commit,
                       genesis: Genesis | None = None) -> dict[str, Any]:  # fmt: skip
    frame = {"type": "commit", "id": b64u(os.urandom(16)), "thread": str(conf.cast.thread),
             "body": b64u(c.encode())}  # fmt: skip
    if genesis is not None:
        frame["genesis"] = b64u(genesis.encode())
    await ws.send_json(frame)
    return await recv(ws, "ack")


async def nothing_more(ws: ClientWebSocketResponse, kind: str = "deliver") -> None:
    """No frame of `kind` arrives (what was queued has long been written by then)."""
    try:
        while True:
            frame = await asyncio.wait_for(ws.receive_json(), 0.3)
            assert frame["type"] != kind, frame
    except TimeoutError:
        pass


@pytest.fixture
async def conference(cast: Cast) -> Conference:
    """alice (Kela), bob (county) and carl (employment office, added here) are members; the
    consent covers all three organisations; epoch 0 holds a device of each."""
    engine = cast.app[ENGINE]
    org_c = Organisation(id=uuid.uuid4(), name="TE-toimisto", business_id="2000000-0",
                         status="active", created_at=0)  # fmt: skip
    await AccountRepository(engine).add_organisation(org_c)
    carl = await cast.app[AUTH].create_user(org_c.id, "carl", PASSWORD, frozenset({"professional"}))
    cast.users["carl"] = carl.id
    await ThreadRepository(engine).add_member(cast.thread, carl.id, 0)
    await admit(cast, cast.org_a, "Kela", "0246246-0", KELA_KEY)
    recorder = await device(cast, "alice", ["professional", "consent-recorder"])
    for user, org in (("bob", cast.org_b), ("carl", org_c.id)):
        await DeviceRepository(engine).add(
            Device(
                device_id=DEV[user],
                user_id=cast.users[user],
                org_id=org,
                signing_public=bytes(32),
                kem_public=bytes(32),
                label=user,
                status="approved",
                cert_log_index=None,
                revocation_log_index=None,
                created_at=0,
            )
        )
    orgs = (cast.org_a, cast.org_b, org_c.id)
    consent = first_version(
        cast, recorder, organisations=tuple(CoveredOrganisation(o.bytes, True, "consent")
                                            for o in orgs),
        valid_from=cast.clock.now() - 10, valid_until=cast.clock.now() + 3600,
    )  # fmt: skip
    await post(cast, "alice", consent, 201)
    conf = Conference(cast, recorder, org_c.id, consent)
    me = device_id_of(recorder.public)
    genesis = Genesis(cast.thread.bytes, CLIENT_REF, PURPOSE, "by-consent", me, 0)
    alice, _ = await hello(cast, "alice")
    await commit_frame(alice, conf, conf.commit(0, genesis.hash, ["alice", "bob", "carl"]), genesis)
    await alice.close()
    return conf


async def test_revoking_one_organisation_cuts_its_professional_off_at_once(
    conference: Conference,
) -> None:
    cast = conference.cast
    (alice, _), (bob, _), (carl, ready) = [await hello(cast, u) for u in ("alice", "bob", "carl")]
    assert str(cast.thread) in ready["threads"] and ready["refused"] == {}
    await alice.send_json(message(conference, "alice", b"before", 0))
    await recv(alice, "ack")
    for ws in (bob, carl):
        assert (await recv(ws, "deliver"))["kind"] == "commit"  # seq 1: the genesis commit
        assert (await recv(ws, "deliver"))["seq"] == 2

    # The client withdraws consent for the employment office: a new version without it.
    kept = tuple(o for o in conference.consent.core.organisations
                 if o.org_id != conference.org_c.bytes)  # fmt: skip
    v2 = await conference.revise(organisations=kept)
    removed = await recv(carl, "removed")
    assert removed == {"type": "removed", "thread": str(cast.thread), "reason": "koppi.not_covered",
                       "consent": b64u(v2.core.consent_id)}  # fmt: skip
    for ws in (alice, bob):
        assert (await recv(ws, "consent_changed"))["removed"] == 1

    # carl's device holds epoch 0: nobody sends until a commit without it; carl is refused.
    await alice.send_json(message(conference, "alice", b"too early", 0))
    assert (await recv(alice, "error"))["code"] == "koppi.removal_due"
    await carl.send_json(message(conference, "carl", b"still here?", 0))
    assert (await recv(carl, "error"))["code"] == "koppi.not_covered"
    head = await thread_head(cast)
    await commit_frame(alice, conference, conference.commit(1, head, ["alice", "bob"]))
    await alice.send_json(message(conference, "alice", b"after", 1))
    await recv(alice, "ack")
    assert (await recv(bob, "deliver"))["kind"] == "commit"
    after = await recv(bob, "deliver")
    assert after["body"] == b64u(b"after")
    await nothing_more(carl)

    # Reconnecting does not bring carl back.
    await carl.close()
    carl, ready = await hello(cast, "carl")
    assert str(cast.thread) not in ready["threads"]
    assert ready["refused"] == {str(cast.thread): "koppi.not_covered"}
    await alice.send_json(message(conference, "alice", b"later", 1))
    await recv(alice, "ack")
    await recv(bob, "deliver")
    await nothing_more(carl)

    # Every decision is audited in the member's own organisation's trail.
    trail = DeviceRepository(cast.app[ENGINE])
    carl_events = [e for e in await trail.audit_trail(conference.org_c)
                   if e.action.startswith("admission.")]  # fmt: skip
    assert [e.action for e in carl_events][-2:] == ["admission.consent_change",
                                                    "admission.reconnect"]  # fmt: skip
    assert carl_events[-1].subject.endswith(f"{v2.core.consent_id.hex()}v2 koppi.not_covered")
    assert carl_events[-2].actor == cast.users["alice"]
    kela = [e for e in await trail.audit_trail(cast.org_a) if e.action.startswith("admission.")]
    assert kela[-1].subject.endswith("v2 koppi.admitted")


async def thread_head(cast: Cast) -> bytes:
    async with cast.app[ENGINE].connect() as conn:
        head = await conn.execute(select(Thread.head_hash).where(Thread.id == cast.thread))
        value = head.scalar_one()
    assert value is not None
    return bytes(value)


async def test_expiry_cuts_everyone_off_without_anyone_acting(conference: Conference) -> None:
    cast = conference.cast
    sockets = [(await hello(cast, u))[0] for u in ("alice", "bob", "carl")]
    cast.clock.advance(3600)  # the consent's valid_until: the scheduler notices by itself
    for ws in sockets:
        removed = await recv(ws, "removed", timeout=3)
        assert removed["reason"] == "koppi.consent_expired"
    alice = sockets[0]
    await alice.send_json(message(conference, "alice", b"after expiry", 0))
    assert (await recv(alice, "error"))["code"] == "koppi.consent_expired"
    for ws in sockets[1:]:
        await nothing_more(ws)
    _, ready = await hello(cast, "bob")
    assert ready["refused"] == {str(cast.thread): "koppi.consent_expired"}
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(cast.org_b)
    expired = [e for e in trail if e.subject.endswith("koppi.consent_expired")]
    assert expired[0].action == "admission.consent_change" and expired[0].actor is None
    ended = [e for e in trail if e.action == "consent.expired"]
    consent = conference.consent.core
    assert [e.subject for e in ended] == [f"{cast.thread} {consent.consent_id.hex()}v1"]


async def test_a_new_version_that_covers_again_brings_the_professional_back(
    conference: Conference,
) -> None:
    cast = conference.cast
    carl, _ = await hello(cast, "carl")
    everyone = conference.consent.core.organisations
    kept = tuple(o for o in everyone if o.org_id != conference.org_c.bytes)
    await conference.revise(organisations=kept)
    await recv(carl, "removed")
    await conference.revise(organisations=everyone)
    assert (await recv(carl, "joined"))["thread"] == str(cast.thread)
    assert (await recv(carl, "deliver"))["seq"] == 1  # the backlog, from the start


async def test_joining_needs_the_consent_to_admit_the_invitee(conference: Conference) -> None:
    cast = conference.cast
    alice = await Api.of(cast, "alice")
    path = f"/api/threads/{cast.thread}/members"
    # mallory's organisation (Kela) is covered: she joins, and her open connection follows.
    mallory_ws, ready = await hello(cast, "mallory")
    assert ready["threads"] == {}
    await alice.post(path, {"user": str(cast.users["mallory"])}, 201)
    assert (await recv(mallory_ws, "joined"))["thread"] == str(cast.thread)
    await alice.post(path, {"user": str(cast.users["mallory"])}, 200)  # already a member
    # A professional of an organisation the consent does not cover is refused, and audited.
    engine = cast.app[ENGINE]
    org_d = Organisation(id=uuid.uuid4(), name="Kunta", business_id="0000000-1",
                         status="active", created_at=0)  # fmt: skip
    await AccountRepository(engine).add_organisation(org_d)
    dora = await cast.app[AUTH].create_user(org_d.id, "dora", PASSWORD, frozenset())
    refused = await alice.post(path, {"user": str(dora.id)}, 403)
    assert refused["error"]["code"] == "koppi.not_covered"
    assert dora.id not in await ThreadRepository(engine).members(cast.thread)
    trail = await DeviceRepository(engine).audit_trail(org_d.id)
    assert [(e.action, e.subject.split()[-1]) for e in trail] == [
        ("admission.join", "koppi.not_covered")
    ]
    # Only an admitted member invites; an unknown user is a 404.
    dora_api = await Api.of(cast, "dora")
    r = await dora_api.cast.client.post(path, json={"user": str(dora.id)}, headers=dora_api.headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"
    await alice.post(path, {"user": str(uuid.uuid4())}, 404)
    await alice.post(path, {"user": "not-a-uuid"}, 400)


async def test_a_role_the_consent_names_is_required(conference: Conference) -> None:
    """The county's entry now names `doctor`: bob, a `professional`, is cut off."""
    cast = conference.cast
    bob, _ = await hello(cast, "bob")
    orgs = tuple(
        CoveredOrganisation(o.org_id, o.may_store, o.processing_basis, frozenset({"doctor"}))
        if o.org_id == cast.org_b.bytes
        else o
        for o in conference.consent.core.organisations
    )
    await conference.revise(organisations=orgs)
    assert (await recv(bob, "removed"))["reason"] == "koppi.role_not_covered"


async def test_a_statutory_basis_admits_with_its_provision(conference: Conference) -> None:
    """carl's office is let in on a named provision, without the client's consent."""
    cast = conference.cast
    carl, _ = await hello(cast, "carl")
    orgs = tuple(
        CoveredOrganisation(o.org_id, False, "statute-employment", statute="JTYPL 916/2012 13 §",
                            justification="Työllistymissuunnitelma vaatii tiedot.")
        if o.org_id == conference.org_c.bytes else o
        for o in conference.consent.core.organisations
    )  # fmt: skip
    await conference.revise(organisations=orgs)
    await nothing_more(carl, "removed")
    await carl.send_json(message(conference, "carl", b"hello", 0))
    assert (await recv(carl, "ack"))["thread"] == str(cast.thread)


async def test_starting_a_thread(cast: Cast) -> None:
    alice = await Api.of(cast, "alice")
    ref = os.urandom(32).hex()
    started = await alice.post("/api/threads", {"client_ref": ref, "purpose": PURPOSE}, 201)
    thread = uuid.UUID(started["thread"])
    assert await ThreadRepository(cast.app[ENGINE]).members(thread) != {}
    again = await alice.post("/api/threads", {"client_ref": ref, "purpose": PURPOSE}, 409)
    assert again["error"]["code"] == "koppi.thread_exists"
    for body, code in (
        ({"client_ref": "010101-123A", "purpose": PURPOSE}, "koppi.bad_client_ref"),
        ({"client_ref": ref.upper(), "purpose": PURPOSE}, "koppi.bad_client_ref"),
        ({"client_ref": ref, "purpose": "curiosity"}, "koppi.bad_purpose"),
    ):
        assert (await alice.post("/api/threads", body, 400))["error"]["code"] == code
    # Before the client's consent nobody takes part: alice sees the thread, refused.
    _, ready = await hello(cast, "alice")
    assert ready["refused"][str(thread)] == "koppi.no_consent"


async def test_the_receipt_and_fhir_export_over_http(conference: Conference) -> None:
    """Any member prints the client's receipt: what each organisation received while covered."""
    cast = conference.cast
    alice, _ = await hello(cast, "alice")
    cast.clock.advance(10)
    for body in (b"one", b"two"):
        frame = message(conference, "alice", body, 0)
        if body == b"two":  # the county may store this one in its own records
            frame["label"] = {"orgs": [str(cast.org_b)], "basis": "consent"}
        await alice.send_json(frame)
        await recv(alice, "ack")
    cast.clock.advance(10)
    kept = tuple(o for o in conference.consent.core.organisations
                 if o.org_id != conference.org_c.bytes)  # fmt: skip
    await conference.revise(organisations=kept)
    cast.clock.advance(10)
    await commit_frame(alice, conference,
                       conference.commit(1, await thread_head(cast), ["alice", "bob"]))  # fmt: skip
    await alice.send_json(message(conference, "alice", b"three", 1))
    await recv(alice, "ack")

    bob = await Api.of(cast, "bob")
    exported = await bob.get(f"/api/threads/{cast.thread}/export")  # the county's records take it
    assert [e["body"] for e in exported["envelopes"] if e["kind"] == "message"] == [b64u(b"two")]
    base = f"/api/threads/{cast.thread}/consents/{b64u(conference.consent.core.consent_id)}"
    r = await cast.client.get(f"{base}/receipt?lang=en", headers=bob.headers)
    assert r.status == 200 and r.content_type == "text/html"
    html = await r.text()
    assert "Kela: 3 messages" in html and "Hyvinvointialue: 3 messages" in html
    assert "; stored in its own records: 1</li>" in html.split("Hyvinvointialue: 3 messages")[1]
    assert "; stored in its own records: 0</li>" in html.split("Kela: 3 messages")[1]
    assert "TE-toimisto: 2 messages" in html  # only while its organisation was covered
    assert "replaced by a new version" in html
    r = await cast.client.get(f"{base}/fhir", headers=bob.headers)
    assert r.status == 200 and r.content_type == "application/fhir+json"
    consent = Consent.model_validate(await r.json())
    assert consent.status == "active" and len(consent.grantee) == 2
    # Refusals: a language we do not print, an unknown or malformed consent, a non-member.
    for path, status, code in (
        (f"{base}/receipt?lang=de", 400, "koppi.bad_request"),
        (f"/api/threads/{cast.thread}/consents/{b64u(bytes(16))}/fhir", 404,
         "koppi.unknown_consent"),
        (f"/api/threads/{cast.thread}/consents/xyz/fhir", 400, "koppi.frame_invalid"),
    ):  # fmt: skip
        r = await cast.client.get(path, headers=bob.headers)
        assert r.status == status and (await r.json())["error"]["code"] == code, path
    mallory = await Api.of(cast, "mallory")
    r = await cast.client.get(f"{base}/receipt", headers=mallory.headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"


async def test_an_admin_changing_roles_decides_admission_again_at_once(
    conference: Conference,
) -> None:
    """The consent names `professional` for the county: bob's admin takes the role away, and
    bob is cut off at once; given back, bob is admitted again."""
    cast = conference.cast
    bob, _ = await hello(cast, "bob")
    orgs = tuple(
        CoveredOrganisation(o.org_id, o.may_store, o.processing_basis, frozenset({"professional"}))
        if o.org_id == cast.org_b.bytes
        else o
        for o in conference.consent.core.organisations
    )
    await conference.revise(organisations=orgs)
    await nothing_more(bob, "removed")
    bert = await Api.of(cast, "bert")
    path = f"/api/org/users/{cast.users['bob']}/roles"
    r = await cast.client.put(path, json={"roles": ["keeper"]}, headers=bert.headers)
    assert r.status == 200, await r.text()
    assert (await recv(bob, "removed"))["reason"] == "koppi.role_not_covered"
    r = await cast.client.put(path, json={"roles": ["professional"]}, headers=bert.headers)
    assert r.status == 200
    assert (await recv(bob, "joined"))["thread"] == str(cast.thread)


async def test_a_storage_label_names_only_organisations_the_consent_lets_store(
    conference: Conference,
) -> None:
    cast = conference.cast
    orgs = tuple(
        CoveredOrganisation(o.org_id, o.org_id != conference.org_c.bytes, o.processing_basis)
        for o in conference.consent.core.organisations
    )
    await conference.revise(organisations=orgs)  # the employment office may no longer store
    carl, _ = await hello(cast, "carl")
    te, kela = str(conference.org_c), str(cast.org_a)

    def labelled(orgs: list[str], basis: str = "consent") -> dict[str, Any]:
        frame = message(conference, "carl", b"x", 0)
        frame["label"] = {"orgs": sorted(orgs, key=lambda o: uuid.UUID(o).bytes), "basis": basis}
        return frame

    for frame, code in (
        (labelled([te]), "koppi.label_not_covered"),
        (labelled([kela, te]), "koppi.label_not_covered"),
        (labelled([str(uuid.uuid4())]), "koppi.label_not_covered"),
        (labelled([kela], "whim"), "koppi.bad_label"),
    ):
        await carl.send_json(frame)
        error = await recv(carl, "error")
        assert (error["code"], error["id"]) == (code, frame["id"]), frame["label"]
    allowed = labelled([kela], "legal-obligation")
    await carl.send_json(allowed)
    assert (await recv(carl, "ack"))["id"] == allowed["id"]


async def test_participants_see_every_organisations_events_about_their_thread(
    conference: Conference,
) -> None:
    """A thread's participants see its audit events, whoever's organisation they are in (an
    organisation's admin sees only their own organisation's, `/api/org/audit`)."""
    cast = conference.cast
    kept = tuple(o for o in conference.consent.core.organisations
                 if o.org_id != conference.org_c.bytes)  # fmt: skip
    await conference.revise(organisations=kept)
    bob = await Api.of(cast, "bob")  # the county
    events = (await bob.get(f"/api/threads/{cast.thread}/audit"))["events"]
    seen = {(e["org"], e["action"]) for e in events}
    kela, county, te = str(cast.org_a), str(cast.org_b), str(conference.org_c)
    assert {
        (kela, "consent.given"),
        (kela, "consent.superseded"),
        (kela, "thread.committed"),
        (te, "admission.consent_change"),
        (county, "admission.consent_change"),
    } <= seen
    assert all(e["subject"].startswith(str(cast.thread)) for e in events)
    assert not {a for _, a in seen if a.startswith(("device.", "login", "user."))}
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)

    # Another thread's events stay in it; a non-member sees none.
    elsewhere = uuid.uuid4()
    await DeviceRepository(cast.app[ENGINE]).audit_many(
        [AuditEvent(org_id=cast.org_b, actor=None, action="thread.closed", subject=str(elsewhere),
                    at=cast.clock.now_ms())]
    )  # fmt: skip
    again = (await bob.get(f"/api/threads/{cast.thread}/audit"))["events"]
    assert again == events
    assert len(await DeviceRepository(cast.app[ENGINE]).audit_of_threads([elsewhere])) == 1
    mallory = await Api.of(cast, "mallory")
    r = await cast.client.get(f"/api/threads/{cast.thread}/audit", headers=mallory.headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"
