"""Suite 1 primitives, with Koppi's strict checks before the library calls (docs/protocol.md §2).

Everything here is a thin layer over `cryptography`; nothing is invented. What we add:

- **Strict Ed25519 verification.** Engines disagree on non-canonical and small-order inputs, and a
  signature that some members accept and others reject splits a group. Before the library call we
  reject S >= L, any point encoding whose y >= p, and small-order A or R (libsodium's rule:
  compare y, sign bit ignored, against the y of the eight small-order points).
- **X25519 public keys** with a low-order u (or a non-canonical u >= p) are refused when a key is
  accepted, and an all-zero shared secret is refused at exchange time.
- HPKE base mode is `cryptography`'s own (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM);
  all context goes into `info`, output is enc(32) || ct || tag.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from crypto.clock import Rng
from crypto.errors import AuthFailed, RemoteProtocolError

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493

# y-coordinates of the eight small-order points of edwards25519 (orders 1, 2, 4 and 8).
_SMALL_ORDER_Y = frozenset(
    {
        1,  # identity
        P - 1,  # order 2: (0, -1)
        0,  # order 4: (+-sqrt(-1), 0)
        int.from_bytes(
            bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
            "little",
        ),
        int.from_bytes(
            bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            "little",
        ),
    }
)

# u-coordinates of the low-order points of Curve25519 (RFC 7748 §6.1; Bernstein's list).
_LOW_ORDER_U = frozenset(
    {
        0,
        1,
        P - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)

HASH_LEN = 32
AEAD_KEY_LEN = 32
AEAD_NONCE_LEN = 12
AEAD_TAG_LEN = 16
HPKE_ENC_LEN = 32


class WeakKey(RemoteProtocolError):
    """A public key that is low-order, small-order or non-canonical."""

    default_code = "koppi.weak_key"


# --- hashing and KDF ----------------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")  # the one-shot C path of the same HMAC


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 §2.2. An empty salt means HashLen zero bytes, which HMAC treats identically."""
    return hmac_sha256(salt or bytes(HASH_LEN), ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


# --- AES-256-GCM --------------------------------------------------------------------------------


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM; returns ct || tag."""
    if len(key) != AEAD_KEY_LEN or len(nonce) != AEAD_NONCE_LEN:
        raise ValueError("AES-256-GCM needs a 32-byte key and a 12-byte nonce")
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    if len(key) != AEAD_KEY_LEN or len(nonce) != AEAD_NONCE_LEN:
        raise ValueError("AES-256-GCM needs a 32-byte key and a 12-byte nonce")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise AuthFailed() from None


# --- Ed25519 ------------------------------------------------------------------------------------


def _ed_point_is_acceptable(encoding: bytes) -> bool:
    y = int.from_bytes(encoding, "little") & ((1 << 255) - 1)
    return y < P and y not in _SMALL_ORDER_Y


def check_ed25519_public(public: bytes) -> bytes:
    """Accept an Ed25519 public key only if canonical and not of small order."""
    if len(public) != 32 or not _ed_point_is_acceptable(public):
        raise WeakKey("Ed25519 public key is non-canonical or of small order")
    return public


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Strict verification (docs/protocol.md §1): raises `AuthFailed` on any failure."""
    if len(public) != 32 or len(signature) != 64:
        raise AuthFailed()
    if not _ed_point_is_acceptable(public) or not _ed_point_is_acceptable(signature[:32]):
        raise AuthFailed()
    if int.from_bytes(signature[32:], "little") >= L:
        raise AuthFailed()
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise AuthFailed() from None


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key. Its repr shows the public key only."""

    _seed: bytes = field(repr=False)

    @classmethod
    def generate(cls, rng: Rng) -> SigningKey:
        return cls(rng.random_bytes(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(seed)

    def _key(self) -> Ed25519PrivateKey:
        return self._loaded

    def __getstate__(self) -> dict[str, bytes]:
        return {"_seed": self._seed}  # the cached library object is rebuilt, not pickled

    @cached_property
    def _loaded(self) -> Ed25519PrivateKey:
        # Loading expands the seed and computes the public key: do it once per key, not per call.
        return Ed25519PrivateKey.from_private_bytes(self._seed)

    @cached_property
    def public(self) -> bytes:
        return self._loaded.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._key().sign(message)

    def seed_bytes(self) -> bytes:
        """The raw seed, for sealing into a key file only."""
        return self._seed

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public.hex()[:16]}.., ..)"


# --- X25519 -------------------------------------------------------------------------------------


def check_x25519_public(public: bytes) -> bytes:
    """Accept an X25519 public key only if its u is canonical (< p) and not low-order."""
    if len(public) != 32:
        raise WeakKey("X25519 public key must be 32 bytes")
    u = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if u >= P or u in _LOW_ORDER_U:
        raise WeakKey("X25519 public key is low-order or non-canonical")
    return public


@dataclass(frozen=True)
class KemKey:
    """An X25519 private key (HPKE recipient key). Its repr shows the public key only."""

    _raw: bytes = field(repr=False)

    @classmethod
    def generate(cls, rng: Rng) -> KemKey:
        return cls(rng.random_bytes(32))

    @classmethod
    def from_bytes(cls, raw: bytes) -> KemKey:
        if len(raw) != 32:
            raise ValueError("an X25519 private key is 32 bytes")
        return cls(raw)

    def _key(self) -> X25519PrivateKey:
        return self._loaded

    def __getstate__(self) -> dict[str, bytes]:
        return {"_raw": self._raw}

    @cached_property
    def _loaded(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self._raw)

    @cached_property
    def public(self) -> bytes:
        return self._loaded.public_key().public_bytes_raw()

    def exchange(self, peer_public: bytes) -> bytes:
        check_x25519_public(peer_public)
        try:
            shared = self._key().exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:  # OpenSSL refuses an all-zero result
            raise WeakKey("X25519 shared secret is all zero") from None
        if shared == bytes(32):
            raise WeakKey("X25519 shared secret is all zero")
        return shared

    def private_bytes(self) -> bytes:
        """The raw private key, for sealing into a key file only."""
        return self._raw

    def __repr__(self) -> str:
        return f"KemKey(public={self.public.hex()[:16]}.., ..)"


# --- HPKE (RFC 9180 base mode) ------------------------------------------------------------------

_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)


def hpke_seal(recipient_public: bytes, info: bytes, plaintext: bytes) -> bytes:
    """Single-shot HPKE base mode; returns enc(32) || ct || tag. No AAD: context goes in info."""
    check_x25519_public(recipient_public)
    return _HPKE.encrypt(plaintext, X25519PublicKey.from_public_bytes(recipient_public), info=info)


def hpke_open(recipient: KemKey, info: bytes, sealed: bytes) -> bytes:
    if len(sealed) < HPKE_ENC_LEN + AEAD_TAG_LEN:
        raise AuthFailed()
    try:
        return _HPKE.decrypt(sealed, recipient._key(), info=info)
    except (InvalidTag, ValueError):
        raise AuthFailed() from None
