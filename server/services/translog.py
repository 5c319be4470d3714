"""The deployment's transparency log, server side (docs/protocol.md §4, issue: organisations).

Append-only: every organisation key, rotation, device certificate, DeviceLink, revocation and
consent (as a hash) becomes one leaf, at the next index, in one transaction. The service keeps the
RFC 9162 tree in memory (`crypto.merkle.MerkleTree`, rebuilt from the stored leaf hashes at start)
to answer inclusion and consistency proofs, and signs a tree head with the log key (a key of its
own, separate from the root and the organisation keys) on an interval and on demand, so that
clients always find one younger than MAX_HEAD_AGE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from crypto.clock import Clock
from crypto.errors import AuthFailed
from crypto.merkle import MerkleTree, leaf_hash
from crypto.primitives import SigningKey, ed25519_verify
from crypto.treehead import Cosignature, CosignedTreeHead, TreeHead, key_id, sign_tree_head
from server.errors import ApiError
from server.periodic import Periodic
from server.repositories.translog import LogRepository

log = structlog.get_logger(__name__)

KINDS = frozenset(
    {"org", "device", "revocation", "link", "consent", "commit-head", "web-release", "audit-head"}
)
MAX_ENTRIES_PER_PAGE = 1000
RECENT_HEADS = 100  # witnesses cosign recent heads; older ones are too old for MAX_HEAD_AGE anyway


async def append_entry(
    repo: LogRepository, kind: str, entry: bytes, payload: bytes | None, *, now: int
) -> int:
    """Append one leaf from a process that holds no tree (the operator's CLI): the next free
    index, retried if another writer takes it first. Running servers take it in (`_catch_up`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown log entry kind {kind!r}")
    h = leaf_hash(entry)
    while True:
        index = len(await repo.leaf_hashes())
        if await repo.append(index, kind, entry, entry if payload is None else payload, h, now):
            return index


class TransparencyLog:
    def __init__(
        self, repo: LogRepository, log_key: SigningKey, clock: Clock, *, head_interval_s: float
    ) -> None:
        self._repo, self._key, self._clock = repo, log_key, clock
        self._interval = head_interval_s
        self._tree = MerkleTree()
        self._lock = asyncio.Lock()  # one appender at a time: index = current size
        self._signer: Periodic | None = None
        self._head: CosignedTreeHead | None = None

    @property
    def log_id(self) -> bytes:
        return key_id(self._key.public)

    @property
    def public_key(self) -> bytes:
        return self._key.public

    @property
    def size(self) -> int:
        return self._tree.size

    async def start(self) -> None:
        self._tree = MerkleTree.from_leaf_hashes(await self._repo.leaf_hashes())
        stored = await self._repo.latest_head()
        self._head = None if stored is None else CosignedTreeHead.decode(stored)
        await self.sign_head()
        self._signer = Periodic("tree-heads", self.sign_head, self._interval)
        self._signer.start()

    async def stop(self) -> None:
        if self._signer is not None:
            await self._signer.stop()

    async def append(self, kind: str, entry: bytes, payload: bytes | None = None) -> int:
        """Store one leaf and return its index; the in-memory tree moves only after the commit."""
        if kind not in KINDS:
            raise ValueError(f"unknown log entry kind {kind!r}")
        h = leaf_hash(entry)
        async with self._lock:
            while True:
                await self._catch_up()
                index = self._tree.size
                stored = await self._repo.append(
                    index, kind, entry, entry if payload is None else payload, h,
                    self._clock.now_ms(),
                )  # fmt: skip
                if stored:
                    self._tree.append_leaf_hash(h)
                    return index

    async def latest(self, kind: str) -> tuple[int, bytes] | None:
        """The newest entry of one kind: its index and the payload clients fetch."""
        return await self._repo.latest_of_kind(kind)

    async def _catch_up(self) -> None:
        """Take in leaves another process appended (the operator's CLI, a second server)."""
        for h in await self._repo.leaf_hashes(self._tree.size):
            self._tree.append_leaf_hash(h)

    async def refresh(self) -> None:
        async with self._lock:
            await self._catch_up()

    async def sign_head(self) -> CosignedTreeHead:
        """Sign the current size and root; never a head older than the last one signed."""
        async with self._lock:
            await self._catch_up()
            now = self._clock.now_ms()
            if self._head is not None:
                now = max(now, self._head.head.timestamp_ms + 1)
            cth = sign_tree_head(
                self._key, TreeHead(self._tree.size, self._tree.root(), now, self.log_id)
            )
            await self._repo.add_head(now, cth.head.size, cth.encode())
            self._head = cth
            return cth

    async def head(self) -> CosignedTreeHead:
        """The newest head; a new one is signed if it is older than the signing interval."""
        cth = self._head
        if cth is None or cth.head.timestamp_ms + self._interval * 1000 < self._clock.now_ms():
            cth = await self.sign_head()
        return cth

    async def newest_cosigned(self, quorum: int) -> CosignedTreeHead | None:
        """The newest of the recent heads with at least `quorum` cosignatures (every stored
        cosignature was verified against a configured witness when it was added)."""
        if self._head is not None and len(self._head.cosignatures) >= quorum:
            return self._head
        for stored in await self._repo.recent_heads(RECENT_HEADS):
            cth = CosignedTreeHead.decode(stored)
            if len(cth.cosignatures) >= quorum:
                return cth
        return None

    async def add_cosignature(
        self, timestamp_ms: int, cosignature: Cosignature, witnesses: Mapping[bytes, bytes]
    ) -> CosignedTreeHead:
        """A witness (an organisation's `koppi monitor`) cosigned the head signed at
        `timestamp_ms`; only configured witnesses with a valid signature are kept."""
        public = witnesses.get(cosignature.witness_id)
        if public is None:
            raise ApiError(403, "koppi.unknown_witness", "not a configured witness")
        async with self._lock:
            stored = await self._repo.head_at(timestamp_ms)
            if stored is None:
                raise ApiError(404, "koppi.log_out_of_range", "no head was signed at that time")
            cth = CosignedTreeHead.decode(stored)
            message = Cosignature.message(cth.head.hash(), cosignature.witness_id,
                                          cosignature.timestamp_ms)  # fmt: skip
            try:
                ed25519_verify(public, message, cosignature.signature)
            except AuthFailed:
                raise ApiError(
                    400, "koppi.auth_failed", "the cosignature does not verify"
                ) from None
            kept = [c for c in cth.cosignatures if c.witness_id != cosignature.witness_id]
            updated = CosignedTreeHead(cth.head, cth.signature, (*kept, cosignature))
            await self._repo.replace_head(timestamp_ms, updated.encode())
            if self._head is not None and self._head.head.timestamp_ms == timestamp_ms:
                self._head = updated
            return updated

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size <= self._tree.size:
            raise ApiError(404, "koppi.log_out_of_range", "no such leaf in a tree of that size")
        return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        if not 0 <= old <= new <= self._tree.size:
            raise ApiError(404, "koppi.log_out_of_range", "no such pair of tree sizes")
        return self._tree.consistency_proof(old, new)

    async def entries(self, start: int, end: int) -> list[tuple[int, str, bytes]]:
        if not 0 <= start <= end or end - start > MAX_ENTRIES_PER_PAGE:
            raise ApiError(400, "koppi.bad_request", f"at most {MAX_ENTRIES_PER_PAGE} entries")
        rows = await self._repo.entries(start, min(end, self._tree.size))
        return [(r.idx, r.kind, bytes(r.payload)) for r in rows]
