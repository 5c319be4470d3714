"""Generator of `koppi-identity.json`: certificates, key packages, links, revocations (§3).

Two parts. `structures`: each signed structure with the inputs that produce it (Ed25519 is
deterministic, so a second implementation can rebuild the bytes and compare). `cases`: small
deployments fed to a fresh client (`TrustStore`) entry by entry; a negative case names the entry
that must be refused and its code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crypto.consent import next_version, sign_consent
from crypto.errors import KoppiError
from crypto.identity import (
    SUBJECT_DEVICE,
    SUBJECT_ORG_KEY,
    DeviceCert,
    DeviceLink,
    KeyPackage,
    OrgCert,
    Revocation,
)
from crypto.primitives import KemKey, SigningKey
from crypto.vectors.world import World

ROOT_SEED = bytes(range(32))
ORG_SEED = bytes(range(32, 64))
NEXT_ORG_SEED = bytes(range(64, 96))
DEVICE_SEED = bytes(range(96, 128))
NEW_DEVICE_SEED = bytes(range(128, 160))
KEM_PRIVATE = bytes(range(160, 192))
KP_KEM_PRIVATE = bytes(range(192, 224))
ORG_ID = bytes.fromhex("0246246000000000000000000000000a")
USER_ID = bytes.fromhex("00000000000000000000000000000042")
T = 1_790_000_000


def structures() -> list[dict[str, Any]]:
    root, org, next_org = (SigningKey.from_seed(s) for s in (ROOT_SEED, ORG_SEED, NEXT_ORG_SEED))
    device, new_device = SigningKey.from_seed(DEVICE_SEED), SigningKey.from_seed(NEW_DEVICE_SEED)
    kem, kp_kem = KemKey.from_bytes(KEM_PRIVATE), KemKey.from_bytes(KP_KEM_PRIVATE)
    org_cert = OrgCert.issue(
        root=root,
        org_id=ORG_ID,
        name="Kansaneläkelaitos",
        business_id="0246246-0",
        org_public=org.public,
        issued_at=T,
    )
    rotation = OrgCert.issue(
        root=root,
        org_id=ORG_ID,
        name="Kansaneläkelaitos",
        business_id="0246246-0",
        org_public=next_org.public,
        issued_at=T + 86400,
        previous=(org_cert, org),
    )
    cert = DeviceCert.issue(
        org,
        org_id=ORG_ID,
        user_id=USER_ID,
        signing_public=device.public,
        kem_public=kem.public,
        roles=["professional", "consent-recorder"],
        not_before=T,
        not_after=T + 365 * 86400,
    )
    new_cert = DeviceCert.issue(
        org,
        org_id=ORG_ID,
        user_id=USER_ID,
        signing_public=new_device.public,
        kem_public=kp_kem.public,
        roles=["professional"],
        not_before=T,
        not_after=T + 86400,
    )
    kp = KeyPackage.issue(
        device, cert_hash=cert.cert_hash, kem_public=kp_kem.public, not_before=T, lifetime=7 * 86400
    )
    link = DeviceLink.issue(device, user_id=USER_ID, new_cert=new_cert, issued_at=T + 60)
    rev = Revocation.issue(
        org,
        subject_kind=SUBJECT_DEVICE,
        org_id=ORG_ID,
        subject=cert.device_id,
        reason="lost",
        issued_at=T + 120,
    )
    org_rev = Revocation.issue(
        root,
        subject_kind=SUBJECT_ORG_KEY,
        org_id=ORG_ID,
        subject=org_cert.key_id,
        reason="compromised",
        issued_at=T + 180,
    )
    return [
        {
            "name": "org-cert",
            "kind": "org",
            "encoding": org_cert.encode().hex(),
            "core": org_cert.core().hex(),
            "key_id": org_cert.key_id.hex(),
        },
        {
            "name": "org-rotation",
            "kind": "org",
            "encoding": rotation.encode().hex(),
            "core": rotation.core().hex(),
            "key_id": rotation.key_id.hex(),
        },
        {
            "name": "device-cert",
            "kind": "device",
            "encoding": cert.encode().hex(),
            "core": cert.core().hex(),
            "device_id": cert.device_id.hex(),
            "cert_hash": cert.cert_hash.hex(),
        },
        {
            "name": "key-package",
            "kind": "key_package",
            "encoding": kp.encode().hex(),
            "core": kp.core().hex(),
            "kp_hash": kp.kp_hash.hex(),
        },
        {
            "name": "device-link",
            "kind": "link",
            "encoding": link.encode().hex(),
            "core": link.core().hex(),
        },
        {
            "name": "device-revocation",
            "kind": "revocation",
            "encoding": rev.encode().hex(),
            "core": rev.core().hex(),
        },
        {
            "name": "org-key-revocation",
            "kind": "revocation",
            "encoding": org_rev.encode().hex(),
            "core": org_rev.core().hex(),
        },
    ]


def _scenario(name: str, w: World, error: str | None = None) -> dict[str, Any]:
    """Feed the world's log to a fresh client; record where it stops and why."""
    cth = w.head()
    entries = []
    for index, (kind, _, payload) in enumerate(w.entries):
        entries.append(
            {
                "index": index,
                "kind": kind,
                "data": payload.hex(),
                "proof": [p.hex() for p in w.tree.inclusion_proof(index, cth.head.size)],
            }
        )
    failed_at: int | None = None
    try:
        store = w.client()
    except KoppiError as exc:
        if exc.code != error:
            raise AssertionError(f"{name}: {exc.code} instead of {error}") from exc
        failed_at = len(w.entries) - 1
    else:
        if error is not None:
            raise AssertionError(f"{name}: no error")
    case: dict[str, Any] = {
        "name": name,
        "root_public": w.root.public.hex(),
        "log_public": w.log_key.public.hex(),
        "witness_publics": [k.public.hex() for k in w.witnesses],
        "quorum": w.config.quorum,
        "now_ms": w.clock.now_ms(),
        "tree_head": cth.encode().hex(),
        "entries": entries,
    }
    if error is not None:
        case["expected_error"] = error
        case["failing_entry"] = failed_at
    else:
        case["expected_devices"] = [
            {
                "device_id": d.cert.device_id.hex(),
                "cert_log_index": v.cert_log_index,
                "revoked_at_index": v.revoked_at_index,
            }
            for d in w.devices
            if (v := store.device(d.cert.device_id)) is not None
        ]
    return case


