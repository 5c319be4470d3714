"""Fan-out of committed envelopes to the connections subscribed to a thread.

`FanoutBus` hides whether one or many server processes run: `InProcessBus` serves one process; a
Redis implementation (same interface) serves several. A bus carries only what was already
committed, so a lost bus event costs latency, never data: a resuming client reads the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Delivery:
    """One committed envelope, as every member receives it."""

    thread_id: uuid.UUID
    seq: int
    msg_id: bytes
    epoch: int
    sender_device: bytes
    label: str
    body: bytes
    created_at: int
    kind: str = "message"  # or "commit"


class Subscription:
    """What the bus knows of one connection: its threads, and the callback that takes each
    committed delivery. The callback runs synchronously in the publisher's turn of the event
    loop, so a delivery reaches a live connection's outbox without any task switch."""

    __slots__ = ("deliver", "threads")

    def __init__(self, threads: frozenset[uuid.UUID], deliver: Callable[[Delivery], None]) -> None:
        self.threads = threads
        self.deliver = deliver

    def offer(self, delivery: Delivery) -> None:
        self.deliver(delivery)


class FanoutBus(Protocol):
    def subscribe(self, sub: Subscription) -> None: ...

    def unsubscribe(self, sub: Subscription) -> None: ...

    async def publish(self, deliveries: list[Delivery]) -> None: ...


class InProcessBus:
    def __init__(self) -> None:
        self._subs: dict[uuid.UUID, set[Subscription]] = {}

    def subscribe(self, sub: Subscription) -> None:
        for thread in sub.threads:
            self._subs.setdefault(thread, set()).add(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        for thread in sub.threads:
            subs = self._subs.get(thread)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[thread]

    async def publish(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            for sub in self._subs.get(d.thread_id, ()):
                sub.offer(d)
