"""The ghost-device test (issue: organisations; DESIGN.md §2 "no ghost members").

The database is tampered with directly, as a malicious operator could: a device is added for a
thread member, once with a plausible but unlogged certificate and once with a wrongly signed
certificate the operator slipped into the log. The honest client, which admits only devices the
log proves, refuses to wrap keys to it and says why; the organisation's `koppi monitor` alerts.
The untampered case is checked too, so that neither check passes by refusing everything.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest

from client.monitor import Forbidden, Monitor
from client.trust import LogFollower, resolve_members, unb64u
from crypto.clock import FakeClock, SeededRng
from crypto.identity import DeviceCert, DeviceLink, OrgCert, TrustStore, device_id_of
from crypto.primitives import KemKey, SigningKey
from crypto.treehead import LogConfig, LogView, key_id
from server.appkeys import ENGINE, TRANSLOG
from server.db.tables import Device
from server.repositories.devices import DeviceRepository
from server.repositories.translog import LogRepository
from server.services.translog import append_entry
from tests.server.conftest import LOG_KEY, Cast, b64u

RNG = SeededRng("ghost-device")
ROOT, KELA_KEY, COUNTY_KEY, STRANGER, WITNESS = (SigningKey.generate(RNG) for _ in range(5))


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"log_witness_keys": WITNESS.public.hex()}


class Api:
    def __init__(self, cast: Cast, user: str, token: str) -> None:
        self.cast, self.user, self.headers = cast, user, {"Authorization": f"Bearer {token}"}

    @classmethod
    async def of(cls, cast: Cast, user: str) -> Api:
        return cls(cast, user, await cast.token(user))

    async def get(self, path: str) -> Any:
        r = await self.cast.client.get(path, headers=self.headers)
        if r.status == 403:
            raise Forbidden(path)
        assert r.status == 200, await r.text()
        return await r.json()

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        r = await self.cast.client.post(path, json=body, headers=self.headers)
        assert r.status == status, await r.text()
        return await r.json()


async def admit(
    cast: Cast, org_id: uuid.UUID, name: str, business_id: str, key: SigningKey
) -> None:
    cert = OrgCert.issue(
        root=ROOT,
        org_id=org_id.bytes,
        name=name,
        business_id=business_id,
        org_public=key.public,
        issued_at=1,
    )
    await cast.app[TRANSLOG].append("org", cert.encode())


async def certified_device(
    cast: Cast, user: str, admin: str, org_key: SigningKey, signing: SigningKey | None = None
) -> str:
    """Enrol a device for `user` and have `admin` certify it, as the real flow does."""
    signing, kem = signing or SigningKey.generate(RNG), KemKey.generate(RNG)
    owner, boss = await Api.of(cast, user), await Api.of(cast, admin)
    device = await owner.post(
        "/api/devices",
        {"signing_public": b64u(signing.public), "kem_public": b64u(kem.public), "label": "pc"},
        201,
    )
    cert = DeviceCert.issue(
        org_key,
        org_id=uuid.UUID(device["org"]).bytes,
        user_id=cast.users[user].bytes,
        signing_public=signing.public,
        kem_public=kem.public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    )
    await boss.post(
        f"/api/org/devices/{device['device_id']}/certificate", {"certificate": b64u(cert.encode())}
    )
    return str(device["device_id"])


def monitor_of(api: Api, org_id: uuid.UUID, tmp_path: Path) -> Monitor:
    return Monitor(
        api.get,
        api.post,
        log_public=LOG_KEY.public,
        root_public=ROOT.public,
        witness=WITNESS,
        org_id=org_id.bytes,
        state=tmp_path / f"monitor-{api.user}.json",
        clock=api.cast.clock,
    )


async def honest_client(cast: Cast, user: str) -> tuple[Api, LogFollower]:
    """A professional's client: it trusts the pinned root, the log key and one witness."""
    api = await Api.of(cast, user)
    config = LogConfig.create(LOG_KEY.public, [WITNESS.public], quorum=1)
    follower = LogFollower(TrustStore(ROOT.public, LogView(config, FakeClock(cast.clock.now()))))
    await follower.follow(api.get)
    return api, follower


async def deployment(cast: Cast) -> tuple[str, str]:
    await admit(cast, cast.org_a, "Kela", "0246246-0", KELA_KEY)
    await admit(cast, cast.org_b, "Hyvinvointialue", "3221308-6", COUNTY_KEY)
    alice = await certified_device(cast, "alice", "anna", KELA_KEY)
    bob = await certified_device(cast, "bob", "bert", COUNTY_KEY)
    await cast.app[TRANSLOG].sign_head()  # the server's next round of signing
    return alice, bob


