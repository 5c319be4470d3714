"""Genesis and commits: the byte layouts and the wrap cryptography (docs/protocol.md §5).

A thread's membership changes only by commits, each of which opens a new epoch:

    Commit = CommitCore || Wraps || HistoryWraps || ThreadInfo ciphertext || confirmation_tag
             || signature

This module holds the structures, their strict encodings and the per-wrap HPKE steps; the rules of
who may commit what, and the state a client keeps, live in `crypto/group.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from crypto.encoding import DecodeError, Decoder, Encoder, hash_fields
from crypto.errors import RemoteProtocolError
from crypto.primitives import (
    AEAD_NONCE_LEN,
    KemKey,
    SigningKey,
    aead_open,
    aead_seal,
    check_x25519_public,
    ed25519_verify,
    hmac_sha256,
    hpke_open,
    hpke_seal,
    sha256,
)
from crypto.schedule import EPOCH_SECRET_LEN, EpochKeys
from crypto.trust import device_id_of

VERSION = 1
SUITE = 1
THREAD_ID_LEN = 16
ID_LEN = 16
HASH_LEN = 32
SIG_LEN = 64
TAG_LEN = 32
MAX_ROSTER = 1000
MAX_THREAD_INFO = 64 * 1024

HISTORY_POLICIES = frozenset({"by-consent", "none"})

ADD, REMOVE, UPDATE = 1, 2, 3
# Fixed reason codes (the server sees them; no free text). Removals for cause cut the user's
# history grants from that epoch on (outline §4, "history by consent").
ADD_REASONS = frozenset({"create", "invited", "device-linked", "device-approved", "readmitted"})
REMOVE_REASONS = frozenset(
    {
        "left",
        "consent-revoked",
        "consent-expired",
        "consent-narrowed",
        "device-revoked",
        "cert-expired",
        "removed-for-cause",
        "replaced",
    }
)
UPDATE_REASONS = frozenset({"cert-renewed"})
CAUSE_REASON = "removed-for-cause"
REKEY_INTERVAL = 7 * 24 * 3600  # a new epoch at least weekly (outline §4)


class CommitError(RemoteProtocolError):
    """A commit that breaks the thread rules; `code` says which."""

    default_code = "koppi.bad_commit"


@dataclass(frozen=True)
class Genesis:
    """Epoch 0's fixed frame: what the thread is for, and who opened it.

    encode("koppi/v1/genesis", u16 version, u16 suite, bytes thread_id(16), bytes client_ref(32),
           text purpose, text history_policy, bytes creator_device_id(32), u64 created_at)
    genesis_hash = SHA-256(encoding) is commit 0's prev_commit_hash.
    """

    thread_id: bytes
    client_ref: bytes
    purpose: str
    history_policy: str
    creator: bytes
    created_at: int
    version: int = VERSION
    suite: int = SUITE

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/genesis")
            .u16(self.version)
            .u16(self.suite)
            .bytes(self.thread_id)
            .bytes(self.client_ref)
            .text(self.purpose)
            .text(self.history_policy)
            .bytes(self.creator)
            .u64(self.created_at)
            .finish()
        )

    @property
    def hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Genesis:
        dec = Decoder(data, "koppi/v1/genesis")
        version, suite = dec.u16(), dec.u16()
        _check_version(version, suite)
        g = cls(
            dec.bytes(length=THREAD_ID_LEN),
            dec.bytes(length=HASH_LEN),
            dec.text(max_len=64),
            dec.text(max_len=32),
            dec.bytes(length=HASH_LEN),
            dec.u64(),
        )
        dec.finish()
        if g.history_policy not in HISTORY_POLICIES:
            raise DecodeError("unknown history policy")
        return g


def _check_version(version: int, suite: int) -> None:
    if version != VERSION or suite != SUITE:
        raise CommitError("unsupported version or suite", code="koppi.unsupported_version")


@dataclass(frozen=True, order=True)
class RosterEntry:
    """encode("koppi/v1/roster-entry", bytes device_id(32), bytes user_id(16), bytes org_id(16),
    bytes cert_hash(32), bytes kp_hash (32, or empty: the certificate's KEM key, last resort))"""

    device_id: bytes
    user_id: bytes
    org_id: bytes
    cert_hash: bytes
    kp_hash: bytes

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return (
            Encoder("koppi/v1/roster-entry")
            .bytes(self.device_id)
            .bytes(self.user_id)
            .bytes(self.org_id)
            .bytes(self.cert_hash)
            .bytes(self.kp_hash)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> RosterEntry:
        dec = Decoder(data, "koppi/v1/roster-entry")
        e = cls(
            dec.bytes(length=HASH_LEN),
            dec.bytes(length=ID_LEN),
            dec.bytes(length=ID_LEN),
            dec.bytes(length=HASH_LEN),
            dec.bytes(max_len=HASH_LEN),
        )
        dec.finish()
        if len(e.kp_hash) not in (0, HASH_LEN):
            raise DecodeError("kp_hash is empty or 32 bytes")
        e.__dict__["encoded"] = bytes(data)
        return e


@dataclass(frozen=True)
class Change:
    """encode("koppi/v1/change", bytes device_id(32), u8 kind (1 add, 2 remove, 3 update),
    text reason, bytes evidence (consent core hash, revocation entry hash, or empty),
    u64 revocation_index (0: none))"""

    device_id: bytes
    kind: int
    reason: str
    evidence: bytes = b""
    revocation_index: int = 0

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return (
            Encoder("koppi/v1/change")
            .bytes(self.device_id)
            .u8(self.kind)
            .text(self.reason)
            .bytes(self.evidence)
            .u64(self.revocation_index)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> Change:
        dec = Decoder(data, "koppi/v1/change")
        c = cls(
            dec.bytes(length=HASH_LEN),
            dec.u8(),
            dec.text(max_len=64),
            dec.bytes(max_len=HASH_LEN),
            dec.u64(),
        )
        dec.finish()
        allowed = {ADD: ADD_REASONS, REMOVE: REMOVE_REASONS, UPDATE: UPDATE_REASONS}.get(c.kind)
        if allowed is None or c.reason not in allowed:
            raise CommitError("unknown change kind or reason", code="koppi.bad_change")
        c.__dict__["encoded"] = bytes(data)
        return c


@dataclass(frozen=True)
class HistoryGrant:
    """encode("koppi/v1/history-grant", bytes device_id(32), u64 epoch): listed in clear so that
    members and the server can check it against the coverage rule."""

    device_id: bytes
    epoch: int

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return Encoder("koppi/v1/history-grant").bytes(self.device_id).u64(self.epoch).finish()

    @classmethod
    def decode(cls, data: bytes) -> HistoryGrant:
        dec = Decoder(data, "koppi/v1/history-grant")
        g = cls(dec.bytes(length=HASH_LEN), dec.u64())
        dec.finish()
        g.__dict__["encoded"] = bytes(data)
        return g


@dataclass(frozen=True)
class CommitCore:
    """encode("koppi/v1/commit-core", u16 version, u16 suite, bytes thread_id(16), u64 epoch,
    bytes prev_commit_hash(32), list roster, list changes, list coverage (org ids),
    list may_store (org ids), bytes evidence (consent core hash, 32), bytes committer(32),
    u64 tree_size, bytes tree_head_hash(32), u64 created_at, list history_grants)

    `created_at` (seconds, the committer's clock floored at its tree head) dates the epoch, so
    members know when the weekly re-key is due."""

    thread_id: bytes
    epoch: int
    prev_commit_hash: bytes
    roster: tuple[RosterEntry, ...]
    changes: tuple[Change, ...]
    coverage: frozenset[bytes]
    may_store: frozenset[bytes]
    evidence: bytes
    committer: bytes
    tree_size: int
    tree_head_hash: bytes
    created_at: int
    history: tuple[HistoryGrant, ...] = ()
    version: int = VERSION
    suite: int = SUITE

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return (
            Encoder("koppi/v1/commit-core")
            .u16(self.version)
            .u16(self.suite)
            .bytes(self.thread_id)
            .u64(self.epoch)
            .bytes(self.prev_commit_hash)
            .list(e.encode() for e in self.roster)
            .list(c.encode() for c in self.changes)
            .list(self.coverage)
            .list(self.may_store)
            .bytes(self.evidence)
            .bytes(self.committer)
            .u64(self.tree_size)
            .bytes(self.tree_head_hash)
            .u64(self.created_at)
            .list(g.encode() for g in self.history)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitCore:
        dec = Decoder(data, "koppi/v1/commit-core")
        version, suite = dec.u16(), dec.u16()
        _check_version(version, suite)
        thread_id = dec.bytes(length=THREAD_ID_LEN)
        epoch = dec.u64()
        prev = dec.bytes(length=HASH_LEN)
        roster = tuple(RosterEntry.decode(b) for b in dec.list(max_items=MAX_ROSTER))
        changes = tuple(Change.decode(b) for b in dec.list(max_items=MAX_ROSTER))
        coverage = frozenset(dec.list(max_items=MAX_ROSTER, item_max_len=ID_LEN))
        may_store = frozenset(dec.list(max_items=MAX_ROSTER, item_max_len=ID_LEN))
        core = cls(
            thread_id,
            epoch,
            prev,
            roster,
            changes,
            coverage,
            may_store,
            dec.bytes(length=HASH_LEN),
            dec.bytes(length=HASH_LEN),
            dec.u64(),
            dec.bytes(length=HASH_LEN),
            dec.u64(),
            tuple(HistoryGrant.decode(b) for b in dec.list(max_items=100_000)),
        )
        dec.finish()
        if any(len(o) != ID_LEN for o in coverage | may_store):
            raise DecodeError("organisation ids are 16 bytes")
        devices = [e.device_id for e in roster]
        if len(set(devices)) != len(devices):
            raise DecodeError("a device appears twice in the roster")
        changed = [c.device_id for c in changes]
        if len(set(changed)) != len(changed):
            raise DecodeError("a device has two changes in one commit")
        core.__dict__["encoded"] = bytes(data)
        return core

    @cached_property
    def hash(self) -> bytes:
        """core_hash = H("koppi/v1/commit-core", CommitCore)."""
        return hash_fields("koppi/v1/commit-core", self.encode())


@dataclass(frozen=True)
class Wrap:
    """encode("koppi/v1/wrap-entry", bytes device_id(32), bytes kp_hash, bytes sealed)"""

    device_id: bytes
    kp_hash: bytes
    sealed: bytes = field(repr=False)

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return (
            Encoder("koppi/v1/wrap-entry")
            .bytes(self.device_id)
            .bytes(self.kp_hash)
            .bytes(self.sealed)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> Wrap:
        dec = Decoder(data, "koppi/v1/wrap-entry")
        w = cls(dec.bytes(length=HASH_LEN), dec.bytes(max_len=HASH_LEN), dec.bytes(max_len=256))
        dec.finish()
        w.__dict__["encoded"] = bytes(data)
        return w


@dataclass(frozen=True)
class HistoryWrap:
    """encode("koppi/v1/history-wrap", bytes device_id(32), u64 epoch, bytes sealed)"""

    device_id: bytes
    epoch: int
    sealed: bytes = field(repr=False)

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return (
            Encoder("koppi/v1/history-wrap")
            .bytes(self.device_id)
            .u64(self.epoch)
            .bytes(self.sealed)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> HistoryWrap:
        dec = Decoder(data, "koppi/v1/history-wrap")
        w = cls(dec.bytes(length=HASH_LEN), dec.u64(), dec.bytes(max_len=256))
        dec.finish()
        w.__dict__["encoded"] = bytes(data)
        return w


@dataclass(frozen=True)
class Commit:
    """encode("koppi/v1/commit", bytes core, list wraps, list history_wraps,
    bytes thread_info_ct, bytes confirmation_tag(32), bytes signature(64))"""

    core: CommitCore
    wraps: tuple[Wrap, ...]
    history_wraps: tuple[HistoryWrap, ...]
    thread_info_ct: bytes
    confirmation_tag: bytes
    signature: bytes = field(repr=False)

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """The encoding, computed once (decoding is canonical, so a decoded value keeps its
        input bytes)."""
        return (
            Encoder("koppi/v1/commit")
            .bytes(self.core.encode())
            .list(w.encode() for w in self.wraps)
            .list(w.encode() for w in self.history_wraps)
            .bytes(self.thread_info_ct)
            .bytes(self.confirmation_tag)
            .bytes(self.signature)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        dec = Decoder(data, "koppi/v1/commit")
        core = CommitCore.decode(dec.bytes())
        wraps = tuple(Wrap.decode(b) for b in dec.list(max_items=MAX_ROSTER, item_max_len=512))
        history = tuple(HistoryWrap.decode(b) for b in dec.list(item_max_len=512))
        commit = cls(
            core,
            wraps,
            history,
            dec.bytes(max_len=MAX_THREAD_INFO + 64),
            dec.bytes(length=TAG_LEN),
            dec.bytes(length=SIG_LEN),
        )
        dec.finish()
        commit.__dict__["encoded"] = bytes(data)
        return commit

    @cached_property
    def hash(self) -> bytes:
        """commit_hash = SHA-256(encode(commit)); epoch_id is its first 16 bytes."""
        return sha256(self.encode())

    def signed_message(self) -> bytes:
        return signature_message(
            self.core.hash,
            self.wraps,
            self.history_wraps,
            self.thread_info_ct,
            self.confirmation_tag,
        )


def signature_message(
    core_hash: bytes,
    wraps: Iterable[Wrap],
    history_wraps: Iterable[HistoryWrap],
    thread_info_ct: bytes,
    tag: bytes,
) -> bytes:
    """encode("koppi/v1/commit-sig", bytes core_hash, bytes H(wraps), bytes H(history_wraps),
    bytes SHA-256(thread_info_ct), bytes confirmation_tag); H(list) is SHA-256 of
    encode("koppi/v1/wraps" | "koppi/v1/history-wraps", list)."""
    wraps_hash = sha256(Encoder("koppi/v1/wraps").list(w.encode() for w in wraps).finish())
    history_hash = sha256(
        Encoder("koppi/v1/history-wraps").list(w.encode() for w in history_wraps).finish()
    )
    return (
        Encoder("koppi/v1/commit-sig")
        .bytes(core_hash)
        .bytes(wraps_hash)
        .bytes(history_hash)
        .bytes(sha256(thread_info_ct))
        .bytes(tag)
        .finish()
    )


# --- the wrap cryptography ----------------------------------------------------------------------


def confirmation_tag(confirm_key: bytes, core_hash: bytes) -> bytes:
    """HMAC-SHA256(confirm_key, core_hash): proves the wrapped secret belongs to this core."""
    return hmac_sha256(confirm_key, core_hash)


def wrap_info(thread_id: bytes, epoch: int, core_hash: bytes, device_id: bytes, kp: bytes) -> bytes:
    """HPKE info = "koppi/v1/wrap" || H(encode("koppi/v1/wrap-info", u16 suite, bytes thread,
    u64 epoch, bytes core_hash, bytes device_id, bytes kp_hash))."""
    inner = (
        Encoder("koppi/v1/wrap-info")
        .u16(SUITE)
        .bytes(thread_id)
        .u64(epoch)
        .bytes(core_hash)
        .bytes(device_id)
        .bytes(kp)
        .finish()
    )
    return b"koppi/v1/wrap" + sha256(inner)


def history_info(
    thread_id: bytes,
    old_epoch: int,
    old_commit_hash: bytes,
    recipient: bytes,
    kp: bytes,
    admitting_core_hash: bytes,
) -> bytes:
    """HPKE info = "koppi/v1/history" || H(encode("koppi/v1/history-info", bytes thread,
    u64 old_epoch, bytes old_commit_hash, bytes recipient, bytes kp_hash, bytes core_hash))."""
    inner = (
        Encoder("koppi/v1/history-info")
        .bytes(thread_id)
        .u64(old_epoch)
        .bytes(old_commit_hash)
        .bytes(recipient)
        .bytes(kp)
        .bytes(admitting_core_hash)
        .finish()
    )
    return b"koppi/v1/history" + sha256(inner)


def secret_plaintext(epoch: int, secret: bytes) -> bytes:
    """encode("koppi/v1/epoch-secret", u64 epoch, bytes secret(32))"""
    return Encoder("koppi/v1/epoch-secret").u64(epoch).bytes(secret).finish()


Sealer = Callable[[bytes, bytes, bytes], bytes]
"""HPKE base-mode seal (recipient public key, info, plaintext) -> enc || ct || tag. Production
uses `cryptography`'s (`crypto.primitives.hpke_seal`), which draws its own ephemeral key; vector
generators pass a fixed-ephemeral one (`crypto/vectors/hpke_reference.py`)."""


def seal_secret(
    recipient_kem_public: bytes, info: bytes, epoch: int, secret: bytes, sealer: Sealer = hpke_seal
) -> bytes:
    check_x25519_public(recipient_kem_public)
    return sealer(recipient_kem_public, info, secret_plaintext(epoch, secret))


def open_secret(key: KemKey, info: bytes, sealed: bytes, epoch: int) -> bytes:
    """Open a wrap; the wrapped epoch number must be the one expected (no cross-epoch reuse)."""
    dec = Decoder(hpke_open(key, info, sealed), "koppi/v1/epoch-secret")
    wrapped_epoch = dec.u64()
    secret = dec.bytes(length=EPOCH_SECRET_LEN)
    dec.finish()
    if wrapped_epoch != epoch:
        raise CommitError("wrap for another epoch", code="koppi.wrong_epoch")
    return secret


THREAD_INFO_NONCE = bytes(AEAD_NONCE_LEN)


def seal_thread_info(metadata_key: bytes, core_hash: bytes, info: bytes) -> bytes:
    """AES-256-GCM under the epoch's metadata key with a zero nonce (the key is fresh per epoch
    and encrypts exactly one plaintext), core_hash as associated data."""
    if len(info) > MAX_THREAD_INFO:
        raise ValueError("thread info too large")
    return aead_seal(metadata_key, THREAD_INFO_NONCE, info, core_hash)


def open_thread_info(metadata_key: bytes, core_hash: bytes, ct: bytes) -> bytes:
    return aead_open(metadata_key, THREAD_INFO_NONCE, ct, core_hash)


@dataclass(frozen=True)
class LeaveRequest:
    """A member asks to leave (a committer cannot remove itself): another member commits the
    removal with reason `left` and cites SHA-256 of the signed request as the change's evidence
    (RFC 9420 §12.2). The request travels to the members inside the thread, end-to-end encrypted.

    core   = encode("koppi/v1/leave-request", bytes thread_id(16), u64 epoch,
                    bytes device_id(32), u64 issued_at)
    signed = encode("koppi/v1/leave-request-signed", bytes core, bytes signature(64))
    signature over encode("koppi/v1/leave-request-sig", bytes core) by the leaving device.
    """

    thread_id: bytes
    epoch: int
    device_id: bytes
    issued_at: int
    signature: bytes = field(repr=False, default=b"")

    def core(self) -> bytes:
        return (
            Encoder("koppi/v1/leave-request")
            .bytes(self.thread_id)
            .u64(self.epoch)
            .bytes(self.device_id)
            .u64(self.issued_at)
            .finish()
        )

    def encode(self) -> bytes:
        return (
            Encoder("koppi/v1/leave-request-signed")
            .bytes(self.core())
            .bytes(self.signature)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> LeaveRequest:
        outer = Decoder(data, "koppi/v1/leave-request-signed")
        core = outer.bytes(max_len=256)
        signature = outer.bytes(length=SIG_LEN)
        outer.finish()
        dec = Decoder(core, "koppi/v1/leave-request")
        req = cls(dec.bytes(length=THREAD_ID_LEN), dec.u64(), dec.bytes(length=HASH_LEN),
                  dec.u64(), signature)  # fmt: skip
        dec.finish()
        return req

    @classmethod
    def issue(
        cls, key: SigningKey, *, thread_id: bytes, epoch: int, issued_at: int
    ) -> LeaveRequest:
        req = cls(thread_id, epoch, device_id_of(key.public), issued_at)
        sig = key.sign(Encoder("koppi/v1/leave-request-sig").bytes(req.core()).finish())
        return cls(thread_id, epoch, req.device_id, issued_at, sig)

    def verify(self, signing_public: bytes) -> None:
        message = Encoder("koppi/v1/leave-request-sig").bytes(self.core()).finish()
        ed25519_verify(signing_public, message, self.signature)

    @property
    def evidence(self) -> bytes:
        return sha256(self.encode())


@dataclass(frozen=True)
class OldEpoch:
    """What a committer needs to re-wrap an earlier epoch's secret for a history grant."""

    commit_hash: bytes
    secret: bytes = field(repr=False)


def build_commit(
    core: CommitCore,
    secret: bytes,
    *,
    recipients: Mapping[bytes, bytes],
    old_epochs: Mapping[int, OldEpoch],
    thread_info: bytes,
    signing: SigningKey,
    sealer: Sealer = hpke_seal,
) -> Commit:
    """Wrap, tag and sign `core` (docs/protocol.md §5.3). `recipients` maps each roster device
    id to the X25519 public key its roster entry names (its key package, or its certificate's
    KEM key when kp_hash is empty). No rule is checked here: `Chain.check` does that."""
    core_hash = core.hash
    keys = EpochKeys.derive(secret, core_hash, core.thread_id, core.epoch)
    wraps = [
        Wrap(
            e.device_id,
            e.kp_hash,
            seal_secret(
                recipients[e.device_id],
                wrap_info(core.thread_id, core.epoch, core_hash, e.device_id, e.kp_hash),
                core.epoch,
                secret,
                sealer,
            ),
        )
        for e in core.roster
    ]
    kp_of = {e.device_id: e.kp_hash for e in core.roster}
    history_wraps = [
        HistoryWrap(
            g.device_id,
            g.epoch,
            seal_secret(
                recipients[g.device_id],
                history_info(
                    core.thread_id,
                    g.epoch,
                    old_epochs[g.epoch].commit_hash,
                    g.device_id,
                    kp_of[g.device_id],
                    core_hash,
                ),
                g.epoch,
                old_epochs[g.epoch].secret,
                sealer,
            ),
        )
        for g in core.history
    ]
    info_ct = seal_thread_info(keys.metadata, core_hash, thread_info)
    tag = confirmation_tag(keys.confirm, core_hash)
    signature = signing.sign(signature_message(core_hash, wraps, history_wraps, info_ct, tag))
    return Commit(core, tuple(wraps), tuple(history_wraps), info_ct, tag, signature)
