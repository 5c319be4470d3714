"""What a consent looks like outside Koppi: the client's printable receipt (Finnish, Swedish,
English) and an HL7 FHIR R5 `Consent` resource for other systems (mapping: docs/consent-fhir.md).

Both are rendered from the signed versions of one consent (what the server enforces admission
from) and the organisations' names; neither needs the end-to-end encrypted consent text. Pure
functions: no I/O, times in seconds, printed in Finland's time zone.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crypto.consent import ConsentBook, ConsentRecord, CoveredOrganisation
from server.templates import TEMPLATES

HELSINKI = ZoneInfo("Europe/Helsinki")
EXT = "https://koppi.example/fhir/StructureDefinition/"
LANGUAGES = ("fi", "sv", "en")


@dataclass(frozen=True)
class Disclosure:
    """How many messages of the thread an organisation received while the consent covered it,
    and when the first and the last of them was sent."""

    org_id: bytes
    messages: int
    first_at: int | None = None
    last_at: int | None = None
    stored: int = 0  # of them, exported to the organisation's own records (disclosure records)


# --- the state of the latest version ----------------------------------------------------------


def _status(latest: ConsentRecord, now: int) -> str:
    """active | revoked | expired | pending (not yet valid), as the receipt says it."""
    core = latest.core
    if core.status == "revoked":
        return "revoked"
    if now >= core.valid_until:
        return "expired"
    return "pending" if now < core.valid_from else "active"


def _book(versions: Sequence[ConsentRecord]) -> ConsentBook:
    """The chain v1..vN of one consent; a mixed list would silently drop every other consent."""
    if not versions:
        raise ValueError("a consent has at least one version")
    if len({v.core.consent_id for v in versions}) != 1:
        raise ValueError("the versions of one consent, not of several")
    book = ConsentBook()
    book.accept_all(versions)
    return book


# --- FHIR R5 ------------------------------------------------------------------------------------

FHIR_STATUS = {"active": "active", "pending": "draft", "revoked": "inactive", "expired": "inactive"}


def _instant(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _org_reference(org: CoveredOrganisation, names: Mapping[bytes, str]) -> dict[str, Any]:
    reference: dict[str, Any] = {
        "type": "Organization",
        "identifier": {"system": "urn:koppi:org", "value": org.org_id.hex()},
    }
    if org.org_id in names:
        reference["display"] = names[org.org_id]
    return reference


def _actor(org: CoveredOrganisation, names: Mapping[bytes, str]) -> dict[str, Any]:
    extension: list[dict[str, Any]] = [
        {"url": EXT + "may-store", "valueBoolean": org.may_store},
        {"url": EXT + "processing-basis", "valueCode": org.processing_basis},
        {"url": EXT + "full-history", "valueBoolean": org.full_history},
    ]
    extension += [{"url": EXT + "role", "valueCode": r} for r in sorted(org.roles)]
    if org.statute:
        extension.append(
            {
                "url": EXT + "statutory-basis",
                "extension": [
                    {"url": "provision", "valueString": org.statute},
                    {"url": "justification", "valueString": org.justification},
                ],
            }
        )
    return {
        "extension": extension,
        "role": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                    "display": "information recipient",
                }
            ]
        },
        "reference": _org_reference(org, names),
    }


def fhir_consent(
    versions: Sequence[ConsentRecord], org_names: Mapping[bytes, str], now: int
) -> dict[str, Any]:
    """The latest version of one consent as a FHIR R5 Consent (JSON), with Koppi's extensions."""
    latest = _book(versions).latest(versions[0].core.consent_id)
    assert latest is not None
    core, first = latest.core, versions[0].core
    extension: list[dict[str, Any]] = [
        {"url": EXT + "version", "valuePositiveInt": core.version},
        {"url": EXT + "how-obtained", "valueCode": core.how_obtained},
        {"url": EXT + "disclosure-basis", "valueCode": core.disclosure_basis},
        {
            "url": EXT + "information-text-sha256",
            "valueBase64Binary": base64.b64encode(core.info_text_hash).decode(),
        },
        {
            "url": EXT + "record-sha256",
            "valueBase64Binary": base64.b64encode(latest.record_hash).decode(),
        },
    ]
    if core.status == "revoked":
        extension.append(
            {
                "url": EXT + "revocation",
                "extension": [
                    {"url": "at", "valueDateTime": _instant(core.recorded_at)},
                    {"url": "channel", "valueCode": core.revocation_channel},
                ],
            }
        )
    basis: list[dict[str, Any]] = [
        {"coding": [{"system": "urn:koppi:disclosure-basis", "code": core.disclosure_basis}]}
    ]
    basis += [
        {"coding": [{"system": "urn:koppi:statute", "code": "statute"}], "text": o.statute}
        for o in core.organisations
        if o.statute
    ]
    subject = {"identifier": {"system": "urn:koppi:client-ref", "value": core.client_ref.hex()}}
    return {
        "resourceType": "Consent",
        "id": core.consent_id.hex(),
        "extension": extension,
        "identifier": [
            {"system": "urn:koppi:consent", "value": f"{core.consent_id.hex()}/{core.version}"}
        ],
        "status": FHIR_STATUS[_status(latest, now)],
        "category": [
            {
                "coding": [
                    {"system": "http://loinc.org", "code": "59284-0", "display": "Consent Document"}
                ]
            }
        ],
        "subject": subject,
        "date": datetime.fromtimestamp(first.recorded_at, HELSINKI).date().isoformat(),
        "period": {"start": _instant(core.valid_from), "end": _instant(core.valid_until)},
        "grantor": [subject],
        "grantee": [_org_reference(o, org_names) for o in core.organisations],
        "regulatoryBasis": basis,
        "decision": "permit",
        "provision": [
            {
                "period": {"start": _instant(core.valid_from), "end": _instant(core.valid_until)},
                "actor": [_actor(o, org_names) for o in core.organisations],
                "purpose": [{"system": "urn:koppi:purpose", "code": core.purpose}],
                "documentType": [
                    {"system": "urn:koppi:data-category", "code": c}
                    for c in sorted(core.data_categories)
                ],
            }
        ],
    }


