"""The one binary encoding of everything Koppi hashes, signs or MACs (docs/protocol.md §1).

An encoding is a sequence of fields in a fixed order, the first always an ASCII domain label:

- integers: fixed-width, big-endian (`u8`, `u16`, `u32`, `u64`);
- byte strings and text: a u32 length, then the bytes (text is UTF-8);
- lists: a u32 count, then each item as a byte string; items strictly ascending bytewise, so a list
  is sorted and holds no duplicates;
- booleans: one byte, 0 or 1.

Decoding is strict: a wrong label, a short read, a length over its bound, an unsorted or duplicate
list, a boolean other than 0/1 or any trailing byte raises `DecodeError`. There is no JSON
canonicalisation anywhere on the crypto path.

    >>> enc = Encoder("koppi/v1/example").u64(7).bytes(b"ab")
    >>> dec = Decoder(enc.finish(), "koppi/v1/example")
    >>> (dec.u64(), dec.bytes(), dec.finish())
    (7, b'ab', None)
"""

from __future__ import annotations

import builtins
import functools
import itertools
from collections.abc import Iterable, Sequence
from typing import Self

from crypto.errors import RemoteProtocolError
from crypto.primitives import sha256

MAX_FIELD = 16 * 1024 * 1024  # no single field of a valid encoding is larger than 16 MiB
MAX_ITEMS = 100_000


class DecodeError(RemoteProtocolError):
    """Bytes that are not a valid encoding of what was expected."""

    default_code = "koppi.decode"


class Encoder:
    """Builds an encoding field by field; `finish()` returns the bytes."""

    __slots__ = ("_parts",)

    def __init__(self, label: str) -> None:
        self._parts: builtins.list[builtins.bytes] = [_label_field(label)]

    def u8(self, value: int) -> Self:
        return self._int(value, 1)

    def u16(self, value: int) -> Self:
        return self._int(value, 2)

    def u32(self, value: int) -> Self:
        return self._int(value, 4)

    def u64(self, value: int) -> Self:
        return self._int(value, 8)

    def boolean(self, value: bool) -> Self:
        return self.u8(1 if value else 0)

    def bytes(self, value: builtins.bytes) -> Self:
        n = len(value)
        if n > MAX_FIELD:
            raise ValueError("field too large to encode")
        self._parts.append(n.to_bytes(4, "big"))
        self._parts.append(value if type(value) is builtins.bytes else builtins.bytes(value))
        return self

    def text(self, value: str) -> Self:
        return self.bytes(value.encode("utf-8"))

    def list(self, items: Iterable[builtins.bytes]) -> Self:
        """Append a list; the caller's order does not matter, duplicates are a bug."""
        ordered = sorted(bytes(i) for i in items)
        for a, b in itertools.pairwise(ordered):
            if a == b:
                raise ValueError("duplicate list entry")
        self.u32(len(ordered))
        for item in ordered:
            self.bytes(item)
        return self

    def raw(self, value: builtins.bytes) -> Self:
        """Append bytes that are already a complete encoding (a nested structure's own fields)."""
        self._parts.append(bytes(value))
        return self

    def finish(self) -> builtins.bytes:
        return b"".join(self._parts)

    def _int(self, value: int, width: int) -> Self:
        if value < 0 or value >= 1 << (8 * width):
            raise ValueError(f"integer out of range for u{8 * width}")
        self._parts.append(value.to_bytes(width, "big"))
        return self


class Decoder:
    """Reads an encoding strictly, field by field; `finish()` rejects trailing bytes."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: builtins.bytes, label: str) -> None:
        # Plain bytes and slicing: decoding is on every receive path, so it stays lean.
        self._data = data if type(data) is builtins.bytes else builtins.bytes(data)
        self._end = len(self._data)
        self._pos = 0
        if self.bytes(max_len=256) != _label_bytes(label):
            raise DecodeError(f"expected an encoding labelled {label!r}")

    def u8(self) -> int:
        return self._int(1)

    def u16(self) -> int:
        return self._int(2)

    def u32(self) -> int:
        return self._int(4)

    def u64(self) -> int:
        return self._int(8)

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DecodeError("boolean must be 0 or 1")
        return value == 1

    def bytes(self, *, length: int | None = None, max_len: int = MAX_FIELD) -> builtins.bytes:
        pos = self._pos
        start = pos + 4
        if start > self._end:
            raise DecodeError("encoding ends early")
        n = int.from_bytes(self._data[pos:start], "big")
        if length is not None and n != length:
            raise DecodeError(f"expected a {length}-byte field, got {n}")
        if n > max_len:
            raise DecodeError("field longer than allowed")
        end = start + n
        if end > self._end:
            raise DecodeError("encoding ends early")
        self._pos = end
        return self._data[start:end]

    def text(self, *, max_len: int = 4096) -> str:
        raw = self.bytes(max_len=max_len)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("text field is not valid UTF-8") from None

    def list(
        self, *, max_items: int = MAX_ITEMS, item_max_len: int = MAX_FIELD
    ) -> builtins.list[builtins.bytes]:
        count = self.u32()
        if count > max_items:
            raise DecodeError("list has too many entries")
        items: builtins.list[builtins.bytes] = []
        for _ in range(count):
            item = self.bytes(max_len=item_max_len)
            if items and item <= items[-1]:
                raise DecodeError("list entries unsorted or duplicated")
            items.append(item)
        return items

    def remaining(self) -> int:
        return self._end - self._pos

    def finish(self) -> None:
        if self._pos != self._end:
            raise DecodeError("trailing bytes after the encoding")

    def _int(self, width: int) -> int:
        pos = self._pos
        end = pos + width
        if end > self._end:
            raise DecodeError("encoding ends early")
        self._pos = end
        return int.from_bytes(self._data[pos:end], "big")


@functools.lru_cache(maxsize=256)
def _label_field(label: str) -> bytes:
    """The label as an encoded `bytes` field (length prefix included), built once per label."""
    raw = _label_bytes(label)
    return len(raw).to_bytes(4, "big") + raw


@functools.lru_cache(maxsize=256)
def _label_bytes(label: str) -> bytes:
    if not label.isascii() or not label.startswith("koppi/"):
        raise ValueError("a domain label is ASCII and starts with 'koppi/'")
    return label.encode("ascii")


def hash_fields(label: str, *fields: bytes) -> bytes:
    """`H(label, f1, f2, ...)`: SHA-256 of the encoding of byte-string fields under `label`."""
    enc = Encoder(label)
    for f in fields:
        enc.bytes(f)
    return sha256(enc.finish())


def encode_list(label: str, items: Sequence[bytes]) -> bytes:
    return Encoder(label).list(items).finish()
