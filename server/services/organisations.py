"""Devices and organisation keys, server side (issue: organisations).

A professional's browser enrols a device with its public keys (its private keys never leave it).
The organisation's admin compares the fingerprint, certifies the device with the organisation key
(client side: the server never holds an organisation key) and submits the certificate; the server
checks it against the organisation's keys in the transparency log and appends it there. Revocation
is the same path. Every action of an admin is refused for another organisation's devices and is
written to that organisation's audit trail.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from crypto.clock import Clock
from crypto.encoding import DecodeError, Encoder
from crypto.errors import AuthFailed, KoppiError
from crypto.identity import (
    ROLE_ORG_ADMIN,
    SUBJECT_DEVICE,
    SUBJECT_ORG_KEY,
    DeviceCert,
    DeviceLink,
    OrgCert,
    Revocation,
    RotationRequest,
)
from crypto.primitives import check_ed25519_public, check_x25519_public, ed25519_verify, sha256
from crypto.treehead import key_id
from crypto.trust import device_id_of
from server.db.tables import AuditEvent, Device
from server.errors import ApiError
from server.principal import Principal
from server.repositories.devices import DeviceRepository
from server.services.translog import TransparencyLog

FORBIDDEN = ApiError(
    403, "koppi.forbidden", "only an admin of the device's organisation may do that"
)
NO_DEVICE = ApiError(404, "koppi.unknown_device", "no such device")
CLOCK_SKEW_S = 300  # a certificate dated this far in the admin's future is still accepted
NO_LOG = ApiError(503, "koppi.log_unavailable", "this server runs without a transparency log")


def bad_certificate(why: str) -> ApiError:
    return ApiError(400, "koppi.bad_certificate", why)


@dataclass(frozen=True)
class _OrgKey:
    cert: OrgCert
    index: int
    retired_at: int | None


@dataclass(frozen=True)
class OrgKeyState:
    """What an admin console shows: the current key (certificate, log index) and the rotation
    request waiting for the operator, if any."""

    current: tuple[OrgCert, int] | None
    rotation_request: bytes | None


class OrganisationService:
    def __init__(
        self, devices: DeviceRepository, translog: TransparencyLog | None, clock: Clock
    ) -> None:
        self._devices, self._log, self._clock = devices, translog, clock
        # Called after a revocation is logged: the websocket layer cuts the device off and tells
        # the members of its threads, whose clients then commit its removal (a new epoch).
        self.on_revoked: Callable[[Device, int], Awaitable[None]] | None = None

    # --- professionals --------------------------------------------------------------------

    async def enrol(
        self, principal: Principal, signing_public: bytes, kem_public: bytes, label: str
    ) -> Device:
        try:
            check_ed25519_public(signing_public)
            check_x25519_public(kem_public)
        except KoppiError:
            raise ApiError(400, "koppi.weak_key", "a device key is malformed or weak") from None
        device_id = device_id_of(signing_public)
        if await self._devices.get(device_id) is not None:
            raise ApiError(409, "koppi.device_exists", "that device is already enrolled")
        device = Device(
            device_id=device_id,
            user_id=principal.user_id,
            org_id=principal.org_id,
            signing_public=signing_public,
            kem_public=kem_public,
            label=label,
            status="pending",
            cert_log_index=None,
            revocation_log_index=None,
            created_at=self._clock.now_ms(),
        )
        await self._devices.add(device)
        await self._devices.audit(
            principal.org_id,
            principal.user_id,
            "device.enrolled",
            device_id.hex(),
            self._clock.now_ms(),
        )
        return device

    async def device(self, principal: Principal, device_id: bytes) -> Device:
        """A device as its owner or its organisation's admin sees it."""
        device = await self._devices.get(device_id)
        if device is None:
            raise NO_DEVICE
        if device.user_id != principal.user_id and not self._admin_of(principal, device.org_id):
            raise NO_DEVICE  # another organisation's devices do not exist for this caller
        return device

    async def devices_of_members(self, members: Iterable[uuid.UUID]) -> list[Device]:
        """The approved devices of a thread's members, as the server believes them: clients
        check every one against the log before they wrap a key to it (docs/protocol.md §5.4)."""
        return await self._devices.approved_of_users(members)

    async def link(self, principal: Principal, new_device_id: bytes, link_bytes: bytes) -> int:
        """One of the user's certified devices vouches for their new, certified device (outline
        §2): clients then admit it to the user's threads without a separate human approval."""
        try:
            link = DeviceLink.decode(link_bytes)
        except (DecodeError, KoppiError):
            raise bad_certificate("not a device link") from None
        new = await self._devices.get(new_device_id)
        existing = await self._devices.get(link.existing_device_id)
        if new is None or existing is None or new.user_id != principal.user_id:
            raise NO_DEVICE
        if (
            link.new_device_id != new_device_id
            or existing.user_id != principal.user_id
            or (link.user_id != principal.user_id.bytes)
        ):
            raise bad_certificate("a link joins two devices of the caller")
        if new.status != "approved" or existing.status != "approved":
            raise ApiError(409, "koppi.device_not_approved", "both devices must be certified")
        if self._log is None:
            raise NO_LOG
        ((_, _, cert_bytes),) = await self._log.entries(
            new.cert_log_index or 0, (new.cert_log_index or 0) + 1
        )
        if link.new_cert_hash != sha256(cert_bytes):
            raise bad_certificate("the link names another certificate of the new device")
        try:
            ed25519_verify(
                existing.signing_public,
                Encoder("koppi/v1/device-link-sig").bytes(link.core()).finish(),
                link.signature,
            )
        except AuthFailed:
            raise bad_certificate("the existing device's signature does not verify") from None
        index = await self._log.append("link", link_bytes)
        await self._devices.audit(
            new.org_id,
            principal.user_id,
            "device.linked",
            new_device_id.hex(),
            self._clock.now_ms(),
        )
        return index

    # --- organisation admins --------------------------------------------------------------

    @staticmethod
    def _admin_of(principal: Principal, org_id: uuid.UUID) -> bool:
        return ROLE_ORG_ADMIN in principal.roles and principal.org_id == org_id

    def _require_admin(self, principal: Principal, org_id: uuid.UUID) -> None:
        if not self._admin_of(principal, org_id):
            raise FORBIDDEN

    async def devices(self, admin: Principal, status: str | None) -> list[Device]:
        self._require_admin(admin, admin.org_id)
        return await self._devices.of_org(admin.org_id, status)

    async def audit_trail(self, admin: Principal) -> list[AuditEvent]:
        self._require_admin(admin, admin.org_id)
        return await self._devices.audit_trail(admin.org_id)

    async def _org_keys(self, org_id: uuid.UUID) -> dict[bytes, _OrgKey]:
        """The organisation's keys as the log has them, with their retirement index."""
        keys: dict[bytes, _OrgKey] = {}
        for index, entry in await self._devices.log_entries_of_kind("org"):
            cert = OrgCert.decode(entry)
            if cert.org_id != org_id.bytes:
                continue
            previous = keys.get(key_id(cert.prev_public)) if cert.prev_public else None
            if previous is not None and previous.retired_at is None:
                keys[key_id(cert.prev_public)] = _OrgKey(previous.cert, previous.index, index)
            keys[cert.key_id] = _OrgKey(cert, index, None)
        for index, entry in await self._devices.log_entries_of_kind("revocation"):
            rev = Revocation.decode(entry)
            old = keys.get(rev.subject)
            if rev.subject_kind == SUBJECT_ORG_KEY and old is not None and old.retired_at is None:
                keys[rev.subject] = _OrgKey(old.cert, old.index, index)
        return keys

    async def current_key(self, org_id: uuid.UUID) -> tuple[OrgCert, int] | None:
        """The organisation's live key of the highest generation and its log index."""
        live = [k for k in (await self._org_keys(org_id)).values() if k.retired_at is None]
        if not live:
            return None
        newest = max(live, key=lambda k: k.cert.generation)
        return newest.cert, newest.index

    async def org_key(self, admin: Principal) -> OrgKeyState:
        self._require_admin(admin, admin.org_id)
        pending = await self._devices.rotation_request(admin.org_id)
        return OrgKeyState(
            await self.current_key(admin.org_id), None if pending is None else pending[0]
        )

    async def request_rotation(self, admin: Principal, request_bytes: bytes) -> None:
        """An admin's browser signed the next key's certificate with the current key; it waits
        for the operator's root signature (`koppi org rotate`). A newer request replaces it."""
        self._require_admin(admin, admin.org_id)
        await self.pending_rotation(admin.org_id, request_bytes)
        await self._devices.set_rotation_request(admin.org_id, request_bytes, admin.user_id)
        await self._devices.audit(
            admin.org_id, admin.user_id, "org.rotation_requested",
            RotationRequest.decode(request_bytes).cert.key_id.hex(), self._clock.now_ms(),
        )  # fmt: skip

    async def pending_rotation(
        self, org_id: uuid.UUID, request_bytes: bytes | None = None
    ) -> RotationRequest:
        """The stored (or given) request, checked against the current key in the log: a request
        for an old generation (a replay after a rotation) or by another key is refused."""
        if request_bytes is None:
            stored = await self._devices.rotation_request(org_id)
            if stored is None:
                raise ApiError(404, "koppi.no_rotation_request", "no rotation is waiting")
            request_bytes = stored[0]
        current = await self.current_key(org_id)
        if current is None:
            raise ApiError(409, "koppi.no_org_key", "the organisation has no current key")
        try:
            request = RotationRequest.decode(request_bytes)
            request.verify(current[0])
        except (DecodeError, KoppiError) as e:
            raise ApiError(
                400, "koppi.bad_rotation", f"not a rotation of the current key ({e.code})"
            ) from None
        return request

    async def rotation_logged(self, org_id: uuid.UUID, cert: OrgCert) -> None:
        """The operator logged the rotation: the request is done, the requester's trail says so."""
        stored = await self._devices.rotation_request(org_id)
        await self._devices.set_rotation_request(org_id, None, None)
        if stored is not None:
            await self._devices.audit(
                org_id, stored[1], "org.key_rotated", cert.key_id.hex(), self._clock.now_ms()
            )

    async def _live_key(self, org_id: uuid.UUID, kid: bytes) -> OrgCert:
        key = (await self._org_keys(org_id)).get(kid)
        if key is None or key.retired_at is not None:
            raise bad_certificate("not signed by a current key of this organisation in the log")
        return key.cert

    async def _admin_device(
        self, admin: Principal, device_id: bytes, status: str, refusal: str
    ) -> tuple[Device, TransparencyLog]:
        """The device an admin acts on: theirs to act on (deny by default), in `status`, with a
        log to record the act in."""
        device = await self._devices.get(device_id)
        if device is None:
            raise NO_DEVICE
        self._require_admin(admin, device.org_id)
        if self._log is None:
            raise NO_LOG
        if device.status != status:
            raise ApiError(409, refusal, f"the device is {device.status}")
        return device, self._log

    async def certify(self, admin: Principal, device_id: bytes, cert_bytes: bytes) -> int:
        """Check the admin's certificate for a pending device and append it to the log."""
        device, translog = await self._admin_device(
            admin, device_id, "pending", "koppi.device_not_pending"
        )
        try:
            cert = DeviceCert.decode(cert_bytes)
        except (DecodeError, KoppiError):
            raise bad_certificate("not a device certificate") from None
        if (cert.device_id, cert.org_id, cert.user_id, cert.signing_public, cert.kem_public) != (
            device.device_id,
            device.org_id.bytes,
            device.user_id.bytes,
            device.signing_public,
            device.kem_public,
        ):
            raise bad_certificate("the certificate is for other keys, another user or organisation")
        now = self._clock.now()
        if not (cert.not_before <= now + CLOCK_SKEW_S and now < cert.not_after):
            raise bad_certificate("the certificate is expired or not yet valid")
        org = await self._live_key(device.org_id, cert.org_key_id)
        try:
            ed25519_verify(
                org.org_public,
                Encoder("koppi/v1/device-cert-sig").bytes(cert.core()).finish(),
                cert.org_sig,
            )
        except AuthFailed:
            raise bad_certificate("the organisation key's signature does not verify") from None
        index = await translog.append("device", cert_bytes)
        await self._devices.set_status(device_id, "approved", cert_log_index=index)
        await self._devices.audit(
            device.org_id, admin.user_id, "device.approved", device_id.hex(), self._clock.now_ms()
        )
        return index

    async def revoke(self, admin: Principal, device_id: bytes, revocation_bytes: bytes) -> int:
        device, translog = await self._admin_device(
            admin, device_id, "approved", "koppi.device_not_approved"
        )
        try:
            rev = Revocation.decode(revocation_bytes)
        except (DecodeError, KoppiError):
            raise bad_certificate("not a revocation") from None
        if (rev.subject_kind, rev.subject, rev.org_id) != (
            SUBJECT_DEVICE,
            device_id,
            device.org_id.bytes,
        ):
            raise bad_certificate("the revocation names another device or organisation")
        org = await self._live_key(device.org_id, rev.signer_key_id)
        try:
            ed25519_verify(
                org.org_public,
                Encoder("koppi/v1/revocation-sig").bytes(rev.core()).finish(),
                rev.signature,
            )
        except AuthFailed:
            raise bad_certificate("the organisation key's signature does not verify") from None
        index = await translog.append("revocation", revocation_bytes)
        await self._devices.set_status(device_id, "revoked", revocation_log_index=index)
        if self.on_revoked is not None:
            await self.on_revoked(device, index)
        await self._devices.audit(
            device.org_id, admin.user_id, "device.revoked", device_id.hex(), self._clock.now_ms()
        )
        return index
