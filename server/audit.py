"""The audit trail's hash chain (issue: storage rights, "Audit and disclosure log").

Every audit event carries the hash of the one before it, so an event changed or removed after the
fact breaks the chain where it happened; `koppi audit verify` walks it. Pure: the repository
appends, the CLI verifies.

    hash = H("koppi/v1/audit-event", u64 id, bytes org_id(16), bytes actor (16 | empty),
             text action, text subject, u64 at, bytes prev_hash(32))

The first event's `prev_hash` is 32 zero bytes. The subjects of the message events are built
here, in one place, because the right-to-know report parses them (docs/protocol.md §11).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from crypto.encoding import Encoder

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


class EventFields(Protocol):
    """What the chain hashes of an event (a stored `AuditEvent` row or a `NewEvent`)."""

    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def actor(self) -> uuid.UUID | None: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def at(self) -> int: ...


class NewEvent(NamedTuple):
    """An event about to be appended, without the ORM's per-object cost (the group commit makes
    one per stored message)."""

    org_id: uuid.UUID
    actor: uuid.UUID | None
    action: str
    subject: str
    at: int


def chained(
    events: Sequence[EventFields], next_id: int, prev: bytes
) -> list[tuple[int, EventFields, bytes, bytes]]:
    """Number and hash events after the chain's head: (id, event, prev_hash, hash) each."""
    out = []
    for offset, e in enumerate(events):
        event_id = next_id + offset
        own = event_hash(event_id, e.org_id, e.actor, e.action, e.subject, e.at, prev)
        out.append((event_id, e, prev, own))
        prev = own
    return out


def stored_subject(
    thread_id: uuid.UUID, seq: int, msg_id: bytes, basis: str, label_orgs: Sequence[str]
) -> str:
    """`message.stored`: `<thread> seq <seq> <msg id base64url> <basis> <orgs comma-separated,
    in label order, or ->`. Metadata only: never a byte of the content."""
    msg = base64.urlsafe_b64encode(msg_id).rstrip(b"=").decode()
    orgs = ",".join(label_orgs) or "-"
    return f"{thread_id} seq {seq} {msg} {basis} {orgs}"


def pruned_subject(events: int, disclosures: int, up_to: int) -> str:
    """`audit.pruned`: `<events> events <disclosures> disclosures up to <id>`: how many of the
    organisation's events and disclosure records the retention purge deleted, and the id of the
    last event pruned from the chain so far (its anchor; 0 if none ever was)."""
    return f"{events} events {disclosures} disclosures up to {up_to}"


def delivered_subject(thread_id: uuid.UUID, device_id: bytes | None, first: int, last: int) -> str:
    """`message.delivered`: `<thread> <device id's first 16 bytes hex, or -> seq <first>-<last>`."""
    device = "-" if device_id is None else device_id[:16].hex()
    return f"{thread_id} {device} seq {first}-{last}"


def event_hash(
    event_id: int,
    org_id: uuid.UUID,
    actor: uuid.UUID | None,
    action: str,
    subject: str,
    at: int,
    prev_hash: bytes,
) -> bytes:
    """The encoding of the module docstring (`crypto.encoding`), laid out by hand: the group
    commit hashes one event per stored message, and the generic `Encoder` costs most of that.
    `tests/server/test_audit_chain.py` holds it to the `Encoder`'s bytes."""
    who = b"" if actor is None else actor.bytes
    what, about = action.encode(), subject.encode()
    return hashlib.sha256(
        b"".join((
            _EVENT_LABEL, event_id.to_bytes(8, "big"), _ORG_LENGTH, org_id.bytes,
            len(who).to_bytes(4, "big"), who, len(what).to_bytes(4, "big"), what,
            len(about).to_bytes(4, "big"), about, at.to_bytes(8, "big"),
            len(prev_hash).to_bytes(4, "big"), prev_hash,
        ))
    ).digest()  # fmt: skip


_EVENT_LABEL = Encoder("koppi/v1/audit-event").finish()  # the domain label field
_ORG_LENGTH = (16).to_bytes(4, "big")


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
class Anchor:
    """Where the kept chain starts once its oldest events were pruned: the last pruned event's
    id and hash, and how many events the chain had up to it (an `AuditHead` checkpoint)."""

    last_id: int
    head_hash: bytes
    events: int


@dataclass(frozen=True)
class Verdict:
    events: int
    head: bytes
    broken_at: int | None = None  # the id of the first event that does not hold
    why: str = ""


def verify_chain(links: Iterable[Link], start: Anchor | None = None) -> Verdict:
    """Walk the events in id order: each names its predecessor's hash and hashes to its own. The
    first names genesis, or the anchor's hash when the chain's start was pruned."""
    prev, count, after = (GENESIS, 0, 0) if start is None else (start.head_hash, start.events,
                                                                 start.last_id)  # fmt: skip
    for link in links:
        if link.id <= after:
            return Verdict(count, prev, link.id, "is older than the anchor the chain starts at")
        if link.prev_hash != prev:
            return Verdict(
                count, prev, link.id, "does not follow the event before it (one removed?)"
            )
        expected = event_hash(
            link.id, link.org_id, link.actor, link.action, link.subject, link.at, link.prev_hash
        )
        if link.hash != expected:
            return Verdict(count, prev, link.id, "its fields do not hash to its hash (changed?)")
        prev, count, after = link.hash, count + 1, link.id
    return Verdict(count, prev)
