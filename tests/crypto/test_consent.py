"""Consent records (docs/protocol.md §6): layout, signature, versions, cover, both ways."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.clock import SeededRng
from crypto.consent import (
    DATA_CATEGORIES,
    PURPOSES,
    ConsentBook,
    ConsentCore,
    ConsentError,
    ConsentRecord,
    CoveredOrganisation,
    check_evidence,
    next_version,
    sign_consent,
    verify_consent,
)
from crypto.encoding import DecodeError, Encoder
from crypto.errors import AuthFailed, KoppiError
from crypto.primitives import KemKey, SigningKey, sha256
from crypto.trust import VerifiedDevice, device_id_of
from tests.crypto.vectors import ids, load, unhex

RNG = SeededRng("consent-tests")
RECORDER = SigningKey.generate(RNG)
KELA, COUNTY, TE = (RNG.random_bytes(16) for _ in range(3))
CLIENT = sha256(b"pseudonymous client reference")
T0 = 1_790_000_000


def recorder_device(
    *,
    roles: frozenset[str] = frozenset({"consent-recorder"}),
    revoked: int | None = None,
    key: SigningKey = RECORDER,
) -> VerifiedDevice:
    return VerifiedDevice(
        device_id=device_id_of(key.public), user_id=bytes(16), org_id=COUNTY, roles=roles,
        signing_public=key.public, kem_public=KemKey.generate(RNG).public,
        cert_hash=bytes(32), cert_log_index=1, revoked_at_index=revoked,
    )  # fmt: skip


def core(**kw: object) -> ConsentCore:
    fields: dict[str, object] = dict(
        consent_id=bytes(range(16)),
        version=1,
        prev_version_hash=b"",
        client_ref=CLIENT,
        purpose="rehabilitation-planning",
        organisations=(
            CoveredOrganisation(KELA, True, "statute-kela"),
            CoveredOrganisation(COUNTY, True, "statute-social-welfare"),
            CoveredOrganisation(TE, False, "statute-employment"),
        ),
        data_categories=frozenset({"health", "income"}),
        valid_from=T0,
        valid_until=T0 + 86400 * 365,
        status="active",
        disclosure_basis="consent",
        how_obtained="written",
        info_text_hash=sha256(b"info text v3"),
        details_hash=sha256(b"encrypted details"),
        recorder=device_id_of(RECORDER.public),
        recorded_at=T0,
    )
    fields.update(kw)
    return ConsentCore(**fields)  # type: ignore[arg-type]


def code(exc: pytest.ExceptionInfo[KoppiError]) -> str:
    return exc.value.code


def test_sign_verify_and_round_trip() -> None:
    record = sign_consent(core(), RECORDER)
    data = record.encode()
    back = verify_consent(data, recorder_device(), tree_size=5)
    assert back == record and ConsentRecord.decode(data) == record
    assert record.log_entry() == Encoder("koppi/v1/log-consent").bytes(record.record_hash).finish()
    assert record.core.covered == {KELA, COUNTY, TE}


@given(
    purpose=st.sampled_from(sorted(PURPOSES)),
    categories=st.frozensets(st.sampled_from(sorted(DATA_CATEGORIES))),
    valid=st.tuples(st.integers(0, 2**40), st.integers(1, 2**40)),
    may_store=st.lists(st.booleans(), min_size=3, max_size=3),
    roles=st.frozensets(st.sampled_from(["professional", "keeper", "org-admin"])),
)
def test_encoding_round_trip(
    purpose: str,
    categories: frozenset[str],
    valid: tuple[int, int],
    may_store: list[bool],
    roles: frozenset[str],
) -> None:
    orgs = tuple(
        CoveredOrganisation(o, s, "consent", roles)
        for o, s in zip((KELA, COUNTY, TE), may_store, strict=True)
    )
    c = core(
        purpose=purpose,
        data_categories=categories,
        valid_from=valid[0],
        valid_until=valid[0] + valid[1],
        organisations=orgs,
    )
    assert ConsentCore.decode(c.encode()) == c


def test_the_recorder_must_hold_the_role_and_be_unrevoked() -> None:
    data = sign_consent(core(), RECORDER).encode()
    with pytest.raises(ConsentError) as exc:
        verify_consent(data, recorder_device(roles=frozenset({"professional"})), tree_size=5)
    assert code(exc) == "koppi.not_consent_recorder"
    assert verify_consent(data, recorder_device(revoked=5), tree_size=5)  # before its revocation
    with pytest.raises(ConsentError) as exc:
        verify_consent(data, recorder_device(revoked=5), tree_size=6)
    assert code(exc) == "koppi.recorder_revoked"
    other = SigningKey.generate(RNG)
    with pytest.raises(ConsentError) as exc:
        verify_consent(data, recorder_device(key=other), tree_size=5)
    assert code(exc) == "koppi.wrong_recorder"
    with pytest.raises(ConsentError) as exc:
        sign_consent(core(), other)
    assert code(exc) == "koppi.wrong_recorder"


def test_a_bad_signature_is_refused() -> None:
    record = sign_consent(core(), RECORDER)
    forged = ConsentRecord(replace(record.core, valid_until=T0 + 10**9), record.signature)
    with pytest.raises(AuthFailed):
        verify_consent(forged.encode(), recorder_device(), tree_size=5)


def test_invalid_cores_are_refused() -> None:
    bad = [
        {"purpose": "marketing"},
        {"data_categories": frozenset({"dna"})},
        {"valid_until": T0},
        {"status": "superseded"},
        {"status": "revoked"},  # a revocation names its channel
        {"revocation_channel": "phone"},  # and only a revocation does
        {"disclosure_basis": "whim"},
        {"how_obtained": "rumour"},
        {"version": 2},  # version 2 names its predecessor
        {"organisations": ()},
        {"organisations": (CoveredOrganisation(KELA, True, "consent"),) * 2},
        {"organisations": (CoveredOrganisation(KELA, True, "because"),)},
    ]
    for changes in bad:
        with pytest.raises(ConsentError) as exc:
            core(**changes)
        assert code(exc) == "koppi.bad_consent", changes


def test_strict_decoding() -> None:
    data = sign_consent(core(), RECORDER).encode()
    with pytest.raises(DecodeError):
        ConsentRecord.decode(data + b"\x00")
    # An unsorted list inside the core: swap the first two covered organisations.
    c = core()
    orgs = sorted(o.encode() for o in c.organisations)
    raw = c.encode()
    swapped = (
        raw.replace(orgs[0], b"\x00" * len(orgs[0]))
        .replace(orgs[1], orgs[0])
        .replace(b"\x00" * len(orgs[0]), orgs[1])
    )
    with pytest.raises(DecodeError):
        ConsentCore.decode(swapped)


def chain(book: ConsentBook) -> tuple[ConsentRecord, ConsentRecord]:
    v1 = sign_consent(core(), RECORDER)
    v2 = sign_consent(
        next_version(
            v1,
            recorded_at=T0 + 10,
            recorder=v1.core.recorder,
            organisations=tuple(o for o in v1.core.organisations if o.org_id != TE),
        ),
        RECORDER,
    )
    book.accept(v1)
    book.accept(v2)
    return v1, v2


def test_versions_chain_and_never_roll_back() -> None:
    book = ConsentBook()
    v1, v2 = chain(book)
    book.accept(v1)  # an identical, known version is a no-op
    other_v1 = sign_consent(core(how_obtained="electronic"), RECORDER)
    with pytest.raises(ConsentError) as exc:
        book.accept(other_v1)
    assert code(exc) == "koppi.consent_rollback"
    gap = sign_consent(
        replace(next_version(v2, recorded_at=T0 + 20, recorder=v2.core.recorder), version=4),
        RECORDER,
    )
    with pytest.raises(ConsentError) as exc:
        book.accept(gap)
    assert code(exc) == "koppi.consent_chain"
    other_client = sign_consent(
        next_version(v2, recorded_at=T0 + 20, recorder=v2.core.recorder, client_ref=bytes(32)),
        RECORDER,
    )
    with pytest.raises(ConsentError) as exc:
        book.accept(other_client)
    assert code(exc) == "koppi.consent_chain"
    with pytest.raises(ConsentError) as exc:
        ConsentBook().accept(v2)  # history starts at version 1
    assert code(exc) == "koppi.consent_chain"


def test_revoked_is_final() -> None:
    book = ConsentBook()
    _, v2 = chain(book)
    revoked = sign_consent(
        next_version(
            v2,
            recorded_at=T0 + 30,
            recorder=v2.core.recorder,
            status="revoked",
            revocation_channel="phone",
        ),
        RECORDER,
    )
    book.accept(revoked)
    assert book.state(v2.core.consent_id, T0 + 31) == "revoked"
    again = sign_consent(
        next_version(
            revoked,
            recorded_at=T0 + 40,
            recorder=v2.core.recorder,
            status="active",
            revocation_channel="",
        ),
        RECORDER,
    )
    with pytest.raises(ConsentError) as exc:
        book.accept(again)
    assert code(exc) == "koppi.consent_final"
    assert [e.kind for e in book.history(v2.core.consent_id, T0 + 50)] == [
        "given",
        "superseded",
        "given",
        "superseded",
        "revoked",
    ]


def test_cover_follows_time_and_versions() -> None:
    book = ConsentBook()
    v1, v2 = chain(book)
    old = book.cover(v1.core.core_hash, T0 + 11)
    new = book.cover(v2.core.core_hash, T0 + 11)
    assert old is not None and new is not None
    assert not old.active  # superseded
    assert new.active and new.organisations == {KELA, COUNTY} and new.may_store == {KELA, COUNTY}
    assert old.may_store == {KELA, COUNTY} and old.organisations == {KELA, COUNTY, TE}
    expired = book.cover(v2.core.core_hash, v2.core.valid_until)
    assert expired is not None and not expired.active
    assert book.state(v2.core.consent_id, v2.core.valid_until) == "expired"
    assert book.history(v2.core.consent_id, v2.core.valid_until)[-1].kind == "expired"
    assert book.cover(bytes(32), T0) is None


def test_roles_restrict_the_cover() -> None:
    book = ConsentBook()
    limited = tuple(
        CoveredOrganisation(o, True, "consent", frozenset({"professional"})) for o in (KELA, COUNTY)
    )
    record = sign_consent(core(organisations=limited), RECORDER)
    book.accept(record)
    cover = book.cover(record.core.core_hash, T0 + 1)
    assert cover is not None
    assert cover.roles == {KELA: {"professional"}, COUNTY: {"professional"}}
    keeper = replace(recorder_device(roles=frozenset({"keeper"})), org_id=KELA)
    professional = replace(keeper, roles=frozenset({"professional"}))
    assert cover.covers(professional) and not cover.covers(keeper)


def test_roles_are_per_organisation() -> None:
    """An organisation that names no roles admits every role, whatever the others name."""
    book = ConsentBook()
    orgs = (
        CoveredOrganisation(KELA, True, "consent", frozenset({"professional"})),
        CoveredOrganisation(COUNTY, True, "consent"),
    )
    record = sign_consent(core(organisations=orgs), RECORDER)
    book.accept(record)
    cover = book.cover(record.core.core_hash, T0 + 1)
    assert cover is not None
    keeper = recorder_device(roles=frozenset({"keeper"}))
    assert cover.covers(replace(keeper, org_id=COUNTY))
    assert not cover.covers(replace(keeper, org_id=KELA))


def test_a_statutory_basis_names_provision_and_justification() -> None:
    housing = bytes(range(16))
    org = CoveredOrganisation(
        housing, False, "statute-social-welfare", statute="SHL 41 §", justification="Kiireellinen."
    )
    record = sign_consent(core(organisations=(org,), disclosure_basis="statute"), RECORDER)
    assert ConsentRecord.decode(record.encode()).core.organisations == (org,)
    book = ConsentBook()
    book.accept(record)
    assert book.refusal(record.core.core_hash, housing, frozenset(), T0 + 1) is None
    for statute, justification in (("SHL 41 §", ""), ("", "no provision"), ("SHL 41 §", " ")):
        with pytest.raises(ConsentError) as exc:
            CoveredOrganisation(
                housing, False, "consent", statute=statute, justification=justification
            )
        assert code(exc) == "koppi.bad_consent"
    plain = CoveredOrganisation(KELA, True, "statute-kela")
    with pytest.raises(ConsentError) as exc:  # a statutory basis names its provision for everyone
        core(organisations=(org, plain), disclosure_basis="statute")
    assert code(exc) == "koppi.bad_consent"
    core(organisations=(org, plain))  # a consent may admit one organisation by statute


def test_evidence_must_match_client_and_purpose() -> None:
    book = ConsentBook()
    v1 = sign_consent(core(), RECORDER)
    book.accept(v1)
    cover = book.cover(v1.core.core_hash, T0 + 1)
    assert cover is not None
    check_evidence(cover, CLIENT, "rehabilitation-planning")
    for ref, purpose in ((bytes(32), "rehabilitation-planning"), (CLIENT, "youth-guidance")):
        with pytest.raises(ConsentError) as exc:
            check_evidence(cover, ref, purpose)
        assert code(exc) == "koppi.consent_mismatch"


def test_repr_hides_signature_bytes() -> None:
    record = sign_consent(core(), RECORDER)
    assert record.signature.hex() not in repr(record)


# --- the vector file (the browser twin runs the same cases) ------------------------------------

CONSENT = load("koppi-consent.json")


def test_vector_record() -> None:
    r = CONSENT.doc["record"]
    record = ConsentRecord.decode(unhex(r["record"]))
    assert record.core.encode().hex() == r["core"]
    assert record.core.core_hash.hex() == r["core_hash"]
    assert record.record_hash.hex() == r["record_hash"]
    assert record.log_entry().hex() == r["log_entry"]
    f = r["fields"]
    assert record.core.purpose == f["purpose"] and record.core.how_obtained == f["how_obtained"]
    assert sorted(record.core.data_categories) == f["data_categories"]
    key = SigningKey.from_seed(unhex(r["recorder_seed"]))
    assert sign_consent(record.core, key) == record  # Ed25519 is deterministic


def _run_case(case: dict[str, Any]) -> ConsentBook | None:
    if case["kind"] == "verify":
        public = unhex(case["recorder_public"])
        recorder = VerifiedDevice(
            device_id=device_id_of(public),
            user_id=bytes(16),
            org_id=bytes(16),
            roles=frozenset(case["recorder_roles"]),
            signing_public=public,
            kem_public=bytes(32),
            cert_hash=bytes(32),
            cert_log_index=case["recorder_cert_log_index"],
            revoked_at_index=case["recorder_revoked_at_index"],
        )
        verify_consent(unhex(case["record"]), recorder, tree_size=case["tree_size"])
        return None
    book = ConsentBook()
    records = [ConsentRecord.decode(unhex(r)) for r in case["records"]]
    for r in records:
        book.accept(r)
    if case["kind"] == "evidence":
        first = records[0].core
        cover = book.cover(first.core_hash, first.valid_from)
        assert cover is not None
        check_evidence(cover, unhex(case["thread_client_ref"]), case["thread_purpose"])
    return book


@pytest.mark.parametrize("case", CONSENT.cases, ids=ids(CONSENT.cases))
def test_vector_case(case: dict[str, Any]) -> None:
    if "expected_error" in case:
        with pytest.raises(KoppiError) as exc:
            _run_case(case)
        assert exc.value.code == case["expected_error"]
        return
    book = _run_case(case)
    if "state_at" in case:
        assert book is not None
        cid = ConsentRecord.decode(unhex(case["records"][0])).core.consent_id
        assert book.state(cid, case["state_at"]["time"]) == case["state_at"]["state"]
        assert [e.kind for e in book.history(cid, case["state_at"]["time"])] == case["history"]


def test_vector_covers() -> None:
    full_case = next(c for c in CONSENT.cases if c["name"] == "v1-v2-v3-revoked")
    full = [ConsentRecord.decode(unhex(r)) for r in full_case["records"]]
    for want in CONSENT.doc["covers"]:
        book = ConsentBook()
        book.accept_all(full[:2] if want.get("accepted") == "v1,v2" else full)
        cover = book.cover(unhex(want["core_hash"]), want["now"])
        assert cover is not None
        assert (cover.version, cover.active) == (want["version"], want["active"])
        assert sorted(o.hex() for o in cover.organisations) == want["organisations"]
        assert sorted(o.hex() for o in cover.may_store) == want["may_store"]
        assert {o.hex(): sorted(r) for o, r in cover.roles.items()} == want["roles"]


@pytest.mark.parametrize(
    "case", CONSENT.doc["admissions"], ids=[c["name"] for c in CONSENT.doc["admissions"]]
)
def test_vector_admission(case: dict[str, Any]) -> None:
    """The admission rule, table-driven: covered, not covered, role, time window, revoked,
    superseded, statutory basis (the browser twin runs the same table)."""
    book = ConsentBook()
    book.accept_all(ConsentRecord.decode(unhex(r)) for r in case["records"])
    got = book.refusal(
        unhex(case["core_hash"]), unhex(case["org_id"]), frozenset(case["roles"]), case["now"]
    )
    assert got == case["refusal"]
