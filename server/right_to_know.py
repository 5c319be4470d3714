"""The client's right-to-know report (Act 703/2023 on the electronic processing of client data in
social and health care, section 11): from the logs, which organisations and professionals
processed the client's case data, to whom it was disclosed, when, and on what basis.

Built from what the server records about a thread, never from content (it has none): the audit
trail's thread events (admission decisions, consent changes, commits, closing, purges, and the
`message.stored` / `message.delivered` events where the deployment writes them), the disclosure
records of exports, the signed consent versions, and the headers of messages still stored.
The report is a JSON document (shape: docs/protocol.md §11, "The right-to-know report"); the
printable form in Finnish, Swedish or English is rendered from that JSON alone, so the two
always agree. Pure functions: no I/O; times in ms, printed in Finland's time zone.

Every subject is parsed defensively: an event this code does not know, or one whose subject
does not have the expected form, is still reported (as an action of its actor, or of the
server), never dropped and never an error.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crypto.consent import ConsentRecord
from server.consent_documents import HELSINKI, LANGUAGES, WORDS
from server.db.tables import AuditEvent, ConsentVersion, Disclosure, Thread
from server.repositories.threads import StoredMessage
from server.templates import TEMPLATES

Json = dict[str, Any]
REPORT = "right-to-know"
VERSION = 1

ADMISSION = frozenset({"admission.join", "admission.reconnect", "admission.consent_change"})
RECORDED = frozenset({"consent.given", "consent.superseded", "consent.revoked"})  # by a recorder
ADMITTED = "koppi.admitted"  # the reason of an admitting decision (server.services.admission)
ACCOUNT_ENDED = "user.disabled"  # the user's every access ends with their account
ENDED_BY_ACCOUNT = "koppi.user_disabled"

_REF = re.compile(r"^([0-9a-f]{32})v([0-9]{1,9})$")  # a consent version: <id hex>v<version>
_INT = re.compile(r"^[0-9]{1,18}$")
_RANGE = re.compile(r"^([0-9]{1,18})-([0-9]{1,18})$")
_DEVICE = re.compile(r"^[0-9a-f]{32}$")  # a device id's first 16 bytes, hex


@dataclass(frozen=True)
class Directory:
    """Names for the ids in the logs: professionals (username, organisation), organisations,
    and whose each device is (a removal names a device)."""

    users: Mapping[uuid.UUID, tuple[str, uuid.UUID]]
    orgs: Mapping[uuid.UUID, str]
    devices: Mapping[bytes, uuid.UUID] = field(default_factory=dict)


@dataclass(frozen=True)
class ThreadLogs:
    """Everything recorded about one thread that the report reads."""

    thread: Thread
    events: Sequence[AuditEvent]  # the thread's audit events, in chain order
    consents: Sequence[ConsentVersion]  # every recorded version, in recording order
    disclosures: Sequence[Disclosure]
    messages: Sequence[StoredMessage] = ()  # headers of the messages still stored
    account_events: Sequence[AuditEvent] = ()  # `user.disabled` of the thread's professionals


def build_report(
    scope: str, client_ref: str, threads: Sequence[ThreadLogs], names: Directory, now_ms: int
) -> Json:
    """The report on one thread (`scope` "thread") or every thread of the client ("client")."""
    return {
        "report": REPORT,
        "version": VERSION,
        "scope": scope,
        "client_ref": client_ref,
        "generated_at": now_ms,
        "threads": [_Thread(t, names).build() for t in threads],
    }


# --- parsing the logs ---------------------------------------------------------------------------


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _ref(text: str) -> tuple[str, int] | None:
    m = _REF.fullmatch(text)
    return None if m is None else (m[1], int(m[2]))


def _int(text: str) -> int | None:
    return int(text) if _INT.fullmatch(text) else None


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _label_basis(label: str) -> str | None:
    try:
        basis = json.loads(label).get("basis")
    except (ValueError, AttributeError):
        return None
    return basis if isinstance(basis, str) else None


@dataclass
class _Message:
    sender: uuid.UUID | None
    at: int
    msg_id: str  # base64url, as disclosure records list them
    basis: str | None  # the storage label's basis


@dataclass
class _Person:
    user: uuid.UUID
    org: uuid.UUID
    access: list[Json] = field(default_factory=list)
    open: Json | None = None
    wrote: list[int] = field(default_factory=list)  # times
    intervals: list[tuple[int, int, int]] = field(default_factory=list)  # (first, last, at)
    received: set[int] = field(default_factory=set)
    received_at: list[int] = field(default_factory=list)
    exported: int = 0
    exports: int = 0
    actions: list[Json] = field(default_factory=list)

    def active(self) -> bool:
        return bool(self.access or self.wrote or self.received or self.exports or self.actions)


class _Versions:
    """The thread's signed consent versions: what each one said, and which was in force when."""

    def __init__(self, rows: Sequence[ConsentVersion]) -> None:
        self.rows = [(row, ConsentRecord.decode(row.record)) for row in rows]
        self.by_ref = {(r.core.consent_id.hex(), r.core.version): r for _, r in self.rows}

    def basis(self, ref: tuple[str, int], org: uuid.UUID) -> Json:
        """On what an organisation was admitted under a version: the client's consent, or a
        statutory provision the version names for it."""
        record = self.by_ref.get(ref)
        entry = None
        if record is not None:
            entry = next((o for o in record.core.organisations if o.org_id == org.bytes), None)
        if entry is None:
            return {"consent": ref[0], "version": ref[1], "basis": "unknown", "statute": None}
        statutory = bool(entry.statute) or (
            record is not None and record.core.disclosure_basis == "statute"
        )
        return {
            "consent": ref[0],
            "version": ref[1],
            "basis": "statute" if statutory else "consent",
            "statute": entry.statute or None,
        }

    def in_force(self, org: uuid.UUID, at_ms: int) -> Json | None:
        """The basis of the version in force at `at_ms` for `org` (the rule admission applies:
        the latest version of the consent given last), or None if none covered it then."""
        current: ConsentRecord | None = None
        for row, record in self.rows:
            if row.created_at > at_ms:
                break
            if record.core.version == 1 or (
                current is not None and record.core.consent_id == current.core.consent_id
            ):
                current = record
        if current is None or current.core.status != "active":
            return None
        core = current.core
        if not core.valid_from * 1000 <= at_ms < core.valid_until * 1000:
            return None
        if org.bytes not in core.covered:
            return None
        return self.basis((core.consent_id.hex(), core.version), org)

    def describe(self, record: ConsentRecord, orgs: Mapping[uuid.UUID, str]) -> Json:
        core = record.core
        covered = []
        for o in core.organisations:
            org = uuid.UUID(bytes=o.org_id)
            basis = self.basis((core.consent_id.hex(), core.version), org)
            covered.append({"org": str(org), "name": orgs.get(org), "may_store": o.may_store,
                            "basis": basis["basis"], "statute": basis["statute"]})  # fmt: skip
        return {
            "consent": core.consent_id.hex(),
            "version": core.version,
            "valid_from": core.valid_from * 1000,
            "valid_until": core.valid_until * 1000,
            "data_categories": sorted(core.data_categories),
            "organisations": covered,
        }


