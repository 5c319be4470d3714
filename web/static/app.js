// The case-conference app's page: the thread list and the thread view, drawn from the engine's
// state (conference.js, which does the protocol and knows no DOM). Everything a person or the
// server wrote is inserted as text (textContent via el()), never as HTML. The words come from
// the page's table (server/page_text.py APP_PAGE) in the page's language.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf, TrustStore } from "/static/protocol/identity.js";
import { b64u, hex, unb64u, unhex } from "/static/protocol/encoding.js";
import { KemKey, SigningKey } from "/static/protocol/primitives.js";
import { deviceFingerprint } from "/static/protocol/fingerprint.js";
import { LogConfig, LogView } from "/static/protocol/treehead.js";
import { LogFollower } from "/static/protocol/follower.js";
import { ConsentRecord } from "/static/protocol/consent.js";
import { ProtocolWorker } from "/static/protocol/worker.js";
import { Conference, uuidOf } from "/static/conference.js";
import { api, el } from "/static/app-common.js";

const root = document.getElementById("app");
const $ = (id) => document.getElementById(id);
const T = JSON.parse($("app-text").textContent);
const PURPOSES = JSON.parse($("app-purposes").textContent); // code -> words in the page's language
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
const TZ = "Europe/Helsinki";
const locale = document.documentElement.lang === "en" ? "en-GB" : `${document.documentElement.lang}-FI`;
const when = (ms) => new Date(ms).toLocaleString(locale, { timeZone: TZ, dateStyle: "short", timeStyle: "short" });
const day = (s) => new Date(s * 1000).toLocaleDateString(locale, { timeZone: TZ });
const reason = (code) => T[code] ?? code;
const purposeName = (code) => PURPOSES[code] ?? code;
const DAY_S = 24 * 3600;
// How soon before the consent in force ends the thread view warns (the server's
// consent_warning_days; 0: never).
const WARN_S = (Number(root.dataset.consentWarningDays ?? 7) || 0) * DAY_S;

let me = null; // GET /api/me
let engine = null;
let orgNames = new Map(); // org id -> name
let summaries = []; // GET /api/threads
const members = new Map(); // thread id -> [member]
const consents = new Map(); // thread id -> current ConsentCore or null
let labelKey = null; // the label choices drawn, so a person's choice survives a redraw
// Fingerprints of devices waiting for a person's approval (hex device id -> {hex, words} or null
// while computed): from the keys the log certifies, here in the browser, never from the server.
const fingerprints = new Map();

const selected = () => decodeURIComponent(location.hash.slice(1)) || null;

// --- setting up ---------------------------------------------------------------------------------

/** This browser's device keys as ThreadState takes them, or null (enrol at /devices). */
async function deviceSecrets(store) {
  const keys = await store.get("keys", "device");
  if (!keys) return null;
  return {
    deviceId: await deviceIdOf(keys.signingPublic),
    signing: new SigningKey(keys.signing, keys.signingPublic),
    certKem: new KemKey(keys.kem, keys.kemPublic),
    packageKeys: new Map(), // no key packages: wraps use the certificate's key
  };
}

async function follower() {
  const { root: rootKey, log, witnesses, quorum } = root.dataset;
  if (!rootKey || !log) return null;
  const witnessKeys = witnesses ? witnesses.split(",").map(unhex) : [];
  const config = Number(quorum) > 0
    ? await LogConfig.create(unhex(log), witnessKeys, Number(quorum))
    : await LogConfig.unwitnessed(unhex(log));
  return new LogFollower(new TrustStore(unhex(rootKey), new LogView(config, { nowMs: () => Date.now() })));
}

function deviceState(text, state) {
  $("device-state").hidden = !text;
  $("device-state").textContent = text ?? "";
  root.dataset.device = state;
}

