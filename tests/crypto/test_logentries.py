"""Log entries that are not signed structures: commit heads and web releases (protocol.md §4)."""

from __future__ import annotations

import pytest

from crypto.encoding import DecodeError, Encoder
from crypto.logentries import CommitHead, WebManifest, WebRelease
from crypto.primitives import sha256


def test_a_commit_head_round_trips_and_is_exactly_the_documented_encoding() -> None:
    head = CommitHead(bytes(range(16)), 7, bytes([9]) * 32)
    documented = (
        Encoder("koppi/v1/log-commit-head").bytes(bytes(range(16))).u64(7).bytes(bytes([9]) * 32)
    )
    assert head.encode() == documented.finish()
    assert CommitHead.decode(head.encode()) == head


def test_a_manifest_is_ordered_and_its_log_entry_holds_its_hash() -> None:
    a = WebManifest("1.0", {"b.js": sha256(b"b"), "a.js": sha256(b"a")})
    b = WebManifest("1.0", {"a.js": sha256(b"a"), "b.js": sha256(b"b")})
    assert a.encode() == b.encode()  # the order files were listed in does not matter
    assert WebManifest.decode(a.encode()) == b
    entry = WebRelease.decode(a.log_entry())
    assert entry == WebRelease("1.0", sha256(a.encode()))
    changed = WebManifest("1.0", {"a.js": sha256(b"A"), "b.js": sha256(b"b")})
    assert changed.log_entry() != a.log_entry()


@pytest.mark.parametrize(
    "data",
    [
        Encoder("koppi/v1/log-commit-head").bytes(bytes(15)).u64(1).bytes(bytes(32)).finish(),
        Encoder("koppi/v1/log-commit-head").bytes(bytes(16)).u64(1).bytes(bytes(31)).finish(),
        Encoder("koppi/v1/log-web-release").text("1").bytes(bytes(32)).finish(),  # wrong label
        CommitHead(bytes(16), 1, bytes(32)).encode() + b"\0",  # trailing byte
    ],
)
def test_malformed_commit_heads_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CommitHead.decode(data)


def test_a_malformed_manifest_is_refused() -> None:
    bad_file = Encoder("koppi/v1/web-manifest-file").text("a.js").bytes(bytes(31)).finish()
    with pytest.raises(DecodeError):
        WebManifest.decode(Encoder("koppi/v1/web-manifest").text("1").list([bad_file]).finish())
    with pytest.raises(DecodeError):
        WebRelease.decode(Encoder("koppi/v1/log-web-release").text("1").bytes(b"x").finish())
