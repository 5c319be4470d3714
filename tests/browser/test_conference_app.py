"""Issue #9, flows 2-7, in real headless Chromium against a real `koppi serve`: three
professionals of three organisations (Kela, the county, the employment services), each in their
own browser context with their own enrolled device, approved by their organisation's admin with
the organisation key held in Python.

alice (Kela, consent recorder) starts a case conference in the app, records the client's consent
covering the three organisations in the consent panel and comes back, finds bob and carol in the
directory and invites them, and approves adding their organisations (new to the thread). They
chat live: Enter sends, Shift+Enter breaks the line, each message shows its sender, organisation,
time and storage label (chosen before sending), pending until acknowledged, then delivered; hostile
text stays text. A reload brings the history back decrypted. dave (Kela) is admitted later and
reads the history the consent gives him. The consent's new version leaves the employment services
out: carol sees at once that she was removed and why, the others go on, and carol receives
nothing sent afterwards. bob exports what the county may store from the thread's export link.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crypto.clock import SeededRng
from crypto.primitives import SigningKey
from tests.browser.serving import PASSWORD, ROOT, Deployment, deployment, koppi
from tests.browser.test_export_page import Api, run

pytestmark = pytest.mark.browser

RNG = SeededRng("browser-app")
KELA, COUNTY, TE = "0246246-0", "3221308-6", "2455538-5"
KEYS = {b: SigningKey.generate(RNG) for b in (KELA, COUNTY, TE)}
ADMINS = {KELA: "anna", COUNTY: "bert", TE: "tea"}
CLIENT_REF = hashlib.sha256(b"asiakas-app").hexdigest()
HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(1)</script>"]
SHOTS = ROOT / "artifacts"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    users = {"alice": "professional", "anna": "org-admin", "dave": "professional"}
    with deployment(tmp_path, users, settings={"KOPPI_LOG_HEAD_INTERVAL_S": "1"}) as running:
        env = running.env
        koppi(env, "org", "add", "Hyvinvointialue", COUNTY)
        koppi(env, "org", "add", "TE-palvelut", TE)
        for business_id, user, role in (
            (COUNTY, "bob", "professional"),
            (COUNTY, "bert", "org-admin"),
            (TE, "carol", "professional"),
            (TE, "tea", "org-admin"),
        ):
            koppi(env, "user", "add", business_id, user, "--role", role, "--password-stdin",
                  stdin=PASSWORD + "\n")  # fmt: skip
        koppi(env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
        for business_id, key in KEYS.items():
            koppi(
                env, "org", "admit", business_id, key.public.hex(), "--root-key", running.root_key
            )
        yield running


def login(browser: Any, url: str, user: str, errors: list[str], dialogs: list[str]) -> Any:
    page = browser.new_context().new_page()
    page.on("pageerror", lambda e: errors.append(f"{user}: {e}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url + "/?lang=en")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_function("() => sessionStorage.getItem('koppi.csrf')")
    return page


def enrol(page: Any, url: str) -> None:
    page.goto(url + "/devices")
    page.click("#enrol")
    page.wait_for_selector("#device-status[data-status=pending]")


def approve(server: Deployment, user: str, business_id: str, roles: list[str]) -> None:
    """The organisation's admin certifies the device `user` enrolled in their browser."""

    async def go() -> None:
        async with Api.of(server) as api:
            admin = await api.as_user(ADMINS[business_id])
            me = await (await api.as_user(user)).get("/api/me")
            pending = (await admin.get("/api/org/devices?status=pending"))["devices"]
            (device,) = [d for d in pending if d["user"] == me["user"]]
            await api.certify(device, ADMINS[business_id], KEYS[business_id], roles)

    run(go)


def open_app(page: Any, url: str, thread: str | None = None) -> None:
    page.goto(f"{url}/app" + (f"#{thread}" if thread else ""))
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#app[data-connection=open]")


def ready_to_send(page: Any) -> None:
    page.wait_for_selector("#compose:not([disabled])", timeout=30_000)


def say(page: Any, text: str) -> None:
    """Type a message (Shift+Enter for each line break) and press Enter."""
    page.click("#compose")
    for i, line in enumerate(text.split("\n")):
        if i:
            page.keyboard.press("Shift+Enter")
        page.keyboard.type(line)
    page.keyboard.press("Enter")