# --- the client's receipt -------------------------------------------------------------------------

WORDS: dict[str, dict[str, str]] = {
    # purposes
    "rehabilitation-planning": {"fi": "kuntoutuksen suunnittelu", "sv": "planering av rehabilitering", "en": "planning of rehabilitation"},  # noqa: E501
    "income-support-coordination": {"fi": "toimeentulotuen yhteensovittaminen", "sv": "samordning av utkomststöd", "en": "coordination of income support"},  # noqa: E501
    "employment-services": {"fi": "työllisyyspalvelut", "sv": "sysselsättningstjänster", "en": "employment services"},  # noqa: E501
    "youth-guidance": {"fi": "nuorten ohjaus", "sv": "vägledning för unga", "en": "guidance for young people"},  # noqa: E501
    "discharge-planning": {"fi": "kotiutumisen suunnittelu", "sv": "planering av utskrivning", "en": "planning of discharge from hospital"},  # noqa: E501
    # data categories
    "health": {"fi": "terveystiedot", "sv": "hälsouppgifter", "en": "health"},
    "social-welfare": {"fi": "sosiaalihuollon tiedot", "sv": "socialvårdsuppgifter", "en": "social welfare"},  # noqa: E501
    "income": {"fi": "tulot ja etuudet", "sv": "inkomster och förmåner", "en": "income and benefits"},  # noqa: E501
    "employment": {"fi": "työllisyys", "sv": "sysselsättning", "en": "employment"},
    "education": {"fi": "koulutus", "sv": "utbildning", "en": "education"},
    "housing": {"fi": "asuminen", "sv": "boende", "en": "housing"},
    "family": {"fi": "perhe", "sv": "familj", "en": "family"},
    # how obtained
    "written": {"fi": "kirjallisesti", "sv": "skriftligt", "en": "in writing"},
    "electronic": {"fi": "sähköisesti", "sv": "elektroniskt", "en": "electronically"},
    "oral-recorded": {"fi": "suullisesti, viranomaisen kirjaamana", "sv": "muntligt, antecknat av en tjänsteman", "en": "orally, recorded by an official"},  # noqa: E501
    # revocation channels
    "in-person": {"fi": "henkilökohtaisesti", "sv": "personligen", "en": "in person"},
    "phone": {"fi": "puhelimitse", "sv": "per telefon", "en": "by phone"},
    # statuses
    "active": {"fi": "voimassa", "sv": "gällande", "en": "in force"},
    "pending": {"fi": "ei vielä voimassa", "sv": "ännu inte gällande", "en": "not yet in force"},
    "expired": {"fi": "päättynyt", "sv": "upphört", "en": "ended"},
    "revoked": {"fi": "peruttu", "sv": "återkallat", "en": "withdrawn"},
    # history events
    "given": {"fi": "annettu", "sv": "givet", "en": "given"},
    "superseded": {"fi": "korvattu uudella versiolla", "sv": "ersatt av en ny version", "en": "replaced by a new version"},  # noqa: E501
}  # fmt: skip

