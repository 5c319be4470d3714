"""A record system exports what its organisation may store (issue: storage rights), end to end
with real keys: the Kela and county professionals talk in a thread through the Python client
(`client.conference`), Kela's record system is a device of the thread (`client.keystore`) and
`client.export` / `koppi export` decrypt exactly the messages labelled for Kela. A server that
relabels a message is caught by the record system; a device outside the roster, or a token of
another organisation, exports nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from client.conference import Participant
from client.device import enrol
from client.export import Exporter, ExportError
from client.keystore import KeyStore, Pins
from client.transport import Http, b64u
from client.trust import LogFollower
from crypto.clock import SeededRng
from crypto.consent import ConsentRecord, CoveredOrganisation
from crypto.identity import DeviceCert, DeviceSecrets, TrustStore
from crypto.keyfile import MEMLIMIT_MIN, OPSLIMIT_MIN
from crypto.primitives import KemKey, SigningKey
from crypto.treehead import LogConfig, LogView
from server.appkeys import AUTH, ENGINE, TRANSLOG
from server.cli import main
from server.db.tables import Envelope
from tests.server.conftest import LOG_KEY, PASSWORD, Cast
from tests.server.test_consents import first_version, post
from tests.server.test_ghost_device import COUNTY_KEY, KELA_KEY, ROOT, Api, admit

RNG = SeededRng("record-export")
PASSPHRASE = "records passphrase"


@pytest.fixture
def with_consent() -> bool:
    return False  # recorded through the API, signed by alice's device


@dataclass
class Case:
    cast: Cast
    alice: Participant  # Kela, the consent recorder
    bob: Participant  # the county
    records: KeyStore  # Kela's record system
    consent: ConsentRecord

    def http(self, token: str) -> Http:
        return Http(str(self.cast.client.make_url("")), token, self.cast.client.session)

    def follower(self) -> LogFollower:
        view = LogView(LogConfig(LOG_KEY.public, {}, 0), self.cast.clock)
        return LogFollower(TrustStore(ROOT.public, view))

    async def exporter(self, user: str = "kirjaamo") -> Exporter:
        http = self.http(await self.cast.token(user))
        return Exporter(http.get, self.records.device(), self.follower(), self.cast.clock)

    @property
    def kela(self) -> uuid.UUID:
        return self.cast.org_a

    @property
    def county(self) -> uuid.UUID:
        return self.cast.org_b


async def certify(
    cast: Cast, http: Http, device: DeviceSecrets, admin: str, org_key: SigningKey,
    roles: list[str],
) -> None:  # fmt: skip
    """Enrol through the client library; the organisation's admin certifies the device."""
    enrolled = await enrol(http, device, "pc")
    cert = DeviceCert.issue(org_key, org_id=uuid.UUID(enrolled["org"]).bytes,
                            user_id=uuid.UUID(enrolled["user"]).bytes,
                            signing_public=device.signing.public,
                            kem_public=device.cert_kem.public, roles=roles, not_before=0,
                            not_after=10**10)  # fmt: skip
    await (await Api.of(cast, admin)).post(
        f"/api/org/devices/{enrolled['device_id']}/certificate",
        {"certificate": b64u(cert.encode())},
    )


def new_device() -> DeviceSecrets:
    return DeviceSecrets(SigningKey.generate(RNG), KemKey.generate(RNG))


@pytest.fixture
async def case(cast: Cast, tmp_path: Path) -> Case:
    """Kela and the county under the client's consent (both may store); alice (Kela) opened
    epoch 0 with bob's device; Kela's record-system user is a member with a device enrolled
    and approved, not yet in the roster."""
    await admit(cast, cast.org_a, "Kela", "0246246-0", KELA_KEY)
    await admit(cast, cast.org_b, "Hyvinvointialue", "3221308-6", COUNTY_KEY)
    keeper = await cast.app[AUTH].create_user(cast.org_a, "kirjaamo", PASSWORD,
                                              frozenset({"keeper"}))  # fmt: skip
    cast.users["kirjaamo"] = keeper.id
    alice_dev, bob_dev = new_device(), new_device()
    pins = Pins(str(cast.client.make_url("")), ROOT.public, LOG_KEY.public)
    records = KeyStore.create(tmp_path / "records.key", PASSPHRASE, pins, RNG,
                              opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN)  # fmt: skip
    partial = Case(cast, None, None, records, None)  # type: ignore[arg-type]
    for user, dev, admin, key, roles in (
        ("alice", alice_dev, "anna", KELA_KEY, ["professional", "consent-recorder"]),
        ("bob", bob_dev, "bert", COUNTY_KEY, ["professional"]),
        ("kirjaamo", records.device(), "anna", KELA_KEY, ["keeper"]),
    ):
        await certify(cast, partial.http(await cast.token(user)), dev, admin, key, roles)
    consent = first_version(
        cast, alice_dev.signing,
        organisations=(CoveredOrganisation(cast.org_a.bytes, True, "consent"),
                       CoveredOrganisation(cast.org_b.bytes, True, "consent")),
        valid_from=cast.clock.now() - 10, valid_until=cast.clock.now() + 86400,
    )  # fmt: skip
    await post(cast, "alice", consent, 201)
    alice_api = await Api.of(cast, "alice")
    await alice_api.post(f"/api/threads/{cast.thread}/members",
                         {"user": str(keeper.id)}, 201)  # fmt: skip
    await cast.app[TRANSLOG].sign_head()
    alice = Participant(partial.http(await cast.token("alice")), alice_dev, partial.follower(),
                        RNG, cast.clock)  # fmt: skip
    bob = Participant(partial.http(await cast.token("bob")), bob_dev, partial.follower(), RNG,
                      cast.clock)  # fmt: skip
    await alice.connect()
    await alice.start(cast.thread, evidence=consent.core.core_hash, devices=[bob_dev.device_id])
    await bob.connect()
    await bob.join(cast.thread)
    yield Case(cast, alice, bob, records, consent)
    await alice.close()
    await bob.close()