# (at, event id, member, their organisation, reason, consent version or None)
_Decision = tuple[int, int, uuid.UUID, uuid.UUID, str, tuple[str, int] | None]


class _Thread:
    def __init__(self, logs: ThreadLogs, names: Directory) -> None:
        self.logs, self.names = logs, names
        self.versions = _Versions(logs.consents)
        self.people: dict[uuid.UUID, _Person] = {}
        self.messages: dict[int, _Message] = {}  # by seq
        self.decisions: list[_Decision] = []
        self.recorded_by: dict[tuple[str, int], uuid.UUID | None] = {}
        self.expired: dict[tuple[str, int], int] = {}
        self.closed: Json | None = None
        self.purged: list[Json] = []
        self.other: list[Json] = []

    def person(self, user: uuid.UUID, org: uuid.UUID) -> _Person:
        if user not in self.people:
            known = self.names.users.get(user)
            self.people[user] = _Person(user, known[1] if known else org)
        return self.people[user]

    def who(self, user: uuid.UUID | None) -> Json | None:
        if user is None:
            return None
        known = self.names.users.get(user)
        org = known[1] if known else None
        return {
            "user": str(user),
            "username": known[0] if known else None,
            "org": None if org is None else str(org),
            "org_name": None if org is None else self.names.orgs.get(org),
        }

    def action(self, event: AuditEvent, detail: str) -> None:
        entry = {"at": event.at, "action": event.action, "detail": detail}
        if event.actor is None:
            self.other.append(entry)
        else:
            self.person(event.actor, event.org_id).actions.append(entry)

    # -- one event at a time --

    def read(self, e: AuditEvent) -> None:
        rest = e.subject.split(" ")[1:]
        a = e.action
        if a in ADMISSION and len(rest) == 3:
            user, ref = _uuid(rest[0]), _ref(rest[1])
            if user is not None and (ref is not None or rest[1] == "-"):
                self.decisions.append((e.at, e.id, user, e.org_id, rest[2], ref))
                return
        elif a in RECORDED and len(rest) == 1 and (ref := _ref(rest[0])) is not None:
            self.recorded_by.setdefault(ref, e.actor)
        elif a == "consent.expired" and len(rest) == 1 and (ref := _ref(rest[0])) is not None:
            self.expired.setdefault(ref, e.at)  # one event per member organisation
            return
        elif a == "message.stored" and len(rest) == 5 and rest[0] == "seq":
            seq = _int(rest[1])
            if seq is not None:
                self.messages[seq] = _Message(e.actor, e.at, rest[2], rest[3])
                return
        elif a == "message.delivered" and len(rest) == 3 and rest[1] == "seq":
            span = _RANGE.fullmatch(rest[2])
            if span is not None and e.actor is not None and int(span[1]) <= int(span[2]):
                person = self.person(e.actor, e.org_id)
                person.intervals.append((int(span[1]), int(span[2]), e.at))
                return
        elif a == "export.disclosed":
            return  # the disclosure records say more: which messages (below)
        elif a == "thread.closed" and not rest:
            self.closed = self.closed or {"at": e.at, "by": self.who(e.actor)}
        elif a == "thread.purged" and len(rest) == 1 and (n := _int(rest[0])) is not None:
            purge = {"at": e.at, "envelopes": n}  # one event per member organisation
            if purge not in self.purged:
                self.purged.append(purge)
            return
        elif a == "member.removed" and len(rest) == 2 and _DEVICE.fullmatch(rest[0]):
            owner = next(
                (u for d, u in self.names.devices.items() if d[:16].hex() == rest[0]), None
            )
            known = None if owner is None else self.names.users.get(owner)
            self.action(e, f"{known[0] if known else '?'} {rest[1]}")
            return
        self.action(e, " ".join(rest))

    # -- putting it together --

    def access(self) -> None:
        """Periods of access from the admission decisions (an admitted decision opens one, a
        refusal or the account's end closes it), each with the bases it rested on."""
        deciding = {d[2] for d in self.decisions}
        ended: list[_Decision] = []
        for e in self.logs.account_events:
            user = _uuid(e.subject)
            if e.action == ACCOUNT_ENDED and user is not None and user in deciding:
                ended.append((e.at, e.id, user, e.org_id, ENDED_BY_ACCOUNT, None))
        for at, _, user, org, reason, ref in sorted(
            self.decisions + ended, key=lambda d: (d[0], d[1])
        ):
            person = self.person(user, org)
            if reason == ADMITTED and ref is not None:
                basis = self.versions.basis(ref, org)
                if person.open is None:
                    person.open = {"from": at, "until": None, "ended": None, "bases": [basis]}
                    person.access.append(person.open)
                elif basis not in person.open["bases"]:
                    person.open["bases"].append(basis)
            elif person.open is not None:
                person.open["until"], person.open["ended"] = at, reason
                person.open = None

    def traffic(self) -> None:
        """Messages written (from `message.stored`, else the stored headers) and received
        (`message.delivered` ranges, counting only the sequence numbers that are messages)."""
        for m in self.messages.values():
            if m.sender is not None:
                known = self.names.users.get(m.sender)
                self.person(m.sender, known[1] if known else uuid.UUID(int=0)).wrote.append(m.at)
        seqs = sorted(self.messages)
        for person in self.people.values():
            for first, last, at in person.intervals:
                got = seqs[bisect.bisect_left(seqs, first) : bisect.bisect_right(seqs, last)]
                if got:
                    person.received.update(got)
                    person.received_at.append(at)
        for d in self.logs.disclosures:
            person = self.person(d.user_id, d.org_id)
            person.exported += len(d.msg_ids)
            person.exports += 1

    def consents(self) -> list[Json]:
        found: list[tuple[int, int, Json]] = []
        for order, (row, record) in enumerate(self.versions.rows):
            core = record.core
            ref = (core.consent_id.hex(), core.version)
            kind = "given" if core.version == 1 else "changed"
            kind = "revoked" if core.status == "revoked" else kind
            entry = {"event": kind, "at": row.created_at, "by": self.who(self.recorded_by.get(ref))}
            found.append(
                (row.created_at, order, entry | self.versions.describe(record, self.names.orgs))
            )
        for ref, at in self.expired.items():
            ended = self.versions.by_ref.get(ref)
            if ended is not None:
                entry = {"event": "expired", "at": at, "by": None}
                found.append(
                    (at, len(found), entry | self.versions.describe(ended, self.names.orgs))
                )
        return [entry for _, _, entry in sorted(found, key=lambda f: (f[0], f[1]))]

    def disclosures(self) -> list[Json]:
        bases = {m.msg_id: m.basis for m in self.messages.values()}
        return [
            {
                "at": d.at,
                "org": str(d.org_id),
                "org_name": self.names.orgs.get(d.org_id),
                "by": self.who(d.user_id),
                "messages": len(d.msg_ids),
                "first_seq": d.first_seq,
                "last_seq": d.last_seq,
                "basis": self.versions.in_force(d.org_id, d.at),
                "labels": sorted({b for i in d.msg_ids if (b := bases.get(i)) is not None}),
            }
            for d in self.logs.disclosures
        ]

    def organisations(self) -> list[Json]:
        by_org: dict[uuid.UUID, list[_Person]] = {}
        for person in self.people.values():
            if person.active():
                by_org.setdefault(person.org, []).append(person)
        orgs = []
        for org, people in by_org.items():
            name = self.names.orgs.get(org)
            people.sort(key=lambda p: (self.names.users.get(p.user, ("",))[0], str(p.user)))
            orgs.append({"org": str(org), "name": name,
                         "professionals": [self.professional(p) for p in people]})  # fmt: skip
        return sorted(orgs, key=lambda o: (o["name"] or "", o["org"]))

    def professional(self, p: _Person) -> Json:
        known = self.names.users.get(p.user)
        return {
            "user": str(p.user),
            "username": known[0] if known else None,
            "access": p.access,
            "wrote": _span(len(p.wrote), p.wrote),
            "received": _span(len(p.received), p.received_at),
            "exported": {"messages": p.exported, "times": p.exports},
            "actions": p.actions,
        }

    def build(self) -> Json:
        thread = self.logs.thread
        for m in self.logs.messages:
            self.messages[m.seq] = _Message(
                m.sender_user, m.at, _b64u(m.msg_id), _label_basis(m.label)
            )
        for e in self.logs.events:
            self.read(e)
        self.access()
        self.traffic()
        return {
            "thread": str(thread.id),
            "purpose": thread.purpose,
            "created_at": thread.created_at,
            "closed": self.closed,
            "purged": self.purged,
            "consents": self.consents(),
            "organisations": self.organisations(),
            "disclosures": self.disclosures(),
            "other": self.other,
        }


