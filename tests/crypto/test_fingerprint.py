"""Device fingerprints and the PGP word list (docs/protocol.md §3, Fingerprints)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.errors import LocalProtocolError
from crypto.fingerprint import (
    FINGERPRINT_LABEL,
    fingerprint,
    fingerprint_hex,
    fingerprint_words,
    pgp_words,
)
from crypto.primitives import KemKey, SigningKey
from crypto.trust import device_id_of
from crypto.wordlist import EVEN_WORDS, ODD_WORDS, WORDLIST_SHA256
from tests.crypto.vectors import ids, load, unhex

ROOT = Path(__file__).resolve().parents[2]
JS_WORDLIST = ROOT / "web" / "static" / "protocol" / "wordlist.js"
VECTORS = load("koppi-fingerprint.json")
SIGNING = SigningKey.from_seed(bytes(range(32))).public
KEM = KemKey.from_bytes(bytes(range(32, 64))).public


@pytest.mark.parametrize("case", VECTORS.cases, ids=ids(VECTORS.cases))
def test_vector(case: dict[str, Any]) -> None:
    if case["kind"] == "words":
        assert pgp_words(unhex(case["bytes"])) == case["words"]
        return
    signing, kem = unhex(case["signing_public"]), unhex(case["kem_public"])
    if "expected_error" in case:
        with pytest.raises(LocalProtocolError) as err:
            fingerprint(signing, kem)
        assert err.value.code == case["expected_error"]
        return
    assert device_id_of(signing).hex() == case["device_id"]
    assert fingerprint(signing, kem).hex() == case["fingerprint"]
    assert fingerprint_hex(signing, kem) == case["hex"]
    assert fingerprint_words(signing, kem) == case["words"]


def test_the_vectors_cover_every_word_of_both_lists() -> None:
    (every,) = (c for c in VECTORS.cases if c["name"] == "every-word")
    assert set(every["words"]) == set(EVEN_WORDS) | set(ODD_WORDS)
    assert VECTORS.doc["wordlist_sha256"] == WORDLIST_SHA256


# --- the word list ------------------------------------------------------------------------------


def _digest(even: tuple[str, ...] | list[str], odd: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256("".join(w + "\n" for w in (*even, *odd)).encode()).hexdigest()


def test_the_word_list_is_the_pinned_one() -> None:
    assert _digest(EVEN_WORDS, ODD_WORDS) == WORDLIST_SHA256
    assert (EVEN_WORDS[0], EVEN_WORDS[255], ODD_WORDS[0], ODD_WORDS[255]) == (
        "aardvark",
        "Zulu",
        "adroitness",
        "Yucatan",
    )


def test_the_two_lists_are_256_distinct_ascii_words_each_and_never_share_a_word() -> None:
    assert len(EVEN_WORDS) == len(ODD_WORDS) == 256
    words = [w.lower() for w in EVEN_WORDS + ODD_WORDS]
    assert len(set(words)) == 512
    assert all(re.fullmatch(r"[A-Za-z]+", w) for w in EVEN_WORDS + ODD_WORDS)


def _js_list(text: str, name: str) -> list[str]:
    match = re.search(rf"export const {name} = words\(`([^`]*)`\);", text)
    assert match is not None, f"{name} not found in {JS_WORDLIST}"
    return match.group(1).split()


def test_the_browser_twin_holds_the_same_word_list() -> None:
    """web/static/protocol/wordlist.js is a copy of crypto/wordlist.py, checked word by word."""
    text = JS_WORDLIST.read_text(encoding="utf-8")
    even, odd = _js_list(text, "EVEN_WORDS"), _js_list(text, "ODD_WORDS")
    assert even == list(EVEN_WORDS)
    assert odd == list(ODD_WORDS)
    assert _digest(even, odd) == WORDLIST_SHA256


# --- the encoding -------------------------------------------------------------------------------


@given(st.binary(max_size=40))
def test_even_positions_read_two_syllable_words_and_odd_ones_three(data: bytes) -> None:
    words = pgp_words(data)
    assert len(words) == len(data)
    for i, (b, w) in enumerate(zip(data, words, strict=True)):
        assert w == (ODD_WORDS if i % 2 else EVEN_WORDS)[b]


@given(st.binary(min_size=2, max_size=16), st.data())
def test_a_swapped_or_dropped_word_shows(data: bytes, draw: st.DataObject) -> None:
    """A listener hears a word of the wrong kind when two neighbours swap or one is dropped."""
    words = pgp_words(data)
    i = draw.draw(st.integers(0, len(words) - 2))
    even, odd = set(EVEN_WORDS), set(ODD_WORDS)
    swapped = [*words[:i], words[i + 1], words[i], *words[i + 2 :]]
    dropped = words[:i] + words[i + 1 :]
    for said in (swapped, dropped):
        assert any(w not in (odd if j % 2 else even) for j, w in enumerate(said))


def test_the_fingerprint_is_the_labelled_hash_of_both_keys() -> None:
    from crypto.encoding import hash_fields

    fp = fingerprint(SIGNING, KEM)
    assert fp == hash_fields(FINGERPRINT_LABEL, SIGNING, KEM) and len(fp) == 32
    assert fingerprint_hex(SIGNING, KEM).replace(" ", "") == fp[:16].hex()
    assert re.fullmatch(r"[0-9a-f]{4}( [0-9a-f]{4}){7}", fingerprint_hex(SIGNING, KEM))
    assert fingerprint_words(SIGNING, KEM) == pgp_words(fp[:8])


def test_the_fingerprint_commits_to_the_kem_key_too() -> None:
    """Same signing key, so the same device id, but another KEM key: another fingerprint."""
    other_kem = KemKey.from_bytes(bytes(range(64, 96))).public
    assert fingerprint_words(SIGNING, KEM) != fingerprint_words(SIGNING, other_kem)
    assert fingerprint_hex(SIGNING, KEM) != fingerprint_hex(SIGNING, other_kem)
    assert fingerprint(SIGNING, KEM) != fingerprint(KEM, SIGNING)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
@pytest.mark.parametrize("which", ["signing_public", "kem_public"])
def test_a_key_of_the_wrong_length_is_refused_by_name(which: str, length: int) -> None:
    keys = {"signing_public": SIGNING, "kem_public": KEM, which: bytes(length)}
    for fn in (fingerprint, fingerprint_hex, fingerprint_words):
        with pytest.raises(LocalProtocolError, match=rf"{which} must be 32 bytes .*not {length}"):
            fn(keys["signing_public"], keys["kem_public"])


def test_a_device_id_is_not_a_fingerprint_input() -> None:
    """The fingerprint is over the keys; a caller holding only a device id gets a clear error."""
    with pytest.raises(LocalProtocolError, match="kem_public must be bytes, not NoneType"):
        fingerprint(device_id_of(SIGNING), None)  # type: ignore[arg-type]


def test_text_is_not_a_key() -> None:
    with pytest.raises(LocalProtocolError, match="signing_public must be bytes, not str"):
        fingerprint_words(SIGNING.hex(), KEM)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="PGP words encode bytes, not int"):
        pgp_words(8)  # type: ignore[arg-type]
    assert fingerprint(bytearray(SIGNING), bytearray(KEM)) == fingerprint(SIGNING, KEM)
