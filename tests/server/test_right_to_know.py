"""The client's right-to-know report (Act 703/2023, section 11; `server/right_to_know.py`): from
the logs, which organisations and professionals processed the client's case data, to whom it
was disclosed, when and on what basis; JSON for systems, printed in fi/sv/en for the client.

The main test scripts a case history through the real API and websocket (the `conference` of
test_admission.py: a consent covering three organisations and an epoch-0 commit), then holds
the report to exactly what happened. `message.stored` and `message.delivered` events, which the
server may write, are inserted directly to show the report counts them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crypto.consent import ConsentRecord, CoveredOrganisation, next_version, sign_consent
from server.appkeys import ENGINE, RETENTION
from server.db.tables import AuditEvent, ConsentVersion, Disclosure, Thread
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.right_to_know import Directory, ThreadLogs, build_report, format_time, render_report
from tests.server import test_admission
from tests.server.conftest import CLIENT_REF, Cast, b64u
from tests.server.test_admission import Conference, commit_frame, hello, message, thread_head
from tests.server.test_consent_documents import RECORDER, v1
from tests.server.test_ghost_device import Api
from tests.server.test_migrations_and_cli import _koppi
from tests.server.test_ws import recv

ONE, TWO, THREE = b"Asiakkaan asia 1", b"Asiakkaan asia 2", b"Asiakkaan asia 3"  # opaque to it


conference = test_admission.conference  # three organisations, a consent, epoch 0


@pytest.fixture
def with_consent() -> bool:
    return False  # the conference records its consent through the API


def who(cast: Cast, user: str, org: uuid.UUID, org_name: str) -> dict[str, Any]:
    return {"user": str(cast.users[user]), "username": user, "org": str(org), "org_name": org_name}


def basis(consent: ConsentRecord) -> dict[str, Any]:
    core = consent.core
    return {"consent": core.consent_id.hex(), "version": core.version, "basis": "consent",
            "statute": None}  # fmt: skip


def version(consent: ConsentRecord, names: dict[bytes, str]) -> dict[str, Any]:
    """How the report describes one signed version (its own fields, read off the record)."""
    core = consent.core
    return {
        "consent": core.consent_id.hex(),
        "version": core.version,
        "valid_from": core.valid_from * 1000,
        "valid_until": core.valid_until * 1000,
        "data_categories": sorted(core.data_categories),
        "organisations": [
            {"org": str(uuid.UUID(bytes=o.org_id)), "name": names[o.org_id],
             "may_store": o.may_store, "basis": "consent", "statute": None}
            for o in core.organisations
        ],
    }  # fmt: skip


def nothing(n: int = 0) -> dict[str, Any]:
    return {"messages": n, "first": None, "last": None}


async def report(cast: Cast, api: Api, thread: uuid.UUID, query: str = "format=json") -> Any:
    r = await cast.client.get(f"/api/threads/{thread}/right-to-know?{query}", headers=api.headers)
    assert r.status == 200, await r.text()
    return await r.json() if "json" in query else await r.text()


async def test_a_scripted_case_history_is_reported_exactly(conference: Conference) -> None:
    cast, conf = conference.cast, conference
    t0 = cast.clock.now_ms()  # the thread started, v1 was given and epoch 0 committed
    v1 = conf.consent
    names = {cast.org_a.bytes: "Kela", cast.org_b.bytes: "Hyvinvointialue",
             conf.org_c.bytes: "TE-toimisto"}  # fmt: skip

    # The conference talks: alice writes two messages, the county may store the second.
    cast.clock.advance(60)
    t1 = cast.clock.now_ms()
    (alice, _), (bob, _), (carl, _) = [await hello(cast, u) for u in ("alice", "bob", "carl")]
    seqs = {}
    for body, orgs in ((ONE, []), (TWO, [str(cast.org_b)])):
        frame = message(conf, "alice", body, 0)
        frame["label"] = {"orgs": orgs, "basis": "consent"}
        await alice.send_json(frame)
        seqs[body] = (await recv(alice, "ack"))["seq"]

    # The client withdraws the employment office from the consent: carl is cut off.
    cast.clock.advance(60)
    t2 = cast.clock.now_ms()
    kept = tuple(o for o in v1.core.organisations if o.org_id != conf.org_c.bytes)
    v2 = await conf.revise(organisations=kept)
    await recv(carl, "removed")

    # A new epoch without carl; one more message, which the county may store by law.
    cast.clock.advance(60)
    t3 = cast.clock.now_ms()
    await commit_frame(alice, conf, conf.commit(1, await thread_head(cast), ["alice", "bob"]))
    frame = message(conf, "alice", THREE, 1)
    frame["label"] = {"orgs": [str(cast.org_b)], "basis": "legal-obligation"}
    await alice.send_json(frame)
    seqs[THREE] = (await recv(alice, "ack"))["seq"]

    # The county's record system takes what it may store: a disclosure.
    cast.clock.advance(60)
    t4 = cast.clock.now_ms()
    bob_api = await Api.of(cast, "bob")
    exported = await bob_api.get(f"/api/threads/{cast.thread}/export")
    assert [e["seq"] for e in exported["envelopes"] if e["kind"] == "message"] == [
        seqs[TWO], seqs[THREE]
    ]  # fmt: skip

    # The case conference ends.
    cast.clock.advance(60)
    t5 = cast.clock.now_ms()
    alice_api = await Api.of(cast, "alice")
    await alice_api.post(f"/api/threads/{cast.thread}/close", {})
    for ws in (alice, bob, carl):
        await ws.close()

    # Each connection's delivered ranges reach the trail when the server has seen it close.
    repo = DeviceRepository(cast.app[ENGINE])
    users = {cast.users[u] for u in ("alice", "bob", "carl")}
    for _ in range(100):
        trail = await repo.audit_of_threads([cast.thread])
        if {e.actor for e in trail if e.action == "message.delivered"} >= users:
            break
        await asyncio.sleep(0.05)
    got = await report(cast, bob_api, cast.thread)
    trail = await DeviceRepository(cast.app[ENGINE]).audit_of_threads([cast.thread])
    received = pop_received(got)
    if not any(e.action == "message.delivered" for e in trail):  # not written by this server
        assert received == {"alice": nothing(), "bob": nothing(), "carl": nothing()}
    else:  # bob received all three, carl the two before his cut-off
        assert received["bob"]["messages"] == 3 and received["carl"]["messages"] == 2

    consent_v = {1: f"{v1.core.consent_id.hex()}v1", 2: f"{v2.core.consent_id.hex()}v2"}
    alice_is = who(cast, "alice", cast.org_a, "Kela")
    assert got == {
        "report": "right-to-know",
        "version": 1,
        "scope": "thread",
        "client_ref": CLIENT_REF.hex(),
        "generated_at": t5,
        "threads": [
            {
                "thread": str(cast.thread),
                "purpose": "rehabilitation-planning",
                "created_at": t0,
                "closed": {"at": t5, "by": alice_is},
                "purged": [],
                "consents": [
                    {"event": "given", "at": t0, "by": alice_is} | version(v1, names),
                    {"event": "changed", "at": t2, "by": alice_is} | version(v2, names),
                ],
                "organisations": [  # by name
                    {"org": str(cast.org_b), "name": "Hyvinvointialue", "professionals": [
                        {"user": str(cast.users["bob"]), "username": "bob",
                         "access": [{"from": t0, "until": None, "ended": None,
                                     "bases": [basis(v1), basis(v2)]}],
                         "wrote": nothing(), "exported": {"messages": 2, "times": 1},
                         "actions": []},
                    ]},
                    {"org": str(cast.org_a), "name": "Kela", "professionals": [
                        {"user": str(cast.users["alice"]), "username": "alice",
                         "access": [{"from": t0, "until": None, "ended": None,
                                     "bases": [basis(v1), basis(v2)]}],
                         "wrote": {"messages": 3, "first": t1, "last": t3},
                         "exported": {"messages": 0, "times": 0},
                         "actions": [
                             {"at": t0, "action": "consent.given", "detail": consent_v[1]},
                             {"at": t0, "action": "thread.committed", "detail": "epoch 0"},
                             {"at": t2, "action": "consent.superseded", "detail": consent_v[2]},
                             {"at": t3, "action": "thread.committed", "detail": "epoch 1"},
                             {"at": t5, "action": "thread.closed", "detail": ""},
                         ]},
                    ]},
                    {"org": str(conf.org_c), "name": "TE-toimisto", "professionals": [
                        {"user": str(cast.users["carl"]), "username": "carl",
                         "access": [{"from": t0, "until": t2, "ended": "koppi.not_covered",
                                     "bases": [basis(v1)]}],
                         "wrote": nothing(), "exported": {"messages": 0, "times": 0},
                         "actions": []},
                    ]},
                ],
                "disclosures": [
                    {"at": t4, "org": str(cast.org_b), "org_name": "Hyvinvointialue",
                     "by": who(cast, "bob", cast.org_b, "Hyvinvointialue"), "messages": 2,
                     "first_seq": seqs[TWO], "last_seq": seqs[THREE], "basis": basis(v2),
                     "labels": ["consent", "legal-obligation"]},
                ],
                "other": [],
            }
        ],
    }  # fmt: skip

    # Printed for the client in each language: the key sentences, in Finland's time.
    when = {t: format_time(t) for t in (t0, t1, t2, t3, t4, t5)}
    expected = {
        "fi": [
            "Selvitys asiakastietojesi käsittelystä",
            "laki sosiaali- ja terveydenhuollon asiakastietojen käsittelystä 703/2023, 11 §",
            "Selvitys ei sisällä viestien sisältöä",
            f"{when[t2]}: suostumus muutettu (versio 2), kirjasi alice.",
            f"Pääsy tietoihin {when[t0]} \u2013 {when[t2]}, päättyi, koska suostumus ei enää"
            " kattanut organisaatiota. Peruste: suostumuksesi (versio 1).",
            f"Kirjoitettuja viestejä: 3 ({when[t1]} \u2013 {when[t3]}).",
            f"{when[t4]}: Hyvinvointialue tallensi viestejä omiin asiakirjoihinsa (2 kpl,"
            " tallentaja bob). Peruste: suostumuksesi (versio 2). Viestien tallennusperuste:"
            " suostumus, lakisääteinen velvoite.",
            f"{when[t2]}: kirjasi muutoksen suostumukseesi (versio 2)",
            f"{when[t5]}: sulki verkostopalaverin keskustelun",
        ],
        "sv": [
            "Redogörelse för behandlingen av dina klientuppgifter",
            "Redogörelsen innehåller inte meddelandenas innehåll",
            f"{when[t0]}: samtycket givet (version 1), antecknat av alice.",
            "upphörde eftersom samtycket inte längre omfattade organisationen",
            f"Skrivna meddelanden: 3 ({when[t1]} \u2013 {when[t3]}).",
            f"{when[t4]}: Hyvinvointialue sparade meddelanden i sina egna handlingar (2 st.,"
            " sparat av bob). Grund: ditt samtycke (version 2).",
        ],
        "en": [
            "Report on the processing of your client data",
            "This report does not contain what the messages said",
            "Access to the information"
            f" {when[t0]} \u2013 still. Basis: your consent (version 1); your consent (version 2).",
            f"{when[t4]}: Hyvinvointialue stored messages in its own records (2, by bob). Basis:"
            " your consent (version 2). The messages&#39; storage basis: consent, legal"
            " obligation.",
            "Messages stored in the organisation&#39;s own records: 2 (exports: 1).",
            f"{when[t3]}: renewed the conversation&#39;s encryption keys (key period 1)",
        ],
    }
    json_text = json.dumps(got)
    secrets = [b64u(b) for b in (ONE, TWO, THREE)] + [b.decode() for b in (ONE, TWO, THREE)]
    secrets += [
        conf.recorder.public.hex(),
        b64u(conf.recorder.public),
        conf.recorder.seed_bytes().hex(),
    ]
    secrets += [b64u(conf.device(u)) for u in ("alice", "bob", "carl")]
    secrets += [conf.device(u).hex()[:32] for u in ("alice", "bob", "carl")]
    for lang, sentences in expected.items():
        html = await report(cast, bob_api, cast.thread, f"lang={lang}")
        assert f'<html lang="{lang}">' in html
        for sentence in sentences:
            assert sentence in html, (lang, sentence)
        for text in (html, json_text):  # the server has no content or keys to put in it
            for secret in secrets:
                assert secret not in text, (lang, secret)
    assert "Selvitys asiakastietojesi" in await report(cast, bob_api, cast.thread, "")  # fi

    # The retention job purges the closed thread's content: the report says when.
    cast.clock.advance(91 * 86400)
    purged = await cast.app[RETENTION].purge()
    # The consent ended meanwhile: the admission scheduler records that on its own, within
    # half a second; wait for it, so the report is read after it either way.
    repo = DeviceRepository(cast.app[ENGINE])
    for _ in range(100):
        if any(e.action == "consent.expired" for e in await repo.audit_of_threads([cast.thread])):
            break
        await asyncio.sleep(0.05)
    after = await report(cast, await Api.of(cast, "bob"), cast.thread)  # (a fresh token)
    assert after["threads"][0]["purged"] == [
        {"at": cast.clock.now_ms(), "envelopes": purged[cast.thread]}
    ]
    before, now = got["threads"][0], after["threads"][0]
    assert now["closed"] == before["closed"]  # the record of who saw what stays
    assert now["consents"][:-1] == before["consents"]
    assert now["consents"][-1]["event"] == "expired" and now["consents"][-1]["by"] is None
    # Who wrote what, and the disclosed messages' storage bases, outlive the stored headers
    # only where the trail has them (`message.stored`).
    logged = any(e.action == "message.stored" for e in trail)
    assert [{**d, "labels": []} for d in now["disclosures"]] == [
        {**d, "labels": []} for d in before["disclosures"]
    ]
    assert now["disclosures"][0]["labels"] == (["consent", "legal-obligation"] if logged else [])
    wrote = {p["username"]: p["wrote"] for o in now["organisations"] for p in o["professionals"]}
    assert wrote["alice"] == ({"messages": 3, "first": t1, "last": t3} if logged else nothing())


def pop_received(report: dict[str, Any]) -> dict[str, Any]:
    """Take each professional's `received` out of the report (it depends on whether the server
    writes `message.delivered`), by username."""
    found = {}
    for org in report["threads"][0]["organisations"]:
        for p in org["professionals"]:
            found[p["username"]] = p.pop("received")
    return found


async def test_the_report_is_for_members_of_the_thread_only(conference: Conference) -> None:
    cast = conference.cast
    base = f"/api/threads/{cast.thread}/right-to-know"
    bob = await Api.of(cast, "bob")
    for query in ("", "?lang=sv", "?lang=en", "?format=json", "?format=html&lang=en"):
        r = await cast.client.get(base + query, headers=bob.headers)
        assert r.status == 200, query
    mallory = await Api.of(cast, "mallory")  # Kela, like alice, but not in the thread
    for path in (base, base + "?format=json", f"/api/threads/{uuid.uuid4()}/right-to-know",
                 "/api/threads/not-a-uuid/right-to-know"):  # fmt: skip
        r = await cast.client.get(path, headers=mallory.headers)
        assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member", path
    for query in ("?lang=de", "?lang=", "?format=pdf", "?format=json&lang=xx"):
        r = await cast.client.get(base + query, headers=bob.headers)
        assert r.status == 400 and (await r.json())["error"]["code"] == "koppi.bad_request", query
    r = await cast.client.get(base)
    assert r.status == 401 and (await r.json())["error"]["code"] == "koppi.unauthenticated"


async def test_a_member_learns_of_this_thread_only_the_operator_of_every_thread(
    conference: Conference, database_url: str
) -> None:
    """The client has a second case conference (another purpose): the API report of the first
    does not mention it; the operator's CLI report covers both."""
    cast = conference.cast
    mallory = await Api.of(cast, "mallory")
    cast.clock.advance(1)  # the report lists the client's threads oldest first
    other = await mallory.post(
        "/api/threads", {"client_ref": CLIENT_REF.hex(), "purpose": "employment-services"}, 201
    )
    bob = await Api.of(cast, "bob")
    mine = await report(cast, bob, cast.thread)
    assert [t["thread"] for t in mine["threads"]] == [str(cast.thread)]
    assert other["thread"] not in json.dumps(mine)
    assert other["thread"] not in await report(cast, bob, cast.thread, "lang=en")

    done = _koppi("--database-url", database_url, "report", "--client-ref", CLIENT_REF.hex())
    assert done.returncode == 0, done.stderr
    everything = json.loads(done.stdout)
    assert (everything["scope"], everything["client_ref"]) == ("client", CLIENT_REF.hex())
    assert [t["thread"] for t in everything["threads"]] == [str(cast.thread), other["thread"]]
    assert everything["threads"][0] == mine["threads"][0]  # the same facts either way
    assert everything["threads"][1]["organisations"] == []  # nobody took part yet

    printed = _koppi("--database-url", database_url, "report", "--client-ref",
                     CLIENT_REF.hex(), "--format", "html", "--lang", "sv")  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("<!doctype html>") and '<html lang="sv">' in printed.stdout
    assert printed.stdout.count("<h2>Nätverksmöte: ") == 2
    assert (
        "planering av rehabilitering" in printed.stdout
        and "sysselsättningstjänster" in printed.stdout
    )

    nobody = _koppi("--database-url", database_url, "report", "--client-ref", "ab" * 32)
    assert nobody.returncode == 0 and json.loads(nobody.stdout)["threads"] == []
    assert "no thread" in nobody.stderr
    html = _koppi(
        "--database-url",
        database_url,
        "report",
        "--client-ref",
        "ab" * 32,
        "--format",
        "html",
        "--lang",
        "en",
    )
    assert "The service holds no case-conference information about you." in html.stdout
    for bad in (CLIENT_REF.hex().upper(), "010101-123A", "ab" * 31):
        refused = _koppi("--database-url", database_url, "report", "--client-ref", bad)
        assert refused.returncode == 2 and "64 lowercase hex" in refused.stderr, bad
        assert refused.stdout == ""
    wrong_lang = _koppi("--database-url", database_url, "report", "--client-ref",
                        CLIENT_REF.hex(), "--format", "html", "--lang", "de")  # fmt: skip
    assert wrong_lang.returncode == 2 and "invalid choice" in wrong_lang.stderr