def texts(page: Any) -> list[str]:
    return page.locator("#messages li[data-status=delivered] .text").all_text_contents()


def wait_texts(page: Any, want: list[str], timeout: float = 20_000) -> None:
    page.wait_for_function(
        "(want) => { const got = [...document.querySelectorAll("
        "'#messages li[data-status=delivered] .text')].map((e) => e.textContent);"
        " return JSON.stringify(got) === JSON.stringify(want); }",
        arg=want,
        timeout=timeout,
    )


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def org_hex(page: Any, name: str) -> str:
    orgs = page.evaluate("async () => (await (await fetch('/api/organisations')).json())")
    return uuid.UUID(next(o["id"] for o in orgs["organisations"] if o["name"] == name)).hex


def test_three_professionals_hold_a_case_conference(browser: Any, server: Deployment) -> None:
    url = server.url
    errors: list[str] = []
    dialogs: list[str] = []
    pages = {u: login(browser, url, u, errors, dialogs) for u in ("alice", "bob", "carol", "dave")}
    alice, bob, carol, dave = (pages[u] for u in ("alice", "bob", "carol", "dave"))
    for page in pages.values():
        enrol(page, url)
    # Not approved yet: the app says so and takes part in nothing.
    carol.goto(url + "/app")
    carol.wait_for_selector("body[data-ready=true]")
    assert carol.get_attribute("#app", "data-device") == "pending"
    assert carol.text_content("#device-state") == (
        "Your organisation's admin has not approved this device yet."
    )
    assert carol.get_attribute("#app", "data-connection") == "closed"
    carol.goto(url + "/devices")
    approve(server, "alice", KELA, ["professional", "consent-recorder"])
    approve(server, "dave", KELA, ["professional"])
    approve(server, "bob", COUNTY, ["professional"])
    approve(server, "carol", TE, ["professional"])

    # Flow 2: the login page leads to the app; alice starts the client's case conference.
    alice.goto(url + "/?lang=en")
    alice.fill("input[name=username]", "alice")
    alice.fill("input[name=password]", PASSWORD)
    alice.click("button[type=submit]")
    alice.click("#app-link")
    alice.wait_for_selector("body[data-ready=true]")
    assert alice.url.endswith("/app")
    alice.fill("#new-thread input[name=client_ref]", CLIENT_REF)
    alice.select_option("#new-thread select[name=purpose]", "rehabilitation-planning")
    alice.click("#new-thread button[type=submit]")
    alice.wait_for_function("() => location.hash.length > 1")
    thread = alice.evaluate("() => location.hash.slice(1)")
    assert uuid.UUID(thread)
    alice.wait_for_selector(f"#thread-list a[data-thread='{thread}']")
    assert alice.text_content("#confidential strong") == "Confidential"
    assert alice.text_content("#removed-reason") == "The client's consent is not recorded yet."

    # ... records the consent covering the three organisations in the consent panel, and back.
    alice.click("#consent-link")
    alice.wait_for_selector("body[data-ready=true]")
    until = (datetime.date.today() + datetime.timedelta(days=60)).isoformat()
    for name in ("Kela", "Hyvinvointialue", "TE-palvelut"):
        group = f"#record-organisations fieldset[data-org='{org_hex(alice, name)}']"
        alice.check(f"{group} input[name=org]")
        alice.check(f"{group} input[name=store]")
    alice.check("#record-categories input[value=income]")
    alice.fill("#record-consent input[name=until]", until)
    alice.click("#record-consent button[type=submit]")
    alice.wait_for_selector("#consent-panel[data-version='1']")
    alice.click("#back-to-app")
    alice.wait_for_selector("#app[data-connection=open]")
    assert alice.evaluate("() => location.hash.slice(1)") == thread
    ready_to_send(alice)  # epoch 0 opened by alice's device once the consent was in force
    alice.wait_for_selector("#consent-summary[data-version='1']")
    assert "valid until" in (alice.text_content("#consent-summary") or "")

    # ... finds bob and carol in the directory of the organisations the consent covers.
    for org, user in (("Hyvinvointialue", "bob"), ("TE-palvelut", "carol")):
        alice.select_option("#invite-org", label=org)
        alice.click(f"#directory li[data-username={user}] button")
        alice.wait_for_selector(f"#invite-status:has-text('Invited: {user}')")
    # (The test keeps dave's websockets, to close one under the app later.)
    dave.add_init_script(
        "window.__sockets = []; const Real = window.WebSocket; window.WebSocket = class extends"
        " Real { constructor(...a) { super(...a); window.__sockets.push(this); } };"
    )
    for page in (bob, carol, dave):
        open_app(page, url, thread)
    # Their organisations are new to the thread: alice approves adding each.
    for org in ("Hyvinvointialue", "TE-palvelut"):
        alice.click(f"#approvals button:has-text('{org}')", timeout=30_000)
    for page in (bob, carol):
        ready_to_send(page)
    shot(alice, "app-members.png")
    members = alice.locator("#members li").all_text_contents()
    assert any(m.startswith("bob (Hyvinvointialue)") for m in members), members
    assert any(m.startswith("carol (TE-palvelut)") for m in members), members

    # Flow 3: live, in order, for everyone; Enter sends, Shift+Enter breaks the line.
    say(alice, "Hei kaikki, aloitetaan.")
    # alice lets the county store her next message too (her own organisation is the default).
    alice.wait_for_selector("#label-choice input[value]:checked")
    county = alice.locator("#label-choice label:has-text('Hyvinvointialue') input")
    assert not county.is_checked()
    county.check()
    say(alice, "Kotihoito alkaa maanantaina.\nKaksi käyntiä päivässä.")
    wait_texts(
        bob,
        [
            "Hei kaikki, aloitetaan.",
            "Kotihoito alkaa maanantaina.\nKaksi käyntiä päivässä.",
        ],
    )
    say(bob, "Sopii, kirjaan tämän.")
    for text in HOSTILE:
        say(carol, text)
    chat = ["Hei kaikki, aloitetaan.", "Kotihoito alkaa maanantaina.\nKaksi käyntiä päivässä.",
            "Sopii, kirjaan tämän.", *HOSTILE]  # fmt: skip
    for page in (alice, bob, carol):
        wait_texts(page, chat)
    first = bob.locator("#messages li").nth(0)
    meta = first.locator(".meta").text_content() or ""
    assert meta.startswith("alice · Kela · "), meta
    assert first.locator(".label").text_content() == "May store in their own records: Kela"
    second = bob.locator("#messages li").nth(1).locator(".label").text_content() or ""
    assert set(second.split(": ", 1)[1].split(", ")) == {"Kela", "Hyvinvointialue"}
    last = alice.locator("#messages li").nth(4)
    assert (last.locator(".meta").text_content() or "").startswith("carol · TE-palvelut · ")
    mine = carol.locator("#messages li.mine")
    assert mine.count() == 2 and all(
        s == "delivered" for s in mine.evaluate_all("(xs) => xs.map((x) => x.dataset.status)")
    )
    assert (mine.nth(0).locator(".state").text_content() or "") == "delivered"
    seqs = alice.locator("#messages li").evaluate_all("(xs) => xs.map((x) => +x.dataset.seq)")
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    # Hostile text stays text: no element made of it, no script ran.
    for page in (alice, bob, carol):
        assert page.locator("#messages img, #messages script").count() == 0
    assert dialogs == []
    shot(bob, "app-chat.png")

    # A message shows at once as pending, before the server acknowledged it.
    # (The test holds bob's send frames back for 1.5 s on their way to the server.)
    bob.evaluate("() => { window.__ws = WebSocket.prototype.send; }")
    bob.evaluate(
        "() => { const real = WebSocket.prototype.send;"
        " WebSocket.prototype.send = function (d) { if (JSON.parse(d).type === 'send') {"
        " setTimeout(() => real.call(this, d), 1500); return; } return real.call(this, d); }; }"
    )
    say(bob, "Odottaa kuittausta.")
    held = "#messages li.mine[data-status={}]:has-text('Odottaa kuittausta.')"
    bob.wait_for_selector(held.format("pending"))
    assert bob.text_content("#messages li[data-status=pending] .state") == "sending…"
    bob.wait_for_selector(held.format("delivered"))
    bob.evaluate("() => { WebSocket.prototype.send = window.__ws; }")
    chat.append("Odottaa kuittausta.")

    # Flow 4: a reload brings the history back, decrypted (device keys in IndexedDB).
    alice.reload()
    alice.wait_for_selector("body[data-ready=true]")
    wait_texts(alice, chat)
    assert alice.locator("#messages li[data-status=refused]").count() == 0
    assert alice.locator("#messages li[data-status=withheld]").count() == 0
    say(alice, "Takaisin linjoilla.")
    chat.append("Takaisin linjoilla.")
    wait_texts(bob, chat)

    # Flow 5: dave (Kela) is admitted later and reads the history the consent gives him (it
    # covered Kela from the start): a member's device adds his, no approval needed (Kela is in).
    alice.select_option("#invite-org", label="Kela")
    alice.click("#directory li[data-username=dave] button")
    ready_to_send(dave)
    wait_texts(dave, chat)
    assert dave.locator("#messages li[data-status=refused]").count() == 0
    shot(dave, "app-late-joiner.png")

    # Offline and back: the connection says so, and resumes from the last seq it saw.
    dave.evaluate(
        "() => { window.__states = []; new MutationObserver(() => window.__states.push("
        "document.getElementById('app').dataset.connection)).observe(document.getElementById('app'),"
        " {attributes: true, attributeFilter: ['data-connection']}); }"
    )
    dave.context.set_offline(True)
    dave.wait_for_selector("#app[data-connection=offline]")
    assert dave.text_content("#connection-state") == "offline"
    say(alice, "Kun olit poissa.")
    chat.append("Kun olit poissa.")
    wait_texts(alice, chat)
    assert "Kun olit poissa." not in texts(dave)
    dave.context.set_offline(False)
    dave.wait_for_selector("#app[data-connection=open]")
    wait_texts(dave, chat)
    states = dave.evaluate("() => window.__states")
    assert states[0] == "offline" and states[-1] == "open" and "reconnecting" in states, states
    # A socket that closes under it: reconnecting, automatically, then open, nothing lost.
    dave.evaluate("() => { window.__states = []; window.__sockets.at(-1).close(); }")
    dave.wait_for_function("() => window.__states.includes('reconnecting')")
    dave.wait_for_selector("#app[data-connection=open]")
    say(bob, "Taas yhteydessä.")
    chat.append("Taas yhteydessä.")
    wait_texts(dave, chat)

    # Flow 6: a new consent version leaves the employment services out.
    alice.click("#consent-link")
    alice.wait_for_selector("#consent-panel[data-version='1']")
    alice.uncheck(f"#keep-organisations input[value='{org_hex(alice, 'TE-palvelut')}']")
    alice.click("#supersede-consent button[type=submit]")
    alice.wait_for_selector("#consent-panel[data-version='2']")
    carol.wait_for_selector("#removed:not([hidden])")
    assert carol.get_attribute("#removed", "data-reason") == "koppi.not_covered"
    assert carol.text_content("#removed-title") == "You were removed from this case conference"
    assert carol.text_content("#removed-reason") == (
        "The client's consent no longer covers your organisation."
    )
    assert carol.locator("#compose").is_disabled()
    carol.wait_for_selector("#consent-summary[data-version='2']")  # under which consent, now
    shot(carol, "app-removed.png")
    alice.click("#back-to-app")
    alice.wait_for_selector("#consent-summary[data-version='2']")
    ready_to_send(alice)
    say(bob, "Jatketaan ilman TE-palveluja.")
    chat.append("Jatketaan ilman TE-palveluja.")
    for page in (alice, bob, dave):
        wait_texts(page, chat, timeout=30_000)
    carol.wait_for_timeout(1500)
    assert "Jatketaan ilman TE-palveluja." not in texts(carol)
    members = bob.locator("#members li[data-admitted=false]").all_text_contents()
    assert any(m.startswith("carol (TE-palvelut)") for m in members), members

    # Flow 7: bob exports what the county may store, from the thread's export link.
    bob.click("#export-link")
    bob.wait_for_selector("body[data-ready=true]")
    bob.click("#export-run")
    bob.wait_for_selector("#export-panel[data-state=done]", timeout=30_000)
    # alice's message she let the county store, and bob's own (his label defaults to the county).
    exported = bob.locator("#export-messages li .text").all_text_contents()
    bobs = ["Sopii, kirjaan tämän.", "Odottaa kuittausta.", "Taas yhteydessä.",
            "Jatketaan ilman TE-palveluja."]  # fmt: skip
    assert exported == [chat[1], *bobs], exported
    assert not errors, errors
