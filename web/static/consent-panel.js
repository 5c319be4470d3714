// A thread's consent panel: who the client's consent covers, until when, on what basis, and its
// history; and, for a professional whose device holds the consent-recorder role, the actions to
// record, supersede and withdraw it. Each version is built and signed here, with this browser's
// device key (docs/protocol.md §6); the server checks it and enforces admission from it, and its
// refusal is shown as its error code. Everything shown is text (textContent), never HTML.
// The versions shown are checked against the chain rules (ConsentBook), not yet against the log:
// the server verified each signature and recorder; checking them here waits for a TrustStore fed
// by this page. Organisation names are the server's (GET /api/organisations). Words are the
// page's language's (server/page_text.py CONSENT_PAGE); codes (bases, categories) are shown as
// the protocol names them.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf } from "/static/protocol/identity.js";
import { hex, sha256, unhex } from "/static/protocol/encoding.js";
import * as CS from "/static/protocol/consent.js";
import { api, b64u, el, fill, pageText, unb64u, uuidBytes } from "/static/app-common.js";

const T = pageText("consent-text");
const PURPOSES = pageText("consent-purposes"); // code -> words in the page's language (as /app)

const panel = document.getElementById("consent-panel");
const threadId = panel.dataset.thread;
const $ = (id) => document.getElementById(id);
const now = () => Math.floor(Date.now() / 1000);
const TZ = "Europe/Helsinki";
const day = (s) => new Date(s * 1000).toLocaleDateString("fi-FI", { timeZone: TZ });
const when = (s) => new Date(s * 1000).toLocaleString("fi-FI", { timeZone: TZ, dateStyle: "short",
  timeStyle: "short" });
const HELSINKI = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, hourCycle: "h23",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** The wall-clock time in Helsinki of an instant, read as if it were UTC (ms). */
function helsinkiWall(ms) {
  const p = Object.fromEntries(HELSINKI.formatToParts(ms).map((x) => [x.type, x.value]));
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
}

/** The last second of a calendar day (yyyy-mm-dd) in Helsinki, where the consent's dates are kept. */
function endOfDay(value) {
  const wall = Date.parse(`${value}T23:59:59Z`);
  return Math.floor((wall - (helsinkiWall(wall) - wall)) / 1000);
}
const isoDay = (seconds) => new Date(helsinkiWall(seconds * 1000)).toISOString().slice(0, 10);

const EVENTS = { given: T.event_given, superseded: T.event_superseded, revoked: T.event_revoked,
  expired: T.event_expired };
const STATES = { active: T.state_active, expired: T.state_expired, revoked: T.state_revoked,
  pending: T.state_pending };
const OBTAINED = { written: T.obtained_written, electronic: T.obtained_electronic,
  "oral-recorded": T.obtained_oral };
const CHANNELS = { "in-person": T.channel_in_person, phone: T.channel_phone, written: T.channel_written,
  electronic: T.channel_electronic };
/** A refusal or failure: its code, and its text in the page's language where there is one. */
const category = (code) => T[`category.${code}`] ?? code;
const failure = (e) => `${e.code ?? "error"}: ${T[e.code] ?? e.message}`;

let thread, orgs, book, consents, current;
const nameOf = (orgId) => orgs.find((o) => o.key === hex(orgId))?.name ?? fill(T.unknown_organisation, { id: hex(orgId) });

async function load() {
  thread = await api("GET", `/api/threads/${threadId}`);
  orgs = (await api("GET", "/api/organisations")).organisations
    .map((o) => ({ ...o, key: hex(uuidBytes(o.id)) }));
  const listed = (await api("GET", `/api/threads/${threadId}/consents`)).consents;
  book = new CS.ConsentBook();
  for (const c of listed) await book.accept(CS.ConsentRecord.decode(unb64u(c.record)));
  // The thread's consents, the one given last first; its latest version is the current one.
  consents = listed.filter((c) => c.version === 1).sort((a, b) => b.recorded_at - a.recorded_at)
    .map((c) => unb64u(c.consent_id));
  current = consents.length ? book.latest(consents[0]) : null;
  render();
}

function state(core) {
  if (core.status === "revoked") return "revoked";
  if (now() >= core.validUntil) return "expired";
  return now() < core.validFrom ? "pending" : "active";
}

