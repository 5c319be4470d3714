"""Consent records in the protocol (docs/protocol.md §6).

One consent per client and purpose covers all the organisations of a case conference. Its
`ConsentCore` is readable by the server (it enforces admission from it) and signed by the device of
a professional with the consent-recorder role; the transparency log holds its hash. Every change
is a new version chained to the previous one, so the consent's life is an append-only list:
given, superseded, revoked, expired.

Two bases are kept apart, as the law does: each covered organisation's **processing basis** (usually
a statute) and the consent's **disclosure basis** (what lets confidential client data pass between
them, usually this consent).

`ConsentBook` is a client's memory of the versions it has verified: it never accepts a lower
version than one it has seen, treats revoked as final, and answers the thread state's question
"which organisations does this version cover, and is it in force?" as a `ConsentCover`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from crypto.encoding import Decoder, Encoder, hash_fields
from crypto.errors import RemoteProtocolError
from crypto.primitives import SigningKey, ed25519_verify, sha256
from crypto.trust import ConsentCover, VerifiedDevice, device_id_of

FORMAT_VERSION = 1
ID_LEN = 16
HASH_LEN = 32
SIG_LEN = 64

PURPOSES = frozenset(
    {
        "rehabilitation-planning",
        "income-support-coordination",
        "employment-services",
        "youth-guidance",
        "discharge-planning",
    }
)
DATA_CATEGORIES = frozenset(
    {"health", "social-welfare", "income", "employment", "education", "housing", "family"}
)
PROCESSING_BASES = frozenset(
    {
        "statute-social-welfare",
        "statute-health-care",
        "statute-kela",
        "statute-employment",
        "statute-education",
        "consent",
    }
)
DISCLOSURE_BASES = frozenset({"consent", "statute"})
HOW_OBTAINED = frozenset({"written", "electronic", "oral-recorded"})
CORE_STATUSES = frozenset({"active", "revoked"})
REVOCATION_CHANNELS = frozenset({"in-person", "phone", "written", "electronic"})
RECORDER_ROLE = "consent-recorder"
STATUTE_MAX = 200  # bytes of a provision's citation, e.g. "SHL 1301/2014 41 §"
JUSTIFICATION_MAX = 2000
CORE_MAX = 256 * 1024  # 64 organisations, each with a provision and a justification

BAD_CONSENT = "koppi.bad_consent"
WRONG_RECORDER = "koppi.wrong_recorder"
NOT_CONSENT_RECORDER = "koppi.not_consent_recorder"
RECORDER_REVOKED = "koppi.recorder_revoked"
CONSENT_ROLLBACK = "koppi.consent_rollback"
CONSENT_CHAIN = "koppi.consent_chain"
CONSENT_FINAL = "koppi.consent_final"
CONSENT_MISMATCH = "koppi.consent_mismatch"
# Why a consent version does not admit an organisation's professional (`refusal`).
NO_CONSENT = "koppi.no_consent"
CONSENT_SUPERSEDED = "koppi.consent_superseded"
CONSENT_REVOKED = "koppi.consent_revoked"
CONSENT_NOT_YET_VALID = "koppi.consent_not_yet_valid"
CONSENT_EXPIRED = "koppi.consent_expired"
ORG_NOT_COVERED = "koppi.not_covered"
ROLE_NOT_COVERED = "koppi.role_not_covered"


class ConsentError(RemoteProtocolError):
    """A consent record a client must not rely on; `code` names the rule."""

    default_code = "koppi.consent"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConsentError(message, code=BAD_CONSENT)


@dataclass(frozen=True)
class CoveredOrganisation:
    """encode("koppi/v1/consent-org", bytes org_id(16), list roles (UTF-8; empty: every role),
    bool may_store, text processing_basis, text statute, text justification, bool full_history)

    `full_history`: the client let this organisation read the thread from its start (otherwise
    its professionals receive only epochs whose coverage named it, §5 history by consent).
    `statute` names the provision that lets this organisation in without the client's consent
    (empty: the consent covers it); `justification` is the admitting professional's written
    reason, shown to every participant and in the client's receipt as an exception."""

    org_id: bytes
    may_store: bool
    processing_basis: str
    roles: frozenset[str] = frozenset()
    statute: str = ""
    justification: str = ""
    full_history: bool = False

    def __post_init__(self) -> None:
        _require(
            bool(self.statute.strip()) == bool(self.justification.strip()),
            "a statutory basis, and only one, comes with a written justification",
        )

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/consent-org")
            .bytes(self.org_id)
            .list(r.encode() for r in self.roles)
            .boolean(self.may_store)
            .text(self.processing_basis)
            .text(self.statute)
            .text(self.justification)
            .boolean(self.full_history)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> CoveredOrganisation:
        dec = Decoder(data, "koppi/v1/consent-org")
        org_id = dec.bytes(length=ID_LEN)
        roles = frozenset(
            r.decode("utf-8", "replace") for r in dec.list(max_items=16, item_max_len=64)
        )
        may_store, processing_basis = dec.boolean(), dec.text(max_len=64)
        org = cls(
            org_id,
            may_store,
            processing_basis,
            roles,
            statute=dec.text(max_len=STATUTE_MAX),
            justification=dec.text(max_len=JUSTIFICATION_MAX),
            full_history=dec.boolean(),
        )
        dec.finish()
        return org


