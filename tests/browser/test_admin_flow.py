"""Issues: organisations, and the browser app (#9, flows 1 and 8), in real Chromium against a real
`koppi serve`: a professional enrols this browser (keys made here) and sees it waiting for
approval with the fingerprint to compare; the organisation's admin creates the organisation key in
their browser, the operator admits it with the root, the admin compares the fingerprint and
approves (the certificate is signed in the admin's browser), and the professional's page turns to
approved without a reload and connects as the device. The admin revokes it: the server closes the
device's connection with 4010 and its page says it was revoked. The admin rotates the
organisation key (the operator completes it with `koppi org rotate`), approves a new device with
the new key, and revokes that one too, cut off the same way."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crypto.identity import DeviceCert
from crypto.treehead import key_id
from tests.browser.serving import PASSWORD, ROOT, Deployment, deployment, koppi

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, {"alice": "professional", "anna": "org-admin"}) as running:
        yield running


def certificates(url: str, status: str = "approved") -> list[DeviceCert]:
    """The logged certificates of Kela's devices (approved, or revoked), read as a client would."""
    body = json.dumps({"username": "anna", "password": PASSWORD}).encode()
    request = urllib.request.Request(
        url + "/api/login", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as r:
        cookie = {"Cookie": r.headers["Set-Cookie"].split(";")[0]}

    def get(path: str) -> Any:
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=cookie)) as r:
            return json.loads(r.read())

    certs = []
    for device in get(f"/api/org/devices?status={status}")["devices"]:
        i = device["cert_log_index"]
        (entry,) = get(f"/api/log/entries?start={i}&end={i + 1}")["entries"]
        raw = base64.urlsafe_b64decode(entry["data"] + "=" * (-len(entry["data"]) % 4))
        certs.append(DeviceCert.decode(raw))
    return certs


def login(browser: Any, url: str, user: str) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#status:has-text('Logged in as')")
    return page


def navigations(page: Any) -> list[str]:
    """Every document the page loads from now on (a reload would show here)."""
    loaded: list[str] = []
    page.on("framenavigated", lambda frame: loaded.append(frame.url))
    return loaded


def enrol(page: Any, url: str) -> str:
    """Enrol this browser profile: waiting for approval, with the fingerprint to compare."""
    page.goto(url + "/devices?lang=en")
    page.wait_for_selector("#device-status[data-status=none]")
    page.click("#enrol")
    page.wait_for_selector("#device-status[data-status=pending]")
    assert "Waiting for approval" in (page.text_content("#device-status") or "")
    assert page.is_visible("#fingerprint") and not page.is_visible("#enrol")
    fingerprint = page.text_content("#fingerprint")
    assert fingerprint and len(fingerprint.split()) == 8
    return fingerprint


def cut_off(page: Any) -> None:
    """The device's own connection closed with 4010, and its page says it was revoked."""
    page.wait_for_selector("#device-connection[data-close-code='4010']", timeout=10_000)
    assert page.get_attribute("#device-status", "data-status") == "revoked"
    assert "revoked" in (page.text_content("#device-status") or "")
    assert "(code 4010)" in (page.text_content("#device-connection") or "")