function render() {
  for (const id of ["consent-details", "consent-exceptions", "consent-history"]) $(id).replaceChildren();
  $("consent-organisations").tBodies[0].replaceChildren();
  const inForce = Boolean(current) && ["active", "pending"].includes(state(current.core));
  $("record-consent").hidden = inForce;
  $("supersede-consent").hidden = !inForce;
  $("revoke-consent").hidden = !inForce;
  $("consent-receipts").hidden = !current;
  if (!inForce) fillRecordForm();
  if (!current) {
    $("consent-status").textContent = T.no_consent;
    panel.dataset.version = "0";
    panel.dataset.state = "none";
    return;
  }
  const core = current.core;
  panel.dataset.version = String(core.version);
  panel.dataset.state = state(core);
  $("consent-status").textContent = fill(T.status, { state: STATES[state(core)], version: core.version });
  renderDetails(core);
  renderOrganisations(core);
  renderHistory();
  const base = `/api/threads/${threadId}/consents/${b64u(core.consentId)}`;
  for (const lang of ["fi", "sv", "en"]) $(`receipt-${lang}`).href = `${base}/receipt?lang=${lang}`;
  $("consent-fhir").href = `${base}/fhir`;
  if (inForce) fillSupersedeForm(core);
}

function renderDetails(core) {
  const rows = [[T.purpose, PURPOSES[core.purpose] ?? core.purpose], [T.valid, `${day(core.validFrom)} – ${day(core.validUntil)}`],
    [T.disclosure_basis, core.disclosureBasis], [T.given, OBTAINED[core.howObtained] ?? core.howObtained],
    [T.information, core.dataCategories.map(category).join(", ") || T.none_named],
    [T.recorded, fill(T.recorded_by, { when: when(core.recordedAt), device: hex(core.recorder).slice(0, 16) })]];
  if (core.status === "revoked") rows.push([T.state_revoked, CHANNELS[core.revocationChannel]]);
  for (const [term, value] of rows) $("consent-details").append(el("dt", term), el("dd", value));
}

function renderOrganisations(core) {
  for (const o of core.organisations) {
    const row = el("tr");
    row.append(el("td", nameOf(o.orgId)), el("td", o.roles.join(", ") || T.every_role),
      el("td", o.mayStore ? T.yes : T.no), el("td", o.fullHistory ? T.from_start : T.from_admission),
      el("td", o.processingBasis), el("td", o.statute ? fill(T.by_law, { statute: o.statute }) : T.by_consent));
    $("consent-organisations").tBodies[0].append(row);
    if (o.statute) {
      $("consent-exceptions").append(el("li", fill(T.exception, { organisation: nameOf(o.orgId),
        statute: o.statute, justification: o.justification })));
    }
  }
  if (!$("consent-exceptions").children.length) {
    $("consent-exceptions").append(el("li", T.no_exceptions));
  }
}

/** Each of the thread's consents, the current one first: its whole life, version by version. */
function renderHistory() {
  for (const id of consents) {
    const events = book.history(id, now());
    const list = el("ol");
    for (const e of events) {
      list.append(el("li", `${when(e.at)}: ${fill(T.status, { state: EVENTS[e.kind], version: e.version })}`));
    }
    $("consent-history").append(el("h3", fill(T.consent_given, { day: day(events[0].at) })), list);
  }
}

function checkbox(name, value, text, checked = false) {
  const box = el("input", undefined, { type: "checkbox", name, value });
  box.checked = checked;
  const label = el("label");
  label.append(box, ` ${text}`);
  return label;
}

function field(text, control) {
  const label = el("label", `${text} `);
  label.append(control);
  return label;
}

function fillRecordForm() {
  const box = $("record-organisations");
  box.replaceChildren(box.firstElementChild);
  for (const o of orgs) {
    const group = el("fieldset", undefined, { "data-org": o.key });
    group.append(el("legend", o.name), checkbox("org", o.key, T.named),
      checkbox("store", o.key, T.may_store),
      checkbox("history", o.key, T.may_read_history));
    const basis = el("select", undefined, { name: "basis" });
    for (const b of CS.PROCESSING_BASES) basis.append(el("option", b, { value: b }));
    basis.value = "consent";
    const byLaw = el("details");
    byLaw.append(el("summary", T.admitted_by_law),
      field(T.provision, el("input", undefined, { name: "statute", maxlength: "200" })),
      field(T.justification, el("textarea", undefined, { name: "justification", maxlength: "2000", rows: "3" })));
    group.append(field(T.processing_basis, basis), byLaw);
    box.append(group);
  }
  const cats = $("record-categories");
  cats.replaceChildren(cats.firstElementChild);
  for (const c of CS.DATA_CATEGORIES) cats.append(checkbox("category", c, category(c)));
}

