"""docs/protocol.md is the interoperability contract: it documents every error code."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"""["'](koppi\.[a-z0-9_]+)["']""")


def _codes_in(*packages: str) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            found |= set(CODE.findall(path.read_text()))
    return found


def test_every_error_code_is_documented_in_the_protocol() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    missing = sorted(c for c in _codes_in("crypto", "server") if f"`{c}`" not in doc)
    assert not missing, f"codes missing from docs/protocol.md: {missing}"
