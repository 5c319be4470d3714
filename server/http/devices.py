"""Device enrolment and organisation admin actions (issue: organisations): thin handlers over
`OrganisationService`; every admin action is checked against the device's organisation there."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from aiohttp import web

from crypto.fingerprint import fingerprint_hex, fingerprint_words
from server.appkeys import COMMITS, MESSAGING, ORGS, THREADS
from server.db.tables import Device
from server.errors import ApiError
from server.http.api import parse, path_uuid, require_principal
from server.services.admission import NOT_MEMBER
from server.ws.frames import b64u_decode, b64u_encode

routes = web.RouteTableDef()
B64 = Annotated[str, msgspec.Meta(max_length=8192)]


class EnrolRequest(msgspec.Struct, forbid_unknown_fields=True):
    signing_public: B64
    kem_public: B64
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CertificateRequest(msgspec.Struct, forbid_unknown_fields=True):
    certificate: B64


class RevocationRequest(msgspec.Struct, forbid_unknown_fields=True):
    revocation: B64


def device_json(d: Device) -> dict[str, object]:
    """A device on the wire. The fingerprint forms are for clients that do not compute them: the
    browser pages compute both from the keys they hold (docs/protocol.md §3, Fingerprints)."""
    return {
        "device_id": b64u_encode(d.device_id),
        "user": str(d.user_id),
        "org": str(d.org_id),
        "label": d.label,
        "status": d.status,
        "fingerprint": fingerprint_hex(d.signing_public, d.kem_public),
        "fingerprint_words": fingerprint_words(d.signing_public, d.kem_public),
        "cert_log_index": d.cert_log_index,
        "revocation_log_index": d.revocation_log_index,
        "signing_public": b64u_encode(d.signing_public),
        "kem_public": b64u_encode(d.kem_public),
    }


def _device_id(request: web.Request) -> bytes:
    try:
        return b64u_decode(request.match_info["device_id"], field="device_id", length=32)
    except ApiError:
        raise ApiError(404, "koppi.unknown_device", "no such device") from None


@routes.post("/api/devices")
async def enrol(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, EnrolRequest)
    device = await request.app[ORGS].enrol(
        principal,
        b64u_decode(body.signing_public, field="signing_public", length=32),
        b64u_decode(body.kem_public, field="kem_public", length=32),
        body.label,
    )
    return web.json_response(device_json(device), status=201)


@routes.get("/api/devices/{device_id}")
async def device(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    return web.json_response(
        device_json(await request.app[ORGS].device(principal, _device_id(request)))
    )


class LinkRequest(msgspec.Struct, forbid_unknown_fields=True):
    link: B64


@routes.post("/api/devices/{device_id}/link")
async def link(request: web.Request) -> web.Response:
    """The owner links a new device from an existing one (the DeviceLink is signed there)."""
    principal = await require_principal(request)
    body = await parse(request, LinkRequest)
    index = await request.app[ORGS].link(
        principal, _device_id(request), b64u_decode(body.link, field="link")
    )
    return web.json_response({"log_index": index})


@routes.get("/api/org/devices")
async def org_devices(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    status = request.query.get("status")
    if status not in (None, "pending", "approved", "revoked"):
        raise ApiError(400, "koppi.bad_request", "status is pending, approved or revoked")
    devices = await request.app[ORGS].devices(principal, status)
    return web.json_response({"devices": [device_json(d) for d in devices]})


@routes.post("/api/org/devices/{device_id}/certificate")
async def certify(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, CertificateRequest)
    index = await request.app[ORGS].certify(
        principal, _device_id(request), b64u_decode(body.certificate, field="certificate")
    )
    return web.json_response({"log_index": index})


@routes.post("/api/org/devices/{device_id}/revocation")
async def revoke(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, RevocationRequest)
    index = await request.app[ORGS].revoke(
        principal, _device_id(request), b64u_decode(body.revocation, field="revocation")
    )
    return web.json_response({"log_index": index})


class RotationBody(msgspec.Struct, forbid_unknown_fields=True):
    request: B64


@routes.get("/api/org/key")
async def org_key(request: web.Request) -> web.Response:
    """The admin's organisation key as the log has it, and a rotation waiting for the root."""
    principal = await require_principal(request)
    state = await request.app[ORGS].org_key(principal)
    current = None
    if state.current is not None:
        cert, index = state.current
        current = {
            "org_cert": b64u_encode(cert.encode()),
            "log_index": index,
            "generation": cert.generation,
            "org_public": b64u_encode(cert.org_public),
        }
    pending = None if state.rotation_request is None else b64u_encode(state.rotation_request)
    return web.json_response({"current": current, "rotation_request": pending})


@routes.post("/api/org/rotation")
async def request_rotation(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    body = await parse(request, RotationBody)
    raw = b64u_decode(body.request, field="request")
    await request.app[ORGS].request_rotation(principal, raw)
    return web.json_response({"ok": True}, status=202)


@routes.get("/api/org/audit")
async def audit(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    events = await request.app[ORGS].audit_trail(principal)
    return web.json_response(
        {
            "events": [
                {
                    "actor": None if e.actor is None else str(e.actor),
                    "action": e.action,
                    "subject": e.subject,
                    "at": e.at,
                }
                for e in events
            ]
        }
    )


def _thread_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "thread_id", NOT_MEMBER)


@routes.get("/api/threads/{thread_id}")
async def thread(request: web.Request) -> web.Response:
    """The thread's genesis (what epoch 0's commit names as its parent) and the newest epoch
    the server sequenced; members only."""
    principal = await require_principal(request)
    thread_id = _thread_id(request)
    epoch, genesis = await request.app[COMMITS].genesis(principal, thread_id)
    client_ref, purpose = await request.app[COMMITS].subject(thread_id)
    return web.json_response(
        {
            "thread": str(thread_id),
            "client_ref": client_ref,
            "purpose": purpose,
            "label_policy": await request.app[THREADS].label_policy(thread_id),
            "epoch": epoch,
            "genesis": None if genesis is None else b64u_encode(genesis),
        }
    )


@routes.get("/api/threads/{thread_id}/devices")
async def thread_devices(request: web.Request) -> web.Response:
    """The devices the server says are in a thread's members' hands (members only). The server
    is not the authority: clients admit a device only with a verified, logged certificate."""
    principal = await require_principal(request)
    thread_id = _thread_id(request)
    members = await request.app[MESSAGING].require_member(principal, thread_id)
    devices = await request.app[ORGS].devices_of_members(members)
    return web.json_response({"devices": [device_json(d) for d in devices]})
