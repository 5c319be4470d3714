// A thread's consent panel: who the client's consent covers, until when, on what basis, and its
// history; and, for a professional whose device holds the consent-recorder role, the actions to
// record, supersede and withdraw it. Each version is built and signed here, with this browser's
// device key (docs/protocol.md §6); the server checks it and enforces admission from it.
// Everything shown is text (textContent), never HTML.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf } from "/static/protocol/identity.js";
import { hex, sha256 } from "/static/protocol/encoding.js";
import * as CS from "/static/protocol/consent.js";
import { api, b64u, el, unb64u, uuidBytes } from "/static/app-common.js";

const panel = document.getElementById("consent-panel");
const threadId = panel.dataset.thread;
const $ = (id) => document.getElementById(id);
const now = () => Math.floor(Date.now() / 1000);
const day = (seconds) => new Date(seconds * 1000).toLocaleDateString("fi-FI", { timeZone: "Europe/Helsinki" });
const HELSINKI = new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Helsinki", hourCycle: "h23",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** The wall-clock time in Helsinki of an instant, read as if it were UTC (ms). */
function helsinkiWall(ms) {
  const p = Object.fromEntries(HELSINKI.formatToParts(ms).map((x) => [x.type, x.value]));
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
}

/** The last second of a calendar day in Helsinki, where the consent's dates are kept. */
function endOfDay(value) {
  const wall = Date.parse(`${value}T23:59:59Z`);
  return Math.floor((wall - (helsinkiWall(wall) - wall)) / 1000);
}
const isoDay = (seconds) => new Date(helsinkiWall(seconds * 1000)).toISOString().slice(0, 10);
const EVENTS = { given: "given", superseded: "replaced by a new version", revoked: "withdrawn",
  expired: "ended" };
const STATES = { active: "In force", expired: "Ended", revoked: "Withdrawn", pending: "Not yet in force" };

let thread, names, book, current;

async function load() {
  thread = await api("GET", `/api/threads/${threadId}`);
  const orgs = (await api("GET", "/api/organisations")).organisations;
  names = new Map(orgs.map((o) => [hex(uuidBytes(o.id)), o.name]));
  const listed = (await api("GET", `/api/threads/${threadId}/consents`)).consents;
  book = new CS.ConsentBook();
  for (const c of listed) await book.accept(CS.ConsentRecord.decode(unb64u(c.record)));
  // The thread's current consent: the latest version of the consent given last.
  const firsts = listed.filter((c) => c.version === 1).sort((a, b) => a.recorded_at - b.recorded_at);
  current = firsts.length ? book.latest(unb64u(firsts[firsts.length - 1].consent_id)) : null;
  render(orgs);
}

function state(core) {
  if (core.status === "revoked") return "revoked";
  if (now() >= core.validUntil) return "expired";
  return now() < core.validFrom ? "pending" : "active";
}

function render(orgs) {
  const details = $("consent-details");
  const rows = $("consent-organisations").tBodies[0];
  for (const node of [details, rows, $("consent-exceptions"), $("consent-history")]) node.replaceChildren();
  const inForce = current && ["active", "pending"].includes(state(current.core));
  $("record-consent").hidden = Boolean(inForce);
  $("supersede-consent").hidden = !inForce;
  $("revoke-consent").hidden = !inForce;
  if (!current) {
    $("consent-status").textContent = "No consent recorded yet: nobody takes part in this thread until one is.";
    fillRecordForm(orgs);
    panel.dataset.version = "0";
    return;
  }
  const core = current.core;
  $("consent-status").textContent = `${STATES[state(core)]} (version ${core.version})`;
  panel.dataset.version = String(core.version);
  panel.dataset.state = state(core);
  for (const [term, value] of [["Purpose", core.purpose], ["Valid", `${day(core.validFrom)} – ${day(core.validUntil)}`],
    ["Disclosure basis", core.disclosureBasis], ["Given", core.howObtained],
    ["Information", core.dataCategories.join(", ")]]) {
    details.append(el("dt", term), el("dd", value));
  }
  for (const o of core.organisations) {
    const name = names.get(hex(o.orgId)) ?? hex(o.orgId);
    if (o.statute) {
      $("consent-exceptions").append(el("li", `${name}: ${o.statute}. Justification: ${o.justification}`));
      continue;
    }
    const row = el("tr");
    row.append(el("td", name), el("td", o.roles.join(", ") || "every role"),
      el("td", o.mayStore ? "yes" : "no"), el("td", o.fullHistory ? "from the start" : "from admission"),
      el("td", o.processingBasis));
    rows.append(row);
  }
  if (!$("consent-exceptions").children.length) {
    $("consent-exceptions").append(el("li", "None: the client's consent covers every organisation."));
  }
  for (const e of book.history(core.consentId, now())) {
    $("consent-history").append(el("li", `${day(e.at)}: ${EVENTS[e.kind]} (version ${e.version})`));
  }
  const base = `/api/threads/${threadId}/consents/${b64u(core.consentId)}`;
  for (const lang of ["fi", "sv", "en"]) $(`receipt-${lang}`).href = `${base}/receipt?lang=${lang}`;
  $("consent-fhir").href = `${base}/fhir`;
  const keep = $("keep-organisations");
  keep.replaceChildren(keep.firstElementChild);
  for (const o of core.organisations) {
    const box = el("input", undefined, { type: "checkbox", name: "keep", value: hex(o.orgId) });
    box.checked = true;
    const label = el("label");
    label.append(box, ` ${names.get(hex(o.orgId)) ?? hex(o.orgId)}`);
    keep.append(label);
  }
  $("supersede-consent").elements.until.value = isoDay(core.validUntil);
  if (!inForce) fillRecordForm(orgs);
}

