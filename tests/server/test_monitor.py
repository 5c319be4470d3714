"""`koppi monitor` against a running server (issue: organisations): it cosigns heads it could
recompute, reports entries naming its organisation, and refuses a shrunk log, a root that is not
the tree of the entries served, and two commits for one (thread, epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client.monitor import Forbidden, Monitor, unb64u
from crypto.clock import FakeClock, SeededRng
from crypto.encoding import Encoder
from crypto.identity import DeviceCert, OrgCert
from crypto.logentries import WebManifest
from crypto.primitives import KemKey, SigningKey
from crypto.treehead import CosignedTreeHead, LogConfig, LogView
from server.appkeys import RELEASE, TRANSLOG
from server.release import publish
from tests.server.conftest import LOG_KEY, Cast

RNG = SeededRng("monitor-tests")
ROOT, KELA_KEY, WITNESS = (SigningKey.generate(RNG) for _ in range(3))


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"log_witness_keys": WITNESS.public.hex()}


async def monitor_for(cast: Cast, tmp_path: Path, account: str = "anna") -> Monitor:
    token = await cast.token(account)
    headers = {"Authorization": f"Bearer {token}"}

    async def get(path: str) -> Any:
        r = await cast.client.get(path, headers=headers)
        if r.status == 403:
            raise Forbidden(path)
        assert r.status == 200, await r.text()
        return await r.json()

    async def get_bytes(path: str) -> bytes:
        r = await cast.client.get(path)
        assert r.status == 200, path
        return await r.read()

    async def post(path: str, body: dict[str, Any]) -> Any:
        r = await cast.client.post(path, json=body, headers=headers)
        assert r.status == 200, await r.text()
        return await r.json()

    return Monitor(
        get,
        post,
        log_public=LOG_KEY.public,
        root_public=ROOT.public,
        witness=WITNESS,
        org_id=cast.org_a.bytes,
        state=tmp_path / "monitor.json",
        clock=cast.clock,
        get_bytes=get_bytes,
    )


async def add_kela(cast: Cast) -> None:
    translog = cast.app[TRANSLOG]
    org = OrgCert.issue(
        root=ROOT,
        org_id=cast.org_a.bytes,
        name="Kela",
        business_id="0246246-0",
        org_public=KELA_KEY.public,
        issued_at=1,
    )
    await translog.append("org", org.encode())
    await translog.append("device", device_cert(KELA_KEY, cast.org_a.bytes))


def device_cert(key: SigningKey, org_id: bytes) -> bytes:
    """A certificate for a fresh device, signed by `key` (an organisation's, or not)."""
    return DeviceCert.issue(
        key,
        org_id=org_id,
        user_id=bytes(16),
        signing_public=SigningKey.generate(RNG).public,
        kem_public=KemKey.generate(RNG).public,
        roles=["professional"],
        not_before=0,
        not_after=10**10,
    ).encode()


async def test_the_monitor_cosigns_what_it_checked_and_clients_then_accept(
    cast: Cast, tmp_path: Path
) -> None:
    await add_kela(cast)
    await cast.app[TRANSLOG].sign_head()
    monitor = await monitor_for(cast, tmp_path)
    first = await monitor.check_once()
    assert (
        first.cosigned
        and first.alerts == []
        and first.ours == ["org at index 1", "device at index 2"]  # 0: the web release
    )
    token = await cast.token("alice")
    r = await cast.client.get("/api/log/head", headers={"Authorization": f"Bearer {token}"})
    cth = CosignedTreeHead.decode(unb64u((await r.json())["head"]))
    config = LogConfig.create(LOG_KEY.public, [WITNESS.public], quorum=1)
    LogView(config, FakeClock(cth.head.timestamp_ms // 1000)).update(cth, [])  # quorum met
    # A second round sees only the new entry, from its saved state.
    await cast.app[TRANSLOG].append("device", device_cert(KELA_KEY, cast.org_b.bytes))
    cast.clock.advance(301)
    again = await (await monitor_for(cast, tmp_path)).check_once()
    assert again.cosigned and again.size == 4 and again.ours == []  # not our organisation


async def test_two_commits_for_one_epoch_are_not_cosigned(cast: Cast, tmp_path: Path) -> None:
    translog = cast.app[TRANSLOG]
    thread = bytes(16)
    for commit_hash in (bytes(32), bytes([1]) * 32):
        await translog.append(
            "commit-head",
            Encoder("koppi/v1/log-commit-head").bytes(thread).u64(4).bytes(commit_hash).finish(),
        )
    await translog.sign_head()
    found = await (await monitor_for(cast, tmp_path)).check_once()
    assert not found.cosigned and "a fork" in found.alerts[0]


async def test_a_head_that_is_not_the_served_tree_is_refused(cast: Cast, tmp_path: Path) -> None:
    await add_kela(cast)
    await cast.app[TRANSLOG].sign_head()
    monitor = await monitor_for(cast, tmp_path)
    assert (await monitor.check_once()).cosigned
    # The monitor's memory says 3 leaves; a log that now serves 2 has shrunk.
    monitor._leaves.append(bytes(32))
    found = await monitor.check_once()
    assert not found.cosigned and "shrank" in found.alerts[0]
    monitor._leaves = [*monitor._leaves[:1], bytes(32)]  # a different history than served
    await cast.app[TRANSLOG].append("device", b"koppi opaque test entry")
    cast.clock.advance(301)
    found = await monitor.check_once()
    assert not found.cosigned and "root" in found.alerts[0]


async def test_only_configured_witnesses_may_cosign(cast: Cast) -> None:
    token = await cast.token("anna")
    head = await (
        await cast.client.get("/api/log/head", headers={"Authorization": f"Bearer {token}"})
    ).json()
    stranger = SigningKey.generate(RNG)
    from client.monitor import b64u
    from crypto.treehead import Cosignature, key_id

    cth = CosignedTreeHead.decode(unb64u(head["head"]))
    for key, status, code in (
        (stranger, 403, "koppi.unknown_witness"),
        (WITNESS, 400, "koppi.auth_failed"),
    ):
        sig = (stranger if key is WITNESS else key).sign(
            Cosignature.message(cth.head.hash(), key_id(key.public), 5)
        )
        r = await cast.client.post(
            "/api/log/cosign",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "head_timestamp_ms": cth.head.timestamp_ms,
                "witness_id": b64u(key_id(key.public)),
                "timestamp_ms": 5,
                "signature": b64u(sig),
            },
        )
        assert r.status == status and (await r.json())["error"]["code"] == code


async def test_the_served_browser_code_is_the_logged_release(cast: Cast, tmp_path: Path) -> None:
    translog, current = cast.app[TRANSLOG], cast.app[RELEASE]
    (entry,) = await translog.entries(0, 1)
    assert entry[1] == "web-release" and entry[2] == current.manifest.encode()
    assert current.log_index == 0 and "login.js" in current.manifest.files
    assert await publish(translog, current.manifest) == 0  # a restart logs nothing new
    monitor = await monitor_for(cast, tmp_path)
    assert (await monitor.check_once()).alerts == []
    # The operator swaps the code it serves (and the manifest it shows) without logging it.
    files = dict(current.manifest.files)
    files["login.js"] = bytes(32)
    current.manifest = WebManifest(current.manifest.version, files)
    cast.clock.advance(301)
    found = await monitor.check_once()
    assert any("not the newest logged release" in a for a in found.alerts)
    assert any("/static/login.js differs" in a for a in found.alerts)
    # Logging it is what a real release does; the file still differs from what is served.
    assert await publish(translog, current.manifest) == translog.size - 1
    await translog.sign_head()
    found = await monitor.check_once()
    assert found.alerts == ["/static/login.js differs from the logged release"]


async def test_a_wrongly_signed_entry_naming_us_alerts_but_the_head_is_cosigned(
    cast: Cast, tmp_path: Path
) -> None:
    await add_kela(cast)
    forged = device_cert(SigningKey.generate(RNG), cast.org_a.bytes)  # not Kela's key
    index = await cast.app[TRANSLOG].append("device", forged)
    await cast.app[TRANSLOG].sign_head()
    found = await (await monitor_for(cast, tmp_path)).check_once()
    assert found.cosigned and found.ours == ["org at index 1", "device at index 2"]
    assert found.alerts == [
        f"device at index {index} names our organisation but does not verify"
        " (koppi.unknown_org_key: certificate from an unknown organisation key)"
    ]


async def test_clients_ask_for_the_newest_head_their_quorum_accepts(
    cast: Cast, tmp_path: Path
) -> None:
    await add_kela(cast)
    await cast.app[TRANSLOG].sign_head()
    assert (await (await monitor_for(cast, tmp_path)).check_once()).cosigned
    cosigned = await cast.app[TRANSLOG].head()
    cast.clock.advance(1)
    await cast.app[TRANSLOG].sign_head()  # the next head: no witness has seen it yet
    token = await cast.token("alice")
    headers = {"Authorization": f"Bearer {token}"}

    async def head(query: str) -> tuple[int, Any]:
        r = await cast.client.get(f"/api/log/head{query}", headers=headers)
        return r.status, await r.json()

    status, newest = await head("")
    assert status == 200 and CosignedTreeHead.decode(unb64u(newest["head"])).cosignatures == ()
    status, body = await head("?cosigned=1")
    assert status == 200 and CosignedTreeHead.decode(unb64u(body["head"])) == cosigned
    config = LogConfig.create(LOG_KEY.public, [WITNESS.public], quorum=1)
    LogView(config, cast.clock).update(CosignedTreeHead.decode(unb64u(body["head"])), [])
    status, body = await head("?cosigned=2")
    assert status == 404 and body["error"]["code"] == "koppi.not_cosigned"
    status, body = await head("?cosigned=x")
    assert status == 400 and body["error"]["code"] == "koppi.bad_request"
