"""Issue #9's remaining states of the case-conference app (/app), in real headless Chromium against
a real `koppi serve`: alice and bob (Kela) each in their own browser with an approved device, in
a thread whose consent alice's recorder device (Python) recorded through the API.

- The thread view warns, in the page's language, that the consent in force ends within the
  configured horizon and says when; under a version valid for longer the warning is gone.
- The thread list and the thread view speak Finnish and Swedish from the header's switch: the
  purpose as words (the client receipt's), dates in the page's locale.
- At a laptop's 1366x768 and a tablet's 768x1024 (both ways round) nothing scrolls sideways, and
  the composer and the participants' panel are there to reach.
- bob's second browser is a new device that none of his devices in the thread linked: it waits,
  alice sees it with its fingerprint (computed in her browser from the keys the log certifies),
  compares and approves it, her engine adds it, and bob's second browser reads what follows.
- axe-core finds nothing on the app with the thread open (the conversation, the warning and the
  waiting device in view).
"""

from __future__ import annotations

import datetime
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from client.device import enrol as enrol_device
from client.transport import b64u, unb64u
from crypto.consent import (
    ConsentCore,
    ConsentRecord,
    CoveredOrganisation,
    next_version,
    sign_consent,
)
from crypto.fingerprint import fingerprint_hex, fingerprint_words
from crypto.identity import DeviceSecrets
from crypto.primitives import sha256
from server.page_text import APP_PAGE, PURPOSE_NAMES
from tests.browser import axe
from tests.browser.serving import ROOT, Deployment, deployment, koppi
from tests.browser.test_conference_app import enrol, login, open_app, ready_to_send, say, wait_texts
from tests.browser.test_export_page import KELA, KELA_KEY, Api, new_device, run
from tests.browser.test_languages import switch

pytestmark = pytest.mark.browser

CLIENT_REF = hashlib.sha256(b"asiakas-app-views").digest()
PURPOSE = "rehabilitation-planning"
SHOTS = ROOT / "artifacts"
HELSINKI = ZoneInfo("Europe/Helsinki")
SOON_S = 3 * 86400 - 3600  # the first version ends in under three days: within the 7-day horizon


