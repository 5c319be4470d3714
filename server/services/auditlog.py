"""Checkpoints of the audit trail in the transparency log.

The hash chain (`server/audit.py`) shows an event changed or removed in its middle; someone who
can write the database could still rewrite the whole chain after the change, or cut its end.
So the chain's head goes to the transparency log, which is signed and cosigned by the
organisations' witnesses: `koppi audit verify` then also checks the chain against the newest
checkpoint there.
"""

from __future__ import annotations

from crypto.logentries import AuditHead
from server.periodic import Periodic
from server.repositories.devices import DeviceRepository
from server.services.translog import TransparencyLog


class AuditCheckpoints:
    def __init__(
        self, trail: DeviceRepository, translog: TransparencyLog, *, interval_s: float
    ) -> None:
        self._trail, self._log = trail, translog
        self._last: AuditHead | None = None
        self._timer = Periodic("audit-checkpoints", self.checkpoint, interval_s)

    async def checkpoint(self) -> int | None:
        """Log the chain's head if it moved since the last checkpoint; the log index, or None."""
        head = await self._trail.audit_head()
        if head is None:
            return None
        current = AuditHead(*head)
        if current == self._last:
            return None
        index = await self._log.append("audit-head", current.encode())
        self._last = current
        return index

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        """Stop the timer and take a last checkpoint, so a clean shutdown leaves none unlogged."""
        await self._timer.stop()
        await self.checkpoint()
