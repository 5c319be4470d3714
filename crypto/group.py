"""The thread state a client drives: verify and apply commits, make commits, seal and open
messages (docs/protocol.md §5, §7).

Two layers, as in the outline:

- `Chain` is the public knowledge of a thread: genesis and every sequenced commit. Its `check`
  applies every rule that needs no secret (prev hash, who may commit, roster changes, consent
  evidence and coverage, revocations by log position, wraps matching the roster, history grants
  matching the coverage rule), so members, newly admitted devices and the server run the same
  code.
- `ThreadState` adds this device's secrets: it unwraps epoch secrets, checks confirmation tags,
  keeps old epoch secrets for history re-wrapping, and seals and opens messages.

No I/O: the caller hands in bytes, the server's sequence numbers, a `TrustView`, a clock and an
RNG. State changes only after every check of an input has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from crypto import message as msg
from crypto.clock import Clock, Rng
from crypto.commit import (
    ADD,
    CAUSE_REASON,
    REKEY_INTERVAL,
    REMOVE,
    UPDATE,
    Change,
    Commit,
    CommitCore,
    CommitError,
    Genesis,
    HistoryGrant,
    LeaveRequest,
    OldEpoch,
    RosterEntry,
    Sealer,
    build_commit,
    confirmation_tag,
    history_info,
    open_secret,
    open_thread_info,
    wrap_info,
)
from crypto.encoding import Decoder, Encoder
from crypto.epoch import EPOCH_ID_LEN, Epoch
from crypto.errors import AuthFailed, LocalProtocolError
from crypto.identity import DeviceSecrets, KeyPackage
from crypto.primitives import KemKey, constant_time_equal, ed25519_verify, hpke_seal
from crypto.schedule import EPOCH_SECRET_LEN, EpochKeys
from crypto.treehead import ROLLBACK
from crypto.trust import TrustView, VerifiedDevice

WRONG_THREAD = "koppi.wrong_thread"
FORK = "koppi.fork"
DUPLICATE_COMMIT = "koppi.duplicate_commit"
EPOCH_GAP = "koppi.epoch_gap"
BAD_PREV_HASH = "koppi.bad_prev_hash"
UNAUTHORIZED_COMMITTER = "koppi.unauthorized_committer"
COMMITTER_REMOVED = "koppi.committer_removed"
UNKNOWN_DEVICE = "koppi.unknown_device"
ROSTER_MISMATCH = "koppi.roster_mismatch"
REMOVAL_DUE = "koppi.removal_due"
NOT_COVERED = "koppi.not_covered"
UNKNOWN_CONSENT = "koppi.unknown_consent"
CONSENT_MISMATCH = "koppi.consent_mismatch"
CONSENT_INACTIVE = "koppi.consent_inactive"
CONSENT_ROLLBACK = "koppi.consent_rollback"
COVERAGE_MISMATCH = "koppi.coverage_mismatch"
TREE_HEAD_AHEAD = "koppi.tree_head_ahead"
WRAP_MISMATCH = "koppi.wrap_mismatch"
HISTORY_OUTSIDE_COVERAGE = "koppi.history_outside_coverage"
HISTORY_INCOMPLETE = "koppi.history_incomplete"
BAD_SEQUENCE = "koppi.bad_sequence"
UNKNOWN_EPOCH = "koppi.unknown_epoch"
STALE_EPOCH = "koppi.stale_epoch"
EPOCH_UNREADABLE = "koppi.epoch_unreadable"
NO_KEY = "koppi.missing_private_key"


class GroupError(CommitError):
    """A commit or message that the thread's rules refuse; `code` names the rule."""

    default_code = "koppi.bad_commit"


class RemovalDue(GroupError):
    """Sending is refused until these devices are removed (outline §4: cut-off does not rest on
    the server alone). The caller commits the removal first."""

    default_code = REMOVAL_DUE

    def __init__(self, devices: Iterable[bytes]) -> None:
        self.devices = frozenset(devices)
        super().__init__(f"{len(self.devices)} roster device(s) must be removed before sending")