function fillSupersedeForm(core) {
  const keep = $("keep-organisations");
  keep.replaceChildren(keep.firstElementChild);
  for (const o of core.organisations) keep.append(checkbox("keep", hex(o.orgId), nameOf(o.orgId), true));
  $("supersede-consent").elements.until.value = isoDay(core.validUntil);
}

/** This browser's device keys; never made here (enrolling is /devices' job). */
async function deviceKeys() {
  const store = await KeyStore.open();
  try {
    const keys = await store.get("keys", "device");
    if (!keys) throw Object.assign(new Error(T["koppi.no_device_keys"]), { code: "koppi.no_device_keys" });
    return keys;
  } finally {
    store.close();
  }
}

/** Sign a core built by `build(recorder, recordedAt)` with this device's key, and record it. */
async function submit(build) {
  const keys = await deviceKeys();
  const core = await build(await deviceIdOf(keys.signingPublic), now());
  const record = await CS.signConsent(core, keys);
  await api("POST", `/api/threads/${threadId}/consents`, { record: b64u(record.raw) });
}

/** One organisation's entry from its fieldset in the record form (every role admitted). */
function coveredFrom(group) {
  const value = (selector) => group.querySelector(selector).value.trim();
  const checked = (name) => group.querySelector(`input[name=${name}]`).checked;
  return new CS.CoveredOrganisation(unhex(group.dataset.org), checked("store"), value("select[name=basis]"),
    [], value("input[name=statute]"), value("textarea[name=justification]"), checked("history"));
}

async function recordFirst(form) {
  const organisations = [...form.querySelectorAll("fieldset[data-org]")]
    .filter((g) => g.querySelector("input[name=org]").checked).map(coveredFrom);
  const categories = [...form.querySelectorAll("input[name=category]:checked")].map((i) => i.value);
  const text = new TextEncoder().encode($("information-text").textContent.replace(/\s+/g, " ").trim());
  const infoTextHash = await sha256(text);
  await submit((recorder, recordedAt) => CS.buildConsentCore({
    consentId: crypto.getRandomValues(new Uint8Array(16)), version: 1, prevVersionHash: new Uint8Array(),
    clientRef: unhex(thread.client_ref), purpose: thread.purpose, organisations,
    // A minute's slack for a server clock behind this one, which would find it not yet valid.
    dataCategories: categories, validFrom: recordedAt - 60, validUntil: endOfDay(form.elements.until.value),
    status: "active", disclosureBasis: "consent", howObtained: form.elements.obtained.value, infoTextHash,
    detailsHash: new Uint8Array(), recorder, recordedAt, revocationChannel: "",
  }));
}

async function supersede(form) {
  const keep = new Set([...form.querySelectorAll("input[name=keep]:checked")].map((i) => i.value));
  await submit((recorder, recordedAt) => CS.nextVersion(current, {
    recorder, recordedAt, validUntil: endOfDay(form.elements.until.value),
    organisations: current.core.organisations.filter((o) => keep.has(hex(o.orgId))),
  }));
}

async function revoke(form) {
  await submit((recorder, recordedAt) => CS.nextVersion(current, {
    recorder, recordedAt, status: "revoked", revocationChannel: form.elements.channel.value,
  }));
}

for (const [id, action, done] of [["record-consent", recordFirst, T.recorded_done],
  ["supersede-consent", supersede, T.superseded_done], ["revoke-consent", revoke, T.revoked_done]]) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const controls = form.querySelector("fieldset");
    controls.disabled = true; // one version at a time
    $("consent-outcome").textContent = "";
    action(form)
      .then(load)
      .then(() => { $("consent-outcome").textContent = done; })
      .catch((e) => { $("consent-outcome").textContent = failure(e); })
      .finally(() => { controls.disabled = false; });
  });
}

load()
  .catch((e) => { $("consent-status").textContent = failure(e); })
  .finally(() => { document.body.dataset.ready = "true"; });
