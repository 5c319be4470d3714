"""The Python client's sealed key file (docs/protocol.md §8)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import keyfile
from crypto.clock import SeededRng
from crypto.encoding import Encoder
from crypto.errors import AuthFailed, LocalProtocolError
from crypto.keyfile import (
    MEMLIMIT_MIN,
    MEMLIMIT_MODERATE,
    OPSLIMIT_MIN,
    OPSLIMIT_MODERATE,
    open_keyfile,
    read_header,
    seal_keyfile,
)
from tests.crypto.vectors import ids, load, unhex

FAST = {"opslimit": OPSLIMIT_MIN, "memlimit": MEMLIMIT_MIN}
SECRETS = {"device-sign": b"\x01" * 32, "device-kem": b"\x02" * 32, "epoch/7": b"\x03" * 32}
PASS = "correct horse battery staple"


def sealed(rng_seed: str = "kf") -> bytes:
    return seal_keyfile(SECRETS, PASS, SeededRng(rng_seed), **FAST)


def test_round_trip_returns_every_secret() -> None:
    opened = open_keyfile(sealed(), PASS)
    assert dict(opened) == SECRETS
    assert len(opened) == 3 and "device-kem" in opened


def test_empty_secret_map_round_trips() -> None:
    assert dict(open_keyfile(seal_keyfile({}, PASS, SeededRng("e"), **FAST), PASS)) == {}


def test_default_limits_are_at_least_moderate_and_recorded_in_the_file() -> None:
    blob = seal_keyfile({"k": b"v"}, PASS, SeededRng("slow"))
    header = read_header(blob)
    assert header.opslimit >= OPSLIMIT_MODERATE and header.memlimit >= MEMLIMIT_MODERATE
    assert dict(open_keyfile(blob, PASS)) == {"k": b"v"}


def test_header_layout_is_the_documented_one() -> None:
    blob = sealed()
    h = read_header(blob)
    assert (h.opslimit, h.memlimit, len(h.salt), len(h.nonce)) == (
        OPSLIMIT_MIN,
        MEMLIMIT_MIN,
        16,
        12,
    )
    expected_head = (
        Encoder("koppi/v1/keyfile")
        .u16(1)
        .text("argon2id")
        .u64(OPSLIMIT_MIN)
        .u64(MEMLIMIT_MIN)
        .bytes(h.salt)
        .bytes(h.nonce)
        .finish()
    )
    assert blob.startswith(expected_head)
    ct_len = (
        len(blob) - len(expected_head) - len(Encoder("koppi/v1/keyfile/ciphertext").finish()) - 4
    )
    assert ct_len > 16


def test_wrong_passphrase_is_auth_failed() -> None:
    with pytest.raises(AuthFailed) as err:
        open_keyfile(sealed(), PASS + "!")
    assert err.value.code == "koppi.auth_failed"


def test_text_passphrases_are_nfc_normalised() -> None:
    blob = seal_keyfile({"k": b"v"}, "s\u00e4l", SeededRng("nfc"), **FAST)  # precomposed a-umlaut
    assert dict(open_keyfile(blob, "sa\u0308l")) == {"k": b"v"}  # a + combining diaeresis
    assert dict(open_keyfile(blob, "säl".encode())) == {"k": b"v"}


def test_salt_and_nonce_come_from_the_injected_rng() -> None:
    assert sealed("a") == sealed("a")
    assert sealed("a") != sealed("b")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_auth_failed(data: st.DataObject) -> None:
    blob = bytearray(sealed())
    i = data.draw(st.integers(0, len(blob) - 1), label="index")
    blob[i] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(AuthFailed):
        open_keyfile(bytes(blob), PASS)


@pytest.mark.parametrize(
    "mutate",
    [lambda b: b[:-1], lambda b: b + b"\0", lambda b: b[:40], lambda b: b""],
    ids=["truncated", "trailing", "header-only", "empty"],
)
def test_truncation_and_trailing_bytes_are_auth_failed(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthFailed):
        open_keyfile(mutate(sealed()), PASS)


def test_header_swap_between_files_is_auth_failed() -> None:
    a, b = sealed("a"), sealed("b")
    head_len = (
        len(a)
        - len(a.split(b"koppi/v1/keyfile/ciphertext")[-1])
        - len(b"koppi/v1/keyfile/ciphertext")
        - 4
    )
    with pytest.raises(AuthFailed):
        open_keyfile(b[:head_len] + a[head_len:], PASS)


def test_planted_file_with_huge_limits_is_refused_before_any_work() -> None:
    blob = sealed()
    h = read_header(blob)
    huge = (
        Encoder("koppi/v1/keyfile")
        .u16(1)
        .text("argon2id")
        .u64(h.opslimit)
        .u64(keyfile.MEMLIMIT_CAP + 1)
        .bytes(h.salt)
        .bytes(h.nonce)
        .finish()
    )
    rest = blob[len(huge) :]
    with pytest.raises(AuthFailed):
        open_keyfile(huge + rest, PASS)


def test_reprs_name_secrets_but_never_show_them() -> None:
    opened = open_keyfile(sealed(), PASS)
    for text in (repr(opened), str(opened), f"{opened}"):
        assert "device-sign" in text
        for v in SECRETS.values():
            assert v.hex() not in text and repr(v) not in text
    assert PASS not in repr(read_header(sealed()))


def test_sealing_refuses_weak_or_absurd_parameters() -> None:
    with pytest.raises(LocalProtocolError):
        seal_keyfile(SECRETS, "", SeededRng("x"), **FAST)
    with pytest.raises(LocalProtocolError):
        seal_keyfile(SECRETS, PASS, SeededRng("x"), opslimit=0, memlimit=MEMLIMIT_MIN)
    with pytest.raises(LocalProtocolError):
        seal_keyfile(SECRETS, PASS, SeededRng("x"), opslimit=1, memlimit=keyfile.MEMLIMIT_CAP * 2)


KF = load("koppi-keyfile.json")


@pytest.mark.parametrize("case", KF.cases, ids=ids(KF.cases))
def test_keyfile_vectors(case: dict[str, Any]) -> None:
    blob, pw = unhex(case["file"]), unhex(case["passphrase"])
    if "expected_error" in case:
        with pytest.raises(AuthFailed) as err:
            open_keyfile(blob, pw)
        assert err.value.code == case["expected_error"]
    else:
        opened = open_keyfile(blob, pw)
        assert {k: v.hex() for k, v in opened.items()} == case["secrets"]


def test_salt_flip_vector_really_changes_the_salt() -> None:
    good, bad = (unhex(KF.cases[i]["file"]) for i in (0, 4))
    assert read_header(good).salt != read_header(bad).salt
    assert read_header(good).nonce == read_header(bad).nonce
