"""Identity and trust: certificates, key packages, DeviceLinks, revocations (docs/protocol.md §3).

The chain is deployment root key -> organisation key -> device certificate. Every organisation key,
rotation, device certificate, DeviceLink and revocation is a transparency-log entry; the entry *is*
the signed structure's encoding (its domain label says what kind of entry it is), so what a client
verifies and what the log commits to are the same bytes.

**Validity is ordered by log position, not by self-asserted dates.** A device certificate counts
only if it was logged before its organisation key was retired (rotated away or revoked); a device
revocation logged at index i applies to every epoch whose commit echoes a tree size > i, so
messages of earlier epochs stay verifiable.

`TrustStore` is a client's verified knowledge: it accepts each structure only with a valid
signature chain and an inclusion proof against its `LogView`, and answers the group state's
questions through the `TrustView` protocol (`crypto/trust.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from crypto.consent import ConsentBook, ConsentRecord, verify_consent
from crypto.encoding import Decoder, Encoder
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.primitives import (
    KemKey,
    SigningKey,
    check_ed25519_public,
    check_x25519_public,
    ed25519_verify,
    sha256,
)
from crypto.treehead import LogView, key_id
from crypto.trust import ConsentCover, VerifiedDevice, device_id_of

__all__ = [
    "KEY_PACKAGE_MAX_LIFETIME",
    "ROLES",
    "DeviceCert",
    "DeviceLink",
    "DeviceSecrets",
    "IdentityError",
    "KeyPackage",
    "OrgCert",
    "Revocation",
    "TrustStore",
]

ROLE_PROFESSIONAL = "professional"
ROLE_CONSENT_RECORDER = "consent-recorder"
ROLE_ORG_ADMIN = "org-admin"
ROLE_KEEPER = "keeper"  # an organisation's always-on device (e.g. its record-system client)
ROLES = frozenset({ROLE_PROFESSIONAL, ROLE_CONSENT_RECORDER, ROLE_ORG_ADMIN, ROLE_KEEPER})

KEY_PACKAGE_MAX_LIFETIME = 7 * 24 * 3600  # seconds (outline §2)
ID_LEN = 16  # organisation and user ids
HASH_LEN = 32
SIG_LEN = 64

UNKNOWN_ORG_KEY = "koppi.unknown_org_key"
BAD_ROTATION = "koppi.bad_rotation"
CERT_AFTER_RETIREMENT = "koppi.cert_after_retirement"
UNKNOWN_DEVICE = "koppi.unknown_device"
KEY_PACKAGE_EXPIRED = "koppi.key_package_expired"
KEY_PACKAGE_MISMATCH = "koppi.key_package_mismatch"
BAD_DEVICE_LINK = "koppi.bad_device_link"
BAD_REVOCATION = "koppi.bad_revocation"
BAD_ROLE = "koppi.bad_role"
CONFLICTING_CERT = "koppi.conflicting_certificate"


class IdentityError(RemoteProtocolError):
    """A certificate, key package, link or revocation that does not verify in the chain."""

    default_code = "koppi.identity"


def _check_roles(roles: Iterable[str]) -> frozenset[str]:
    out = frozenset(roles)
    unknown = out - ROLES
    if unknown:
        raise IdentityError(f"unknown role(s) {sorted(unknown)}", code=BAD_ROLE)
    return out


def _signed(label: str, core: bytes, *signatures: bytes) -> bytes:
    enc = Encoder(label).bytes(core)
    for s in signatures:
        enc.bytes(s)
    return enc.finish()


def _sig_message(label: str, core: bytes) -> bytes:
    return Encoder(label).bytes(core).finish()


# --- organisation keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgCert:
    """An organisation signing key, certified by the deployment root.

    core = encode("koppi/v1/org-cert", bytes org_id(16), text name, text business_id,
                  bytes org_public(32), u32 generation, bytes prev_public (empty or 32),
                  u64 issued_at)
    signed = encode("koppi/v1/org-cert-signed", bytes core, bytes root_sig, bytes prev_sig)

    `root_sig` is the root's signature over encode("koppi/v1/org-cert-sig/root", bytes core); a
    rotation (generation > 0) also carries `prev_sig`, the previous organisation key's signature
    over encode("koppi/v1/org-cert-sig/prev", bytes core); generation 0 has an empty prev_sig.
    """

    org_id: bytes
    name: str
    business_id: str
    org_public: bytes
    generation: int
    prev_public: bytes
    issued_at: int
    root_sig: bytes = field(repr=False, default=b"")
    prev_sig: bytes = field(repr=False, default=b"")

    def core(self) -> bytes:
        return (
            Encoder("koppi/v1/org-cert")
            .bytes(self.org_id)
            .text(self.name)
            .text(self.business_id)
            .bytes(self.org_public)
            .u32(self.generation)
            .bytes(self.prev_public)
            .u64(self.issued_at)
            .finish()
        )

    def encode(self) -> bytes:
        return _signed("koppi/v1/org-cert-signed", self.core(), self.root_sig, self.prev_sig)

    @property
    def key_id(self) -> bytes:
        return key_id(self.org_public)

    @classmethod
    def decode(cls, data: bytes) -> OrgCert:
        outer = Decoder(data, "koppi/v1/org-cert-signed")
        core = outer.bytes(max_len=4096)
        root_sig = outer.bytes(length=SIG_LEN)
        prev_sig = outer.bytes(max_len=SIG_LEN)
        outer.finish()
        cert = cls.from_core(core, root_sig, prev_sig)
        if (cert.generation == 0) != (cert.prev_public == b"" and prev_sig == b""):
            raise IdentityError(
                "a rotation names its previous key and is signed by it", code=BAD_ROTATION
            )
        if cert.generation > 0 and (len(cert.prev_public) != 32 or len(prev_sig) != SIG_LEN):
            raise IdentityError("malformed rotation", code=BAD_ROTATION)
        return cert

    @classmethod
    def from_core(cls, core: bytes, root_sig: bytes, prev_sig: bytes) -> OrgCert:
        dec = Decoder(core, "koppi/v1/org-cert")
        cert = cls(
            org_id=dec.bytes(length=ID_LEN),
            name=dec.text(max_len=256),
            business_id=dec.text(max_len=64),
            org_public=dec.bytes(length=32),
            generation=dec.u32(),
            prev_public=dec.bytes(max_len=32),
            issued_at=dec.u64(),
            root_sig=root_sig,
            prev_sig=prev_sig,
        )
        dec.finish()
        return cert

    @classmethod
    def issue(
        cls,
        *,
        root: SigningKey,
        org_id: bytes,
        name: str,
        business_id: str,
        org_public: bytes,
        issued_at: int,
        previous: tuple[OrgCert, SigningKey] | None = None,
    ) -> OrgCert:
        """The operator admits an organisation (generation 0) or co-signs a rotation with the
        previous organisation key, so a stolen root alone cannot replace a live organisation."""
        generation, prev_public = 0, b""
        if previous is not None:
            prev_cert, prev_key = previous
            if prev_key.public != prev_cert.org_public or prev_cert.org_id != org_id:
                raise LocalProtocolError("the previous key does not match its certificate")
            generation, prev_public = prev_cert.generation + 1, prev_cert.org_public
        cert = cls(org_id, name, business_id, org_public, generation, prev_public, issued_at)
        core = cert.core()
        root_sig = root.sign(_sig_message("koppi/v1/org-cert-sig/root", core))
        prev_sig = b""
        if previous is not None:
            prev_sig = previous[1].sign(_sig_message("koppi/v1/org-cert-sig/prev", core))
        return replace(cert, root_sig=root_sig, prev_sig=prev_sig)


@dataclass(frozen=True)
class RotationRequest:
    """The organisation's half of a key rotation, made where its key lives (an admin's browser):
    the next certificate's core, signed by the current organisation key. The operator checks it
    against the current certificate and adds the root's signature (`sign`), so neither a stolen
    root nor a stolen organisation session alone can replace a live key.

    request = encode("koppi/v1/org-rotation-request", bytes core, bytes prev_sig)
    """

    cert: OrgCert  # root_sig empty

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/org-rotation-request")
            .bytes(self.cert.core())
            .bytes(self.cert.prev_sig)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> RotationRequest:
        dec = Decoder(data, "koppi/v1/org-rotation-request")
        core, prev_sig = dec.bytes(max_len=4096), dec.bytes(length=SIG_LEN)
        dec.finish()
        cert = OrgCert.from_core(core, b"", prev_sig)
        if cert.generation == 0 or len(cert.prev_public) != 32:
            raise IdentityError("a rotation names its previous key", code=BAD_ROTATION)
        return cls(cert)

    @classmethod
    def create(
        cls, current: OrgCert, current_key: SigningKey, new_public: bytes, issued_at: int
    ) -> RotationRequest:
        if current_key.public != current.org_public:
            raise LocalProtocolError("the key does not match the current certificate")
        cert = OrgCert(
            current.org_id,
            current.name,
            current.business_id,
            check_ed25519_public(new_public),
            current.generation + 1,
            current.org_public,
            issued_at,
        )
        prev_sig = current_key.sign(_sig_message("koppi/v1/org-cert-sig/prev", cert.core()))
        return cls(replace(cert, prev_sig=prev_sig))

    def verify(self, current: OrgCert) -> None:
        """The request continues `current`: same organisation, next generation, a fresh key,
        signed by the current key."""
        c = self.cert
        if (c.org_id, c.name, c.business_id, c.generation, c.prev_public) != (
            current.org_id,
            current.name,
            current.business_id,
            current.generation + 1,
            current.org_public,
        ) or c.org_public == current.org_public:
            raise IdentityError("the rotation does not continue the current key", code=BAD_ROTATION)
        check_ed25519_public(c.org_public)
        ed25519_verify(
            c.prev_public, _sig_message("koppi/v1/org-cert-sig/prev", c.core()), c.prev_sig
        )

    def sign(self, root: SigningKey) -> OrgCert:
        root_sig = root.sign(_sig_message("koppi/v1/org-cert-sig/root", self.cert.core()))
        return replace(self.cert, root_sig=root_sig)


# --- device certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCert:
    """A professional's device, certified by its organisation key.

    core = encode("koppi/v1/device-cert", bytes org_id(16), bytes user_id(16),
                  bytes device_id(32), bytes signing_public(32), bytes kem_public(32),
                  list roles (UTF-8), u64 not_before, u64 not_after, bytes org_key_id(32))
    signed = encode("koppi/v1/device-cert-signed", bytes core, bytes org_sig)
    org_sig over encode("koppi/v1/device-cert-sig", bytes core); cert_hash = SHA-256(signed).
    device_id = H("koppi/v1/device-id", signing_public).
    """

    org_id: bytes
    user_id: bytes
    device_id: bytes
    signing_public: bytes
    kem_public: bytes
    roles: frozenset[str]
    not_before: int
    not_after: int
    org_key_id: bytes
    org_sig: bytes = field(repr=False, default=b"")

    def core(self) -> bytes:
        return (
            Encoder("koppi/v1/device-cert")
            .bytes(self.org_id)
            .bytes(self.user_id)
            .bytes(self.device_id)
            .bytes(self.signing_public)
            .bytes(self.kem_public)
            .list(r.encode() for r in self.roles)
            .u64(self.not_before)
            .u64(self.not_after)
            .bytes(self.org_key_id)
            .finish()
        )

    def encode(self) -> bytes:
        return _signed("koppi/v1/device-cert-signed", self.core(), self.org_sig)

    @property
    def cert_hash(self) -> bytes:
        return sha256(self.encode())

    def as_verified(self, log_index: int) -> VerifiedDevice:
        """The device this certificate describes, for a caller that checked the certificate's
        chain and its place in the log (`TrustStore`) or holds it from its own log (the server)."""
        return VerifiedDevice(
            device_id=self.device_id,
            user_id=self.user_id,
            org_id=self.org_id,
            roles=self.roles,
            signing_public=self.signing_public,
            kem_public=self.kem_public,
            cert_hash=self.cert_hash,
            cert_log_index=log_index,
            not_after=self.not_after,
        )

    @classmethod
    def decode(cls, data: bytes) -> DeviceCert:
        outer = Decoder(data, "koppi/v1/device-cert-signed")
        core = outer.bytes(max_len=4096)
        sig = outer.bytes(length=SIG_LEN)
        outer.finish()
        dec = Decoder(core, "koppi/v1/device-cert")
        org_id = dec.bytes(length=ID_LEN)
        user_id = dec.bytes(length=ID_LEN)
        device_id = dec.bytes(length=HASH_LEN)
        signing_public = dec.bytes(length=32)
        kem_public = dec.bytes(length=32)
        try:
            roles = [r.decode() for r in dec.list(max_items=16, item_max_len=64)]
        except UnicodeDecodeError:
            raise IdentityError("role is not UTF-8", code=BAD_ROLE) from None
        cert = cls(
            org_id,
            user_id,
            device_id,
            signing_public,
            kem_public,
            _check_roles(roles),
            dec.u64(),
            dec.u64(),
            dec.bytes(length=HASH_LEN),
            sig,
        )
        dec.finish()
        if device_id_of(signing_public) != device_id:
            raise IdentityError("device id is not the hash of its signing key")
        return cert

    @classmethod
    def issue(
        cls,
        org_key: SigningKey,
        *,
        org_id: bytes,
        user_id: bytes,
        signing_public: bytes,
        kem_public: bytes,
        roles: Iterable[str],
        not_before: int,
        not_after: int,
    ) -> DeviceCert:
        cert = cls(
            org_id,
            user_id,
            device_id_of(signing_public),
            check_ed25519_public(signing_public),
            check_x25519_public(kem_public),
            _check_roles(roles),
            not_before,
            not_after,
            key_id(org_key.public),
        )
        return replace(
            cert, org_sig=org_key.sign(_sig_message("koppi/v1/device-cert-sig", cert.core()))
        )


# --- key packages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPackage:
    """A device's short-lived HPKE key that committers wrap epoch secrets to; reusable across
    threads, so it never runs out. Needs no log entry: its signer's certificate is logged.

    core = encode("koppi/v1/key-package", bytes device_id(32), bytes kem_public(32),
                  u64 not_before, u64 not_after, bytes cert_hash(32))
    signed = encode("koppi/v1/key-package-signed", bytes core, bytes device_sig)
    device_sig over encode("koppi/v1/key-package-sig", bytes core); kp_hash = SHA-256(signed).
    """

    device_id: bytes
    kem_public: bytes
    not_before: int
    not_after: int
    cert_hash: bytes
    device_sig: bytes = field(repr=False, default=b"")

    def core(self) -> bytes:
        return (
            Encoder("koppi/v1/key-package")
            .bytes(self.device_id)
            .bytes(self.kem_public)
            .u64(self.not_before)
            .u64(self.not_after)
            .bytes(self.cert_hash)
            .finish()
        )

    def encode(self) -> bytes:
        return _signed("koppi/v1/key-package-signed", self.core(), self.device_sig)

    @property
    def kp_hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> KeyPackage:
        outer = Decoder(data, "koppi/v1/key-package-signed")
        core = outer.bytes(max_len=512)
        sig = outer.bytes(length=SIG_LEN)
        outer.finish()
        dec = Decoder(core, "koppi/v1/key-package")
        kp = cls(
            dec.bytes(length=HASH_LEN),
            dec.bytes(length=32),
            dec.u64(),
            dec.u64(),
            dec.bytes(length=HASH_LEN),
            sig,
        )
        dec.finish()
        return kp

    @classmethod
    def issue(
        cls,
        device_key: SigningKey,
        *,
        cert_hash: bytes,
        kem_public: bytes,
        not_before: int,
        lifetime: int = KEY_PACKAGE_MAX_LIFETIME,
    ) -> KeyPackage:
        if not 0 < lifetime <= KEY_PACKAGE_MAX_LIFETIME:
            raise LocalProtocolError("a key package lives at most 7 days")
        kp = cls(
            device_id_of(device_key.public),
            check_x25519_public(kem_public),
            not_before,
            not_before + lifetime,
            cert_hash,
        )
        return replace(
            kp, device_sig=device_key.sign(_sig_message("koppi/v1/key-package-sig", kp.core()))
        )

    def verify(self, device: VerifiedDevice, now: int) -> KeyPackage:
        """A committer accepts a package only from the device it names, for its current
        certificate, with a strong key, within its (at most 7-day) lifetime."""
        if self.device_id != device.device_id or self.cert_hash != device.cert_hash:
            raise IdentityError(
                "key package of another device or certificate", code=KEY_PACKAGE_MISMATCH
            )
        ed25519_verify(
            device.signing_public,
            _sig_message("koppi/v1/key-package-sig", self.core()),
            self.device_sig,
        )
        check_x25519_public(self.kem_public)
        if self.not_after - self.not_before > KEY_PACKAGE_MAX_LIFETIME or not (
            self.not_before <= now < self.not_after
        ):
            raise IdentityError("key package outside its lifetime", code=KEY_PACKAGE_EXPIRED)
        return self


# --- DeviceLinks and revocations ----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceLink:
    """An existing device of a user vouches for the user's new device (outline §2): without a
    link or an explicit human approval, clients never add a user's new device to threads.

    core = encode("koppi/v1/device-link", bytes user_id(16), bytes existing_device_id(32),
                  bytes new_device_id(32), bytes new_cert_hash(32), u64 issued_at)
    signed = encode("koppi/v1/device-link-signed", bytes core, bytes existing_sig)
    existing_sig over encode("koppi/v1/device-link-sig", bytes core).
    """

    user_id: bytes
    existing_device_id: bytes
    new_device_id: bytes
    new_cert_hash: bytes
    issued_at: int
    signature: bytes = field(repr=False, default=b"")

    def core(self) -> bytes:
        return (
            Encoder("koppi/v1/device-link")
            .bytes(self.user_id)
            .bytes(self.existing_device_id)
            .bytes(self.new_device_id)
            .bytes(self.new_cert_hash)
            .u64(self.issued_at)
            .finish()
        )

    def encode(self) -> bytes:
        return _signed("koppi/v1/device-link-signed", self.core(), self.signature)

    @classmethod
    def decode(cls, data: bytes) -> DeviceLink:
        outer = Decoder(data, "koppi/v1/device-link-signed")
        core = outer.bytes(max_len=512)
        sig = outer.bytes(length=SIG_LEN)
        outer.finish()
        dec = Decoder(core, "koppi/v1/device-link")
        link = cls(
            dec.bytes(length=ID_LEN),
            dec.bytes(length=HASH_LEN),
            dec.bytes(length=HASH_LEN),
            dec.bytes(length=HASH_LEN),
            dec.u64(),
            sig,
        )
        dec.finish()
        return link

    @classmethod
    def issue(
        cls, existing_key: SigningKey, *, user_id: bytes, new_cert: DeviceCert, issued_at: int
    ) -> DeviceLink:
        link = cls(
            user_id,
            device_id_of(existing_key.public),
            new_cert.device_id,
            new_cert.cert_hash,
            issued_at,
        )
        return replace(
            link, signature=existing_key.sign(_sig_message("koppi/v1/device-link-sig", link.core()))
        )


SUBJECT_DEVICE = 1
SUBJECT_ORG_KEY = 2
REVOCATION_REASONS = frozenset({"lost", "compromised", "left-organisation", "replaced", "other"})


@dataclass(frozen=True)
class Revocation:
    """Ends a device certificate (signed by a key of its organisation) or an organisation key
    (signed by the root). Applies from its log index on (see module docstring).

    core = encode("koppi/v1/revocation", u8 subject_kind (1 device, 2 organisation key),
                  bytes org_id(16), bytes subject (device id or org key id, 32), text reason,
                  u64 issued_at)
    signed = encode("koppi/v1/revocation-signed", bytes core, bytes signer_key_id(32), bytes sig)
    sig over encode("koppi/v1/revocation-sig", bytes core).
    """

    subject_kind: int
    org_id: bytes
    subject: bytes
    reason: str
    issued_at: int
    signer_key_id: bytes = b""
    signature: bytes = field(repr=False, default=b"")

    def core(self) -> bytes:
        return (
            Encoder("koppi/v1/revocation")
            .u8(self.subject_kind)
            .bytes(self.org_id)
            .bytes(self.subject)
            .text(self.reason)
            .u64(self.issued_at)
            .finish()
        )

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/revocation-signed")
            .bytes(self.core())
            .bytes(self.signer_key_id)
            .bytes(self.signature)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> Revocation:
        outer = Decoder(data, "koppi/v1/revocation-signed")
        core = outer.bytes(max_len=512)
        signer = outer.bytes(length=HASH_LEN)
        sig = outer.bytes(length=SIG_LEN)
        outer.finish()
        dec = Decoder(core, "koppi/v1/revocation")
        rev = cls(
            dec.u8(),
            dec.bytes(length=ID_LEN),
            dec.bytes(length=HASH_LEN),
            dec.text(max_len=64),
            dec.u64(),
            signer,
            sig,
        )
        dec.finish()
        if rev.subject_kind not in (SUBJECT_DEVICE, SUBJECT_ORG_KEY):
            raise IdentityError("unknown revocation subject", code=BAD_REVOCATION)
        if rev.reason not in REVOCATION_REASONS:
            raise IdentityError("unknown revocation reason", code=BAD_REVOCATION)
        return rev

    @classmethod
    def issue(
        cls,
        signer: SigningKey,
        *,
        subject_kind: int,
        org_id: bytes,
        subject: bytes,
        reason: str,
        issued_at: int,
    ) -> Revocation:
        if reason not in REVOCATION_REASONS or subject_kind not in (
            SUBJECT_DEVICE,
            SUBJECT_ORG_KEY,
        ):
            raise LocalProtocolError("unknown revocation subject or reason")
        rev = cls(subject_kind, org_id, subject, reason, issued_at, key_id(signer.public))
        return replace(
            rev, signature=signer.sign(_sig_message("koppi/v1/revocation-sig", rev.core()))
        )


# --- this device's private keys ----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceSecrets:
    """This device's private keys: signing key, certificate KEM key (last resort) and the private
    keys of its key packages by kp_hash. Never printed."""

    signing: SigningKey = field(repr=False)
    cert_kem: KemKey = field(repr=False)
    package_keys: Mapping[bytes, KemKey] = field(default_factory=dict, repr=False)

    @property
    def device_id(self) -> bytes:
        return device_id_of(self.signing.public)

    def kem_for(self, kp_hash: bytes) -> KemKey | None:
        return self.cert_kem if kp_hash == b"" else self.package_keys.get(kp_hash)

    def with_package(self, kp_hash: bytes, key: KemKey) -> DeviceSecrets:
        return DeviceSecrets(self.signing, self.cert_kem, {**self.package_keys, kp_hash: key})


# --- the client's verified store ----------------------------------------------------------------


@dataclass
class _OrgKey:
    cert: OrgCert
    log_index: int
    retired_at_index: int | None = None  # rotation or revocation entry


class TrustStore:
    """What one client has verified: organisation keys, devices, links and revocations, each
    accepted only with its signature chain and a log inclusion proof. Implements `TrustView`.

    Certificates may be checked against an older head (their historical inclusion); revocations
    change trust status and so need a fresh head (MAX_HEAD_AGE, fail closed).
    """

    def __init__(self, root_public: bytes, log: LogView) -> None:
        self.root_public = check_ed25519_public(root_public)
        self.log = log
        self.consents = ConsentBook()
        self._org_keys: dict[bytes, _OrgKey] = {}  # by org key id
        self._devices: dict[bytes, VerifiedDevice] = {}  # newest certificate per device
        self._certs: dict[bytes, VerifiedDevice] = {}  # every certificate, by cert hash
        self._links: dict[bytes, DeviceLink] = {}  # by new device id
        self._changes = 0  # bumped by every accepted entry (see state_token)

    def __repr__(self) -> str:
        return f"TrustStore(org_keys={len(self._org_keys)}, devices={len(self._devices)})"

    # TrustView
    def device(self, device_id: bytes, cert_hash: bytes | None = None) -> VerifiedDevice | None:
        if cert_hash is None:
            return self._devices.get(device_id)
        found = self._certs.get(cert_hash)
        return found if found is not None and found.device_id == device_id else None

    def consent(self, core_hash: bytes) -> ConsentCover | None:
        return self.consents.cover(core_hash, self.now())

    def latest_consent(self, consent_id: bytes) -> ConsentCover | None:
        return self.consents.latest_cover(consent_id, self.now())

    def state_token(self) -> object:
        head = self.log.current
        return (self._changes, None if head is None else head.head.hash())

    def tree_size(self) -> int:
        return self.log.fresh_head().head.size

    def tree_head_hash(self) -> bytes:
        return self.log.fresh_head().head.hash()

    def now(self) -> int:
        """Seconds, floored at the newest verified tree head (outline §2)."""
        return self.log.effective_now_ms() // 1000

    # accepting log entries
    def add_org_cert(self, entry: bytes, index: int, proof: Sequence[bytes]) -> OrgCert:
        cert = OrgCert.decode(entry)
        core = cert.core()
        ed25519_verify(
            self.root_public, _sig_message("koppi/v1/org-cert-sig/root", core), cert.root_sig
        )
        check_ed25519_public(cert.org_public)
        previous: _OrgKey | None = None
        if cert.generation > 0:
            previous = self._org_keys.get(key_id(cert.prev_public))
            if (
                previous is None
                or previous.cert.org_id != cert.org_id
                or previous.cert.generation + 1 != cert.generation
            ):
                raise IdentityError("rotation from an unknown key", code=BAD_ROTATION)
            ed25519_verify(
                cert.prev_public, _sig_message("koppi/v1/org-cert-sig/prev", core), cert.prev_sig
            )
            if previous.log_index >= index:
                raise IdentityError("rotation logged before its previous key", code=BAD_ROTATION)
        self.log.verify_inclusion(entry, index, proof, require_fresh=False)
        if previous is not None and previous.retired_at_index is None:
            previous.retired_at_index = index
        self._org_keys.setdefault(cert.key_id, _OrgKey(cert, index))
        self._changes += 1
        return cert

    def add_device_cert(self, entry: bytes, index: int, proof: Sequence[bytes]) -> VerifiedDevice:
        cert = DeviceCert.decode(entry)
        org_key = self._org_keys.get(cert.org_key_id)
        if org_key is None or org_key.cert.org_id != cert.org_id:
            raise IdentityError(
                "certificate from an unknown organisation key", code=UNKNOWN_ORG_KEY
            )
        ed25519_verify(
            org_key.cert.org_public,
            _sig_message("koppi/v1/device-cert-sig", cert.core()),
            cert.org_sig,
        )
        check_x25519_public(cert.kem_public)
        if org_key.retired_at_index is not None and index >= org_key.retired_at_index:
            raise IdentityError(
                "certificate logged after its organisation key was retired",
                code=CERT_AFTER_RETIREMENT,
            )
        if index <= org_key.log_index:
            raise IdentityError(
                "certificate logged before its organisation key", code=UNKNOWN_ORG_KEY
            )
        self.log.verify_inclusion(entry, index, proof, require_fresh=False)
        device = cert.as_verified(index)
        known = self._devices.get(device.device_id)
        if known is not None:
            # A renewal: same keys, same person and organisation; a revocation stays.
            if (known.user_id, known.org_id, known.kem_public) != (
                device.user_id,
                device.org_id,
                device.kem_public,
            ):
                raise IdentityError(
                    "a certificate for known device keys names another holder",
                    code=CONFLICTING_CERT,
                )
            device = replace(device, revoked_at_index=known.revoked_at_index)
        self._devices[device.device_id] = device
        self._certs[device.cert_hash] = device
        self._changes += 1
        return device

    def add_revocation(self, entry: bytes, index: int, proof: Sequence[bytes]) -> Revocation:
        rev = Revocation.decode(entry)
        if rev.subject_kind == SUBJECT_ORG_KEY:
            ed25519_verify(
                self.root_public, _sig_message("koppi/v1/revocation-sig", rev.core()), rev.signature
            )
            target = self._org_keys.get(rev.subject)
            if target is None or target.cert.org_id != rev.org_id:
                raise IdentityError(
                    "revocation of an unknown organisation key", code=UNKNOWN_ORG_KEY
                )
        else:
            signer = self._org_keys.get(rev.signer_key_id)
            if signer is None or signer.cert.org_id != rev.org_id:
                raise IdentityError(
                    "device revoked by a key of another organisation", code=BAD_REVOCATION
                )
            ed25519_verify(
                signer.cert.org_public,
                _sig_message("koppi/v1/revocation-sig", rev.core()),
                rev.signature,
            )
            device = self._devices.get(rev.subject)
            if device is None or device.org_id != rev.org_id:
                raise IdentityError("revocation of an unknown device", code=UNKNOWN_DEVICE)
        self.log.verify_inclusion(entry, index, proof, require_fresh=True)
        if rev.subject_kind == SUBJECT_ORG_KEY:
            target = self._org_keys[rev.subject]
            if target.retired_at_index is None or index < target.retired_at_index:
                target.retired_at_index = index
        else:
            device = self._devices[rev.subject]
            if device.revoked_at_index is None or index < device.revoked_at_index:
                self._devices[rev.subject] = replace(device, revoked_at_index=index)
                for cert_hash, cert in list(self._certs.items()):
                    if cert.device_id == rev.subject:
                        self._certs[cert_hash] = replace(cert, revoked_at_index=index)
        self._changes += 1
        return rev

    def add_device_link(self, entry: bytes, index: int, proof: Sequence[bytes]) -> DeviceLink:
        link = DeviceLink.decode(entry)
        existing = self._devices.get(link.existing_device_id)
        new = self._devices.get(link.new_device_id)
        if existing is None or new is None:
            raise IdentityError("link between unknown devices", code=UNKNOWN_DEVICE)
        if existing.user_id != link.user_id or new.user_id != link.user_id:
            raise IdentityError("a link joins two devices of one user", code=BAD_DEVICE_LINK)
        if new.cert_hash != link.new_cert_hash or not existing.valid_at(index):
            raise IdentityError(
                "link from a revoked device or to another certificate", code=BAD_DEVICE_LINK
            )
        ed25519_verify(
            existing.signing_public,
            _sig_message("koppi/v1/device-link-sig", link.core()),
            link.signature,
        )
        self.log.verify_inclusion(entry, index, proof, require_fresh=False)
        self._links[link.new_device_id] = link
        self._changes += 1
        return link

    def add_consent(self, record_bytes: bytes, index: int, proof: Sequence[bytes]) -> ConsentRecord:
        """A consent version: signed by a verified consent recorder valid at the fresh head, its
        hash included in the log (fresh: consent is trust status), and extending the versions
        already seen (never a rollback, nothing after a revocation)."""
        record = ConsentRecord.decode(record_bytes)
        recorder = self._devices.get(record.core.recorder)
        if recorder is None:
            raise IdentityError("consent recorded by an unknown device", code=UNKNOWN_DEVICE)
        verify_consent(record_bytes, recorder, tree_size=self.tree_size())
        self.log.verify_inclusion(record.log_entry(), index, proof, require_fresh=True)
        self.consents.accept(record)
        self._changes += 1
        return record

    def linked(self, device_id: bytes) -> DeviceLink | None:
        """The DeviceLink that vouches for this device, if any (clients show unlinked new
        devices of a known user for explicit human approval instead of adding them)."""
        return self._links.get(device_id)
