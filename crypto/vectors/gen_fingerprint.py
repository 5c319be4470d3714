"""Generator of `koppi-fingerprint.json`: device fingerprints, hex and word forms (§3).

`device` cases: a device's two public keys, its device id, the 32-byte fingerprint and both forms
people compare; the first is the device of `koppi-identity.json` (same seeds). `words` cases: bytes
as PGP words; "every-word" says each byte value 0-255 twice in a row, so it runs all 512 words of
both lists through an implementation. Negative cases: keys of the wrong length.
"""

from __future__ import annotations

from typing import Any

from crypto.fingerprint import fingerprint, fingerprint_hex, fingerprint_words, pgp_words
from crypto.primitives import KemKey, SigningKey
from crypto.trust import device_id_of
from crypto.vectors.gen_identity import DEVICE_SEED, KEM_PRIVATE
from crypto.wordlist import WORDLIST_SHA256

MISUSE = "koppi.local_misuse"


def _device(name: str, signing_seed: bytes, kem_private: bytes) -> dict[str, Any]:
    signing = SigningKey.from_seed(signing_seed).public
    kem = KemKey.from_bytes(kem_private).public
    return {
        "name": name,
        "kind": "device",
        "signing_public": signing.hex(),
        "kem_public": kem.hex(),
        "device_id": device_id_of(signing).hex(),
        "fingerprint": fingerprint(signing, kem).hex(),
        "hex": fingerprint_hex(signing, kem),
        "words": fingerprint_words(signing, kem),
    }


def _words(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "kind": "words", "bytes": data.hex(), "words": pgp_words(data)}


def _refused(name: str, signing: bytes, kem: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "device",
        "signing_public": signing.hex(),
        "kem_public": kem.hex(),
        "expected_error": MISUSE,
    }


def fingerprint_vectors() -> dict[str, Any]:
    identity = _device("koppi-identity-device", DEVICE_SEED, KEM_PRIVATE)
    same_signing_key = _device("same-signing-key-other-kem-key", DEVICE_SEED, bytes([7]) * 32)
    assert same_signing_key["device_id"] == identity["device_id"]
    assert same_signing_key["words"] != identity["words"]
    key = bytes.fromhex(identity["signing_public"])
    cases = [
        identity,
        same_signing_key,
        *(
            _device(f"device-{i:02x}", bytes([i]) * 32, bytes([0x80 + i]) * 32)
            for i in (1, 2, 3, 0x42)
        ),
        _words("every-word", bytes(b for b in range(256) for _ in range(2))),
        _words("empty", b""),
        _words("one-byte", b"\xff"),
        _words("swapped-pair-reads-differently", b"\x12\x34\x34\x12"),
        _refused("signing-key-of-31-bytes", key[:31], key),
        _refused("kem-key-of-33-bytes", key, key + b"\x00"),
        _refused("empty-signing-key", b"", key),
        _refused("missing-kem-key", key, b""),
    ]
    return {
        "generated_by": "crypto/vectors/gen_fingerprint.py",
        "description": (
            "Device fingerprints (docs/protocol.md §3, Fingerprints). `device` cases: compute "
            'fingerprint = H("koppi/v1/fingerprint", signing_public, kem_public) and compare it, '
            "its hex form (first 16 bytes, 8 groups of 4 lowercase hex digits, one space apart) "
            "and its word form (first 8 bytes as PGP words); a negative case (a key not 32 bytes "
            "long) must raise `expected_error`. `words` cases: encode `bytes` as PGP words, the "
            "two-syllable list at even positions and the three-syllable list at odd ones."
        ),
        "wordlist_sha256": WORDLIST_SHA256,
        "cases": cases,
    }


VECTORS = {"koppi-fingerprint.json": fingerprint_vectors}
