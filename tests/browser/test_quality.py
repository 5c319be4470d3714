"""Issue #9's quality bar, in real Chromium against a real `koppi serve`: every page loads under
the strict CSP with no violation and no console error, loads only modules that the import map
pins, and passes axe-core; an injected inline script, inline handler, eval and HTML sink are
refused; a module altered on disk after the server started is refused by SRI.

To check a new page, add it to PAGES."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser import axe
from tests.browser.serving import ROOT, Deployment, deployment
from tests.browser.test_admin_flow import login
from tests.browser.test_consent_panel import start_thread

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "artifacts"


@dataclass(frozen=True)
class Page:
    path: str  # `{thread}`: the thread that alice started
    user: str | None  # who is logged in (None: nobody)
    ready: bool = False  # the page's module sets body[data-ready] when it shows the server's state


PAGES = {
    "login": Page("/", None),
    "devices": Page("/devices", "alice"),
    "admin": Page("/admin", "anna", ready=True),
    "consent": Page("/threads/{thread}/consent", "alice", ready=True),
    "export": Page("/threads/{thread}/export", "alice", ready=True),
    "app": Page("/app", "alice"),
    "app-thread": Page("/app#{thread}", "alice", ready=True),  # the thread view open
}

# Collects what the CSP refused, from before the page's first script runs.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sample}`);
});
"""


@dataclass
class Site:
    server: Deployment
    thread: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("quality")
    with deployment(tmp, {"alice": "professional", "anna": "org-admin"}) as server:
        page = login(browser, server.url, "alice")
        thread = start_thread(page, server.url)
        page.context.close()
        yield Site(server, thread)


class Watched:
    """A page of its own context, with everything that went wrong on it collected."""

    def __init__(self, browser: Any, site: Site, page: Page) -> None:
        self.page = (
            login(browser, site.server.url, page.user)
            if page.user is not None
            else browser.new_context().new_page()
        )
        self.url = site.server.url + page.path.format(thread=site.thread)
        self.errors: list[str] = []
        self.scripts: list[str] = []
        self.page.add_init_script(WATCH_CSP)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on(
            "requestfinished",
            lambda r: self.scripts.append(r.url) if r.resource_type == "script" else None,
        )
        self.ready = page.ready

    def open(self) -> Any:
        self.page.goto(self.url)
        if self.ready:
            self.page.wait_for_selector("body[data-ready=true]")
        self.page.wait_for_load_state("networkidle")
        return self.page

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("() => window.__csp")
        return found

    def close(self) -> None:
        self.page.context.close()


@pytest.fixture
def watched(browser: Any, site: Site) -> Iterator[Any]:
    opened: list[Watched] = []

    def open_page(name: str) -> Watched:
        w = Watched(browser, site, PAGES[name])
        opened.append(w)
        return w

    yield open_page
    for w in opened:
        w.close()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_loads_under_the_csp_with_every_module_pinned(watched: Any, name: str) -> None:
    w = watched(name)
    page = w.open()
    page.screenshot(path=str(ARTIFACTS / f"quality-{name}.png"), full_page=True)
    assert w.violations() == []
    assert w.errors == []
    pinned = page.evaluate(
        """() => {
          const map = JSON.parse(document.querySelector("script[type=importmap]").textContent);
          return Object.keys(map.integrity).map((u) => new URL(u, location.href).href);
        }"""
    )
    # Every module the page imported (the entry and all it imports) is one the map pins.
    assert w.scripts and set(w.scripts) <= set(pinned), set(w.scripts) - set(pinned)
    entry = page.eval_on_selector("script[type=module]", "(s) => [s.src, s.integrity]")
    assert entry[0] in w.scripts and entry[1].startswith("sha256-")


def test_the_export_pages_json_data_block_is_read_without_a_violation(watched: Any) -> None:
    w = watched("export")
    page = w.open()
    # The block is data, never executed: the CSP does not weigh it, the module reads it.
    words = page.eval_on_selector("#export-text", "(s) => JSON.parse(s.textContent)")
    page.click("#export-run")  # this browser has no device: the module says so in the block's words
    page.wait_for_selector("#export-panel[data-state=error]")
    assert (page.text_content("#export-error") or "").startswith(words["error"])
    assert w.violations() == [] and w.errors == []


# A same-origin classic script, as if a page module tried these: each must be refused.
PROBE = """
const tries = {
  eval: () => eval("1 + 1"),
  function: () => new Function("return 1")(),
  timer: () => setTimeout("window.__timer = 1", 0),
  html: () => { document.body.innerHTML = "<b>x</b>"; },
  script: () => { document.createElement("script").textContent = "1"; },
  worker: () => new Worker("/static/protocol/worker.js", { type: "module" }),
  policy: () => trustedTypes.createPolicy("mine", { createHTML: (s) => s }),
};
window.__probe = Object.fromEntries(Object.entries(tries).map(([name, run]) => {
  try { run(); return [name, "ran"]; } catch (e) { return [name, e.name]; }
}));
"""


