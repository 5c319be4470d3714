"""One epoch of a thread as the message layer sees it (docs/protocol.md §6, §7).

The commit layer (`crypto/commit.py`, `crypto/group.py`) produces an `Epoch` after it has checked a
commit; the message layer (`crypto/message.py`) seals and opens with it. Keeping this the only type
the two share is what lets each be tested alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crypto.schedule import EpochKeys
from crypto.trust import VerifiedDevice

EPOCH_ID_LEN = 16


@dataclass(frozen=True)
class Epoch:
    thread_id: bytes
    number: int
    epoch_id: bytes  # first 16 bytes of the commit hash that opened this epoch
    commit_hash: bytes
    core_hash: bytes
    keys: EpochKeys = field(repr=False)
    roster: Mapping[bytes, VerifiedDevice]  # by device id
    coverage: frozenset[bytes]  # organisation ids whose content history this epoch may reach
    may_store: frozenset[bytes]  # organisation ids the evidence consent lets store content
    tree_size: int  # size of the tree head the committer echoed; orders revocations (§3)
    # Sender secrets derived so far (per device), so each is derived once per epoch, not once
    # per message. Lives and dies with the epoch's keys; never compared or printed.
    sender_secrets: dict[bytes, bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
