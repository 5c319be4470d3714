"""Generator of `koppi-thread.json`: one thread's life, replayed by observer devices (§3-§7).

A deployment (root, three organisations, a log with one witness, consent records) and a thread
that lives through: creation, a widened consent, a late admission with history by consent, a
device revocation and its removal, the withdrawal of one organisation, and its return with the
whole history the client's new consent version lets it read. Two observers replay
it: Bob (in the thread from the start, applying commits live) and Carol (admitted at epoch 2,
catching up from genesis). Between the honest steps sit forged commits and messages, each with
the error code the observer must raise; a refused input changes nothing.

The generator runs every case through real observers before writing it, so the file cannot hold
a case the reference implementation does not pass.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crypto import message as m
from crypto.commit import REMOVE, Change, Commit, CommitCore, HistoryGrant, OldEpoch, build_commit
from crypto.errors import KoppiError
from crypto.group import ThreadState
from crypto.identity import TrustStore
from crypto.schedule import EpochKeys
from crypto.vectors.world import Device, World, member

NOW_MS = 1_790_000_000_000


class Scenario:
    def __init__(self) -> None:
        self.w = w = World("koppi-thread-vectors")
        self.kela, self.county, self.te = w.add_org("Kela"), w.add_org("County"), w.add_org("TE")
        self.alice = w.add_device(self.kela)
        self.bob = w.add_device(self.county)
        self.dave = w.add_device(self.county)
        self.carol = w.add_device(self.te)
        self.v1 = w.consent([self.kela, self.county], may_store=[self.kela])
        self.genesis = w.genesis(self.alice)
        self.trust: dict[str, TrustStore] = {}
        self.synced = 0
        self.seq = 0
        self.cases: list[dict[str, Any]] = []
        self.log: list[tuple[bytes, int]] = []
        self.states: dict[str, ThreadState] = {}
        self.observers = ("bob", "carol")

    def device(self, name: str) -> Device:
        d: Device = getattr(self, name)
        return d

    # --- log and trust --------------------------------------------------------------------------

    def sync(self) -> None:
        """Every client polls the log; observers get the same step as a `sync` case."""
        w = self.w
        cth = w.head()
        old = self.synced
        entries = []
        for index in range(old, cth.head.size):
            kind, _, payload = w.entries[index]
            entries.append({
                "index": index, "kind": kind, "data": payload.hex(),
                "proof": [p.hex() for p in w.tree.inclusion_proof(index, cth.head.size)],
            })  # fmt: skip
        proof = w.tree.consistency_proof(old, cth.head.size) if old else []
        for name in ("alice", "bob", "carol", "dave"):
            if name not in self.trust:
                self.trust[name] = w.client()
            else:
                w.sync(self.trust[name])
        self.synced = cth.head.size
        self.cases.append({
            "name": f"sync-to-{cth.head.size}", "kind": "sync", "observer": "*",
            "tree_head": cth.encode().hex(), "consistency_proof": [p.hex() for p in proof],
            "entries": entries,
        })  # fmt: skip

    # --- the server and the observers -------------------------------------------------------

    def sequence(self, data: bytes) -> int:
        self.seq += 1
        self.log.append((data, self.seq))
        return self.seq

    def commit_case(self, name: str, observer: str, data: bytes, seq: int, *, live: bool = True,
                    error: str | None = None) -> None:  # fmt: skip
        state = self.states[observer]
        case: dict[str, Any] = {"name": name, "kind": "commit", "observer": observer,
                                "data": data.hex(), "seq": seq, "live": live}  # fmt: skip
        if error is not None:
            before = (state.chain.head_hash, state.readable_epochs)
            try:
                state.apply(data, seq, self.trust[observer], live=live, now=NOW_MS // 1000)
            except KoppiError as exc:
                if exc.code != error:
                    raise AssertionError(f"{name}: {exc.code} instead of {error}") from exc
            else:
                raise AssertionError(f"{name}: no error")
            assert (state.chain.head_hash, state.readable_epochs) == before
            case["expected_error"] = error
        else:
            ev = state.apply(data, seq, self.trust[observer], live=live, now=NOW_MS // 1000)
            case["expected"] = {
                "epoch": ev.epoch,
                "epoch_id": ev.epoch_id.hex(),
                "removed_me": ev.removed_me,
                "history": sorted(ev.history),
                "readable_epochs": sorted(state.readable_epochs),
                "thread_info": state.thread_info.hex(),
            }
        self.cases.append(case)

    def message_case(self, name: str, observer: str, data: bytes, seq: int,
                     error: str | None = None) -> None:  # fmt: skip
        state = self.states[observer]
        case: dict[str, Any] = {"name": name, "kind": "message", "observer": observer,
                                "data": data.hex(), "seq": seq}  # fmt: skip
        if error is not None:
            try:
                state.decrypt(data, seq)
            except KoppiError as exc:
                if exc.code != error:
                    raise AssertionError(f"{name}: {exc.code} instead of {error}") from exc
            else:
                raise AssertionError(f"{name}: no error")
            case["expected_error"] = error
        else:
            opened = state.decrypt(data, seq)
            case["expected"] = {
                "body": opened.body.hex(),
                "sender": opened.header.sender.hex(),
                "epoch": opened.header.epoch,
                "content_type": opened.content_type,
                "label_organisations": sorted(o.hex() for o in opened.label.organisations),
                "label_basis": opened.label.basis,
            }
        self.cases.append(case)

    # --- actors -----------------------------------------------------------------------------

    def propose(self, actor: str, **kw: Any) -> bytes:
        return self.states[actor].propose(self.trust[actor], self.w.rng, self.w.clock, **kw)

    def honest_commit(self, name: str, actor: str, **kw: Any) -> bytes:
        data = self.propose(actor, **kw)
        seq = self.sequence(data)
        self.states[actor].apply(data, seq, self.trust[actor], now=NOW_MS // 1000)
        for other in ("alice", "dave"):
            st = self.states.get(other)
            if other != actor and st is not None and not st.removed:
                st.apply(data, seq, self.trust[other], now=NOW_MS // 1000)
        for obs in self.observers:
            if obs in self.states and obs != actor:
                self.commit_case(f"{name}-seen-by-{obs}", obs, data, seq)
        return data

    def send(self, actor: str, text: str, label: m.StorageLabel | None = None) -> tuple[bytes, int]:
        label = label or m.StorageLabel(frozenset({self.kela.org_id}), "consent", 0)
        data = self.states[actor].encrypt(text.encode(), label=label, trust=self.trust[actor],
                                          rng=self.w.rng, clock=self.w.clock)  # fmt: skip
        self.seq += 1
        return data, self.seq

    def throwaway_core(self, actor: str, **kw: Any) -> CommitCore:
        """An honest next core, for forging variants of it."""
        core = Commit.decode(self.propose(actor, **kw)).core
        self.states[actor]._pending = None
        return core

    def forge(self, signer: str, core: CommitCore, *, secret: bytes | None = None,
              history_secrets: dict[int, bytes] | None = None) -> bytes:  # fmt: skip
        """A well-signed commit with whatever core a malicious committer chooses."""
        trust = self.trust[signer]
        packages = {d.device_id: d.key_package for d in
                    (self.alice, self.bob, self.dave, self.carol)}  # fmt: skip
        recipients = {}
        for e in core.roster:
            v = trust.device(e.device_id)
            assert v is not None
            recipients[e.device_id] = (
                packages[e.device_id].kem_public if e.kp_hash else v.kem_public
            )
        alice = self.states["alice"]
        old = {
            g.epoch: OldEpoch(
                alice.chain.records[g.epoch].commit_hash,
                (history_secrets or {}).get(g.epoch) or alice._secrets[g.epoch],
            )
            for g in core.history
        }
        return build_commit(core, secret or self.w.rng.random_bytes(32), recipients=recipients,
                            old_epochs=old, thread_info=b"",
                            signing=self.device(signer).secrets.signing,
                            sealer=self.w.sealer).encode()  # fmt: skip


def thread_vectors() -> dict[str, Any]:
    s = Scenario()
    w = s.w
    s.sync()
    a = "alice"
    s.states[a] = ThreadState(s.genesis, s.alice.secrets, sealer=w.sealer)
    s.states["bob"] = ThreadState(s.genesis, s.bob.secrets, sealer=w.sealer)
    info = b"Asiakas 7F3A: kuntoutussuunnitelman verkostoneuvottelu"

    # Epoch 0: Alice opens the thread with Bob and Dave (County), consent v1 (Kela, County).
    data0 = s.propose(a, add=[member(s.trust[a], d) for d in (s.alice, s.bob, s.dave)],
                      evidence=s.v1, thread_info=info)  # fmt: skip
    seq0 = s.sequence(data0)
    s.states[a].apply(data0, seq0, s.trust[a])
    s.states["dave"] = ThreadState.join(s.genesis, s.dave.secrets, s.log, s.trust["dave"])
    s.commit_case("epoch-0-created", "bob", data0, seq0)
    s.commit_case("epoch-0-again-is-a-duplicate", "bob", data0, seq0 + 100,
                  error="koppi.duplicate_commit")  # fmt: skip

    m0, m0_seq = s.send(a, "Ensimmäinen viesti / first message")
    s.message_case("message-epoch-0", "bob", m0, m0_seq)
    s.message_case("replay", "bob", m0, m0_seq, error="koppi.replay")
    s.states[a]._counter -= 1
    reuse, reuse_seq = s.send(a, "same counter, other bytes")
    s.message_case("counter-reuse-with-different-bytes", "bob", reuse, reuse_seq,
                   error="koppi.counter_reuse")  # fmt: skip
    d0, d0_seq = s.send("dave", "Dave before his revocation")

    # Negative commits against epoch 0 (Bob refuses each, state unchanged).
    core = s.throwaway_core(a)
    s.commit_case("bad-prev-hash", "bob", s.forge(a, replace(core, prev_commit_hash=bytes(32))),
                  900, error="koppi.bad_prev_hash")  # fmt: skip
    s.commit_case("epoch-gap", "bob", s.forge(a, replace(core, epoch=2)), 900,
                  error="koppi.epoch_gap")  # fmt: skip
    s.commit_case("unauthorised-committer", "bob",
                  s.forge("carol", replace(core, committer=s.carol.device_id)), 900,
                  error="koppi.unauthorized_committer")  # fmt: skip
    s.commit_case("signed-by-another-than-the-committer", "bob", s.forge("dave", core), 900,
                  error="koppi.auth_failed")  # fmt: skip
    me = s.alice.device_id
    self_removed = replace(core, roster=tuple(e for e in core.roster if e.device_id != me),
                           changes=(Change(me, REMOVE, "left"),))  # fmt: skip
    s.commit_case("committer-removed-by-its-own-commit", "bob", s.forge(a, self_removed), 900,
                  error="koppi.committer_removed")  # fmt: skip
    honest = Commit.decode(s.propose(a))
    s.states[a]._pending = None
    forged = Commit.decode(s.forge(a, honest.core))
    forged = replace(forged, confirmation_tag=honest.confirmation_tag)
    forged = replace(forged, signature=s.alice.secrets.signing.sign(forged.signed_message()))
    s.commit_case("forged-wrap-fails-the-confirmation-tag", "bob", forged.encode(), 900,
                  error="koppi.auth_failed")  # fmt: skip
    short = replace(honest, wraps=honest.wraps[:-1])
    short = replace(short, signature=s.alice.secrets.signing.sign(short.signed_message()))
    s.commit_case("wraps-do-not-match-the-roster", "bob", short.encode(), 900,
                  error="koppi.wrap_mismatch")  # fmt: skip
    other_client = w.consent([s.kela, s.county], client_ref=bytes(32))
    other_purpose = w.consent([s.kela, s.county], purpose="employment-services")
    s.sync()
    for label, ev in (("another-client", other_client), ("another-purpose", other_purpose)):
        s.commit_case(f"consent-for-{label}", "bob", s.forge(a, replace(core, evidence=ev)), 900,
                      error="koppi.consent_mismatch")  # fmt: skip

    # Epoch 1: the consent widens to TE (v2); Alice re-commits citing it.
    v2 = w.supersede(s.v1, [s.kela, s.county, s.te], may_store=[s.kela, s.county])
    s.sync()
    s.honest_commit("epoch-1-consent-widened", a, evidence=v2)
    s.message_case("dave-message-of-epoch-0-still-in-its-window", "bob", d0, d0_seq)
    s.message_case("epoch-0-message-sequenced-after-commit-1-is-stale", "bob", d0, s.seq + 1,
                   error="koppi.stale_epoch")  # fmt: skip
    rollback = s.throwaway_core(a)
    s.commit_case("consent-superseded-version-live", "bob",
                  s.forge(a, replace(rollback, evidence=s.v1)), 900,
                  error="koppi.consent_inactive")  # fmt: skip
    s.commit_case("consent-rollback-when-catching-up", "bob",
                  s.forge(a, replace(rollback, evidence=s.v1)), 900, live=False,
                  error="koppi.consent_rollback")  # fmt: skip
    m1, m1_seq = s.send(a, "Kela: päätös tulossa / epoch 1")
    s.message_case("message-epoch-1", "bob", m1, m1_seq)

    # Epoch 2: Carol (TE) is admitted; she receives epoch 1 (covered TE), not epoch 0.
    add_carol = s.throwaway_core(a, add=[member(s.trust[a], s.carol)])
    assert add_carol.history == (HistoryGrant(s.carol.device_id, 1),)
    s.commit_case("history-grant-outside-coverage", "bob",
                  s.forge(a, replace(add_carol, history=(*add_carol.history,
                                                         HistoryGrant(s.carol.device_id, 0)))),
                  900, error="koppi.history_outside_coverage")  # fmt: skip
    s.commit_case("history-grant-missing", "bob", s.forge(a, replace(add_carol, history=())), 900,
                  error="koppi.history_incomplete")  # fmt: skip
    bad_history = s.forge(a, add_carol, history_secrets={1: bytes(32)})
    s.states["carol"] = ThreadState(s.genesis, s.carol.secrets, sealer=w.sealer)
    for i, (data, seq) in enumerate(s.log):
        s.commit_case(f"carol-catches-up-epoch-{i}", "carol", data, seq, live=False)
    s.commit_case("history-secret-not-matching-its-tag", "carol", bad_history, s.seq + 1,
                  live=False, error="koppi.auth_failed")  # fmt: skip
    s.honest_commit("epoch-2-carol-admitted", a, add=[member(s.trust[a], s.carol)])
    s.message_case("carol-reads-epoch-1-history", "carol", m1, m1_seq)
    s.message_case("carol-cannot-read-epoch-0", "carol", m0, m0_seq, error="koppi.epoch_unreadable")
    m2, m2_seq = s.send("carol", "TE: työkokeilu alkaa / epoch 2")
    s.message_case("message-from-carol", "bob", m2, m2_seq)
    d2, d2_seq = s.send("dave", "Dave, epoch 2, logged before his revocation")

    # Dave's device is revoked (lost laptop); Alice must remove him before sending.
    pre = s.throwaway_core(a)
    rev_index = w.revoke(s.dave)
    s.sync()
    try:
        s.send(a, "must not be sent")
    except KoppiError as exc:
        assert exc.code == "koppi.removal_due"
    else:
        raise AssertionError("sending with a revoked device in the roster")
    # The same core, echoing the tree that includes the revocation, with Dave still in it.
    keep = replace(
        pre, tree_size=s.trust[a].tree_size(), tree_head_hash=s.trust[a].tree_head_hash()
    )
    s.commit_case("commit-keeping-a-revoked-device", "bob", s.forge(a, keep), 900,
                  error="koppi.removal_due")  # fmt: skip
    s.honest_commit("epoch-3-revoked-device-removed", a,
                    remove={s.dave.device_id: "device-revoked"})  # fmt: skip
    s.message_case("message-before-the-revocation-index-still-verifies", "bob", d2, d2_seq)
    dave_late = s.forge("dave", replace(s.throwaway_core(a), committer=s.dave.device_id))
    s.commit_case("removed-device-cannot-commit", "bob", dave_late, 900,
                  error="koppi.unauthorized_committer")  # fmt: skip
    # Dave, cut off, forges a message for epoch 3 with keys he does not have.
    rec3 = s.states["bob"].chain.records[3]
    fake_keys = EpochKeys.derive(bytes(32), rec3.core_hash, s.genesis.thread_id, 3)
    bob_epoch3 = s.states["bob"].epoch_view(3)
    assert bob_epoch3 is not None
    dave_dev = s.trust["bob"].device(s.dave.device_id)
    assert dave_dev is not None
    fake_epoch = replace(bob_epoch3, keys=fake_keys,
                         roster={**bob_epoch3.roster, s.dave.device_id: dave_dev})  # fmt: skip
    kela_label = m.StorageLabel(frozenset({s.kela.org_id}), "consent", 0)
    forged_msg = m.seal(fake_epoch, s.dave.secrets.signing, counter=0,
                        message_id=w.rng.random_bytes(16), timestamp_ms=NOW_MS,
                        reuse_guard=w.rng.random_bytes(4), label=kela_label,
                        content_type="text/plain", body=b"ghost", tree_size=3,
                        tree_head_hash=b"")  # fmt: skip
    s.seq += 1
    s.message_case("removed-device-message", "bob", forged_msg, s.seq, error="koppi.not_in_roster")

    # A label naming TE, which may not store: refused by receivers even if a sender skips the check.
    lax = replace(bob_epoch3, may_store=bob_epoch3.coverage)
    alice_key = s.alice.secrets.signing
    te_label = m.StorageLabel(frozenset({s.te.org_id}), "consent", 0)
    lax_alice = s.states[a].epoch_view(3)
    assert lax_alice is not None
    bad_label = m.seal(replace(lax_alice, may_store=lax.may_store), alice_key, counter=999,
                       message_id=w.rng.random_bytes(16), timestamp_ms=NOW_MS,
                       reuse_guard=w.rng.random_bytes(4), label=te_label, content_type="text/plain",
                       body=b"x", tree_size=3, tree_head_hash=b"")  # fmt: skip
    s.seq += 1
    s.message_case("label-names-an-organisation-that-may-not-store", "bob", bad_label, s.seq,
                   error="koppi.label_not_covered")  # fmt: skip
    header = m.peek_header(m3 := s.send(a, "epoch 3")[0])
    s.seq += 1  # (m3 is delivered below)
    m3_seq = s.seq
    s.message_case("message-epoch-3", "bob", m3, m3_seq)
    _, ct, sig = m.decode_message(m3)
    fork_header = replace(header, epoch_id=bytes(16))
    fork_bytes = fork_header.encode()
    fork = m.encode_message(fork_bytes, ct, alice_key.sign(m.signature_input(fork_bytes, ct)))
    s.message_case("unknown-epoch-id-is-a-fork", "bob", fork, m3_seq + 1, error="koppi.fork")
    future = replace(header, epoch=9)
    s.message_case("unknown-epoch", "bob",
                   m.encode_message(future.encode(), ct,
                                    alice_key.sign(m.signature_input(future.encode(), ct))),
                   m3_seq + 1, error="koppi.unknown_epoch")  # fmt: skip
    s.message_case("tampered-thread", "bob",
                   m.encode_message(replace(header, thread_id=bytes(16)).encode(), ct, sig),
                   m3_seq + 1, error="koppi.wrong_thread")  # fmt: skip
    s.message_case("tampered-counter", "bob",
                   m.encode_message(replace(header, counter=77).encode(), ct, sig), m3_seq + 1,
                   error="koppi.auth_failed")  # fmt: skip
    s.message_case("tampered-label", "bob",
                   m.encode_message(replace(header, label=te_label).encode(), ct, sig),
                   m3_seq + 1, error="koppi.auth_failed")  # fmt: skip

    # Epoch 4: the client withdraws consent for TE (v3); Carol is removed at once.
    v3 = w.supersede(v2, [s.kela, s.county], may_store=[s.kela])
    s.sync()
    s.honest_commit("epoch-4-te-withdrawn-carol-removed", a,
                    remove={s.carol.device_id: "consent-narrowed"}, evidence=v3)  # fmt: skip
    m4, m4_seq = s.send(a, "after TE's withdrawal")
    s.message_case("bob-reads-after-the-withdrawal", "bob", m4, m4_seq)
    s.message_case("carol-reads-nothing-after-her-removal", "carol", m4, m4_seq,
                   error="koppi.epoch_unreadable")  # fmt: skip
    del rev_index

    # Epoch 5: the client lets TE back in and, this time, read the thread from its start (v4):
    # Carol receives every earlier epoch she lacks, not only those whose coverage named TE.
    v4 = w.supersede(v3, [s.kela, s.county, s.te], may_store=[s.kela], full_history=[s.te])
    s.sync()
    add_back = s.throwaway_core(a, add=[member(s.trust[a], s.carol)], evidence=v4)
    assert {g.epoch for g in add_back.history} == {0, 4}, add_back.history
    s.commit_case("full-history-grant-missing", "bob",
                  s.forge(a, replace(add_back, history=tuple(
                      g for g in add_back.history if g.epoch != 0))), 900,
                  error="koppi.history_incomplete")  # fmt: skip
    s.honest_commit("epoch-5-te-back-with-full-history", a, add=[member(s.trust[a], s.carol)],
                    evidence=v4)  # fmt: skip
    s.message_case("carol-reads-epoch-0-with-full-history", "carol", m0, m0_seq)

    bob, carol = s.bob.secrets, s.carol.secrets
    return {
        "generated_by": "crypto/vectors/gen_thread.py",
        "description": (
            "A thread's life replayed by two observer devices (docs/protocol.md §3-§7). Set up: "
            "a LogView with `deployment` (log key, witness keys, quorum, MAX_HEAD_AGE) and a "
            "clock at `now_ms`; a TrustStore with the root key per observer; a ThreadState per "
            "observer from `genesis` and its keys in `observers`. Then run `cases` in order: "
            "`sync` (every observer): update the LogView to `tree_head` with `consistency_proof`, "
            "then add each entry by kind (org, device, revocation, link: the entry; consent: the "
            "record, whose log leaf is its consent log entry) with its inclusion proof; `commit`: "
            "apply `data` at sequence `seq` (live: the evidence consent must be in force); "
            "`message`: decrypt `data` delivered at `seq`. A case with `expected_error` must "
            "raise that code and change nothing; otherwise compare `expected`."
        ),
        "deployment": {
            "root_public": w.root.public.hex(),
            "log_public": w.log_key.public.hex(),
            "witness_publics": [k.public.hex() for k in w.witnesses],
            "quorum": w.config.quorum,
            "max_head_age_ms": w.config.max_head_age_ms,
            "now_ms": w.clock.now_ms(),
        },
        "genesis": s.genesis.encode().hex(),
        "observers": {
            name: {
                "device_id": sec.device_id.hex(),
                "signing_seed": sec.signing.seed_bytes().hex(),
                "cert_kem_private": sec.cert_kem.private_bytes().hex(),
                "package_keys": {
                    h.hex(): k.private_bytes().hex() for h, k in sec.package_keys.items()
                },
            }
            for name, sec in (("bob", bob), ("carol", carol))
        },
        "cases": s.cases,
    }


VECTORS = {"koppi-thread.json": thread_vectors}