@pytest.mark.parametrize("with_consent", [True])  # the seeded consent: v1 covering A and B
async def test_message_events_are_counted_where_the_server_writes_them(cast: Cast) -> None:
    """`message.stored` (who wrote which message, when, its label) and `message.delivered`
    (which sequence numbers reached which device) are counted from the trail: messages written
    per sender; received per professional, only sequence numbers that are messages, each once;
    the label bases of disclosed messages. Odd or unknown events are kept, not dropped."""
    trail = DeviceRepository(cast.app[ENGINE])
    t, a, b = cast.thread, cast.org_a, cast.org_b
    alice, bob, anna = cast.users["alice"], cast.users["bob"], cast.users["anna"]
    at = cast.clock.now_ms()
    ids = [b64u(bytes([i]) * 16) for i in range(5)]
    consent = f"{cast.consent.core.consent_id.hex()}v1"

    def ev(
        org: uuid.UUID, actor: uuid.UUID | None, action: str, subject: str, dt: int
    ) -> AuditEvent:
        return AuditEvent(org_id=org, actor=actor, action=action, subject=subject, at=at + dt)

    await trail.audit_many([
        ev(a, alice, "admission.reconnect", f"{t} {alice} {consent} koppi.admitted", 0),
        ev(b, bob, "admission.reconnect", f"{t} {bob} {consent} koppi.admitted", 0),
        ev(a, alice, "message.stored", f"{t} seq 1 {ids[1]} consent -", 1000),
        ev(a, alice, "message.stored", f"{t} seq 2 {ids[2]} legal-obligation {b}", 2000),
        # seq 3 is a commit: no message.stored
        ev(b, bob, "message.stored", f"{t} seq 4 {ids[4]} public-task {a},{b}", 4000),
        ev(b, bob, "message.delivered", f"{t} {'ab' * 16} seq 1-3", 5000),
        ev(b, bob, "message.delivered", f"{t} {'cd' * 16} seq 2-2", 6000),  # another device
        ev(a, alice, "message.delivered", f"{t} {'ef' * 16} seq 4-4", 7000),
        ev(a, alice, "message.delivered", f"{t} {'ef' * 16} seq 9-5", 8000),  # malformed
        ev(a, alice, "message.stored", f"{t} seq x {ids[0]} consent -", 8000),  # malformed
        ev(a, anna, "user.disabled", str(alice), 9000),  # alice's admin closes her account
        ev(a, None, "thread.frobnicated", f"{t} 42", 9500),  # an action not known here
    ])  # fmt: skip
    await ThreadRepository(cast.app[ENGINE]).add_disclosure(
        Disclosure(thread_id=t, org_id=b, user_id=bob, msg_ids=[ids[2], ids[4]], first_seq=2,
                   last_seq=4, at=at + 10_000)
    )  # fmt: skip
    got = await report(cast, await Api.of(cast, "bob"), t)
    (thread,) = got["threads"]
    people = {p["username"]: p for o in thread["organisations"] for p in o["professionals"]}
    assert set(people) == {"alice", "bob"}  # anna only closed an account
    assert people["alice"]["wrote"] == {"messages": 2, "first": at + 1000, "last": at + 2000}
    assert people["bob"]["wrote"] == {"messages": 1, "first": at + 4000, "last": at + 4000}
    assert people["bob"]["received"] == {"messages": 2, "first": at + 5000, "last": at + 6000}
    assert people["alice"]["received"] == {"messages": 1, "first": at + 7000, "last": at + 7000}
    assert people["alice"]["access"] == [
        {"from": at, "until": at + 9000, "ended": "koppi.user_disabled",
         "bases": [basis(cast.consent)]}
    ]  # fmt: skip
    assert people["bob"]["access"][0]["until"] is None
    assert people["alice"]["actions"] == [
        {"at": at + 8000, "action": "message.delivered", "detail": f"{'ef' * 16} seq 9-5"},
        {"at": at + 8000, "action": "message.stored", "detail": f"seq x {ids[0]} consent -"},
    ]
    assert thread["other"] == [{"at": at + 9500, "action": "thread.frobnicated", "detail": "42"}]
    (disclosure,) = thread["disclosures"]
    assert disclosure["labels"] == ["legal-obligation", "public-task"]
    assert disclosure["basis"] == basis(cast.consent)
    html = render_report(got, "en")
    assert "Messages received: 2" in html and "Messages written: 1" in html
    assert "ended because the professional&#39;s account was closed" in html
    assert "thread.frobnicated (42)" in html