async def converse(case: Case) -> dict[str, int]:
    """Four messages with four labels, and one of bob's; returns seq by text."""
    t, kela, county = case.cast.thread, case.kela, case.county
    sent = {}
    for text, who, orgs in (
        ("Kela only: toimeentulotuki haettu", case.alice, [kela]),
        ("county only: kotihoito alkaa", case.alice, [county]),
        ("both may store", case.alice, [kela, county]),
        ("nobody stores this", case.alice, []),
        ("bob: both, from the county", case.bob, [county, kela]),
    ):
        sent[text] = await who.send(t, text, orgs)
    return sent


async def test_the_record_system_decrypts_exactly_what_its_organisation_may_store(
    case: Case,
) -> None:
    await case.alice.add(case.cast.thread, [case.records.device().device_id])
    sent = await converse(case)
    done = await (await case.exporter()).export(case.cast.thread, case.kela)
    assert done.refused == []
    assert [(m.seq, m.text) for m in done.messages] == [
        (sent[t], t)
        for t in ("Kela only: toimeentulotuki haettu", "both may store",
                  "bob: both, from the county")
    ]  # fmt: skip
    first, _, last = done.messages
    assert first.sender_org == str(case.kela) and last.sender_org == str(case.county)
    assert last.sender_user == str(case.cast.users["bob"])
    assert first.label_orgs == [str(case.kela)] and first.label_basis == "consent"
    assert first.content_type == "text/plain" and first.epoch == 1
    assert done.next_after == max(sent.values()) and len(done.disclosures) == 1
    # Every member device reads every message, whatever its label (a label is not access
    # control): bob's device opens alice's first one.
    got, text = await case.bob.receive(), "Kela only: toimeentulotuki haettu"
    assert (got.seq, got.message.body) == (sent[text], text.encode())

    # The disclosure is what every participant sees: Kela's user took these message ids.
    listed = await Api.of(case.cast, "bob")
    records = (await listed.get(f"/api/threads/{case.cast.thread}/disclosures"))["disclosures"]
    assert [(r["org"], r["user"], r["messages"]) for r in records] == [
        (str(case.kela), str(case.cast.users["kirjaamo"]), [m.id for m in done.messages])
    ]

    # Resuming: nothing new, no new disclosure; then only what came after.
    again = await (await case.exporter()).export(case.cast.thread, case.kela, done.next_after)
    assert (again.messages, again.disclosures) == ([], [])
    seq = await case.bob.send(case.cast.thread, "later, for Kela", [case.kela])
    later = await (await case.exporter()).export(case.cast.thread, case.kela, done.next_after)
    assert [(m.seq, m.text) for m in later.messages] == [(seq, "later, for Kela")]


async def test_a_device_added_later_gets_the_history_the_consent_allows(case: Case) -> None:
    sent = await converse(case)  # before the record system's device is in the roster
    with pytest.raises(ExportError) as refused:
        await (await case.exporter()).export(case.cast.thread, case.kela)
    assert "roster" in str(refused.value) and refused.value.code == "koppi.not_in_roster"
    # It joins before it asks for content: nothing was disclosed to a device that cannot read.
    bob = await Api.of(case.cast, "bob")
    assert await bob.get(f"/api/threads/{case.cast.thread}/disclosures") == {"disclosures": []}
    await case.alice.add(case.cast.thread, [case.records.device().device_id])
    done = await (await case.exporter()).export(case.cast.thread, case.kela)
    assert [m.seq for m in done.messages] == [
        sent["Kela only: toimeentulotuki haettu"], sent["both may store"],
        sent["bob: both, from the county"],
    ]  # fmt: skip
    assert {m.epoch for m in done.messages} == {0} and done.refused == []


