"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verification (docs/protocol.md §4).

The transparency log of a deployment is one append-only Merkle tree of log entries. Clients never
hold the tree; they hold a tree head (size, root) and check proofs against it:

    >>> entries = [b"a", b"b", b"c"]
    >>> proof = inclusion_proof(entries, 2)
    >>> verify_inclusion(b"c", 2, 3, proof, root(entries))        # returns None, or raises
    >>> verify_consistency(2, 3, root(entries[:2]), root(entries), consistency_proof(entries, 2))

Hashing (RFC 9162 §2.1.1): `MTH({}) = SHA-256()`, a leaf is `SHA-256(0x00 || entry)`, an interior
node `SHA-256(0x01 || left || right)`, and a tree of n > 1 leaves splits at the largest power of two
smaller than n. Verification follows §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by step;
every failure raises `MerkleError` with `koppi.bad_inclusion_proof` or
`koppi.bad_consistency_proof`, and says nothing else about what went wrong.

`MerkleTree` is the incremental form that a log server keeps: it caches every complete, aligned
subtree, so appending costs O(log n) hashes and a root or proof at any past size costs O(log^2 n).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence

from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.primitives import sha256

HASH_LEN = 32
EMPTY_ROOT = sha256(b"")

BAD_INCLUSION = "koppi.bad_inclusion_proof"
BAD_CONSISTENCY = "koppi.bad_consistency_proof"