TEXT: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Kuittaus suostumuksesta",
        "intro": "Tämä on kuittaus suostumuksesta, jonka annoit tietojesi luovuttamiseen verkostopalaverin ammattilaisten välillä.",  # noqa: E501
        "agreed": "Mihin suostuit",
        "purpose": "Tarkoitus",
        "categories": "Tiedot",
        "organisations": "Organisaatiot, joiden ammattilaiset saavat tiedot",
        "may_store": "saa tallentaa omaan asiakirjaansa",
        "may_not_store": "ei tallenna omaan asiakirjaansa",
        "roles": "vain tehtävät",
        "full_history": "näkee myös aiemmat viestit",
        "valid": "Voimassa",
        "obtained": "Suostumus annettiin",
        "status": "Tila nyt",
        "revoked_on": "Peruttu",
        "history": "Muutokset",
        "version": "versio",
        "exception": "Poikkeus: tiedonsaanti lain nojalla ilman suostumustasi",
        "exception_intro": "Seuraavat organisaatiot saavat tiedot lain perusteella, vaikka suostumus ei niitä kattaisi. Perustelun kirjasi asian käsittelijä.",  # noqa: E501
        "provision": "Lainkohta",
        "justification": "Perustelu",
        "withdraw": "Näin perut suostumuksen",
        "withdraw_how": "Kerro kenelle tahansa verkostopalaverin ammattilaiselle, että haluat perua suostumuksen: henkilökohtaisesti, puhelimitse tai kirjallisesti. Peruminen tulee voimaan heti: peruttua suostumusta ei käytetä uusien viestien välittämiseen.",  # noqa: E501
        "forward": "Peruminen koskee vain tulevaa. Se ei poista tietoja, jotka organisaatiot ovat jo lain mukaan tallentaneet omiin asiakirjoihinsa.",  # noqa: E501
        "disclosures": "Kenelle tietoja on luovutettu",
        "messages": "viestiä",
        "stored": "tallennettu sen omiin asiakirjoihin",
        "none_yet": "Tietoja ei ole vielä luovutettu kenellekään.",
        "reference": "Viite",
        "printed": "Tulostettu",
    },
    "sv": {
        "title": "Kvitto på samtycke",
        "intro": "Detta är ett kvitto på det samtycke du gav till att dina uppgifter lämnas ut mellan de yrkespersoner som deltar i nätverksmötet.",  # noqa: E501
        "agreed": "Vad du samtyckte till",
        "purpose": "Syfte",
        "categories": "Uppgifter",
        "organisations": "Organisationer vars yrkespersoner får uppgifterna",
        "may_store": "får spara i sina egna handlingar",
        "may_not_store": "sparar inte i sina egna handlingar",
        "roles": "endast uppgifterna",
        "full_history": "ser också tidigare meddelanden",
        "valid": "Giltigt",
        "obtained": "Samtycket gavs",
        "status": "Status nu",
        "revoked_on": "Återkallat",
        "history": "Ändringar",
        "version": "version",
        "exception": "Undantag: utlämnande med stöd av lag utan ditt samtycke",
        "exception_intro": "Följande organisationer får uppgifterna med stöd av lag, även om samtycket inte omfattar dem. Motiveringen antecknades av handläggaren.",  # noqa: E501
        "provision": "Lagrum",
        "justification": "Motivering",
        "withdraw": "Så här återkallar du samtycket",
        "withdraw_how": "Säg till vilken yrkesperson som helst i nätverksmötet att du vill återkalla samtycket: personligen, per telefon eller skriftligt. Återkallelsen gäller genast: ett återkallat samtycke används inte för att förmedla nya meddelanden.",  # noqa: E501
        "forward": "Återkallelsen gäller bara framåt. Den tar inte bort uppgifter som organisationerna redan lagligt har sparat i sina egna handlingar.",  # noqa: E501
        "disclosures": "Till vem uppgifter har lämnats ut",
        "messages": "meddelanden",
        "stored": "sparade i dess egna handlingar",
        "none_yet": "Inga uppgifter har ännu lämnats ut.",
        "reference": "Referens",
        "printed": "Utskrivet",
    },
    "en": {
        "title": "Consent receipt",
        "intro": "This is a receipt for the consent you gave for your information to pass between the professionals of your case conference.",  # noqa: E501
        "agreed": "What you agreed to",
        "purpose": "Purpose",
        "categories": "Information",
        "organisations": "Organisations whose professionals receive the information",
        "may_store": "may store it in its own records",
        "may_not_store": "does not store it in its own records",
        "roles": "only the roles",
        "full_history": "also sees earlier messages",
        "valid": "Valid",
        "obtained": "The consent was given",
        "status": "Status now",
        "revoked_on": "Withdrawn",
        "history": "Changes",
        "version": "version",
        "exception": "Exception: disclosure by law without your consent",
        "exception_intro": "The following organisations receive the information on a legal basis, even though the consent does not cover them. The justification was recorded by the professional handling your case.",  # noqa: E501
        "provision": "Provision",
        "justification": "Justification",
        "withdraw": "How to withdraw your consent",
        "withdraw_how": "Tell any professional of the case conference that you want to withdraw it: in person, by phone or in writing. It takes effect at once: a withdrawn consent is not used to pass on any new message.",  # noqa: E501
        "forward": "Withdrawal works forward only. It cannot recall copies that organisations have already stored lawfully in their own records.",  # noqa: E501
        "disclosures": "Who has received information",
        "messages": "messages",
        "stored": "stored in its own records",
        "none_yet": "No information has been passed on yet.",
        "reference": "Reference",
        "printed": "Printed",
    },
}  # fmt: skip

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip


