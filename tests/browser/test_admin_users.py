"""Issue: organisations, in real Chromium against a real `koppi serve`: the organisation's admin
adds a professional in the admin console, gives them a role and disables them; the professional's
open session stops working at once and their next login is refused. The admin's own row cannot
lock them out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.serving import PASSWORD, ROOT, deployment

pytestmark = pytest.mark.browser
CARL_PASSWORD = "carl's first password"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with deployment(tmp_path, {"anna": "org-admin"}, log=False) as running:
        yield running.url


def login_page(browser: Any, url: str, user: str, password: str) -> Any:
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url + "/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#status:has-text('Logged in as'), #status:has-text('Wrong')")
    return page


def test_add_a_professional_set_a_role_and_disable_them(browser: Any, server: str) -> None:
    anna = login_page(browser, server, "anna", PASSWORD)
    assert anna.text_content("#status") == "Logged in as anna."
    anna.goto(server + "/admin")
    anna.wait_for_selector("#users tr[data-username=anna][data-status=active]")
    # No lock-out from the admin's own row.
    assert anna.get_by_role("button", name="Disable anna").is_disabled()
    assert anna.get_by_label("organisation admin role of anna").is_disabled()

    username = anna.get_by_label("Username", exact=True)
    username.fill("Carl Smith")  # the form checks the server's rule before sending
    assert username.evaluate("(input) => input.validity.patternMismatch")
    username.fill("carl")
    assert not username.evaluate("(input) => input.validity.patternMismatch")
    anna.get_by_label("Initial password").fill(CARL_PASSWORD)
    new_roles = anna.locator("#new-roles")
    assert new_roles.get_by_label("professional", exact=True).is_checked()
    anna.get_by_role("button", name="Add professional").click()
    anna.wait_for_selector("#users tr[data-username=carl][data-status=active]")
    assert anna.text_content("#users-status") == "carl added."
    assert anna.locator("#users tr[data-username=carl]").get_attribute("data-roles") == (
        "professional"
    )

    carl = login_page(browser, server, "carl", CARL_PASSWORD)
    assert carl.text_content("#status") == "Logged in as carl."
    assert carl.evaluate("fetch('/api/me').then((r) => r.status)") == 200

    anna.get_by_label("consent recorder role of carl").check()
    anna.wait_for_selector(
        "#users tr[data-username=carl][data-roles='consent-recorder professional']"
    )
    assert anna.get_by_label("consent recorder role of carl").is_checked()

    anna.get_by_role("button", name="Disable carl").click()
    row = "#users tr[data-username=carl][data-status=disabled]"
    anna.wait_for_selector(row)
    assert anna.text_content(f"{row} td:nth-of-type(2)") == "disabled"
    assert anna.get_by_role("button", name="Enable carl").is_enabled()

    # carl's open session stopped working at once, and logging in again is refused.
    assert carl.evaluate("fetch('/api/me').then((r) => r.status)") == 401
    refused = login_page(browser, server, "carl", CARL_PASSWORD)
    assert refused.text_content("#status") == "Wrong username or password."

    actions = [a for a in anna.locator("#audit li").all_text_contents()
               if not a.split(" ", 1)[1].startswith("login")]  # fmt: skip
    assert [a.split(" ", 1)[1] for a in actions] == [
        "user.added carl",
        "user.roles carl consent-recorder,professional",
        "user.disabled carl",
    ]
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    anna.screenshot(path=str(shots / "admin-professionals.png"), full_page=True)
    refused.screenshot(path=str(shots / "disabled-login-refused.png"))
    for page in (anna, carl, refused):
        assert not page.errors, page.errors
        page.context.close()