@dataclass
class Case:
    server: Deployment
    thread: str
    record: ConsentRecord
    recorder: DeviceSecrets
    alice: Any
    bob: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def record_thread(server: Deployment) -> tuple[str, ConsentRecord, DeviceSecrets]:
    """Kela's admin approves alice's and bob's browsers; alice's recorder device (Python) starts
    the thread, records a consent that ends soon, and alice invites bob."""

    async def go() -> tuple[str, ConsentRecord, DeviceSecrets]:
        async with Api.of(server) as api:
            kela = await api.org_id(KELA)
            for user in ("alice", "bob"):
                await api.approve_browser(user)
            recorder = new_device()
            alice = await api.as_user("alice")
            enrolled = await enrol_device(alice, recorder, "pc")
            await api.certify(enrolled, "anna", KELA_KEY, ["professional", "consent-recorder"])
            body = {"client_ref": CLIENT_REF.hex(), "purpose": PURPOSE}
            thread = (await alice.post("/api/threads", body))["thread"]
            now = int(time.time())
            core = ConsentCore(
                consent_id=uuid.uuid4().bytes, version=1, prev_version_hash=b"",
                client_ref=CLIENT_REF, purpose=PURPOSE,
                organisations=(CoveredOrganisation(kela.bytes, True, "consent"),),
                data_categories=frozenset({"social-welfare"}), valid_from=now - 60,
                valid_until=now + SOON_S, status="active", disclosure_basis="consent",
                how_obtained="written", info_text_hash=sha256(b"information text"),
                details_hash=b"", recorder=recorder.device_id, recorded_at=now,
            )  # fmt: skip
            record = sign_consent(core, recorder.signing)
            await alice.post(f"/api/threads/{thread}/consents", {"record": b64u(record.encode())})
            bob = (await (await api.as_user("bob")).get("/api/me"))["user"]
            await alice.post(f"/api/threads/{thread}/members", {"user": bob})
            return thread, record, recorder

    return run(go)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Case]:
    tmp: Path = tmp_path_factory.mktemp("app-views")
    users = {"alice": "professional", "anna": "org-admin", "bob": "professional"}
    with deployment(tmp, users, settings={"KOPPI_LOG_HEAD_INTERVAL_S": "1"}) as server:
        koppi(server.env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
        koppi(server.env, "org", "admit", KELA, KELA_KEY.public.hex(), "--root-key",
              server.root_key)  # fmt: skip
        errors: list[str] = []
        dialogs: list[str] = []
        alice = login(browser, server.url, "alice", errors, dialogs)
        bob = login(browser, server.url, "bob", errors, dialogs)
        for page in (alice, bob):
            enrol(page, server.url)
        thread, record, recorder = record_thread(server)
        for page in (alice, bob):
            open_app(page, server.url, thread)
            ready_to_send(page)
        yield Case(server, thread, record, recorder, alice, bob, errors, dialogs)
        for page in (alice, bob):
            page.context.close()
    assert not errors, errors


def helsinki(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, HELSINKI)


def shown_date(seconds: int, lang: str) -> str:
    """A day as Chromium writes it in fi-FI, sv-FI and en-GB (the page's locales)."""
    d = helsinki(seconds)
    return d.strftime("%d/%m/%Y") if lang == "en" else f"{d.day}.{d.month}.{d.year}"


def shown_time(seconds: int, lang: str) -> str:
    d = helsinki(seconds)
    return {
        "fi": f"{d.day}.{d.month}.{d.year} klo {d.hour}.{d.minute:02d}",
        "sv": f"{d.day}.{d.month}.{d.year} {d.hour}.{d.minute:02d}",
        "en": d.strftime("%d/%m/%Y, %H:%M"),
    }[lang]


def warning(page: Any) -> str | None:
    if page.locator("#consent-warning").is_hidden():
        return None
    return page.text_content("#consent-warning")


def test_the_thread_view_in_finnish_and_swedish(case: Case) -> None:
    """The header's switch turns the thread list and the thread view to Finnish, then Swedish:
    the purpose in words, the consent's dates and the warning in the page's locale."""
    alice, core = case.alice, case.record.core
    say(alice, "Kieliversiot kuntoon.")
    wait_texts(alice, ["Kieliversiot kuntoon."])
    link = alice.locator(f"#thread-list a[data-thread='{case.thread}']")
    assert (link.text_content() or "").startswith(PURPOSE_NAMES["en"][PURPOSE] + " · ")
    for language, lang in (("suomeksi", "fi"), ("på svenska", "sv")):
        switch(alice, language)
        assert alice.evaluate("() => location.hash.slice(1)") == case.thread
        ready_to_send(alice)
        t = APP_PAGE[lang]
        alice.wait_for_selector("#consent-summary[data-version='1']")
        name = PURPOSE_NAMES[lang][PURPOSE]
        assert PURPOSE not in (link.text_content() or "")
        started = t["started"].format(date=shown_date(int(time.time()), lang))
        assert link.text_content() == f"{name} · {CLIENT_REF.hex()[:8]}…{started}"
        assert alice.text_content("#thread-title") == f"{name} · {CLIENT_REF.hex()[:12]}…"
        assert alice.text_content("h1#threads-title") == t["threads"]
        assert alice.text_content("#confidential strong") == t["confidential"]
        assert alice.text_content("#consent-summary") == t["consent_line"].format(
            version=1, until=shown_date(core.valid_until, lang)
        )
        assert warning(alice) == t["consent_expiring"].format(
            until=shown_time(core.valid_until, lang), days=3
        )
        # The new-thread form names the purposes in words too, by their codes.
        option = alice.locator(f"#new-thread option[value={PURPOSE}]")
        assert option.text_content() == name
        meta = alice.locator("#messages li.mine .meta").text_content() or ""
        assert meta.startswith(f"{t['you']} · Kela · "), meta
        assert alice.text_content("#messages li.mine .state") == t["delivered"]
        alice.screenshot(path=str(SHOTS / f"app-thread-{lang}.png"), full_page=True)
        # The client's right-to-know report, printable in the page's language, with this
        # browser's session (a member of the thread).
        report = alice.locator("#report-link")
        assert report.text_content() == t["report_link"]
        href = report.get_attribute("href")
        assert href == f"/api/threads/{case.thread}/right-to-know?lang={lang}"
        printed = alice.request.get(alice.evaluate("() => location.origin") + href)
        assert printed.status == 200 and f'<html lang="{lang}">' in printed.text()
    switch(alice, "in English")
    ready_to_send(alice)


SIZES = {
    "laptop": (1366, 768),
    "tablet-portrait": (768, 1024),
    "tablet-landscape": (1024, 768),
}


def assert_fits(page: Any, size: str, shots: bool = False) -> None:
    """At `size`: nothing scrolls sideways, and the composer and the participants' and consent
    panel are there, within the screen's width."""
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    try:
        page.wait_for_selector("#thread-view:not([hidden])")
        overflow = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert overflow[0] <= overflow[1], (size, overflow)
        for target in ("#compose", "#send", "#members", "#consent-summary", "#invite-org"):
            page.locator(target).scroll_into_view_if_needed()
            assert page.locator(target).is_visible(), (size, target)
            box = page.locator(target).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, target
        if shots:
            page.locator("#compose").scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / f"app-{size}.png"))
            page.screenshot(path=str(SHOTS / f"app-{size}-full.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": 1280, "height": 720})


