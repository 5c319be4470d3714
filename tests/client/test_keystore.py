"""The Python client's key store: keys made here, pins sealed with them, nothing replaced."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from client.keystore import KeyStore, KeyStoreError, Pins
from crypto.clock import FakeClock, SeededRng
from crypto.errors import AuthFailed, KoppiError
from crypto.keyfile import MEMLIMIT_MIN, OPSLIMIT_MIN
from crypto.primitives import SigningKey

RNG = SeededRng("keystore")
ROOT, LOG, WITNESS = (SigningKey.generate(RNG).public for _ in range(3))
PINS = Pins("https://koppi.example.fi", ROOT, LOG, (WITNESS,), 1)


def new_store(path: Path, pins: Pins = PINS) -> KeyStore:
    return KeyStore.create(path, "pass phrase", pins, RNG, opslimit=OPSLIMIT_MIN,
                           memlimit=MEMLIMIT_MIN)  # fmt: skip


def test_keys_pins_and_snapshots_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    store = new_store(path)
    assert path.stat().st_mode & 0o777 == 0o600
    thread = uuid.uuid4()
    store.put_snapshot(thread, b"snapshot bytes")
    store.save()
    again = KeyStore.open(path, "pass phrase", RNG)
    assert again.device().device_id == store.device().device_id
    assert again.pins() == PINS and again.snapshot(thread) == b"snapshot bytes"
    assert again.snapshot(uuid.uuid4()) is None
    assert "pass phrase" not in repr(again) and "device/signing" in repr(again)
    view = again.pins().log_view(FakeClock())
    assert view.config.quorum == 1 and view.config.log_public_key == LOG
    no_witness = Pins("https://k.example", ROOT, LOG)
    assert no_witness.log_view(FakeClock()).config.quorum == 0


def test_an_existing_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first = new_store(path).device().device_id
    with pytest.raises(KeyStoreError):
        new_store(path)
    assert KeyStore.open(path, "pass phrase", RNG).device().device_id == first


def test_a_wrong_passphrase_a_changed_byte_or_a_missing_file_open_nothing(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    new_store(path)
    with pytest.raises(AuthFailed):
        KeyStore.open(path, "wrong", RNG)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AuthFailed):
        KeyStore.open(path, "pass phrase", RNG)
    with pytest.raises(KeyStoreError):
        KeyStore.open(tmp_path / "absent.key", "pass phrase", RNG)


def test_bad_pins_are_refused_before_anything_is_made(tmp_path: Path) -> None:
    with pytest.raises(KoppiError):
        Pins("https://k.example", ROOT, b"\x00" * 31).log_view(FakeClock())
    with pytest.raises(KoppiError):
        Pins("https://k.example", ROOT, LOG, (WITNESS,), 2).log_view(FakeClock())