def identity_vectors() -> dict[str, Any]:
    def world(tag: str) -> World:
        w = World(f"koppi-identity-{tag}")
        return w

    cases = []
    w = world("chain")
    kela = w.add_org("Kela")
    laptop = w.add_device(kela)
    phone = w.add_device(kela, user_id=laptop.user_id)
    w.link(laptop, phone)
    w.revoke(laptop)
    rotated = w.rotate_org(kela)
    w.add_device(rotated)
    w.consent([rotated])
    cases.append(_scenario("chain-link-revocation-rotation-consent", w))

    w = world("retired")
    kela = w.add_org("Kela")
    old_key = kela.key
    rotated = w.rotate_org(kela)
    w.add_device(rotated, signed_by=old_key)
    cases.append(
        _scenario(
            "certificate-logged-after-its-org-keys-retirement", w, "koppi.cert_after_retirement"
        )
    )

    w = world("root-revoked-org")
    kela = w.add_org("Kela")
    w._log(
        "revocation",
        Revocation.issue(
            w.root,
            subject_kind=SUBJECT_ORG_KEY,
            org_id=kela.org_id,
            subject=kela.cert.key_id,
            reason="compromised",
            issued_at=T,
        ).encode(),
    )
    w.add_device(kela)
    cases.append(
        _scenario("certificate-after-org-key-revocation", w, "koppi.cert_after_retirement")
    )

    w = world("foreign-root")
    stranger = SigningKey.from_seed(bytes([9]) * 32)
    w._log(
        "org",
        OrgCert.issue(
            root=stranger,
            org_id=ORG_ID,
            name="Ghost",
            business_id="0",
            org_public=SigningKey.from_seed(bytes([8]) * 32).public,
            issued_at=T,
        ).encode(),
    )
    cases.append(_scenario("org-not-signed-by-the-root", w, "koppi.auth_failed"))

    w = world("unknown-org-key")
    kela = w.add_org("Kela")
    w.add_device(kela, signed_by=SigningKey.from_seed(bytes([7]) * 32))
    cases.append(_scenario("certificate-from-an-unknown-org-key", w, "koppi.unknown_org_key"))

    w = world("other-org-revokes")
    kela, county = w.add_org("Kela"), w.add_org("County")
    dev = w.add_device(kela)
    w._log(
        "revocation",
        Revocation.issue(
            county.key,
            subject_kind=SUBJECT_DEVICE,
            org_id=kela.org_id,
            subject=dev.device_id,
            reason="lost",
            issued_at=T,
        ).encode(),
    )
    cases.append(_scenario("revocation-by-another-organisation", w, "koppi.bad_revocation"))

    w = world("revoked-links")
    kela = w.add_org("Kela")
    laptop = w.add_device(kela)
    w.revoke(laptop)
    phone = w.add_device(kela, user_id=laptop.user_id)
    w.link(laptop, phone)
    cases.append(_scenario("link-from-a-revoked-device", w, "koppi.bad_device_link"))

    w = world("cross-user-link")
    kela = w.add_org("Kela")
    a, b = w.add_device(kela), w.add_device(kela)
    w.link(a, b)
    cases.append(_scenario("link-across-users", w, "koppi.bad_device_link"))

    w = world("rotation-without-root")
    kela = w.add_org("Kela")
    fake_root = SigningKey.from_seed(bytes([6]) * 32)
    bad = OrgCert.issue(
        root=fake_root,
        org_id=kela.org_id,
        name="Kela",
        business_id="x",
        org_public=SigningKey.from_seed(bytes([5]) * 32).public,
        issued_at=T,
        previous=(kela.cert, kela.key),
    )
    w._log("org", bad.encode())
    cases.append(_scenario("rotation-not-signed-by-the-root", w, "koppi.auth_failed"))

    w = world("consent-non-recorder")
    kela = w.add_org("Kela")
    w.recorder  # noqa: B018 (logs the registry's recorder device first)
    evidence = w.consent([kela])
    plain = w.add_device(kela)
    record = w.consents.record(evidence)
    forged = sign_consent(
        replace(record.core, recorder=plain.device_id, consent_id=bytes(16)), plain.secrets.signing
    )
    w._log("consent", forged.log_entry(), forged.encode())
    cases.append(_scenario("consent-recorded-without-the-role", w, "koppi.not_consent_recorder"))

    w = world("consent-rollback")
    kela, county = w.add_org("Kela"), w.add_org("County")
    v1 = w.consent([kela, county])
    w.supersede(v1, [kela])
    old = w.consents.record(v1)
    other_v1 = sign_consent(
        replace(old.core, how_obtained="electronic"), w.recorder.secrets.signing
    )
    w._log("consent", other_v1.log_entry(), other_v1.encode())
    cases.append(_scenario("consent-version-rollback", w, "koppi.consent_rollback"))

    w = world("consent-final")
    kela, county = w.add_org("Kela"), w.add_org("County")
    v1 = w.consent([kela, county])
    v2 = w.supersede(v1, [kela, county], revoke=True)
    after = sign_consent(
        next_version(
            w.consents.record(v2),
            recorded_at=T,
            recorder=w.recorder.device_id,
            status="active",
            revocation_channel="",
        ),
        w.recorder.secrets.signing,
    )
    w._log("consent", after.log_entry(), after.encode())
    cases.append(_scenario("consent-version-after-revocation", w, "koppi.consent_final"))

    return {
        "generated_by": "crypto/vectors/gen_identity.py",
        "description": (
            "Identity structures and trust decisions (docs/protocol.md §3, §6). `structures`: "
            "rebuild each from the seeds in `inputs` and compare `encoding` (Ed25519 is "
            "deterministic), or decode it and check its signatures. `cases`: a fresh TrustStore "
            "pinned to the case's `root_public`, a LogView (log key, witnesses, quorum, clock at "
            "`now_ms`) moved to the case's `tree_head`; add the entries in order by kind "
            "with their inclusion proofs. A positive case ends with `expected_devices`; a "
            "negative one must raise `expected_error` at `failing_entry`."
        ),
        "inputs": {
            "root_seed": ROOT_SEED.hex(),
            "org_seed": ORG_SEED.hex(),
            "next_org_seed": NEXT_ORG_SEED.hex(),
            "device_seed": DEVICE_SEED.hex(),
            "new_device_seed": NEW_DEVICE_SEED.hex(),
            "kem_private": KEM_PRIVATE.hex(),
            "kp_kem_private": KP_KEM_PRIVATE.hex(),
            "org_id": ORG_ID.hex(),
            "user_id": USER_ID.hex(),
            "time": T,
        },
        "structures": structures(),
        "cases": cases,
    }


VECTORS = {"koppi-identity.json": identity_vectors}