async function start() {
  me = await api("GET", "/api/me");
  if (me.csrf_token) sessionStorage.setItem("koppi.csrf", me.csrf_token);
  orgNames = new Map((await api("GET", "/api/organisations")).organisations.map((o) => [o.id, o.name]));
  await refreshList();
  const store = await KeyStore.open();
  const secrets = await deviceSecrets(store);
  if (!secrets) {
    deviceState(T["koppi.no_device_keys"], "none");
    setConnection("closed");
    return;
  }
  const device = await api("GET", `/api/devices/${b64u(secrets.deviceId)}`).catch(() => null);
  if (!device || device.status !== "approved") {
    deviceState(device?.status === "revoked" ? T["koppi.device_revoked"] : T.device_pending, device?.status ?? "none");
    setConnection("closed");
    return;
  }
  const logFollower = await follower();
  if (!logFollower) {
    deviceState(T["koppi.no_pins"], "no-pins");
    setConnection("closed");
    return;
  }
  deviceState(null, "approved");
  let worker = null;
  try {
    worker = new ProtocolWorker();
  } catch {
    worker = null; // no module workers here: the same steps on this thread
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  engine = new Conference({ api, me: secrets, user: me, follower: logFollower, store, worker,
    wsUrl: `${scheme}://${location.host}/ws`, pollMs: Number(root.dataset.poll ?? 3000) || 3000 });
  engine.addEventListener("connection", (e) => setConnection(e.detail.state));
  const cutOff = new Set();
  engine.addEventListener("thread", (e) => {
    const id = e.detail.thread;
    if (engine.threads.get(id)?.removed && !cutOff.has(id)) { // show the consent that did it now
      cutOff.add(id);
      if (id === selected()) loadThread(id).catch(() => {});
    }
    if (id === selected()) drawThread();
    drawList();
  });
  engine.addEventListener("error", (e) => {
    root.dataset.lastError = e.detail.code;
    console.warn("koppi", e.detail.code, e.detail.message);
  });
  for (const s of summaries) if (!s.admitted) engine.thread(s.thread).refusal = s.refusal;
  engine.start();
}

function setConnection(state) {
  root.dataset.connection = state;
  $("connection-state").textContent = T[`conn_${state}`] ?? state;
}

// --- the thread list ----------------------------------------------------------------------------

async function refreshList() {
  summaries = (await api("GET", "/api/threads")).threads;
  drawList();
}

function drawList() {
  const list = $("thread-list");
  list.replaceChildren();
  if (!summaries.length) list.append(el("li", T.no_threads));
  for (const s of summaries) {
    const view = engine?.threads.get(s.thread);
    const link = el("a", `${purposeName(s.purpose)} · ${s.client_ref.slice(0, 8)}…`, { href: `#${s.thread}`, "data-thread": s.thread });
    if (s.thread === selected()) link.setAttribute("aria-current", "true");
    link.append(el("span", fill(T.started, { date: day(s.created_at / 1000) }), { class: "started" })); // ms
    const item = el("li");
    item.append(link);
    const refusal = view?.removed?.reason ?? (view ? view.refusal : s.refusal);
    if (refusal) item.append(el("span", reason(refusal), { class: "refusal" }));
    list.append(item);
  }
}

// --- the thread view ----------------------------------------------------------------------------

async function loadThread(id) {
  const [listed, history] = await Promise.all([
    api("GET", `/api/threads/${id}/members`), api("GET", `/api/threads/${id}/consents`)]);
  members.set(id, listed.members);
  const first = history.consents.filter((c) => c.version === 1).sort((a, b) => b.recorded_at - a.recorded_at)[0];
  const versions = first ? history.consents.filter((c) => c.consent_id === first.consent_id) : [];
  const latest = versions.sort((a, b) => b.version - a.version)[0];
  consents.set(id, latest ? ConsentRecord.decode(unb64u(latest.record)).core : null);
  if (id === selected()) drawThread();
}

function nameOf(userId) {
  const m = (members.get(selected()) ?? []).find((x) => x.user === userId);
  return m ? m.username : userId.slice(0, 8);
}

function drawThread() {
  const id = selected();
  const summary = summaries.find((s) => s.thread === id);
  $("thread-view").hidden = !id;
  $("no-thread").hidden = Boolean(id);
  if (!id) return;
  const view = engine?.threads.get(id) ?? null;
  $("thread-title").textContent = summary ? `${purposeName(summary.purpose)} · ${summary.client_ref.slice(0, 12)}…` : id;
  $("thread-view").dataset.thread = id;
  $("consent-link").href = `/threads/${id}/consent`;
  $("export-link").href = `/threads/${id}/export`;
  // The client's right-to-know report (Act 703/2023 s. 11), printable in the page's language.
  $("report-link").href = `/api/threads/${id}/right-to-know?lang=${document.documentElement.lang}`;
  drawConsent(id);
  drawMembers(id, view);
  drawRemoved(view, summary);
  drawMessages(view);
  drawComposer(view);
}

function drawConsent(id) {
  const core = consents.get(id);
  const warn = $("consent-warning");
  warn.hidden = true;
  delete warn.dataset.until;
  if (!core) {
    $("consent-summary").textContent = T.consent_none;
    return;
  }
  const now = Date.now() / 1000;
  if (core.status === "revoked") {
    $("consent-summary").textContent = `${reason("koppi.consent_revoked")} (v${core.version})`;
  } else {
    $("consent-summary").textContent = fill(T.consent_line, { version: core.version, until: day(core.validUntil) });
    const left = core.validUntil - now;
    if (left > 0 && left <= WARN_S) { // it ends within the horizon: say when, in time to renew it
      warn.hidden = false;
      warn.dataset.until = String(core.validUntil);
      warn.textContent = fill(T.consent_expiring, { until: when(core.validUntil * 1000), days: Math.ceil(left / DAY_S) });
    }
  }
  $("consent-summary").dataset.version = String(core.version);
  const select = $("invite-org");
  const covered = core.status === "revoked" ? [] : core.organisations.map((o) => uuidOf(o.orgId));
  const key = covered.join();
  if (select.dataset.key !== key) {
    select.dataset.key = key;
    select.replaceChildren(el("option", "—", { value: "" }));
    for (const org of covered) select.append(el("option", orgNames.get(org) ?? org, { value: org }));
    $("directory").replaceChildren();
  }
}

function drawMembers(id, view) {
  const list = $("members");
  list.replaceChildren();
  const rosterUsers = new Set();
  for (const deviceHex of view?.roster ?? []) {
    const d = engine.trust.devices.get(deviceHex);
    if (d) rosterUsers.add(uuidOf(d.userId));
  }
  for (const m of members.get(id) ?? []) {
    const item = el("li", `${m.username} (${m.org_name})`, { "data-user": m.user, "data-admitted": String(m.admitted) });
    if (m.user === me.user) item.append(` — ${T.you}`);
    if (!m.admitted) {
      item.classList.add("not-admitted");
      item.append(el("span", ` · ${T.not_admitted}: ${reason(m.refusal)}`));
    } else if (view?.state && !rosterUsers.has(m.user)) {
      item.append(el("span", ` · ${T.waiting_device}`, { class: "waiting" }));
    } else {
      item.append(el("span", ` · ${T.admitted}`));
    }
    list.append(item);
  }
  const approvals = $("approvals");
  approvals.replaceChildren();
  const orgs = new Set();
  for (const w of view?.waiting.values() ?? []) if (w.kind === "organisation") orgs.add(hex(w.device.orgId));
  if (orgs.size) approvals.append(el("p", T.approve_note, { class: "hint" }));
  for (const orgHex of orgs) {
    const org = uuidOf(unhex(orgHex));
    const button = el("button", fill(T.approve_org, { org: orgNames.get(org) ?? org }),
      { type: "button", class: "small approve", "data-org": org });
    button.addEventListener("click", () => {
      button.disabled = true;
      engine.approveOrganisation(id, orgHex);
    });
    approvals.append(button);
  }
  drawNewDevices(id, view, approvals);
}

function fingerprintOf(device) {
  const id = hex(device.deviceId);
  if (!fingerprints.has(id)) {
    fingerprints.set(id, null);
    deviceFingerprint(device.signingPublic, device.kemPublic)
      .then((fp) => { fingerprints.set(id, fp); drawThread(); })
      .catch(() => fingerprints.delete(id));
  }
  return fingerprints.get(id);
}

/** A member's new device that none of their devices here linked: a person compares its
 * fingerprint with its owner, then approves; the engine adds it (as for a new organisation). */
function drawNewDevices(id, view, approvals) {
  const waiting = [...(view?.waiting.entries() ?? [])].filter(([, w]) => w.kind === "device");
  if (!waiting.length) return;
  approvals.append(el("p", T.approve_device_note, { class: "hint" }));
  for (const [deviceHex, w] of waiting) {
    const owner = fill(T.device_of, { name: nameOf(uuidOf(w.device.userId)) });
    const box = el("div", undefined, { class: "new-device", "data-device": deviceHex, "data-user": uuidOf(w.device.userId) });
    box.append(el("p", owner, { class: "owner" }));
    const fp = fingerprintOf(w.device);
    if (fp) {
      const shown = el("dl", undefined, { class: "fingerprint" });
      shown.append(el("dt", T.fingerprint_words), el("dd", fp.words.join(" "), { class: "words" }),
        el("dt", T.fingerprint_hex), el("dd", fp.hex, { class: "hex" }));
      box.append(shown);
    }
    const button = el("button", T.approve_device, { type: "button", class: "small approve",
      "data-device": deviceHex, "aria-label": `${T.approve_device}: ${owner}` });
    button.disabled = !fp || engine.approvedDevices.get(id)?.has(deviceHex) === true;
    button.addEventListener("click", () => {
      button.disabled = true;
      engine.approveDevice(id, deviceHex);
    });
    box.append(button);
    approvals.append(box);
  }
}

function drawRemoved(view, summary) {
  const code = view?.removed?.reason ?? view?.refusal ?? (view ? null : summary?.refusal) ?? null;
  $("removed").hidden = !code;
  $("removed").dataset.reason = code ?? "";
  $("removed-title").textContent = view?.removed ? T.removed : T.refused_thread;
  $("removed-reason").textContent = code ? reason(code) : "";
  const note = $("thread-note");
  if (code) note.textContent = "";
  else if (view && !view.state && view.info && !view.info.genesis) note.textContent = T.no_epoch;
  else if (view && !view.state && view.info) note.textContent = T.not_in_roster;
  else note.textContent = "";
}

function drawMessages(view) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren();
  for (const m of view?.ordered ?? []) {
    const item = el("li", undefined, { "data-id": m.id, "data-status": m.status });
    if (m.seq !== null && m.seq !== undefined) item.dataset.seq = String(m.seq);
    if (m.mine) item.classList.add("mine");
    if (m.status === "withheld") {
      item.append(el("p", T.withheld, { class: "text" }));
    } else if (m.status === "refused") {
      item.append(el("p", `${T.refused_message} (${m.code})`, { class: "text" }));
    } else {
      const org = orgNames.get(m.sender.org) ?? m.sender.org;
      const meta = el("p", `${m.mine ? T.you : nameOf(m.sender.user)} · ${org} · ${when(m.sentAtMs)}`, { class: "meta" });
      if (m.mine) meta.append(el("span", T[m.status] ?? m.status, { class: "state" }));
      const label = m.label.orgs.map((o) => orgNames.get(o) ?? o).join(", ") || T.label_none;
      item.append(meta, el("p", m.text, { class: "text" }), el("p", `${T.label}: ${label}`, { class: "label" }));
    }
    list.append(item);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function drawComposer(view) {
  const usable = Boolean(view?.state) && !view.removed && !view.refusal;
  $("composer").hidden = Boolean(view?.removed);
  $("compose").disabled = !usable;
  $("send").disabled = !usable;
  const box = $("label-choice");
  const may = usable ? [...view.mayStore].sort() : [];
  const key = `${view?.id}:${may.join()}`;
  if (key === labelKey) return;
  labelKey = key;
  box.replaceChildren(box.firstElementChild);
  const chosen = new Set(usable ? engine.defaultLabel(view.id, me.org) : []);
  const named = may.map((orgHex) => uuidOf(unhex(orgHex)))
    .sort((a, b) => (orgNames.get(a) ?? a).localeCompare(orgNames.get(b) ?? b, locale));
  for (const org of named) {
    const input = el("input", undefined, { type: "checkbox", name: "store", value: org });
    input.checked = chosen.has(org);
    const label = el("label");
    label.append(input, ` ${orgNames.get(org) ?? org}`);
    box.append(label);
  }
}

function resetLabel() {
  labelKey = null;
  drawComposer(engine?.threads.get(selected()));
}

// --- actions ------------------------------------------------------------------------------------

function send() {
  const id = selected();
  const view = engine?.threads.get(id);
  const text = $("compose").value;
  if (!view?.state || !text.trim()) return;
  const orgs = [...document.querySelectorAll("#label-choice input[name=store]:checked")].map((i) => i.value);
  engine.send(id, text, orgs);
  $("compose").value = "";
  resetLabel();
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});

$("compose").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});

