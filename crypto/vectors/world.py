"""A deterministic, in-memory Koppi deployment for vectors, tests and benchmarks.

It plays every party that is not the client under test: the operator (root key), organisations
and their admins (organisation keys, device certificates, revocations), the transparency log and
one witness, and a consent registry. Clients are real `TrustStore`s that learn the log only
through signed, cosigned heads, consistency proofs and inclusion proofs, exactly as in production.

Everything is drawn from a `SeededRng` and a `FakeClock`, so two runs with one seed produce the
same keys and bytes (HPKE's own ephemeral keys excepted: `cryptography` draws them itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from crypto.clock import FakeClock, SeededRng
from crypto.commit import Genesis
from crypto.consent import (
    ConsentBook,
    ConsentCore,
    CoveredOrganisation,
    next_version,
    sign_consent,
)
from crypto.identity import (
    SUBJECT_DEVICE,
    DeviceCert,
    DeviceLink,
    DeviceSecrets,
    KeyPackage,
    OrgCert,
    Revocation,
    TrustStore,
)
from crypto.merkle import MerkleTree
from crypto.primitives import KemKey, SigningKey, sha256
from crypto.treehead import (
    CosignedTreeHead,
    LogConfig,
    LogView,
    TreeHead,
    cosign,
    key_id,
    sign_tree_head,
)
from crypto.trust import VerifiedDevice
from crypto.vectors import hpke_reference

if TYPE_CHECKING:
    from crypto.group import Member

START = 1_790_000_000  # seconds; fixed so vectors are reproducible
CERT_LIFETIME = 365 * 24 * 3600
CLIENT_REF = sha256(b"koppi world client reference")
PURPOSE = "rehabilitation-planning"


@dataclass
class Org:
    org_id: bytes
    name: str
    key: SigningKey = field(repr=False)
    cert: OrgCert


@dataclass
class Device:
    """A professional's device as the test holds it: its secrets and its public parts."""

    secrets: DeviceSecrets = field(repr=False)
    cert: DeviceCert
    key_package: KeyPackage
    org: Org

    @property
    def device_id(self) -> bytes:
        return self.cert.device_id

    @property
    def user_id(self) -> bytes:
        return self.cert.user_id


