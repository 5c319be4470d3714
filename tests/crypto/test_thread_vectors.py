"""Replays `koppi-thread.json` (docs/protocol.md §3-§7) exactly as its description says, from the
JSON alone: the browser twin runs the same steps."""

from __future__ import annotations

from typing import Any

import pytest

from crypto.clock import FakeClock
from crypto.commit import Genesis
from crypto.errors import KoppiError
from crypto.group import ThreadState
from crypto.identity import DeviceSecrets, TrustStore
from crypto.primitives import KemKey, SigningKey
from crypto.treehead import CosignedTreeHead, LogConfig, LogView
from tests.crypto.vectors import load, unhex

VECTORS = load("koppi-thread.json")


class Replay:
    def __init__(self, doc: dict[str, Any]) -> None:
        d = doc["deployment"]
        self.clock = FakeClock(d["now_ms"] // 1000)
        config = LogConfig.create(
            unhex(d["log_public"]),
            [unhex(k) for k in d["witness_publics"]],
            quorum=d["quorum"],
            max_head_age_ms=d["max_head_age_ms"],
        )
        genesis = Genesis.decode(unhex(doc["genesis"]))
        self.trust: dict[str, TrustStore] = {}
        self.states: dict[str, ThreadState] = {}
        for name, keys in doc["observers"].items():
            self.trust[name] = TrustStore(unhex(d["root_public"]), LogView(config, self.clock))
            secrets = DeviceSecrets(
                SigningKey.from_seed(unhex(keys["signing_seed"])),
                KemKey.from_bytes(unhex(keys["cert_kem_private"])),
                {unhex(h): KemKey.from_bytes(unhex(k)) for h, k in keys["package_keys"].items()},
            )
            assert secrets.device_id == unhex(keys["device_id"])
            self.states[name] = ThreadState(genesis, secrets)

    def sync(self, case: dict[str, Any]) -> None:
        head = CosignedTreeHead.decode(unhex(case["tree_head"]))
        proof = [unhex(p) for p in case["consistency_proof"]]
        adders = {
            "org": TrustStore.add_org_cert,
            "device": TrustStore.add_device_cert,
            "revocation": TrustStore.add_revocation,
            "link": TrustStore.add_device_link,
            "consent": TrustStore.add_consent,
        }
        for store in self.trust.values():
            store.log.update(head, proof)
            for e in case["entries"]:
                adders[e["kind"]](
                    store, unhex(e["data"]), e["index"], [unhex(p) for p in e["proof"]]
                )

    def run(self, case: dict[str, Any]) -> Any:
        if case["kind"] == "sync":
            return self.sync(case)
        name = case["observer"]
        state, trust = self.states[name], self.trust[name]
        data, seq = unhex(case["data"]), case["seq"]
        if case["kind"] == "commit":
            return state.apply(data, seq, trust, live=case["live"], now=self.clock.now())
        return state.decrypt(data, seq)


def test_replay_the_thread() -> None:
    replay = Replay(VECTORS.doc)
    seen_errors = set()
    for case in VECTORS.cases:
        name = case["name"]
        if "expected_error" in case:
            state = replay.states.get(case.get("observer", ""))
            before = None if state is None else (state.chain.head_hash, state.readable_epochs)
            with pytest.raises(KoppiError) as exc:
                replay.run(case)
            assert exc.value.code == case["expected_error"], name
            if state is not None:
                assert (state.chain.head_hash, state.readable_epochs) == before, name
            seen_errors.add(case["expected_error"])
            continue
        result = replay.run(case)
        want = case.get("expected")
        if case["kind"] == "commit":
            state = replay.states[case["observer"]]
            assert result.epoch == want["epoch"], name
            assert result.epoch_id.hex() == want["epoch_id"], name
            assert result.removed_me == want["removed_me"], name
            assert sorted(result.history) == want["history"], name
            assert sorted(state.readable_epochs) == want["readable_epochs"], name
            assert state.thread_info.hex() == want["thread_info"], name
        elif case["kind"] == "message":
            assert result.body.hex() == want["body"], name
            assert result.header.sender.hex() == want["sender"], name
            assert result.header.epoch == want["epoch"], name
            assert result.content_type == want["content_type"], name
            assert (
                sorted(o.hex() for o in result.label.organisations) == want["label_organisations"]
            )
            assert result.label.basis == want["label_basis"], name
    # The outline's §8 list, as far as this scenario carries it.
    assert {
        "koppi.replay",
        "koppi.counter_reuse",
        "koppi.not_in_roster",
        "koppi.stale_epoch",
        "koppi.fork",
        "koppi.bad_prev_hash",
        "koppi.unauthorized_committer",
        "koppi.committer_removed",
        "koppi.auth_failed",
        "koppi.history_outside_coverage",
        "koppi.consent_mismatch",
        "koppi.consent_rollback",
        "koppi.label_not_covered",
        "koppi.removal_due",
        "koppi.epoch_unreadable",
    } <= seen_errors
