"""Threads, commits and epochs: the rules of docs/protocol.md §5, each tested both ways."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from crypto import message as m
from crypto.commit import (
    REMOVE,
    Change,
    Commit,
    CommitCore,
    HistoryGrant,
    LeaveRequest,
    OldEpoch,
    build_commit,
)
from crypto.errors import AuthFailed, KoppiError, LocalProtocolError
from crypto.group import GroupError, RemovalDue, ThreadState
from crypto.identity import DeviceCert, DeviceSecrets, TrustStore
from crypto.message import StorageLabel
from crypto.vectors.world import Device, Org, World, member


@dataclass
class Party:
    """One professional's device and the client it runs."""

    device: Device
    trust: TrustStore
    state: ThreadState | None = None

    @property
    def s(self) -> ThreadState:
        assert self.state is not None
        return self.state


class Conference:
    """Three organisations, a consent covering them, and a server that sequences commits."""

    def __init__(self, seed: str, *, history_policy: str = "by-consent") -> None:
        self.world = w = World(seed)
        self.kela, self.county, self.te = w.add_org("Kela"), w.add_org("County"), w.add_org("TE")
        self.alice = w.add_device(self.kela)
        self.bob = w.add_device(self.county)
        self.carol = w.add_device(self.te)
        self.evidence = w.consent([self.kela, self.county, self.te])
        self.genesis = w.genesis(self.alice, history_policy=history_policy)
        self.seq = 0
        self.log: list[tuple[bytes, int]] = []  # the server's sequenced commits
        self.parties = {n: Party(getattr(self, n), w.client()) for n in ("alice", "bob", "carol")}

    def party(self, name: str) -> Party:
        return self.parties[name]

    def sequence(self, data: bytes) -> int:
        self.seq += 1
        self.log.append((data, self.seq))
        return self.seq

    def consent(self, orgs: list[Org], **kw: Any) -> bytes:
        core_hash = self.world.consent(orgs, **kw)
        self.sync_trust()
        return core_hash

    def supersede(self, core_hash: bytes, orgs: list[Org], **kw: Any) -> bytes:
        new = self.world.supersede(core_hash, orgs, **kw)
        self.sync_trust()
        return new

    def sync_trust(self) -> None:
        for p in self.parties.values():
            self.world.sync(p.trust)

    def open_thread(self, *names: str) -> None:
        a = self.party("alice")
        a.state = ThreadState(self.genesis, a.device.secrets)
        data = a.s.propose(
            a.trust, self.world.rng, self.world.clock,
            add=[member(a.trust, self.party(n).device) for n in ("alice", *names)],
            evidence=self.evidence,
        )  # fmt: skip
        seq = self.sequence(data)
        a.s.apply(data, seq, a.trust)
        for n in names:
            p = self.party(n)
            p.state = ThreadState.join(self.genesis, p.device.secrets, self.log, p.trust)

    def deliver(self, data: bytes, seq: int, *, skip: str = "") -> None:
        for name, p in self.parties.items():
            if p.state is not None and name != skip and not p.s.removed:
                p.s.apply(data, seq, p.trust)

    def commit(self, committer: str, **kw: object) -> bytes:
        p = self.party(committer)
        data = p.s.propose(p.trust, self.world.rng, self.world.clock, **kw)  # type: ignore[arg-type]
        seq = self.sequence(data)
        self.deliver(data, seq)
        return data

    def send(self, sender: str, text: str, label: StorageLabel | None = None) -> tuple[bytes, int]:
        p = self.party(sender)
        label = label or StorageLabel(frozenset(), "consent", 0)
        data = p.s.encrypt(
            text.encode(), label=label, trust=p.trust, rng=self.world.rng, clock=self.world.clock
        )
        self.seq += 1
        return data, self.seq


def code(exc: pytest.ExceptionInfo[KoppiError]) -> str:
    return exc.value.code


