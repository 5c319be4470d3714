"""The consent registry (issue: consent): one signed record per version of a client's consent,
recorded once for a thread, visible to every participant, with its whole history.

The server checks what it can and must before it records a version: the recorder is one of the
caller's approved devices, certified (in the log) with the consent-recorder role; the signature
verifies; the consent is for the thread's client and purpose; and the version
extends the chain (never a rollback, nothing after a revocation; `crypto.consent.ConsentBook`,
the same rules every client applies). The record's hash then goes to the transparency log.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from crypto.clock import Clock
from crypto.consent import ConsentBook, ConsentRecord, verify_consent
from crypto.errors import AuthFailed, KoppiError
from crypto.identity import DeviceCert
from crypto.trust import VerifiedDevice
from server.consent_documents import Disclosure
from server.db.tables import ConsentVersion
from server.errors import ApiError
from server.principal import Principal
from server.repositories.accounts import AccountRepository
from server.repositories.consents import ConsentRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.services.admission import AdmissionService
from server.services.organisations import NO_LOG
from server.services.translog import TransparencyLog


class ConsentService:
    def __init__(
        self,
        consents: ConsentRepository,
        devices: DeviceRepository,
        threads: ThreadRepository,
        admission: AdmissionService,
        translog: TransparencyLog | None,
        clock: Clock,
        accounts: AccountRepository,
    ) -> None:
        self._consents, self._devices, self._threads = consents, devices, threads
        self._accounts = accounts
        self._admission, self._log, self._clock = admission, translog, clock
        self._lock = asyncio.Lock()  # one version at a time: the chain check and the append

    async def record(
        self, principal: Principal, thread_id: uuid.UUID, record_bytes: bytes
    ) -> tuple[ConsentRecord, int]:
        await self._admission.require_invited(principal, thread_id)
        if self._log is None:
            raise NO_LOG
        try:
            record = ConsentRecord.decode(record_bytes)
        except KoppiError as e:
            raise ApiError(400, "koppi.bad_consent", f"not a consent record ({e.code})") from None
        subject = await self._threads.subject(thread_id)
        if subject != (record.core.client_ref.hex(), record.core.purpose):
            raise ApiError(
                400, "koppi.consent_mismatch", "the consent is for another client or purpose"
            )
        recorder = await self._recorder(principal, record.core.recorder)
        try:
            verify_consent(record_bytes, recorder, tree_size=self._log.size)
        except AuthFailed:
            raise ApiError(400, "koppi.auth_failed", "the signature does not verify") from None
        except KoppiError as e:
            raise ApiError(403, e.code, e.message) from None
        async with self._lock:
            book = ConsentBook()
            earlier = await self._consents.versions(record.core.consent_id)
            try:
                book.accept_all(ConsentRecord.decode(r) for r in earlier)
                book.accept(record)
            except KoppiError as e:
                raise ApiError(409, e.code, e.message) from None
            current = (await self._admission.access(thread_id)).current
            _check_one_in_force(current, record, self._clock.now_ms() // 1000)
            index = await self._log.append("consent", record.log_entry(), record_bytes)
            await self._consents.add(
                ConsentVersion(
                    record_hash=record.record_hash,
                    consent_id=record.core.consent_id,
                    version=record.core.version,
                    thread_id=thread_id,
                    record=record_bytes,
                    log_index=index,
                    created_at=self._clock.now_ms(),
                )
            )
        core = record.core
        kind = (
            "revoked"
            if core.status == "revoked"
            else "given"
            if core.version == 1
            else "superseded"
        )
        await self._devices.audit(principal.org_id, principal.user_id, f"consent.{kind}",
                                  f"{thread_id} {core.consent_id.hex()}v{core.version}",
                                  self._clock.now_ms())  # fmt: skip
        await self._admission.changed(thread_id, principal.user_id)
        return record, index

    async def _recorder(self, principal: Principal, device_id: bytes) -> VerifiedDevice:
        """The recorder as its logged certificate describes it: one of the caller's approved
        devices (the log is the authority on its roles and keys)."""
        device = await self._devices.get(device_id)
        if device is None or device.user_id != principal.user_id or device.status != "approved":
            raise ApiError(403, "koppi.forbidden", "record it from one of your approved devices")
        assert self._log is not None and device.cert_log_index is not None
        ((_, _, entry),) = await self._log.entries(device.cert_log_index, device.cert_log_index + 1)
        return DeviceCert.decode(entry).as_verified(device.cert_log_index)

    async def of_thread(self, principal: Principal, thread_id: uuid.UUID) -> list[ConsentVersion]:
        await self._admission.require_invited(principal, thread_id)
        return await self._consents.of_thread(thread_id)

    async def documents(
        self, principal: Principal, thread_id: uuid.UUID, consent_id: bytes
    ) -> ConsentDocuments:
        """What the receipt and the FHIR export are rendered from: the consent's versions, the
        names of the organisations it names, and what each received while it covered them."""
        await self._admission.require_invited(principal, thread_id)
        rows = [v for v in await self._consents.of_thread(thread_id) if v.consent_id == consent_id]
        if not rows:
            raise ApiError(404, "koppi.unknown_consent", "no such consent in this thread")
        versions = [ConsentRecord.decode(v.record) for v in rows]
        named = {o.org_id for r in versions for o in r.core.organisations}
        names = await self._accounts.organisation_names(named)
        now_ms = self._clock.now_ms()
        received: dict[bytes, tuple[int, int | None, int | None]] = {}
        # Each version covered its organisations from when it was recorded until the next one,
        # within its validity (a revocation covers nobody).
        for row, record, nxt in zip(rows, versions, [*rows[1:], None], strict=True):
            core = record.core
            if core.status != "active":
                continue
            start = max(row.created_at, core.valid_from * 1000)
            end = min(now_ms + 1 if nxt is None else nxt.created_at, core.valid_until * 1000)
            if start >= end:
                continue
            count, first, last = await self._threads.message_span(thread_id, start, end)
            for org in core.covered:
                seen = received.get(org, (0, None, None))
                received[org] = (
                    seen[0] + count,
                    first if seen[1] is None else seen[1],
                    last if last is not None else seen[2],
                )
        stored: dict[bytes, set[str]] = {}  # what each organisation exported to its records
        for export in await self._threads.disclosures(thread_id):
            stored.setdefault(export.org_id.bytes, set()).update(export.msg_ids)
        disclosures = [
            Disclosure(
                org,
                n,
                None if a is None else a // 1000,
                None if b is None else b // 1000,
                stored=len(stored.get(org, ())),
            )
            for org, (n, a, b) in sorted(received.items())
        ]
        return ConsentDocuments(versions, names, disclosures, now_ms // 1000)


@dataclass(frozen=True)
class ConsentDocuments:
    versions: list[ConsentRecord]
    org_names: dict[bytes, str]
    disclosures: list[Disclosure]
    now: int


def _check_one_in_force(current: ConsentRecord | None, record: ConsentRecord, now_s: int) -> None:
    """One consent per client and purpose: a thread's consent changes by new versions; a new
    consent may start only when the current one is revoked or has ended."""
    if current is None:
        return
    if record.core.consent_id == current.core.consent_id:
        return
    if record.core.version > 1:
        raise ApiError(
            409, "koppi.consent_not_current", "only the thread's current consent takes versions"
        )
    ended = current.core.status == "revoked" or now_s >= current.core.valid_until
    if not ended:
        raise ApiError(
            409,
            "koppi.consent_exists",
            "the thread's consent is in force: record a new version of it instead",
        )
