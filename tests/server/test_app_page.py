"""The case-conference app's shell (/app, issue #9): it carries the pins its module verifies the
log with, the purposes a thread can be started for, the confidentiality marking, and every word
of its table in Finnish, Swedish and English; the table is complete in each language, with the
same placeholders, and explains every admission refusal the server can send in `removed`."""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any

import pytest

from crypto.consent import PURPOSES
from server.consent_documents import WORDS
from server.page_text import APP_PAGE, LANGUAGES, PURPOSE_NAMES
from tests.server.conftest import LOG_KEY, Cast
from tests.server.test_export_page import attribute
from tests.server.test_ghost_device import ROOT, WITNESS

MARKING = {"fi": "Salassa pidettävä", "sv": "Sekretessbelagd", "en": "Confidential"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "root_public_key": ROOT.public.hex(),
        "log_witness_keys": WITNESS.public.hex(),
        "log_quorum": 1,
    }


def words(page: str, block_id: str = "app-text") -> dict[str, str]:
    found = rf'<script type="application/json" id="{block_id}">(.*?)</script>'
    block = re.search(found, page, re.S)
    assert block is not None
    parsed: dict[str, str] = json.loads(block.group(1))
    return parsed


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_app_page_in_each_language(cast: Cast, lang: str) -> None:
    r = await cast.client.get(f"/app?lang={lang}")
    assert r.status == 200
    page = await r.text()
    assert f'<html lang="{lang}">' in page
    assert re.search(r'<script type="module" src="/static/[0-9a-f]{32}/app.js" integrity=', page)
    assert words(page) == APP_PAGE[lang]
    assert APP_PAGE[lang]["confidential"] == MARKING[lang] and html.escape(MARKING[lang]) in page
    assert attribute(page, "data-root") == ROOT.public.hex()
    assert attribute(page, "data-log") == LOG_KEY.public.hex()
    assert attribute(page, "data-witnesses") == WITNESS.public.hex()
    assert attribute(page, "data-quorum") == "1"
    assert attribute(page, "data-consent-warning-days") == "7"
    # Each purpose by its code, shown in the page's language, in the receipt's very words.
    options = re.findall(r'<option value="([a-z-]+)">([^<]+)</option>', page)
    assert [code for code, _ in options] == sorted(PURPOSES)
    assert {code: html.unescape(name) for code, name in options} == PURPOSE_NAMES[lang]
    assert all(PURPOSE_NAMES[lang][code] == WORDS[code][lang] for code in PURPOSES)
    assert words(page, "app-purposes") == PURPOSE_NAMES[lang]


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_consent_panel_names_the_purposes_as_the_app_does(cast: Cast, lang: str) -> None:
    page = await (await cast.client.get(f"/threads/{uuid.uuid4()}/consent?lang={lang}")).text()
    assert words(page, "consent-purposes") == PURPOSE_NAMES[lang]


@pytest.mark.parametrize("config_overrides", [{"consent_warning_days": 30}])
async def test_the_warning_horizon_is_the_configured_one(cast: Cast) -> None:
    page = await (await cast.client.get("/app")).text()
    assert attribute(page, "data-consent-warning-days") == "30"


async def test_another_language_is_refused(cast: Cast) -> None:
    r = await cast.client.get("/app?lang=de")
    assert r.status == 400 and (await r.json())["error"]["code"] == "koppi.bad_request"


def test_every_language_has_every_word() -> None:
    keys = set(APP_PAGE["en"])
    refusals = {"koppi.no_consent", "koppi.consent_revoked", "koppi.consent_not_yet_valid",
                "koppi.consent_expired", "koppi.not_covered", "koppi.role_not_covered"}  # fmt: skip
    assert refusals <= keys
    for lang in LANGUAGES:
        assert set(APP_PAGE[lang]) == keys, lang
        for key, text in APP_PAGE["en"].items():
            placeholders = set(re.findall(r"\{(\w+)\}", APP_PAGE[lang][key]))
            assert placeholders == set(re.findall(r"\{(\w+)\}", text)), (lang, key)