async def tamper_add_device(cast: Cast, user: str, org: uuid.UUID, cert_log_index: int) -> str:
    """What a malicious operator does: write a device row straight into the database."""
    signing = SigningKey.generate(RNG)
    device_id = device_id_of(signing.public)
    await DeviceRepository(cast.app[ENGINE]).add(
        Device(
            device_id=device_id,
            user_id=cast.users[user],
            org_id=org,
            signing_public=signing.public,
            kem_public=KemKey.generate(RNG).public,
            label="ghost",
            status="approved",
            cert_log_index=cert_log_index,
            revocation_log_index=None,
            created_at=cast.clock.now_ms(),
        )
    )
    return b64u(device_id)


async def test_without_tampering_every_listed_device_is_admitted_and_the_monitor_is_quiet(
    cast: Cast, tmp_path: Path
) -> None:
    alice, bob = await deployment(cast)
    found = await monitor_of(await Api.of(cast, "bert"), cast.org_b, tmp_path).check_once()
    assert found.cosigned and found.alerts == [] and found.notes == []
    api, follower = await honest_client(cast, "alice")
    listed = (await api.get(f"/api/threads/{cast.thread}/devices"))["devices"]
    resolution = resolve_members(listed, follower)
    assert {b64u(m.device.device_id) for m in resolution.members} == {alice, bob}
    assert resolution.refused == {}


async def test_a_ghost_with_an_unlogged_certificate_is_refused_and_the_monitor_alerts(
    cast: Cast, tmp_path: Path
) -> None:
    alice, bob = await deployment(cast)
    bob_device = await (await Api.of(cast, "bert")).get(f"/api/devices/{bob}")
    # Plausible: it points at bob's real certificate in the log.
    ghost = await tamper_add_device(cast, "bob", cast.org_b, bob_device["cert_log_index"])
    found = await monitor_of(await Api.of(cast, "bert"), cast.org_b, tmp_path).check_once()
    assert found.cosigned  # the log itself is consistent: the lie is in the device table
    assert [a for a in found.alerts if ghost in a and "ghost device" in a]
    api, follower = await honest_client(cast, "alice")
    listed = (await api.get(f"/api/threads/{cast.thread}/devices"))["devices"]
    assert ghost in {d["device_id"] for d in listed}  # the server does list it
    resolution = resolve_members(listed, follower)
    assert {b64u(m.device.device_id) for m in resolution.members} == {alice, bob}
    reason = resolution.refused[unb64u(ghost)]
    assert reason.startswith("koppi.unknown_device")
    # Kela's monitor is not told about the county's devices (it checks its own organisation).
    kela = await monitor_of(await Api.of(cast, "anna"), cast.org_a, tmp_path).check_once()
    assert kela.alerts == []


async def test_a_ghost_with_a_wrongly_signed_logged_certificate_is_refused_and_alerted(
    cast: Cast, tmp_path: Path
) -> None:
    alice, bob = await deployment(cast)
    signing = SigningKey.generate(RNG)
    forged = DeviceCert.issue(
        STRANGER,
        org_id=cast.org_b.bytes,
        user_id=cast.users["bob"].bytes,
        signing_public=signing.public,
        kem_public=KemKey.generate(RNG).public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    )
    # Claim the county's key (so the certificate looks right) without its signature.
    forged = dataclasses.replace(forged, org_key_id=key_id(COUNTY_KEY.public))
    index = await append_entry(
        LogRepository(cast.app[ENGINE]), "device", forged.encode(), None, now=cast.clock.now_ms()
    )
    ghost = await tamper_add_device(cast, "bob", cast.org_b, index)
    await cast.app[TRANSLOG].sign_head()  # the server signs over the tampered log next round
    found = await monitor_of(await Api.of(cast, "bert"), cast.org_b, tmp_path).check_once()
    assert found.size > index
    assert [a for a in found.alerts if f"device at index {index}" in a and "koppi.auth_failed" in a]
    assert [a for a in found.alerts if ghost in a and "ghost device" in a]
    api, follower = await honest_client(cast, "alice")
    listed = (await api.get(f"/api/threads/{cast.thread}/devices"))["devices"]
    resolution = resolve_members(listed, follower)
    assert {b64u(m.device.device_id) for m in resolution.members} == {alice, bob}
    assert "koppi.auth_failed" in resolution.refused[unb64u(ghost)]
    assert f"log index {index}" in resolution.refused[unb64u(ghost)]