def _span(count: int, times: Sequence[int]) -> Json:
    return {"messages": count, "first": min(times, default=None), "last": max(times, default=None)}


# --- the printable report -------------------------------------------------------------------------

TEXT: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Selvitys asiakastietojesi käsittelystä",
        "intro": "Tässä selvityksessä kerrotaan lokitietojen perusteella, ketkä ammattilaiset ja organisaatiot ovat käsitelleet verkostopalaverisi tietoja, kenelle tietoja on luovutettu, milloin ja millä perusteella (laki sosiaali- ja terveydenhuollon asiakastietojen käsittelystä 703/2023, 11 §).",  # noqa: E501
        "no_content": "Selvitys ei sisällä viestien sisältöä: viestit on salattu päästä päähän, eikä palvelin näe niitä.",  # noqa: E501
        "times": "Ajat ovat Suomen aikaa.",
        "no_threads": "Palvelussa ei ole sinua koskevia verkostopalaverin tietoja.",
        "thread": "Verkostopalaveri",
        "started": "Aloitettu",
        "closed": "Suljettu",
        "purged": "Viestit poistettu palvelimelta",
        "purged_n": "{when}: salattuja tallenteita {n}",
        "consents": "Suostumuksesi ja sen muutokset",
        "consent_line": "{when}: suostumus {event} (versio {version}){by}. Voimassa {valid_from} \u2013 {valid_until}. Kattaa: {orgs}.",  # noqa: E501
        "recorded_by": ", kirjasi {who}",
        "by_law": "lain nojalla: {statute}",
        "no_consents": "Suostumusta ei ole kirjattu.",
        "who_processed": "Ketkä käsittelivät tietojasi",
        "nobody": "Kukaan ei ole käsitellyt tietojasi.",
        "access": "Pääsy tietoihin {start} \u2013 {end}",
        "ongoing": "edelleen",
        "ended": ", päättyi, koska {reason}",
        "basis": ". Peruste: {bases}.",
        "basis_consent": "suostumuksesi (versio {version})",
        "basis_statute": "laki, {statute} (suostumuksen versio {version})",
        "basis_unknown": "suostumuksen versio {version}",
        "wrote": "Kirjoitettuja viestejä: {n} ({first} \u2013 {last}).",
        "received": "Vastaanotettuja viestejä: {n} ({first} \u2013 {last}).",
        "exported": "Organisaation omiin asiakirjoihin tallennettuja viestejä: {n} (tallennuskertoja: {times}).",  # noqa: E501
        "disclosures": "Luovutukset organisaatioiden omiin asiakirjoihin",
        "disclosure_line": "{when}: {org} tallensi viestejä omiin asiakirjoihinsa ({n} kpl, tallentaja {who}). Peruste: {basis}.",  # noqa: E501
        "labels": " Viestien tallennusperuste: {labels}.",
        "no_basis": "ei voimassa olevaa suostumusta",
        "no_disclosures": "Tietojasi ei ole luovutettu organisaatioiden omiin asiakirjoihin.",
        "other": "Palvelimen muut merkinnät",
        "version_n": "versio {n}",
        "epoch_n": "avainkausi {n}",
        "reference": "Viite",
        "generated": "Laadittu",
    },
    "sv": {
        "title": "Redogörelse för behandlingen av dina klientuppgifter",
        "intro": "Denna redogörelse visar, utifrån loggarna, vilka yrkespersoner och organisationer som har behandlat uppgifterna i ditt nätverksmöte, till vem uppgifterna har lämnats ut, när och på vilken grund (lagen om behandling av klientuppgifter inom social- och hälsovården 703/2023, 11 §).",  # noqa: E501
        "no_content": "Redogörelsen innehåller inte meddelandenas innehåll: meddelandena är krypterade från ände till ände och servern kan inte läsa dem.",  # noqa: E501
        "times": "Tiderna anges i finsk tid.",
        "no_threads": "Tjänsten har inga uppgifter om nätverksmöten som gäller dig.",
        "thread": "Nätverksmöte",
        "started": "Inlett",
        "closed": "Avslutat",
        "purged": "Meddelandena raderade från servern",
        "purged_n": "{when}: krypterade poster {n}",
        "consents": "Ditt samtycke och dess ändringar",
        "consent_line": "{when}: samtycket {event} (version {version}){by}. Giltigt {valid_from} \u2013 {valid_until}. Omfattar: {orgs}.",  # noqa: E501
        "recorded_by": ", antecknat av {who}",
        "by_law": "med stöd av lag: {statute}",
        "no_consents": "Inget samtycke har antecknats.",
        "who_processed": "Vem som behandlade dina uppgifter",
        "nobody": "Ingen har behandlat dina uppgifter.",
        "access": "Tillgång till uppgifterna {start} \u2013 {end}",
        "ongoing": "fortfarande",
        "ended": ", upphörde eftersom {reason}",
        "basis": ". Grund: {bases}.",
        "basis_consent": "ditt samtycke (version {version})",
        "basis_statute": "lag, {statute} (samtyckets version {version})",
        "basis_unknown": "samtyckets version {version}",
        "wrote": "Skrivna meddelanden: {n} ({first} \u2013 {last}).",
        "received": "Mottagna meddelanden: {n} ({first} \u2013 {last}).",
        "exported": "Meddelanden sparade i organisationens egna handlingar: {n} (tillfällen: {times}).",  # noqa: E501
        "disclosures": "Utlämnanden till organisationernas egna handlingar",
        "disclosure_line": "{when}: {org} sparade meddelanden i sina egna handlingar ({n} st., sparat av {who}). Grund: {basis}.",  # noqa: E501
        "labels": " Meddelandenas grund för sparande: {labels}.",
        "no_basis": "inget gällande samtycke",
        "no_disclosures": "Dina uppgifter har inte lämnats ut till organisationernas egna handlingar.",  # noqa: E501
        "other": "Serverns övriga anteckningar",
        "version_n": "version {n}",
        "epoch_n": "nyckelperiod {n}",
        "reference": "Referens",
        "generated": "Upprättad",
    },
    "en": {
        "title": "Report on the processing of your client data",
        "intro": "Drawn from the logs, this report tells you which professionals and organisations processed the information of your case conference, to whom it was disclosed, when, and on what basis (Act on the Processing of Client Data in Healthcare and Social Welfare 703/2023, section 11).",  # noqa: E501
        "no_content": "This report does not contain what the messages said: they are end-to-end encrypted and the server cannot read them.",  # noqa: E501
        "times": "Times are Finnish time.",
        "no_threads": "The service holds no case-conference information about you.",
        "thread": "Case conference",
        "started": "Started",
        "closed": "Closed",
        "purged": "Messages deleted from the server",
        "purged_n": "{when}: encrypted records {n}",
        "consents": "Your consent and its changes",
        "consent_line": "{when}: consent {event} (version {version}){by}. Valid {valid_from} \u2013 {valid_until}. Covers: {orgs}.",  # noqa: E501
        "recorded_by": ", recorded by {who}",
        "by_law": "by law: {statute}",
        "no_consents": "No consent has been recorded.",
        "who_processed": "Who processed your information",
        "nobody": "Nobody has processed your information.",
        "access": "Access to the information {start} \u2013 {end}",
        "ongoing": "still",
        "ended": ", ended because {reason}",
        "basis": ". Basis: {bases}.",
        "basis_consent": "your consent (version {version})",
        "basis_statute": "law, {statute} (consent version {version})",
        "basis_unknown": "consent version {version}",
        "wrote": "Messages written: {n} ({first} \u2013 {last}).",
        "received": "Messages received: {n} ({first} \u2013 {last}).",
        "exported": "Messages stored in the organisation's own records: {n} (exports: {times}).",
        "disclosures": "Disclosures to organisations' own records",
        "disclosure_line": "{when}: {org} stored messages in its own records ({n}, by {who}). Basis: {basis}.",  # noqa: E501
        "labels": " The messages' storage basis: {labels}.",
        "no_basis": "no consent in force",
        "no_disclosures": "Your information has not been disclosed to any organisation's own records.",  # noqa: E501
        "other": "Other entries by the server",
        "version_n": "version {n}",
        "epoch_n": "key period {n}",
        "reference": "Reference",
        "generated": "Generated",
    },
}  # fmt: skip

