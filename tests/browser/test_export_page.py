"""Issue #8, "The same export is available from the browser for a single thread", in real
Chromium against a real `koppi serve`: Kela's professional enrols this browser, Kela's admin
approves it through the API with the organisation key held in Python, and a Python participant
adds it to the thread's roster. Python participants of Kela and the county write messages with
different storage labels (one of them hostile HTML), and the server relabels one to hand it to
Kela. The browser's export decrypts here exactly the messages labelled for Kela, refuses the
relabelled one, shows text as text, and downloads the JSON the Python record system writes for
the same thread and organisation; the export is a disclosure on record. A browser without
device keys, and one whose approved device is not in the roster, get a clear error and take
nothing; a professional outside the thread sees the server's refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from client.conference import Participant
from client.device import enrol as enrol_device
from client.export import Exporter
from client.transport import Http, b64u, unb64u
from client.trust import LogFollower
from crypto.clock import SeededRng, SystemClock
from crypto.consent import ConsentCore, CoveredOrganisation, sign_consent
from crypto.identity import DeviceCert, DeviceSecrets, TrustStore
from crypto.primitives import KemKey, SigningKey, sha256
from crypto.treehead import LogConfig, LogView
from tests.browser.serving import PASSWORD, ROOT, Deployment, deployment, koppi
from tests.browser.test_admin_flow import login

pytestmark = pytest.mark.browser

RNG = SeededRng("browser-export")
KELA_KEY, COUNTY_KEY = SigningKey.generate(RNG), SigningKey.generate(RNG)
KELA, COUNTY = "0246246-0", "3221308-6"
CLIENT_REF = hashlib.sha256(b"asiakas-export").digest()
HOSTILE = "<img src=x onerror=alert(1)>"
RELABELLED = "county only, relabelled by the server"
T = TypeVar("T")


def run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Python's client beside Playwright, whose sync API holds this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro()).result()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    users = {"alice": "professional", "anna": "org-admin", "kirsi": "professional",
             "kalle": "professional"}  # fmt: skip
    # Heads at least every second, so that a certificate approved a moment ago is in the next.
    with deployment(tmp_path, users, settings={"KOPPI_LOG_HEAD_INTERVAL_S": "1"}) as running:
        env = running.env
        koppi(env, "org", "add", "Hyvinvointialue", COUNTY)
        for user, role in (("bob", "professional"), ("bert", "org-admin")):
            koppi(env, "user", "add", COUNTY, user, "--role", role, "--password-stdin",
                  stdin=PASSWORD + "\n")  # fmt: skip
        koppi(env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
        for business_id, key in ((KELA, KELA_KEY), (COUNTY, COUNTY_KEY)):
            koppi(
                env, "org", "admit", business_id, key.public.hex(), "--root-key", running.root_key
            )
        yield running


@dataclass
class Api:
    """Bearer-token calls as each user, on one aiohttp session without cookies."""

    url: str
    session: aiohttp.ClientSession
    root_public: bytes  # what `koppi root init` printed
    tokens: dict[str, str] = field(default_factory=dict)

    async def as_user(self, user: str) -> Http:
        if user not in self.tokens:
            # unsafe: the test server is at an IP address, whose cookies aiohttp drops otherwise
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(self.url, cookie_jar=jar) as login_session:
                login = {"username": user, "password": PASSWORD}
                r = await login_session.post("/api/login", json=login)
                csrf = {"X-CSRF-Token": (await r.json())["csrf_token"]}
                r = await login_session.post("/api/tokens", json={"label": "test"}, headers=csrf)
                self.tokens[user] = (await r.json())["token"]
        return Http(self.url, self.tokens[user], self.session)

    async def org_id(self, business_id: str) -> uuid.UUID:
        listed = await (await self.as_user("anna")).get("/api/organisations")
        return uuid.UUID(next(o["id"] for o in listed["organisations"]
                              if o["business_id"] == business_id))  # fmt: skip

    async def certify(self, device: dict[str, Any], admin: str, key: SigningKey,
                      roles: list[str]) -> None:  # fmt: skip
        """The organisation's admin signs the device's certificate with the organisation key."""
        cert = DeviceCert.issue(key, org_id=uuid.UUID(device["org"]).bytes,
                                user_id=uuid.UUID(device["user"]).bytes,
                                signing_public=unb64u(device["signing_public"]),
                                kem_public=unb64u(device["kem_public"]), roles=roles,
                                not_before=0, not_after=10**10)  # fmt: skip
        await (await self.as_user(admin)).post(
            f"/api/org/devices/{device['device_id']}/certificate",
            {"certificate": b64u(cert.encode())},
        )

    async def approve_browser(self, user: str) -> None:
        """Kela's admin approves the pending device `user` enrolled in the browser."""
        anna = await self.as_user("anna")
        me = await (await self.as_user(user)).get("/api/me")
        pending = (await anna.get("/api/org/devices?status=pending"))["devices"]
        (device,) = [d for d in pending if d["user"] == me["user"]]
        await self.certify(device, "anna", KELA_KEY, ["professional"])

    async def follower(self) -> LogFollower:
        # The test pins the log key the server names; a real client pins it from the operator.
        head = await (await self.as_user("anna")).get("/api/log/head")
        view = LogView(LogConfig(unb64u(head["log_public_key"]), {}, 0), SystemClock())
        return LogFollower(TrustStore(self.root_public, view))

    @classmethod
    @contextlib.asynccontextmanager
    async def of(cls, server: Deployment) -> AsyncIterator[Api]:
        root = bytes.fromhex(server.env["KOPPI_ROOT_PUBLIC_KEY"])
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            yield cls(server.url, session, root)