function fillRecordForm(orgs) {
  const box = $("record-organisations");
  box.replaceChildren(box.firstElementChild);
  for (const o of orgs) {
    const id = hex(uuidBytes(o.id));
    const covered = el("input", undefined, { type: "checkbox", name: "org", value: id });
    const store = el("input", undefined, { type: "checkbox", name: "store", value: id });
    const whole = el("input", undefined, { type: "checkbox", name: "history", value: id });
    const a = el("label");
    a.append(covered, ` ${o.name}`);
    const b = el("label");
    b.append(store, " may store in its own records");
    const c = el("label");
    c.append(whole, " may read earlier messages");
    box.append(el("div"));
    box.lastChild.append(a, " ", b, " ", c);
  }
  const cats = $("record-categories");
  cats.replaceChildren(cats.firstElementChild);
  for (const c of CS.DATA_CATEGORIES) {
    const label = el("label");
    label.append(el("input", undefined, { type: "checkbox", name: "category", value: c }), ` ${c} `);
    cats.append(label);
  }
}

async function recorder() {
  const keys = await (await KeyStore.open()).deviceKeys();
  return { keys, id: await deviceIdOf(keys.signingPublic) };
}

async function submit(core, me) {
  const record = await CS.signConsent(core, me.keys);
  await api("POST", `/api/threads/${threadId}/consents`, { record: b64u(record.raw) });
}

async function recordFirst(form) {
  const checked = (name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
  const mayStore = new Set(checked("store"));
  const whole = new Set(checked("history"));
  const organisations = checked("org").map((id) => new CS.CoveredOrganisation(
    Uint8Array.from(id.match(/../g), (x) => parseInt(x, 16)), mayStore.has(id), "consent", [], "", "",
    whole.has(id)));
  const text = new TextEncoder().encode($("information-text").textContent.replace(/\s+/g, " ").trim());
  const me = await recorder();
  await submit(CS.buildConsentCore({
    recorder: me.id, recordedAt: now(), consentId: crypto.getRandomValues(new Uint8Array(16)), version: 1, prevVersionHash: new Uint8Array(),
    clientRef: Uint8Array.from(thread.client_ref.match(/../g), (x) => parseInt(x, 16)), purpose: thread.purpose,
    organisations, dataCategories: checked("category"), validFrom: now() - 60,
    validUntil: endOfDay(form.elements.until.value), status: "active", disclosureBasis: "consent",
    howObtained: form.elements.obtained.value, infoTextHash: await sha256(text),
    detailsHash: new Uint8Array(), revocationChannel: "",
  }), me);
}

async function supersede(form) {
  const keep = new Set([...form.querySelectorAll("input[name=keep]:checked")].map((i) => i.value));
  const me = await recorder();
  await submit(await CS.nextVersion(current, {
    recordedAt: now(), recorder: me.id, validUntil: endOfDay(form.elements.until.value),
    organisations: current.core.organisations.filter((o) => keep.has(hex(o.orgId))),
  }), me);
}

async function revoke(form) {
  const me = await recorder();
  await submit(await CS.nextVersion(current, {
    recordedAt: now(), recorder: me.id, status: "revoked", revocationChannel: form.elements.channel.value,
  }), me);
}

for (const [id, action, done] of [["record-consent", recordFirst, "Consent recorded."],
  ["supersede-consent", supersede, "New version recorded."],
  ["revoke-consent", revoke, "Withdrawal recorded: the organisations it no longer covers are cut off."]]) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    $("consent-outcome").textContent = "";
    action(event.target)
      .then(load)
      .then(() => { $("consent-outcome").textContent = done; })
      .catch((e) => { $("consent-outcome").textContent = `${e.code ?? "error"}: ${e.message}`; });
  });
}

load()
  .catch((e) => { $("consent-status").textContent = `${e.code ?? "error"}: ${e.message}`; })
  .finally(() => { document.body.dataset.ready = "true"; });
