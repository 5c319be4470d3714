"""Page shells rendered with jinja2 from package data; all logic is in the static ES modules."""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup

from server.appkeys import CONFIG, RELEASE, TRANSLOG
from server.errors import ApiError
from server.http.api import path_uuid
from server.http.authn import cookie_name
from server.page_text import (
    ADMIN_PAGE,
    APP_PAGE,
    COMMON,
    CONSENT_PAGE,
    DEVICES_PAGE,
    EXPORT_PAGE,
    LANGUAGE_NAMES,
    LANGUAGES,
    LOGIN_PAGE,
    PURPOSE_NAMES,
)
from server.templates import TEMPLATES

routes = web.RouteTableDef()


LANG_COOKIE = "koppi_lang"


def page_lang(request: web.Request) -> str:
    """The interface language: `?lang=` (which the language switch links set), else the one
    chosen before (a cookie), else the browser's first of fi/sv/en, else Finnish."""
    asked = request.query.get("lang")
    if asked is not None:
        if asked not in LANGUAGES:
            raise ApiError(400, "koppi.bad_request", "lang: fi, sv or en")
        return asked
    chosen = request.cookies.get(cookie_name(LANG_COOKIE, request.app[CONFIG].secure_cookies))
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "fi"


def render(
    request: web.Request,
    name: str,
    text: dict[str, dict[str, str]] | None = None,
    **context: object,
) -> web.Response:
    """A page shell in the request's language: `t` is the page's own words from `text` (a
    table of server/page_text.py), `common` what every page shows. A language chosen with
    `?lang=` is remembered for the next pages.

    The shell loads the release's files by `static(path)` with `sri(path)` (base.html puts the
    import map, which pins every module, before them) and names the release it was built from."""
    lang = page_lang(request)
    if text is not None:
        context.setdefault("title", f"Koppi — {text[lang]['title']}")
    release = request.app[RELEASE]
    body = TEMPLATES.get_template(name).render(
        release=release,
        static=release.url,
        sri=release.integrity,
        import_map=Markup(release.import_map),  # noqa: S704 -- our JSON, "<" escaped; CSP pins it
        lang=lang,
        t=text[lang] if text is not None else {},
        common=COMMON[lang],
        languages=LANGUAGE_NAMES,
        path=request.path,
        **context,
    )
    response = web.Response(text=body, content_type="text/html")
    if "lang" in request.query:
        secure = request.app[CONFIG].secure_cookies
        response.set_cookie(cookie_name(LANG_COOKIE, secure), lang, max_age=365 * 86400, path="/",
                            samesite="Strict", httponly=True, secure=secure)  # fmt: skip
    return response


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return render(request, "login.html", LOGIN_PAGE)


@routes.get("/devices")
async def devices(request: web.Request) -> web.Response:
    return render(request, "devices.html", DEVICES_PAGE)


@routes.get("/admin")
async def admin(request: web.Request) -> web.Response:
    return render(request, "admin.html", ADMIN_PAGE)


@routes.get("/threads/{thread_id}/consent")
async def consent(request: web.Request) -> web.Response:
    """The thread's consent panel; the page's module asks the API, which checks membership."""
    thread_id = path_uuid(request, "thread_id", ApiError(404, "koppi.not_found", "no such page"))
    purposes = PURPOSE_NAMES[page_lang(request)]
    return render(request, "consent.html", CONSENT_PAGE, thread=str(thread_id), purposes=purposes)


@routes.get("/threads/{thread_id}/export")
async def export(request: web.Request) -> web.Response:
    """Export to the organisation's own records, decrypted in this browser (`?lang=fi|sv|en`).

    The page carries what its module verifies the log with: the deployment root key, the log
    key and the witnesses with their quorum. They come from the server that also serves the code
    (docs/threat-model.md, "The browser code is served by the same operator")."""
    thread_id = path_uuid(request, "thread_id", ApiError(404, "koppi.not_found", "no such page"))
    return render(
        request,
        "export.html",
        EXPORT_PAGE,
        title=f"Koppi — {EXPORT_PAGE[page_lang(request)]['title']}",
        thread=str(thread_id),
        **pins(request),
    )


def pins(request: web.Request) -> dict[str, object]:
    """What a page that follows the log pins: the deployment root key, the log key, and the
    witnesses with their quorum, from the server's configuration."""
    cfg, translog = request.app[CONFIG], request.app.get(TRANSLOG)
    root = cfg.root_public()
    return {
        "root_public": root.hex() if root is not None else "",
        "log_public": translog.public_key.hex() if translog is not None else "",
        "witnesses": ",".join(w.hex() for w in cfg.witness_keys().values()),
        "quorum": cfg.log_quorum,
    }


@routes.get("/app")
async def app(request: web.Request) -> web.Response:
    """The case-conference app: the thread list and the thread view (`#<thread id>`). The page
    carries the log pins its module verifies devices and consents with, the purposes in the
    page's language, and how soon before a consent ends the thread view warns about it."""
    lang = page_lang(request)
    return render(
        request,
        "app.html",
        APP_PAGE,
        title=f"Koppi — {APP_PAGE[lang]['title']}",
        purposes=PURPOSE_NAMES[lang],
        consent_warning_days=request.app[CONFIG].consent_warning_days,
        **pins(request),
    )
