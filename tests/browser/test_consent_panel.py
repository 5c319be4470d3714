"""Issue: consent, in real Chromium against a real `koppi serve`: a professional starts a client's
thread and, from a device certified with the consent-recorder role, records the client's consent in
the thread's consent panel (two organisations, one of them admitted by law), supersedes it (that
one dropped, a shorter validity), then records its withdrawal; every version is built and signed
in the browser, the panel shows each state and the history, and the server holds versions 1, 2, 3
that the Python reference accepts. Refusals are shown as the server's codes: a device not yet
approved, an approved device without the consent-recorder role, a professional not in the thread.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crypto.consent import ConsentBook, ConsentRecord
from tests.browser.serving import ROOT, Deployment, deployment, koppi
from tests.browser.test_admin_flow import login

pytestmark = pytest.mark.browser

CLIENT_REF = hashlib.sha256(b"asiakas-panel").digest()
PROVISION = "SHL 1301/2014 41 §"
JUSTIFICATION = "The county's social worker must assess the client's need for support."


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, {"alice": "professional", "anna": "org-admin"}) as running:
        koppi(running.env, "org", "add", "Hyvinvointialue", "3221308-6")
        yield running


def enrol(page: Any, url: str) -> str:
    """Enrol this browser profile as a device; its fingerprint."""
    page.goto(url + "/devices")
    page.click("#enrol")
    page.wait_for_selector("#device-status[data-status=pending]")
    return page.text_content("#fingerprint") or ""


def approve(admin: Any, fingerprint: str) -> None:
    admin.click("#refresh")
    admin.click(f"#pending li:has-text('{fingerprint}') button")
    admin.wait_for_selector(f"#approved li:has-text('{fingerprint}')")


def start_thread(page: Any, url: str) -> str:
    csrf = page.evaluate("() => sessionStorage.getItem('koppi.csrf')")
    body = {"client_ref": CLIENT_REF.hex(), "purpose": "rehabilitation-planning"}
    r = page.request.post(url + "/api/threads", headers={"X-CSRF-Token": csrf}, data=body)
    assert r.status == 201, r.text()
    thread: str = r.json()["thread"]
    return thread


def watch(page: Any, errors: list[str]) -> Any:
    """The page, its script errors collected in `errors`."""
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def open_panel(page: Any, panel: str) -> None:
    page.goto(panel)
    page.wait_for_selector("body[data-ready=true]")


def org(name: str) -> str:
    return f"#record-organisations fieldset:has(> legend:text-is('{name}'))"


def record_first(page: Any) -> None:
    """Kela on the client's consent, may store; the county by law, may read from the start."""
    page.check(f"{org('Kela')} input[name=org]")
    page.check(f"{org('Kela')} input[name=store]")
    page.select_option(f"{org('Kela')} select[name=basis]", "statute-kela")
    county = org("Hyvinvointialue")
    page.check(f"{county} input[name=org]")
    page.check(f"{county} input[name=history]")
    page.select_option(f"{county} select[name=basis]", "statute-social-welfare")
    page.click(f"{county} summary")
    page.fill(f"{county} input[name=statute]", PROVISION)
    page.fill(f"{county} textarea[name=justification]", JUSTIFICATION)
    page.check("#record-categories input[value=health]")
    page.check("#record-categories input[value=income]")
    page.fill("#record-consent input[name=until]", "2030-12-31")
    page.select_option("#record-consent select[name=obtained]", "written")
    page.click("#record-consent button[type=submit]")


def covered(page: Any) -> list[list[str]]:
    """The rows of the covered organisations' table, cell by cell, sorted."""
    rows = page.locator("#consent-organisations tbody tr")
    return sorted(rows.nth(i).locator("td").all_text_contents() for i in range(rows.count()))


def history(page: Any) -> list[str]:
    items = page.locator("#consent-history li").all_text_contents()
    return [item.split(": ", 1)[1] for item in items]


