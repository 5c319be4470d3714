"""Device enrolment, admin approval and revocation through the server (issue: organisations):
every admin action is allowed for the device's own organisation and refused for any other."""

from __future__ import annotations

import base64
from typing import Any

from structlog.testing import capture_logs

from crypto.clock import SeededRng
from crypto.fingerprint import fingerprint_hex, fingerprint_words
from crypto.identity import SUBJECT_DEVICE, DeviceCert, OrgCert, Revocation
from crypto.primitives import KemKey, SigningKey
from server.appkeys import TRANSLOG
from tests.server.conftest import Cast, without_logins

RNG = SeededRng("server-devices")
ROOT = SigningKey.generate(RNG)
KELA_KEY = SigningKey.generate(RNG)
STRANGER = SigningKey.generate(RNG)


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def call(
    cast: Cast, user: str, method: str, path: str, body: Any = None, status: int = 200
) -> Any:
    token = await cast.token(user)
    r = await cast.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status == status, await r.text()
    return await r.json()


async def admitted_kela(cast: Cast) -> OrgCert:
    cert = OrgCert.issue(
        root=ROOT,
        org_id=cast.org_a.bytes,
        name="Kela",
        business_id="0246246-0",
        org_public=KELA_KEY.public,
        issued_at=1,
    )
    await cast.app[TRANSLOG].append("org", cert.encode())
    return cert


async def enrol(cast: Cast, user: str = "alice") -> tuple[SigningKey, KemKey, dict[str, Any]]:
    signing, kem = SigningKey.generate(RNG), KemKey.generate(RNG)
    body = {
        "signing_public": b64u(signing.public),
        "kem_public": b64u(kem.public),
        "label": "laptop",
    }
    return signing, kem, await call(cast, user, "POST", "/api/devices", body, 201)


def certificate(
    cast: Cast, signing: SigningKey, kem: KemKey, key: SigningKey = KELA_KEY, **over: Any
) -> bytes:
    fields: dict[str, Any] = dict(
        org_id=cast.org_a.bytes,
        user_id=cast.users["alice"].bytes,
        signing_public=signing.public,
        kem_public=kem.public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    )
    fields.update(over)
    return DeviceCert.issue(key, **fields).encode()


async def test_enrol_approve_and_revoke_a_device(cast: Cast) -> None:
    await admitted_kela(cast)
    signing, kem, device = await enrol(cast)
    assert device["status"] == "pending"
    assert device["fingerprint"] == fingerprint_hex(signing.public, kem.public)
    assert device["fingerprint_words"] == fingerprint_words(signing.public, kem.public)
    assert len(device["fingerprint"].split()) == len(device["fingerprint_words"]) == 8
    path = f"/api/org/devices/{device['device_id']}"
    pending = await call(cast, "anna", "GET", "/api/org/devices?status=pending")
    assert [d["device_id"] for d in pending["devices"]] == [device["device_id"]]
    assert pending["devices"][0]["fingerprint_words"] == device["fingerprint_words"]
    approved = await call(
        cast,
        "anna",
        "POST",
        path + "/certificate",
        {"certificate": b64u(certificate(cast, signing, kem))},
    )
    translog = cast.app[TRANSLOG]
    (entry,) = await translog.entries(approved["log_index"], approved["log_index"] + 1)
    assert (
        entry[1] == "device"
        and DeviceCert.decode(entry[2]).device_id.hex()
        == base64.urlsafe_b64decode(device["device_id"] + "=").hex()
    )
    mine = await call(cast, "alice", "GET", f"/api/devices/{device['device_id']}")
    assert mine["status"] == "approved" and mine["cert_log_index"] == approved["log_index"]
    again = await call(
        cast,
        "anna",
        "POST",
        path + "/certificate",
        {"certificate": b64u(certificate(cast, signing, kem))},
        409,
    )
    assert again["error"]["code"] == "koppi.device_not_pending"
    rev = Revocation.issue(
        KELA_KEY,
        subject_kind=SUBJECT_DEVICE,
        org_id=cast.org_a.bytes,
        subject=base64.urlsafe_b64decode(device["device_id"] + "="),
        reason="lost",
        issued_at=2,
    )
    revoked = await call(
        cast, "anna", "POST", path + "/revocation", {"revocation": b64u(rev.encode())}
    )
    assert revoked["log_index"] == approved["log_index"] + 1
    trail = await call(cast, "anna", "GET", "/api/org/audit")
    assert [e["action"] for e in without_logins(trail["events"])] == [
        "device.enrolled",
        "device.approved",
        "device.revoked",
    ]
    assert without_logins((await call(cast, "bert", "GET", "/api/org/audit"))["events"]) == []


