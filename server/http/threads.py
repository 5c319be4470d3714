"""Threads over HTTP: start one, invite a professional (thin handlers over `ThreadService`)."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from aiohttp import web

from server.appkeys import THREADS
from server.http.api import parse, path_uuid, require_principal
from server.services.admission import NOT_MEMBER

routes = web.RouteTableDef()


class StartBody(msgspec.Struct, forbid_unknown_fields=True):
    client_ref: Annotated[str, msgspec.Meta(max_length=64)]
    purpose: Annotated[str, msgspec.Meta(max_length=64)]


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    user: uuid.UUID


@routes.post("/api/threads")
async def start(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, StartBody)
    thread_id = await request.app[THREADS].start(principal, body.client_ref, body.purpose)
    return web.json_response({"thread": str(thread_id)}, status=201)


@routes.post("/api/threads/{thread_id}/members")
async def invite(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    body = await parse(request, InviteBody)
    added = await request.app[THREADS].invite(principal, thread_id, body.user)
    return web.json_response({"user": str(body.user)}, status=201 if added else 200)


@routes.get("/api/organisations")
async def organisations(request: web.Request) -> web.Response:
    await require_principal(request)
    orgs = await request.app[THREADS].organisations()
    return web.json_response(
        {
            "organisations": [
                {"id": str(o.id), "name": o.name, "business_id": o.business_id} for o in orgs
            ]
        }
    )
