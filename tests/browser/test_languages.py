"""Issue #9, flow 9, in real Chromium against a real `koppi serve`: on every page the header's
switch changes the interface between Finnish, Swedish and English (the words the template prints
and those the page's module shows), and the choice holds on the next pages without asking again.
The header's nav marks the page one is on; the admin page tells a professional it is not theirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.page_text import ADMIN_PAGE, CONSENT_PAGE, DEVICES_PAGE, LOGIN_PAGE
from tests.browser.serving import PASSWORD, ROOT, Deployment, deployment
from tests.browser.test_consent_panel import start_thread

pytestmark = pytest.mark.browser
SHOTS = ROOT / "artifacts"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, {"alice": "professional", "anna": "org-admin"}) as running:
        yield running


LANGUAGE_CODES = {"suomeksi": "fi", "på svenska": "sv", "in English": "en"}


def switch(page: Any, language: str) -> None:
    """Choose a language with the header's switch, as a user would; wait for the page in it."""
    page.locator("header nav.languages").get_by_role("link", name=language).click()
    page.wait_for_selector(f"html[lang={LANGUAGE_CODES[language]}]")
    page.wait_for_selector("body[data-ready=true], #login")


def heading(page: Any) -> str:
    return page.text_content("main h1") or ""


def current_page(page: Any) -> list[str]:
    return page.locator("header nav.pages a[aria-current=page]").all_text_contents()


def test_every_page_switches_language_and_keeps_the_choice(
    browser: Any, server: Deployment
) -> None:
    url = server.url
    SHOTS.mkdir(exist_ok=True)
    errors: list[str] = []
    context = browser.new_context(locale="en-GB")
    alice = context.new_page()
    alice.on("pageerror", lambda e: errors.append(str(e)))

    # The login page: the browser's language first, then Swedish from the switch.
    alice.goto(url + "/")
    assert alice.get_attribute("html", "lang") == "en" and heading(alice) == "Log in"
    switch(alice, "på svenska")
    assert alice.get_attribute("html", "lang") == "sv"
    assert heading(alice) == LOGIN_PAGE["sv"]["title"]
    alice.get_by_label("Användarnamn").fill("alice")
    alice.get_by_label("Lösenord").fill(PASSWORD)
    alice.get_by_role("button", name="Logga in").click()
    alice.wait_for_selector("#status:has-text('Du är inloggad som alice.')")
    to_app = alice.get_by_role("link", name=LOGIN_PAGE["sv"]["to_app"])
    assert to_app.get_attribute("href") == "/app"
    assert alice.evaluate("document.activeElement.id") == "app-link"
    alice.screenshot(path=str(SHOTS / "lang-login-sv.png"))

    # This device: still Swedish without asking; the module's words too. Then Finnish.
    alice.get_by_role("link", name="Den här enheten").click()
    alice.wait_for_selector("#device-status[data-status=none]")
    assert heading(alice) == "Den här enheten" and current_page(alice) == ["Den här enheten"]
    assert alice.text_content("#device-status") == DEVICES_PAGE["sv"]["not_enrolled"]
    switch(alice, "suomeksi")
    assert heading(alice) == "Tämä laite" and current_page(alice) == ["Tämä laite"]
    alice.get_by_role("button", name="Ota tämä selain käyttöön laitteena").click()
    alice.wait_for_selector("#device-status[data-status=pending]")
    assert (alice.text_content("#device-status") or "").startswith("Odottaa hyväksyntää")
    alice.screenshot(path=str(SHOTS / "lang-device-fi.png"))

    # The admin page in Finnish refuses a professional in Finnish; English from the switch.
    alice.get_by_role("link", name="Ylläpito").click()
    alice.wait_for_selector("body[data-ready=true]")
    assert heading(alice) == ADMIN_PAGE["fi"]["title"] and current_page(alice) == ["Ylläpito"]
    assert alice.is_visible("#admin-refused") and alice.is_hidden("#admin-controls")
    assert alice.text_content("#admin-refused") == ADMIN_PAGE["fi"]["not_admin"]
    switch(alice, "in English")
    assert alice.text_content("#admin-refused") == ADMIN_PAGE["en"]["not_admin"]
    assert alice.is_hidden("#admin-controls")

    # The consent panel: English kept, its module's words included; Swedish from the switch.
    thread = start_thread(alice, url)
    alice.goto(f"{url}/threads/{thread}/consent")
    alice.wait_for_selector("body[data-ready=true]")
    assert heading(alice) == "Consent" and current_page(alice) == []
    assert alice.text_content("#consent-status") == CONSENT_PAGE["en"]["no_consent"]
    switch(alice, "på svenska")
    assert heading(alice) == "Samtycke"
    assert alice.text_content("#consent-status") == CONSENT_PAGE["sv"]["no_consent"]
    assert (
        alice.locator("#record-consent legend").first.text_content()
        == (CONSENT_PAGE["sv"]["record_legend"])
    )
    assert alice.get_by_label("Nämns i detta samtycke").count() == 1  # the module's form, too
    alice.screenshot(path=str(SHOTS / "lang-consent-sv.png"), full_page=True)

    # Another browser, another choice: the organisation admin's console in Swedish.
    anna = browser.new_context(locale="fi-FI").new_page()
    anna.on("pageerror", lambda e: errors.append(str(e)))
    anna.goto(url + "/")
    assert heading(anna) == "Kirjaudu sisään"
    anna.get_by_label("Käyttäjätunnus").fill("anna")
    anna.get_by_label("Salasana").fill(PASSWORD)
    anna.get_by_role("button", name="Kirjaudu").click()
    anna.wait_for_selector("#status:has-text('anna')")
    anna.goto(url + "/admin?lang=sv")
    anna.wait_for_selector("#users tr[data-username=alice]")
    assert heading(anna) == "Organisationens administration"
    assert anna.get_by_label("yrkesperson, alice").is_checked()
    assert anna.get_by_role("button", name="Inaktivera alice").is_enabled()
    assert anna.text_content("#users tr[data-username=alice] td:nth-of-type(2)") == "aktiv"
    anna.screenshot(path=str(SHOTS / "lang-admin-sv.png"), full_page=True)
    # alice's choice is hers alone: her next page is still in Swedish.
    alice.goto(url + "/devices")
    assert heading(alice) == "Den här enheten"
    assert not errors, errors
    context.close()
    anna.context.close()