async def test_another_organisations_admin_and_non_admins_are_refused(cast: Cast) -> None:
    await admitted_kela(cast)
    signing, kem, device = await enrol(cast)
    path = f"/api/org/devices/{device['device_id']}/certificate"
    body = {"certificate": b64u(certificate(cast, signing, kem))}
    for user in ("bert", "alice", "mallory"):
        refused = await call(cast, user, "POST", path, body, 403)
        assert refused["error"]["code"] == "koppi.forbidden", user
    assert (await call(cast, "bert", "GET", "/api/org/devices"))["devices"] == []
    assert (await call(cast, "mallory", "GET", "/api/org/devices", status=403))["error"][
        "code"
    ] == "koppi.forbidden"
    hidden = await call(cast, "bob", "GET", f"/api/devices/{device['device_id']}", status=404)
    assert hidden["error"]["code"] == "koppi.unknown_device"
    await call(cast, "anna", "POST", path, body)  # and the right admin may


async def test_certificates_the_log_does_not_back_are_refused(cast: Cast) -> None:
    await admitted_kela(cast)
    signing, kem, device = await enrol(cast)
    path = f"/api/org/devices/{device['device_id']}/certificate"
    other = KemKey.generate(RNG)
    now = cast.clock.now()
    for cert in (
        certificate(cast, signing, kem, key=STRANGER),  # no such organisation key in the log
        certificate(cast, signing, kem, org_id=cast.org_b.bytes),  # for another organisation
        certificate(cast, signing, kem, not_after=now - 1),  # expired
        certificate(cast, signing, kem, not_before=now + 3600),  # not yet valid
        certificate(cast, signing, other),  # for other keys than enrolled
        certificate(cast, signing, kem, user_id=cast.users["mallory"].bytes),  # another user
        b"not a certificate",
    ):
        with capture_logs() as logs:
            refused = await call(cast, "anna", "POST", path, {"certificate": b64u(cert)}, 400)
        assert refused["error"]["code"] == "koppi.bad_certificate"
        (line,) = [e for e in logs if e["event"] == "http.refused"]  # on record, with its code
        assert line["code"] == "koppi.bad_certificate" and line["route"].endswith("/certificate")
        assert b64u(cert) not in repr(logs)  # never the body
    assert (await call(cast, "alice", "GET", f"/api/devices/{device['device_id']}"))[
        "status"
    ] == "pending"


async def test_weak_and_duplicate_enrolments_are_refused(cast: Cast) -> None:
    weak = {"signing_public": b64u(bytes(32)), "kem_public": b64u(bytes(32)), "label": "x"}
    assert (await call(cast, "alice", "POST", "/api/devices", weak, 400))["error"][
        "code"
    ] == "koppi.weak_key"
    signing, kem, _ = await enrol(cast)
    again = {"signing_public": b64u(signing.public), "kem_public": b64u(kem.public), "label": "x"}
    assert (await call(cast, "alice", "POST", "/api/devices", again, 409))["error"][
        "code"
    ] == "koppi.device_exists"


async def certified(cast: Cast, user: str = "alice") -> tuple[SigningKey, KemKey, dict[str, Any]]:
    signing, kem, device = await enrol(cast, user)
    cert = certificate(cast, signing, kem, user_id=cast.users[user].bytes)
    await call(
        cast,
        "anna",
        "POST",
        f"/api/org/devices/{device['device_id']}/certificate",
        {"certificate": b64u(cert)},
    )
    device["cert"] = cert
    return signing, kem, device


