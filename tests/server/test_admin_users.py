"""An organisation's admin manages its professionals (issue: organisations): every decision both
ways (own organisation allowed, another organisation's admin and non-admins refused, no self
lock-out), a disabled user cut off at once (session, token, websocket), the audit trail, and bad
input."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from sqlalchemy import select

from server.appkeys import ENGINE
from server.db.engine import make_engine
from server.db.tables import ApiToken, Session
from server.repositories.accounts import AccountRepository
from tests.server.conftest import PASSWORD, Cast, without_logins

ROOT = Path(__file__).resolve().parents[2]


async def call(
    cast: Cast, user: str, method: str, path: str, body: Any = None, status: int = 200
) -> Any:
    token = await cast.token(user)
    r = await cast.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status == status, await r.text()
    return await r.json()


def code(body: Any) -> str:
    value: str = body["error"]["code"]
    return value


async def login_status(cast: Cast, username: str, password: str = PASSWORD) -> int:
    r = await cast.client.post("/api/login", json={"username": username, "password": password})
    cast.client.session.cookie_jar.clear()
    return r.status


async def actions(cast: Cast, admin: str = "anna") -> list[tuple[str, str]]:
    trail = await call(cast, admin, "GET", "/api/org/audit")
    return [(e["action"], e["subject"]) for e in without_logins(trail["events"])]


async def test_an_admin_adds_and_manages_a_professional_of_their_organisation(cast: Cast) -> None:
    added = await call(
        cast,
        "anna",
        "POST",
        "/api/org/users",
        {"username": "carl", "password": PASSWORD, "roles": ["professional"]},
        201,
    )
    assert added["username"] == "carl" and added["org"] == str(cast.org_a)
    assert added["roles"] == ["professional"] and added["disabled"] is False
    carl = added["user"]
    listed = await call(cast, "anna", "GET", "/api/org/users")
    assert [u["username"] for u in listed["users"]] == ["alice", "anna", "carl", "mallory"]
    assert all("password" not in key for u in listed["users"] for key in u)
    assert await login_status(cast, "carl") == 200

    roles = await call(
        cast,
        "anna",
        "PUT",
        f"/api/org/users/{carl}/roles",
        {"roles": ["professional", "consent-recorder", "professional"]},
    )
    assert roles["roles"] == ["consent-recorder", "professional"]
    disabled = await call(cast, "anna", "POST", f"/api/org/users/{carl}/disable")
    assert disabled["disabled"] is True
    again = await call(cast, "anna", "POST", f"/api/org/users/{carl}/disable")
    assert again["disabled"] is True  # idempotent, and not audited twice
    assert await login_status(cast, "carl") == 401
    enabled = await call(cast, "anna", "POST", f"/api/org/users/{carl}/enable")
    assert enabled["disabled"] is False
    assert await login_status(cast, "carl") == 200
    me = await call(cast, "carl", "GET", "/api/me")
    assert me["roles"] == ["consent-recorder", "professional"]

    assert await actions(cast) == [
        ("user.added", carl),
        ("user.roles", f"{carl} consent-recorder,professional"),
        ("user.disabled", carl),
        ("user.enabled", carl),
    ]
    assert without_logins((await call(cast, "bert", "GET", "/api/org/audit"))["events"]) == []
    trail = without_logins((await call(cast, "anna", "GET", "/api/org/audit"))["events"])
    assert {e["actor"] for e in trail} == {str(cast.users["anna"])}


async def test_the_admin_may_use_a_session_with_its_csrf_token(cast: Cast) -> None:
    me = await cast.login("anna")
    body = {"username": "carl", "password": PASSWORD}
    refused = await cast.client.post("/api/org/users", json=body)
    assert refused.status == 403 and code(await refused.json()) == "koppi.csrf"
    r = await cast.client.post(
        "/api/org/users", json=body, headers={"X-CSRF-Token": me["csrf_token"]}
    )
    assert r.status == 201
    assert (await r.json())["roles"] == ["professional"]  # the default
    carl = (await r.json())["user"]
    r = await cast.client.put(
        f"/api/org/users/{carl}/roles",
        json={"roles": ["keeper"]},
        headers={"X-CSRF-Token": me["csrf_token"]},
    )
    assert r.status == 200 and (await r.json())["roles"] == ["keeper"]


async def test_another_organisations_admin_is_refused(cast: Cast) -> None:
    alice = cast.users["alice"]
    for method, path, body in (
        ("POST", f"/api/org/users/{alice}/disable", None),
        ("POST", f"/api/org/users/{alice}/enable", None),
        ("PUT", f"/api/org/users/{alice}/roles", {"roles": ["org-admin"]}),
    ):
        refused = await call(cast, "bert", method, path, body, 403)
        assert code(refused) == "koppi.forbidden", path
    listed = await call(cast, "bert", "GET", "/api/org/users")
    assert [u["username"] for u in listed["users"]] == ["bert", "bob"]
    # bert adds to his own organisation only, whatever he would like
    added = await call(
        cast,
        "bert",
        "POST",
        "/api/org/users",
        {"username": "cecilia", "password": PASSWORD},
        201,
    )
    assert added["org"] == str(cast.org_b)
    mine = await call(cast, "anna", "GET", "/api/org/users")
    assert "cecilia" not in [u["username"] for u in mine["users"]]
    assert await login_status(cast, "alice") == 200  # untouched
    assert await actions(cast) == []


@pytest.mark.parametrize("user", ["alice", "mallory", "bob"])
async def test_non_admins_are_refused(cast: Cast, user: str) -> None:
    mallory, unknown = cast.users["mallory"], uuid.uuid4()
    assert code(await call(cast, user, "GET", "/api/org/users", status=403)) == "koppi.forbidden"
    body = {"username": "carl", "password": PASSWORD}
    assert code(await call(cast, user, "POST", "/api/org/users", body, 403)) == "koppi.forbidden"
    for target in (mallory, cast.users[user], unknown):  # not even whether an id exists
        for method, path, payload in (
            ("POST", f"/api/org/users/{target}/disable", None),
            ("POST", f"/api/org/users/{target}/enable", None),
            ("PUT", f"/api/org/users/{target}/roles", {"roles": ["org-admin"]}),
        ):
            refused = await call(cast, user, method, path, payload, 403)
            assert code(refused) == "koppi.forbidden", (method, path)
    assert await login_status(cast, "carl") == 401
    me = await call(cast, user, "GET", "/api/me")
    assert me["roles"] == ["professional"]


async def test_unauthenticated_calls_are_refused(cast: Cast) -> None:
    r = await cast.client.get("/api/org/users")
    assert r.status == 401 and code(await r.json()) == "koppi.unauthenticated"


async def test_an_admin_cannot_lock_themself_out(cast: Cast) -> None:
    anna = cast.users["anna"]
    refused = await call(cast, "anna", "POST", f"/api/org/users/{anna}/disable", status=403)
    assert code(refused) == "koppi.forbidden" and "yourself" in refused["error"]["message"]
    for roles in ([], ["professional"]):
        refused = await call(
            cast, "anna", "PUT", f"/api/org/users/{anna}/roles", {"roles": roles}, 403
        )
        assert code(refused) == "koppi.forbidden"
        assert "own org-admin role" in refused["error"]["message"]
    kept = await call(
        cast,
        "anna",
        "PUT",
        f"/api/org/users/{anna}/roles",
        {"roles": ["org-admin", "consent-recorder"]},
    )
    assert kept["roles"] == ["consent-recorder", "org-admin"] and kept["disabled"] is False
    # Another admin of the same organisation may take the role away.
    mallory = cast.users["mallory"]
    await call(cast, "anna", "PUT", f"/api/org/users/{mallory}/roles", {"roles": ["org-admin"]})
    await call(cast, "mallory", "PUT", f"/api/org/users/{anna}/roles", {"roles": ["professional"]})
    assert code(await call(cast, "anna", "GET", "/api/org/users", status=403)) == "koppi.forbidden"


async def test_a_disabled_users_session_and_token_are_refused_at_once(cast: Cast) -> None:
    alice = cast.users["alice"]
    token = await cast.token("alice")
    await cast.login("alice")  # a session cookie in the client's jar
    assert (await cast.client.get("/api/me")).status == 200
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await cast.client.get("/api/me", headers=bearer)).status == 200
    cookies = cast.client.session.cookie_jar.filter_cookies(cast.client.make_url("/"))

    await call(cast, "anna", "POST", f"/api/org/users/{alice}/disable")
    cast.client.session.cookie_jar.update_cookies(cookies)
    r = await cast.client.get("/api/me")
    assert r.status == 401 and code(await r.json()) == "koppi.unauthenticated"
    r = await cast.client.get("/api/me", headers=bearer)
    assert r.status == 401 and code(await r.json()) == "koppi.unauthenticated"
    cast.client.session.cookie_jar.clear()
    r = await cast.client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status == 401 and code(await r.json()) == "koppi.login_failed"
    async with cast.app[ENGINE].connect() as conn:
        sessions = (await conn.execute(select(Session).where(Session.user_id == alice))).all()
        tokens = (await conn.execute(select(ApiToken).where(ApiToken.user_id == alice))).all()
    assert sessions == [] and tokens and all(t.revoked for t in tokens)

    # Enabling lets alice log in again; the old session and token stay ended.
    await call(cast, "anna", "POST", f"/api/org/users/{alice}/enable")
    cast.client.session.cookie_jar.update_cookies(cookies)
    assert (await cast.client.get("/api/me")).status == 401
    assert (await cast.client.get("/api/me", headers=bearer)).status == 401
    cast.client.session.cookie_jar.clear()
    assert await login_status(cast, "alice") == 200


async def test_a_disabled_users_websockets_are_closed_with_4011(cast: Cast) -> None:
    async def connect(user: str) -> Any:
        token = await cast.token(user)
        ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
        await ws.send_json({"type": "hello", "v": 1})
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        return ws

    alice_1, alice_2, mallory = (
        await connect("alice"),
        await connect("alice"),
        await connect("mallory"),
    )
    await call(cast, "anna", "POST", f"/api/org/users/{cast.users['alice']}/disable")
    for ws in (alice_1, alice_2):
        closed = await ws.receive(timeout=5)
        assert (closed.type, closed.data, closed.extra) == (
            WSMsgType.CLOSE,
            4011,
            "koppi.user_disabled",
        )
    await mallory.send_json({"type": "ping"})
    assert await mallory.receive_json(timeout=5) == {"type": "pong"}
    await mallory.close()
    token_refused = await cast.client.get("/ws")
    assert token_refused.status == 401


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"username": "carl", "password": PASSWORD, "admin": True}, 400, "koppi.bad_request"),
        ({"username": "carl"}, 400, "koppi.bad_request"),
        ({"username": "Carl", "password": PASSWORD}, 400, "koppi.bad_request"),
        ({"username": "carl smith", "password": PASSWORD}, 400, "koppi.bad_request"),
        ({"username": "", "password": PASSWORD}, 400, "koppi.bad_request"),
        ({"username": "carl", "password": "short"}, 400, "koppi.weak_password"),
        (
            {"username": "carl", "password": PASSWORD, "roles": ["root"]},
            400,
            "koppi.unknown_role",
        ),
        (
            {"username": "carl", "password": PASSWORD, "roles": "org-admin"},
            400,
            "koppi.bad_request",
        ),
        ({"username": "alice", "password": PASSWORD}, 409, "koppi.user_exists"),
        ({"username": "bob", "password": PASSWORD}, 409, "koppi.user_exists"),  # org B's
    ],
    ids=[
        "unknown-field",
        "no-password",
        "upper-case",
        "space",
        "empty-username",
        "weak-password",
        "unknown-role",
        "roles-not-a-list",
        "duplicate",
        "duplicate-in-another-org",
    ],
)
async def test_bad_new_users_are_refused(
    cast: Cast, body: dict[str, Any], status: int, expected: str
) -> None:
    assert code(await call(cast, "anna", "POST", "/api/org/users", body, status)) == expected
    listed = await call(cast, "anna", "GET", "/api/org/users")
    assert "carl" not in [u["username"] for u in listed["users"]]
    assert await actions(cast) == []


async def test_bad_role_changes_and_unknown_users_are_refused(cast: Cast) -> None:
    alice = cast.users["alice"]
    path = f"/api/org/users/{alice}/roles"
    for body, expected in (
        ({"roles": ["professional", "superuser"]}, "koppi.unknown_role"),
        ({"roles": ["professional"], "extra": 1}, "koppi.bad_request"),
        ({}, "koppi.bad_request"),
    ):
        assert code(await call(cast, "anna", "PUT", path, body, 400)) == expected
    r = await cast.client.put(
        path, data=b"not json", headers={"Authorization": f"Bearer {await cast.token('anna')}"}
    )
    assert r.status == 400 and code(await r.json()) == "koppi.bad_request"
    for target in (str(uuid.uuid4()), "not-a-uuid"):
        for method, p, payload in (
            ("POST", f"/api/org/users/{target}/disable", None),
            ("POST", f"/api/org/users/{target}/enable", None),
            ("PUT", f"/api/org/users/{target}/roles", {"roles": []}),
        ):
            missing = await call(cast, "anna", method, p, payload, 404)
            assert code(missing) == "koppi.unknown_user", p
    me = await call(cast, "alice", "GET", "/api/me")
    assert me["roles"] == ["professional"]
    assert await actions(cast) == []


# --- the operator's CLI -----------------------------------------------------------------------


def koppi(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "--database-url", url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


async def _state(url: str, username: str) -> tuple[bool, list[str], int, list[bool]]:
    """The user's disabled flag, roles, session count and tokens' revoked flags."""
    engine = make_engine(url)
    try:
        user = await AccountRepository(engine).user_by_name(username)
        assert user is not None
        async with engine.connect() as conn:
            sessions = (await conn.execute(select(Session).where(Session.user_id == user.id))).all()
            tokens = (await conn.execute(select(ApiToken).where(ApiToken.user_id == user.id))).all()
        return user.disabled, sorted(user.roles), len(sessions), [t.revoked for t in tokens]
    finally:
        await engine.dispose()


async def _credentials(url: str, username: str) -> None:
    """A session and an API token for the user, as if they had logged in."""
    engine = make_engine(url)
    try:
        accounts = AccountRepository(engine)
        user = await accounts.user_by_name(username)
        assert user is not None
        await accounts.add_session(
            Session(
                token_hash=bytes(32),
                user_id=user.id,
                csrf_token="c",
                created_at=0,
                expires_at=2**40,
            )
        )
        await accounts.add_token(
            ApiToken(
                token_hash=bytes(31) + b"\1",
                user_id=user.id,
                label="t",
                created_at=0,
                expires_at=2**40,
                revoked=False,
            )
        )
    finally:
        await engine.dispose()


def test_the_operator_disables_enables_and_sets_roles(sqlite_url: str) -> None:
    assert koppi(sqlite_url, "db", "upgrade").returncode == 0
    assert koppi(sqlite_url, "org", "add", "Kela", "0246246-0").returncode == 0
    add = ("user", "add", "0246246-0")
    done = koppi(
        sqlite_url,
        *add,
        "alice",
        "--role",
        "professional",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr
    for args, stdin, why in (
        (("alice", "--password-stdin"), PASSWORD, "taken"),
        (("carl", "--role", "admin", "--password-stdin"), PASSWORD, "unknown role 'admin'"),
        (("carl", "--password-stdin"), "short", "at least 10 characters"),
    ):
        refused = koppi(sqlite_url, *add, *args, stdin=stdin + "\n")
        assert refused.returncode == 2 and why in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr

    roles = koppi(sqlite_url, "user", "roles", "alice", "--roles", "professional,consent-recorder")
    assert roles.returncode == 0, roles.stderr
    assert asyncio.run(_state(sqlite_url, "alice"))[1] == ["consent-recorder", "professional"]
    bad = koppi(sqlite_url, "user", "roles", "alice", "--roles", "professional,root")
    assert bad.returncode == 2 and "unknown role 'root'" in bad.stderr
    assert asyncio.run(_state(sqlite_url, "alice"))[1] == ["consent-recorder", "professional"]

    asyncio.run(_credentials(sqlite_url, "alice"))
    assert asyncio.run(_state(sqlite_url, "alice"))[2:] == (1, [False])
    disabled = koppi(sqlite_url, "user", "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr
    assert asyncio.run(_state(sqlite_url, "alice")) == (
        True,
        ["consent-recorder", "professional"],
        0,
        [True],
    )
    assert koppi(sqlite_url, "user", "enable", "alice").returncode == 0
    assert asyncio.run(_state(sqlite_url, "alice"))[0] is False
    for command in ("disable", "enable"):
        missing = koppi(sqlite_url, "user", command, "nobody")
        assert missing.returncode == 2 and "no user nobody" in missing.stderr
    missing = koppi(sqlite_url, "user", "roles", "nobody", "--roles", "professional")
    assert missing.returncode == 2 and "no user nobody" in missing.stderr
