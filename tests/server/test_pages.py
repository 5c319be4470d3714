"""The interface language of every page: chosen with the switch (`?lang=`), remembered, else the
browser's, else Finnish; the page says which language it is in and marks the switch."""

from __future__ import annotations

import re

from tests.server.conftest import Cast


async def page(cast: Cast, path: str, **headers: str) -> tuple[int, str, str | None]:
    r = await cast.client.get(path, headers=headers)
    cookie = r.cookies.get("koppi_lang")
    return r.status, await r.text(), None if cookie is None else cookie.value


async def test_finnish_by_default_the_browsers_language_else(cast: Cast) -> None:
    status, body, cookie = await page(cast, "/devices")
    assert status == 200 and '<html lang="fi">' in body and cookie is None
    _, body, _ = await page(cast, "/devices", **{"Accept-Language": "de-DE, sv;q=0.8, en;q=0.5"})
    assert '<html lang="sv">' in body
    _, body, _ = await page(cast, "/admin", **{"Accept-Language": "de"})
    assert '<html lang="fi">' in body


async def test_a_chosen_language_is_remembered_for_the_next_pages(cast: Cast) -> None:
    status, body, cookie = await page(cast, "/devices?lang=en")
    assert status == 200 and '<html lang="en">' in body and cookie == "en"
    current = re.findall(r'<a [^>]*hreflang="(\w+)"[^>]*aria-current="true"', body)
    assert current == ["en"]
    # The cookie jar sends it back: the next page, without ?lang, is in English too.
    _, body, _ = await page(cast, f"/threads/{cast.thread}/export", **{"Accept-Language": "sv"})
    assert '<html lang="en">' in body
    status, body, _ = await page(cast, "/devices?lang=de")
    assert status == 400 and "koppi.bad_request" in body
