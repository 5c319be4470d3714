"""Every page speaks Finnish, Swedish and English (issue #9, flow 9): each page's words live in one
table of server/page_text.py, complete in every language, and every word its template prints or
its module looks up is there (a missing one would print nothing, or show a code)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from crypto.consent import DATA_CATEGORIES
from crypto.identity import ROLES
from server.page_text import COMMON, LANGUAGES, PAGES
from tests.server.conftest import Cast

WEB = Path(__file__).resolve().parents[2] / "web"

# page -> (template, its module, the id of its JSON data block; None: no module words)
SHELLS: dict[str, tuple[str, str | None, str | None]] = {
    "login": ("login.html", "login.js", "login-text"),
    "devices": ("devices.html", "devices.js", "devices-text"),
    "admin": ("admin.html", "admin.js", "admin-text"),
    "consent": ("consent.html", "consent-panel.js", "consent-text"),
    "export": ("export.html", "export.js", "export-text"),
}


# Words a module looks up by a key it builds (`T[`role.${role}`]`), which no pattern finds.
BUILT_KEYS: dict[str, set[str]] = {
    "admin": {f"role.{r}" for r in ROLES}
    | {"status.active", "status.disabled"}
    | {f"{verb}{end}" for verb in ("enable", "disable") for end in ("", "_user", "d")},
    "consent": {f"category.{c}" for c in DATA_CATEGORIES},
}


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_language_has_every_word(name: str) -> None:
    table = PAGES[name]
    assert set(table) == set(LANGUAGES)
    keys = set(table["en"])
    for lang in LANGUAGES:
        assert set(table[lang]) == keys, (name, lang, keys ^ set(table[lang]))
        for key, text in table[lang].items():
            assert text.strip(), (name, lang, key)
            assert placeholders(text) == placeholders(table["en"][key]), (name, lang, key)


@pytest.mark.parametrize("name", sorted(SHELLS))
def test_every_word_a_page_uses_is_in_its_table(name: str) -> None:
    template, module, _ = SHELLS[name]
    keys = set(PAGES[name]["en"])
    source = (WEB / "templates" / template).read_text()
    used = set(re.findall(r"\bt\.(\w+)", source))
    if module is not None:
        code = (WEB / "static" / module).read_text()
        used |= set(re.findall(r"\bT\.(\w+)", code)) | set(re.findall(r'\bT\["([^"]+)"\]', code))
    assert used, name
    assert used | BUILT_KEYS.get(name, set()) <= keys, (used | BUILT_KEYS.get(name, set())) - keys
    base = (WEB / "templates" / "base.html").read_text()
    assert set(re.findall(r"\bcommon\.(\w+)", base)) <= set(COMMON["en"])


def data_block(page: str, block: str) -> dict[str, str]:
    found = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', page, re.S)
    assert found is not None, block
    parsed: dict[str, str] = json.loads(found.group(1))
    return parsed


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_login_page_speaks_each_language(cast: Cast, lang: str) -> None:
    r = await cast.client.get(f"/?lang={lang}")
    page = await r.text()
    t = PAGES["login"][lang]
    assert r.status == 200 and f'<html lang="{lang}">' in page
    assert data_block(page, "login-text") == t
    assert f"<title>Koppi — {html.escape(t['title'])}</title>" in page
    assert f"{html.escape(t['username'])} <input" in page
    for key in ("threads", "devices", "admin", "tagline"):
        assert html.escape(COMMON[lang][key]) in page


async def test_the_header_nav_marks_the_current_page_only(cast: Cast) -> None:
    """A nav landmark named for screen readers, the current page marked with aria-current."""
    for path, current in (("/devices", "/devices"), ("/admin", "/admin"), ("/", None)):
        page = await (await cast.client.get(path + "?lang=en")).text()
        nav = re.search(r'<nav class="pages" aria-label="Pages">(.*?)</nav>', page, re.S)
        assert nav is not None
        links = re.findall(r'<a href="([^"]+)"([^>]*)>', nav.group(1))
        assert [href for href, _ in links] == ["/app", "/devices", "/admin"]
        marked = [href for href, attrs in links if 'aria-current="page"' in attrs]
        assert marked == ([current] if current else []), path
