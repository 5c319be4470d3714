"""Export to an organisation's own records (issue: storage rights), the record system's side.

The server hands the record system the thread's commits and the messages whose storage label
names its organisation (`GET /api/threads/{id}/export`, each page a disclosure it records). This
module decrypts them as a member device of the thread would: it follows the transparency log into
a `TrustStore`, verifies the thread's chain from genesis (`ThreadState.join`), opens each message
(signature, epoch, label covered by the consent in force) and then checks what the server cannot
be trusted with: that the sealed label is the one the server filtered on, and that it names this
organisation. A message that fails is not exported but listed as refused, with the reason, so
nothing is dropped silently.

Resuming after a sequence number (`after`) still verifies the whole chain: the commits before it
come from `GET /api/threads/{id}/commits`, which discloses nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from client.transport import b64u, unb64u
from client.trust import LogFollower
from crypto.clock import Clock
from crypto.commit import Genesis
from crypto.errors import KoppiError, LocalProtocolError
from crypto.group import ThreadState
from crypto.identity import DeviceSecrets
from crypto.message import OpenedMessage

GetJson = Callable[[str], Awaitable[Any]]
PAGE = 500
FORMAT = "koppi-export/1"


class ExportError(LocalProtocolError):
    """The export cannot run: the token is of another organisation, or this device is not in
    the thread's roster."""

    default_code = "koppi.export"


@dataclass(frozen=True)
class ExportedMessage:
    seq: int
    id: str  # base64url, as the wire protocol writes it
    epoch: int
    sent_at_ms: int  # the sender's clock, signed in the header
    sequenced_at_ms: int  # the server's clock when it stored the message
    sender_device: str  # base64url
    sender_user: str  # UUID
    sender_org: str  # UUID
    label_orgs: list[str]  # UUIDs, as sealed
    label_basis: str
    retention_days: int  # 0: no hint
    content_type: str
    text: str | None  # the content, for text/* content types
    body_b64u: str | None  # the content, for any other type

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "epoch": self.epoch,
            "sent_at_ms": self.sent_at_ms,
            "sequenced_at_ms": self.sequenced_at_ms,
            "sender": {"device": self.sender_device, "user": self.sender_user,
                       "organisation": self.sender_org},
            "label": {"organisations": self.label_orgs, "basis": self.label_basis,
                      "retention_days": self.retention_days},
            "content_type": self.content_type,
            "text": self.text,
            "body": self.body_b64u,
        }  # fmt: skip


@dataclass(frozen=True)
class RefusedMessage:
    seq: int
    id: str
    code: str
    reason: str


@dataclass
class ThreadExport:
    thread: uuid.UUID
    organisation: uuid.UUID
    client_ref: str
    purpose: str
    after: int
    exported_at_ms: int
    next_after: int  # pass as `after` next time to take only what is new
    disclosures: list[int] = field(default_factory=list)
    messages: list[ExportedMessage] = field(default_factory=list)
    refused: list[RefusedMessage] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "thread": str(self.thread),
            "organisation": str(self.organisation),
            "client_ref": self.client_ref,
            "purpose": self.purpose,
            "after": self.after,
            "next_after": self.next_after,
            "exported_at_ms": self.exported_at_ms,
            "disclosures": self.disclosures,
            "messages": [m.to_json() for m in self.messages],
            "refused": [vars(r) for r in self.refused],
        }


