"""The seam between what a client has verified and the group state that relies on it.

The thread state (`crypto/group.py`) never reads certificates, logs or consents itself. Its caller
hands it a `TrustView`: a read-only answer to "which devices are verified right now, and which
consents cover whom", built from certificate chains, log inclusion proofs and a fresh cosigned tree
head (docs/protocol.md §3-§5). Tests use a small in-memory view; clients use the one in
`crypto/identity.py` / `crypto/consent.py`.

Identifiers: organisations and users are 16-byte ids (the server's UUIDs); a device id is
`H("koppi/v1/device-id", signing_public)`, 32 bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from crypto.encoding import hash_fields


@functools.lru_cache(maxsize=4096)
def device_id_of(signing_public: bytes) -> bytes:
    """H("koppi/v1/device-id", signing_public); cached, as senders derive it per message."""
    return hash_fields("koppi/v1/device-id", signing_public)


@dataclass(frozen=True)
class VerifiedDevice:
    """A device whose certificate chains to its organisation key and the deployment root, and
    whose certificate is included in the log as of the caller's current tree head."""

    device_id: bytes
    user_id: bytes
    org_id: bytes
    roles: frozenset[str]
    signing_public: bytes
    kem_public: bytes
    cert_hash: bytes
    cert_log_index: int
    revoked_at_index: int | None = None  # log index of the device's revocation entry, if any
    not_after: int | None = None  # the certificate's expiry (seconds), if known

    def expired(self, now: int) -> bool:
        """Certificate expiry is the one time-based end of a device (a mandatory new epoch)."""
        return self.not_after is not None and now >= self.not_after

    def valid_at(self, tree_size: int) -> bool:
        """Validity is ordered by log position (docs/protocol.md §3): a revocation logged at index
        i applies to every epoch whose commit echoes a tree size > i."""
        if tree_size <= self.cert_log_index:
            return False
        return self.revoked_at_index is None or tree_size <= self.revoked_at_index


@dataclass(frozen=True)
class ConsentCover:
    """What the group state needs to know of one verified consent version."""

    consent_id: bytes
    version: int
    core_hash: bytes
    client_ref: bytes
    purpose: str
    active: bool
    organisations: frozenset[bytes]
    roles: Mapping[bytes, frozenset[str]]  # per organisation that names roles; others: any role
    may_store: frozenset[bytes]
    changes_at: int | None = None  # when `active` next flips by the passage of time alone
    full_history: frozenset[bytes] = frozenset()  # organisations let read from the start

    def includes(self, device: VerifiedDevice) -> bool:
        """The device's organisation (and role, if the consent names roles) is in this version,
        whether or not the version is still in force (old commits are judged as they were)."""
        if device.org_id not in self.organisations:
            return False
        named = self.roles.get(device.org_id)
        return not named or bool(named & device.roles)

    def covers(self, device: VerifiedDevice) -> bool:
        """Covered now: the version is in force and includes the device."""
        return self.active and self.includes(device)


class TrustView(Protocol):
    """Read-only, already-verified knowledge a client hands to its thread state."""

    def device(self, device_id: bytes, cert_hash: bytes | None = None) -> VerifiedDevice | None:
        """The device as its newest verified certificate describes it, or as the certificate
        `cert_hash` does (a roster entry names the certificate it was admitted with)."""
        ...

    def consent(self, core_hash: bytes) -> ConsentCover | None: ...

    def latest_consent(self, consent_id: bytes) -> ConsentCover | None:
        """The newest verified version of a consent (its `active` says whether it is in force)."""
        ...

    def state_token(self) -> object:
        """A value that changes whenever any answer of this view may change, except by the
        passage of time (callers may cache what they derive from it)."""
        ...

    def tree_size(self) -> int:
        """Size of the freshest cosigned tree head the client trusts (younger than MAX_HEAD_AGE)."""
        ...

    def tree_head_hash(self) -> bytes: ...
