"""The epoch key schedule (docs/protocol.md §6, outline §4).

Every key of an epoch is derived from the epoch secret with the commit's `core_hash` as salt, so
the keys are bound to exactly the roster, changes and coverage that the commit fixed:

    key(purpose) = HKDF-SHA256(ikm = epoch_secret, salt = core_hash,
                               info = encode("koppi/v1/key/" + purpose, bytes thread_id, u64 epoch),
                               L = 32)

for purpose in `confirm`, `metadata`, `sender`, `attachment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto.encoding import Encoder
from crypto.primitives import hkdf

EPOCH_SECRET_LEN = 32
PURPOSES = ("confirm", "metadata", "sender", "attachment")


def derive_epoch_key(
    epoch_secret: bytes, core_hash: bytes, thread_id: bytes, epoch: int, purpose: str
) -> bytes:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    if len(epoch_secret) != EPOCH_SECRET_LEN:
        raise ValueError("an epoch secret is 32 bytes")
    info = Encoder(f"koppi/v1/key/{purpose}").bytes(thread_id).u64(epoch).finish()
    return hkdf(ikm=epoch_secret, salt=core_hash, info=info, length=32)


@dataclass(frozen=True)
class EpochKeys:
    """The four keys of one epoch. Never printed: the repr names the epoch only."""

    thread_id: bytes
    epoch: int
    confirm: bytes = field(repr=False)
    metadata: bytes = field(repr=False)
    sender: bytes = field(repr=False)
    attachment: bytes = field(repr=False)

    @classmethod
    def derive(
        cls, epoch_secret: bytes, core_hash: bytes, thread_id: bytes, epoch: int
    ) -> EpochKeys:
        keys = {p: derive_epoch_key(epoch_secret, core_hash, thread_id, epoch, p) for p in PURPOSES}
        return cls(thread_id=thread_id, epoch=epoch, **keys)
