"""Threads over HTTP: start one, list mine, who is in it, invite a professional found in the
directory (thin handlers over `ThreadService`)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import msgspec
from aiohttp import web

from server.appkeys import EXPORTS, RETENTION, RIGHT_TO_KNOW, THREADS
from server.bus import Delivery
from server.consent_documents import LANGUAGES
from server.errors import ApiError
from server.http.api import parse, path_uuid, require_principal
from server.right_to_know import render_report
from server.services.admission import ADMITTED, NOT_MEMBER
from server.services.threads import NOT_COVERED
from server.ws.frames import b64u_encode

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


def _page(request: web.Request) -> tuple[int, int]:
    """`?after=SEQ&limit=N` of a paged envelope listing."""
    try:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "500"))
    except ValueError:
        raise ApiError(400, "koppi.bad_request", "after and limit are integers") from None
    if after < 0 or limit < 1:
        raise ApiError(400, "koppi.bad_request", "after >= 0 and limit >= 1")
    return after, limit


def _envelope(d: Delivery) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "seq": d.seq,
        "id": b64u_encode(d.msg_id),
        "epoch": d.epoch,
        "sender": b64u_encode(d.sender_device),
        "label": json.loads(d.label),
        "body": b64u_encode(d.body),
        "ts": d.created_at,
    }


@routes.get("/api/threads/{thread_id}/export")
async def export(request: web.Request) -> web.Response:
    """A page of what the caller's organisation may store: `?after=SEQ&limit=N` (at most 500)."""
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    after, limit = _page(request)
    page = await request.app[EXPORTS].export(principal, thread_id, after, limit)
    return web.json_response(
        {"envelopes": [_envelope(d) for d in page.envelopes], "disclosure": page.disclosure}
    )


@routes.get("/api/threads/{thread_id}/commits")
async def commits(request: web.Request) -> web.Response:
    """A page of the thread's commits alone (no content, so no disclosure)."""
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    after, limit = _page(request)
    found = await request.app[EXPORTS].commits(principal, thread_id, after, limit)
    return web.json_response({"envelopes": [_envelope(d) for d in found]})


@routes.get("/api/threads/{thread_id}/disclosures")
async def disclosures(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    found = await request.app[EXPORTS].disclosures(principal, thread_id)
    return web.json_response(
        {
            "disclosures": [
                {
                    "id": d.id,
                    "org": str(d.org_id),
                    "user": str(d.user_id),
                    "messages": d.msg_ids,
                    "first_seq": d.first_seq,
                    "last_seq": d.last_seq,
                    "at": d.at,
                }
                for d in found
            ]
        }
    )


@routes.get("/api/threads/{thread_id}/audit")
async def thread_audit(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    events = await request.app[EXPORTS].thread_audit(principal, thread_id)
    return web.json_response(
        {
            "events": [
                {
                    "org": str(e.org_id),
                    "actor": None if e.actor is None else str(e.actor),
                    "action": e.action,
                    "subject": e.subject,
                    "at": e.at,
                }
                for e in events
            ]
        }
    )


@routes.get("/api/threads/{thread_id}/right-to-know")
async def right_to_know(request: web.Request) -> web.Response:
    """The client's right-to-know report of this thread (Act 703/2023, section 11): printable
    (`?lang=fi|sv|en`, Finnish by default) or `?format=json`."""
    principal = await require_principal(request)
    fmt, lang = request.query.get("format", "html"), request.query.get("lang", "fi")
    if fmt not in ("html", "json"):
        raise ApiError(400, "koppi.bad_request", "format: html or json")
    if lang not in LANGUAGES:
        raise ApiError(400, "koppi.bad_request", "lang: fi, sv or en")
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    report = await request.app[RIGHT_TO_KNOW].of_thread(principal, thread_id)
    if fmt == "json":
        return web.json_response(report)
    return web.Response(text=render_report(report, lang), content_type="text/html")


@routes.post("/api/threads/{thread_id}/close")
async def close(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    closed_at = await request.app[RETENTION].close(principal, thread_id)
    return web.json_response({"thread": str(thread_id), "closed_at": closed_at})


class PolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    policy: Annotated[str, msgspec.Meta(max_length=20)]


@routes.put("/api/threads/{thread_id}/label-policy")
async def label_policy(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    body = await parse(request, PolicyBody)
    await request.app[THREADS].set_label_policy(principal, thread_id, body.policy)
    return web.json_response({"thread": str(thread_id), "label_policy": body.policy})


@routes.get("/api/threads")
async def mine(request: web.Request) -> web.Response:
    """The caller's threads, newest first, with whether the current consent admits them now."""
    principal = await require_principal(request)
    found = await request.app[THREADS].mine(principal)
    return web.json_response(
        {
            "threads": [
                {
                    "thread": str(s.thread.id),
                    "client_ref": s.thread.client_ref,
                    "purpose": s.thread.purpose,
                    "created_at": s.thread.created_at,
                    "epoch": s.thread.epoch,
                    "closed": s.thread.closed_at is not None,
                    "admitted": s.admission == ADMITTED,
                    "refusal": None if s.admission == ADMITTED else s.admission,
                }
                for s in found
            ]
        }
    )


@routes.get("/api/threads/{thread_id}/members")
async def members(request: web.Request) -> web.Response:
    """Who is in the conference: members only, each with their organisation and admission."""
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    found = await request.app[THREADS].members(principal, thread_id)
    return web.json_response(
        {
            "members": [
                {
                    "user": str(m.user_id),
                    "username": m.username,
                    "org": str(m.org_id),
                    "org_name": m.org_name,
                    "roles": m.roles,
                    "admitted": m.admission == ADMITTED,
                    "refusal": None if m.admission == ADMITTED else m.admission,
                }
                for m in found
            ]
        }
    )


@routes.get("/api/organisations/{org_id}/professionals")
async def professionals(request: web.Request) -> web.Response:
    """The professionals of an organisation the thread's consent covers, for an admitted member
    to invite (`?thread=ID` is required)."""
    principal = await require_principal(request)
    try:
        thread_id = uuid.UUID(request.query["thread"])
    except (KeyError, ValueError):
        raise ApiError(400, "koppi.bad_request", "?thread= the thread to invite to") from None
    org_id = path_uuid(request, "org_id", NOT_COVERED)
    found = await request.app[THREADS].directory(principal, thread_id, org_id)
    return web.json_response(
        {
            "professionals": [
                {"user": str(p.user_id), "username": p.username, "roles": p.roles} for p in found
            ]
        }
    )
