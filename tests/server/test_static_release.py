"""Pages load the logged release: versioned URLs, SRI on the entry module, the stylesheet and
(through the import map) every module, a CSP that lets only the import map run inline, and the
release named in the page. Chromium's side of the same is tests/browser/test_quality.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from crypto.logentries import WebManifest
from crypto.primitives import sha256
from server.appkeys import RELEASE
from tests.server.conftest import Cast, b64u

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
PAGES = ("/", "/devices", "/admin", "/threads/{thread}/consent", "/threads/{thread}/export")


def sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


async def shell(cast: Cast, path: str) -> tuple[str, str]:
    r = await cast.client.get(path.format(thread=cast.thread))
    assert r.status == 200
    return await r.text(), r.headers["Content-Security-Policy"]


def import_map(page: str) -> tuple[str, dict[str, dict[str, str]]]:
    found = re.findall(r'<script type="importmap">(.*?)</script>', page, re.S)
    assert len(found) == 1
    parsed: dict[str, dict[str, str]] = json.loads(found[0])
    return found[0], parsed


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_pins_its_entry_module_and_every_module_of_the_release(
    cast: Cast, path: str
) -> None:
    page, _ = await shell(cast, path)
    prefix = cast.app[RELEASE].prefix
    assert re.fullmatch(r"/static/[0-9a-f]{32}/", prefix)
    entries = re.findall(r'<script type="module" src="([^"]+)" integrity="([^"]+)"></script>', page)
    assert len(entries) == 1 and len(re.findall(r"<script type=\"module\"", page)) == 1
    src, integrity = entries[0]
    assert src.startswith(prefix)
    assert integrity == sri((STATIC / src.removeprefix(prefix)).read_bytes())
    css = re.search(r'<link rel="stylesheet" href="([^"]+)" integrity="([^"]+)">', page)
    assert css is not None and css.group(1) == prefix + "koppi.css"
    assert css.group(2) == sri((STATIC / "koppi.css").read_bytes())
    _, mapping = import_map(page)
    modules = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js")}
    assert mapping["integrity"] == {
        prefix + m: sri((STATIC / m).read_bytes()) for m in sorted(modules)
    }
    assert mapping["imports"] == {"/static/": prefix, prefix: prefix}


@pytest.mark.parametrize("path", PAGES)
async def test_the_csp_lets_only_the_import_map_run_inline(cast: Cast, path: str) -> None:
    page, csp = await shell(cast, path)
    text, _ = import_map(page)
    digest = base64.b64encode(sha256(text.encode())).decode()
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe" not in csp
    for name, value in {
        "default-src": "'none'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
        "connect-src": "'self'",
        "require-trusted-types-for": "'script'",
        "trusted-types": "koppi-worker",
    }.items():
        assert directives[name] == value, name


async def test_a_page_names_the_logged_release_it_was_built_from(cast: Cast) -> None:
    page, _ = await shell(cast, "/")
    release = await (await cast.client.get("/api/release")).json()
    manifest = base64.urlsafe_b64decode(release["manifest"] + "==")
    assert WebManifest.decode(manifest).version == release["version"]
    meta = dict(re.findall(r'<meta name="koppi-release([-\w]*)" content="([^"]+)">', page))
    assert meta[""] == release["version"]
    assert meta["-manifest"] == sha256(manifest).hex()
    assert meta["-log-index"] == str(release["log_index"])
    assert cast.app[RELEASE].prefix == f"/static/{sha256(manifest).hex()[:32]}/"
    assert release["files"]["login.js"] == b64u(sha256((STATIC / "login.js").read_bytes()))


async def test_versioned_files_are_immutable_and_nothing_else_is_cached(cast: Cast) -> None:
    prefix = cast.app[RELEASE].prefix
    r = await cast.client.get(prefix + "protocol/group.js")
    assert r.status == 200 and await r.read() == (STATIC / "protocol/group.js").read_bytes()
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    r = await cast.client.get("/static/protocol/group.js")  # monitors compare these
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    for path in (prefix + "no-such.js", "/static/0123456789abcdef0123456789abcdef/login.js"):
        r = await cast.client.get(path)
        assert r.status == 404 and r.headers["Cache-Control"] == "no-store"
    r = await cast.client.get("/")
    assert r.headers["Cache-Control"] == "no-store"
