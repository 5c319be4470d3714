"""The Python client's transport (docs/protocol.md §11): JSON over HTTP with a bearer token, and
the websocket's frames. Nothing here decides anything: the server's refusals come back as
`ServerRefused` with the server's code, and what arrives is verified by `crypto/` above it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp

from crypto.errors import KoppiError

REPLY_TIMEOUT_S = 30.0
# Frames a reader keeps for its caller before it stops reading (back-pressure, not loss).
EVENT_BACKLOG = 10_000


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ServerRefused(KoppiError):
    """The server answered with an error: its code (`koppi.*`), message and HTTP status (or None
    for a websocket `error` frame)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class Http:
    """One server, one bearer token (`POST /api/tokens`): what a record system scripts with."""

    def __init__(
        self, server: str, token: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> Http:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with Http(...)`")
        return self._session

    async def get(self, path: str) -> Any:
        async with self.session.get(self.server + path, headers=self._headers) as r:
            return await _json(r)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        async with self.session.post(self.server + path, json=body, headers=self._headers) as r:
            return await _json(r)

    async def websocket(
        self, *, device: bytes | None = None, resume: Mapping[uuid.UUID, int] | None = None
    ) -> Socket:
        """Connect, say hello (as `device`, if named) and wait for `ready`."""
        url = self.server.replace("http", "ws", 1) + "/ws"
        ws = await self.session.ws_connect(url, headers=self._headers)
        hello: dict[str, Any] = {
            "type": "hello",
            "v": 1,
            "resume": {str(t): s for t, s in (resume or {}).items()},
        }
        if device is not None:
            hello["device"] = b64u(device)
        await ws.send_json(hello)
        ready = await asyncio.wait_for(ws.receive_json(), REPLY_TIMEOUT_S)
        if ready.get("type") == "error":
            await ws.close()
            raise ServerRefused(ready["code"], ready["message"])
        return Socket(ws, ready)


async def _json(r: aiohttp.ClientResponse) -> Any:
    try:
        body = await r.json(content_type=None)
    except ValueError:
        body = None
    if r.status >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ServerRefused(
            error.get("code", "koppi.http_error"), error.get("message", r.reason or ""), r.status
        )
    return body


class Socket:
    """A connected websocket after `ready`. A reader task routes `ack` and `error` frames to the
    request that carried their id; everything else (deliveries, `removed`, `joined`, ...) waits
    in `events` for the caller, in the order the server sent it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, ready: dict[str, Any]) -> None:
        self.ws, self.ready = ws, ready
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_BACKLOG)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = msg.json()
                # A sender is delivered its own envelope too, with the same id: only the
                # reply answers the request.
                waiter = (
                    self._waiting.pop(frame.get("id", ""), None)
                    if frame.get("type") in ("ack", "error")
                    else None
                )
                if waiter is not None:
                    waiter.set_result(frame)
                else:
                    await self.events.put(frame)
        finally:
            closed = ServerRefused("koppi.connection_closed", "the websocket closed")
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(closed)
            self._waiting.clear()
            await self.events.put({"type": "closed", "code": self.ws.close_code})

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a frame with an `id` and return its `ack`; an `error` raises `ServerRefused`."""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[frame["id"]] = waiter
        await self.ws.send_json(frame)
        reply = await asyncio.wait_for(waiter, REPLY_TIMEOUT_S)
        if reply["type"] == "error":
            raise ServerRefused(reply["code"], reply["message"])
        return reply

    async def commit(self, thread: uuid.UUID, body: bytes, genesis: bytes | None = None) -> int:
        """Sequence a commit; returns its seq."""
        frame: dict[str, Any] = {"type": "commit", "id": b64u(uuid.uuid4().bytes),
                                 "thread": str(thread), "body": b64u(body)}  # fmt: skip
        if genesis is not None:
            frame["genesis"] = b64u(genesis)
        return int((await self.request(frame))["seq"])

    async def send(
        self,
        thread: uuid.UUID,
        *,
        message_id: bytes,
        epoch: int,
        sender: bytes,
        label: Mapping[str, Any],
        body: bytes,
    ) -> int:
        """Store and relay a sealed message; returns its seq."""
        frame = {"type": "send", "id": b64u(message_id), "thread": str(thread), "epoch": epoch,
                 "sender": b64u(sender), "label": dict(label), "body": b64u(body)}  # fmt: skip
        return int((await self.request(frame))["seq"])

    async def next_event(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        frame: dict[str, Any] = await asyncio.wait_for(self.events.get(), timeout)
        return frame

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