@dataclass
class Scripted:
    thread: uuid.UUID
    kela: uuid.UUID
    county: uuid.UUID
    alice: DeviceSecrets
    seqs: dict[str, int]


def new_device() -> DeviceSecrets:
    return DeviceSecrets(SigningKey.generate(RNG), KemKey.generate(RNG))


async def script(server: Deployment) -> Scripted:
    """alice (Kela, consent recorder) starts the thread, records the consent through the API and
    opens epoch 0 with bob (the county); kirsi's browser device is added in epoch 1; then
    messages with different labels."""
    async with Api.of(server) as api:
        kela, county = await api.org_id(KELA), await api.org_id(COUNTY)
        alice_dev, bob_dev = new_device(), new_device()
        for user, dev, admin, key, roles in (
            ("alice", alice_dev, "anna", KELA_KEY, ["professional", "consent-recorder"]),
            ("bob", bob_dev, "bert", COUNTY_KEY, ["professional"]),
        ):
            enrolled = await enrol_device(await api.as_user(user), dev, "pc")
            await api.certify(enrolled, admin, key, roles)
        await api.approve_browser("kirsi")
        alice = await api.as_user("alice")
        thread = uuid.UUID((await alice.post("/api/threads", {
            "client_ref": CLIENT_REF.hex(), "purpose": "rehabilitation-planning",
        }))["thread"])  # fmt: skip
        now = int(time.time())
        core = ConsentCore(
            consent_id=RNG.random_bytes(16), version=1, prev_version_hash=b"",
            client_ref=CLIENT_REF, purpose="rehabilitation-planning",
            organisations=(CoveredOrganisation(kela.bytes, True, "consent"),
                           CoveredOrganisation(county.bytes, True, "consent")),
            data_categories=frozenset({"social-welfare"}), valid_from=now - 60,
            valid_until=now + 86400, status="active", disclosure_basis="consent",
            how_obtained="written", info_text_hash=sha256(b"information text"), details_hash=b"",
            recorder=alice_dev.device_id, recorded_at=now,
        )  # fmt: skip
        consent = sign_consent(core, alice_dev.signing)
        await alice.post(f"/api/threads/{thread}/consents", {"record": b64u(consent.encode())})
        for user in ("bob", "kirsi", "kalle"):
            me = await (await api.as_user(user)).get("/api/me")
            await alice.post(f"/api/threads/{thread}/members", {"user": me["user"]})
        await asyncio.sleep(1.2)  # the next head covers the certificates
        a = Participant(alice, alice_dev, await api.follower(), RNG, SystemClock())
        b = Participant(await api.as_user("bob"), bob_dev, await api.follower(), RNG,
                        SystemClock())  # fmt: skip
        await a.connect()
        await a.start(thread, evidence=core.core_hash, devices=[bob_dev.device_id])
        await b.connect()
        await b.join(thread)
        listed = (await alice.get(f"/api/threads/{thread}/devices"))["devices"]
        kirsi_user = (await (await api.as_user("kirsi")).get("/api/me"))["user"]
        (browser,) = [d for d in listed if d["user"] == kirsi_user]
        await a.add(thread, [unb64u(browser["device_id"])])
        seqs = {}
        for text, who, orgs in (
            ("Kela only: toimeentulotuki haettu", a, [kela]),
            ("county only: kotihoito alkaa", a, [county]),
            ("both may store\nkaksi riviä", a, [kela, county]),
            ("nobody stores this", a, []),
            (HOSTILE, b, [county, kela]),
            (RELABELLED, b, [county]),
        ):
            seqs[text] = await who.send(thread, text, orgs)
        await a.close()
        await b.close()
        return Scripted(thread, kela, county, alice_dev, seqs)


