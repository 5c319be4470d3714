"""The consent registry over HTTP (issue: consent): thin handlers over `ConsentService`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from server.appkeys import CONSENTS
from server.consent_documents import LANGUAGES, fhir_consent, render_receipt
from server.errors import ApiError
from server.http.api import parse, path_uuid, require_principal
from server.services.admission import NOT_MEMBER
from server.services.consents import ConsentDocuments
from server.ws.frames import b64u_decode, b64u_encode

routes = web.RouteTableDef()


class RecordBody(msgspec.Struct, forbid_unknown_fields=True):
    record: Annotated[str, msgspec.Meta(max_length=360 * 1024)]  # base64url of CORE_MAX + sig


@routes.post("/api/threads/{thread_id}/consents")
async def record(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    body = await parse(request, RecordBody)
    raw = b64u_decode(body.record, field="record")
    recorded, index = await request.app[CONSENTS].record(principal, thread_id, raw)
    return web.json_response(
        {
            "record_hash": b64u_encode(recorded.record_hash),
            "version": recorded.core.version,
            "log_index": index,
        },
        status=201,
    )


@routes.get("/api/threads/{thread_id}/consents")
async def history(request: web.Request) -> web.Response:
    """Every version of every consent recorded for the thread, oldest first per consent: what
    each participant verifies (signature, log inclusion) and shows as the consent's history."""
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    versions = await request.app[CONSENTS].of_thread(principal, thread_id)
    return web.json_response(
        {
            "consents": [
                {
                    "consent_id": b64u_encode(v.consent_id),
                    "version": v.version,
                    "record": b64u_encode(v.record),
                    "log_index": v.log_index,
                    "recorded_at": v.created_at,
                }
                for v in versions
            ]
        }
    )


async def _documents(request: web.Request) -> ConsentDocuments:
    principal = await require_principal(request)
    thread_id = path_uuid(request, "thread_id", NOT_MEMBER)
    consent_id = b64u_decode(request.match_info["consent_id"], field="consent_id", length=16)
    return await request.app[CONSENTS].documents(principal, thread_id, consent_id)


@routes.get("/api/threads/{thread_id}/consents/{consent_id}/receipt")
async def receipt(request: web.Request) -> web.Response:
    """The client's printable receipt (`?lang=fi|sv|en`, Finnish by default)."""
    lang = request.query.get("lang", "fi")
    if lang not in LANGUAGES:
        raise ApiError(400, "koppi.bad_request", "lang: fi, sv or en")
    docs = await _documents(request)
    html = render_receipt(docs.versions, docs.org_names, lang, docs.now, docs.disclosures)
    return web.Response(text=html, content_type="text/html")


@routes.get("/api/threads/{thread_id}/consents/{consent_id}/fhir")
async def fhir(request: web.Request) -> web.Response:
    """The consent's latest version as an HL7 FHIR R5 Consent (docs/consent-fhir.md)."""
    docs = await _documents(request)
    return web.json_response(
        fhir_consent(docs.versions, docs.org_names, docs.now), content_type="application/fhir+json"
    )