# --- public knowledge -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochRecord:
    """One sequenced commit, as anyone can see it."""

    commit: Commit
    commit_hash: bytes
    core_hash: bytes
    seq: int

    @property
    def number(self) -> int:
        return self.commit.core.epoch

    @property
    def epoch_id(self) -> bytes:
        return self.commit_hash[:EPOCH_ID_LEN]

    @cached_property
    def roster(self) -> dict[bytes, RosterEntry]:
        return {e.device_id: e for e in self.commit.core.roster}


class Chain:
    """Genesis and the sequenced commits of one thread, and the rules a commit must pass."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.records: list[EpochRecord] = []
        self._holds: dict[bytes, set[int]] = {}  # device id -> epochs whose secret it receives

    def __repr__(self) -> str:
        return f"Chain(thread={self.genesis.thread_id.hex()}, epochs={len(self.records)})"

    @property
    def head_hash(self) -> bytes:
        return self.records[-1].commit_hash if self.records else self.genesis.hash

    @property
    def current(self) -> EpochRecord | None:
        return self.records[-1] if self.records else None

    def holds(self, device_id: bytes) -> frozenset[int]:
        """Epochs whose secret `device_id` was given (by a wrap or a history wrap)."""
        return frozenset(self._holds.get(device_id, ()))

    def history_for(
        self,
        device: VerifiedDevice,
        committer: bytes,
        new_epoch: int,
        full_history: frozenset[bytes] = frozenset(),
    ) -> frozenset[int]:
        """The earlier epochs an admitted device must receive (outline §4, history by consent):
        those whose coverage includes its organisation (every one, if the evidence consent lets
        its organisation read from the start: `full_history`), that the committer holds, that it
        does not hold yet, and none from the first epoch its user was removed for cause."""
        if self.genesis.history_policy != "by-consent":
            return frozenset()
        cut = new_epoch
        for rec in self.records:
            roster = self.records[rec.number - 1].roster if rec.number else {}
            for c in rec.commit.core.changes:
                entry = roster.get(c.device_id)
                if (
                    c.kind == REMOVE
                    and c.reason == CAUSE_REASON
                    and entry is not None
                    and entry.user_id == device.user_id
                ):
                    cut = min(cut, rec.number)
        have = self.holds(device.device_id)
        return frozenset(
            e
            for e in self.holds(committer)
            if e < cut
            and e not in have
            and (
                device.org_id in full_history
                or device.org_id in self.records[e].commit.core.coverage
            )
        )

    def check(self, commit: Commit, trust: TrustView, *, live: bool, now: int | None) -> None:
        """Every public rule of docs/protocol.md §5.4; raises on the first that fails.

        `live` is True for a commit that is being made or applied now: its evidence consent must
        be active. A device catching up on old commits passes False (the consent may since have
        been superseded; members checked it live).
        """
        core = commit.core
        if core.thread_id != self.genesis.thread_id:
            raise GroupError("commit of another thread", code=WRONG_THREAD)
        expected = len(self.records)
        if core.epoch < expected:
            if commit.hash == self.records[core.epoch].commit_hash:
                raise GroupError("commit already applied", code=DUPLICATE_COMMIT)
            raise GroupError("a second commit for an applied epoch", code=FORK)
        if core.epoch > expected:
            raise GroupError("commit skips an epoch", code=EPOCH_GAP)
        if core.prev_commit_hash != self.head_hash:
            raise GroupError("commit does not follow the thread head", code=BAD_PREV_HASH)
        prev = self.current
        prev_roster = prev.roster if prev else {}
        new_roster = {e.device_id: e for e in core.roster}
        changes = {c.device_id: c for c in core.changes}

        # Who may commit.
        if core.epoch == 0:
            if core.committer != self.genesis.creator:
                raise GroupError("only the creator opens a thread", code=UNAUTHORIZED_COMMITTER)
            own = changes.get(core.committer)
            if own is None or own.kind != ADD or own.reason != "create":
                raise GroupError("the creator adds itself", code=ROSTER_MISMATCH)
        else:
            if core.committer not in prev_roster:
                raise GroupError(
                    "committer not in the previous roster", code=UNAUTHORIZED_COMMITTER
                )
            if core.committer in changes:
                raise GroupError("committer changes itself", code=COMMITTER_REMOVED)
        if core.committer not in new_roster:
            raise GroupError("committer removed by its own commit", code=COMMITTER_REMOVED)
        committer = trust.device(core.committer, new_roster[core.committer].cert_hash)
        if committer is None:
            raise GroupError("committer unknown", code=UNKNOWN_DEVICE)
        ed25519_verify(committer.signing_public, commit.signed_message(), commit.signature)

        # Roster transitions: exactly the listed changes.
        for device_id, c in changes.items():
            was, now_in = device_id in prev_roster, device_id in new_roster
            ok = (
                (c.kind == ADD and not was and now_in)
                or (c.kind == REMOVE and was and not now_in)
                or (
                    c.kind == UPDATE
                    and was
                    and now_in
                    and prev_roster[device_id].cert_hash != new_roster[device_id].cert_hash
                )
            )
            if not ok:
                raise GroupError("a change does not match the roster", code=ROSTER_MISMATCH)
        for device_id, entry in new_roster.items():
            if device_id in changes:
                continue
            old = prev_roster.get(device_id)
            if old is None or (old.user_id, old.org_id, old.cert_hash) != (
                entry.user_id,
                entry.org_id,
                entry.cert_hash,
            ):
                raise GroupError("roster changed without a change entry", code=ROSTER_MISMATCH)
        if set(prev_roster) - set(new_roster) - set(changes):
            raise GroupError("device dropped without a change entry", code=ROSTER_MISMATCH)

        # The committer's tree head orders revocations (validity by log position).
        if prev is not None and core.tree_size < prev.commit.core.tree_size:
            raise GroupError("commit echoes an older tree head than its parent", code=ROLLBACK)
        if core.tree_size > trust.tree_size():
            raise GroupError("commit echoes a tree head newer than ours", code=TREE_HEAD_AHEAD)

        # Evidence: the consent that admits everyone in the roster.
        cover = trust.consent(core.evidence)
        if cover is None:
            raise GroupError("evidence consent unknown", code=UNKNOWN_CONSENT)
        if cover.client_ref != self.genesis.client_ref or cover.purpose != self.genesis.purpose:
            raise GroupError("consent of another client or purpose", code=CONSENT_MISMATCH)
        if live and not cover.active:
            raise GroupError("evidence consent not active", code=CONSENT_INACTIVE)
        if prev is not None:
            before = trust.consent(prev.commit.core.evidence)
            if (
                before is not None
                and before.consent_id == cover.consent_id
                and cover.version < before.version
            ):
                raise GroupError("older consent version than the parent's", code=CONSENT_ROLLBACK)
        if core.coverage != cover.organisations or core.may_store != cover.may_store:
            raise GroupError("coverage differs from the evidence consent", code=COVERAGE_MISMATCH)

        devices: dict[bytes, VerifiedDevice] = {}
        for device_id, entry in new_roster.items():
            device = trust.device(device_id, entry.cert_hash)
            if device is None:
                raise GroupError("roster names an unverified certificate", code=UNKNOWN_DEVICE)
            if (device.user_id, device.org_id, device.cert_hash) != (
                entry.user_id,
                entry.org_id,
                entry.cert_hash,
            ):
                raise GroupError("roster entry differs from the certificate", code=ROSTER_MISMATCH)
            if not device.valid_at(core.tree_size) or (
                live and now is not None and device.expired(now)
            ):
                raise GroupError("roster keeps a revoked or expired device", code=REMOVAL_DUE)
            if not (cover.covers(device) if live else cover.includes(device)):
                raise GroupError("roster device not covered by the consent", code=NOT_COVERED)
            devices[device_id] = device
        for device_id, c in changes.items():
            if c.kind == REMOVE and c.reason == "device-revoked":
                gone = trust.device(device_id)
                if gone is None or gone.revoked_at_index != c.revocation_index:
                    raise GroupError(
                        "removal cites a revocation that is not logged", code="koppi.bad_change"
                    )

        # Wraps: one per roster device, the committer included, to the listed key package.
        if [w.device_id for w in commit.wraps] != sorted(new_roster) or any(
            w.kp_hash != new_roster[w.device_id].kp_hash for w in commit.wraps
        ):
            raise GroupError("wraps do not match the roster", code=WRAP_MISMATCH)

        # History grants: exactly what the coverage rule gives each added device.
        added = {d for d, c in changes.items() if c.kind == ADD}
        expected_grants = {
            (d, e)
            for d in added
            for e in self.history_for(devices[d], core.committer, core.epoch, cover.full_history)
        }
        grants = {(g.device_id, g.epoch) for g in core.history}
        if grants - expected_grants:
            raise GroupError(
                "history grant outside the consent's coverage", code=HISTORY_OUTSIDE_COVERAGE
            )
        if expected_grants - grants:
            raise GroupError("history grant missing", code=HISTORY_INCOMPLETE)
        if {(w.device_id, w.epoch) for w in commit.history_wraps} != grants or len(
            commit.history_wraps
        ) != len(grants):
            raise GroupError("history wraps do not match the grants", code=WRAP_MISMATCH)

    def append(self, commit: Commit, seq: int) -> EpochRecord:
        """Record a checked commit at the server's sequence number."""
        if self.records and seq <= self.records[-1].seq:
            raise GroupError("commit sequenced before its parent", code=BAD_SEQUENCE)
        rec = EpochRecord(commit, commit.hash, commit.core.hash, seq)
        self.records.append(rec)
        for entry in commit.core.roster:
            self._holds.setdefault(entry.device_id, set()).add(rec.number)
        for g in commit.core.history:
            self._holds.setdefault(g.device_id, set()).add(g.epoch)
        return rec