async def test_thread_devices_are_listed_for_members_only(cast: Cast) -> None:
    await deployment(cast)
    for user, status in (("alice", 200), ("bob", 200), ("mallory", 403), ("anna", 403)):
        token = await cast.token(user)
        r = await cast.client.get(
            f"/api/threads/{cast.thread}/devices", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status == status, user
        if status == 403:
            assert (await r.json())["error"]["code"] == "koppi.not_member"
    token = await cast.token("alice")
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        r = await cast.client.get(
            f"/api/threads/{bad}/devices", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status == 403 and (await r.json())["error"]["code"] == "koppi.not_member"
    r = await cast.client.get(f"/api/threads/{cast.thread}/devices")
    assert r.status == 401


async def test_a_monitor_without_the_admin_role_says_it_skipped_the_device_check(
    cast: Cast, tmp_path: Path
) -> None:
    await deployment(cast)
    found = await monitor_of(await Api.of(cast, "bob"), cast.org_b, tmp_path).check_once()
    assert found.cosigned and found.notes and "org-admin" in found.notes[0]


async def test_a_members_new_device_joins_only_when_linked_or_approved(
    cast: Cast, tmp_path: Path
) -> None:
    laptop_key = SigningKey.generate(RNG)
    await admit(cast, cast.org_a, "Kela", "0246246-0", KELA_KEY)
    laptop = await certified_device(cast, "alice", "anna", KELA_KEY, laptop_key)
    phone = await certified_device(cast, "alice", "anna", KELA_KEY)
    await cast.app[TRANSLOG].sign_head()
    await monitor_of(await Api.of(cast, "anna"), cast.org_a, tmp_path).check_once()
    api, follower = await honest_client(cast, "bob")
    listed = (await api.get(f"/api/threads/{cast.thread}/devices"))["devices"]
    roster = [unb64u(laptop)]
    waiting = resolve_members(listed, follower, roster=roster)
    assert [b64u(m.device.device_id) for m in waiting.members] == [laptop]
    assert list(waiting.needs_approval) == [unb64u(phone)] and waiting.refused == {}
    # A person compared the fingerprint and approved it:
    by_person = resolve_members(listed, follower, roster=roster, approved=[unb64u(phone)])
    assert {b64u(m.device.device_id) for m in by_person.members} == {laptop, phone}
    # Or the laptop links it (logged), and every honest client then admits it by itself.
    verified = follower.trust.device(unb64u(phone))
    assert verified is not None
    i = verified.cert_log_index
    (entry,) = (await api.get(f"/api/log/entries?start={i}&end={i + 1}"))["entries"]
    phone_cert = DeviceCert.decode(unb64u(entry["data"]))
    link = DeviceLink.issue(
        laptop_key, user_id=cast.users["alice"].bytes, new_cert=phone_cert, issued_at=5
    )
    owner = await Api.of(cast, "alice")
    await owner.post(f"/api/devices/{phone}/link", {"link": b64u(link.encode())})
    cast.clock.advance(1)
    await cast.app[TRANSLOG].sign_head()
    await monitor_of(await Api.of(cast, "anna"), cast.org_a, tmp_path).check_once()
    await follower.follow(api.get)
    linked = resolve_members(listed, follower, roster=roster)
    assert {b64u(m.device.device_id) for m in linked.members} == {laptop, phone}
    assert linked.needs_approval == {}
    # A first device of a user not yet in the thread is not this rule's business (invitations).
    assert resolve_members(listed, follower).needs_approval == {}


async def test_an_organisation_new_to_the_thread_waits_for_a_members_approval(
    cast: Cast, tmp_path: Path
) -> None:
    alice, bob = await deployment(cast)
    await monitor_of(await Api.of(cast, "anna"), cast.org_a, tmp_path).check_once()
    api, follower = await honest_client(cast, "alice")
    listed = (await api.get(f"/api/threads/{cast.thread}/devices"))["devices"]
    roster = [unb64u(alice)]  # the thread so far: Kela only
    waiting = resolve_members(listed, follower, roster=roster)
    assert [b64u(m.device.device_id) for m in waiting.members] == [alice]
    assert "organisation new to this thread" in waiting.needs_approval[unb64u(bob)]
    approved = resolve_members(listed, follower, roster=roster, approved_orgs=[cast.org_b.bytes])
    assert {b64u(m.device.device_id) for m in approved.members} == {alice, bob}
    # Opening a thread (no roster yet) is itself the creator's explicit choice.
    assert resolve_members(listed, follower).needs_approval == {}


async def test_a_certificate_our_admins_did_not_issue_is_alerted(
    cast: Cast, tmp_path: Path
) -> None:
    """Signed with the county's real key, but not issued through its admin console: someone
    else holds the key. The first round waits for the audit record, the next one alerts."""
    await deployment(cast)
    stolen = DeviceCert.issue(
        COUNTY_KEY,
        org_id=cast.org_b.bytes,
        user_id=cast.users["bob"].bytes,
        signing_public=SigningKey.generate(RNG).public,
        kem_public=KemKey.generate(RNG).public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    )
    index = await cast.app[TRANSLOG].append("device", stolen.encode())
    cast.clock.advance(1)
    await cast.app[TRANSLOG].sign_head()
    bert = await Api.of(cast, "bert")
    first = await monitor_of(bert, cast.org_b, tmp_path).check_once()
    assert first.cosigned and first.alerts == [] and f"device at index {index}" in first.ours
    assert first.notes == [f"device at index {index}: waiting for our device.approved record"]
    again = await monitor_of(bert, cast.org_b, tmp_path).check_once()  # restarted meanwhile
    assert again.alerts == [
        f"device at index {index} names our organisation, but our admins did not issue it"
        " (no device.approved in our audit trail): the organisation key may be in other hands"
    ]
    assert (await monitor_of(bert, cast.org_b, tmp_path).check_once()).alerts == []  # said once
