"""Loader for the vector files in `crypto/vectors/` (docs/protocol.md §9).

Format (the browser twin reads the same files):

- one JSON object per file, UTF-8;
- provenance: `source` (an upstream document, e.g. "RFC 8032 §7.1") or `generated_by` (the
  generator module in this repository), plus a human `description`;
- `cases`: a list of objects; byte strings are lowercase hex without a prefix, integers are JSON
  numbers (all below 2^53, so a browser reads them exactly);
- a negative case carries `expected_error`, a stable `koppi.*` error code; a positive case has none.

Tests iterate `load(name).cases` and parametrise on `ids()` so a failure names its case.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crypto.vectors

VECTOR_DIR = Path(crypto.vectors.__file__).resolve().parent
_HEX = re.compile(r"^(?:[0-9a-f]{2})*$")
_CODE = re.compile(r"^koppi\.[a-z0-9_.]+$")


@dataclass(frozen=True)
class VectorFile:
    name: str
    provenance: str
    description: str
    cases: list[dict[str, Any]]
    doc: dict[str, Any]


def load(name: str) -> VectorFile:
    """Read and sanity-check one vector file; a malformed file fails loudly, not silently."""
    doc = json.loads((VECTOR_DIR / name).read_text(encoding="utf-8"))
    provenance = doc.get("source") or doc.get("generated_by")
    if not isinstance(provenance, str) or not provenance:
        raise AssertionError(f"{name}: no source/generated_by")
    if not isinstance(doc.get("description"), str):
        raise AssertionError(f"{name}: no description")
    cases = doc.get("cases")
    if not isinstance(cases, list) or not cases:
        raise AssertionError(f"{name}: no cases")
    for case in cases:
        err = case.get("expected_error")
        if err is not None and not _CODE.match(err):
            raise AssertionError(f"{name}: bad expected_error {err!r}")
    return VectorFile(name, provenance, doc["description"], cases, doc)


def unhex(value: str) -> bytes:
    """Decode a vector's hex string, refusing upper case or odd lengths (format drift)."""
    if not _HEX.match(value):
        raise AssertionError(f"not lowercase hex: {value[:20]!r}")
    return bytes.fromhex(value)


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("name", i)) for i, c in enumerate(cases)]
