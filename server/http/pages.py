"""Page shells rendered with jinja2 from package data; all logic is in the static ES modules."""

from __future__ import annotations

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from server.errors import ApiError
from server.http.api import path_uuid

routes = web.RouteTableDef()
_env = Environment(loader=PackageLoader("web", "templates"), autoescape=select_autoescape())


def render(name: str, **context: object) -> web.Response:
    return web.Response(text=_env.get_template(name).render(**context), content_type="text/html")


@routes.get("/")
async def index(_request: web.Request) -> web.Response:
    return render("login.html", title="Koppi")


@routes.get("/devices")
async def devices(_request: web.Request) -> web.Response:
    return render("devices.html", title="Koppi — this device")


@routes.get("/admin")
async def admin(_request: web.Request) -> web.Response:
    return render("admin.html", title="Koppi — organisation admin")


@routes.get("/threads/{thread_id}/consent")
async def consent(request: web.Request) -> web.Response:
    """The thread's consent panel; the page's module asks the API, which checks membership."""
    thread_id = path_uuid(request, "thread_id", ApiError(404, "koppi.not_found", "no such page"))
    return render("consent.html", title="Koppi — consent", thread=str(thread_id))
