"""Rotating an organisation key in two halves (issue: organisations): an admin of the
organisation signs a RotationRequest with the current key (in the browser), the operator adds
the root's signature with `koppi org rotate`. Certificates then need the new key."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from crypto.clock import SeededRng
from crypto.identity import DeviceCert, OrgCert, RotationRequest
from crypto.keyfile import seal_keyfile
from crypto.primitives import KemKey, SigningKey
from server.appkeys import CONFIG, TRANSLOG
from server.cli import ROOT_KEY_NAME, _rotate_org
from tests.server.conftest import Cast, without_logins

RNG = SeededRng("org-rotation")
ROOT, KELA_KEY, NEW_KEY, STRANGER = (SigningKey.generate(RNG) for _ in range(4))


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def call(cast: Cast, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = await cast.token(user)
    r = await cast.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return r.status, await r.json()


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


async def operator_rotates(cast: Cast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    root_file = tmp_path / "root.key"
    if not root_file.exists():
        root_file.write_bytes(seal_keyfile({ROOT_KEY_NAME: ROOT.seed_bytes()}, "pw", RNG))
    monkeypatch.setenv("KOPPI_ROOT_KEY_PASSPHRASE", "pw")
    return await _rotate_org(cast.app[CONFIG], "0246246-0", None, root_file, None)


async def enrolled_certificate(cast: Cast, key: SigningKey) -> tuple[str, bytes]:
    signing, kem = SigningKey.generate(RNG), KemKey.generate(RNG)
    status, device = await call(
        cast,
        "alice",
        "POST",
        "/api/devices",
        {"signing_public": b64u(signing.public), "kem_public": b64u(kem.public), "label": "pc"},
    )
    assert status == 201
    cert = DeviceCert.issue(
        key,
        org_id=cast.org_a.bytes,
        user_id=cast.users["alice"].bytes,
        signing_public=signing.public,
        kem_public=kem.public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    )
    return device["device_id"], cert.encode()


async def test_an_admin_requests_and_the_operator_completes_a_rotation(
    cast: Cast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kela = await admitted_kela(cast)
    status, state = await call(cast, "anna", "GET", "/api/org/key")
    assert status == 200 and state["current"]["generation"] == 0
    assert unb64u(state["current"]["org_public"]) == KELA_KEY.public
    assert state["rotation_request"] is None
    request = RotationRequest.create(kela, KELA_KEY, NEW_KEY.public, issued_at=10)
    status, _ = await call(
        cast, "anna", "POST", "/api/org/rotation", {"request": b64u(request.encode())}
    )
    assert status == 202
    status, state = await call(cast, "anna", "GET", "/api/org/key")
    assert unb64u(state["rotation_request"]) == request.encode()

    assert await operator_rotates(cast, tmp_path, monkeypatch) == 0
    status, state = await call(cast, "anna", "GET", "/api/org/key")
    assert state["current"]["generation"] == 1 and state["rotation_request"] is None
    assert unb64u(state["current"]["org_public"]) == NEW_KEY.public
    logged = OrgCert.decode(unb64u(state["current"]["org_cert"]))
    assert logged == request.sign(ROOT)
    _, trail = await call(cast, "anna", "GET", "/api/org/audit")
    events = without_logins(trail["events"])
    assert [e["action"] for e in events] == ["org.rotation_requested", "org.key_rotated"]
    assert {e["actor"] for e in events} == {str(cast.users["anna"])}

    # Certificates now need the new key; the retired key is refused.
    device_id, by_old = await enrolled_certificate(cast, KELA_KEY)
    path = f"/api/org/devices/{device_id}/certificate"
    status, body = await call(cast, "anna", "POST", path, {"certificate": b64u(by_old)})
    assert status == 400 and body["error"]["code"] == "koppi.bad_certificate"
    device_id, by_new = await enrolled_certificate(cast, NEW_KEY)
    path = f"/api/org/devices/{device_id}/certificate"
    status, _ = await call(cast, "anna", "POST", path, {"certificate": b64u(by_new)})
    assert status == 200

    # Replaying the old request, or completing a rotation nobody asked for, is refused.
    status, body = await call(
        cast, "anna", "POST", "/api/org/rotation", {"request": b64u(request.encode())}
    )
    assert status == 400 and body["error"]["code"] == "koppi.bad_rotation"
    assert await operator_rotates(cast, tmp_path, monkeypatch) == 2


async def test_only_an_admin_of_the_organisation_may_request_a_rotation(cast: Cast) -> None:
    kela = await admitted_kela(cast)
    good = RotationRequest.create(kela, KELA_KEY, NEW_KEY.public, issued_at=10).encode()
    for user, status, code in (
        ("alice", 403, "koppi.forbidden"),  # a professional of Kela
        ("bert", 409, "koppi.no_org_key"),  # the county's admin: for their own org, which has none
    ):
        got, body = await call(cast, user, "POST", "/api/org/rotation", {"request": b64u(good)})
        assert (got, body["error"]["code"]) == (status, code), user
        got, body = await call(cast, user, "GET", "/api/org/key")
        assert got == (403 if user == "alice" else 200)
    _, state = await call(cast, "bert", "GET", "/api/org/key")
    assert state == {"current": None, "rotation_request": None}  # Kela's key is not shown


async def test_bad_rotation_requests_are_refused_and_nothing_is_stored(cast: Cast) -> None:
    kela = await admitted_kela(cast)
    stranger_cert = OrgCert(**{**kela.__dict__, "org_public": STRANGER.public})
    for raw in (
        b"",
        b"not a request",
        kela.encode(),
        RotationRequest.create(stranger_cert, STRANGER, NEW_KEY.public, issued_at=10).encode(),
        RotationRequest.create(kela, KELA_KEY, KELA_KEY.public, issued_at=10).encode(),
    ):
        status, body = await call(cast, "anna", "POST", "/api/org/rotation", {"request": b64u(raw)})
        assert status == 400 and body["error"]["code"] in {
            "koppi.bad_rotation",
            "koppi.frame_invalid",
        }
    status, body = await call(cast, "anna", "POST", "/api/org/rotation", {"request": "!!", "x": 1})
    assert status == 400
    _, state = await call(cast, "anna", "GET", "/api/org/key")
    assert state["rotation_request"] is None
    _, trail = await call(cast, "anna", "GET", "/api/org/audit")
    assert without_logins(trail["events"]) == []