def format_date(seconds: int, lang: str) -> str:
    """A date as each language writes it, in Finland's time: 24.11.2026, 2026-11-24,
    24 November 2026."""
    d = datetime.fromtimestamp(seconds, HELSINKI).date()
    if lang == "fi":
        return f"{d.day}.{d.month}.{d.year}"
    if lang == "sv":
        return d.isoformat()
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def render_receipt(
    versions: Sequence[ConsentRecord],
    org_names: Mapping[bytes, str],
    lang: str,
    now: int,
    disclosures: Sequence[Disclosure] = (),
) -> str:
    """The client's printable receipt for one consent, in plain `lang` (fi, sv or en)."""
    if lang not in LANGUAGES:
        raise ValueError(f"no receipt in {lang!r}: one of {', '.join(LANGUAGES)}")
    book = _book(versions)
    consent_id = versions[0].core.consent_id
    latest = book.latest(consent_id)
    assert latest is not None
    core = latest.core

    def word(code: str) -> str:
        return WORDS.get(code, {}).get(lang, code)

    def name(org_id: bytes) -> str:
        return org_names.get(org_id, org_id.hex())

    def org_row(o: CoveredOrganisation) -> dict[str, Any]:
        return {
            "name": name(o.org_id),
            "may_store": o.may_store,
            "full_history": o.full_history,
            "roles": sorted(o.roles),
            "statute": o.statute,
            "justification": o.justification,
        }

    return TEMPLATES.get_template("receipt.html").render(
        lang=lang,
        t=TEXT[lang],
        purpose=word(core.purpose),
        categories=[word(c) for c in sorted(core.data_categories)],
        consented=[org_row(o) for o in core.organisations if not o.statute],
        by_law=[org_row(o) for o in core.organisations if o.statute],
        valid_from=format_date(core.valid_from, lang),
        valid_until=format_date(core.valid_until, lang),
        obtained=word(core.how_obtained),
        status=word(_status(latest, now)),
        revoked=(
            (format_date(core.recorded_at, lang), word(core.revocation_channel))
            if core.status == "revoked"
            else None
        ),
        history=[
            (format_date(e.at, lang), word(e.kind), e.version)
            for e in book.history(consent_id, now)
        ],
        disclosures=[
            {
                "name": name(d.org_id),
                "messages": d.messages,
                "stored": d.stored,
                "first": None if d.first_at is None else format_date(d.first_at, lang),
                "last": None if d.last_at is None else format_date(d.last_at, lang),
            }
            for d in disclosures
            if d.messages or d.stored
        ],
        reference=core.client_ref.hex()[:16],
        printed=format_date(now, lang),
    )