@dataclass(frozen=True)
class ConsentCore:
    """The signed, server-readable part of one consent version (layout in docs/protocol.md §6)."""

    consent_id: bytes
    version: int
    prev_version_hash: bytes  # record_hash of the previous version; empty for version 1
    client_ref: bytes  # pseudonymous; never a personal identity code in clear
    purpose: str
    organisations: tuple[CoveredOrganisation, ...]
    data_categories: frozenset[str]
    valid_from: int
    valid_until: int
    status: str  # active | revoked (superseded and expired are derived)
    disclosure_basis: str
    how_obtained: str
    info_text_hash: bytes  # hash and so version of the information text the client was shown
    details_hash: bytes  # hash of the end-to-end encrypted details (text, scanned form); or empty
    recorder: bytes  # device id
    recorded_at: int
    revocation_channel: str = ""

    def __post_init__(self) -> None:
        # One canonical order (the encoding's), so a decoded core equals the one that was built.
        ordered = tuple(sorted(self.organisations, key=CoveredOrganisation.encode))
        object.__setattr__(self, "organisations", ordered)
        _require(len(self.consent_id) == ID_LEN and len(self.client_ref) == HASH_LEN, "bad ids")
        _require(self.version >= 1, "versions start at 1")
        _require(
            (self.version == 1) == (self.prev_version_hash == b""), "version 1 has no predecessor"
        )
        _require(self.purpose in PURPOSES, "purpose outside the code list")
        _require(self.data_categories <= DATA_CATEGORIES, "data category outside the code list")
        _require(self.valid_from < self.valid_until, "empty validity window")
        _require(self.status in CORE_STATUSES, "status is active or revoked")
        _require(self.disclosure_basis in DISCLOSURE_BASES, "unknown disclosure basis")
        _require(self.how_obtained in HOW_OBTAINED, "unknown way of obtaining")
        _require(
            (self.status == "revoked") == (self.revocation_channel in REVOCATION_CHANNELS)
            and (self.status == "revoked" or self.revocation_channel == ""),
            "a revocation, and only a revocation, names its channel",
        )
        ids = [o.org_id for o in self.organisations]
        _require(bool(ids) and len(set(ids)) == len(ids), "covered organisations unique, >= 1")
        _require(
            all(o.processing_basis in PROCESSING_BASES for o in self.organisations),
            "processing basis outside the code list",
        )
        _require(
            self.disclosure_basis == "consent" or all(o.statute for o in self.organisations),
            "a statutory disclosure basis names the provision for every organisation",
        )

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/consent-core")
            .u16(FORMAT_VERSION)
            .bytes(self.consent_id)
            .u32(self.version)
            .bytes(self.prev_version_hash)
            .bytes(self.client_ref)
            .text(self.purpose)
            .list(o.encode() for o in self.organisations)
            .list(c.encode() for c in self.data_categories)
            .u64(self.valid_from)
            .u64(self.valid_until)
            .text(self.status)
            .text(self.disclosure_basis)
            .text(self.how_obtained)
            .bytes(self.info_text_hash)
            .bytes(self.details_hash)
            .bytes(self.recorder)
            .u64(self.recorded_at)
            .text(self.revocation_channel)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> ConsentCore:
        dec = Decoder(data, "koppi/v1/consent-core")
        if dec.u16() != FORMAT_VERSION:
            raise ConsentError("unknown consent format", code="koppi.unsupported_version")
        core = cls(
            consent_id=dec.bytes(length=ID_LEN),
            version=dec.u32(),
            prev_version_hash=dec.bytes(max_len=HASH_LEN),
            client_ref=dec.bytes(length=HASH_LEN),
            purpose=dec.text(max_len=64),
            organisations=tuple(
                CoveredOrganisation.decode(b) for b in dec.list(max_items=64, item_max_len=4096)
            ),
            data_categories=frozenset(
                c.decode("utf-8", "replace") for c in dec.list(max_items=32, item_max_len=64)
            ),
            valid_from=dec.u64(),
            valid_until=dec.u64(),
            status=dec.text(max_len=16),
            disclosure_basis=dec.text(max_len=32),
            how_obtained=dec.text(max_len=32),
            info_text_hash=dec.bytes(length=HASH_LEN),
            details_hash=dec.bytes(max_len=HASH_LEN),
            recorder=dec.bytes(length=HASH_LEN),
            recorded_at=dec.u64(),
            revocation_channel=dec.text(max_len=32),
        )
        dec.finish()
        return core

    @property
    def core_hash(self) -> bytes:
        """H("koppi/v1/consent-core-hash", ConsentCore): what commits cite as evidence."""
        return hash_fields("koppi/v1/consent-core-hash", self.encode())

    @property
    def covered(self) -> frozenset[bytes]:
        return frozenset(o.org_id for o in self.organisations)


