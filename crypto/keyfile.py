"""The Python client's local key file: named secrets sealed by a passphrase (docs/protocol.md §8).

Device keys never leave the device (outline §2). A Python client keeps them, and the old epoch
secrets that history re-wrapping needs, in one file sealed with argon2id (libsodium via pynacl) and
AES-256-GCM, the file header being the associated data, so that the KDF parameters, salt and nonce
cannot be changed without the open failing:

    >>> from crypto.clock import SeededRng
    >>> blob = seal_keyfile({"device-sign": b"\\x01" * 32}, "correct horse", SeededRng("doc"),
    ...                     opslimit=OPSLIMIT_MIN, memlimit=MEMLIMIT_MIN)
    >>> secrets = open_keyfile(blob, "correct horse")
    >>> secrets
    KeyFileSecrets(names=['device-sign'], ..)
    >>> secrets["device-sign"] == b"\\x01" * 32
    True

A wrong passphrase and any change to the file raise `AuthFailed` (`koppi.auth_failed`) and say
nothing more. Nothing here writes to disk: the caller stores the bytes (atomically, mode 0600).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash

from crypto.clock import Rng
from crypto.encoding import DecodeError, Decoder, Encoder
from crypto.errors import AuthFailed, LocalProtocolError
from crypto.primitives import AEAD_KEY_LEN, AEAD_NONCE_LEN, aead_open, aead_seal

LABEL = "koppi/v1/keyfile"
SECRETS_LABEL = "koppi/v1/keyfile-secrets"
ENTRY_LABEL = "koppi/v1/keyfile-entry"
FORMAT_VERSION = 1
KDF_NAME = "argon2id"
SALT_LEN = nacl.pwhash.argon2id.SALTBYTES  # 16

OPSLIMIT_MIN = nacl.pwhash.argon2id.OPSLIMIT_MIN
MEMLIMIT_MIN = nacl.pwhash.argon2id.MEMLIMIT_MIN
OPSLIMIT_MODERATE = nacl.pwhash.argon2id.OPSLIMIT_MODERATE  # 3 passes
MEMLIMIT_MODERATE = nacl.pwhash.argon2id.MEMLIMIT_MODERATE  # 256 MiB
# A file may not make its opener spend more than this (a planted file is a denial of service).
OPSLIMIT_CAP = 16
MEMLIMIT_CAP = 4 * 1024**3
MAX_SECRETS = 10_000


@dataclass(frozen=True)
class KeyFileHeader:
    """The cleartext part of a key file; also the AEAD's associated data."""

    opslimit: int
    memlimit: int
    salt: bytes
    nonce: bytes

    def encode(self) -> bytes:
        """encode("koppi/v1/keyfile", u16 1, text "argon2id", u64 ops, u64 mem, salt, nonce)."""
        return (
            Encoder(LABEL)
            .u16(FORMAT_VERSION)
            .text(KDF_NAME)
            .u64(self.opslimit)
            .u64(self.memlimit)
            .bytes(self.salt)
            .bytes(self.nonce)
            .finish()
        )