def forge(
    conf: Conference,
    committer: Party,
    core: CommitCore,
    *,
    secret: bytes | None = None,
    history_secrets: dict[int, bytes] | None = None,
) -> bytes:
    """A well-signed commit with whatever core a (malicious) committer chooses."""
    secret = secret or conf.world.rng.random_bytes(32)
    recipients = {}
    for e in core.roster:
        v = committer.trust.device(e.device_id)
        assert v is not None
        kp = next(
            (
                p.device.key_package
                for p in conf.parties.values()
                if p.device.device_id == e.device_id
            ),
            None,
        )
        recipients[e.device_id] = kp.kem_public if e.kp_hash and kp else v.kem_public
    old = {
        g.epoch: OldEpoch(
            conf.party("alice").s.chain.records[g.epoch].commit_hash,
            (history_secrets or {}).get(g.epoch) or conf.party("alice").s._secrets[g.epoch],
        )
        for g in core.history
    }
    return build_commit(
        core,
        secret,
        recipients=recipients,
        old_epochs=old,
        thread_info=b"",
        signing=committer.device.secrets.signing,
    ).encode()


def next_core(conf: Conference, committer: Party, data: bytes | None = None) -> CommitCore:
    """An honest core for the next epoch (from a throwaway proposal), for tests to alter."""
    data = data or committer.s.propose(committer.trust, conf.world.rng, conf.world.clock)
    committer.s._pending = None
    return Commit.decode(data).core


# --- the happy paths --------------------------------------------------------------------------


def test_open_a_thread_and_talk() -> None:
    conf = Conference("group-open")
    conf.open_thread("bob")
    a, b = conf.party("alice"), conf.party("bob")
    assert a.s.epoch == b.s.epoch == 0
    assert a.s.epoch_view(0) == b.s.epoch_view(0)
    data, seq = conf.send("alice", "hei Bob")
    opened = b.s.decrypt(data, seq)
    assert opened.body == b"hei Bob"
    assert opened.sender.device_id == a.device.device_id


def test_a_late_admitted_device_reads_the_history_its_consent_covers() -> None:
    conf = Conference("group-history")
    conf.open_thread("bob")
    early, early_seq = conf.send("alice", "before Carol")
    c = conf.party("carol")
    a = conf.party("alice")
    data = a.s.propose(a.trust, conf.world.rng, conf.world.clock, add=[member(a.trust, c.device)])
    seq = conf.sequence(data)
    conf.deliver(data, seq)
    c.state = ThreadState.join(conf.genesis, c.device.secrets, conf.log, c.trust)
    assert c.s.readable_epochs == {0, 1}
    assert c.s.decrypt(early, early_seq).body == b"before Carol"


def test_no_history_when_the_thread_says_none() -> None:
    conf = Conference("group-no-history", history_policy="none")
    conf.open_thread("bob")
    early, early_seq = conf.send("alice", "before Carol")
    a, c = conf.party("alice"), conf.party("carol")
    conf.commit("alice", add=[member(a.trust, c.device)])
    c.state = ThreadState.join(conf.genesis, c.device.secrets, conf.log, c.trust)
    assert c.s.readable_epochs == {1}
    with pytest.raises(GroupError) as exc:
        c.s.decrypt(early, early_seq)
    assert code(exc) == "koppi.epoch_unreadable"


def test_history_stops_at_the_coverage_of_the_newcomers_organisation() -> None:
    conf = Conference("group-coverage")
    conf.evidence = conf.consent([conf.kela, conf.county])  # TE not covered yet
    conf.open_thread("bob")
    a, c = conf.party("alice"), conf.party("carol")
    wider = conf.supersede(conf.evidence, [conf.kela, conf.county, conf.te])
    conf.commit("alice", add=[member(a.trust, c.device)], evidence=wider)
    c.state = ThreadState.join(conf.genesis, c.device.secrets, conf.log, c.trust)
    assert c.s.readable_epochs == {1}  # epoch 0 did not cover TE
    # A committer granting it anyway is refused by every member.
    core = Commit.decode(conf.log[-1][0]).core
    assert core.history == ()


