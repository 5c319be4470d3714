"""The session and language cookies: HttpOnly, SameSite=Strict, for the whole site; behind TLS
(`secure_cookies`) also Secure and `__Host-` prefixed, and only that name is read then."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.server.conftest import PASSWORD, Cast


def set_cookie(r: ClientResponse) -> dict[str, Any]:
    """The one cookie the response sets: its name, value and attributes (lower-cased)."""
    (header,) = r.headers.getall("Set-Cookie")
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    ((name, morsel),) = jar.items()
    flags = {part.strip().lower() for part in header.split(";")[1:]}
    return {
        "name": name,
        "value": morsel.value,
        "path": morsel["path"],
        "domain": morsel["domain"],
        "samesite": morsel["samesite"],
        "httponly": "httponly" in flags,
        "secure": "secure" in flags,
    }


async def login(cast: Cast) -> dict[str, Any]:
    r = await cast.client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status == 200
    return set_cookie(r)


async def test_by_default_the_cookies_are_httponly_and_strict_but_not_secure(cast: Cast) -> None:
    session = await login(cast)
    assert session["name"] == "koppi_session"
    assert session | {"value": ""} == {
        "name": "koppi_session",
        "value": "",
        "path": "/",
        "domain": "",
        "samesite": "Strict",
        "httponly": True,
        "secure": False,
    }
    lang = set_cookie(await cast.client.get("/devices?lang=sv"))
    assert lang == {
        "name": "koppi_lang",
        "value": "sv",
        "path": "/",
        "domain": "",
        "samesite": "Strict",
        "httponly": True,
        "secure": False,
    }


@pytest.mark.parametrize("config_overrides", [{"secure_cookies": True}])
async def test_behind_tls_the_cookies_are_secure_host_cookies(cast: Cast) -> None:
    session = await login(cast)
    assert session["name"] == "__Host-koppi_session"
    assert session["secure"] and session["httponly"] and session["samesite"] == "Strict"
    assert session["path"] == "/" and session["domain"] == ""
    # A plain-HTTP client does not send a Secure cookie back by itself: send it as a browser would.
    as_host = {"Cookie": f"__Host-koppi_session={session['value']}"}
    assert (await cast.client.get("/api/me", headers=as_host)).status == 200
    # The unprefixed name, which any sibling host or plain page could set, is not read.
    plain = {"Cookie": f"koppi_session={session['value']}"}
    assert (await cast.client.get("/api/me", headers=plain)).status == 401

    lang = set_cookie(await cast.client.get("/devices?lang=sv"))
    assert lang["name"] == "__Host-koppi_lang" and lang["secure"] and lang["httponly"]
    assert lang["path"] == "/" and lang["domain"] == "" and lang["samesite"] == "Strict"
    body = await (
        await cast.client.get("/devices", headers={"Cookie": "__Host-koppi_lang=sv"})
    ).text()
    assert '<html lang="sv">' in body
    body = await (await cast.client.get("/devices", headers={"Cookie": "koppi_lang=sv"})).text()
    assert '<html lang="fi">' in body

    r = await cast.client.post(
        "/api/logout", headers=as_host | {"X-CSRF-Token": await token(cast, as_host)}
    )
    assert r.status == 200
    gone = set_cookie(r)
    assert gone["name"] == "__Host-koppi_session" and gone["value"] == "" and gone["secure"]
    assert (await cast.client.get("/api/me", headers=as_host)).status == 401


async def token(cast: Cast, headers: dict[str, str]) -> str:
    me = await (await cast.client.get("/api/me", headers=headers)).json()
    csrf: str = me["csrf_token"]
    return csrf
