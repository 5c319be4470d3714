"""Property tests of the thread state against an independent model (issue: protocol, "Proof").

Hypothesis drives random sequences of admissions, removals, key updates, consent narrowing and
widening, messages and racing commits across six devices of three organisations. A small model
says, from the outline's rules alone, which epochs each device must be able to read:

- a device in the roster reads every epoch it is a member of;
- an admitted device also reads the earlier epochs whose coverage includes its organisation and
  that its admitter held (history by consent), and nothing else;
- a removed device reads nothing after its removal;
- racing commits resolve to one chain that every member shares.

After every step, every device tries every message it has not tried yet, and must succeed exactly
when the model says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from crypto.errors import KoppiError
from crypto.group import ThreadState
from crypto.identity import TrustStore
from crypto.message import StorageLabel
from crypto.vectors.world import Device, Org, World, member

NAMES = ("kela0", "kela1", "county0", "county1", "te0", "te1")


@dataclass
class Sent:
    epoch: int
    seq: int
    data: bytes
    body: bytes
    tried_by: set[str] = field(default_factory=set)


class ThreadMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        w = self.w = World("group-properties")
        self.orgs: dict[str, Org] = {n: w.add_org(n) for n in ("kela", "county", "te")}
        self.devices: dict[str, Device] = {}
        for n in NAMES:  # kela1 is a second device of kela0's professional
            user = self.devices["kela0"].user_id if n == "kela1" else None
            self.devices[n] = w.add_device(self.orgs[n[:-1]], user_id=user)
        self.coverage = {"kela", "county", "te"}
        self.evidence = w.consent([self.orgs[o] for o in sorted(self.coverage)])
        self.trust: dict[str, TrustStore] = {n: w.client() for n in NAMES}
        self.states: dict[str, ThreadState] = {}
        self.seq = 0
        self.log: list[tuple[bytes, int]] = []
        # the model
        self.members: set[str] = set()
        self.removed: set[str] = set()
        self.epoch_coverage: list[set[str]] = []
        self.holds: dict[str, set[int]] = {n: set() for n in NAMES}
        self.sent: list[Sent] = []
        g = w.genesis(self.devices["kela0"])
        self.genesis = g
        creator = ThreadState(g, self.devices["kela0"].secrets)
        data = creator.propose(
            self.trust["kela0"], w.rng, w.clock,
            add=[member(self.trust["kela0"], self.devices[n]) for n in ("kela0", "county0")],
            evidence=self.evidence,
        )  # fmt: skip
        self.states["kela0"] = creator
        self._sequence_and_deliver(data, committer="kela0")
        self.states["county0"] = ThreadState.join(
            g, self.devices["county0"].secrets, self.log, self.trust["county0"]
        )
        self._new_epoch(added={"kela0": set(), "county0": set()})

    # --- plumbing ---------------------------------------------------------------------------

    def _sequence_and_deliver(self, data: bytes, *, committer: str) -> None:
        self.seq += 1
        self.log.append((data, self.seq))
        for name in sorted(self.members | {committer}):
            if name in self.states and not self.states[name].removed:
                self.states[name].apply(data, self.seq, self.trust[name])

    def _new_epoch(self, *, added: dict[str, set[int]], gone: frozenset[str] = frozenset()) -> None:
        """Model: the next epoch has the current coverage; members (after the change) hold it."""
        n = len(self.epoch_coverage)
        self.epoch_coverage.append(set(self.coverage))
        self.members = (self.members - gone) | set(added)
        self.removed |= gone
        for name, history in added.items():
            self.holds[name] |= history
        for name in self.members:
            self.holds[name].add(n)

    def _model_history(self, name: str, committer: str) -> set[int]:
        org = name[:-1]
        return {
            e for e, cov in enumerate(self.epoch_coverage)
            if org in cov and e in self.holds[committer] and e not in self.holds[name]
        }  # fmt: skip

    def _commit(self, committer: str, **kw: object) -> None:
        state = self.states[committer]
        data = state.propose(self.trust[committer], self.w.rng, self.w.clock, **kw)  # type: ignore[arg-type]
        self._sequence_and_deliver(data, committer=committer)

    def _sync_all(self) -> None:
        for store in self.trust.values():
            self.w.sync(store)

    # --- rules ------------------------------------------------------------------------------

    @rule(data=st.data())
    def admit(self, data: st.DataObject) -> None:
        candidates = sorted(
            n for n in NAMES
            if n not in self.members and n not in self.removed and n[:-1] in self.coverage
        )  # fmt: skip
        if not candidates:
            return
        name = data.draw(st.sampled_from(candidates))
        committer = data.draw(st.sampled_from(sorted(self.members)))
        history = self._model_history(name, committer)
        self._commit(committer, add=[member(self.trust[committer], self.devices[name])])
        self.states[name] = ThreadState.join(
            self.genesis, self.devices[name].secrets, self.log, self.trust[name]
        )
        self._new_epoch(added={name: history})

    @precondition(lambda self: len(self.members) > 2)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.members - {"kela0"})))
        committer = data.draw(st.sampled_from(sorted(self.members - {name})))
        self._commit(committer, remove={self.devices[name].device_id: "left"})
        assert self.states[name].removed
        self._new_epoch(added={}, gone=frozenset({name}))

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        self._commit(data.draw(st.sampled_from(sorted(self.members))))
        self._new_epoch(added={})

    @rule(org=st.sampled_from(["county", "te"]), data=st.data())
    def narrow(self, org: str, data: st.DataObject) -> None:
        """The client withdraws one organisation: its devices leave in the same commit."""
        if org not in self.coverage:
            return
        self.coverage.discard(org)
        self.evidence = self.w.supersede(
            self.evidence, [self.orgs[o] for o in sorted(self.coverage)]
        )
        self._sync_all()
        leaving = {n for n in self.members if n[:-1] == org}
        committer = data.draw(st.sampled_from(sorted(self.members - leaving)))
        self._commit(
            committer,
            remove={self.devices[n].device_id: "consent-narrowed" for n in leaving},
            evidence=self.evidence,
        )
        self._new_epoch(added={}, gone=frozenset(leaving))

    @rule(org=st.sampled_from(["county", "te"]), data=st.data())
    def widen(self, org: str, data: st.DataObject) -> None:
        if org in self.coverage:
            return
        self.coverage.add(org)
        self.evidence = self.w.supersede(
            self.evidence, [self.orgs[o] for o in sorted(self.coverage)]
        )
        self._sync_all()
        self._commit(data.draw(st.sampled_from(sorted(self.members))), evidence=self.evidence)
        self._new_epoch(added={})

    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        sender = data.draw(st.sampled_from(sorted(self.members)))
        body = data.draw(st.binary(max_size=300))
        label = StorageLabel(frozenset(), "consent")
        msg = self.states[sender].encrypt(body, label=label, trust=self.trust[sender],
                                          rng=self.w.rng, clock=self.w.clock)  # fmt: skip
        self.seq += 1
        self.sent.append(Sent(len(self.epoch_coverage) - 1, self.seq, msg, body))

    @precondition(lambda self: len(self.members) >= 2)
    @rule(data=st.data())
    def race(self, data: st.DataObject) -> None:
        """Two members commit at once; the server sequences one; the other re-commits."""
        first, second = data.draw(
            st.lists(st.sampled_from(sorted(self.members)), min_size=2, max_size=2, unique=True)
        )
        winner = self.states[first].propose(self.trust[first], self.w.rng, self.w.clock)
        loser = self.states[second]
        loser.propose(self.trust[second], self.w.rng, self.w.clock)
        self._sequence_and_deliver(winner, committer=first)
        assert not loser.pending  # dropped: the winner's epoch is in force
        self._new_epoch(added={})
        self._commit(second)
        self._new_epoch(added={})

    # --- the properties ---------------------------------------------------------------------

    @invariant()
    def members_share_one_chain(self) -> None:
        heads = {self.states[n].chain.head_hash for n in self.members}
        assert len(heads) == 1

    @invariant()
    def each_device_reads_exactly_what_the_model_allows(self) -> None:
        for name, state in self.states.items():
            for sent in self.sent:
                if name in sent.tried_by:
                    continue
                if (
                    name not in self.removed
                    and sent.epoch not in self.holds[name]
                    and (name not in self.members)
                ):
                    continue  # never a member yet: nothing to say
                sent.tried_by.add(name)
                if sent.epoch in self.holds[name]:
                    assert state.decrypt(sent.data, sent.seq).body == sent.body
                else:
                    try:
                        state.decrypt(sent.data, sent.seq)
                    except KoppiError as exc:
                        assert exc.code in {"koppi.epoch_unreadable", "koppi.unknown_epoch"}
                    else:
                        raise AssertionError(f"{name} read epoch {sent.epoch} it must not")


TestThreadProperties = ThreadMachine.TestCase
TestThreadProperties.settings = settings(
    max_examples=60,
    stateful_step_count=16,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