def test_removed_member_reads_nothing_after_its_removal() -> None:
    conf = Conference("group-remove")
    conf.open_thread("bob", "carol")
    b = conf.party("bob")
    conf.commit("alice", remove={b.device.device_id: "left"})
    assert b.s.removed and b.s.epoch == 1 and 1 not in b.s.readable_epochs
    data, seq = conf.send("alice", "after Bob left")
    assert conf.party("carol").s.decrypt(data, seq).body == b"after Bob left"
    with pytest.raises(GroupError) as exc:
        b.s.decrypt(data, seq)
    assert code(exc) == "koppi.epoch_unreadable"


def test_revocation_forces_removal_before_sending() -> None:
    conf = Conference("group-revoke")
    conf.open_thread("bob", "carol")
    before, before_seq = conf.send("bob", "sent before the revocation")
    conf.world.revoke(conf.bob)
    conf.sync_trust()
    a = conf.party("alice")
    with pytest.raises(RemovalDue) as exc:
        conf.send("alice", "must not go out")
    assert exc.value.devices == {conf.bob.device_id}
    # The message Bob sent before the revocation still verifies (validity by log position).
    assert conf.party("carol").s.decrypt(before, before_seq).body == b"sent before the revocation"
    conf.commit("alice", remove={conf.bob.device_id: "device-revoked"})
    data, seq = conf.send("alice", "now it may")
    assert conf.party("carol").s.decrypt(data, seq).body == b"now it may"
    assert a.s.epoch == 1


def test_concurrent_commits_resolve_to_one_chain() -> None:
    conf = Conference("group-concurrent")
    conf.open_thread("bob", "carol")
    a, c = conf.party("alice"), conf.party("carol")
    mine = a.s.propose(a.trust, conf.world.rng, conf.world.clock)
    theirs = c.s.propose(c.trust, conf.world.rng, conf.world.clock)
    seq = conf.sequence(mine)  # the server sequences Alice's first
    events = {n: p.s.apply(mine, seq, p.trust) for n, p in conf.parties.items()}
    assert events["alice"].own and not events["alice"].pending_dropped
    assert events["carol"].pending_dropped and not c.s.pending
    # Were the server to sequence the loser too, members would see two commits for one epoch.
    with pytest.raises(GroupError) as exc:
        conf.party("bob").s.apply(theirs, seq + 1, conf.party("bob").trust)
    assert code(exc) == "koppi.fork"
    assert len({p.s.chain.head_hash for p in conf.parties.values()}) == 1
    conf.commit("carol")  # the loser re-commits with a fresh secret
    assert {p.s.epoch for p in conf.parties.values()} == {2}


# --- commits every member refuses -------------------------------------------------------------


def test_a_second_commit_for_an_applied_epoch_is_a_fork() -> None:
    conf = Conference("group-fork")
    conf.open_thread("bob")
    a = conf.party("alice")
    first = conf.commit("alice")
    with pytest.raises(GroupError) as exc:
        a.s.apply(first, 99, a.trust)
    assert code(exc) == "koppi.duplicate_commit"
    core = replace(Commit.decode(first).core, tree_size=Commit.decode(first).core.tree_size)
    other = forge(conf, a, replace(core, committer=core.committer))
    with pytest.raises(GroupError) as exc:
        conf.party("bob").s.apply(other, 100, conf.party("bob").trust)
    assert code(exc) == "koppi.fork"


def test_bad_prev_hash() -> None:
    conf = Conference("group-prev")
    conf.open_thread("bob")
    a, b = conf.party("alice"), conf.party("bob")
    core = replace(next_core(conf, a), prev_commit_hash=bytes(32))
    with pytest.raises(GroupError) as exc:
        b.s.apply(forge(conf, a, core), 50, b.trust)
    assert code(exc) == "koppi.bad_prev_hash"