async def test_a_users_new_device_is_linked_from_an_existing_one(cast: Cast) -> None:
    from crypto.identity import DeviceLink

    await admitted_kela(cast)
    laptop_key, _, _ = await certified(cast)
    _, _, phone = await certified(cast)
    link = DeviceLink.issue(
        laptop_key,
        user_id=cast.users["alice"].bytes,
        new_cert=DeviceCert.decode(phone["cert"]),
        issued_at=3,
    )
    path = f"/api/devices/{phone['device_id']}/link"
    done = await call(cast, "alice", "POST", path, {"link": b64u(link.encode())})
    assert done["log_index"] > 0
    # Another user cannot link alice's devices, and a forged signature is refused.
    assert (await call(cast, "mallory", "POST", path, {"link": b64u(link.encode())}, 404))["error"][
        "code"
    ] == "koppi.unknown_device"
    forged = DeviceLink(
        link.user_id,
        link.existing_device_id,
        link.new_device_id,
        link.new_cert_hash,
        link.issued_at,
        bytes(64),
    )
    bad = await call(cast, "alice", "POST", path, {"link": b64u(forged.encode())}, 400)
    assert bad["error"]["code"] == "koppi.bad_certificate"
    trail = await call(cast, "anna", "GET", "/api/org/audit")
    assert "device.linked" in [e["action"] for e in trail["events"]]


async def test_a_suspended_organisations_key_certifies_nothing(cast: Cast) -> None:
    from crypto.identity import SUBJECT_ORG_KEY

    kela = await admitted_kela(cast)
    signing, kem, device = await enrol(cast)
    suspension = Revocation.issue(
        ROOT,
        subject_kind=SUBJECT_ORG_KEY,
        org_id=cast.org_a.bytes,
        subject=kela.key_id,
        reason="other",
        issued_at=5,
    )
    await cast.app[TRANSLOG].append("revocation", suspension.encode())
    refused = await call(
        cast,
        "anna",
        "POST",
        f"/api/org/devices/{device['device_id']}/certificate",
        {"certificate": b64u(certificate(cast, signing, kem))},
        400,
    )
    assert refused["error"]["code"] == "koppi.bad_certificate"


async def test_a_revoked_device_is_cut_off_at_once_and_members_are_told(cast: Cast) -> None:
    from aiohttp import WSMsgType

    await admitted_kela(cast)
    _, _, pending = await enrol(cast)
    _, _, device = await certified(cast)

    async def connect(user: str, device_id: str | None) -> Any:
        token = await cast.token(user)
        ws = await cast.client.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"})
        hello: dict[str, Any] = {"type": "hello", "v": 1}
        if device_id is not None:
            hello["device"] = device_id
        await ws.send_json(hello)
        return ws, await ws.receive_json()

    _, refused = await connect("alice", pending["device_id"])  # not approved yet
    assert refused["code"] == "koppi.device_not_approved"
    _, foreign = await connect("bob", device["device_id"])  # alice's device, not bob's
    assert foreign["code"] == "koppi.unknown_device"
    alice, ready = await connect("alice", device["device_id"])
    bob, _ = await connect("bob", None)
    assert ready["type"] == "ready"
    rev = Revocation.issue(
        KELA_KEY,
        subject_kind=SUBJECT_DEVICE,
        org_id=cast.org_a.bytes,
        subject=base64.urlsafe_b64decode(device["device_id"] + "="),
        reason="lost",
        issued_at=2,
    )
    done = await call(
        cast,
        "anna",
        "POST",
        f"/api/org/devices/{device['device_id']}/revocation",
        {"revocation": b64u(rev.encode())},
    )
    closed = await alice.receive(timeout=5)
    assert (closed.type, closed.data, closed.extra) == (
        WSMsgType.CLOSE,
        4010,
        "koppi.device_revoked",
    )
    notice = await bob.receive_json(timeout=5)
    assert notice == {
        "type": "device_revoked",
        "device": device["device_id"],
        "log_index": done["log_index"],
    }