# Codes in the report, in words (anything else is printed as its code).
CODES: dict[str, dict[str, str]] = {
    # consent events
    "given": {"fi": "annettu", "sv": "givet", "en": "given"},
    "changed": {"fi": "muutettu", "sv": "ändrat", "en": "changed"},
    "revoked": {"fi": "peruttu", "sv": "återkallat", "en": "withdrawn"},
    "expired": {"fi": "päättyi", "sv": "upphörde", "en": "ended"},
    # why access ended
    "koppi.not_covered": {"fi": "suostumus ei enää kattanut organisaatiota", "sv": "samtycket inte längre omfattade organisationen", "en": "the consent no longer covered the organisation"},  # noqa: E501
    "koppi.role_not_covered": {"fi": "ammattilaisen tehtävä ei kuulunut suostumukseen", "sv": "yrkespersonens uppgift inte omfattades av samtycket", "en": "the consent did not cover the professional's role"},  # noqa: E501
    "koppi.consent_revoked": {"fi": "suostumus peruttiin", "sv": "samtycket återkallades", "en": "the consent was withdrawn"},  # noqa: E501
    "koppi.consent_expired": {"fi": "suostumus päättyi", "sv": "samtycket upphörde", "en": "the consent ended"},  # noqa: E501
    "koppi.consent_superseded": {"fi": "suostumus ei ollut voimassa", "sv": "samtycket inte gällde", "en": "no consent was in force"},  # noqa: E501
    "koppi.consent_not_yet_valid": {"fi": "suostumus ei ollut vielä voimassa", "sv": "samtycket ännu inte gällde", "en": "the consent was not yet in force"},  # noqa: E501
    "koppi.no_consent": {"fi": "suostumusta ei ollut", "sv": "det inte fanns något samtycke", "en": "there was no consent"},  # noqa: E501
    "koppi.user_disabled": {"fi": "ammattilaisen käyttäjätili suljettiin", "sv": "yrkespersonens användarkonto stängdes", "en": "the professional's account was closed"},  # noqa: E501
    # what professionals did
    "consent.given": {"fi": "kirjasi suostumuksesi", "sv": "antecknade ditt samtycke", "en": "recorded your consent"},  # noqa: E501
    "consent.superseded": {"fi": "kirjasi muutoksen suostumukseesi", "sv": "antecknade en ändring av ditt samtycke", "en": "recorded a change to your consent"},  # noqa: E501
    "consent.revoked": {"fi": "kirjasi suostumuksesi perumisen", "sv": "antecknade att du återkallade ditt samtycke", "en": "recorded the withdrawal of your consent"},  # noqa: E501
    "thread.committed": {"fi": "uudisti keskustelun salausavaimet", "sv": "förnyade samtalets krypteringsnycklar", "en": "renewed the conversation's encryption keys"},  # noqa: E501
    "member.removed": {"fi": "poisti laitteen keskustelusta", "sv": "tog bort en enhet från samtalet", "en": "removed a device from the conversation"},  # noqa: E501
    "thread.closed": {"fi": "sulki verkostopalaverin keskustelun", "sv": "avslutade nätverksmötets samtal", "en": "closed the case conference's conversation"},  # noqa: E501
    "thread.label_policy": {"fi": "muutti viestien tallennuksen oletussääntöä", "sv": "ändrade standardregeln för sparande av meddelanden", "en": "changed the default rule for storing messages"},  # noqa: E501
    # storage label bases (docs/protocol.md §7.1)
    "consent": {"fi": "suostumus", "sv": "samtycke", "en": "consent"},
    "legal-obligation": {"fi": "lakisääteinen velvoite", "sv": "rättslig förpliktelse", "en": "legal obligation"},  # noqa: E501
    "public-task": {"fi": "julkinen tehtävä", "sv": "allmän uppgift", "en": "public task"},
    "vital-interests": {"fi": "elintärkeä etu", "sv": "grundläggande intresse", "en": "vital interests"},  # noqa: E501
}  # fmt: skip