def test_only_a_roster_device_may_commit() -> None:
    conf = Conference("group-committer")
    conf.open_thread("bob")
    a, b, c = conf.party("alice"), conf.party("bob"), conf.party("carol")
    core = next_core(conf, a)
    outsider = replace(core, committer=c.device.device_id)
    with pytest.raises(GroupError) as exc:
        b.s.apply(forge(conf, c, outsider), 50, b.trust)
    assert code(exc) == "koppi.unauthorized_committer"
    # Signed by someone other than the named committer: the signature fails.
    with pytest.raises(AuthFailed):
        b.s.apply(forge(conf, c, core), 50, b.trust)


def test_a_committer_cannot_remove_itself() -> None:
    conf = Conference("group-self-remove")
    conf.open_thread("bob", "carol")
    a, b = conf.party("alice"), conf.party("bob")
    core = next_core(conf, a)
    me = a.device.device_id
    gone = replace(
        core,
        roster=tuple(e for e in core.roster if e.device_id != me),
        changes=(Change(me, REMOVE, "left"),),
    )
    with pytest.raises(GroupError) as exc:
        b.s.apply(forge(conf, a, gone), 50, b.trust)
    assert code(exc) == "koppi.committer_removed"


def test_a_forged_wrap_fails_the_confirmation_tag() -> None:
    conf = Conference("group-forged-wrap")
    conf.open_thread("bob")
    a, b = conf.party("alice"), conf.party("bob")
    honest = Commit.decode(a.s.propose(a.trust, conf.world.rng, conf.world.clock))
    a.s._pending = None
    # Same core and tag, but Bob's wrap carries another secret: only the tag can tell.
    forged = forge(conf, a, honest.core)
    tagged = replace(Commit.decode(forged), confirmation_tag=honest.confirmation_tag)
    resigned = replace(tagged, signature=a.device.secrets.signing.sign(tagged.signed_message()))
    with pytest.raises(AuthFailed):
        b.s.apply(resigned.encode(), 50, b.trust)
    assert b.s.epoch == 0  # nothing changed


def test_history_secret_must_match_its_epochs_tag() -> None:
    conf = Conference("group-history-tag")
    conf.open_thread("bob")
    a, c = conf.party("alice"), conf.party("carol")
    core = next_core(
        conf,
        a,
        a.s.propose(a.trust, conf.world.rng, conf.world.clock, add=[member(a.trust, c.device)]),
    )
    assert core.history == (HistoryGrant(c.device.device_id, 0),)
    bad = forge(conf, a, core, history_secrets={0: bytes(32)})
    seq = conf.sequence(bad)
    with pytest.raises(AuthFailed):
        ThreadState.join(conf.genesis, c.device.secrets, [*conf.log[:-1], (bad, seq)], c.trust)


def test_history_outside_coverage_and_missing_history_are_refused() -> None:
    conf = Conference("group-history-rules")
    conf.open_thread("bob")
    a, b, c = conf.party("alice"), conf.party("bob"), conf.party("carol")
    core = next_core(
        conf,
        a,
        a.s.propose(a.trust, conf.world.rng, conf.world.clock, add=[member(a.trust, c.device)]),
    )
    missing = replace(core, history=())
    with pytest.raises(GroupError) as exc:
        b.s.apply(forge(conf, a, missing), 50, b.trust)
    assert code(exc) == "koppi.history_incomplete"
    extra = replace(core, history=(*core.history, HistoryGrant(b.device.device_id, 0)))
    with pytest.raises(GroupError) as exc:
        b.s.apply(forge(conf, a, extra), 50, b.trust)
    assert code(exc) == "koppi.history_outside_coverage"


def test_consent_for_another_client_or_purpose_is_refused() -> None:
    conf = Conference("group-consent-mismatch")
    w = conf.world
    a = conf.party("alice")
    a.state = ThreadState(conf.genesis, a.device.secrets)
    for evidence in (
        conf.consent([conf.kela], client_ref=bytes(32)),
        conf.consent([conf.kela], purpose="employment-services"),
    ):
        with pytest.raises(GroupError) as exc:
            a.s.propose(
                a.trust, w.rng, w.clock, add=[member(a.trust, conf.alice)], evidence=evidence
            )
        assert code(exc) == "koppi.consent_mismatch"


