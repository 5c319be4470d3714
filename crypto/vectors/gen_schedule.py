"""Generator of `koppi-schedule.json`: the key schedule, wrap and history infos, HPKE wraps (§5.3).

Each step of a commit's cryptography alone, from fixed inputs, so a second implementation can
check them one by one before it replays whole threads (`koppi-thread.json`). The HPKE wraps use a
fixed ephemeral key through `crypto/vectors/hpke_reference.py`; the Python test opens them with
`crypto.primitives.hpke_open` (`cryptography`'s HPKE).
"""

from __future__ import annotations

from typing import Any

from crypto.commit import (
    confirmation_tag,
    history_info,
    seal_thread_info,
    secret_plaintext,
    wrap_info,
)
from crypto.primitives import KemKey
from crypto.schedule import EpochKeys
from crypto.vectors import hpke_reference

THREAD = bytes.fromhex("00112233445566778899aabbccddeeff")
SECRET = bytes(range(32))
CORE_HASH = bytes(range(100, 132))
DEVICE = bytes(range(200, 232))
KP_HASH = bytes(range(50, 82))
RECIPIENT = bytes(range(1, 33))
EPHEMERAL_IKM = bytes([0x42]) * 32
OLD_COMMIT_HASH = bytes(range(150, 182))


def schedule_vectors() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for epoch in (0, 1, 2**32 + 5):
        keys = EpochKeys.derive(SECRET, CORE_HASH, THREAD, epoch)
        cases.append(
            {
                "name": f"epoch-keys-{epoch}",
                "kind": "epoch_keys",
                "epoch_secret": SECRET.hex(),
                "core_hash": CORE_HASH.hex(),
                "thread_id": THREAD.hex(),
                "epoch": epoch,
                "confirm": keys.confirm.hex(),
                "metadata": keys.metadata.hex(),
                "sender": keys.sender.hex(),
                "attachment": keys.attachment.hex(),
                "confirmation_tag": confirmation_tag(keys.confirm, CORE_HASH).hex(),
                "thread_info": b"Asiakas 7F3A".hex(),
                "thread_info_ct": seal_thread_info(keys.metadata, CORE_HASH, b"Asiakas 7F3A").hex(),
            }
        )
    recipient = KemKey.from_bytes(RECIPIENT)
    for kp in (KP_HASH, b""):
        info = wrap_info(THREAD, 7, CORE_HASH, DEVICE, kp)
        plaintext = secret_plaintext(7, SECRET)
        sealed = hpke_reference.seal(recipient.public, info, plaintext, ephemeral_ikm=EPHEMERAL_IKM)
        cases.append(
            {
                "name": "wrap-to-key-package" if kp else "wrap-to-certificate-key",
                "kind": "wrap",
                "thread_id": THREAD.hex(),
                "epoch": 7,
                "core_hash": CORE_HASH.hex(),
                "device_id": DEVICE.hex(),
                "kp_hash": kp.hex(),
                "info": info.hex(),
                "plaintext": plaintext.hex(),
                "recipient_private": RECIPIENT.hex(),
                "recipient_public": recipient.public.hex(),
                "ephemeral_ikm": EPHEMERAL_IKM.hex(),
                "sealed": sealed.hex(),
            }
        )
    info = history_info(THREAD, 3, OLD_COMMIT_HASH, DEVICE, KP_HASH, CORE_HASH)
    plaintext = secret_plaintext(3, SECRET)
    cases.append(
        {
            "name": "history-wrap",
            "kind": "history_wrap",
            "thread_id": THREAD.hex(),
            "old_epoch": 3,
            "old_commit_hash": OLD_COMMIT_HASH.hex(),
            "recipient": DEVICE.hex(),
            "kp_hash": KP_HASH.hex(),
            "admitting_core_hash": CORE_HASH.hex(),
            "info": info.hex(),
            "plaintext": plaintext.hex(),
            "recipient_private": RECIPIENT.hex(),
            "ephemeral_ikm": EPHEMERAL_IKM.hex(),
            "sealed": hpke_reference.seal(
                recipient.public, info, plaintext, ephemeral_ikm=EPHEMERAL_IKM
            ).hex(),
        }
    )
    wrong_epoch = hpke_reference.seal(
        recipient.public,
        wrap_info(THREAD, 7, CORE_HASH, DEVICE, KP_HASH),
        secret_plaintext(8, SECRET),
        ephemeral_ikm=EPHEMERAL_IKM,
    )
    cases.append(
        {
            "name": "wrap-naming-another-epoch",
            "kind": "wrap",
            "thread_id": THREAD.hex(),
            "epoch": 7,
            "core_hash": CORE_HASH.hex(),
            "device_id": DEVICE.hex(),
            "kp_hash": KP_HASH.hex(),
            "recipient_private": RECIPIENT.hex(),
            "sealed": wrong_epoch.hex(),
            "expected_error": "koppi.wrong_epoch",
        }
    )
    cases.append(
        {
            "name": "wrap-opened-with-another-core-hash",
            "kind": "wrap",
            "thread_id": THREAD.hex(),
            "epoch": 7,
            "core_hash": bytes(32).hex(),
            "device_id": DEVICE.hex(),
            "kp_hash": KP_HASH.hex(),
            "recipient_private": RECIPIENT.hex(),
            "sealed": cases[3]["sealed"],
            "expected_error": "koppi.auth_failed",
        }
    )
    return {
        "generated_by": "crypto/vectors/gen_schedule.py",
        "description": (
            "Commit cryptography step by step (docs/protocol.md §5.3, §5.7). epoch_keys: derive "
            "the four keys, the confirmation tag over core_hash, and the ThreadInfo ciphertext "
            "(zero nonce, core_hash as AAD). wrap / history_wrap: build `info`, open `sealed` "
            "with recipient_private (HPKE base, no AAD) and check it is `plaintext`; a sealer "
            "with a fixed ephemeral (DeriveKeyPair(ephemeral_ikm)) reproduces `sealed`. Negative "
            "wraps must be refused with `expected_error` when opened for the given epoch and "
            "core hash."
        ),
        "cases": cases,
    }


VECTORS = {"koppi-schedule.json": schedule_vectors}
