"""A member device taking part in case-conference threads from Python: open a thread's first
epoch, add devices, send and receive messages (the browser app does the same in web/static).

It wraps keys only to devices the log proves (`client.trust.resolve_members`: a ghost device the
server lists is refused with the reason) and cites the client's consent in force as evidence.
The device keys come from the caller (a `client.keystore.KeyStore`); a caller that must survive a
restart keeps `ThreadState.snapshot()` there after every send and commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from client.transport import Http, ServerRefused, Socket, b64u, unb64u
from client.trust import LogFollower, resolve_members
from crypto.clock import Clock, Rng
from crypto.commit import Genesis
from crypto.errors import LocalProtocolError
from crypto.group import CommitEvent, Member, ThreadState
from crypto.identity import DeviceSecrets
from crypto.message import OpenedMessage, StorageLabel

MESSAGE_ID_LEN = 16


class NotAdmissible(LocalProtocolError):
    """A device asked for is not one the log proves (or waits for a person's approval)."""

    default_code = "koppi.unknown_device"


@dataclass(frozen=True)
class Received:
    seq: int
    message: OpenedMessage


class Participant:
    """One device of one professional (or an organisation's keeper), over one websocket."""

    def __init__(
        self, http: Http, device: DeviceSecrets, follower: LogFollower, rng: Rng, clock: Clock
    ) -> None:
        self.http, self.device, self.follower = http, device, follower
        self._rng, self._clock = rng, clock
        self.threads: dict[uuid.UUID, ThreadState] = {}
        self.inbox: list[Received] = []  # messages delivered and opened, not yet taken
        self._socket: Socket | None = None

    @property
    def socket(self) -> Socket:
        if self._socket is None:
            raise LocalProtocolError("connect() first")
        return self._socket

    async def connect(self) -> Socket:
        self._socket = await self.http.websocket(device=self.device.device_id)
        return self._socket

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
            self._socket = None

    async def start(
        self, thread: uuid.UUID, *, evidence: bytes, devices: Iterable[bytes] = ()
    ) -> ThreadState:
        """Open the thread's epoch 0 with this device and `devices`, under the consent whose
        core hash is `evidence` (recorded beforehand, `POST /api/threads/{id}/consents`)."""
        info = await self.http.get(f"/api/threads/{thread}")
        genesis = Genesis(thread.bytes, bytes.fromhex(info["client_ref"]), info["purpose"],
                          "by-consent", self.device.device_id, self._clock.now())  # fmt: skip
        state = ThreadState(genesis, self.device)
        await self.follower.follow(self.http.get)
        members = await self._admissible(thread, state, [self.device.device_id, *devices])
        data = state.propose(self.follower.trust, self._rng, self._clock, add=members,
                             evidence=evidence)  # fmt: skip
        seq = await self.socket.commit(thread, data, genesis.encode())
        state.apply(data, seq, self.follower.trust)
        self.threads[thread] = state
        return state

    async def join(self, thread: uuid.UUID) -> ThreadState:
        """The welcome path: verify the thread's chain from genesis and take this device's
        secrets from it (`GET /api/threads/{id}/commits`)."""
        await self.follower.follow(self.http.get)
        info = await self.http.get(f"/api/threads/{thread}")
        genesis = Genesis.decode(unb64u(info["genesis"]))
        commits: list[tuple[bytes, int]] = []
        after = 0
        while True:
            page = (await self.http.get(f"/api/threads/{thread}/commits?after={after}"))[
                "envelopes"
            ]
            commits.extend((unb64u(e["body"]), e["seq"]) for e in page)
            if not page:
                break
            after = page[-1]["seq"]
        state = ThreadState.join(genesis, self.device, commits, self.follower.trust)
        self.threads[thread] = state
        return state

    async def add(
        self, thread: uuid.UUID, devices: Sequence[bytes], *, approved_orgs: Iterable[bytes] = ()
    ) -> CommitEvent:
        """Commit a new epoch that adds `devices` (history by the consent in force)."""
        state = self.threads[thread]
        await self.follower.follow(self.http.get)
        members = await self._admissible(thread, state, devices, approved_orgs)
        data = state.propose(self.follower.trust, self._rng, self._clock, add=members)
        seq = await self.socket.commit(thread, data)
        return state.apply(data, seq, self.follower.trust)

    async def send(
        self, thread: uuid.UUID, text: str, orgs: Iterable[uuid.UUID], basis: str = "consent"
    ) -> int:
        """Seal `text` with the storage label (`orgs` may store it, on `basis`); returns seq."""
        message_id = self._rng.random_bytes(MESSAGE_ID_LEN)
        try:
            return await self._send(thread, text, orgs, basis, message_id)
        except ServerRefused as e:
            if e.code != "koppi.stale_epoch":
                raise
            # A commit was sequenced between catching up and sending: once more, same id.
            return await self._send(thread, text, orgs, basis, message_id)

    async def _send(
        self,
        thread: uuid.UUID,
        text: str,
        orgs: Iterable[uuid.UUID],
        basis: str,
        message_id: bytes,
    ) -> int:
        await self.catch_up(thread)
        state = self.threads[thread]
        epoch = state.epoch
        if epoch is None:
            raise LocalProtocolError("the thread has no epoch yet")
        chosen = sorted({o.bytes for o in orgs})
        body = state.encrypt(
            text.encode(),
            label=StorageLabel(frozenset(chosen), basis),
            trust=self.follower.trust,
            rng=self._rng,
            clock=self._clock,
            message_id=message_id,
        )
        label = {"orgs": [str(uuid.UUID(bytes=o)) for o in chosen], "basis": basis}
        return await self.socket.send(thread, message_id=message_id, epoch=epoch,
                                      sender=self.device.device_id, label=label,
                                      body=body)  # fmt: skip

    async def receive(self, timeout: float = 5.0) -> Received:
        """The next message delivered to this device (commits on the way are applied)."""
        while not self.inbox:
            await self._take(await self.socket.next_event(timeout))
        return self.inbox.pop(0)

    async def catch_up(self, thread: uuid.UUID, timeout: float = 5.0) -> None:
        """Apply every commit the server has sequenced for the thread. A message sealed on an
        older epoch after a newer commit is refused by every receiver (`koppi.stale_epoch`), so
        `send` catches up first; messages met on the way wait in `inbox`."""
        head = (await self.http.get(f"/api/threads/{thread}"))["epoch"]
        state = self.threads[thread]
        while head is not None and (state.epoch is None or state.epoch < head):
            await self._take(await self.socket.next_event(timeout))

    async def _take(self, frame: dict[str, Any]) -> None:
        if frame["type"] != "deliver":
            return
        state = self.threads.get(uuid.UUID(frame["thread"]))
        if state is None:
            return
        body, seq = unb64u(frame["body"]), frame["seq"]
        if frame["kind"] == "message":
            self.inbox.append(Received(seq, state.decrypt(body, seq)))
        elif state.epoch is None or seq > state.chain.records[-1].seq:  # ours is applied
            state.apply(body, seq, self.follower.trust)

    async def _admissible(
        self,
        thread: uuid.UUID,
        state: ThreadState,
        devices: Iterable[bytes],
        approved_orgs: Iterable[bytes] = (),
    ) -> list[Member]:
        listed = (await self.http.get(f"/api/threads/{thread}/devices"))["devices"]
        cur = state.chain.current
        roster = list(cur.roster) if cur is not None else []
        found = resolve_members(listed, self.follower, roster=roster, approved_orgs=approved_orgs)
        by_id = {m.device.device_id: m for m in found.members}
        out = []
        for device_id in devices:
            if device_id in by_id:
                out.append(by_id[device_id])
                continue
            why = found.refused.get(device_id) or found.needs_approval.get(device_id)
            raise NotAdmissible(
                f"device {b64u(device_id)} is not admissible: {why or 'not listed for the thread'}"
            )
        return out