class MerkleError(RemoteProtocolError):
    """An inclusion or consistency proof did not verify (its `code` says which kind)."""

    default_code = BAD_INCLUSION


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of one log entry, `SHA-256(0x00 || entry)`."""
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an interior node, `SHA-256(0x01 || left || right)`."""
    return sha256(b"\x01" + left + right)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree with cached complete subtrees.

    `_levels[h][i]` is the hash of the perfect subtree over leaves `[i * 2^h, (i + 1) * 2^h)`.
    Every subtree the RFC's recursive definitions visit is either such an aligned perfect subtree
    or is split further, so roots and proofs for any size up to `size` come from the cache.
    """

    __slots__ = ("_levels",)

    def __init__(self, entries: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for entry in entries:
            self.append(entry)

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """Rebuild a tree from stored leaf hashes (a log server restarting from its database)."""
        tree = cls()
        for h in hashes:
            tree.append_leaf_hash(h)
        return tree

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self.size})"

    def append(self, entry: bytes) -> int:
        """Append one log entry; returns its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, h: bytes) -> int:
        if len(h) != HASH_LEN:
            raise LocalProtocolError("a leaf hash is 32 bytes")
        index = self.size
        self._levels[0].append(bytes(h))
        level, i = 0, index
        # Each time a right child completes a pair, the parent subtree is complete too.
        while i & 1:
            parent = node_hash(self._levels[level][i - 1], self._levels[level][i])
            level += 1
            if len(self._levels) == level:
                self._levels.append([])
            self._levels[level].append(parent)
            i >>= 1
        return index

    def leaf_hash(self, index: int) -> bytes:
        self._check_index(index, self.size)
        return self._levels[0][index]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` entries (default: all)."""
        n = self._size_arg(size)
        return EMPTY_ROOT if n == 0 else self._mth(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
        n = self._size_arg(size)
        self._check_index(index, n)
        path: list[bytes] = []
        self._path(index, 0, n, path)
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); empty when old_size is 0 or equal."""
        n = self._size_arg(new_size)
        if not 0 <= old_size <= n:
            raise LocalProtocolError("consistency proof needs 0 <= old_size <= new_size")
        if old_size in (0, n):
            return []
        proof: list[bytes] = []
        self._subproof(old_size, 0, n, True, proof)
        return proof

    # --- internals --------------------------------------------------------------------------

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise LocalProtocolError("tree size out of range")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise LocalProtocolError("leaf index out of range")

    def _mth(self, lo: int, n: int) -> bytes:
        """MTH of the n >= 1 leaves starting at lo (lo is a multiple of the top split)."""
        if n & (n - 1) == 0 and lo % n == 0:
            return self._levels[n.bit_length() - 1][lo // n]
        k = _split(n)
        return node_hash(self._mth(lo, k), self._mth(lo + k, n - k))

    def _path(self, m: int, lo: int, n: int, out: list[bytes]) -> None:
        if n == 1:
            return
        k = _split(n)
        if m < k:
            self._path(m, lo, k, out)
            out.append(self._mth(lo + k, n - k))
        else:
            self._path(m - k, lo + k, n - k, out)
            out.append(self._mth(lo, k))

    def _subproof(self, m: int, lo: int, n: int, complete: bool, out: list[bytes]) -> None:
        if m == n:
            if not complete:
                out.append(self._mth(lo, n))
            return
        k = _split(n)
        if m <= k:
            self._subproof(m, lo, k, complete, out)
            out.append(self._mth(lo + k, n - k))
        else:
            self._subproof(m - k, lo + k, n - k, False, out)
            out.append(self._mth(lo, k))


# --- whole-list helpers -------------------------------------------------------------------------


def root(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1; the empty list hashes to SHA-256 of the empty string."""
    return MerkleTree(entries).root()


def inclusion_proof(entries: Sequence[bytes], index: int) -> list[bytes]:
    return MerkleTree(entries).inclusion_proof(index)


def consistency_proof(entries: Sequence[bytes], old_size: int) -> list[bytes]:
    return MerkleTree(entries).consistency_proof(old_size)


# --- verification (what clients run) ------------------------------------------------------------


def _well_formed(hashes: Iterable[bytes]) -> bool:
    return all(isinstance(h, bytes | bytearray) and len(h) == HASH_LEN for h in hashes)


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def root_from_inclusion(h: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-4 for leaf hash `h`; returns the computed root.

    Raises `MerkleError` where the RFC says "fail" before the final comparison (index out of range,
    path too long, path too short) or if any hash is not 32 bytes.
    """
    if not _well_formed([h, *proof]) or index < 0 or index >= size:  # step 1
        raise MerkleError("inclusion proof does not verify", code=BAD_INCLUSION)
    fn, sn = index, size - 1  # step 2
    r = bytes(h)  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            raise MerkleError("inclusion proof does not verify", code=BAD_INCLUSION)
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    if sn != 0:  # step 5, first half
        raise MerkleError("inclusion proof does not verify", code=BAD_INCLUSION)
    return r


def verify_inclusion_hash(
    h: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Verify inclusion of a leaf given by its leaf hash (RFC 9162 §2.1.3.2)."""
    r = root_from_inclusion(h, index, size, proof)
    if not _well_formed([root_hash]) or not _equal(r, root_hash):  # step 5
        raise MerkleError("inclusion proof does not verify", code=BAD_INCLUSION)


def verify_inclusion(
    entry: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that `entry` is leaf `index` of the tree of `size` leaves with root `root`."""
    verify_inclusion_hash(leaf_hash(entry), index, size, proof, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 §2.1.4.2 for 0 < old_size < new_size. The two cases it leaves out have nothing to
    prove and therefore need an empty proof: equal sizes need equal roots, and size 0 needs the
    empty root (every tree extends the empty one). old_size > new_size always fails.
    """

    def fail() -> MerkleError:
        return MerkleError("consistency proof does not verify", code=BAD_CONSISTENCY)

    if not _well_formed([old_root, new_root, *proof]) or not 0 <= old_size <= new_size:
        raise fail()
    if old_size == 0:
        if proof or not _equal(old_root, EMPTY_ROOT):
            raise fail()
        return
    if old_size == new_size:
        if proof or not _equal(old_root, new_root):
            raise fail()
        return
    if not proof:  # step 1
        raise fail()
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            raise fail()
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # step 7
    if not (_equal(fr, old_root) and _equal(sr, new_root) and sn == 0):
        raise fail()