def test_an_uncovered_or_revoked_device_cannot_be_in_the_roster() -> None:
    conf = Conference("group-cover")
    w = conf.world
    conf.evidence = conf.consent([conf.kela, conf.county])
    conf.open_thread("bob")
    a, c = conf.party("alice"), conf.party("carol")
    with pytest.raises(GroupError) as exc:
        a.s.propose(a.trust, w.rng, w.clock, add=[member(a.trust, c.device)])
    assert code(exc) == "koppi.not_covered"
    w.revoke(conf.bob)
    conf.sync_trust()
    with pytest.raises(GroupError) as exc:  # a commit that keeps a revoked device
        a.s.propose(a.trust, w.rng, w.clock)
    assert code(exc) == "koppi.removal_due"


def test_consent_rollback_is_refused() -> None:
    conf = Conference("group-consent-rollback")
    conf.open_thread("bob")
    a, b = conf.party("alice"), conf.party("bob")
    old = conf.evidence
    newer = conf.supersede(old, [conf.kela, conf.county, conf.te])
    conf.commit("alice", evidence=newer)
    core = replace(next_core(conf, a), evidence=old)
    with pytest.raises(GroupError) as exc:  # live: the old version is no longer in force
        b.s.apply(forge(conf, a, core), 50, b.trust)
    assert code(exc) == "koppi.consent_inactive"
    with pytest.raises(GroupError) as exc:  # catching up: still never a lower version
        b.s.apply(forge(conf, a, core), 50, b.trust, live=False)
    assert code(exc) == "koppi.consent_rollback"


def test_wraps_must_match_the_roster() -> None:
    conf = Conference("group-wraps")
    conf.open_thread("bob")
    a, b = conf.party("alice"), conf.party("bob")
    honest = Commit.decode(a.s.propose(a.trust, conf.world.rng, conf.world.clock))
    a.s._pending = None
    short = replace(honest, wraps=honest.wraps[:1])
    short = replace(short, signature=a.device.secrets.signing.sign(short.signed_message()))
    with pytest.raises(GroupError) as exc:
        b.s.apply(short.encode(), 50, b.trust)
    assert code(exc) == "koppi.wrap_mismatch"


def test_a_commit_echoing_a_newer_tree_head_waits_for_the_client() -> None:
    conf = Conference("group-head-ahead")
    conf.open_thread("bob")
    a, b = conf.party("alice"), conf.party("bob")
    conf.world.add_device(conf.kela)  # the log grows; Alice syncs, Bob has not yet
    conf.world.sync(a.trust)
    data = a.s.propose(a.trust, conf.world.rng, conf.world.clock)
    with pytest.raises(GroupError) as exc:
        b.s.apply(data, 50, b.trust)
    assert code(exc) == "koppi.tree_head_ahead"
    conf.world.sync(b.trust)
    assert b.s.apply(data, 50, b.trust).epoch == 1


# --- messages against the chain ---------------------------------------------------------------


def test_a_message_outside_its_epochs_sequence_window_is_stale() -> None:
    conf = Conference("group-stale")
    conf.open_thread("bob")
    b = conf.party("bob")
    data, _ = conf.send("alice", "late")
    conf.commit("alice")
    with pytest.raises(GroupError) as exc:  # sequenced after commit(1): epoch 0 is over
        b.s.decrypt(data, conf.seq + 1)
    assert code(exc) == "koppi.stale_epoch"