class Exporter:
    """One record-system device exporting what its organisation may store."""

    def __init__(
        self, get: GetJson, device: DeviceSecrets, follower: LogFollower, clock: Clock
    ) -> None:
        self._get, self._device, self._follower, self._clock = get, device, follower, clock

    async def export(self, thread: uuid.UUID, org: uuid.UUID, after: int = 0) -> ThreadExport:
        me = await self._get("/api/me")
        if me.get("org") != str(org):
            raise ExportError(
                f"this token is of organisation {me.get('org')}, not {org}", code="koppi.forbidden"
            )
        await self._follower.follow(self._get)
        trust = self._follower.trust
        info = await self._get(f"/api/threads/{thread}")
        if info.get("genesis") is None:
            raise ExportError("the thread has no epoch yet: nothing to export")
        genesis = Genesis.decode(unb64u(info["genesis"]))
        if genesis.thread_id != thread.bytes:
            raise ExportError("the server sent another thread's genesis", code="koppi.bad_genesis")

        # Join before asking for content: a device outside the roster gets none, and leaves
        # no disclosure record behind.
        commits = await self._pages(f"/api/threads/{thread}/commits", 0)
        chain = [(unb64u(e["body"]), e["seq"]) for e in commits]
        try:
            state = ThreadState.join(genesis, self._device, chain, trust)
        except KoppiError as err:
            raise ExportError(
                f"this device cannot read the thread ({err.code}: {err}); a member must add it"
                " to the thread's roster",
                code=err.code,
            ) from None
        applied = {e["seq"] for e in commits}
        out = ThreadExport(thread, org, info["client_ref"], info["purpose"], after,
                           self._clock.now_ms(), max(applied | {after}))  # fmt: skip
        for page in await self._export_pages(thread, after, out):
            for e in page:
                out.next_after = max(out.next_after, e["seq"])
                if e["kind"] == "commit":
                    if e["seq"] not in applied:  # sequenced since the join
                        state.apply(unb64u(e["body"]), e["seq"], trust, live=False)
                        applied.add(e["seq"])
                    continue
                try:
                    opened = state.decrypt(unb64u(e["body"]), e["seq"])
                    self._check(opened, e, org)
                except KoppiError as err:
                    out.refused.append(RefusedMessage(e["seq"], e["id"], err.code, str(err)))
                    continue
                out.messages.append(_exported(opened, e))
        return out

    @staticmethod
    def _check(opened: OpenedMessage, envelope: dict[str, Any], org: uuid.UUID) -> None:
        """What a receiving record system refuses beyond `ThreadState.decrypt`'s rules."""
        label = opened.label
        sealed = sorted(str(uuid.UUID(bytes=o)) for o in label.organisations)
        served = envelope["label"]
        if sealed != sorted(served["orgs"]) or label.basis != served["basis"]:
            raise ExportError(
                "the sealed storage label differs from the one the server filtered on",
                code="koppi.label_mismatch",
            )
        if org.bytes not in label.organisations:
            raise ExportError(
                "the storage label does not let this organisation store the message",
                code="koppi.label_not_covered",
            )
        if b64u(opened.header.message_id) != envelope["id"]:
            raise ExportError("the envelope's id is not the sealed message id",
                              code="koppi.label_mismatch")  # fmt: skip

    async def _pages(self, path: str, after: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = (await self._get(f"{path}?after={after}&limit={PAGE}"))["envelopes"]
            out.extend(page)
            if len(page) < PAGE:
                return out
            after = page[-1]["seq"]

    async def _export_pages(
        self, thread: uuid.UUID, after: int, out: ThreadExport
    ) -> list[list[dict[str, Any]]]:
        """Every export page after `after`; each page with messages is one disclosure."""
        pages = []
        while True:
            page = await self._get(f"/api/threads/{thread}/export?after={after}&limit={PAGE}")
            envelopes = page["envelopes"]
            pages.append(envelopes)
            if page["disclosure"] is not None:
                out.disclosures.append(page["disclosure"])
            if len(envelopes) < PAGE:
                return pages
            after = envelopes[-1]["seq"]


def _exported(opened: OpenedMessage, envelope: dict[str, Any]) -> ExportedMessage:
    header, sender = opened.header, opened.sender
    text: str | None = None
    body: str | None = None
    if opened.content_type.startswith("text/"):
        text = opened.body.decode("utf-8", errors="replace")
    else:
        body = b64u(opened.body)
    return ExportedMessage(
        seq=envelope["seq"],
        id=b64u(header.message_id),
        epoch=header.epoch,
        sent_at_ms=header.timestamp_ms,
        sequenced_at_ms=envelope["ts"],
        sender_device=b64u(sender.device_id),
        sender_user=str(uuid.UUID(bytes=sender.user_id)),
        sender_org=str(uuid.UUID(bytes=sender.org_id)),
        label_orgs=[str(uuid.UUID(bytes=o)) for o in sorted(header.label.organisations)],
        label_basis=header.label.basis,
        retention_days=header.label.retention_days,
        content_type=opened.content_type,
        text=text,
        body_b64u=body,
    )
