"""Cross-cutting request handling: error rendering, CSRF, security headers, request logging."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from server.appkeys import AUTHENTICATOR, RELEASE
from server.errors import ApiError
from server.release import Release

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = structlog.get_logger(__name__)

WORKER_POLICY = "koppi-worker"  # the one Trusted Types policy: web/static/protocol/worker.js
IMMUTABLE = "public, max-age=31536000, immutable"


def content_security_policy(release: Release) -> str:
    """Scripts only from this origin, and of inline script only the release's import map (by
    its hash; JSON data blocks are not scripts). No eval, no plugins, no framing, no <base>.
    Trusted Types: no string reaches a script sink; the worker's URL passes the one policy.
    `connect-src 'self'` covers the websocket to the same host (ws/wss, CSP Level 3)."""
    return (
        f"default-src 'none'; script-src 'self' {release.import_map_hash}; "
        "worker-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        f"require-trusted-types-for 'script'; trusted-types {WORKER_POLICY}"
    )


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One canonical line per request: method, route, status. Never bodies, cookies or tokens."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        resource = request.match_info.route.resource
        log.info(
            "http.request",
            method=request.method,
            route=resource.canonical if resource is not None else "?",
            status=status,
        )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as `{"error": {"code", "message"}}` with a stable code."""
    try:
        return await handler(request)
    except ApiError as e:
        # Every refusal is on record with its code (never the body that caused it).
        resource = request.match_info.route.resource
        log.warning(
            "http.refused",
            route=resource.canonical if resource is not None else "?",
            status=e.status,
            code=e.code,
        )
        return web.json_response(e.as_json(), status=e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = {
            404: "koppi.not_found",
            405: "koppi.method_not_allowed",
            413: "koppi.body_too_large",
        }
        err = ApiError(e.status, code.get(e.status, "koppi.bad_request"), e.reason)
        return web.json_response(err.as_json(), status=e.status)


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State-changing API requests authenticated by cookie must echo the session's CSRF token.

    Bearer requests carry no ambient credential, so they need none. Login itself has no session
    yet; it must be JSON, which a cross-site form cannot send without a CORS preflight."""
    if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
        return await handler(request)
    if request.path == "/api/login":
        if request.content_type != "application/json":
            raise ApiError(415, "koppi.bad_request", "send JSON")
        return await handler(request)
    principal = await request.app[AUTHENTICATOR].authenticate(request)
    if principal is not None and principal.via == "session":
        sent = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(sent.encode(), principal.csrf_token.encode()):
            raise ApiError(403, "koppi.csrf", "missing or wrong X-CSRF-Token")
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every response: CSP, no sniffing, no referrer. Nothing is cached but the release's
    versioned files, which never change under their URL (a new release is a new URL)."""
    response = await handler(request)
    release = request.app[RELEASE]
    response.headers.setdefault("Content-Security-Policy", content_security_policy(release))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # A file response's status is known only when it is sent: ask the manifest instead.
    path = request.path.removeprefix(release.prefix)
    versioned = path != request.path and path in release.manifest.files
    response.headers.setdefault("Cache-Control", IMMUTABLE if versioned else "no-store")
    return response