# --- this device ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A device a committer puts in the roster, with the key package to wrap to (None: the
    certificate's KEM key, a flagged last resort)."""

    device: VerifiedDevice
    key_package: KeyPackage | None = None


@dataclass(frozen=True)
class CommitEvent:
    """What applying a commit changed, for the UI and the audit trail."""

    epoch: int
    epoch_id: bytes
    added: frozenset[bytes]
    removed: frozenset[bytes]
    removed_me: bool
    own: bool  # our pending commit won
    pending_dropped: bool  # our pending commit lost: re-commit what is still due
    history: frozenset[int]  # epochs this device just received


@dataclass
class _Pending:
    epoch: int
    commit_hash: bytes
    secret: bytes = field(repr=False)


class ThreadState:
    """One device's view of one thread. Drive it with `propose`/`apply` and `encrypt`/`decrypt`."""

    def __init__(
        self, genesis: Genesis, me: DeviceSecrets, *, sealer: Sealer | None = None
    ) -> None:
        self.chain = Chain(genesis)
        self._sealer: Sealer = sealer or hpke_seal
        self.me = me
        self._secrets: dict[int, bytes] = {}
        self._epochs: dict[int, Epoch] = {}
        self._pending: _Pending | None = None
        self._counter = 0
        self._replay = msg.ReplayGuard()
        self._packages: dict[bytes, KeyPackage] = {}  # newest known key package per device
        self.thread_info = b""
        self.removed = False
        self._due_cache: tuple[object, int | None, frozenset[bytes]] | None = None
        self._restored: dict[int, bytes] = {}  # secrets from a snapshot, used while replaying

    def __repr__(self) -> str:
        return (
            f"ThreadState(thread={self.thread_id.hex()}, epoch={self.epoch}, "
            f"readable={sorted(self._epochs)})"
        )

    @property
    def thread_id(self) -> bytes:
        return self.chain.genesis.thread_id

    def use_secrets(self, me: DeviceSecrets) -> None:
        """Hand in this device's current keys (e.g. after it published a new key package); a
        device's key packages serve all its threads, so the caller owns them."""
        if me.device_id != self.me.device_id:
            raise LocalProtocolError("these are another device's keys")
        self.me = me

    @property
    def epoch(self) -> int | None:
        cur = self.chain.current
        return cur.number if cur else None

    @property
    def readable_epochs(self) -> frozenset[int]:
        return frozenset(self._epochs)

    def epoch_view(self, number: int) -> Epoch | None:
        return self._epochs.get(number)

    @property
    def pending(self) -> bool:
        return self._pending is not None

    # --- commits ----------------------------------------------------------------------------

    def propose(
        self,
        trust: TrustView,
        rng: Rng,
        clock: Clock,
        *,
        add: Sequence[Member] = (),
        remove: Mapping[bytes, str] | None = None,
        key_packages: Iterable[KeyPackage] = (),
        evidence: bytes | None = None,
        thread_info: bytes | None = None,
        add_reason: str = "invited",
        leaves: Sequence[bytes] = (),
    ) -> bytes:
        """Build, self-check and remember a commit for the next epoch; returns its bytes.

        The commit becomes the epoch only when the server sequences it and the caller `apply`s
        it; if another commit wins, `apply` reports `pending_dropped` and the caller proposes
        again with a fresh secret (outline §4, concurrency).
        """
        if self.removed:
            raise LocalProtocolError("this device was removed from the thread")
        remove = dict(remove or {})
        now = clock.now()
        cur = self.chain.current
        epoch = 0 if cur is None else cur.number + 1
        if cur is not None and cur.number not in self._epochs:
            raise LocalProtocolError("cannot commit without the current epoch's secret")
        evidence = evidence if evidence is not None else (cur.commit.core.evidence if cur else b"")
        cover = trust.consent(evidence)
        if cover is None:
            raise LocalProtocolError("evidence consent unknown to this client")
        for kp in key_packages:
            device = trust.device(kp.device_id)
            if device is not None:
                self._packages[kp.device_id] = kp.verify(device, now)

        leave_evidence: dict[bytes, bytes] = {}
        for raw in leaves:
            request = LeaveRequest.decode(raw)
            leaving = trust.device(request.device_id)
            if (
                cur is None
                or request.thread_id != self.thread_id
                or request.device_id not in cur.roster
                or leaving is None
            ):
                raise LocalProtocolError("a leave request for another thread or device")
            request.verify(leaving.signing_public)
            remove[request.device_id] = "left"
            leave_evidence[request.device_id] = request.evidence
        members: dict[bytes, VerifiedDevice] = {}
        changes: list[Change] = []
        if cur is not None:
            for device_id, entry in cur.roster.items():
                if device_id in remove:
                    continue
                # A renewed certificate is taken up by an `update` change; a committer cannot
                # change itself, so its own renewal waits for another member's commit.
                mine = device_id == self.me.device_id
                device = trust.device(device_id, entry.cert_hash if mine else None)
                if device is None:
                    raise LocalProtocolError("a kept roster device is unknown to this client")
                if device.cert_hash != entry.cert_hash:
                    changes.append(Change(device_id, UPDATE, "cert-renewed"))
                members[device_id] = device
        for device_id, reason in remove.items():
            gone = trust.device(device_id)
            index = gone.revoked_at_index if gone and reason == "device-revoked" else None
            evidence_hash = leave_evidence.get(device_id, b"")
            changes.append(Change(device_id, REMOVE, reason, evidence_hash, index or 0))
        for m in add:
            if m.device.device_id in members:
                raise LocalProtocolError("device already in the roster")
            members[m.device.device_id] = m.device
            if m.key_package is not None:
                self._packages[m.device.device_id] = m.key_package.verify(m.device, now)
            reason = "create" if m.device.device_id == self.me.device_id else add_reason
            changes.append(Change(m.device.device_id, ADD, reason, evidence))

        roster: list[RosterEntry] = []
        for device_id, device in members.items():
            package = self._packages.get(device_id)
            usable = (
                package is not None
                and package.cert_hash == device.cert_hash
                and (package.not_before <= now < package.not_after)
            )
            roster.append(
                RosterEntry(
                    device_id,
                    device.user_id,
                    device.org_id,
                    device.cert_hash,
                    package.kp_hash if usable and package else b"",
                )
            )
        roster.sort()
        grants = sorted(
            (
                HistoryGrant(c.device_id, e)
                for c in changes
                if c.kind == ADD
                for e in self.chain.history_for(
                    members[c.device_id], self.me.device_id, epoch, cover.full_history
                )
            ),
            key=lambda g: (g.device_id, g.epoch),
        )
        core = CommitCore(
            thread_id=self.thread_id,
            epoch=epoch,
            prev_commit_hash=self.chain.head_hash,
            roster=tuple(roster),
            changes=tuple(changes),
            coverage=cover.organisations,
            may_store=cover.may_store,
            evidence=evidence,
            committer=self.me.device_id,
            tree_size=trust.tree_size(),
            tree_head_hash=trust.tree_head_hash(),
            created_at=now,
            history=tuple(grants),
        )
        secret = rng.random_bytes(EPOCH_SECRET_LEN)
        commit = build_commit(
            core,
            secret,
            recipients={e.device_id: self._kem_public(e, members[e.device_id]) for e in roster},
            old_epochs={
                g.epoch: OldEpoch(self.chain.records[g.epoch].commit_hash, self._secrets[g.epoch])
                for g in grants
            },
            thread_info=self.thread_info if thread_info is None else thread_info,
            signing=self.me.signing,
            sealer=self._sealer,
        )
        data = commit.encode()
        # Never send a commit the rules refuse: the same check every member will run.
        self.chain.check(Commit.decode(data), trust, live=True, now=now)
        self._pending = _Pending(epoch, commit.hash, secret)
        return data

    def _kem_public(self, entry: RosterEntry, device: VerifiedDevice) -> bytes:
        if entry.kp_hash == b"":
            return device.kem_public
        return self._packages[entry.device_id].kem_public

    def apply(
        self,
        data: bytes,
        seq: int,
        trust: TrustView,
        *,
        live: bool = True,
        now: int | None = None,
    ) -> CommitEvent:
        """Apply the commit the server sequenced at `seq` (ours or another member's)."""
        commit = Commit.decode(data)
        self.chain.check(commit, trust, live=live, now=now)
        core = commit.core
        core_hash = core.hash
        commit_hash = commit.hash
        prev = self.chain.current
        prev_roster = prev.roster if prev else {}
        new_roster = {e.device_id: e for e in core.roster}
        me = self.me.device_id
        pending = self._pending
        own = pending is not None and pending.commit_hash == commit_hash
        dropped = pending is not None and not own and pending.epoch == core.epoch

        secret: bytes | None = None
        info = self.thread_info
        history: dict[int, bytes] = {}
        if me in new_roster:
            entry = new_roster[me]
            if own and pending is not None:
                secret = pending.secret
            elif core.epoch in self._restored:
                secret = self._restored[core.epoch]  # from a snapshot; the tag still decides
            else:
                wrap = next(w for w in commit.wraps if w.device_id == me)
                secret = open_secret(
                    self._private_key(entry.kp_hash),
                    wrap_info(self.thread_id, core.epoch, core_hash, me, entry.kp_hash),
                    wrap.sealed,
                    core.epoch,
                )
            keys = EpochKeys.derive(secret, core_hash, self.thread_id, core.epoch)
            if not constant_time_equal(
                confirmation_tag(keys.confirm, core_hash), commit.confirmation_tag
            ):
                raise AuthFailed()
            info = open_thread_info(keys.metadata, core_hash, commit.thread_info_ct)
            for hw in commit.history_wraps:
                if hw.device_id != me:
                    continue
                old = self.chain.records[hw.epoch]
                old_secret = self._restored.get(hw.epoch) or open_secret(
                    self._private_key(entry.kp_hash),
                    history_info(
                        self.thread_id, hw.epoch, old.commit_hash, me, entry.kp_hash, core_hash
                    ),
                    hw.sealed,
                    hw.epoch,
                )
                old_keys = EpochKeys.derive(old_secret, old.core_hash, self.thread_id, hw.epoch)
                if not constant_time_equal(
                    confirmation_tag(old_keys.confirm, old.core_hash), old.commit.confirmation_tag
                ):
                    raise AuthFailed()
                history[hw.epoch] = old_secret

        rec = self.chain.append(commit, seq)
        if secret is not None:
            self._remember(rec, secret, trust)
            self._counter = 0
        for number, old_secret in history.items():
            self._remember(self.chain.records[number], old_secret, trust)
        removed_me = me in prev_roster and me not in new_roster
        if removed_me:
            self.removed = True
        if own or dropped:
            self._pending = None
        # Epochs before the previous one have closed windows (koppi.stale_epoch refuses them).
        self._replay.forget_before(self.thread_id, core.epoch - 1)
        self.thread_info = info
        return CommitEvent(
            epoch=core.epoch,
            epoch_id=rec.epoch_id,
            added=frozenset(c.device_id for c in core.changes if c.kind == ADD),
            removed=frozenset(c.device_id for c in core.changes if c.kind == REMOVE),
            removed_me=removed_me,
            own=own,
            pending_dropped=dropped,
            history=frozenset(history),
        )

    def _private_key(self, kp_hash: bytes) -> KemKey:
        key = self.me.kem_for(kp_hash)
        if key is None:
            raise LocalProtocolError("no private key for this key package", code=NO_KEY)
        return key

    def _remember(self, rec: EpochRecord, secret: bytes, trust: TrustView) -> None:
        core = rec.commit.core
        roster = {}
        for device_id, entry in rec.roster.items():
            device = trust.device(device_id, entry.cert_hash)
            if device is not None:
                roster[device_id] = device
        self._secrets[rec.number] = secret
        self._epochs[rec.number] = Epoch(
            thread_id=self.thread_id,
            number=rec.number,
            epoch_id=rec.epoch_id,
            commit_hash=rec.commit_hash,
            core_hash=rec.core_hash,
            keys=EpochKeys.derive(secret, rec.core_hash, self.thread_id, rec.number),
            roster=roster,
            coverage=core.coverage,
            may_store=core.may_store,
            tree_size=core.tree_size,
        )

    @classmethod
    def join(
        cls,
        genesis: Genesis,
        me: DeviceSecrets,
        commits: Sequence[tuple[bytes, int]],
        trust: TrustView,
    ) -> ThreadState:
        """The welcome path: verify the whole chain from genesis, unwrap this device's secret
        and its history grants (outline §4, admission of a new device)."""
        state = cls(genesis, me)
        for data, seq in commits:
            state.apply(data, seq, trust, live=False)
        if state.epoch is None or state.epoch not in state._epochs:
            raise LocalProtocolError(
                "this device is not in the thread's current roster", code=msg.NOT_IN_ROSTER
            )
        return state

    def snapshot(self) -> bytes:
        """The device-local state a client must keep across restarts, to be stored sealed (the
        key file, docs/protocol.md §8): the epoch secrets it holds (key packages expire, and
        history must stay readable) and the next message counter of the current epoch. Take one
        after every `encrypt` and `apply`, before sending (a counter is never reused).

        encode("koppi/v1/thread-snapshot", bytes thread_id, u64 epoch, u64 next_counter,
               list encode("koppi/v1/snapshot-secret", u64 epoch, bytes secret))
        """
        cur = self.epoch
        return (
            Encoder("koppi/v1/thread-snapshot")
            .bytes(self.thread_id)
            .u64(0 if cur is None else cur)
            .u64(self._counter)
            .list(
                Encoder("koppi/v1/snapshot-secret").u64(e).bytes(secret).finish()
                for e, secret in self._secrets.items()
            )
            .finish()
        )

    @classmethod
    def restore(
        cls,
        genesis: Genesis,
        me: DeviceSecrets,
        commits: Sequence[tuple[bytes, int]],
        trust: TrustView,
        snapshot: bytes,
    ) -> ThreadState:
        """Rebuild a thread state after a restart: verify the whole chain again and use the
        snapshot's secrets where this device's key-package keys are gone. Every secret must still
        reproduce its epoch's confirmation tag."""
        dec = Decoder(snapshot, "koppi/v1/thread-snapshot")
        thread_id = dec.bytes(length=16)
        epoch = dec.u64()
        counter = dec.u64()
        restored = {}
        for item in dec.list():
            entry = Decoder(item, "koppi/v1/snapshot-secret")
            number = entry.u64()
            restored[number] = entry.bytes(length=EPOCH_SECRET_LEN)
            entry.finish()
        dec.finish()
        if thread_id != genesis.thread_id:
            raise LocalProtocolError("snapshot of another thread")
        state = cls(genesis, me)
        state._restored = restored
        for data, seq in commits:
            state.apply(data, seq, trust, live=False)
        state._restored = {}
        if state.epoch == epoch:
            state._counter = counter
        return state

    def leave_request(self, clock: Clock) -> bytes:
        """Ask to leave: send the returned bytes to the thread; another member commits it."""
        cur = self.chain.current
        if cur is None or self.removed:
            raise LocalProtocolError("not a member of this thread")
        return LeaveRequest.issue(self.me.signing, thread_id=self.thread_id, epoch=cur.number,
                                  issued_at=clock.now()).encode()  # fmt: skip

    def rekey_due(self, now: int) -> bool:
        """A member commits a fresh epoch (an empty commit) when the current one is a week old,
        or dated implausibly far in the future (which would otherwise postpone it forever)."""
        cur = self.chain.current
        if cur is None:
            return False
        created = cur.commit.core.created_at
        return now - created >= REKEY_INTERVAL or created > now + 24 * 3600

    # --- messages ---------------------------------------------------------------------------

    def due_removals(self, trust: TrustView, now: int) -> frozenset[bytes]:
        """Roster devices that must go before anyone sends: revoked as of the fresh head, with an
        expired certificate, or not covered by the newest version of the thread's consent (a
        revoked or expired consent covers nobody).

        The answer is cached until the trust view changes, the epoch changes, or a certificate
        or the consent reaches a time at which it ends (so sending stays cheap); the fresh-head
        check runs every time (fail closed)."""
        return self._due_removals(trust, now, trust.tree_size())

    def _due_removals(self, trust: TrustView, now: int, size: int) -> frozenset[bytes]:
        cur = self.chain.current
        if cur is None:
            return frozenset()
        key = (id(trust), trust.state_token(), cur.commit_hash)
        cached = self._due_cache
        if cached is not None and cached[0] == key and (cached[1] is None or now < cached[1]):
            return cached[2]
        evidence = trust.consent(cur.commit.core.evidence)
        cover = None if evidence is None else trust.latest_consent(evidence.consent_id)
        due = set()
        ends = [] if cover is None or cover.changes_at is None else [cover.changes_at]
        for device_id in cur.roster:
            device = trust.device(device_id)
            if (
                device is None
                or not device.valid_at(size)
                or device.expired(now)
                or cover is None
                or not cover.covers(device)
            ):
                due.add(device_id)
            elif device.not_after is not None:
                ends.append(device.not_after)
        result = frozenset(due)
        self._due_cache = (key, min(ends, default=None), result)
        return result

    def encrypt(
        self,
        body: bytes,
        *,
        label: msg.StorageLabel,
        trust: TrustView,
        rng: Rng,
        clock: Clock,
        content_type: str = "text/plain",
        message_id: bytes | None = None,
    ) -> bytes:
        """Seal a message on the current epoch after the cut-off check (outline §4).

        The counter advances before sealing; a client persists this state before it sends, so a
        counter is never used twice. Re-sending an unacknowledged message on a new epoch passes
        its original `message_id`.
        """
        cur = self.chain.current
        if self.removed or cur is None or cur.number not in self._epochs:
            raise LocalProtocolError("no current epoch to send on")
        size = trust.tree_size()  # fails closed on a stale head
        due = self._due_removals(trust, clock.now(), size)
        if due:
            raise RemovalDue(due)
        counter = self._counter
        self._counter += 1
        return msg.seal(
            self._epochs[cur.number],
            self.me.signing,
            counter=counter,
            message_id=message_id if message_id is not None else rng.random_bytes(16),
            timestamp_ms=clock.now_ms(),
            reuse_guard=rng.random_bytes(4),
            label=label,
            content_type=content_type,
            body=body,
            tree_size=size,
            tree_head_hash=trust.tree_head_hash(),
        )

    def decrypt(self, data: bytes, seq: int) -> msg.OpenedMessage:
        """Open a message the server delivered at `seq`: its epoch must be known, match its
        epoch_id and be the epoch in force at `seq`."""
        parsed = msg.parse(data)
        header = parsed.header
        if header.thread_id != self.thread_id:
            raise GroupError("message of another thread", code=WRONG_THREAD)
        if header.epoch >= len(self.chain.records):
            raise GroupError("message of an unknown epoch", code=UNKNOWN_EPOCH)
        rec = self.chain.records[header.epoch]
        if not constant_time_equal(header.epoch_id, rec.epoch_id):
            raise GroupError("epoch_id differs from the applied commit", code=FORK)
        nxt = (
            self.chain.records[header.epoch + 1]
            if header.epoch + 1 < len(self.chain.records)
            else None
        )
        if seq <= rec.seq or (nxt is not None and seq >= nxt.seq):
            raise GroupError("message sequenced outside its epoch", code=STALE_EPOCH)
        epoch = self._epochs.get(header.epoch)
        if epoch is None:
            raise GroupError("this device holds no secret for that epoch", code=EPOCH_UNREADABLE)
        opened = msg.open(epoch, parsed)
        self._replay.check(opened)
        return opened
