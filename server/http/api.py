"""JSON API for accounts: log in and out, who am I, bearer tokens for the Python client."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

import msgspec
from aiohttp import web

from server.appkeys import AUTH, AUTHENTICATOR, CONFIG
from server.errors import ApiError
from server.http.authn import SESSION_COOKIE, cookie_name
from server.principal import Principal

routes = web.RouteTableDef()
T = TypeVar("T")


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RevokeRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


async def parse(request: web.Request, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.ValidationError as e:
        raise ApiError(400, "koppi.bad_request", str(e)) from None
    except msgspec.DecodeError:
        raise ApiError(400, "koppi.bad_request", "body is not valid JSON") from None


async def require_principal(request: web.Request) -> Principal:
    principal = await request.app[AUTHENTICATOR].authenticate(request)
    if principal is None:
        raise ApiError(401, "koppi.unauthenticated", "log in first")
    return principal


def me_json(p: Principal) -> dict[str, object]:
    return {
        "user": str(p.user_id),
        "org": str(p.org_id),
        "username": p.username,
        "roles": sorted(p.roles),
        "csrf_token": p.csrf_token or None,
    }


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    body = await parse(request, LoginRequest)
    result = await request.app[AUTH].login(body.username, body.password, request.remote or "?")
    response = web.json_response(me_json(result.principal))
    response.set_cookie(
        cookie_name(SESSION_COOKIE, request.app[CONFIG].secure_cookies),
        result.session_token,
        httponly=True,
        samesite="Strict",
        secure=request.app[CONFIG].secure_cookies,
        path="/",
        max_age=request.app[CONFIG].session_lifetime_s,
    )
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    await require_principal(request)
    name = cookie_name(SESSION_COOKIE, request.app[CONFIG].secure_cookies)
    cookie = request.cookies.get(name)
    if cookie:
        await request.app[AUTH].logout(cookie)
    response = web.json_response({"ok": True})
    response.del_cookie(
        name, path="/", secure=request.app[CONFIG].secure_cookies, httponly=True, samesite="Strict"
    )
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    return web.json_response(me_json(await require_principal(request)))


@routes.post("/api/tokens")
async def issue_token(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, TokenRequest)
    token = await request.app[AUTH].issue_token(principal, body.label)
    return web.json_response({"token": token}, status=201)


@routes.post("/api/tokens/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, RevokeRequest)
    await request.app[AUTH].revoke_token(principal, body.token)
    return web.json_response({"ok": True})


def path_uuid(request: web.Request, name: str, missing: ApiError) -> uuid.UUID:
    """A UUID from the route; a malformed one is answered like an unknown one (`missing`)."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise missing from None
