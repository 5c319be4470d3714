"""Websocket frames (docs/protocol.md §11): JSON text frames, a tagged union on `type`.

Byte strings travel as unpadded base64url; thread and organisation ids as UUID strings. msgspec
validates shape and bounds; `decode_client_frame` turns every failure into a stable code.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Annotated

import msgspec

from server.errors import ApiError

PROTOCOL_VERSION = 1
BASIS_RE = r"^[a-z][a-z0-9-]{0,31}$"

B64 = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]*$", max_length=1_500_000)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class Label(msgspec.Struct, forbid_unknown_fields=True):
    """Storage label: the organisations that may store the content, and the basis code."""

    orgs: Annotated[list[uuid.UUID], msgspec.Meta(max_length=64)]
    basis: Annotated[str, msgspec.Meta(pattern=BASIS_RE)]

    def canonical(self) -> str:
        return msgspec.json.encode(
            {"basis": self.basis, "orgs": [str(o) for o in self.orgs]}
        ).decode()


# --- client -> server --------------------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", tag_field="type", forbid_unknown_fields=True):
    v: int
    resume: Annotated[dict[uuid.UUID, Seq], msgspec.Meta(max_length=10_000)] = {}
    device: Annotated[str, msgspec.Meta(max_length=64)] | None = None  # base64url device id


class Send(msgspec.Struct, tag="send", tag_field="type", forbid_unknown_fields=True):
    id: B64  # client message id, 16 bytes
    thread: uuid.UUID
    epoch: Seq
    sender: B64  # sender device id, 32 bytes
    label: Label
    body: B64


class CommitFrame(msgspec.Struct, tag="commit", tag_field="type", forbid_unknown_fields=True):
    id: B64  # client id of this commit, 16 bytes (a resend gets the same seq)
    thread: uuid.UUID
    body: B64  # the Commit encoding (docs/protocol.md §5.2)
    genesis: B64 | None = None  # the Genesis encoding, with the epoch-0 commit only


class Ping(msgspec.Struct, tag="ping", tag_field="type", forbid_unknown_fields=True):
    pass


ClientFrame = Hello | Send | CommitFrame | Ping

# --- server -> client --------------------------------------------------------------------------


class Ready(msgspec.Struct, tag="ready", tag_field="type"):
    v: int
    threads: dict[uuid.UUID, int]  # thread -> head seq at subscription time
    # The caller's threads it is not admitted to now, with the refusal code of the rule.
    refused: dict[uuid.UUID, str] = {}


class Ack(msgspec.Struct, tag="ack", tag_field="type"):
    id: str
    thread: uuid.UUID
    seq: int
    duplicate: bool


class Deliver(msgspec.Struct, tag="deliver", tag_field="type"):
    kind: str  # message | commit
    thread: uuid.UUID
    seq: int
    id: str
    epoch: int
    sender: str
    label: msgspec.Raw
    body: str
    ts: int


class Error(msgspec.Struct, tag="error", tag_field="type", omit_defaults=True):
    code: str
    message: str
    id: str | None = None


class DeviceRevoked(msgspec.Struct, tag="device_revoked", tag_field="type"):
    """A device of a member was revoked: members commit its removal before they send again."""

    device: str
    log_index: int


class Removed(msgspec.Struct, tag="removed", tag_field="type"):
    """This connection was cut off a thread: its consent no longer admits the member."""

    thread: uuid.UUID
    reason: str  # the refusal code (docs/protocol.md §6 admission rule)
    consent: str | None  # base64url consent id, if the thread has one


class Joined(msgspec.Struct, tag="joined", tag_field="type"):
    """This connection now receives a thread (its user joined it, or is admitted again)."""

    thread: uuid.UUID


class ConsentChanged(msgspec.Struct, tag="consent_changed", tag_field="type"):
    """A consent change cut `removed` members off: commit a new epoch without them."""

    thread: uuid.UUID
    removed: int


class Pong(msgspec.Struct, tag="pong", tag_field="type"):
    pass


_decoder = msgspec.json.Decoder(ClientFrame)
encoder = msgspec.json.Encoder()
_TAG_ERROR = re.compile(r"at `\$\.type`")


def decode_client_frame(data: str | bytes) -> ClientFrame:
    try:
        frame: ClientFrame = _decoder.decode(data)
        return frame
    except msgspec.ValidationError as e:
        text = str(e)
        if _TAG_ERROR.search(text) and "Invalid value" in text:
            raise ApiError(400, "koppi.frame_unknown_type", "unknown frame type") from None
        raise ApiError(400, "koppi.frame_invalid", f"invalid frame: {text}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "koppi.frame_malformed", "frame is not valid JSON") from None


def b64u_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64u_decode(text: str, *, field: str, length: int | None = None) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ApiError(400, "koppi.frame_invalid", f"{field}: not base64url") from None
    if b64u_encode(raw) != text:  # non-canonical trailing bits
        raise ApiError(400, "koppi.frame_invalid", f"{field}: not canonical base64url")
    if length is not None and len(raw) != length:
        raise ApiError(400, "koppi.frame_invalid", f"{field}: expected {length} bytes")
    return raw
