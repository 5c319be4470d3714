"""Issue: organisations, in real Chromium against a real `koppi serve`: a professional enrols this
browser (keys made here), the organisation's admin creates the organisation key in their browser,
the operator admits it with the root, the admin compares the fingerprint and approves (the
certificate is signed in the admin's browser), the professional sees the approval, and the admin
revokes the device."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"


def koppi(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "KOPPI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'koppi.sqlite3'}",
        "KOPPI_LOG_KEY_FILE": str(tmp_path / "log.key"),
        "KOPPI_LOG_KEY_PASSPHRASE": "log passphrase",
        "KOPPI_ROOT_KEY_PASSPHRASE": "root passphrase",
    }
    koppi(env, "db", "upgrade")
    koppi(env, "org", "add", "Kela", "0246246-0")
    koppi(
        env,
        "user",
        "add",
        "0246246-0",
        "alice",
        "--role",
        "professional",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    koppi(
        env,
        "user",
        "add",
        "0246246-0",
        "anna",
        "--role",
        "org-admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    koppi(env, "log", "init", str(tmp_path / "log.key"))
    koppi(env, "root", "init", str(tmp_path / "root.key"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield {"url": url, "env": env, "root_key": str(tmp_path / "root.key")}
    finally:
        proc.terminate()
        proc.wait(10)


def login(browser: Any, url: str, user: str) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#status:has-text('Logged in as')")
    return page


def test_enrol_approve_and_revoke_a_device(browser: Any, server: dict[str, Any]) -> None:
    url = server["url"]
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
    anna.click("#create-key")
    anna.wait_for_function("document.getElementById('org-key').textContent.length === 64")
    org_public = anna.text_content("#org-key")
    assert org_public is not None
    # The operator admits the organisation key the admin's browser made (root-signed, logged).
    out = koppi(
        server["env"], "org", "admit", "0246246-0", org_public, "--root-key", server["root_key"]
    )
    assert "admitted" in out
    anna.click("#refresh")
    anna.wait_for_selector(f"#pending li:has-text('{fingerprint}')")
    # The admin's browser computed the same words from the keys it is about to certify.
    assert words in anna.text_content(f"#pending li:has-text('{fingerprint}')")
    shots = ROOT / "artifacts"
    shots.mkdir(exist_ok=True)
    anna.screenshot(path=str(shots / "admin-pending.png"))
    anna.click(f"#pending li:has-text('{fingerprint}') button")
    alice.wait_for_selector("#device-status[data-status=approved]", timeout=10_000)
    anna.wait_for_selector(f"#approved li:has-text('{fingerprint}')")
    anna.click(f"#approved li:has-text('{fingerprint}') button")
    alice.wait_for_selector("#device-status[data-status=revoked]", timeout=10_000)
    anna.click("#refresh")
    anna.wait_for_selector("#audit li:has-text('device.revoked')")
    actions = anna.locator("#audit li").all_text_contents()
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
    koppi(server["env"], "org", "rotate", "0246246-0", "--root-key", server["root_key"])
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
    actions = anna.locator("#audit li").all_text_contents()
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