class World:
    def __init__(self, seed: str = "koppi-world", *, witnesses: int = 1) -> None:
        self.rng = SeededRng(seed)
        self.clock = FakeClock(START)
        self.root = SigningKey.generate(self.rng)
        self.log_key = SigningKey.generate(self.rng)
        self.witnesses = [SigningKey.generate(self.rng) for _ in range(witnesses)]
        self.config = LogConfig.create(
            self.log_key.public, [w.public for w in self.witnesses], quorum=witnesses
        )
        self.tree = MerkleTree()
        # (kind, log entry, what a client fetches: the entry itself, or a consent's full record)
        self.entries: list[tuple[str, bytes, bytes]] = []
        self.consents = ConsentBook()  # the registry's own copy
        self._recorder: Device | None = None
        self.orgs: dict[str, Org] = {}
        self.devices: list[Device] = []

    def __repr__(self) -> str:
        return f"World(log_size={self.tree.size}, orgs={sorted(self.orgs)})"

    def sealer(self, public: bytes, info: bytes, plaintext: bytes) -> bytes:
        """HPKE with the ephemeral key drawn from the world's seeded RNG, so generated commits
        are reproducible byte for byte (`crypto.primitives.hpke_open` opens them)."""
        return hpke_reference.seal(public, info, plaintext, ephemeral_ikm=self.rng.random_bytes(32))

    # --- the log ----------------------------------------------------------------------------

    def _log(self, kind: str, entry: bytes, payload: bytes | None = None) -> int:
        self.entries.append((kind, entry, entry if payload is None else payload))
        return self.tree.append(entry)

    def head(self) -> CosignedTreeHead:
        now_ms = self.clock.now_ms()
        head = TreeHead(self.tree.size, self.tree.root(), now_ms, key_id(self.log_key.public))
        cth = sign_tree_head(self.log_key, head)
        for w in self.witnesses:
            cth = cosign(cth, w, now_ms)
        return cth

    def client(self) -> TrustStore:
        """A fresh client that has verified everything logged so far."""
        store = TrustStore(self.root.public, LogView(self.config, self.clock))
        self.sync(store)
        return store

    def sync(self, store: TrustStore) -> None:
        """Bring a client to the current head: consistency proof, then each new entry with its
        inclusion proof (what a client does when it polls the log)."""
        old = store.log.current
        old_size = 0 if old is None else old.head.size
        cth = self.head()
        proof = [] if old is None else self.tree.consistency_proof(old_size, cth.head.size)
        store.log.update(cth, proof)
        for index in range(old_size, cth.head.size):
            kind, entry, payload = self.entries[index]
            inclusion = self.tree.inclusion_proof(index, cth.head.size)
            if kind == "org":
                store.add_org_cert(entry, index, inclusion)
            elif kind == "device":
                store.add_device_cert(entry, index, inclusion)
            elif kind == "revocation":
                store.add_revocation(entry, index, inclusion)
            elif kind == "link":
                store.add_device_link(entry, index, inclusion)
            elif kind == "consent":
                store.add_consent(payload, index, inclusion)

    # --- the operator and the organisations -------------------------------------------------

    def add_org(self, name: str) -> Org:
        org_id = self.rng.random_bytes(16)
        key = SigningKey.generate(self.rng)
        cert = OrgCert.issue(
            root=self.root,
            org_id=org_id,
            name=name,
            business_id=f"{len(self.orgs):07d}-0",
            org_public=key.public,
            issued_at=self.clock.now(),
        )
        self._log("org", cert.encode())
        org = Org(org_id, name, key, cert)
        self.orgs[name] = org
        return org

    def rotate_org(self, org: Org) -> Org:
        key = SigningKey.generate(self.rng)
        cert = OrgCert.issue(
            root=self.root,
            org_id=org.org_id,
            name=org.name,
            business_id=org.cert.business_id,
            org_public=key.public,
            issued_at=self.clock.now(),
            previous=(org.cert, org.key),
        )
        self._log("org", cert.encode())
        rotated = replace(org, key=key, cert=cert)
        self.orgs[org.name] = rotated
        return rotated

    def add_device(
        self,
        org: Org,
        *,
        user_id: bytes | None = None,
        roles: tuple[str, ...] = ("professional",),
        cert_lifetime: int = CERT_LIFETIME,
        signed_by: SigningKey | None = None,
    ) -> Device:
        """A device certified by the organisation's current key (or, to build refusals, by
        `signed_by`: a retired or foreign key)."""
        org = self.orgs[org.name]
        signing = SigningKey.generate(self.rng)
        cert_kem = KemKey.generate(self.rng)
        now = self.clock.now()
        cert = DeviceCert.issue(
            signed_by or org.key,
            org_id=org.org_id,
            user_id=user_id if user_id is not None else self.rng.random_bytes(16),
            signing_public=signing.public,
            kem_public=cert_kem.public,
            roles=roles,
            not_before=now,
            not_after=now + cert_lifetime,
        )
        self._log("device", cert.encode())
        kem = KemKey.generate(self.rng)
        kp = KeyPackage.issue(
            signing, cert_hash=cert.cert_hash, kem_public=kem.public, not_before=now
        )
        secrets = DeviceSecrets(signing, cert_kem).with_package(kp.kp_hash, kem)
        device = Device(secrets, cert, kp, org)
        self.devices.append(device)
        return device

    def renew(self, device: Device, *, cert_lifetime: int = CERT_LIFETIME) -> Device:
        """The organisation renews a device's certificate (same keys, new validity)."""
        org = self.orgs[device.org.name]
        now = self.clock.now()
        cert = DeviceCert.issue(
            org.key,
            org_id=org.org_id,
            user_id=device.user_id,
            signing_public=device.cert.signing_public,
            kem_public=device.cert.kem_public,
            roles=device.cert.roles,
            not_before=now,
            not_after=now + cert_lifetime,
        )
        self._log("device", cert.encode())
        device.cert = cert
        self.new_key_package(device)
        return device

    def new_key_package(self, device: Device) -> KeyPackage:
        """The device publishes a fresh key package (and keeps its private key)."""
        kem = KemKey.generate(self.rng)
        kp = KeyPackage.issue(
            device.secrets.signing,
            cert_hash=device.cert.cert_hash,
            kem_public=kem.public,
            not_before=self.clock.now(),
        )
        device.secrets = device.secrets.with_package(kp.kp_hash, kem)
        device.key_package = kp
        return kp

    def revoke(self, device: Device, reason: str = "lost") -> int:
        org = self.orgs[device.org.name]
        rev = Revocation.issue(
            org.key,
            subject_kind=SUBJECT_DEVICE,
            org_id=org.org_id,
            subject=device.device_id,
            reason=reason,
            issued_at=self.clock.now(),
        )
        return self._log("revocation", rev.encode())

    def link(self, existing: Device, new: Device) -> int:
        link = DeviceLink.issue(
            existing.secrets.signing,
            user_id=existing.user_id,
            new_cert=new.cert,
            issued_at=self.clock.now(),
        )
        return self._log("link", link.encode())

    # --- consents and threads ---------------------------------------------------------------

    def consent(
        self,
        orgs: list[Org],
        *,
        may_store: list[Org] | None = None,
        client_ref: bytes = CLIENT_REF,
        purpose: str = PURPOSE,
        lifetime: int = CERT_LIFETIME,
    ) -> bytes:
        """Record version 1 of a consent covering `orgs`; returns its core hash (the evidence a
        commit cites). Signed by the registry's consent-recorder device."""
        store = orgs if may_store is None else may_store
        now = self.clock.now()
        core = ConsentCore(
            consent_id=self.rng.random_bytes(16),
            version=1,
            prev_version_hash=b"",
            client_ref=client_ref,
            purpose=purpose,
            organisations=tuple(CoveredOrganisation(o.org_id, o in store, "consent") for o in orgs),
            data_categories=frozenset({"social-welfare"}),
            valid_from=now,
            valid_until=now + lifetime,
            status="active",
            disclosure_basis="consent",
            how_obtained="written",
            info_text_hash=sha256(b"information text v1"),
            details_hash=b"",
            recorder=self.recorder.device_id,
            recorded_at=now,
        )
        return self._record(core)

    @property
    def recorder(self) -> Device:
        """The professional who records consents: a consent-recorder of the first organisation."""
        if self._recorder is None:
            first = next(iter(self.orgs.values()))
            self._recorder = self.add_device(first, roles=("professional", "consent-recorder"))
        return self._recorder

    def _record(self, core: ConsentCore) -> bytes:
        record = sign_consent(core, self.recorder.secrets.signing)
        self.consents.accept(record)
        self._log("consent", record.log_entry(), record.encode())
        return core.core_hash

    def supersede(
        self,
        core_hash: bytes,
        orgs: list[Org],
        *,
        may_store: list[Org] | None = None,
        revoke: bool = False,
        full_history: list[Org] | None = None,
    ) -> bytes:
        """A new version of a consent: other organisations (e.g. one withdrawn, or one let read
        the thread from its start), or revoked."""
        old = self.consents.record(core_hash)
        store = orgs if may_store is None else may_store
        everything = full_history or []
        core = next_version(
            old,
            recorded_at=self.clock.now(),
            recorder=old.core.recorder,
            organisations=tuple(
                CoveredOrganisation(o.org_id, o in store, "consent", full_history=o in everything)
                for o in orgs
            ),
            status="revoked" if revoke else "active",
            revocation_channel="phone" if revoke else "",
        )
        return self._record(core)

    def genesis(self, creator: Device, *, history_policy: str = "by-consent") -> Genesis:
        return Genesis(
            thread_id=self.rng.random_bytes(16),
            client_ref=CLIENT_REF,
            purpose=PURPOSE,
            history_policy=history_policy,
            creator=creator.device_id,
            created_at=self.clock.now(),
        )


def member(store: TrustStore, device: Device) -> Member:
    from crypto.group import Member

    verified = store.device(device.device_id)
    if verified is None:
        raise LookupError("device not verified by this client yet")
    return Member(verified, device.key_package)


def verified(store: TrustStore, device: Device) -> VerifiedDevice:
    v = store.device(device.device_id)
    if v is None:
        raise LookupError("device not verified by this client yet")
    return v
