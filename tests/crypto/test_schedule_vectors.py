"""`koppi-schedule.json`: the commit cryptography step by step (docs/protocol.md §5.3)."""

from __future__ import annotations

from typing import Any

import pytest

from crypto.commit import (
    confirmation_tag,
    history_info,
    open_secret,
    seal_thread_info,
    wrap_info,
)
from crypto.errors import KoppiError
from crypto.primitives import KemKey, hpke_open
from crypto.schedule import EpochKeys
from crypto.vectors import hpke_reference
from tests.crypto.vectors import ids, load, unhex

VECTORS = load("koppi-schedule.json")


@pytest.mark.parametrize("case", VECTORS.cases, ids=ids(VECTORS.cases))
def test_schedule_case(case: dict[str, Any]) -> None:
    if case["kind"] == "epoch_keys":
        core_hash = unhex(case["core_hash"])
        keys = EpochKeys.derive(
            unhex(case["epoch_secret"]), core_hash, unhex(case["thread_id"]), case["epoch"]
        )
        assert keys.confirm.hex() == case["confirm"]
        assert keys.metadata.hex() == case["metadata"]
        assert keys.sender.hex() == case["sender"]
        assert keys.attachment.hex() == case["attachment"]
        assert confirmation_tag(keys.confirm, core_hash).hex() == case["confirmation_tag"]
        ct = seal_thread_info(keys.metadata, core_hash, unhex(case["thread_info"]))
        assert ct.hex() == case["thread_info_ct"]
        return
    key = KemKey.from_bytes(unhex(case["recipient_private"]))
    if case["kind"] == "wrap":
        info = wrap_info(
            unhex(case["thread_id"]),
            case["epoch"],
            unhex(case["core_hash"]),
            unhex(case["device_id"]),
            unhex(case["kp_hash"]),
        )
        epoch = case["epoch"]
    else:
        info = history_info(
            unhex(case["thread_id"]),
            case["old_epoch"],
            unhex(case["old_commit_hash"]),
            unhex(case["recipient"]),
            unhex(case["kp_hash"]),
            unhex(case["admitting_core_hash"]),
        )
        epoch = case["old_epoch"]
    sealed = unhex(case["sealed"])
    if "expected_error" in case:
        with pytest.raises(KoppiError) as exc:
            open_secret(key, info, sealed, epoch)
        assert exc.value.code == case["expected_error"]
        return
    assert info.hex() == case["info"]
    # cryptography's HPKE opens what the fixed-ephemeral reference sealed, and the reference
    # reproduces the bytes.
    assert hpke_open(key, info, sealed).hex() == case["plaintext"]
    again = hpke_reference.seal(
        key.public, info, unhex(case["plaintext"]), ephemeral_ikm=unhex(case["ephemeral_ikm"])
    )
    assert again == sealed
    assert open_secret(key, info, sealed, epoch) == unhex(case["plaintext"])[-32:]