def format_time(ms: int) -> str:
    """An ISO date and time of day in Finland's time: 2026-09-21 14:03."""
    return datetime.fromtimestamp(ms / 1000, HELSINKI).strftime("%Y-%m-%d %H:%M")


def render_report(report: Json, lang: str) -> str:
    """The report (as `build_report` made it) in plain `lang` (fi, sv or en), for the client."""
    if lang not in LANGUAGES:
        raise ValueError(f"no report in {lang!r}: one of {', '.join(LANGUAGES)}")
    t = TEXT[lang]

    def code(value: str) -> str:
        return CODES.get(value, WORDS.get(value, {})).get(lang, value)

    def span(s: Json) -> tuple[str, str]:
        first, last = s["first"], s["last"]
        return (
            "" if first is None else format_time(first),
            "" if last is None else format_time(last),
        )

    def basis(b: Json) -> str:
        key = {"consent": "basis_consent", "statute": "basis_statute"}.get(
            b["basis"], "basis_unknown"
        )
        return t[key].format(version=b["version"], statute=b["statute"] or "")

    def action(a: Json) -> str:
        """An action and its detail in words where their form is known, else as logged."""
        detail = str(a["detail"])
        ref, epoch = _ref(detail), re.fullmatch(r"epoch ([0-9]{1,18})", detail)
        if a["action"] in RECORDED and ref is not None:
            detail = t["version_n"].format(n=ref[1])
        elif a["action"] == "thread.committed" and epoch is not None:
            detail = t["epoch_n"].format(n=epoch[1])
        return f"{format_time(a['at'])}: {code(a['action'])}" + (f" ({detail})" if detail else "")

    def who(w: Json | None) -> str:
        return "?" if w is None else str(w["username"] or w["user"])

    def thread(th: Json) -> Json:
        facts = [(t["started"], format_time(th["created_at"]))]
        if th["closed"] is not None:
            by = th["closed"]["by"]
            facts.append(
                (
                    t["closed"],
                    format_time(th["closed"]["at"]) + ("" if by is None else f" ({who(by)})"),
                )
            )
        for p in th["purged"]:
            facts.append(
                (t["purged"], t["purged_n"].format(when=format_time(p["at"]), n=p["envelopes"]))
            )
        consents = []
        for c in th["consents"]:
            orgs = ", ".join(
                (o["name"] or o["org"])
                + (
                    ""
                    if o["basis"] != "statute"
                    else f" ({t['by_law'].format(statute=o['statute'] or '')})"
                )
                for o in c["organisations"]
            )
            by = "" if c["by"] is None else t["recorded_by"].format(who=who(c["by"]))
            consents.append(
                t["consent_line"].format(
                    when=format_time(c["at"]),
                    event=code(c["event"]),
                    version=c["version"],
                    by=by,
                    valid_from=format_time(c["valid_from"]),
                    valid_until=format_time(c["valid_until"]),
                    orgs=orgs,
                )
            )
        organisations = []
        for o in th["organisations"]:
            people = []
            for p in o["professionals"]:
                lines = []
                for a in p["access"]:
                    line = t["access"].format(
                        start=format_time(a["from"]),
                        end=t["ongoing"] if a["until"] is None else format_time(a["until"]),
                    )
                    if a["ended"] is not None:
                        line += t["ended"].format(reason=code(a["ended"]))
                    lines.append(
                        line + t["basis"].format(bases="; ".join(basis(b) for b in a["bases"]))
                    )
                for key in ("wrote", "received"):
                    if p[key]["messages"]:
                        first, last = span(p[key])
                        lines.append(t[key].format(n=p[key]["messages"], first=first, last=last))
                if p["exported"]["times"]:
                    lines.append(
                        t["exported"].format(
                            n=p["exported"]["messages"], times=p["exported"]["times"]
                        )
                    )
                actions = [action(a) for a in p["actions"]]
                people.append(
                    {"name": p["username"] or p["user"], "lines": lines, "actions": actions}
                )
            organisations.append({"name": o["name"] or o["org"], "professionals": people})
        disclosures = []
        for d in th["disclosures"]:
            line = t["disclosure_line"].format(
                when=format_time(d["at"]),
                org=d["org_name"] or d["org"],
                n=d["messages"],
                who=who(d["by"]),
                basis=t["no_basis"] if d["basis"] is None else basis(d["basis"]),
            )
            if d["labels"]:
                line += t["labels"].format(labels=", ".join(code(b) for b in d["labels"]))
            disclosures.append(line)
        other = [action(a) for a in th["other"]]
        return {
            "heading": f"{t['thread']}: {code(th['purpose'])}",
            "facts": facts,
            "consents": consents,
            "organisations": organisations,
            "disclosures": disclosures,
            "other": other,
            "reference": th["thread"],
        }

    return TEMPLATES.get_template("right-to-know.html").render(
        lang=lang,
        t=t,
        threads=[thread(th) for th in report["threads"]],
        reference=report["client_ref"][:16],
        generated=format_time(report["generated_at"]),
    )
