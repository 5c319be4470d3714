"""An organisation admin's professionals (issue: organisations): thin handlers over `UserService`,
which checks every action against the admin's organisation. Password hashes never leave here."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from aiohttp import web

from crypto.identity import ROLE_PROFESSIONAL
from server.appkeys import USERS
from server.db.tables import User
from server.errors import ApiError
from server.http.api import parse, path_uuid, require_principal

routes = web.RouteTableDef()
Role = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Roles = Annotated[list[Role], msgspec.Meta(max_length=16)]
# Lower case only: a login name that differs from another only in case would confuse people.
Username = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._@-]{0,99}$")]


def _professional() -> list[str]:
    return [ROLE_PROFESSIONAL]


class AddUserRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    roles: Roles = msgspec.field(default_factory=_professional)


class RolesRequest(msgspec.Struct, forbid_unknown_fields=True):
    roles: Roles


def user_json(u: User) -> dict[str, object]:
    return {
        "user": str(u.id),
        "org": str(u.org_id),
        "username": u.username,
        "roles": sorted(u.roles),
        "disabled": u.disabled,
        "created_at": u.created_at,
    }


def _user_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "user_id", ApiError(404, "koppi.unknown_user", "no such user"))


@routes.get("/api/org/users")
async def users(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    found = await request.app[USERS].users(principal)
    return web.json_response({"users": [user_json(u) for u in found]})


@routes.post("/api/org/users")
async def add(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, AddUserRequest)
    user = await request.app[USERS].add(principal, body.username, body.password, body.roles)
    return web.json_response(user_json(user), status=201)


@routes.post("/api/org/users/{user_id}/disable")
async def disable(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    return web.json_response(
        user_json(await request.app[USERS].disable(principal, _user_id(request)))
    )


@routes.post("/api/org/users/{user_id}/enable")
async def enable(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    return web.json_response(
        user_json(await request.app[USERS].enable(principal, _user_id(request)))
    )


@routes.put("/api/org/users/{user_id}/roles")
async def roles(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, RolesRequest)
    user = await request.app[USERS].set_roles(principal, _user_id(request), body.roles)
    return web.json_response(user_json(user))
