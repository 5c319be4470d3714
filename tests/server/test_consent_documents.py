"""The client's consent receipt (fi, sv, en) and the FHIR R5 Consent export, rendered from the
signed versions of one consent (`server/consent_documents.py`). The FHIR output is validated with
the `fhir.resources` library (R5)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.consent import Consent

from crypto.consent import (
    ConsentCore,
    ConsentRecord,
    CoveredOrganisation,
    next_version,
    sign_consent,
)
from crypto.primitives import SigningKey, sha256
from crypto.trust import device_id_of
from server.consent_documents import (
    EXT,
    Disclosure,
    fhir_consent,
    format_date,
    render_receipt,
)

RECORDER = SigningKey.from_seed(bytes(range(32)))
KELA, COUNTY, TE = b"\x0a" * 16, b"\x0b" * 16, b"\x0c" * 16
NAMES = {KELA: "Kela", COUNTY: "Pirkanmaan hyvinvointialue", TE: "Pirkanmaan TE-toimisto"}
T = 1_790_000_000  # 2026-09-21 (Helsinki)
YEAR = 365 * 86400


def v1(**over: Any) -> ConsentRecord:
    fields: dict[str, Any] = dict(
        consent_id=bytes(range(16)),
        version=1,
        prev_version_hash=b"",
        client_ref=sha256(b"asiakas"),
        purpose="rehabilitation-planning",
        organisations=(
            CoveredOrganisation(KELA, True, "statute-kela"),
            CoveredOrganisation(COUNTY, True, "statute-social-welfare", frozenset({"doctor"})),
            CoveredOrganisation(TE, False, "statute-employment"),
        ),
        data_categories=frozenset({"health", "income"}),
        valid_from=T,
        valid_until=T + YEAR,
        status="active",
        disclosure_basis="consent",
        how_obtained="oral-recorded",
        info_text_hash=sha256(b"Suostumusteksti v3"),
        details_hash=b"",
        recorder=device_id_of(RECORDER.public),
        recorded_at=T,
    )
    fields.update(over)
    return sign_consent(ConsentCore(**fields), RECORDER)


def then(previous: ConsentRecord, at: int, **changes: Any) -> ConsentRecord:
    core = next_version(previous, recorded_at=at, recorder=previous.core.recorder, **changes)
    return sign_consent(core, RECORDER)


def revoked_chain() -> list[ConsentRecord]:
    first = v1()
    second = then(first, T + 86400, organisations=first.core.organisations[:2])
    return [
        first,
        second,
        then(second, T + 2 * 86400, status="revoked", revocation_channel="phone"),
    ]


def validated(doc: dict[str, Any]) -> Consent:
    return Consent.model_validate(doc)


def extension(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [e for e in items if e["url"] == EXT + name]
    return found


# --- FHIR R5 ------------------------------------------------------------------------------------


def test_an_active_consent_is_a_valid_fhir_r5_consent() -> None:
    doc = fhir_consent([v1()], NAMES, T + 10)
    consent = validated(doc)
    assert consent.status == "active" and consent.decision == "permit"
    assert doc["subject"]["identifier"] == {
        "system": "urn:koppi:client-ref",
        "value": sha256(b"asiakas").hex(),
    }
    assert [g["display"] for g in doc["grantee"]] == ["Kela", "Pirkanmaan hyvinvointialue",
                                                      "Pirkanmaan TE-toimisto"]  # fmt: skip
    (provision,) = doc["provision"]
    assert provision["purpose"] == [{"system": "urn:koppi:purpose",
                                     "code": "rehabilitation-planning"}]  # fmt: skip
    assert [c["code"] for c in provision["documentType"]] == ["health", "income"]
    county = provision["actor"][1]
    assert extension(county["extension"], "role")["valueCode"] == "doctor"
    assert extension(county["extension"], "may-store")["valueBoolean"] is True
    te = provision["actor"][2]
    assert extension(te["extension"], "may-store")["valueBoolean"] is False
    assert extension(doc["extension"], "how-obtained")["valueCode"] == "oral-recorded"
    assert extension(doc["extension"], "version")["valuePositiveInt"] == 1
    assert doc["period"] == {"start": "2026-09-21T14:13:20Z", "end": "2027-09-21T14:13:20Z"}
    assert doc["date"] == "2026-09-21"


def test_the_export_is_of_the_latest_version() -> None:
    chain = revoked_chain()[:2]
    doc = fhir_consent(chain, NAMES, T + 86400 + 1)
    validated(doc)
    assert [g["identifier"]["value"] for g in doc["grantee"]] == [KELA.hex(), COUNTY.hex()]
    assert doc["identifier"][0]["value"] == f"{bytes(range(16)).hex()}/2"


@pytest.mark.parametrize(
    ("chain", "now", "status"),
    [
        (revoked_chain(), T + 3 * 86400, "inactive"),
        ([v1()], T + YEAR, "inactive"),  # expired
        ([v1()], T - 1, "draft"),  # not yet in force
    ],
    ids=["revoked", "expired", "not-yet-valid"],
)
def test_status_mapping(chain: list[ConsentRecord], now: int, status: str) -> None:
    doc = fhir_consent(chain, NAMES, now)
    assert validated(doc).status == status
    revocations = [e for e in doc["extension"] if e["url"] == EXT + "revocation"]
    if chain[-1].core.status == "revoked":
        (revocation,) = revocations
        assert {"url": "channel", "valueCode": "phone"} in revocation["extension"]
    else:
        assert revocations == []


def test_a_statutory_basis_is_a_regulatory_basis_with_its_provision() -> None:
    orgs = (
        CoveredOrganisation(KELA, True, "statute-kela"),
        CoveredOrganisation(TE, False, "statute-employment", statute="JTYPL 916/2012 13 §",
                            justification="Työllistymissuunnitelma."),
    )  # fmt: skip
    doc = fhir_consent([v1(organisations=orgs)], NAMES, T + 1)
    validated(doc)
    assert {"coding": [{"system": "urn:koppi:statute", "code": "statute"}],
            "text": "JTYPL 916/2012 13 §"} in doc["regulatoryBasis"]  # fmt: skip
    statutory = extension(doc["provision"][0]["actor"][1]["extension"], "statutory-basis")
    assert {"url": "justification", "valueString": "Työllistymissuunnitelma."} in statutory[
        "extension"
    ]


# --- the receipt ----------------------------------------------------------------------------------

RECEIPT_SAYS = {
    "fi": ["Kuittaus suostumuksesta", "kuntoutuksen suunnittelu", "21.9.2026", "peruttu",
           "puhelimitse", "Näin perut suostumuksen",
           "Se ei poista tietoja, jotka organisaatiot ovat jo lain mukaan tallentaneet",
           "korvattu uudella versiolla", "Pirkanmaan hyvinvointialue: saa tallentaa",
           "Kela: 5 viestiä", "tallennettu sen omiin asiakirjoihin: 2"],
    "sv": ["Kvitto på samtycke", "planering av rehabilitering", "2026-09-21", "återkallat",
           "per telefon", "Så här återkallar du samtycket",
           "Den tar inte bort uppgifter som organisationerna redan lagligt har sparat",
           "ersatt av en ny version", "Pirkanmaan hyvinvointialue: får spara",
           "Kela: 5 meddelanden", "sparade i dess egna handlingar: 2"],
    "en": ["Consent receipt", "planning of rehabilitation", "21 September 2026", "withdrawn",
           "by phone", "How to withdraw your consent",
           "It cannot recall copies that organisations have already stored lawfully",
           "replaced by a new version", "Pirkanmaan hyvinvointialue: may store",
           "Kela: 5 messages", "stored in its own records: 2"],
}  # fmt: skip


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_the_receipt_says_what_was_agreed_and_how_to_withdraw(lang: str) -> None:
    sent = [Disclosure(KELA, 5, T + 100, T + 86000, stored=2), Disclosure(TE, 0)]
    html = render_receipt(revoked_chain(), NAMES, lang, T + 3 * 86400, sent)
    for text in RECEIPT_SAYS[lang]:
        assert text in html, (lang, text)
    assert f'<html lang="{lang}">' in html
    assert html.count("<li>") == 2 + 5 + 1  # organisations, history events, one disclosure
    assert "Pirkanmaan TE-toimisto" not in html  # v3 no longer names it; it received nothing
    assert 'class="exception"' not in html


def test_the_receipt_shows_a_statutory_basis_as_an_exception() -> None:
    orgs = (
        CoveredOrganisation(KELA, True, "statute-kela"),
        CoveredOrganisation(TE, False, "statute-employment", statute="JTYPL 916/2012 13 §",
                            justification="Työllistymissuunnitelma <vaatii> tiedot."),
    )  # fmt: skip
    html = render_receipt([v1(organisations=orgs)], NAMES, "fi", T + 1)
    exception = html[html.index('class="exception"') :]
    assert "Pirkanmaan TE-toimisto: Lainkohta JTYPL 916/2012 13 §" in exception
    assert "Työllistymissuunnitelma &lt;vaatii&gt; tiedot." in exception
    assert "Tietoja ei ole vielä luovutettu kenellekään." in html


def test_the_receipt_escapes_names_and_refuses_unknown_languages() -> None:
    html = render_receipt([v1()], {**NAMES, KELA: "<script>alert(1)</script>"}, "en", T + 1)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    with pytest.raises(ValueError):
        render_receipt([v1()], NAMES, "de", T + 1)


def test_dates_are_written_as_each_language_does_in_finnish_time() -> None:
    midnight_utc = 1_795_478_400  # 2026-11-24 00:00 UTC is 02:00 in Helsinki
    assert [format_date(midnight_utc - 1, lang) for lang in ("fi", "sv", "en")] == [
        "24.11.2026",
        "2026-11-24",
        "24 November 2026",
    ]


def test_an_organisation_let_read_from_the_start_says_so() -> None:
    orgs = (
        CoveredOrganisation(KELA, True, "statute-kela"),
        CoveredOrganisation(TE, False, "statute-employment", full_history=True),
    )
    record = v1(organisations=orgs)
    doc = fhir_consent([record], NAMES, T + 1)
    validated(doc)
    te = doc["provision"][0]["actor"][1]
    assert extension(te["extension"], "full-history")["valueBoolean"] is True
    html = render_receipt([record], NAMES, "en", T + 1)
    assert "Pirkanmaan TE-toimisto: does not store it in its own records; also sees earlier" in html
    assert "Kela: may store it in its own records</li>" in html


def test_versions_of_several_consents_are_refused() -> None:
    """Rendering only the first consent of a mixed list would hide the others from the client."""
    mixed = [v1(), v1(consent_id=b"\x01" * 16)]
    with pytest.raises(ValueError):
        fhir_consent(mixed, NAMES, T + 1)
    with pytest.raises(ValueError):
        render_receipt(mixed, NAMES, "en", T + 1)


@pytest.mark.parametrize(
    ("now", "says"),
    [
        (T + YEAR, ['<dd class="status">ended</dd>', "21 September 2027: ended (version 1)"]),
        (T - 1, ['<dd class="status">not yet in force</dd>']),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_the_receipt_says_when_a_consent_is_not_in_force(now: int, says: list[str]) -> None:
    html = render_receipt([v1()], NAMES, "en", now)
    for text in says:
        assert text in html
    assert "21 September 2026: given (version 1)" in html


def test_a_consent_of_only_statutory_organisations_lists_them_only_as_exceptions() -> None:
    """No empty "organisations" heading that would suggest the consent itself covers someone."""
    orgs = (CoveredOrganisation(KELA, True, "statute-kela", statute="KelaL 1 §",
                                justification="Etuuskäsittely."),)  # fmt: skip
    record = v1(organisations=orgs, disclosure_basis="statute")
    html = render_receipt([record], NAMES, "en", T + 1)
    assert 'class="organisations"' not in html
    assert "Kela: Provision KelaL 1 §. Justification: Etuuskäsittely." in html
