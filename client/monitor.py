"""`koppi monitor`: an organisation's witness of the transparency log (docs/protocol.md §4.5).

Each round it fetches the newest signed tree head and every entry it has not seen, replays them
into a `TrustStore` (`client.trust.LogFollower`: the recomputed tree must be the head's tree) and
cosigns the head only if

- the log key signed it and its tree extends every head this monitor saw before (the leaves it
  saw are a prefix of the new tree), and
- no two commit heads name the same (thread, epoch) (a fork of a thread).

A witness vouches for one history, not for every entry in it, so it still cosigns a consistent
head that holds a bad entry, but it alerts on

- an entry naming its organisation that does not verify: a certificate, revocation or link not
  signed by a logged key of the organisation, which only its admins hold (clients refuse such
  entries too; the alert says someone tried);
- a device the server lists as approved for the organisation without a verified certificate in
  the log at the index the server names (a ghost device; needs an `org-admin` token);
- browser code served under `/static/` that is not the newest release in the log.

- a valid entry naming its organisation that its admins did not issue: no matching action in the
  organisation's audit trail (an approval, link, revocation or rotation made in Koppi) by the
  next round; a certificate signed with the organisation's key outside the admin console means
  the key is in other hands.

It also lists every valid new entry naming its organisation. Its state (the leaf hashes and commit
heads it saw, entries awaiting their audit record) is one JSON file; after a restart it replays the
log from the start to rebuild its trust store.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.trust import Entry, LogFollower, LogMismatch, b64u, fetch_entries, unb64u
from crypto.clock import Clock
from crypto.errors import KoppiError
from crypto.identity import (
    SUBJECT_ORG_KEY,
    DeviceCert,
    DeviceLink,
    OrgCert,
    Revocation,
    TrustStore,
)
from crypto.logentries import CommitHead, WebManifest
from crypto.primitives import SigningKey, sha256
from crypto.treehead import Cosignature, CosignedTreeHead, LogConfig, LogView, key_id

GetJson = Callable[[str], Awaitable[Any]]
GetBytes = Callable[[str], Awaitable[bytes]]
PostJson = Callable[[str, dict[str, Any]], Awaitable[Any]]

__all__ = ["Forbidden", "Monitor", "Round", "b64u", "unb64u"]


class Forbidden(Exception):
    """What `get` raises when the server answers 403 (the device check needs an org-admin)."""


@dataclass
class Round:
    """What one round found."""

    size: int
    cosigned: bool
    alerts: list[str] = field(default_factory=list)  # something an admin must look at
    ours: list[str] = field(default_factory=list)  # valid new entries naming our organisation
    notes: list[str] = field(default_factory=list)  # checks that could not run


def names_org(kind: str, payload: bytes, org_id: bytes, trust: TrustStore) -> bool:
    try:
        if kind == "org":
            return OrgCert.decode(payload).org_id == org_id
        if kind == "device":
            return DeviceCert.decode(payload).org_id == org_id
        if kind == "revocation":
            return Revocation.decode(payload).org_id == org_id
        if kind == "link":
            known = trust.device(DeviceLink.decode(payload).new_device_id)
            return known is not None and known.org_id == org_id
    except KoppiError:
        return False
    return False


Record = tuple[str, str]  # an audit event: (action, subject)


def audit_record(kind: str, payload: bytes) -> Record | None:
    """The audit event an admin's action through Koppi leaves for this entry, or None for the
    operator's own entries (an admission, a suspension by the root)."""
    if kind == "device":
        return "device.approved", DeviceCert.decode(payload).device_id.hex()
    if kind == "link":
        return "device.linked", DeviceLink.decode(payload).new_device_id.hex()
    if kind == "revocation":
        rev = Revocation.decode(payload)
        if rev.subject_kind == SUBJECT_ORG_KEY:
            return None
        return "device.revoked", rev.subject.hex()
    if kind == "org":
        cert = OrgCert.decode(payload)
        return None if cert.generation == 0 else ("org.key_rotated", cert.key_id.hex())
    return None


