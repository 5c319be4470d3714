"""Login, sessions, CSRF, bearer tokens and the login rate limit, each allowed and refused."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from server.appkeys import ENGINE
from server.repositories.devices import DeviceRepository
from tests.server.conftest import PASSWORD, Cast


async def test_login_with_the_right_password_opens_a_session(cast: Cast) -> None:
    body = await cast.login("alice")
    assert body["username"] == "alice" and body["csrf_token"]
    r = await cast.client.get("/api/me")
    assert r.status == 200 and (await r.json())["user"] == str(cast.users["alice"])


async def test_session_cookie_is_httponly_and_samesite_strict(cast: Cast) -> None:
    r = await cast.client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_wrong_password_and_unknown_user_look_the_same(cast: Cast) -> None:
    wrong = await cast.client.post(
        "/api/login", json={"username": "alice", "password": "nope-nope-nope"}
    )
    unknown = await cast.client.post(
        "/api/login", json={"username": "zed", "password": "nope-nope-nope"}
    )
    assert wrong.status == unknown.status == 401
    assert (
        await wrong.json()
        == await unknown.json()
        == {"error": {"code": "koppi.login_failed", "message": "wrong username or password"}}
    )


async def test_me_without_credentials_is_refused(cast: Cast) -> None:
    r = await cast.client.get("/api/me")
    assert r.status == 401 and (await r.json())["error"]["code"] == "koppi.unauthenticated"


async def test_login_is_rate_limited_and_recovers_after_the_window(cast: Cast) -> None:
    for _ in range(5):
        r = await cast.client.post(
            "/api/login", json={"username": "alice", "password": "bad-bad-bad"}
        )
        assert r.status == 401
    r = await cast.client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status == 429 and (await r.json())["error"]["code"] == "koppi.rate_limited"
    cast.clock.advance(301)
    r = await cast.client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status == 200


async def test_login_must_be_json(cast: Cast) -> None:
    r = await cast.client.post("/api/login", data={"username": "alice", "password": PASSWORD})
    assert r.status == 415


@pytest.mark.parametrize("header", [None, "wrong-token"], ids=["missing", "wrong"])
async def test_state_change_by_cookie_without_the_csrf_token_is_refused(
    cast: Cast, header: str | None
) -> None:
    await cast.login("alice")
    headers = {"X-CSRF-Token": header} if header else {}
    r = await cast.client.post("/api/tokens", json={"label": "x"}, headers=headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.csrf"


async def test_state_change_by_cookie_with_the_csrf_token_is_allowed(cast: Cast) -> None:
    body = await cast.login("alice")
    r = await cast.client.post("/api/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status == 200
    assert (await cast.client.get("/api/me")).status == 401


async def test_bearer_token_authenticates_and_needs_no_csrf(cast: Cast) -> None:
    token = await cast.token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    assert (await cast.client.get("/api/me", headers=auth)).status == 200
    r = await cast.client.post("/api/tokens", json={"label": "second"}, headers=auth)
    assert r.status == 201


async def test_revoked_or_expired_bearer_token_is_refused(cast: Cast) -> None:
    token = await cast.token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    other = (
        await (await cast.client.post("/api/tokens", json={"label": "b"}, headers=auth)).json()
    )["token"]
    r = await cast.client.post("/api/tokens/revoke", json={"token": token}, headers=auth)
    assert r.status == 200
    assert (await cast.client.get("/api/me", headers=auth)).status == 401
    other_auth = {"Authorization": f"Bearer {other}"}
    assert (await cast.client.get("/api/me", headers=other_auth)).status == 200
    cast.clock.advance(91 * 24 * 3600)
    assert (await cast.client.get("/api/me", headers=other_auth)).status == 401


async def test_a_token_of_someone_else_cannot_be_revoked(cast: Cast) -> None:
    alice = await cast.token("alice")
    bob = await cast.token("bob")
    r = await cast.client.post(
        "/api/tokens/revoke", json={"token": alice}, headers={"Authorization": f"Bearer {bob}"}
    )
    assert r.status == 404
    assert (
        await cast.client.get("/api/me", headers={"Authorization": f"Bearer {alice}"})
    ).status == 200


async def test_session_expires(cast: Cast) -> None:
    await cast.login("alice")
    cast.clock.advance(12 * 3600 + 1)
    assert (await cast.client.get("/api/me")).status == 401


async def test_logs_never_hold_the_password_or_session_token(cast: Cast) -> None:
    with capture_logs() as logs:
        r = await cast.client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        await cast.client.post("/api/login", json={"username": "alice", "password": "wrong-wrong"})
    session = r.cookies["koppi_session"].value
    dumped = repr(logs)
    assert PASSWORD not in dumped and session not in dumped


async def test_security_headers_on_pages(cast: Cast) -> None:
    r = await cast.client.get("/")
    assert r.status == 200
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert '<form id="login"' in await r.text()


async def test_logins_are_in_the_organisations_audit_trail(cast: Cast) -> None:
    await cast.login("alice")
    r = await cast.client.post("/api/login", json={"username": "alice", "password": "wrong one!"})
    assert r.status == 401
    r = await cast.client.post("/api/login", json={"username": "nobody", "password": "wrong one!"})
    assert r.status == 401
    trail = await DeviceRepository(cast.app[ENGINE]).audit_trail(cast.org_a)
    logins = [(e.action, e.actor) for e in trail if e.action.startswith("login")]
    assert logins == [("login", cast.users["alice"]), ("login.refused", cast.users["alice"])]
