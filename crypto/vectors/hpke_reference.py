"""RFC 9180 base mode written out step by step, for tests and vector generators ONLY.

The protocol seals with `cryptography`'s own HPKE (`crypto.primitives.hpke_seal`), which draws a
fresh ephemeral key and takes no AAD. A vector needs a *fixed* ephemeral key so that its bytes can
be checked in; this module composes RFC 9180 base mode for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-128-GCM from X25519, HKDF labeled extract/expand and AES-128-GCM so that a generator can pass
the ephemeral secret in. It is proved against RFC 9180 A.1.1 (every intermediate value and every
encryption, AAD included) and `crypto.primitives.hpke_open` opens its output
(tests/crypto/test_upstream_vectors.py). Never import it from protocol code.

    >>> sk_r, pk_r = derive_key_pair(bytes(32))
    >>> sealed = seal(pk_r, b"info", b"secret", ephemeral_ikm=bytes([1]) * 32)
    >>> open_(sk_r, b"info", sealed)
    b'secret'

Section references are to RFC 9180.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.errors import AuthFailed
from crypto.primitives import check_x25519_public, hkdf_expand, hkdf_extract

KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256)
KDF_ID = 0x0001  # HKDF-SHA256
AEAD_ID = 0x0001  # AES-128-GCM
MODE_BASE = 0x00
N_SECRET = 32
N_ENC = 32
N_SK = 32
N_K = 16
N_N = 12
N_H = 32

KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")  # §4.1
HPKE_SUITE_ID = (
    b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
)  # §5.1


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """§4: Extract(salt, "HPKE-v1" || suite_id || label || ikm); empty salt = 32 zero bytes."""
    return hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """§4: Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)."""
    return hkdf_expand(
        prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info, length
    )


def _public(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def _dh(sk: bytes, pk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))


def derive_key_pair(ikm: bytes) -> tuple[bytes, bytes]:
    """§7.1.3 DeriveKeyPair for X25519 (sk from dkp_prk; pk = X25519(sk, 9))."""
    dkp_prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    sk = labeled_expand(KEM_SUITE_ID, dkp_prk, b"sk", b"", N_SK)
    return sk, _public(sk)


def _extract_and_expand(dh: bytes, kem_context: bytes) -> bytes:
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, N_SECRET)


def encap(pk_r: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
    """§4.1 Encap with a given ephemeral secret; returns (shared_secret, enc)."""
    check_x25519_public(pk_r)
    enc = _public(sk_e)
    return _extract_and_expand(_dh(sk_e, pk_r), enc + pk_r), enc


def decap(enc: bytes, sk_r: bytes) -> bytes:
    """§4.1 Decap; returns shared_secret."""
    check_x25519_public(enc)
    return _extract_and_expand(_dh(sk_r, enc), enc + _public(sk_r))


@dataclass(frozen=True)
class Context:
    """§5.1 key schedule output, base mode (psk and psk_id empty)."""

    key_schedule_context: bytes
    secret: bytes = field(repr=False)
    key: bytes = field(repr=False)
    base_nonce: bytes
    exporter_secret: bytes = field(repr=False)

    def nonce(self, seq: int) -> bytes:
        """§5.2 ComputeNonce: base_nonce XOR I2OSP(seq, Nn)."""
        return bytes(a ^ b for a, b in zip(self.base_nonce, seq.to_bytes(N_N, "big"), strict=True))

    def seal(self, seq: int, aad: bytes, pt: bytes) -> bytes:
        return AESGCM(self.key).encrypt(self.nonce(seq), pt, aad)

    def open(self, seq: int, aad: bytes, ct: bytes) -> bytes:
        try:
            return AESGCM(self.key).decrypt(self.nonce(seq), ct, aad)
        except InvalidTag:
            raise AuthFailed() from None


def key_schedule(shared_secret: bytes, info: bytes) -> Context:
    """§5.1 KeySchedule for mode_base."""
    psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info)
    ksc = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"")
    return Context(
        key_schedule_context=ksc,
        secret=secret,
        key=labeled_expand(HPKE_SUITE_ID, secret, b"key", ksc, N_K),
        base_nonce=labeled_expand(HPKE_SUITE_ID, secret, b"base_nonce", ksc, N_N),
        exporter_secret=labeled_expand(HPKE_SUITE_ID, secret, b"exp", ksc, N_H),
    )


def seal(
    pk_r: bytes,
    info: bytes,
    plaintext: bytes,
    *,
    ephemeral_ikm: bytes | None = None,
    ephemeral_secret: bytes | None = None,
    aad: bytes = b"",
) -> bytes:
    """§6.1 single-shot Seal with a fixed ephemeral key; returns enc(32) || ct || tag.

    The ephemeral key is given either as DeriveKeyPair input (`ephemeral_ikm`, as RFC 9180's own
    vectors do) or as the raw X25519 secret. With `aad=b""` the output is exactly what the
    protocol's
    `hpke_seal` would produce had it drawn that ephemeral key.
    """
    if (ephemeral_ikm is None) == (ephemeral_secret is None):
        raise ValueError("give exactly one of ephemeral_ikm and ephemeral_secret")
    sk_e = derive_key_pair(ephemeral_ikm)[0] if ephemeral_ikm is not None else ephemeral_secret
    assert sk_e is not None
    shared_secret, enc = encap(pk_r, sk_e)
    return enc + key_schedule(shared_secret, info).seal(0, aad, plaintext)


def open_(sk_r: bytes, info: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    """§6.1 single-shot Open of enc || ct; raises `AuthFailed`."""
    enc, ct = sealed[:N_ENC], sealed[N_ENC:]
    return key_schedule(decap(enc, sk_r), info).open(0, aad, ct)