def test_an_unknown_epoch_and_a_forked_epoch_id() -> None:
    conf = Conference("group-epoch-id")
    conf.open_thread("bob")
    b = conf.party("bob")
    data, seq = conf.send("alice", "x")
    conf2 = Conference("group-epoch-id")  # same seed, same genesis, another chain
    conf2.genesis = conf.genesis
    conf2.open_thread("bob")
    other, other_seq = conf2.send("alice", "y")
    with pytest.raises(GroupError) as exc:
        b.s.decrypt(other, other_seq)
    assert code(exc) in {"koppi.fork"}
    conf.commit("alice")
    assert b.s.decrypt(data, seq).body == b"x"


def test_replay_and_counter_reuse() -> None:
    conf = Conference("group-replay")
    conf.open_thread("bob")
    b = conf.party("bob")
    data, seq = conf.send("alice", "once")
    b.s.decrypt(data, seq)
    with pytest.raises(KoppiError) as exc:
        b.s.decrypt(data, seq)
    assert code(exc) == "koppi.replay"
    a = conf.party("alice")
    a.s._counter -= 1  # a broken client reuses its counter with other bytes
    again, seq2 = conf.send("alice", "twice")
    with pytest.raises(KoppiError) as exc:
        b.s.decrypt(again, seq2)
    assert code(exc) == "koppi.counter_reuse"


def test_a_removed_device_cannot_commit() -> None:
    conf = Conference("group-removed-commit")
    conf.open_thread("bob", "carol")
    b, c = conf.party("bob"), conf.party("carol")
    conf.commit("alice", remove={conf.bob.device_id: "removed-for-cause"})
    core = next_core(conf, c)
    with pytest.raises(GroupError) as exc:
        c.s.apply(forge(conf, b, replace(core, committer=conf.bob.device_id)), 50, c.trust)
    assert code(exc) == "koppi.unauthorized_committer"


def test_removal_for_cause_cuts_history_on_readmission() -> None:
    conf = Conference("group-cause")
    conf.open_thread("bob", "carol")
    a = conf.party("alice")
    conf.commit("alice", remove={conf.bob.device_id: "removed-for-cause"})  # epoch 1
    conf.commit("alice")  # epoch 2
    new_bob = conf.world.add_device(conf.county, user_id=conf.bob.user_id)
    conf.sync_trust()
    data = a.s.propose(
        a.trust,
        conf.world.rng,
        conf.world.clock,
        add=[member(a.trust, new_bob)],
        add_reason="readmitted",
    )
    grants = {g.epoch for g in Commit.decode(data).core.history}
    assert grants == {0}  # epochs from the removal on are not re-wrapped


def test_thread_info_travels_encrypted() -> None:
    conf = Conference("group-info")
    a, b = conf.party("alice"), conf.party("bob")
    a.state = ThreadState(conf.genesis, a.device.secrets)
    info = b"Asiakas: Virtanen (pseudonym), neuvottelu 3.12."
    data = a.s.propose(
        a.trust,
        conf.world.rng,
        conf.world.clock,
        add=[member(a.trust, conf.alice), member(a.trust, conf.bob)],
        evidence=conf.evidence,
        thread_info=info,
    )
    assert info not in data
    seq = conf.sequence(data)
    a.s.apply(data, seq, a.trust)
    b.state = ThreadState.join(conf.genesis, b.device.secrets, conf.log, b.trust)
    assert b.s.thread_info == info
    assert info.hex() not in repr(b.s)


def test_orgs_fixture_is_distinct() -> None:
    conf = Conference("group-orgs")
    orgs: list[Org] = [conf.kela, conf.county, conf.te]
    assert len({o.org_id for o in orgs}) == 3


