"""Read access to the transparency log (docs/protocol.md §4, §11): the newest signed tree head,
entries, and inclusion and consistency proofs. Authenticated users only (deny by default); a
client verifies everything it gets here itself, so the server is trusted for availability only.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from crypto.treehead import Cosignature
from server.appkeys import CONFIG, RELEASE, TRANSLOG
from server.errors import ApiError
from server.http.api import parse, require_principal
from server.services.translog import TransparencyLog
from server.ws.frames import b64u_decode, b64u_encode

routes = web.RouteTableDef()


def _log(request: web.Request) -> TransparencyLog:
    translog = request.app.get(TRANSLOG)
    if translog is None:
        raise ApiError(503, "koppi.log_unavailable", "this server runs without a transparency log")
    return translog


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None or not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "koppi.bad_request", f"query parameter {name} must be an integer >= 0")
    return int(raw)


@routes.get("/api/log/head")
async def head(request: web.Request) -> web.Response:
    """The newest head, or with `?cosigned=k` the newest one that k witnesses cosigned: what a
    client with quorum k can accept (a head signed since the last witness round has none yet)."""
    await require_principal(request)
    translog = _log(request)
    if "cosigned" in request.query:
        quorum = _int(request, "cosigned")
        found = await translog.newest_cosigned(quorum)
        if found is None:
            raise ApiError(404, "koppi.not_cosigned", f"no recent head has {quorum} cosignatures")
        cth = found
    else:
        cth = await translog.head()
    return web.json_response(
        {
            "log_id": b64u_encode(translog.log_id),
            "log_public_key": b64u_encode(translog.public_key),
            "size": cth.head.size,
            "timestamp_ms": cth.head.timestamp_ms,
            "head": b64u_encode(cth.encode()),
        }
    )


class CosignRequest(msgspec.Struct, forbid_unknown_fields=True):
    head_timestamp_ms: int
    witness_id: str
    timestamp_ms: int
    signature: str


@routes.post("/api/log/cosign")
async def cosign(request: web.Request) -> web.Response:
    """A witness adds its cosignature to a head it checked (docs/protocol.md §4.5)."""
    await require_principal(request)
    body = await parse(request, CosignRequest)
    cosignature = Cosignature(
        b64u_decode(body.witness_id, field="witness_id", length=32),
        body.timestamp_ms,
        b64u_decode(body.signature, field="signature", length=64),
    )
    cth = await _log(request).add_cosignature(
        body.head_timestamp_ms, cosignature, request.app[CONFIG].witness_keys()
    )
    return web.json_response({"cosignatures": len(cth.cosignatures)})


@routes.get("/api/log/entries")
async def entries(request: web.Request) -> web.Response:
    await require_principal(request)
    rows = await _log(request).entries(_int(request, "start"), _int(request, "end"))
    return web.json_response(
        {"entries": [{"index": i, "kind": k, "data": b64u_encode(p)} for i, k, p in rows]}
    )


@routes.get("/api/log/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    await require_principal(request)
    proof = _log(request).inclusion_proof(_int(request, "index"), _int(request, "size"))
    return web.json_response({"proof": [b64u_encode(p) for p in proof]})


@routes.get("/api/log/consistency")
async def consistency(request: web.Request) -> web.Response:
    await require_principal(request)
    proof = _log(request).consistency_proof(_int(request, "old"), _int(request, "new"))
    return web.json_response({"proof": [b64u_encode(p) for p in proof]})


@routes.get("/api/release")
async def release(request: web.Request) -> web.Response:
    """The browser code this server serves, public like the code itself: anyone can check each
    file under /static/ against it and the manifest's hash against the log."""
    current = request.app[RELEASE]
    manifest = current.manifest
    return web.json_response(
        {
            "version": manifest.version,
            "manifest": b64u_encode(manifest.encode()),
            "files": {path: b64u_encode(digest) for path, digest in manifest.files.items()},
            "log_index": current.log_index,
        }
    )
