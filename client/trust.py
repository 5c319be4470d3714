"""Follow the server's transparency log into a `TrustStore` (docs/protocol.md §4.6, §3).

A client that reads every entry needs no inclusion proof from the server: it recomputes the tree
from the leaves it fetched and accepts the head only if the recomputed root is the head's root and
the head verifies (log signature, quorum, freshness, consistency with the head before). Each entry
is then offered to the `TrustStore`, which checks its signature chain; an entry that fails is not
trusted and is kept in `refused` with its reason, so a client can say *why* it will not wrap keys
to a device the server lists (the ghost-device case, `resolve_members`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from client.transport import b64u, unb64u
from crypto.consent import ConsentRecord
from crypto.errors import KoppiError, RemoteProtocolError
from crypto.group import Member
from crypto.identity import TrustStore
from crypto.logentries import WebManifest
from crypto.merkle import MerkleTree, leaf_hash
from crypto.treehead import CosignedTreeHead
from crypto.trust import VerifiedDevice

GetJson = Callable[[str], Awaitable[Any]]
PAGE = 1000

__all__ = ["Entry", "LogFollower", "LogMismatch", "b64u", "resolve_members", "unb64u"]


def leaf_input(kind: str, payload: bytes) -> bytes:
    """What the log hashed for an entry of `kind` whose fetched data is `payload`: the entry
    itself, or the hash-entry of a consent record or a web release manifest."""
    if kind == "consent":
        return ConsentRecord.decode(payload).log_entry()
    if kind == "web-release":
        return WebManifest.decode(payload).log_entry()
    return payload


@dataclass(frozen=True)
class Entry:
    index: int
    kind: str
    payload: bytes


@dataclass(frozen=True)
class Refusal:
    """An entry the trust store would not accept, and why."""

    index: int
    kind: str
    code: str
    message: str


class LogMismatch(RemoteProtocolError):
    """The entries served are not the tree the head signs (or not the ones served before)."""

    default_code = "koppi.bad_inclusion_proof"


class LogFollower:
    """One client's replay of the log. `follow()` moves to the server's newest head."""

    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust
        self.refused: dict[int, Refusal] = {}
        self._leaves: list[bytes] = []
        self._tree = MerkleTree()

    @property
    def size(self) -> int:
        return self._tree.size

    def leaf_hashes(self) -> list[bytes]:
        return list(self._leaves)

    async def follow(self, get: GetJson) -> list[Entry]:
        """Fetch the newest head this client can accept (one with as many cosignatures as its
        quorum) and every entry since the last one; returns the new entries."""
        quorum = self.trust.log.config.quorum
        body = await get(f"/api/log/head?cosigned={quorum}" if quorum else "/api/log/head")
        cth = CosignedTreeHead.decode(unb64u(body["head"]))
        entries = await fetch_entries(get, self.size, cth.head.size)
        self.advance(cth, entries)
        return entries

    def advance(self, cth: CosignedTreeHead, entries: list[Entry]) -> None:
        """Take `entries` (the leaves from the current size up to the head's) and the head."""
        old = self.size
        if cth.head.size < old:
            raise LogMismatch("the log shrank", code="koppi.tree_head_rollback")
        if [e.index for e in entries] != list(range(old, cth.head.size)):
            raise LogMismatch("the server did not serve the entries the head covers")
        tree = MerkleTree.from_leaf_hashes(self._leaves)
        new_leaves = [leaf_hash(leaf_input(e.kind, e.payload)) for e in entries]
        for h in new_leaves:
            tree.append_leaf_hash(h)
        if tree.root() != cth.head.root:
            raise LogMismatch("the head's root is not the tree of the entries served")
        proof = tree.consistency_proof(old) if self.trust.log.current is not None else []
        self.trust.log.update(cth, proof)  # signature, quorum, freshness, consistency
        self._tree, self._leaves = tree, self._leaves + new_leaves
        for e in entries:
            try:
                self._accept(e, tree.inclusion_proof(e.index))
            except KoppiError as err:
                self.refused[e.index] = Refusal(e.index, e.kind, err.code, err.message)

    def _accept(self, e: Entry, proof: list[bytes]) -> None:
        add = {
            "org": self.trust.add_org_cert,
            "device": self.trust.add_device_cert,
            "revocation": self.trust.add_revocation,
            "link": self.trust.add_device_link,
            "consent": self.trust.add_consent,
        }.get(e.kind)
        if add is not None:
            add(e.payload, e.index, proof)


async def fetch_entries(get: GetJson, start: int, end: int) -> list[Entry]:
    out: list[Entry] = []
    for lo in range(start, end, PAGE):
        page = await get(f"/api/log/entries?start={lo}&end={min(lo + PAGE, end)}")
        out.extend(Entry(e["index"], e["kind"], unb64u(e["data"])) for e in page["entries"])
    return out


@dataclass(frozen=True)
class Resolution:
    """The devices a client may wrap keys to, those it refuses with the reason, and new devices
    of members that wait for a person's approval."""

    members: list[Member]
    refused: dict[bytes, str]
    needs_approval: dict[bytes, str]


def resolve_members(
    listed: Iterable[Mapping[str, Any]],
    follower: LogFollower,
    *,
    roster: Iterable[bytes] = (),
    approved: Iterable[bytes] = (),
    approved_orgs: Iterable[bytes] = (),
    at_index: int | None = None,
) -> Resolution:
    """Check the devices the server lists for a thread against what the log proves.

    A device is admissible only if the trust store verified a certificate for it that is the one
    the server names (by log index), for the user and organisation the server claims, and not
    revoked; anything else is refused with a reason a person can act on (outline §2).

    A new device of a user who already has a device in the thread's `roster` joins only if one of
    that user's roster devices linked it (a logged DeviceLink) or a person `approved` it after
    comparing its fingerprint; otherwise it waits in `needs_approval` (outline §2: a second
    device is how a stolen account would slip in).

    A device of an organisation new to the thread (none of its devices in a non-empty `roster`)
    waits too, until a member approves adding that organisation (`approved_orgs`): a consent that
    covers it is not enough on its own (issue: consent, "Admission and cut-off").
    """
    trust = follower.trust
    index = follower.size if at_index is None else at_index
    in_roster, by_person = set(roster), set(approved)
    in_thread = [d for d in map(trust.device, in_roster) if d is not None]
    roster_users, roster_orgs = {d.user_id for d in in_thread}, {d.org_id for d in in_thread}
    orgs_approved = set(approved_orgs)
    members: list[Member] = []
    refused: dict[bytes, str] = {}
    needs_approval: dict[bytes, str] = {}
    for item in listed:
        device_id = unb64u(item["device_id"])
        device: VerifiedDevice | None = trust.device(device_id)
        cert_index = item.get("cert_log_index")
        if device is None:
            why = follower.refused.get(cert_index) if isinstance(cert_index, int) else None
            refused[device_id] = (
                f"its certificate at log index {cert_index} was refused: {why.code} ({why.message})"
                if why is not None
                else "koppi.unknown_device: no verified certificate for it in the log"
            )
        elif cert_index != device.cert_log_index:
            refused[device_id] = (
                f"koppi.unknown_device: the server names log index {cert_index}, "
                f"the log certifies it at {device.cert_log_index}"
            )
        elif (item.get("user"), item.get("org")) != (_uuid(device.user_id), _uuid(device.org_id)):
            refused[device_id] = "koppi.roster_mismatch: another user or organisation in the log"
        elif not device.valid_at(index):
            refused[device_id] = f"koppi.device_revoked: revoked at index {device.revoked_at_index}"
        elif device.expired(trust.now()):
            refused[device_id] = "koppi.removal_due: its certificate has expired"
        elif (
            device_id not in in_roster
            and device.user_id in roster_users
            and device_id not in by_person
            and not _linked_from(trust, device_id, in_roster)
        ):
            needs_approval[device_id] = (
                "a new device of a member, linked from none of their devices in this thread:"
                " compare its fingerprint with its owner before approving it"
            )
        elif (
            in_thread
            and device_id not in in_roster
            and device.org_id not in roster_orgs
            and device.org_id not in orgs_approved
        ):
            needs_approval[device_id] = (
                "an organisation new to this thread: a member approves adding it"
                " (the client's consent covering it is not enough on its own)"
            )
        else:
            members.append(Member(device))
    return Resolution(members, refused, needs_approval)


def _linked_from(trust: TrustStore, device_id: bytes, roster: set[bytes]) -> bool:
    link = trust.linked(device_id)
    return link is not None and link.existing_device_id in roster


def _uuid(raw: bytes) -> str:
    return str(uuid.UUID(bytes=raw))
