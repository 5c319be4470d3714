"""One background job that runs every so often until stopped (tree heads, audit checkpoints,
the retention purge): a failed round is logged and retried next time, never fatal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class Periodic:
    def __init__(
        self, name: str, job: Callable[[], Awaitable[object]], interval_s: float, *,
        first_now: bool = False,
    ) -> None:  # fmt: skip
        self._name, self._job, self._interval, self._first_now = name, job, interval_s, first_now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"koppi-{self._name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if not self._first_now:
            await asyncio.sleep(self._interval)
        while True:
            try:
                await self._job()
            except Exception as e:  # retried next round
                log.error("periodic.failed", job=self._name, error=type(e).__name__)
            await asyncio.sleep(self._interval)