class Monitor:
    def __init__(
        self,
        get: GetJson,
        post: PostJson,
        *,
        log_public: bytes,
        root_public: bytes,
        witness: SigningKey,
        org_id: bytes,
        state: Path,
        clock: Clock,
        get_bytes: GetBytes | None = None,
    ) -> None:
        self._get, self._post, self._get_bytes = get, post, get_bytes
        self._log_config = LogConfig(log_public, {}, 0)  # a witness checks heads, needs no quorum
        self._root_public = root_public
        self._witness, self._org = witness, org_id
        self._state_path, self._clock = state, clock
        self._leaves: list[bytes] = []  # leaf hashes of every head this monitor cosigned
        self._commit_heads: dict[tuple[bytes, int], bytes] = {}
        # Entries naming us whose audit record was not there yet (it is written just after the
        # append): alerted if it is still missing next round.
        self._unconfirmed: dict[int, tuple[str, Record]] = {}
        if state.exists():
            saved = json.loads(state.read_text())
            self._leaves = [bytes.fromhex(h) for h in saved["leaves"]]
            self._commit_heads = {
                (bytes.fromhex(t), int(e)): bytes.fromhex(h) for t, e, h in saved["commit_heads"]
            }
            self._unconfirmed = {
                int(i): (kind, (action, subject))
                for i, kind, action, subject in saved.get("unconfirmed", [])
            }
        self._follower = self._new_follower()
        self._release: bytes | None = None  # the newest web release manifest in the log
        # Entries naming us whose audit record was not there yet (it is written just after the
        # append): alerted if it is still missing next round.

    def _new_follower(self) -> LogFollower:
        view = LogView(self._log_config, self._clock)
        return LogFollower(TrustStore(self._root_public, view))

    def _save(self) -> None:
        self._state_path.write_text(
            json.dumps(
                {
                    "leaves": [h.hex() for h in self._leaves],
                    "commit_heads": [
                        [t.hex(), e, h.hex()] for (t, e), h in self._commit_heads.items()
                    ],
                    "unconfirmed": [
                        [i, kind, *record] for i, (kind, record) in self._unconfirmed.items()
                    ],
                }
            )
        )

    async def check_once(self) -> Round:
        try:
            approved = await self._approved_devices()
        except Forbidden:
            approved = None
        body = await self._get("/api/log/head")
        cth = CosignedTreeHead.decode(unb64u(body["head"]))
        head = cth.head
        found = Round(head.size, cosigned=False)
        if approved is None:
            found.notes.append("device check skipped: the monitor's account is not an org-admin")
        try:
            self._log_config.verify(cth)
        except KoppiError as e:
            found.alerts.append(f"head not signed by the log key ({e.code})")
            return found
        seen = len(self._leaves)
        if head.size < seen:
            found.alerts.append(f"the log shrank from {seen} to {head.size} entries")
            return found
        follower = self._follower if self._follower.size >= seen else self._new_follower()
        entries = await fetch_entries(self._get, follower.size, head.size)
        try:
            follower.advance(cth, entries)
        except LogMismatch:
            found.alerts.append("the head's root is not the tree of the entries served")
            self._follower = self._new_follower()
            return found
        except KoppiError as e:
            found.alerts.append(f"the head was refused ({e.code}: {e.message})")
            self._follower = self._new_follower()
            return found
        self._follower = follower
        leaves = follower.leaf_hashes()
        if leaves[:seen] != self._leaves:
            found.alerts.append("the head's root is not the tree of the entries served before")
            return found
        commit_heads = dict(self._commit_heads)
        forked = False
        expected: dict[int, tuple[str, Record]] = {}
        for entry in entries:
            if entry.kind == "commit-head":
                forked |= self._fork(entry, commit_heads, found)
            if entry.kind == "web-release":
                self._release = entry.payload
            if entry.index >= seen and names_org(
                entry.kind, entry.payload, self._org, follower.trust
            ):
                refused = follower.refused.get(entry.index)
                if refused is None:
                    found.ours.append(f"{entry.kind} at index {entry.index}")
                    record = audit_record(entry.kind, entry.payload)
                    if record is not None:
                        expected[entry.index] = (entry.kind, record)
                else:
                    found.alerts.append(
                        f"{entry.kind} at index {entry.index} names our organisation but does not"
                        f" verify ({refused.code}: {refused.message})"
                    )
        if approved is not None:
            self._check_devices(approved, head.size, found)
            await self._check_issued(expected, found)
        if self._get_bytes is not None:
            await self._check_release(found)
        if forked:
            self._follower = self._new_follower()  # replay next round: the fork stays visible
            return found
        now = max(self._clock.now_ms(), head.timestamp_ms)
        witness_id = key_id(self._witness.public)
        signature = self._witness.sign(Cosignature.message(head.hash(), witness_id, now))
        await self._post(
            "/api/log/cosign",
            {
                "head_timestamp_ms": head.timestamp_ms,
                "witness_id": b64u(witness_id),
                "timestamp_ms": now,
                "signature": b64u(signature),
            },
        )
        self._leaves, self._commit_heads = leaves, commit_heads
        self._save()
        found.cosigned = True
        return found

    @staticmethod
    def _fork(entry: Entry, commit_heads: dict[tuple[bytes, int], bytes], found: Round) -> bool:
        try:
            ch = CommitHead.decode(entry.payload)
        except KoppiError:
            found.alerts.append(f"commit head at index {entry.index} is malformed")
            return False
        seen = commit_heads.setdefault((ch.thread_id, ch.epoch), ch.commit_hash)
        if seen != ch.commit_hash:
            thread = ch.thread_id.hex()
            found.alerts.append(f"two commits for thread {thread} epoch {ch.epoch}: a fork")
            return True
        return False

    async def _check_issued(self, expected: dict[int, tuple[str, Record]], found: Round) -> None:
        """Every valid entry naming us must match an action our admins took in Koppi (the
        organisation's audit trail, read after the entries): a certificate signed with our key
        but not issued through the admin console means the key is in other hands."""
        trail = await self._get("/api/org/audit")
        done = {(e["action"], e["subject"]) for e in trail["events"]}
        missing: dict[int, tuple[str, Record]] = {}
        for index, (kind, record) in sorted({**self._unconfirmed, **expected}.items()):
            if record in done:
                continue
            if index in expected:  # first sight: the audit record may be a moment behind
                missing[index] = (kind, record)
                found.notes.append(f"{kind} at index {index}: waiting for our {record[0]} record")
            else:
                found.alerts.append(
                    f"{kind} at index {index} names our organisation, but our admins did not"
                    f" issue it (no {record[0]} in our audit trail): the organisation key may be"
                    " in other hands"
                )
        self._unconfirmed = missing

    async def _approved_devices(self) -> list[dict[str, Any]]:
        body = await self._get("/api/org/devices?status=approved")
        devices: list[dict[str, Any]] = body["devices"]
        return devices

    def _check_devices(self, approved: list[dict[str, Any]], size: int, found: Round) -> None:
        """Every device the server treats as approved must have its certificate verified in the
        log at the index the server names (listed before the head was fetched, so a device
        approved meanwhile has a certificate below the head's size, or is checked next round)."""
        trust = self._follower.trust
        for d in approved:
            index = d.get("cert_log_index")
            if isinstance(index, int) and index >= size:
                continue
            device = trust.device(unb64u(d["device_id"]))
            if device is None or device.cert_log_index != index:
                found.alerts.append(
                    f"the server lists device {d['device_id']} as approved, but the log holds no"
                    f" valid certificate for it at index {index}: a ghost device"
                )

    async def _check_release(self, found: Round) -> None:
        assert self._get_bytes is not None
        release = await self._get("/api/release")
        manifest = WebManifest.decode(unb64u(release["manifest"]))
        if self._release != manifest.encode():
            found.alerts.append(
                f"the served browser release {manifest.version} is not the newest logged release"
            )
        for path, digest in manifest.files.items():
            if sha256(await self._get_bytes(f"/static/{path}")) != digest:
                found.alerts.append(f"/static/{path} differs from the logged release")
