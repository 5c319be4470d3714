"""Generator of `koppi-consent.json`: consent records and the rules a client applies (§6).

`record`: one ConsentCore with every field given, its encoding, core hash, record (signed by a
fixed recorder seed), record hash and log entry. `cases`: each a sequence of records fed to a
fresh ConsentBook (`accept`), or one record verified against a recorder (`verify`), or a cover
checked against a thread's client and purpose (`evidence`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crypto.consent import (
    ConsentBook,
    ConsentCore,
    ConsentRecord,
    CoveredOrganisation,
    next_version,
    sign_consent,
)
from crypto.encoding import Encoder
from crypto.primitives import SigningKey, sha256
from crypto.trust import device_id_of

RECORDER_SEED = bytes(range(32))
OTHER_SEED = bytes(range(32, 64))
KELA = bytes.fromhex("0246246000000000000000000000000a")
COUNTY = bytes.fromhex("3221308600000000000000000000000b")
TE = bytes.fromhex("2000000000000000000000000000000c")
HOUSING = bytes.fromhex("1000000000000000000000000000000d")
CLIENT = sha256(b"pseudonymous client reference 7F3A")
T = 1_790_000_000


def _core(recorder: SigningKey) -> ConsentCore:
    return ConsentCore(
        consent_id=bytes.fromhex("c0c0c0c0000000000000000000000001"),
        version=1,
        prev_version_hash=b"",
        client_ref=CLIENT,
        purpose="rehabilitation-planning",
        organisations=(
            CoveredOrganisation(KELA, True, "statute-kela"),
            CoveredOrganisation(
                COUNTY, True, "statute-social-welfare", frozenset({"professional"})
            ),
            CoveredOrganisation(TE, False, "statute-employment"),
        ),
        data_categories=frozenset({"health", "income", "employment"}),
        valid_from=T,
        valid_until=T + 365 * 86400,
        status="active",
        disclosure_basis="consent",
        how_obtained="oral-recorded",
        info_text_hash=sha256(b"Suostumusteksti v3"),
        details_hash=sha256(b"end-to-end encrypted consent details"),
        recorder=device_id_of(recorder.public),
        recorded_at=T,
    )


def consent_vectors() -> dict[str, Any]:
    recorder = SigningKey.from_seed(RECORDER_SEED)
    other = SigningKey.from_seed(OTHER_SEED)
    v1 = sign_consent(_core(recorder), recorder)
    v2 = sign_consent(
        next_version(
            v1,
            recorded_at=T + 100,
            recorder=v1.core.recorder,
            organisations=tuple(o for o in v1.core.organisations if o.org_id != TE),
        ),
        recorder,
    )
    v3_revoked = sign_consent(
        next_version(
            v2,
            recorded_at=T + 200,
            recorder=v1.core.recorder,
            status="revoked",
            revocation_channel="phone",
        ),
        recorder,
    )
    after_revoked = sign_consent(
        next_version(
            v3_revoked,
            recorded_at=T + 300,
            recorder=v1.core.recorder,
            status="active",
            revocation_channel="",
        ),
        recorder,
    )
    other_v1 = sign_consent(replace(v1.core, how_obtained="written"), recorder)
    gap = sign_consent(
        replace(next_version(v2, recorded_at=T + 50, recorder=v1.core.recorder), version=4),
        recorder,
    )
    by_other = sign_consent(replace(v1.core, recorder=device_id_of(other.public)), other)
    forged = ConsentRecord(replace(v1.core, valid_until=v1.core.valid_until + 1), v1.signature)
    raw = v1.encode()

    def accept(
        name: str, records: list[ConsentRecord | bytes], error: str | None = None, **expect: Any
    ) -> dict[str, Any]:
        case: dict[str, Any] = {
            "name": name,
            "kind": "accept",
            "records": [r.hex() if isinstance(r, bytes) else r.encode().hex() for r in records],
        }
        if error:
            case["expected_error"] = error
        case.update(expect)
        return case

    def verify(
        name: str,
        record: bytes,
        key: SigningKey,
        roles: list[str],
        *,
        revoked_at: int | None = None,
        tree_size: int = 10,
        error: str | None = None,
    ) -> dict[str, Any]:
        case: dict[str, Any] = {
            "name": name,
            "kind": "verify",
            "record": record.hex(),
            "recorder_public": key.public.hex(),
            "recorder_roles": roles,
            "recorder_cert_log_index": 1,
            "recorder_revoked_at_index": revoked_at,
            "tree_size": tree_size,
        }
        if error:
            case["expected_error"] = error
        return case

    # The covered organisations in descending order: a list that is not sorted.
    items = sorted(o.encode() for o in v1.core.organisations)
    blob = b"".join(len(i).to_bytes(4, "big") + i for i in items)
    reverse = b"".join(len(i).to_bytes(4, "big") + i for i in reversed(items))
    core_raw = v1.core.encode()
    assert core_raw.count(blob) == 1
    swapped = (
        Encoder("koppi/v1/consent-record")
        .bytes(core_raw.replace(blob, reverse))
        .bytes(v1.signature)
        .finish()
    )

    cases = [
        verify("recorder-with-the-role", raw, recorder, ["professional", "consent-recorder"]),
        verify(
            "recorder-without-the-role",
            raw,
            recorder,
            ["professional"],
            error="koppi.not_consent_recorder",
        ),
        verify(
            "recorder-revoked-after-recording",
            raw,
            recorder,
            ["consent-recorder"],
            revoked_at=10,
            tree_size=10,
        ),
        verify(
            "recorder-revoked-before-the-head",
            raw,
            recorder,
            ["consent-recorder"],
            revoked_at=9,
            tree_size=10,
            error="koppi.recorder_revoked",
        ),
        verify(
            "signed-by-another-device-than-named",
            by_other.encode(),
            recorder,
            ["consent-recorder"],
            error="koppi.wrong_recorder",
        ),
        verify(
            "bad-signature",
            forged.encode(),
            recorder,
            ["consent-recorder"],
            error="koppi.auth_failed",
        ),
        verify(
            "trailing-byte", raw + b"\x00", recorder, ["consent-recorder"], error="koppi.decode"
        ),
        verify(
            "unsorted-organisations",
            bytes(swapped),
            recorder,
            ["consent-recorder"],
            error="koppi.decode",
        ),
        accept(
            "v1-v2-v3-revoked",
            [v1, v2, v3_revoked],
            state_at={"time": T + 400, "state": "revoked"},
            history=["given", "superseded", "given", "superseded", "revoked"],
        ),
        accept("same-version-twice-is-a-no-op", [v1, v1]),
        accept("rollback-to-a-conflicting-version-1", [v1, v2, other_v1], "koppi.consent_rollback"),
        accept("version-gap", [v1, v2, gap], "koppi.consent_chain"),
        accept("history-starts-at-version-1", [v2], "koppi.consent_chain"),
        accept(
            "nothing-after-revocation", [v1, v2, v3_revoked, after_revoked], "koppi.consent_final"
        ),
    ]
    for name, ref, purpose in (
        ("evidence-for-this-client-and-purpose", CLIENT, "rehabilitation-planning"),
        ("evidence-for-another-client", bytes(32), "rehabilitation-planning"),
        ("evidence-for-another-purpose", CLIENT, "employment-services"),
    ):
        case = {
            "name": name,
            "kind": "evidence",
            "records": [v1.encode().hex()],
            "thread_client_ref": ref.hex(),
            "thread_purpose": purpose,
        }
        if ref != CLIENT or purpose != "rehabilitation-planning":
            case["expected_error"] = "koppi.consent_mismatch"
        cases.append(case)
    book = ConsentBook()
    book.accept_all([v1, v2, v3_revoked])
    covers = []
    for record, now in ((v1, T + 150), (v2, T + 150), (v3_revoked, T + 250)):
        cover = book.cover(record.core.core_hash, now)
        assert cover is not None
        covers.append(
            {
                "core_hash": record.core.core_hash.hex(),
                "now": now,
                "version": cover.version,
                "active": cover.active,
                "organisations": sorted(o.hex() for o in cover.organisations),
                "may_store": sorted(o.hex() for o in cover.may_store),
                "roles": {o.hex(): sorted(r) for o, r in sorted(cover.roles.items())},
            }
        )
    only_v2 = ConsentBook()
    only_v2.accept_all([v1, v2])
    for now in (T + 150, v2.core.valid_until):
        cover = only_v2.cover(v2.core.core_hash, now)
        assert cover is not None
        covers.append(
            {
                "core_hash": v2.core.core_hash.hex(),
                "now": now,
                "version": 2,
                "accepted": "v1,v2",
                "active": cover.active,
                "organisations": sorted(o.hex() for o in cover.organisations),
                "may_store": sorted(o.hex() for o in cover.may_store),
                "roles": {o.hex(): sorted(r) for o, r in sorted(cover.roles.items())},
            }
        )
    # A statutory basis: the county's social worker admits a housing organisation without the
    # client's consent, naming the provision and a written justification.
    statute = sign_consent(
        replace(
            v1.core,
            consent_id=bytes.fromhex("c0c0c0c0000000000000000000000002"),
            disclosure_basis="statute",
            organisations=(
                CoveredOrganisation(
                    HOUSING,
                    False,
                    "statute-social-welfare",
                    statute="SHL 1301/2014 41 §",
                    justification="Asunnottomuuden uhka; asiakas ei tavoitettavissa.",
                ),
            ),
        ),
        recorder,
    )

    def admission(
        name: str,
        accepted: list[ConsentRecord],
        judged: ConsentRecord,
        org: bytes,
        roles: list[str],
        now: int,
        refusal: str | None,
    ) -> dict[str, Any]:
        book = ConsentBook()
        book.accept_all(accepted)
        got = book.refusal(judged.core.core_hash, org, frozenset(roles), now)
        assert got == refusal, (name, got)
        return {
            "name": name,
            "records": [r.encode().hex() for r in accepted],
            "core_hash": judged.core.core_hash.hex(),
            "org_id": org.hex(),
            "roles": roles,
            "now": now,
            "refusal": refusal,
        }

    both, full, until = [v1, v2], [v1, v2, v3_revoked], v2.core.valid_until
    admissions = [
        admission("covered", both, v2, KELA, ["professional"], T + 150, None),
        admission(
            "organisation-not-covered", both, v2, TE, ["professional"], T + 150, "koppi.not_covered"
        ),
        admission("role-named-and-held", both, v2, COUNTY, ["professional"], T + 150, None),
        admission("role-mismatch", both, v2, COUNTY, ["doctor"], T + 150, "koppi.role_not_covered"),
        admission("before-valid-from", both, v2, KELA, [], T - 1, "koppi.consent_not_yet_valid"),
        admission("at-valid-until", both, v2, KELA, [], until, "koppi.consent_expired"),
        admission("revoked", full, v2, KELA, [], T + 250, "koppi.consent_revoked"),
        admission("superseded", both, v1, TE, [], T + 150, "koppi.consent_superseded"),
        admission("statutory-basis", [statute], statute, HOUSING, [], T + 150, None),
        admission(
            "statutory-basis-other-organisation",
            [statute],
            statute,
            KELA,
            [],
            T + 150,
            "koppi.not_covered",
        ),
        admission("unknown-version", both, v3_revoked, KELA, [], T + 150, "koppi.no_consent"),
    ]
    return {
        "generated_by": "crypto/vectors/gen_consent.py",
        "description": (
            "Consent records (docs/protocol.md §6). `record` gives every field of one "
            "ConsentCore and its bytes and hashes. Cases: `verify` decodes and verifies a record "
            "against a recorder device (public key, roles, cert log index 1, revocation index) "
            "at `tree_size`; `accept` feeds `records` in order to a fresh ConsentBook (the last "
            "one raises `expected_error` if given; `state_at` and `history` are checked after); "
            "`evidence` accepts `records` and checks the first one's cover against the thread's "
            "client reference and purpose. `covers`: after accepting the records of case "
            "v1-v2-v3-revoked (or only v1 and v2 where `accepted` says so), the cover of "
            "`core_hash` at `now` (`roles`: per organisation that names roles). `admissions`: "
            "the admission rule; after accepting `records`, the version `core_hash` admits a "
            "professional of `org_id` holding `roles` at `now`, or refuses with `refusal`."
        ),
        "record": {
            "recorder_seed": RECORDER_SEED.hex(),
            "core": v1.core.encode().hex(),
            "core_hash": v1.core.core_hash.hex(),
            "record": raw.hex(),
            "record_hash": v1.record_hash.hex(),
            "log_entry": v1.log_entry().hex(),
            "fields": {
                "consent_id": v1.core.consent_id.hex(),
                "version": 1,
                "client_ref": CLIENT.hex(),
                "purpose": v1.core.purpose,
                "organisations": [
                    {
                        "org_id": o.org_id.hex(),
                        "may_store": o.may_store,
                        "processing_basis": o.processing_basis,
                        "roles": sorted(o.roles),
                        "statute": o.statute,
                        "justification": o.justification,
                        "full_history": o.full_history,
                    }
                    for o in v1.core.organisations
                ],
                "data_categories": sorted(v1.core.data_categories),
                "valid_from": v1.core.valid_from,
                "valid_until": v1.core.valid_until,
                "status": "active",
                "disclosure_basis": "consent",
                "how_obtained": "oral-recorded",
                "info_text_hash": v1.core.info_text_hash.hex(),
                "details_hash": v1.core.details_hash.hex(),
                "recorded_at": T,
                "revocation_channel": "",
            },
        },
        "covers": covers,
        "admissions": admissions,
        "cases": cases,
    }


VECTORS = {"koppi-consent.json": consent_vectors}
