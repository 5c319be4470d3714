"""`koppi monitor`: an organisation's witness of the transparency log (docs/protocol.md §4.5).

Each round it fetches the newest signed tree head and every entry it has not seen, recomputes the
tree from all the leaves it holds, and cosigns the head only if

- the log key signed it and the recomputed root is the head's root (so the head extends every
  head this monitor saw before: the old leaves are a prefix of the new tree), and
- no two commit heads name the same (thread, epoch) (a fork of a thread).

It reports every new entry that names its organisation (keys, rotations, device certificates,
revocations), so the organisation's admin can see one they did not issue. Its state (the leaf
hashes and the last head) lives in one JSON file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.clock import Clock
from crypto.consent import ConsentRecord
from crypto.encoding import Decoder
from crypto.errors import KoppiError
from crypto.identity import DeviceCert, OrgCert, Revocation
from crypto.merkle import MerkleTree, leaf_hash
from crypto.primitives import SigningKey, ed25519_verify
from crypto.treehead import Cosignature, CosignedTreeHead, key_id

GetJson = Callable[[str], Awaitable[Any]]
PostJson = Callable[[str, dict[str, Any]], Awaitable[Any]]
PAGE = 1000


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Round:
    """What one round found."""

    size: int
    cosigned: bool
    alerts: list[str] = field(default_factory=list)  # the head was refused
    ours: list[str] = field(default_factory=list)  # entries naming our organisation


def leaf_input(kind: str, payload: bytes) -> bytes:
    """What the log hashed for an entry of `kind` whose fetched data is `payload`."""
    return ConsentRecord.decode(payload).log_entry() if kind == "consent" else payload


def names_org(kind: str, payload: bytes, org_id: bytes) -> bool:
    try:
        if kind == "org":
            return OrgCert.decode(payload).org_id == org_id
        if kind == "device":
            return DeviceCert.decode(payload).org_id == org_id
        if kind == "revocation":
            return Revocation.decode(payload).org_id == org_id
    except KoppiError:
        return False
    return False


def commit_head(payload: bytes) -> tuple[bytes, int, bytes]:
    dec = Decoder(payload, "koppi/v1/log-commit-head")
    head = (dec.bytes(length=16), dec.u64(), dec.bytes(length=32))
    dec.finish()
    return head


class Monitor:
    def __init__(
        self,
        get: GetJson,
        post: PostJson,
        *,
        log_public: bytes,
        witness: SigningKey,
        org_id: bytes,
        state: Path,
        clock: Clock,
    ) -> None:
        self._get, self._post = get, post
        self._log_public, self._witness, self._org = log_public, witness, org_id
        self._state_path, self._clock = state, clock
        self._leaves: list[bytes] = []
        self._commit_heads: dict[tuple[bytes, int], bytes] = {}
        if state.exists():
            saved = json.loads(state.read_text())
            self._leaves = [bytes.fromhex(h) for h in saved["leaves"]]
            self._commit_heads = {
                (bytes.fromhex(t), int(e)): bytes.fromhex(h) for t, e, h in saved["commit_heads"]
            }

    def _save(self) -> None:
        self._state_path.write_text(
            json.dumps(
                {
                    "leaves": [h.hex() for h in self._leaves],
                    "commit_heads": [
                        [t.hex(), e, h.hex()] for (t, e), h in self._commit_heads.items()
                    ],
                }
            )
        )

    async def check_once(self) -> Round:
        body = await self._get("/api/log/head")
        cth = CosignedTreeHead.decode(unb64u(body["head"]))
        head = cth.head
        found = Round(head.size, cosigned=False)
        try:
            if head.log_id != key_id(self._log_public):
                raise KoppiError("head of another log", code="koppi.unknown_log")
            ed25519_verify(self._log_public, head.encode(), cth.signature)
        except KoppiError as e:
            found.alerts.append(f"head not signed by the log key ({e.code})")
            return found
        if head.size < len(self._leaves):
            found.alerts.append(f"the log shrank from {len(self._leaves)} to {head.size} entries")
            return found
        leaves = list(self._leaves)
        commit_heads = dict(self._commit_heads)
        for start in range(len(leaves), head.size, PAGE):
            end = min(start + PAGE, head.size)
            page = await self._get(f"/api/log/entries?start={start}&end={end}")
            for entry in page["entries"]:
                kind, payload = entry["kind"], unb64u(entry["data"])
                leaves.append(leaf_hash(leaf_input(kind, payload)))
                if names_org(kind, payload, self._org):
                    found.ours.append(f"{kind} at index {entry['index']}")
                if kind == "commit-head":
                    thread, epoch, commit_hash = commit_head(payload)
                    seen = commit_heads.setdefault((thread, epoch), commit_hash)
                    if seen != commit_hash:
                        found.alerts.append(
                            f"two commits for thread {thread.hex()} epoch {epoch}: a fork"
                        )
        if len(leaves) != head.size or MerkleTree.from_leaf_hashes(leaves).root() != head.root:
            found.alerts.append("the head's root is not the tree of the entries served")
        if found.alerts:
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
