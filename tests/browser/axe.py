"""axe-core in the page under test, with no network: the engine ships inside the PyPI package
`axe-playwright-python` (pyproject's test extra), which we only read `axe.min.js` from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import axe_playwright_python

AXE = Path(axe_playwright_python.__file__).with_name("axe.min.js")
# WCAG 2.2 A and AA (2.0 and 2.1 included), and axe's best practices (landmarks, headings).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def violations(page: Any) -> list[str]:
    """Every rule the page breaks, one line each: rule, impact, the elements. Evaluated through
    DevTools, not as a page script: the page's CSP is not loosened for it."""
    page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """(tags) => axe.run(document, { runOnly: { type: "tag", values: tags },
                                         resultTypes: ["violations"] })
            .then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact,
              nodes: v.nodes.map((n) => n.target.join(" ")) })))""",
        TAGS,
    )
    return [f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}" for v in found]
