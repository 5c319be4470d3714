"""The audit trail's hash chain (issue: storage rights, "Audit and disclosure log").

Every audit event carries the hash of the one before it, so an event changed or removed after the
fact breaks the chain where it happened; `koppi audit verify` walks it. Pure: the repository
appends, the CLI verifies.

    hash = H("koppi/v1/audit-event", u64 id, bytes org_id(16), bytes actor (16 | empty),
             text action, text subject, u64 at, bytes prev_hash(32))

The first event's `prev_hash` is 32 zero bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from crypto.encoding import Encoder
from crypto.primitives import sha256

GENESIS = bytes(32)
# Events about one thread name it first in their subject (docs/protocol.md, audit actions).
THREAD_ACTIONS = ("admission.", "consent.", "export.", "thread.", "member.", "message.")


def thread_of(action: str, subject: str) -> uuid.UUID | None:
    """The thread an event is about, from its subject: what its participants may see. Derived,
    so it is covered by the chain through the subject and needs no hash of its own."""
    if not action.startswith(THREAD_ACTIONS):
        return None
    try:
        return uuid.UUID(subject.split(" ", 1)[0])
    except ValueError:
        return None


def event_hash(
    event_id: int,
    org_id: uuid.UUID,
    actor: uuid.UUID | None,
    action: str,
    subject: str,
    at: int,
    prev_hash: bytes,
) -> bytes:
    return sha256(
        Encoder("koppi/v1/audit-event")
        .u64(event_id)
        .bytes(org_id.bytes)
        .bytes(b"" if actor is None else actor.bytes)
        .text(action)
        .text(subject)
        .u64(at)
        .bytes(prev_hash)
        .finish()
    )


@dataclass(frozen=True)
class Link:
    """One stored event as the chain sees it."""

    id: int
    org_id: uuid.UUID
    actor: uuid.UUID | None
    action: str
    subject: str
    at: int
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class Verdict:
    events: int
    head: bytes
    broken_at: int | None = None  # the id of the first event that does not hold
    why: str = ""


def verify_chain(links: Iterable[Link]) -> Verdict:
    """Walk the events in id order: each names its predecessor's hash and hashes to its own."""
    prev, count = GENESIS, 0
    for link in links:
        if link.prev_hash != prev:
            return Verdict(
                count, prev, link.id, "does not follow the event before it (one removed?)"
            )
        expected = event_hash(
            link.id, link.org_id, link.actor, link.action, link.subject, link.at, link.prev_hash
        )
        if link.hash != expected:
            return Verdict(count, prev, link.id, "its fields do not hash to its hash (changed?)")
        prev, count = link.hash, count + 1
    return Verdict(count, prev)