class KeyFileSecrets(Mapping[str, bytes]):
    """The opened secrets, by name. Its repr lists the names, never a value."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, bytes]) -> None:
        self._items = dict(items)

    def __getitem__(self, name: str) -> bytes:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"KeyFileSecrets(names={sorted(self._items)!r}, ..)"

    __str__ = __repr__


def _normalise(passphrase: str | bytes) -> bytes:
    """Text passphrases are NFC-normalised UTF-8, so every platform derives the same key."""
    if isinstance(passphrase, str):
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return bytes(passphrase)


def _derive(passphrase: bytes, header: KeyFileHeader) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        AEAD_KEY_LEN, passphrase, header.salt, opslimit=header.opslimit, memlimit=header.memlimit
    )


def _encode_secrets(secrets: Mapping[str, bytes]) -> bytes:
    entries = [Encoder(ENTRY_LABEL).text(n).bytes(v).finish() for n, v in secrets.items()]
    return Encoder(SECRETS_LABEL).list(entries).finish()


def _decode_secrets(data: bytes) -> dict[str, bytes]:
    dec = Decoder(data, SECRETS_LABEL)
    out: dict[str, bytes] = {}
    for raw in dec.list(max_items=MAX_SECRETS):
        entry = Decoder(raw, ENTRY_LABEL)
        name, value = entry.text(), entry.bytes()
        entry.finish()
        if name in out:
            raise DecodeError("duplicate secret name")
        out[name] = value
    dec.finish()
    return out


def seal_keyfile(
    secrets: Mapping[str, bytes],
    passphrase: str | bytes,
    rng: Rng,
    *,
    opslimit: int = OPSLIMIT_MODERATE,
    memlimit: int = MEMLIMIT_MODERATE,
) -> bytes:
    """Seal `secrets` under `passphrase`; returns the file's bytes.

    Defaults are libsodium's MODERATE limits (stronger than the outline's "interactive" floor);
    tests pass the MIN limits for speed. Salt and nonce come from the injected RNG.
    """
    if not (OPSLIMIT_MIN <= opslimit <= OPSLIMIT_CAP and MEMLIMIT_MIN <= memlimit <= MEMLIMIT_CAP):
        raise LocalProtocolError("argon2id limits out of the allowed range")
    if not passphrase:
        raise LocalProtocolError("an empty passphrase protects nothing")
    if len(secrets) > MAX_SECRETS:
        raise LocalProtocolError("too many secrets for one key file")
    header = KeyFileHeader(
        opslimit, memlimit, rng.random_bytes(SALT_LEN), rng.random_bytes(AEAD_NONCE_LEN)
    )
    head = header.encode()
    key = _derive(_normalise(passphrase), header)
    ct = aead_seal(key, header.nonce, _encode_secrets(secrets), head)
    return head + Encoder(LABEL + "/ciphertext").bytes(ct).finish()


def read_header(data: bytes) -> KeyFileHeader:
    """Parse the cleartext header (no passphrase needed); raises `AuthFailed` if malformed."""
    return _split(data)[0]


def _split(data: bytes) -> tuple[KeyFileHeader, bytes, bytes]:
    try:
        dec = Decoder(data, LABEL)
        if dec.u16() != FORMAT_VERSION or dec.text(max_len=32) != KDF_NAME:
            raise DecodeError("unknown key file format")
        ops, mem = dec.u64(), dec.u64()
        salt = dec.bytes(length=SALT_LEN)
        nonce = dec.bytes(length=AEAD_NONCE_LEN)
        head_len = len(data) - dec.remaining()
        tail = Decoder(data[head_len:], LABEL + "/ciphertext")
        ct = tail.bytes()
        tail.finish()
    except DecodeError:
        raise AuthFailed("key file cannot be opened") from None
    if not (OPSLIMIT_MIN <= ops <= OPSLIMIT_CAP and MEMLIMIT_MIN <= mem <= MEMLIMIT_CAP):
        raise AuthFailed("key file cannot be opened")
    return KeyFileHeader(ops, mem, salt, nonce), data[:head_len], ct


def open_keyfile(data: bytes, passphrase: str | bytes) -> KeyFileSecrets:
    """Open a key file; a wrong passphrase or any change to the bytes raises `AuthFailed`."""
    header, head, ct = _split(data)
    try:
        key = _derive(_normalise(passphrase), header)
    except nacl.exceptions.CryptoError:
        raise AuthFailed("key file cannot be opened") from None
    plaintext = aead_open(key, header.nonce, ct, head)
    try:
        return KeyFileSecrets(_decode_secrets(plaintext))
    except DecodeError:  # authentic but malformed: only a buggy writer produces this
        raise AuthFailed("key file cannot be opened") from None