$("new-thread").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    const made = await api("POST", "/api/threads", { client_ref: form.elements.client_ref.value.trim(),
      purpose: form.elements.purpose.value });
    form.reset();
    await refreshList();
    if (engine) engine.thread(made.thread).refusal = "koppi.no_consent";
    location.hash = made.thread;
  } catch (e) {
    $("device-state").hidden = false;
    $("device-state").textContent = `${T.error}: ${reason(e.code)} (${e.code})`;
  }
});

$("invite-org").addEventListener("change", async (event) => {
  const org = event.target.value;
  const id = selected();
  const list = $("directory");
  list.replaceChildren();
  if (!org) return;
  try {
    const found = await api("GET", `/api/organisations/${org}/professionals?thread=${id}`);
    const present = new Set((members.get(id) ?? []).map((m) => m.user));
    for (const p of found.professionals.filter((x) => !present.has(x.user))) {
      const button = el("button", T.invite_button, { type: "button", class: "small", "data-user": p.user });
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await api("POST", `/api/threads/${id}/members`, { user: p.user });
          $("invite-status").textContent = fill(T.invited, { name: p.username });
          button.closest("li").remove();
          await loadThread(id);
        } catch (e) {
          $("invite-status").textContent = `${T.error}: ${reason(e.code)} (${e.code})`;
          button.disabled = false;
        }
      });
      const item = el("li", `${p.username} `, { "data-username": p.username });
      item.append(button);
      list.append(item);
    }
  } catch (e) {
    $("invite-status").textContent = `${T.error}: ${reason(e.code)} (${e.code})`;
  }
});

/** The header's language switch keeps the open thread (the page's fragment). */
function keepThreadInLanguageLinks() {
  for (const a of document.querySelectorAll("header nav.languages a[hreflang]")) {
    const url = new URL(a.href, location.href);
    url.hash = location.hash;
    a.href = url.href;
  }
}

async function select() {
  keepThreadInLanguageLinks();
  labelKey = null;
  drawList();
  drawThread();
  const id = selected();
  if (id) await loadThread(id).catch((e) => { $("thread-note").textContent = `${T.error}: ${reason(e.code)}`; });
}

window.addEventListener("hashchange", () => { select(); });

// Who is in the conference and under which consent changes without a frame: look again.
setInterval(() => {
  const id = selected();
  if (id && !document.hidden) loadThread(id).catch(() => {});
  refreshList().catch(() => {});
}, 3000);

start()
  .then(select)
  .catch((e) => {
    deviceState(`${T.error}: ${reason(e.code)} (${e.code ?? e.message})`, "error");
  })
  .finally(() => { document.body.dataset.ready = "true"; });