def test_withdrawing_one_organisation_cuts_it_off_at_once() -> None:
    conf = Conference("group-withdraw")
    conf.open_thread("bob", "carol")
    w = conf.world
    narrower = conf.supersede(conf.evidence, [conf.kela, conf.county])  # TE withdrawn
    with pytest.raises(RemovalDue) as exc:  # nobody sends on an epoch that still holds TE
        conf.send("alice", "must wait")
    assert exc.value.devices == {conf.carol.device_id}
    a = conf.party("alice")
    with pytest.raises(GroupError) as exc2:  # nor may a commit keep Carol under the new consent
        a.s.propose(a.trust, w.rng, w.clock, evidence=narrower)
    assert code(exc2) == "koppi.not_covered"
    conf.commit("alice", remove={conf.carol.device_id: "consent-narrowed"}, evidence=narrower)
    assert conf.party("carol").s.removed
    data, seq = conf.send("alice", "after the withdrawal")
    assert conf.party("bob").s.decrypt(data, seq).body == b"after the withdrawal"
    with pytest.raises(GroupError):
        conf.party("carol").s.decrypt(data, seq)


def test_a_revoked_consent_fences_the_whole_thread() -> None:
    conf = Conference("group-revoked-consent")
    conf.open_thread("bob")
    conf.supersede(conf.evidence, [conf.kela, conf.county], revoke=True)
    with pytest.raises(RemovalDue) as exc:
        conf.send("alice", "no")
    assert exc.value.devices == {conf.alice.device_id, conf.bob.device_id}


def test_the_cut_off_check_is_not_fooled_by_its_cache() -> None:
    """Sending caches the roster check; a revocation or a certificate's end still stops it."""
    conf = Conference("group-due-cache")
    w = conf.world
    short = w.add_device(conf.te, cert_lifetime=3600)
    conf.sync_trust()
    conf.open_thread("bob")
    a = conf.party("alice")
    conf.commit("alice", add=[member(a.trust, short)])
    conf.send("alice", "cached now")
    conf.send("alice", "from the cache")
    w.clock.advance(3601)  # the short certificate has ended; the log head is refreshed
    conf.sync_trust()
    with pytest.raises(RemovalDue) as exc:
        conf.send("alice", "no")
    assert exc.value.devices == {short.device_id}
    conf.commit("alice", remove={short.device_id: "cert-expired"})
    conf.send("alice", "cached again")
    w.revoke(conf.bob)
    conf.sync_trust()
    with pytest.raises(RemovalDue):
        conf.send("alice", "no")


def test_a_certificate_ending_between_log_heads_stops_sending() -> None:
    conf = Conference("group-due-time")
    w = conf.world
    short = w.add_device(conf.te, cert_lifetime=600)
    conf.sync_trust()
    conf.open_thread("bob")
    a = conf.party("alice")
    conf.commit("alice", add=[member(a.trust, short)])
    conf.send("alice", "cached now")
    w.clock.advance(601)  # the head is still fresh (MAX_HEAD_AGE is 15 min); nothing new logged
    with pytest.raises(RemovalDue) as exc:
        conf.send("alice", "no")
    assert exc.value.devices == {short.device_id}


def test_a_renewed_certificate_is_taken_up_by_an_update_and_history_still_verifies() -> None:
    conf = Conference("group-renew")
    conf.open_thread("bob")
    early, early_seq = conf.send("bob", "with the first certificate")
    old_cert = conf.bob.cert.cert_hash
    conf.world.clock.advance(60)
    conf.world.renew(conf.bob)
    conf.sync_trust()
    a, b, c = conf.party("alice"), conf.party("bob"), conf.party("carol")
    b.s.use_secrets(conf.bob.secrets)  # the renewed device's new key package
    data = a.s.propose(
        a.trust,
        conf.world.rng,
        conf.world.clock,
        add=[member(a.trust, conf.carol)],
        key_packages=[conf.bob.key_package],
    )
    core = Commit.decode(data).core
    assert {(ch.device_id, ch.reason) for ch in core.changes} >= {
        (conf.bob.device_id, "cert-renewed")
    }
    assert conf.bob.cert.cert_hash != old_cert
    seq = conf.sequence(data)
    conf.deliver(data, seq)
    # A device admitted later replays the chain: epoch 0 names the first certificate.
    c.state = ThreadState.join(conf.genesis, c.device.secrets, conf.log, c.trust)
    assert c.s.decrypt(early, early_seq).body == b"with the first certificate"
    assert b.s.epoch == 1
    # A certificate for Bob's keys naming another person is refused outright.
    forged = DeviceCert.issue(
        conf.county.key,
        org_id=conf.county.org_id,
        user_id=bytes(16),
        signing_public=conf.bob.cert.signing_public,
        kem_public=conf.bob.cert.kem_public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    )
    conf.world._log("device", forged.encode())
    with pytest.raises(KoppiError) as exc:
        conf.world.sync(a.trust)
    assert code(exc) == "koppi.conflicting_certificate"