def test_enrol_approve_rotate_and_revoke_devices(browser: Any, server: Deployment) -> None:
    url = server.url
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    alice = login(browser, url, "alice")
    fingerprint = enrol(alice, url)
    words = alice.text_content("#fingerprint-words")
    assert words and len(words.split()) == 8
    assert alice.text_content("#fingerprint-warning") == ""
    alice.screenshot(path=str(shots / "device-waiting.png"))
    loaded = navigations(alice)

    anna = login(browser, url, "anna")
    anna.goto(url + "/admin")
    anna.wait_for_selector("body[data-ready=true]")
    anna.click("#create-key")
    # (not wait_for_function: polling a string predicate needs eval, which our CSP forbids)
    anna.wait_for_selector("#org-key:text-matches('^[0-9a-f]{64}$')")
    org_public = anna.text_content("#org-key")
    assert org_public is not None
    # The operator admits the organisation key the admin's browser made (root-signed, logged).
    out = koppi(server.env, "org", "admit", "0246246-0", org_public, "--root-key", server.root_key)
    assert "admitted" in out
    anna.click("#refresh")
    anna.wait_for_selector(f"#pending li:has-text('{fingerprint}')")
    # The admin's browser computed the same words from the keys it is about to certify.
    assert words in anna.text_content(f"#pending li:has-text('{fingerprint}')")
    anna.screenshot(path=str(shots / "admin-pending.png"))
    # The certificate carries alice's roles as her organisation set them.
    koppi(server.env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
    anna.click(f"#pending li:has-text('{fingerprint}') button")
    # Approved without a reload; then the page connects as this device.
    alice.wait_for_selector("#device-status[data-status=approved]", timeout=10_000)
    alice.wait_for_selector("#device-connection[data-state=open]", timeout=10_000)
    assert loaded == []
    alice.screenshot(path=str(shots / "device-approved.png"))
    (cert,) = certificates(url)
    assert set(cert.roles) == {"professional", "consent-recorder"}
    assert cert.org_key_id == key_id(bytes.fromhex(org_public))
    anna.wait_for_selector(f"#approved li:has-text('{fingerprint}')")
    anna.click(f"#approved li:has-text('{fingerprint}') button")
    cut_off(alice)
    alice.screenshot(path=str(shots / "device-revoked.png"))
    # Reopened, the page knows from the server: revoked, and it does not connect again.
    alice.reload()
    alice.wait_for_selector("#device-status[data-status=revoked]")
    assert alice.get_attribute("#device-connection", "data-state") is None
    anna.click("#refresh")
    anna.wait_for_selector("#audit li:has-text('device.revoked')")
    actions = [a for a in anna.locator("#audit li").all_text_contents()
               if not a.split()[1].startswith("login")]  # fmt: skip
    assert [a.split()[1] for a in actions] == [
        "device.enrolled",
        "device.approved",
        "device.revoked",
    ]
    events_before_rotation = len(actions)
    # The admin rotates the organisation key: the new key is made and signed for in this
    # browser, the operator adds the root's signature, and new devices are certified with it.
    anna.click("#rotate-key")
    anna.wait_for_selector("#rotation-status[data-state=waiting]")
    koppi(server.env, "org", "rotate", "0246246-0", "--root-key", server.root_key)
    anna.click("#refresh")
    anna.wait_for_selector("#rotation-status:has-text('generation 1')")
    new_public = anna.text_content("#org-key")
    assert new_public and len(new_public) == 64 and new_public != org_public
    laptop = login(browser, url, "alice")  # a new browser profile: a new device
    second = enrol(laptop, url)
    anna.click("#refresh")
    anna.wait_for_selector(f"#pending li:has-text('{second}')")
    anna.click(f"#pending li:has-text('{second}') button")
    laptop.wait_for_selector("#device-connection[data-state=open]", timeout=10_000)
    (cert,) = certificates(url)
    assert cert.org_key_id == key_id(bytes.fromhex(new_public))
    # The revocation is signed with the new key, and cuts the device off as before.
    anna.wait_for_selector(f"#approved li:has-text('{second}')")
    anna.click(f"#approved li:has-text('{second}') button")
    cut_off(laptop)
    assert certificates(url) == []
    assert len(certificates(url, "revoked")) == 2
    anna.click("#refresh")
    anna.wait_for_selector("#audit li:nth-last-child(1):has-text('device.revoked')")
    actions = [a for a in anna.locator("#audit li").all_text_contents()
               if not a.split()[1].startswith("login")]  # fmt: skip
    assert [a.split()[1] for a in actions[events_before_rotation:]] == [
        "org.rotation_requested",
        "org.key_rotated",
        "device.enrolled",
        "device.approved",
        "device.revoked",
    ]
    anna.screenshot(path=str(shots / "admin-console.png"))