def relabel(server: Deployment, seq: int, orgs: list[uuid.UUID]) -> None:
    """What a malicious server does: change a message's label metadata (not the sealed one)."""
    path = server.env["KOPPI_DATABASE_URL"].split("///", 1)[1]
    label = json.dumps({"basis": "consent", "orgs": sorted(str(o) for o in orgs)})
    with sqlite3.connect(path, timeout=10) as db:
        assert (
            db.execute("UPDATE envelopes SET label = ? WHERE seq = ?", (label, seq)).rowcount == 1
        )


def python_export(server: Deployment, case: Scripted) -> dict[str, Any]:
    """What Kela's record system exports (client/export.py) with alice's device."""

    async def go() -> dict[str, Any]:
        async with Api.of(server) as api:
            exporter = Exporter((await api.as_user("alice")).get, case.alice,
                                await api.follower(), SystemClock())  # fmt: skip
            return (await exporter.export(case.thread, case.kela)).to_json()

    return run(go)


def disclosures(server: Deployment, thread: uuid.UUID) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with Api.of(server) as api:
            bob = await api.as_user("bob")
            listed: list[dict[str, Any]] = (await bob.get(f"/api/threads/{thread}/disclosures"))[
                "disclosures"
            ]
            return listed

    return run(go)


def user_id(server: Deployment, user: str) -> str:
    async def go() -> str:
        async with Api.of(server) as api:
            return str((await (await api.as_user(user)).get("/api/me"))["user"])

    return run(go)


def enrol(page: Any, url: str) -> None:
    page.goto(url + "/devices")
    page.click("#enrol")
    page.wait_for_selector("#device-status[data-status=pending]")


def export(page: Any) -> None:
    page.click("#export-run")
    page.wait_for_selector("#export-panel[data-state=done], #export-panel[data-state=error]")


def open_export(page: Any, url: str, thread: uuid.UUID, lang: str | None = None) -> None:
    page.goto(f"{url}/threads/{thread}/export" + (f"?lang={lang}" if lang else ""))
    page.wait_for_selector("body[data-ready=true]")


