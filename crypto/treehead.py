"""Signed and cosigned tree heads, and a client's sans-I/O view of the log (docs/protocol.md §4).

A log signs `TreeHead(size, root, timestamp_ms, log_id)`; witnesses (every organisation's
`koppi monitor`) check consistency and add a `Cosignature` binding the head's hash, their witness id
and their own time. A client holds a `LogView`: it accepts a head only with a valid log signature
and at least k valid cosignatures from its configured witnesses, moves forward only along a valid
consistency proof, refuses to go back, refuses heads older than MAX_HEAD_AGE (fail closed), and
uses the newest verified head's timestamp as a floor for its own clock.

    >>> from crypto.clock import FakeClock, SeededRng
    >>> rng = SeededRng("doc"); clock = FakeClock()
    >>> log_key, witness = SigningKey.generate(rng), SigningKey.generate(rng)
    >>> config = LogConfig.create(log_key.public, [witness.public], quorum=1)
    >>> head = TreeHead(0, EMPTY_ROOT, clock.now_ms(), config.log_id)
    >>> cth = cosign(sign_tree_head(log_key, head), witness, clock.now_ms())
    >>> view = LogView(config, clock)
    >>> view.update(cth, [])
    >>> view.current.head.size
    0

Nothing here does I/O or reads the time itself: the clock is injected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from crypto.clock import Clock
from crypto.encoding import Decoder, Encoder
from crypto.errors import AuthFailed, LocalProtocolError, RemoteProtocolError
from crypto.merkle import EMPTY_ROOT, verify_consistency, verify_inclusion_hash
from crypto.merkle import leaf_hash as merkle_leaf_hash
from crypto.primitives import SigningKey, check_ed25519_public, ed25519_verify, sha256

__all__ = [
    "EMPTY_ROOT",
    "MAX_HEAD_AGE_MS",
    "Cosignature",
    "CosignedTreeHead",
    "LogConfig",
    "LogView",
    "TreeHead",
    "TreeHeadError",
    "cosign",
    "key_id",
    "sign_tree_head",
]

TREE_HEAD_LABEL = "koppi/v1/tree-head"
COSIGN_LABEL = "koppi/v1/cosign"
COSIGNATURE_LABEL = "koppi/v1/cosignature"
COSIGNED_HEAD_LABEL = "koppi/v1/cosigned-tree-head"

MAX_HEAD_AGE_MS = 15 * 60 * 1000  # outline §3: trust status only up to a head this young
HASH_LEN = 32
SIG_LEN = 64
MAX_COSIGNATURES = 64

STALE = "koppi.stale_tree_head"
ROLLBACK = "koppi.tree_head_rollback"
QUORUM = "koppi.cosignature_quorum"
UNKNOWN_LOG = "koppi.unknown_log"


class TreeHeadError(RemoteProtocolError):
    """A tree head the client must not rely on: stale, a rollback, too few cosignatures, or
    from another log. Bad signatures raise `AuthFailed`; bad proofs raise `MerkleError`."""

    default_code = STALE


def key_id(public_key: bytes) -> bytes:
    """The id of a log or witness key: SHA-256 of its 32-byte Ed25519 public key."""
    return sha256(public_key)


# --- structures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    """What the log signs: the tree's size and root at `timestamp_ms`, for the log `log_id`."""

    size: int
    root: bytes
    timestamp_ms: int
    log_id: bytes

    def encode(self) -> bytes:
        """encode("koppi/v1/tree-head", bytes log_id, u64 size, bytes root, u64 timestamp_ms)."""
        return (
            Encoder(TREE_HEAD_LABEL)
            .bytes(self.log_id)
            .u64(self.size)
            .bytes(self.root)
            .u64(self.timestamp_ms)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> TreeHead:
        dec = Decoder(data, TREE_HEAD_LABEL)
        log_id = dec.bytes(length=HASH_LEN)
        size = dec.u64()
        root = dec.bytes(length=HASH_LEN)
        ts = dec.u64()
        dec.finish()
        return cls(size, root, ts, log_id)

    def hash(self) -> bytes:
        """head_hash = SHA-256(encode(head)); what cosignatures and commits refer to."""
        return self._hash

    @cached_property
    def _hash(self) -> bytes:
        return sha256(self.encode())


@dataclass(frozen=True)
class Cosignature:
    """A witness's signature over encode("koppi/v1/cosign", head_hash, witness_id, u64 time)."""

    witness_id: bytes
    timestamp_ms: int
    signature: bytes = field(repr=False)

    @staticmethod
    def message(head_hash: bytes, witness_id: bytes, timestamp_ms: int) -> bytes:
        return Encoder(COSIGN_LABEL).bytes(head_hash).bytes(witness_id).u64(timestamp_ms).finish()

    def encode(self) -> bytes:
        return (
            Encoder(COSIGNATURE_LABEL)
            .bytes(self.witness_id)
            .u64(self.timestamp_ms)
            .bytes(self.signature)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> Cosignature:
        dec = Decoder(data, COSIGNATURE_LABEL)
        wid = dec.bytes(length=HASH_LEN)
        ts = dec.u64()
        sig = dec.bytes(length=SIG_LEN)
        dec.finish()
        return cls(wid, ts, sig)


@dataclass(frozen=True)
class CosignedTreeHead:
    """A tree head, the log's signature over it and the witnesses' cosignatures."""

    head: TreeHead
    signature: bytes = field(repr=False)
    cosignatures: tuple[Cosignature, ...] = ()

    def encode(self) -> bytes:
        """encode("koppi/v1/cosigned-tree-head", bytes head, bytes sig, list cosignatures)."""
        return (
            Encoder(COSIGNED_HEAD_LABEL)
            .bytes(self.head.encode())
            .bytes(self.signature)
            .list(c.encode() for c in self.cosignatures)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> CosignedTreeHead:
        dec = Decoder(data, COSIGNED_HEAD_LABEL)
        head = TreeHead.decode(dec.bytes(max_len=256))
        sig = dec.bytes(length=SIG_LEN)
        cos = tuple(
            Cosignature.decode(c) for c in dec.list(max_items=MAX_COSIGNATURES, item_max_len=256)
        )
        dec.finish()
        return cls(head, sig, cos)


def sign_tree_head(log_key: SigningKey, head: TreeHead) -> CosignedTreeHead:
    """The log's side: sign a head (no cosignatures yet)."""
    if head.log_id != key_id(log_key.public):
        raise LocalProtocolError("the head's log_id is not this log key's id")
    return CosignedTreeHead(head, log_key.sign(head.encode()), ())


def cosign(cth: CosignedTreeHead, witness_key: SigningKey, timestamp_ms: int) -> CosignedTreeHead:
    """A witness's side: add its cosignature (after it has checked consistency itself)."""
    wid = key_id(witness_key.public)
    sig = witness_key.sign(Cosignature.message(cth.head.hash(), wid, timestamp_ms))
    if any(c.witness_id == wid and c.timestamp_ms == timestamp_ms for c in cth.cosignatures):
        return cth  # Ed25519 is deterministic: the same cosignature is already there
    return CosignedTreeHead(
        cth.head, cth.signature, (*cth.cosignatures, Cosignature(wid, timestamp_ms, sig))
    )


# --- verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogConfig:
    """What a client trusts: the log key, the witness keys by id, the quorum k, MAX_HEAD_AGE."""

    log_public_key: bytes
    witnesses: Mapping[bytes, bytes]  # witness id -> Ed25519 public key
    quorum: int
    max_head_age_ms: int = MAX_HEAD_AGE_MS

    @classmethod
    def create(
        cls,
        log_public_key: bytes,
        witness_keys: Iterable[bytes],
        *,
        quorum: int,
        max_head_age_ms: int = MAX_HEAD_AGE_MS,
    ) -> LogConfig:
        check_ed25519_public(log_public_key)
        witnesses = {key_id(check_ed25519_public(k)): k for k in witness_keys}
        if not 1 <= quorum <= len(witnesses):
            raise LocalProtocolError("quorum must be between 1 and the number of witnesses")
        if max_head_age_ms <= 0:
            raise LocalProtocolError("MAX_HEAD_AGE must be positive")
        return cls(log_public_key, witnesses, quorum, max_head_age_ms)

    @property
    def log_id(self) -> bytes:
        return key_id(self.log_public_key)

    def verify(self, cth: CosignedTreeHead) -> None:
        """Log signature and quorum (docs/protocol.md §4); freshness is the view's business.

        Cosignatures by unknown witnesses or with bad signatures are ignored; several valid
        cosignatures by one witness count once.
        """
        if cth.head.log_id != self.log_id:
            raise TreeHeadError("tree head of another log", code=UNKNOWN_LOG)
        ed25519_verify(self.log_public_key, cth.head.encode(), cth.signature)
        head_hash = cth.head.hash()
        valid: set[bytes] = set()
        for c in cth.cosignatures:
            public = self.witnesses.get(c.witness_id)
            if public is None or c.witness_id in valid:
                continue
            try:
                ed25519_verify(
                    public,
                    Cosignature.message(head_hash, c.witness_id, c.timestamp_ms),
                    c.signature,
                )
            except AuthFailed:
                continue
            valid.add(c.witness_id)
        if len(valid) < self.quorum:
            raise TreeHeadError(
                f"tree head has {len(valid)} valid cosignatures, {self.quorum} needed", code=QUORUM
            )


class LogView:
    """A client's state of the log: the newest verified cosigned head, and the rules to move it.

    - `update(cth, proof)`: verify signature and quorum, refuse a stale head, refuse a smaller
      size or an older timestamp (`koppi.tree_head_rollback`), and require a valid consistency
      proof from the current head (`koppi.bad_consistency_proof`).
    - `effective_now_ms()`: the local clock, but never earlier than the newest head's timestamp.
    - `fresh_head()`: the current head if younger than MAX_HEAD_AGE, else `koppi.stale_tree_head`.
    - `verify_inclusion(entry, index, proof)`: an entry is in the tree of the current head.
    """

    def __init__(
        self, config: LogConfig, clock: Clock, current: CosignedTreeHead | None = None
    ) -> None:
        self.config = config
        self._clock = clock
        if current is not None:
            config.verify(current)
        self._current = current

    @property
    def current(self) -> CosignedTreeHead | None:
        return self._current

    def __repr__(self) -> str:
        size = None if self._current is None else self._current.head.size
        return f"LogView(size={size}, quorum={self.config.quorum})"

    def effective_now_ms(self) -> int:
        """The local clock, floored at the newest verified head's timestamp (outline §2)."""
        now = self._clock.now_ms()
        if self._current is not None:
            now = max(now, self._current.head.timestamp_ms)
        return now

    def _check_fresh(self, head: TreeHead) -> None:
        if head.timestamp_ms + self.config.max_head_age_ms < self.effective_now_ms():
            raise TreeHeadError("tree head older than MAX_HEAD_AGE", code=STALE)

    def fresh_head(self) -> CosignedTreeHead:
        """The head to base trust status on; fails closed if none or too old."""
        if self._current is None:
            raise TreeHeadError("no verified tree head yet", code=STALE)
        self._check_fresh(self._current.head)
        return self._current

    def update(self, cth: CosignedTreeHead, consistency_proof: Sequence[bytes]) -> None:
        """Move to `cth` if it is verified, fresh, and consistent with the current head."""
        self.config.verify(cth)
        self._check_fresh(cth.head)
        old = self._current
        if old is not None:
            new = cth.head
            if new.size < old.head.size or new.timestamp_ms < old.head.timestamp_ms:
                raise TreeHeadError("tree head goes backwards", code=ROLLBACK)
            verify_consistency(old.head.size, new.size, old.head.root, new.root, consistency_proof)
        self._current = cth

    def verify_inclusion(
        self, entry: bytes, index: int, proof: Sequence[bytes], *, require_fresh: bool = True
    ) -> None:
        """`entry` is leaf `index` of the current head's tree (RFC 9162 §2.1.3.2).

        Trust status (revocations, consent) needs a fresh head: `require_fresh` stays True for
        those; a certificate's historical inclusion may be checked against an older head.
        """
        cth = self.fresh_head() if require_fresh else self._require_current()
        verify_inclusion_hash(merkle_leaf_hash(entry), index, cth.head.size, proof, cth.head.root)

    def _require_current(self) -> CosignedTreeHead:
        if self._current is None:
            raise TreeHeadError("no verified tree head yet", code=STALE)
        return self._current
