"""Issue: organisations, in real Chromium against a real `koppi serve`: a professional enrols this
browser (keys made here), the organisation's admin creates the organisation key in their browser,
the operator admits it with the root, the admin compares the fingerprint and approves (the
certificate is signed in the admin's browser), the professional sees the approval, and the admin
revokes the device."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crypto.identity import DeviceCert
from tests.browser.serving import PASSWORD, ROOT, Deployment, deployment, koppi

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, {"alice": "professional", "anna": "org-admin"}) as running:
        yield running


def certified_roles(url: str) -> list[set[str]]:
    """The roles in the logged certificates of Kela's approved devices, read as a client would."""
    body = json.dumps({"username": "anna", "password": PASSWORD}).encode()
    request = urllib.request.Request(
        url + "/api/login", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as r:
        cookie = {"Cookie": r.headers["Set-Cookie"].split(";")[0]}

    def get(path: str) -> Any:
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=cookie)) as r:
            return json.loads(r.read())

    roles = []
    for device in get("/api/org/devices?status=approved")["devices"]:
        i = device["cert_log_index"]
        (entry,) = get(f"/api/log/entries?start={i}&end={i + 1}")["entries"]
        raw = base64.urlsafe_b64decode(entry["data"] + "=" * (-len(entry["data"]) % 4))
        roles.append(set(DeviceCert.decode(raw).roles))
    return roles


def login(browser: Any, url: str, user: str) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#status:has-text('Logged in as')")
    return page


def test_enrol_approve_and_revoke_a_device(browser: Any, server: Deployment) -> None:
    url = server.url
    alice = login(browser, url, "alice")
    alice.goto(url + "/devices")
    alice.click("#enrol")
    alice.wait_for_selector("#device-status[data-status=pending]")
    fingerprint = alice.text_content("#fingerprint")
    assert fingerprint and len(fingerprint.split()) == 8
    words = alice.text_content("#fingerprint-words")
    assert words and len(words.split()) == 8
    assert alice.text_content("#fingerprint-warning") == ""

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
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    anna.screenshot(path=str(shots / "admin-pending.png"))
    # The certificate carries alice's roles as her organisation set them.
    koppi(server.env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
    anna.click(f"#pending li:has-text('{fingerprint}') button")
    alice.wait_for_selector("#device-status[data-status=approved]", timeout=10_000)
    assert certified_roles(url) == [{"professional", "consent-recorder"}]
    anna.wait_for_selector(f"#approved li:has-text('{fingerprint}')")
    anna.click(f"#approved li:has-text('{fingerprint}') button")
    alice.wait_for_selector("#device-status[data-status=revoked]", timeout=10_000)
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
    laptop.goto(url + "/devices")
    laptop.click("#enrol")
    laptop.wait_for_selector("#device-status[data-status=pending]")
    second = laptop.text_content("#fingerprint")
    anna.click("#refresh")
    anna.wait_for_selector(f"#pending li:has-text('{second}')")
    anna.click(f"#pending li:has-text('{second}') button")
    laptop.wait_for_selector("#device-status[data-status=approved]", timeout=10_000)
    anna.click("#refresh")
    anna.wait_for_selector("#audit li:has-text('org.key_rotated')")
    actions = [a for a in anna.locator("#audit li").all_text_contents()
               if not a.split()[1].startswith("login")]  # fmt: skip
    assert [a.split()[1] for a in actions[events_before_rotation:]] == [
        "org.rotation_requested",
        "org.key_rotated",
        "device.enrolled",
        "device.approved",
    ]
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    anna.screenshot(path=str(shots / "admin-console.png"))
    alice.screenshot(path=str(shots / "device-revoked.png"))