@dataclass(frozen=True)
class ConsentRecord:
    """encode("koppi/v1/consent-record", bytes ConsentCore, bytes signature(64));
    record_hash = SHA-256(record). The log entry is encode("koppi/v1/log-consent", record_hash)."""

    core: ConsentCore
    signature: bytes = field(repr=False)

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/consent-record")
            .bytes(self.core.encode())
            .bytes(self.signature)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> ConsentRecord:
        dec = Decoder(data, "koppi/v1/consent-record")
        core = ConsentCore.decode(dec.bytes(max_len=CORE_MAX))
        record = cls(core, dec.bytes(length=SIG_LEN))
        dec.finish()
        return record

    @property
    def record_hash(self) -> bytes:
        return sha256(self.encode())

    def log_entry(self) -> bytes:
        return Encoder("koppi/v1/log-consent").bytes(self.record_hash).finish()


def _sig_message(core: ConsentCore) -> bytes:
    return Encoder("koppi/v1/consent-sig").bytes(core.encode()).finish()


def sign_consent(core: ConsentCore, recorder: SigningKey) -> ConsentRecord:
    if device_id_of(recorder.public) != core.recorder:
        raise ConsentError("the core names another recorder device", code=WRONG_RECORDER)
    return ConsentRecord(core, recorder.sign(_sig_message(core)))


def verify_consent(data: bytes, recorder: VerifiedDevice, *, tree_size: int) -> ConsentRecord:
    """Decode and verify one consent version against its recorder's verified certificate, valid at
    the caller's fresh tree size (a revoked recorder's later records are refused)."""
    record = ConsentRecord.decode(data)
    if record.core.recorder != recorder.device_id:
        raise ConsentError("signed by another device than the core names", code=WRONG_RECORDER)
    if RECORDER_ROLE not in recorder.roles:
        raise ConsentError("recorder lacks the consent-recorder role", code=NOT_CONSENT_RECORDER)
    if not recorder.valid_at(tree_size):
        raise ConsentError("recorder's certificate is revoked", code=RECORDER_REVOKED)
    ed25519_verify(recorder.signing_public, _sig_message(record.core), record.signature)
    return record


def check_evidence(cover: ConsentCover, client_ref: bytes, purpose: str) -> None:
    """A thread's evidence must be the consent of its own client and purpose."""
    if cover.client_ref != client_ref or cover.purpose != purpose:
        raise ConsentError("consent of another client or purpose", code=CONSENT_MISMATCH)


@dataclass(frozen=True)
class ConsentEvent:
    """One step of a consent's life, for the history every party can see (ISO/IEC TS 27560)."""

    kind: str  # given | superseded | revoked | expired
    version: int
    at: int
    record_hash: bytes


