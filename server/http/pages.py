"""Page shells rendered with jinja2 from package data; all logic is in the static ES modules."""

from __future__ import annotations

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from server.appkeys import CONFIG, TRANSLOG
from server.errors import ApiError
from server.http.api import path_uuid
from server.page_text import EXPORT_PAGE, LANGUAGES

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


@routes.get("/threads/{thread_id}/export")
async def export(request: web.Request) -> web.Response:
    """Export to the organisation's own records, decrypted in this browser (`?lang=fi|sv|en`).

    The page carries what its module verifies the log with: the deployment root key, the log
    key and the witnesses with their quorum. They come from the server that also serves the code
    (docs/threat-model.md, "The browser code is served by the same operator")."""
    thread_id = path_uuid(request, "thread_id", ApiError(404, "koppi.not_found", "no such page"))
    lang = request.query.get("lang", "fi")
    if lang not in LANGUAGES:
        raise ApiError(400, "koppi.bad_request", "lang: fi, sv or en")
    cfg, translog = request.app[CONFIG], request.app.get(TRANSLOG)
    root = cfg.root_public()
    text = EXPORT_PAGE[lang]
    return render(
        "export.html",
        title=f"Koppi — {text['title']}",
        lang=lang,
        t=text,
        thread=str(thread_id),
        root_public=root.hex() if root is not None else "",
        log_public=translog.public_key.hex() if translog is not None else "",
        witnesses=",".join(w.hex() for w in cfg.witness_keys().values()),
        quorum=cfg.log_quorum,
    )
