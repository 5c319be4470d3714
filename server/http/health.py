"""Liveness, readiness (database reachable and migrated) and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.appkeys import ENGINE, METRICS
from server.db.migrate import SchemaOutdated, require_current_schema
from server.errors import ApiError

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await require_current_schema(request.app[ENGINE])
    except SchemaOutdated as e:
        raise ApiError(503, "koppi.not_ready", str(e)) from None
    except Exception:
        raise ApiError(503, "koppi.not_ready", "database unreachable") from None
    return web.json_response({"ok": True})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