class ConsentBook:
    """The versions of each consent a client has verified, highest last. Implements the
    `ConsentSource` a `TrustStore` asks (`cover(core_hash, now)`)."""

    def __init__(self) -> None:
        self._versions: dict[bytes, list[ConsentRecord]] = {}
        self._by_core_hash: dict[bytes, ConsentRecord] = {}

    def __repr__(self) -> str:
        return f"ConsentBook(consents={len(self._versions)})"

    def accept(self, record: ConsentRecord) -> None:
        """Add a verified version. Lower versions are a rollback; revoked is final; each new
        version names its predecessor's record hash, and keeps client and purpose."""
        core = record.core
        chain = self._versions.get(core.consent_id, [])
        if chain:
            last = chain[-1]
            if core.version <= last.core.version:
                known = chain[core.version - 1]
                if known.encode() == record.encode():
                    return
                raise ConsentError("a lower or conflicting consent version", code=CONSENT_ROLLBACK)
            if last.core.status == "revoked":
                raise ConsentError("a revoked consent is final", code=CONSENT_FINAL)
            if (
                core.version != last.core.version + 1
                or core.prev_version_hash != last.record_hash
                or (core.client_ref, core.purpose) != (last.core.client_ref, last.core.purpose)
            ):
                raise ConsentError("version does not extend the known chain", code=CONSENT_CHAIN)
        elif core.version != 1:
            raise ConsentError("a consent's history starts at version 1", code=CONSENT_CHAIN)
        self._versions.setdefault(core.consent_id, []).append(record)
        self._by_core_hash[core.core_hash] = record

    def accept_all(self, records: Iterable[ConsentRecord]) -> None:
        for r in records:
            self.accept(r)

    def record(self, core_hash: bytes) -> ConsentRecord:
        return self._by_core_hash[core_hash]

    def latest(self, consent_id: bytes) -> ConsentRecord | None:
        chain = self._versions.get(consent_id)
        return chain[-1] if chain else None

    def state(self, consent_id: bytes, now: int) -> str:
        """active | expired | revoked (the latest version's status, for display)."""
        last = self.latest(consent_id)
        if last is None:
            raise KeyError("unknown consent")
        if last.core.status == "revoked":
            return "revoked"
        return "active" if last.core.valid_from <= now < last.core.valid_until else "expired"

    def cover(self, core_hash: bytes, now: int) -> ConsentCover | None:
        record = self._by_core_hash.get(core_hash)
        if record is None:
            return None
        core = record.core
        latest = self.latest(core.consent_id)
        in_force = (
            latest is record
            and core.status == "active"
            and core.valid_from <= now < core.valid_until
        )
        return ConsentCover(
            consent_id=core.consent_id,
            version=core.version,
            core_hash=core_hash,
            client_ref=core.client_ref,
            purpose=core.purpose,
            active=in_force,
            organisations=core.covered,
            roles={o.org_id: o.roles for o in core.organisations if o.roles},
            may_store=frozenset(o.org_id for o in core.organisations if o.may_store),
            full_history=frozenset(o.org_id for o in core.organisations if o.full_history),
            changes_at=next((t for t in (core.valid_from, core.valid_until) if now < t), None),
        )

    def refusal(
        self, core_hash: bytes, org_id: bytes, roles: frozenset[str], now: int
    ) -> str | None:
        """The admission rule for the version `core_hash` (None: it admits the professional)."""
        record = self._by_core_hash.get(core_hash)
        if record is None:
            return NO_CONSENT
        latest = self.latest(record.core.consent_id)
        assert latest is not None
        return admission_refusal(record, latest, org_id, roles, now)

    def latest_cover(self, consent_id: bytes, now: int) -> ConsentCover | None:
        latest = self.latest(consent_id)
        return None if latest is None else self.cover(latest.core.core_hash, now)

    def history(self, consent_id: bytes, now: int) -> list[ConsentEvent]:
        """The append-only life of one consent: given, superseded, revoked, expired."""
        events: list[ConsentEvent] = []
        chain = self._versions.get(consent_id, [])
        for i, r in enumerate(chain):
            c = r.core
            if i:
                before = chain[i - 1]
                events.append(
                    ConsentEvent(
                        "superseded", before.core.version, c.recorded_at, before.record_hash
                    )
                )
            kind = "revoked" if c.status == "revoked" else "given"
            events.append(ConsentEvent(kind, c.version, c.recorded_at, r.record_hash))
        if chain and chain[-1].core.status == "active" and now >= chain[-1].core.valid_until:
            last = chain[-1]
            events.append(
                ConsentEvent("expired", last.core.version, last.core.valid_until, last.record_hash)
            )
        return events


def admission_refusal(
    record: ConsentRecord, latest: ConsentRecord, org_id: bytes, roles: frozenset[str], now: int
) -> str | None:
    """The admission rule (DESIGN §3) for one version: why `record` does not admit a professional
    of `org_id` holding `roles` at `now`, or None when it does. `latest` is the newest known
    version of the same consent; only it can admit anyone."""
    if latest.core.status == "revoked":
        return CONSENT_REVOKED
    if latest is not record and latest.encode() != record.encode():
        return CONSENT_SUPERSEDED
    core = record.core
    if now < core.valid_from:
        return CONSENT_NOT_YET_VALID
    if now >= core.valid_until:
        return CONSENT_EXPIRED
    org = next((o for o in core.organisations if o.org_id == org_id), None)
    if org is None:
        return ORG_NOT_COVERED
    if org.roles and not org.roles & roles:
        return ROLE_NOT_COVERED
    return None


def next_version(
    previous: ConsentRecord, *, recorded_at: int, recorder: bytes, **changes: object
) -> ConsentCore:
    """The core of the version after `previous` (the caller signs it)."""
    return replace(
        previous.core,
        version=previous.core.version + 1,
        prev_version_hash=previous.record_hash,
        recorded_at=recorded_at,
        recorder=recorder,
        **changes,  # type: ignore[arg-type]
    )