def test_injected_script_handlers_eval_and_html_are_refused(watched: Any) -> None:
    """As if an attacker got markup into the page: the server's page, with its CSP, plus an
    inline script, an inline handler and a script that tries eval and the HTML sinks."""
    w = watched("login")

    def inject(route: Any) -> None:
        response = route.fetch()
        body = response.text().replace(
            "</main>",
            '<script>window.__inline = 1</script><img src="/x.png" onerror="window.__handler = 1">'
            '<script src="/probe.js"></script></main>',
        )
        route.fulfill(response=response, body=body)

    w.page.route(w.url, inject)
    w.page.route("**/probe.js", lambda r: r.fulfill(body=PROBE, content_type="text/javascript"))
    page = w.open()
    page.wait_for_function("() => window.__probe && window.__csp.length >= 3")
    assert page.evaluate("() => [window.__inline, window.__handler, window.__timer]") == [
        None,
        None,
        None,
    ]
    refused = w.violations()
    assert any(v.startswith("script-src-elem inline") for v in refused), refused
    assert any(v.startswith("script-src-attr inline") for v in refused), refused
    assert "require-trusted-types-for trusted-types-sink eval|1 + 1" in refused, refused
    assert "require-trusted-types-for trusted-types-sink Element innerHTML|<b>x</b>" in refused
    assert page.evaluate("() => window.__probe") == {
        "eval": "EvalError",
        "function": "EvalError",
        "timer": "TypeError",
        "html": "TypeError",
        "script": "TypeError",
        "worker": "TypeError",
        "policy": "TypeError",
    }


def test_the_worker_starts_through_the_one_trusted_types_policy(watched: Any) -> None:
    w = watched("devices")
    page = w.open()
    outcome = page.evaluate(
        """async () => {
          const { ProtocolWorker } = await import("/static/protocol/worker.js");
          const { KemKey } = await import("/static/protocol/primitives.js");
          const key = await KemKey.fromBytes(new Uint8Array(32).fill(7));
          const worker = new ProtocolWorker();
          const pub = await worker.call("kemPublic", key.privateKey, key.public);
          worker.worker.terminate();
          let other;
          try { new ProtocolWorker("/static/login.js"); other = "ran"; }
          catch (e) { other = e.name; }
          return [pub.length, other];
        }"""
    )
    assert outcome == [32, "TypeError"]
    assert w.violations() == [] and w.errors == []


@pytest.fixture
def tampered(tmp_path: Path) -> Iterator[tuple[Deployment, Path]]:
    """A server serving a copy of the web package, which the test alters after the start."""
    copy = tmp_path / "serve"
    shutil.copytree(ROOT / "web", copy / "web", ignore=shutil.ignore_patterns("__pycache__"))
    with deployment(tmp_path, {"alice": "professional"}, web_copy=copy) as server:
        yield server, copy / "web" / "static"


def test_a_module_altered_after_the_start_is_refused(browser: Any, tampered: Any) -> None:
    server, static = tampered

    def load(path: str) -> tuple[list[str], Any]:
        """A fresh browser profile (an immutable file, once fetched, is never fetched again)."""
        page = browser.new_context().new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
        return errors, page

    # The import map pins the modules the entry imports; the entry pins itself by its attribute.
    for altered, path in (("protocol/encoding.js", "/devices"), ("login.js", "/")):
        errors, page = load(path)
        assert errors == [], errors  # as served at the start, it loads
        page.context.close()
        with (static / altered).open("a") as f:
            f.write("\nwindow.__altered = true;\n")
        errors, page = load(path)
        assert any("integrity" in e and altered in e for e in errors), errors
        assert page.evaluate("() => window.__altered") is None
        page.context.close()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_passes_axe(watched: Any, name: str) -> None:
    w = watched(name)
    page = w.open()
    assert axe.violations(page) == []
    assert w.violations() == []  # axe ran without the page's CSP being loosened


def test_axe_sees_what_it_must(watched: Any) -> None:
    """The check can fail: an unlabelled field and low-contrast text are reported."""
    page = watched("login").open()
    page.evaluate(
        """() => {
          document.querySelector("main").append(document.createElement("input"));
          const faint = document.createElement("p");
          faint.textContent = "faint";
          faint.style.color = "#d0d0d0";
          document.querySelector("main").append(faint);
        }"""
    )
    found = {line.split(" ")[0] for line in axe.violations(page)}
    assert {"label", "color-contrast"} <= found, found


def test_keyboard_focus_is_visible(watched: Any) -> None:
    """Tab walks the header (pages, languages) and the login form in order, and the focused
    control shows a clear outline."""
    page = watched("login").open()
    order = []
    focused = """() => { const e = document.activeElement;
                         return e.name || e.hreflang || e.getAttribute("href") || ""; }"""
    for _ in range(9):
        page.keyboard.press("Tab")
        order.append(page.evaluate(focused))
        outline = page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                       return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        assert outline[0] != "none" and outline[1] >= 2, (order[-1], outline)
    expected = ["/app", "/devices", "/admin", "fi", "sv", "en", "username", "password", ""]
    assert order == expected, order