@pytest.mark.parametrize("size", SIZES)
def test_laptop_and_tablet_without_sideways_scrolling(case: Case, size: str) -> None:
    assert_fits(case.alice, size, shots=True)


def device_keys(server: Deployment, username: str, status: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with Api.of(server) as api:
            me = await (await api.as_user(username)).get("/api/me")
            listed = await (await api.as_user("anna")).get(f"/api/org/devices?status={status}")
            return [d for d in listed["devices"] if d["user"] == me["user"]]

    return run(go)


def test_a_new_device_waits_for_a_persons_approval(case: Case, browser: Any) -> None:
    alice, bob = case.alice, case.bob
    bob2 = login(browser, case.server.url, "bob", case.errors, case.dialogs)
    try:
        enrol(bob2, case.server.url)
        (pending,) = device_keys(case.server, "bob", "pending")
        approve_second(case.server)
        open_app(bob2, case.server.url, case.thread)
        bob2.wait_for_selector("#thread-note:has-text('not been added')", timeout=30_000)
        assert bob2.locator("#compose").is_disabled()

        # alice's view: bob's new device waits, with the fingerprint of the keys the log certifies.
        device_hex = unb64u(pending["device_id"]).hex()
        box = alice.locator(f"#approvals .new-device[data-device='{device_hex}']")
        box.wait_for(timeout=30_000)
        signing, kem = unb64u(pending["signing_public"]), unb64u(pending["kem_public"])
        box.locator("dd.hex").wait_for()
        assert box.locator("dd.hex").text_content() == fingerprint_hex(signing, kem)
        assert box.locator("dd.words").text_content() == " ".join(fingerprint_words(signing, kem))
        assert box.locator(".owner").text_content() == "bob: a new device"
        bob.locator(f"#approvals .new-device[data-device='{device_hex}']").wait_for()  # his too
        # Nobody added it on their own: it waits for a person.
        alice.wait_for_timeout(2000)
        assert bob2.locator("#compose").is_disabled()
        assert axe.violations(alice) == []  # the thread open: chat, warning, a device waiting
        alice.screenshot(path=str(SHOTS / "app-new-device.png"), full_page=True)
        assert_fits(alice, "tablet-portrait")  # the fingerprint's long words and hex wrap too

        box.get_by_role("button", name="Approve after comparing: bob: a new device").click()
        ready_to_send(bob2)
        alice.wait_for_selector(f"#approvals .new-device[data-device='{device_hex}']",
                                state="detached")  # fmt: skip
        say(alice, "Tervetuloa toiselta laitteelta.")
        bob2.wait_for_selector(
            "#messages li[data-status=delivered] .text:text-is('Tervetuloa toiselta laitteelta.')",
            timeout=30_000,
        )
        say(bob2, "Luen nyt tabletilta.")
        for page in (alice, bob):
            page.wait_for_selector(
                "#messages li[data-status=delivered] .text:text-is('Luen nyt tabletilta.')",
                timeout=30_000,
            )
    finally:
        bob2.context.close()


def approve_second(server: Deployment) -> None:
    """Kela's admin approves bob's second browser (his only pending device)."""

    async def go() -> None:
        async with Api.of(server) as api:
            await api.approve_browser("bob")

    run(go)


def test_the_warning_goes_under_a_consent_valid_for_longer(case: Case) -> None:
    alice, first = case.alice, case.record
    assert warning(alice) == APP_PAGE["en"]["consent_expiring"].format(
        until=shown_time(first.core.valid_until, "en"), days=3
    )
    assert alice.get_attribute("#consent-warning", "role") == "alert"
    now = int(time.time())
    core = next_version(first, recorded_at=now, recorder=case.recorder.device_id,
                        valid_until=now + 60 * 86400)  # fmt: skip
    second = sign_consent(core, case.recorder.signing)

    async def go() -> None:
        async with Api.of(case.server) as api:
            alice_api = await api.as_user("alice")
            await alice_api.post(f"/api/threads/{case.thread}/consents",
                                 {"record": b64u(second.encode())})  # fmt: skip

    run(go)
    alice.wait_for_selector("#consent-summary[data-version='2']", timeout=30_000)
    alice.wait_for_selector("#consent-warning", state="hidden")
    assert alice.text_content("#consent-summary") == APP_PAGE["en"]["consent_line"].format(
        version=2, until=shown_date(core.valid_until, "en")
    )
    assert case.dialogs == []