async def test_a_relabelled_message_is_refused_by_the_record_system(case: Case) -> None:
    """A malicious server adds Kela to a county-only message's label metadata: the server's
    filter hands it over, the sealed label says otherwise, and the record system refuses it."""
    await case.alice.add(case.cast.thread, [case.records.device().device_id])
    sent = await converse(case)
    county_only = sent["county only: kotihoito alkaa"]
    forged = json.dumps({"basis": "consent", "orgs": sorted([str(case.kela),
                                                             str(case.county)])})  # fmt: skip
    async with case.cast.app[ENGINE].begin() as conn:
        await conn.execute(
            update(Envelope)
            .where(Envelope.thread_id == case.cast.thread, Envelope.seq == county_only)
            .values(label=forged)
        )
    done = await (await case.exporter()).export(case.cast.thread, case.kela)
    assert [(r.seq, r.code) for r in done.refused] == [(county_only, "koppi.label_mismatch")]
    assert county_only not in [m.seq for m in done.messages]
    assert len(done.messages) == 3  # the honest ones still come through


async def test_a_token_of_another_organisation_exports_nothing(case: Case) -> None:
    await case.alice.add(case.cast.thread, [case.records.device().device_id])
    await converse(case)
    with pytest.raises(ExportError) as refused:
        await (await case.exporter("bob")).export(case.cast.thread, case.kela)
    assert refused.value.code == "koppi.forbidden"
    disclosures = await (await Api.of(case.cast, "bob")).get(
        f"/api/threads/{case.cast.thread}/disclosures"
    )
    assert disclosures == {"disclosures": []}


async def test_koppi_export_writes_the_json_a_record_system_imports(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await case.alice.add(case.cast.thread, [case.records.device().device_id])
    sent = await converse(case)
    monkeypatch.setattr("client.cli.SystemClock", lambda: case.cast.clock)  # the server's time
    monkeypatch.setenv("KOPPI_TOKEN", await case.cast.token("kirjaamo"))
    monkeypatch.setenv("KOPPI_KEY_PASSPHRASE", PASSPHRASE)
    out = tmp_path / "export.json"
    argv = ["export", "--key-file", str(case.records.path), "--thread", str(case.cast.thread),
            "--org", str(case.kela), "--format", "json", "--out", str(out)]  # fmt: skip
    # The CLI runs its own event loop; the test server keeps serving on this one meanwhile.
    assert await asyncio.to_thread(main, argv) == 0
    exported: dict[str, Any] = json.loads(out.read_text())
    assert out.stat().st_mode & 0o777 == 0o600
    assert exported["format"] == "koppi-export/1" and exported["organisation"] == str(case.kela)
    assert [m["text"] for m in exported["messages"]] == [
        "Kela only: toimeentulotuki haettu", "both may store", "bob: both, from the county",
    ]  # fmt: skip
    message = exported["messages"][0]
    assert set(message) == {"seq", "id", "epoch", "sent_at_ms", "sequenced_at_ms", "sender",
                            "label", "content_type", "text", "body"}  # fmt: skip
    assert message["sender"]["organisation"] == str(case.kela)
    assert exported["next_after"] == max(sent.values()) and exported["refused"] == []

    # The wrong passphrase, and another organisation's id, fail plainly and write nothing.
    monkeypatch.setenv("KOPPI_KEY_PASSPHRASE", "wrong")
    assert await asyncio.to_thread(main, argv[:-2]) == 1
    monkeypatch.setenv("KOPPI_KEY_PASSPHRASE", PASSPHRASE)
    wrong_org = [*argv[:6], str(case.county), *argv[7:-2]]
    assert await asyncio.to_thread(main, wrong_org) == 1
    err = capsys.readouterr().err
    assert "koppi.auth_failed" in err and "koppi.forbidden" in err


async def test_koppi_client_init_makes_keys_here_and_enrols_the_device(
    cast: Cast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "records.key"
    argv = [
        "client",
        "init",
        "--key-file",
        str(key_file),
        "--server",
        str(cast.client.make_url("")),
        "--root-public",
        ROOT.public.hex(),
        "--log-public-key",
        LOG_KEY.public.hex(),
        "--label",
        "Kelan asiakirjajärjestelmä",
    ]
    monkeypatch.delenv("KOPPI_TOKEN", raising=False)
    monkeypatch.setenv("KOPPI_KEY_PASSPHRASE", PASSPHRASE)
    assert await asyncio.to_thread(main, argv) == 2  # no token: nothing made
    assert not key_file.exists()
    monkeypatch.setenv("KOPPI_TOKEN", await cast.token("alice"))
    assert await asyncio.to_thread(main, argv) == 0
    assert key_file.stat().st_mode & 0o777 == 0o600
    store = KeyStore.open(key_file, PASSPHRASE, RNG)
    device_id = b64u(store.device().device_id)
    assert store.pins().root_public == ROOT.public
    printed = capsys.readouterr().out
    assert f"device {device_id} enrolled" in printed
    listed = await (await Api.of(cast, "anna")).get("/api/org/devices?status=pending")
    mine = [d for d in listed["devices"] if d["device_id"] == device_id]
    assert mine and mine[0]["fingerprint"] in printed
    assert mine[0]["label"] == "Kelan asiakirjajärjestelmä"
    # A second init over the same file would throw the device's keys away: refused.
    assert await asyncio.to_thread(main, argv) == 1
    assert KeyStore.open(key_file, PASSPHRASE, RNG).device().device_id == store.device().device_id