def test_times_are_printed_in_finlands_time() -> None:
    assert format_time(1_790_000_000_000) == "2026-09-21 17:13"  # EEST, UTC+3
    assert format_time(1_800_000_000_000) == "2027-01-15 10:00"  # EET, UTC+2
    helsinki = datetime.fromtimestamp(1_800_000_000, ZoneInfo("Europe/Helsinki"))
    assert helsinki.utcoffset() is not None and helsinki.utcoffset().seconds == 7200  # type: ignore[union-attr]


def test_no_report_in_a_language_it_is_not_written_in() -> None:
    empty = {"client_ref": "ab" * 32, "generated_at": 0, "threads": []}
    with pytest.raises(ValueError, match="fi, sv, en"):
        render_report(empty, "de")
    assert "Palvelussa ei ole sinua koskevia" in render_report(empty, "fi")


def test_statutory_bases_revocation_expiry_and_repeated_events_from_the_logs_alone() -> None:
    """The builder on hand-made logs: an organisation admitted on a statutory provision says so
    (and the report names the provision), a revoked version and an ending are consent events,
    events written once per member organisation (an ending, a purge) are reported once, a
    professional only ever refused is not listed, and names are printed as text."""
    kela, county = uuid.UUID(bytes=b"\x0a" * 16), uuid.UUID(bytes=b"\x0b" * 16)
    alice, bob, eve = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = v1(organisations=(
        CoveredOrganisation(kela.bytes, True, "statute-kela"),
        CoveredOrganisation(county.bytes, False, "statute-social-welfare",
                            statute="SHL 1301/2014 41 §", justification="lastensuojelu"),
    ))  # fmt: skip
    revoked = sign_consent(
        next_version(first, recorded_at=first.core.recorded_at + 60,
                     recorder=first.core.recorder, status="revoked",
                     revocation_channel="phone"),
        RECORDER,
    )  # fmt: skip
    t0 = first.core.recorded_at * 1000
    thread = Thread(id=uuid.uuid4(), client_ref="cd" * 32, purpose="youth-guidance", created_at=t0)
    ref = first.core.consent_id.hex()
    n = iter(range(1, 100))

    def ev(org: uuid.UUID, actor: uuid.UUID | None, action: str, rest: str, at: int) -> AuditEvent:
        return AuditEvent(id=next(n), org_id=org, actor=actor, action=action,
                          subject=f"{thread.id} {rest}".strip(), at=t0 + at)  # fmt: skip

    change = "admission.consent_change"
    events = [
        ev(kela, alice, "consent.given", f"{ref}v1", 0),
        ev(county, alice, change, f"{bob} {ref}v1 koppi.admitted", 0),
        ev(kela, alice, change, f"{eve} {ref}v1 koppi.not_covered", 0),
        ev(kela, alice, "consent.revoked", f"{ref}v2", 60_000),
        ev(county, alice, change, f"{bob} {ref}v2 koppi.consent_revoked", 60_000),
        ev(kela, None, "consent.expired", f"{ref}v1", 90_000),  # one per member organisation
        ev(county, None, "consent.expired", f"{ref}v1", 90_000),
        ev(kela, None, "thread.purged", "7", 120_000),
        ev(county, None, "thread.purged", "7", 120_000),
        ev(county, bob, "admission.reconnect", "not-a-user - koppi.admitted", 130_000),
    ]  # fmt: skip
    rows = [
        ConsentVersion(record=r.encode(), created_at=t0 + i * 60_000, log_index=i)
        for i, r in enumerate((first, revoked))
    ]
    names = Directory(
        users={alice: ("alice", kela), bob: ("bob", county), eve: ("eve", kela)},
        orgs={kela: "Kela", county: "<b>Hyvinvointialue</b>"},
    )
    got = build_report("thread", "cd" * 32, [ThreadLogs(thread, events, rows, [])], names, t0)
    (th,) = got["threads"]
    assert [(c["event"], c["version"], c["at"] - t0) for c in th["consents"]] == [
        ("given", 1, 0), ("revoked", 2, 60_000), ("expired", 1, 90_000),
    ]  # fmt: skip
    assert th["consents"][0]["organisations"][1] == {
        "org": str(county), "name": "<b>Hyvinvointialue</b>", "may_store": False,
        "basis": "statute", "statute": "SHL 1301/2014 41 §",
    }  # fmt: skip
    assert th["purged"] == [{"at": t0 + 120_000, "envelopes": 7}]
    people = {p["username"]: p for o in th["organisations"] for p in o["professionals"]}
    assert set(people) == {"alice", "bob"}  # eve was refused from the start: no access
    assert people["bob"]["access"] == [
        {"from": t0, "until": t0 + 60_000, "ended": "koppi.consent_revoked",
         "bases": [{"consent": ref, "version": 1, "basis": "statute",
                    "statute": "SHL 1301/2014 41 §"}]},
    ]  # fmt: skip
    assert people["bob"]["actions"] == [  # a subject of another form is kept as logged
        {"at": t0 + 130_000, "action": "admission.reconnect",
         "detail": "not-a-user - koppi.admitted"},
    ]  # fmt: skip
    html = render_report(got, "fi")
    assert "Peruste: laki, SHL 1301/2014 41 § (suostumuksen versio 1)." in html
    assert "päättyi, koska suostumus peruttiin" in html
    assert "suostumus peruttu (versio 2)" in html and "suostumus päättyi (versio 1)" in html
    assert "&lt;b&gt;Hyvinvointialue&lt;/b&gt;" in html and "<b>Hyvinvointialue" not in html
    assert "salattuja tallenteita 7" in html