def test_use_secrets_refuses_another_devices_keys() -> None:
    conf = Conference("group-use-secrets")
    conf.open_thread("bob")
    with pytest.raises(LocalProtocolError):
        conf.party("alice").s.use_secrets(conf.bob.secrets)


def test_restore_from_a_snapshot_after_the_key_packages_are_gone() -> None:
    conf = Conference("group-restore")
    conf.open_thread("bob")
    b = conf.party("bob")
    first, first_seq = conf.send("alice", "epoch 0")
    conf.commit("alice")
    b.s.decrypt(first, first_seq)
    conf.send("bob", "bob's counter 0")
    snap = b.s.snapshot()
    assert b"epoch 0" not in snap
    # The device restarts; its key packages have expired and their private keys are deleted.
    bare = DeviceSecrets(conf.bob.secrets.signing, conf.bob.secrets.cert_kem)
    with pytest.raises(LocalProtocolError) as exc:
        ThreadState.join(conf.genesis, bare, conf.log, b.trust)
    assert code(exc) == "koppi.missing_private_key"
    restored = ThreadState.restore(conf.genesis, bare, conf.log, b.trust, snap)
    assert restored.readable_epochs == {0, 1}
    assert restored.decrypt(first, first_seq).body == b"epoch 0"
    b.state = restored
    again, _ = conf.send("bob", "after the restart")
    assert m.peek_header(again).counter == 1  # the counter goes on, never reused
    # A snapshot secret that does not reproduce its epoch's tag is refused.
    wrong = ThreadState(conf.genesis, bare)
    wrong._secrets = {0: bytes(32), 1: bytes(32)}
    with pytest.raises(AuthFailed):
        ThreadState.restore(conf.genesis, bare, conf.log, b.trust, wrong.snapshot())
    other = Conference("group-restore-other")
    with pytest.raises(LocalProtocolError):
        ThreadState.restore(other.genesis, bare, conf.log, b.trust, snap)


def test_a_member_leaves_by_request_and_another_commits_it() -> None:
    conf = Conference("group-leave")
    conf.open_thread("bob", "carol")
    b = conf.party("bob")
    request = b.s.leave_request(conf.world.clock)
    data = conf.commit("alice", leaves=[request])
    change = next(c for c in Commit.decode(data).core.changes)
    assert (change.device_id, change.reason) == (conf.bob.device_id, "left")
    assert change.evidence == LeaveRequest.decode(request).evidence
    assert b.s.removed
    # A request with a broken signature, or naming another device, is refused.
    forged = replace(
        LeaveRequest.decode(conf.party("carol").s.leave_request(conf.world.clock)),
        signature=bytes(64),
    )
    a = conf.party("alice")
    with pytest.raises(AuthFailed):
        a.s.propose(a.trust, conf.world.rng, conf.world.clock, leaves=[forged.encode()])
    with pytest.raises(LocalProtocolError):
        a.s.propose(a.trust, conf.world.rng, conf.world.clock, leaves=[request])  # Bob left


def test_weekly_rekey_is_due() -> None:
    conf = Conference("group-weekly")
    conf.open_thread("bob")
    a = conf.party("alice")
    now = conf.world.clock.now()
    assert not a.s.rekey_due(now)
    assert a.s.rekey_due(now + 7 * 24 * 3600)
    assert a.s.rekey_due(now - 2 * 24 * 3600)  # an epoch dated in the future is suspicious