def test_record_supersede_and_withdraw_a_consent(browser: Any, server: Deployment) -> None:
    url = server.url
    errors: list[str] = []
    alice = watch(login(browser, url, "alice"), errors)
    first_device = enrol(alice, url)
    thread = start_thread(alice, url)
    panel = f"{url}/threads/{thread}/consent"

    # Not a member of the thread: the panel shows nothing but the server's refusal.
    anna = watch(login(browser, url, "anna"), errors)
    open_panel(anna, panel)
    assert (anna.text_content("#consent-status") or "").startswith("koppi.not_member: ")

    open_panel(alice, panel)
    assert "No consent recorded yet" in (alice.text_content("#consent-status") or "")
    # A device the organisation has not approved yet: refused.
    record_first(alice)
    alice.wait_for_selector("#consent-outcome:text-matches('^koppi.forbidden: ')")

    # The admin creates the organisation key, the operator admits it, the admin approves alice's
    # device with the roles she has: professional only, so the server refuses her consent.
    anna.goto(url + "/admin")
    anna.wait_for_selector("body[data-ready=true]")
    anna.click("#create-key")
    anna.wait_for_selector("#org-key:text-matches('^[0-9a-f]{64}$')")
    koppi(server.env, "org", "admit", "0246246-0", anna.text_content("#org-key") or "",
          "--root-key", server.root_key)  # fmt: skip
    approve(anna, first_device)
    open_panel(alice, panel)
    record_first(alice)
    alice.wait_for_selector("#consent-outcome:text-matches('^koppi.not_consent_recorder: ')")
    assert alice.get_attribute("#consent-panel", "data-version") == "0"

    # Her organisation gives her the consent-recorder role; her next device is certified with it.
    koppi(server.env, "user", "roles", "alice", "--roles", "professional,consent-recorder")
    laptop = watch(login(browser, url, "alice"), errors)
    approve(anna, enrol(laptop, url))
    open_panel(laptop, panel)
    record_first(laptop)
    laptop.wait_for_selector("#consent-panel[data-version='1']")
    assert laptop.text_content("#consent-outcome") == "Consent recorded."
    assert laptop.text_content("#consent-status") == "In force (version 1)"
    county = ["Hyvinvointialue", "every role", "no", "from the start", "statute-social-welfare",
              f"by law (exception): {PROVISION}"]  # fmt: skip
    kela = ["Kela", "every role", "yes", "from admission", "statute-kela", "the client's consent"]
    assert covered(laptop) == [county, kela]
    assert laptop.locator("#consent-exceptions li").all_text_contents() == [
        f"Hyvinvointialue: {PROVISION}. Justification: {JUSTIFICATION}"
    ]
    details = laptop.text_content("#consent-details") or ""
    assert "31.12.2030" in details and "in writing" in details and "health, income" in details
    assert "planning of rehabilitation" in details  # the purpose in words, as /app shows it
    assert history(laptop) == ["given (version 1)"]

    # A new version without the county, valid for a shorter time.
    laptop.uncheck("#keep-organisations label:has-text('Hyvinvointialue') input")
    laptop.fill("#supersede-consent input[name=until]", "2029-06-30")
    laptop.click("#supersede-consent button[type=submit]")
    laptop.wait_for_selector("#consent-panel[data-version='2']")
    assert laptop.text_content("#consent-status") == "In force (version 2)"
    assert covered(laptop) == [kela]
    assert laptop.locator("#consent-exceptions li").all_text_contents() == [
        "None: the client's consent covers every organisation."
    ]
    assert "30.6.2029" in (laptop.text_content("#consent-details") or "")
    assert history(laptop) == [
        "given (version 1)", "replaced by a new version (version 1)", "given (version 2)",
    ]  # fmt: skip

    # The client withdraws it by phone (recorded from the keyboard alone).
    laptop.focus("#revoke-consent select[name=channel]")
    laptop.keyboard.press("ArrowDown")  # in person -> by phone
    laptop.keyboard.press("Tab")
    laptop.keyboard.press("Enter")
    laptop.wait_for_selector("#consent-panel[data-state=revoked]")
    assert laptop.text_content("#consent-status") == "Withdrawn (version 3)"
    assert "Withdrawnby phone" in (laptop.text_content("#consent-details") or "")
    assert history(laptop) == [
        "given (version 1)", "replaced by a new version (version 1)", "given (version 2)",
        "replaced by a new version (version 2)", "withdrawn (version 3)",
    ]  # fmt: skip
    assert laptop.locator("#revoke-consent").is_hidden()
    assert laptop.locator("#record-consent").is_visible()  # a new consent may now be recorded

    # The server holds the three versions the browser signed; the Python reference accepts them.
    listed = laptop.request.get(f"{url}/api/threads/{thread}/consents").json()["consents"]
    assert [c["version"] for c in listed] == [1, 2, 3]
    records = [ConsentRecord.decode(base64.urlsafe_b64decode(c["record"] + "==")) for c in listed]
    ConsentBook().accept_all(records)  # one chain: each version names the one before
    v1, v2, v3 = (r.core for r in records)
    assert (v1.client_ref, v1.purpose, v1.data_categories) == (
        CLIENT_REF, "rehabilitation-planning", frozenset({"health", "income"}),
    )  # fmt: skip
    by_law = next(o for o in v1.organisations if o.statute)
    assert (by_law.statute, by_law.justification, by_law.full_history, by_law.may_store) == (
        PROVISION, JUSTIFICATION, True, False,
    )  # fmt: skip
    assert len(v2.organisations) == 1 and v2.valid_until < v1.valid_until
    assert (v3.status, v3.revocation_channel) == ("revoked", "phone")
    receipt = laptop.request.get(url + (laptop.get_attribute("#receipt-en", "href") or ""))
    assert receipt.status == 200 and "withdrawn" in receipt.text()
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    laptop.screenshot(path=str(shots / "consent-panel.png"), full_page=True)
    assert not errors, errors
