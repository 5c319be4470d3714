"""Generator of `koppi-keyfile.json`: sealed key files another implementation must open (§8).

Sealed with libsodium's MIN argon2id limits so the vectors run fast; real files use MODERATE or
stronger. Salt and nonce come from a seeded RNG, so the bytes are reproducible.
"""

from __future__ import annotations

from typing import Any

from crypto.clock import SeededRng
from crypto.keyfile import MEMLIMIT_MIN, OPSLIMIT_MIN, seal_keyfile

PASSPHRASE = "koppi vector passphrase \u00e4\u00f6"  # noqa: S105 (a published test vector)
SECRETS = {
    "device-sign": bytes(range(32)),
    "device-kem": bytes(range(32, 64)),
    "epoch/0123456789abcdef/7": bytes([7]) * 32,
}


def keyfile_vectors() -> dict[str, Any]:
    blob = seal_keyfile(
        SECRETS, PASSPHRASE, SeededRng("koppi-keyfile-vectors"), opslimit=OPSLIMIT_MIN,
        memlimit=MEMLIMIT_MIN,
    )  # fmt: skip
    empty = seal_keyfile(
        {}, PASSPHRASE, SeededRng("koppi-keyfile-vectors-empty"), opslimit=OPSLIMIT_MIN,
        memlimit=MEMLIMIT_MIN,
    )  # fmt: skip
    flipped_ct = bytearray(blob)
    flipped_ct[-1] ^= 0x01
    flipped_salt = bytearray(blob)
    # The salt sits after label, version, kdf name, limits and its own length prefix.
    salt_at = 4 + len(b"koppi/v1/keyfile") + 2 + 4 + len(b"argon2id") + 8 + 8 + 4
    flipped_salt[salt_at] ^= 0x01
    secrets_hex = {k: v.hex() for k, v in SECRETS.items()}
    pw = PASSPHRASE.encode("utf-8").hex()
    return {
        "generated_by": "crypto/vectors/gen_keyfile.py",
        "description": (
            "Sealed key files (docs/protocol.md §8). `passphrase` is the NFC UTF-8 passphrase in "
            "hex; open `file` with it and compare with `secrets` (name -> hex), or fail with "
            "expected_error."
        ),
        "cases": [
            {"name": "open", "file": blob.hex(), "passphrase": pw, "secrets": secrets_hex},
            {"name": "open-empty", "file": empty.hex(), "passphrase": pw, "secrets": {}},
            {
                "name": "wrong-passphrase",
                "file": blob.hex(),
                "passphrase": (PASSPHRASE + "!").encode().hex(),
                "expected_error": "koppi.auth_failed",
            },
            {
                "name": "flipped-tag-byte",
                "file": bytes(flipped_ct).hex(),
                "passphrase": pw,
                "expected_error": "koppi.auth_failed",
            },
            {
                "name": "flipped-salt-byte",
                "file": bytes(flipped_salt).hex(),
                "passphrase": pw,
                "expected_error": "koppi.auth_failed",
            },
            {
                "name": "truncated",
                "file": blob[:-1].hex(),
                "passphrase": pw,
                "expected_error": "koppi.auth_failed",
            },
        ],
    }


VECTORS = {"koppi-keyfile.json": keyfile_vectors}
