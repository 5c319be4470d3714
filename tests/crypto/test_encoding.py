"""Strict decoding (docs/protocol.md §1): every malformed encoding is refused with koppi.decode."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.consent import CoveredOrganisation
from crypto.encoding import DecodeError, Decoder, Encoder
from crypto.errors import KoppiError
from crypto.message import StorageLabel
from tests.crypto.vectors import ids, load, unhex

LABEL = "koppi/v1/test"


def test_round_trip_of_every_field_kind() -> None:
    data = (
        Encoder(LABEL)
        .u8(1)
        .u16(2)
        .u32(3)
        .u64(2**64 - 1)
        .boolean(True)
        .bytes(b"xy")
        .text("äö")
        .list([b"b", b"a"])
        .finish()
    )
    dec = Decoder(data, LABEL)
    assert (dec.u8(), dec.u16(), dec.u32(), dec.u64()) == (1, 2, 3, 2**64 - 1)
    assert dec.boolean() is True
    assert dec.bytes() == b"xy"
    assert dec.text() == "äö"
    assert dec.list() == [b"a", b"b"]
    dec.finish()


def test_integers_are_big_endian_and_fields_length_prefixed() -> None:
    data = Encoder(LABEL).u64(258).bytes(b"\xff").finish()
    label = LABEL.encode()
    prefix = len(label).to_bytes(4, "big") + label
    assert data == prefix + bytes(6) + b"\x01\x02" + b"\0\0\0\x01\xff"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d + b"\0",  # trailing byte
        lambda d: d[:-1],  # truncated
    ],
    ids=["trailing", "truncated"],
)
def test_trailing_and_truncated_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    data = mutate(Encoder(LABEL).bytes(b"abc").finish())
    dec = Decoder(data, LABEL)
    with pytest.raises(DecodeError) as e:
        dec.bytes()
        dec.finish()
    assert e.value.code == "koppi.decode"


def test_wrong_label_is_refused() -> None:
    with pytest.raises(DecodeError):
        Decoder(Encoder("koppi/v1/other").finish(), LABEL)


def _raw_list(items: list[bytes]) -> bytes:
    label = LABEL.encode()
    out = len(label).to_bytes(4, "big") + label + len(items).to_bytes(4, "big")
    for i in items:
        out += len(i).to_bytes(4, "big") + i
    return out


@pytest.mark.parametrize("items", [[b"b", b"a"], [b"a", b"a"]], ids=["unsorted", "duplicate"])
def test_unsorted_or_duplicate_lists_are_refused(items: list[bytes]) -> None:
    with pytest.raises(DecodeError):
        Decoder(_raw_list(items), LABEL).list()


def test_encoder_refuses_duplicates_and_sorts() -> None:
    with pytest.raises(ValueError):
        Encoder(LABEL).list([b"a", b"a"])
    assert Encoder(LABEL).list([b"b", b"a"]).finish() == _raw_list([b"a", b"b"])


def test_boolean_other_than_zero_or_one_is_refused() -> None:
    with pytest.raises(DecodeError):
        Decoder(Encoder(LABEL).u8(2).finish(), LABEL).boolean()


def test_exact_length_fields() -> None:
    with pytest.raises(DecodeError):
        Decoder(Encoder(LABEL).bytes(bytes(31)).finish(), LABEL).bytes(length=32)


@given(st.lists(st.binary(max_size=40), unique=True, max_size=20), st.integers(0, 2**64 - 1))
def test_any_list_round_trips(items: list[bytes], n: int) -> None:
    dec = Decoder(Encoder(LABEL).u64(n).list(items).finish(), LABEL)
    assert dec.u64() == n
    assert dec.list() == sorted(items)
    dec.finish()


# --- koppi-encoding.json (the browser twin runs the same cases) --------------------------------

ENCODING = load("koppi-encoding.json")


@pytest.mark.parametrize("case", ENCODING.cases, ids=ids(ENCODING.cases))
def test_vector_case(case: dict[str, Any]) -> None:
    decode = {"storage-label": StorageLabel.decode, "consent-org": CoveredOrganisation.decode}
    data = unhex(case["bytes"])
    if "expected_error" in case:
        with pytest.raises(KoppiError) as exc:
            decode[case["structure"]](data)
        assert exc.value.code == case["expected_error"]
        return
    value = decode[case["structure"]](data)
    for name, want in case["expected"].items():
        got = getattr(value, name)
        if name == "organisations":
            got = sorted(o.hex() for o in got)
        assert got == want
    assert value.encode() == data  # canonical: decoding then encoding gives the same bytes