def test_the_browser_exports_what_its_organisation_may_store_as_python_does(
    browser: Any, server: Deployment
) -> None:
    url = server.url
    errors: list[str] = []
    kirsi = login(browser, url, "kirsi")
    kirsi.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    kirsi.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    enrol(kirsi, url)
    case = run(lambda: script(server))
    relabel(server, case.seqs[RELABELLED], [case.county, case.kela])

    # The consent panel links to the export page.
    kirsi.goto(f"{url}/threads/{case.thread}/consent")
    kirsi.click("#export-link")
    kirsi.wait_for_selector("body[data-ready=true]")
    assert kirsi.url.endswith(f"/threads/{case.thread}/export")
    open_export(kirsi, url, case.thread, "en")
    assert kirsi.text_content("#thread-client-ref") == CLIENT_REF.hex()[:12] + "…"
    assert kirsi.text_content("#thread-purpose") == "rehabilitation-planning"
    export(kirsi)
    assert kirsi.get_attribute("#export-panel", "data-state") == "done", kirsi.text_content(
        "#export-error"
    )
    texts = kirsi.locator("#export-messages li .text").all_text_contents()
    assert texts == ["Kela only: toimeentulotuki haettu", "both may store\nkaksi riviä", HOSTILE]
    assert kirsi.locator("#export-messages img").count() == 0 and dialogs == []  # text, not HTML
    assert "Hyvinvointialue" in (kirsi.text_content("#export-messages li:nth-child(3)") or "")
    refused = kirsi.locator("#export-refused li")
    assert refused.count() == 1 and refused.get_attribute("data-code") == "koppi.label_mismatch"
    assert (refused.text_content() or "").startswith(f"{case.seqs[RELABELLED]}: ")
    assert kirsi.text_content("#export-status") == "3 messages exported, 1 refused."

    with kirsi.expect_download() as download:
        kirsi.click("#export-file")
    assert download.value.suggested_filename.startswith(f"koppi-export-{case.thread}-")
    got = json.loads(Path(download.value.path()).read_text())
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    kirsi.screenshot(path=str(shots / "export-page.png"), full_page=True)

    # Field by field what Python's record system writes for the same thread and organisation.
    want = python_export(server, case)
    assert set(got) == set(want)
    for key in ("format", "thread", "organisation", "client_ref", "purpose", "after",
                "next_after"):  # fmt: skip
        assert got[key] == want[key], key
    assert got["format"] == "koppi-export/1" and got["organisation"] == str(case.kela)
    assert len(got["messages"]) == len(want["messages"]) == 3
    for mine, theirs in zip(got["messages"], want["messages"], strict=True):
        assert set(mine) == set(theirs)
        for key in theirs:
            assert mine[key] == theirs[key], (mine["seq"], key)
    assert [m["seq"] for m in got["messages"]] == [
        case.seqs[t] for t in ("Kela only: toimeentulotuki haettu", "both may store\nkaksi riviä",
                               HOSTILE)
    ]  # fmt: skip
    assert (
        [(r["seq"], r["id"], r["code"]) for r in got["refused"]]
        == [(r["seq"], r["id"], r["code"]) for r in want["refused"]]
        == [(case.seqs[RELABELLED], want["refused"][0]["id"], "koppi.label_mismatch")]
    )
    assert got["messages"][2]["sender"]["organisation"] == str(case.county)
    assert got["messages"][0]["label"]["organisations"] == [str(case.kela)]

    # The browser's export is a disclosure on record, naming kirsi and the messages served.
    kirsi_id = user_id(server, "kirsi")
    (mine,) = [d for d in disclosures(server, case.thread) if d["user"] == kirsi_id]
    assert len(got["disclosures"]) == 1 and mine["id"] == got["disclosures"][0]
    assert mine["org"] == str(case.kela)
    assert set(mine["messages"]) == {m["id"] for m in got["messages"]} | {got["refused"][0]["id"]}
    assert not errors, errors


def test_a_browser_without_keys_or_outside_the_roster_gets_a_clear_error(
    browser: Any, server: Deployment
) -> None:
    url = server.url
    errors: list[str] = []
    kirsi = login(browser, url, "kirsi")
    enrol(kirsi, url)
    case = run(lambda: script(server))
    kalle = login(browser, url, "kalle")
    kalle.on("pageerror", lambda e: errors.append(str(e)))

    # No device keys in this browser (in Finnish, chosen with the language switch).
    open_export(kalle, url, case.thread, "fi")
    export(kalle)
    assert kalle.get_attribute("#export-panel", "data-error") == "koppi.no_device_keys"
    assert "laitteen avaimia" in (kalle.text_content("#export-error") or "")
    assert kalle.locator("#export-download").is_hidden()

    # Enrolled and approved, a member of the thread, but not in its roster (Swedish).
    enrol(kalle, url)

    async def approve() -> None:
        async with Api.of(server) as api:
            await api.approve_browser("kalle")

    run(approve)
    time.sleep(1.2)  # the next head covers the certificate
    open_export(kalle, url, case.thread, "sv")
    export(kalle)
    assert kalle.get_attribute("#export-panel", "data-error") == "koppi.not_in_roster"
    assert "medlemsförteckning" in (kalle.text_content("#export-error") or "")
    assert kalle.locator("#export-messages li").count() == 0
    # It joined the chain from the commits alone: nothing was served to it, no disclosure.
    kalle_id = user_id(server, "kalle")
    assert [d for d in disclosures(server, case.thread) if d["user"] == kalle_id] == []

    # A professional outside the thread sees the server's refusal, and no button.
    anna = login(browser, url, "anna")
    open_export(anna, url, case.thread, "en")
    assert anna.get_attribute("#export-panel", "data-error") == "koppi.not_member"
    assert "not a member" in (anna.text_content("#export-error") or "")
    assert anna.locator("#export-run").is_disabled()
    assert not errors, errors
