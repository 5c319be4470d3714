"""The export page's shell (issue #8): it carries the pins its module verifies the log with (the
deployment root, the log key, the witnesses and the quorum, from the configuration), speaks
Finnish, Swedish and English with every word from one table, and refuses another language or a
malformed thread id; without a root key or log it carries empty pins, which the module refuses
(`koppi.no_pins`). Membership is the API's to check (tests/browser/test_export_page.py)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from server.page_text import EXPORT_PAGE, LANGUAGES
from tests.server.conftest import LOG_KEY, Cast
from tests.server.test_ghost_device import ROOT, WITNESS


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "root_public_key": ROOT.public.hex(),
        "log_witness_keys": WITNESS.public.hex(),
        "log_quorum": 1,
    }


def attribute(page: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', page)
    assert found is not None, name
    return html.unescape(found.group(1))


def words(page: str) -> dict[str, str]:
    block = re.search(
        r'<script type="application/json" id="export-text">(.*?)</script>', page, re.S
    )
    assert block is not None
    parsed: dict[str, str] = json.loads(block.group(1))
    return parsed


async def test_the_export_page_carries_the_pins_its_module_checks_the_log_with(cast: Cast) -> None:
    r = await cast.client.get(f"/threads/{cast.thread}/export")
    assert r.status == 200
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    page = await r.text()
    assert '<html lang="fi">' in page
    assert re.search(r'<script type="module" src="/static/[0-9a-f]{32}/export.js" integrity=', page)
    assert attribute(page, "data-thread") == str(cast.thread)
    assert attribute(page, "data-root") == ROOT.public.hex()
    assert attribute(page, "data-log") == LOG_KEY.public.hex()
    assert attribute(page, "data-witnesses") == WITNESS.public.hex()
    assert attribute(page, "data-quorum") == "1"
    assert words(page) == EXPORT_PAGE["fi"]
    assert EXPORT_PAGE["fi"]["button"] in page


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_export_page_speaks_each_language(cast: Cast, lang: str) -> None:
    r = await cast.client.get(f"/threads/{cast.thread}/export?lang={lang}")
    page = await r.text()
    assert r.status == 200 and f'<html lang="{lang}">' in page
    assert words(page) == EXPORT_PAGE[lang]
    assert html.escape(EXPORT_PAGE[lang]["title"]) in page


async def test_another_language_or_a_malformed_thread_is_refused(cast: Cast) -> None:
    r = await cast.client.get(f"/threads/{cast.thread}/export?lang=de")
    assert r.status == 400 and (await r.json())["error"]["code"] == "koppi.bad_request"
    r = await cast.client.get("/threads/not-a-thread/export")
    assert r.status == 404 and (await r.json())["error"]["code"] == "koppi.not_found"


@pytest.mark.parametrize("config_overrides", [{}])
@pytest.mark.parametrize("log_key", [None])
async def test_without_a_root_key_or_log_the_pins_are_empty(cast: Cast) -> None:
    page = await (await cast.client.get(f"/threads/{cast.thread}/export")).text()
    assert (attribute(page, "data-root"), attribute(page, "data-log")) == ("", "")
    assert (attribute(page, "data-witnesses"), attribute(page, "data-quorum")) == ("", "0")


def test_every_language_has_every_word() -> None:
    """The module looks words and error texts up by key: a missing one would show a code."""
    keys = set(EXPORT_PAGE["en"])
    assert {"koppi.no_device_keys", "koppi.not_in_roster", "koppi.not_member"} <= keys
    for lang in LANGUAGES:
        assert set(EXPORT_PAGE[lang]) == keys, lang
        for key in ("done", "binary"):
            placeholders = set(re.findall(r"\{(\w+)\}", EXPORT_PAGE[lang][key]))
            assert placeholders == set(re.findall(r"\{(\w+)\}", EXPORT_PAGE["en"][key])), lang
