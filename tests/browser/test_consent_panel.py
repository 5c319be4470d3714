"""Issue: consent, in real Chromium against a real `koppi serve`: a professional starts a client's
thread and, from a device certified with the consent-recorder role, records the client's consent in
the thread's consent panel, supersedes it (one organisation dropped), then records its withdrawal;
every version is built and signed in the browser, and the panel shows each state and the history.
A device the organisation has not approved is refused, and the panel says so."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.serving import ROOT, Deployment, deployment, koppi
from tests.browser.test_admin_flow import login

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, {"alice": "professional", "anna": "org-admin"}) as running:
        koppi(running.env, "org", "add", "Hyvinvointialue", "3221308-6")
        yield running


def start_thread(page: Any, url: str) -> str:
    csrf = page.evaluate("() => sessionStorage.getItem('koppi.csrf')")
    ref = hashlib.sha256(b"asiakas-panel").hexdigest()
    body = {"client_ref": ref, "purpose": "rehabilitation-planning"}
    r = page.request.post(url + "/api/threads", headers={"X-CSRF-Token": csrf}, data=body)
    assert r.status == 201, r.text()
    thread: str = r.json()["thread"]
    return thread


def record_first(page: Any, until: str) -> None:
    page.check("#record-organisations label:has-text('Kela') input[name=org]")
    page.check("#record-organisations div:has-text('Kela') input[name=store]")
    page.check("#record-organisations label:has-text('Hyvinvointialue') input[name=org]")
    page.check("#record-organisations div:has-text('Hyvinvointialue') input[name=history]")
    page.check("#record-categories input[value=health]")
    page.fill("#record-consent input[name=until]", until)
    page.click("#record-consent button[type=submit]")


def test_record_supersede_and_withdraw_a_consent(browser: Any, server: Deployment) -> None:
    url = server.url
    alice = login(browser, url, "alice")
    alice.goto(url + "/devices")
    alice.click("#enrol")
    alice.wait_for_selector("#device-status[data-status=pending]")
    thread = start_thread(alice, url)
    panel = f"{url}/threads/{thread}/consent"
    alice.goto(panel)
    alice.wait_for_selector("body[data-ready=true]")
    assert "No consent recorded yet" in (alice.text_content("#consent-status") or "")
    # Not yet approved by the organisation: the server refuses, and the panel says why.
    record_first(alice, "2030-12-31")
    alice.wait_for_selector("#consent-outcome:has-text('koppi.forbidden')")

    # The admin creates the organisation key, the operator admits it, the admin approves alice's
    # device with the roles her organisation gave her (consent-recorder among them).
    anna = login(browser, url, "anna")
    anna.goto(url + "/admin")
    anna.wait_for_selector("body[data-ready=true]")
    anna.click("#create-key")
    anna.wait_for_selector("#org-key:text-matches('^[0-9a-f]{64}$')")
    koppi(server.env, "org", "admit", "0246246-0", anna.text_content("#org-key") or "",
          "--root-key", server.root_key)  # fmt: skip
    koppi(server.env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
    anna.click("#refresh")
    anna.wait_for_selector("#pending li button")
    anna.click("#pending li button")
    anna.wait_for_selector("#approved li")

    alice.goto(panel)
    alice.wait_for_selector("body[data-ready=true]")
    record_first(alice, "2030-12-31")
    alice.wait_for_selector("#consent-panel[data-version='1']")
    assert alice.text_content("#consent-status") == "In force (version 1)"
    rows = alice.locator("#consent-organisations tbody tr").all_text_contents()
    assert len(rows) == 2 and any("Kela" in r and "yes" in r for r in rows)
    assert any("Hyvinvointialue" in r and "no" in r and "from the start" in r for r in rows)
    assert any("Kela" in r and "from admission" in r for r in rows)
    assert "31.12.2030" in (alice.text_content("#consent-details") or "")

    # A new version without the county.
    alice.uncheck("#keep-organisations label:has-text('Hyvinvointialue') input")
    alice.click("#supersede-consent button[type=submit]")
    alice.wait_for_selector("#consent-panel[data-version='2']")
    assert alice.locator("#consent-organisations tbody tr").count() == 1
    history = alice.locator("#consent-history li").all_text_contents()
    assert [h.split(": ", 1)[1] for h in history] == [
        "given (version 1)", "replaced by a new version (version 1)", "given (version 2)",
    ]  # fmt: skip

    # The client withdraws it by phone.
    alice.select_option("#revoke-consent select[name=channel]", "phone")
    alice.click("#revoke-consent button[type=submit]")
    alice.wait_for_selector("#consent-panel[data-state=revoked]")
    assert alice.text_content("#consent-status") == "Withdrawn (version 3)"
    assert alice.locator("#revoke-consent").is_hidden()
    assert alice.locator("#record-consent").is_visible()  # a new consent may now be recorded
    listed = alice.request.get(f"{url}/api/threads/{thread}/consents").json()["consents"]
    assert [c["version"] for c in listed] == [1, 2, 3]
    receipt = alice.request.get(url + (alice.get_attribute("#receipt-en", "href") or ""))
    assert receipt.status == 200 and "withdrawn" in receipt.text()
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    alice.screenshot(path=str(shots / "consent-panel.png"), full_page=True)
