"""Device fingerprints: what a professional and their organisation's admin compare before the admin
certifies a device (docs/protocol.md §3, "Fingerprints").

    fingerprint = H("koppi/v1/fingerprint", signing_public(32), kem_public(32))    32 bytes
    hex form    = its first 16 bytes as 32 lowercase hex digits, 8 groups of 4, one space apart
    word form   = its first 8 bytes as 8 words of the PGP word list (`crypto/wordlist.py`): the byte
                  at position i is EVEN_WORDS[b] for even i, ODD_WORDS[b] for odd i

The fingerprint commits to both public keys that the certificate will carry, not only to the
device id: the device id is the hash of the signing key alone, so a fingerprint of the id would let
a server swap the KEM key that epoch secrets are wrapped to without changing what people compare.

Each side computes it from the keys it holds itself: the enrolling device from its own keys, the
admin's browser from the very keys it is about to sign into the certificate. Eight words carry 64
bits: to pass the comparison, a server would have to find, after seeing the device's fresh keys and
before the admin compares, keys of its own whose fingerprint starts with the same 8 bytes, a second
preimage costing about 2^64 SHA-256 evaluations per targeted enrolment. The hex form carries 128.

    >>> pgp_words(bytes([0x00, 0x00, 0xFF, 0xFF]))  # the same byte reads differently by position
    ['aardvark', 'adroitness', 'Zulu', 'Yucatan']
    >>> len(fingerprint_words(bytes(32), bytes(32))), len(fingerprint_hex(bytes(32), bytes(32)))
    (8, 39)
"""

from __future__ import annotations

from crypto.encoding import hash_fields
from crypto.errors import LocalProtocolError
from crypto.wordlist import EVEN_WORDS, ODD_WORDS

__all__ = [
    "FINGERPRINT_LABEL",
    "HEX_BYTES",
    "WORD_BYTES",
    "fingerprint",
    "fingerprint_hex",
    "fingerprint_words",
    "pgp_words",
]

FINGERPRINT_LABEL = "koppi/v1/fingerprint"
KEY_LEN = 32
HEX_BYTES = 16  # the hex form: 128 bits
WORD_BYTES = 8  # the word form: 64 bits, 8 words


def _key(name: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise LocalProtocolError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != KEY_LEN:
        raise LocalProtocolError(
            f"{name} must be {KEY_LEN} bytes (a raw public key), not {len(value)}"
        )
    return bytes(value)


def fingerprint(signing_public: bytes, kem_public: bytes) -> bytes:
    """H("koppi/v1/fingerprint", signing_public, kem_public): 32 bytes, over a device's Ed25519
    signing key and X25519 KEM key as they will appear in its certificate."""
    return hash_fields(
        FINGERPRINT_LABEL,
        _key("signing_public", signing_public),
        _key("kem_public", kem_public),
    )


def pgp_words(data: bytes) -> list[str]:
    """Bytes as PGP words: even positions from the two-syllable list, odd from the three."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"PGP words encode bytes, not {type(data).__name__}")
    return [(ODD_WORDS if i % 2 else EVEN_WORDS)[b] for i, b in enumerate(bytes(data))]


def fingerprint_hex(signing_public: bytes, kem_public: bytes) -> str:
    """The hex form: the fingerprint's first 16 bytes as 8 space-separated groups of 4 digits."""
    h = fingerprint(signing_public, kem_public)[:HEX_BYTES].hex()
    return " ".join(h[i : i + 4] for i in range(0, len(h), 4))


def fingerprint_words(signing_public: bytes, kem_public: bytes) -> list[str]:
    """The word form: the fingerprint's first 8 bytes as 8 PGP words, to be read aloud."""
    return pgp_words(fingerprint(signing_public, kem_public)[:WORD_BYTES])
