"""Generator of `koppi-encoding.json`: strict decoding of hand-built byte strings (§1).

Each case names the structure to decode (`storage-label` from §7, `consent-org` from §6) and holds
bytes built field by field, so a second implementation sees exactly which rule each breaks.
"""

from __future__ import annotations

from typing import Any

ORG_A = bytes(range(16))
ORG_B = bytes(range(16, 32))


def _field(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _label(orgs: list[bytes], basis: str = "consent", days: int = 0, tail: bytes = b"") -> bytes:
    items = b"".join(_field(o) for o in orgs)
    return (
        _field(b"koppi/v1/storage-label")
        + len(orgs).to_bytes(4, "big")
        + items
        + _field(basis.encode())
        + days.to_bytes(4, "big")
        + tail
    )


def _consent_org(flag: int) -> bytes:
    return (
        _field(b"koppi/v1/consent-org")
        + _field(ORG_A)
        + (0).to_bytes(4, "big")
        + bytes([flag])
        + _field(b"consent")
        + _field(b"")  # statute: none
        + _field(b"")  # justification: none
        + bytes([0])  # full_history: no
    )


def encoding_vectors() -> dict[str, Any]:
    ok = _label([ORG_A, ORG_B], days=30)
    cases: list[dict[str, Any]] = [
        {
            "name": "label-canonical",
            "structure": "storage-label",
            "bytes": ok.hex(),
            "expected": {
                "organisations": [ORG_A.hex(), ORG_B.hex()],
                "basis": "consent",
                "retention_days": 30,
            },
        },
        {
            "name": "label-empty-list",
            "structure": "storage-label",
            "bytes": _label([]).hex(),
            "expected": {"organisations": [], "basis": "consent", "retention_days": 0},
        },
        {
            "name": "list-unsorted",
            "structure": "storage-label",
            "bytes": _label([ORG_B, ORG_A]).hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "list-duplicate-entry",
            "structure": "storage-label",
            "bytes": _label([ORG_A, ORG_A]).hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "trailing-byte",
            "structure": "storage-label",
            "bytes": _label([ORG_A], tail=b"\x00").hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "truncated",
            "structure": "storage-label",
            "bytes": ok[:-1].hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "wrong-domain-label",
            "structure": "storage-label",
            "bytes": (_field(b"koppi/v1/storage-labels") + ok[4 + 22 :]).hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "length-prefix-beyond-the-end",
            "structure": "storage-label",
            "bytes": (ok[:26] + (0xFFFFFFFF).to_bytes(4, "big")).hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "organisation-id-of-15-bytes",
            "structure": "storage-label",
            "bytes": _label([ORG_A[:15]]).hex(),
            "expected_error": "koppi.bad_label",
        },
        {
            "name": "basis-outside-the-list",
            "structure": "storage-label",
            "bytes": _label([ORG_A], basis="whim").hex(),
            "expected_error": "koppi.bad_label",
        },
        {
            "name": "invalid-utf8-text",
            "structure": "storage-label",
            "bytes": (
                _label([ORG_A])[: -4 - 11] + _field(b"\xff\xfe") + (0).to_bytes(4, "big")
            ).hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "boolean-0",
            "structure": "consent-org",
            "bytes": _consent_org(0).hex(),
            "expected": {"may_store": False},
        },
        {
            "name": "boolean-1",
            "structure": "consent-org",
            "bytes": _consent_org(1).hex(),
            "expected": {"may_store": True},
        },
        {
            "name": "boolean-2-is-not-canonical",
            "structure": "consent-org",
            "bytes": _consent_org(2).hex(),
            "expected_error": "koppi.decode",
        },
    ]
    return {
        "generated_by": "crypto/vectors/gen_encoding.py",
        "description": (
            "Strict decoding (docs/protocol.md §1). Decode `bytes` as the named structure "
            "(`storage-label`: §7.1; `consent-org`: §6); a positive case gives the decoded "
            "fields, a negative one the error code."
        ),
        "cases": cases,
    }


VECTORS = {"koppi-encoding.json": encoding_vectors}
