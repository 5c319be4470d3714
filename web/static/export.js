// A professional exports, from this browser, the messages of one thread that their organisation
// may store: decrypted here with this browser's device keys (never sent anywhere), refused where
// the sealed storage label is not the one the server filtered on or does not name the
// organisation, shown as text (textContent, never HTML), and offered as the same JSON the Python
// record system writes ("koppi-export/1", protocol/exporter.js). The log is followed into a
// TrustStore first (protocol/follower.js), pinned to the keys this page carries.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf, TrustStore } from "/static/protocol/identity.js";
import { unhex } from "/static/protocol/encoding.js";
import { KemKey, SigningKey } from "/static/protocol/primitives.js";
import { LogConfig, LogView } from "/static/protocol/treehead.js";
import { LogFollower } from "/static/protocol/follower.js";
import { Exporter, ExportError } from "/static/protocol/exporter.js";
import { api, el } from "/static/app-common.js";

const panel = document.getElementById("export-panel");
const threadId = panel.dataset.thread;
const $ = (id) => document.getElementById(id);
const T = JSON.parse($("export-text").textContent);
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
const TZ = "Europe/Helsinki";
const when = (ms) => new Date(ms).toLocaleString(document.documentElement.lang === "en" ? "en-GB" :
  `${document.documentElement.lang}-FI`, { timeZone: TZ, dateStyle: "short", timeStyle: "short" });
const get = (path) => api("GET", path);

let names = new Map();
const nameOf = (orgId) => names.get(orgId) ?? orgId;
let download = null;

async function load() {
  const thread = await get(`/api/threads/${threadId}`);
  $("thread-client-ref").textContent = `${thread.client_ref.slice(0, 12)}…`;
  $("thread-client-ref").title = thread.client_ref;
  $("thread-purpose").textContent = thread.purpose;
  names = new Map((await get("/api/organisations")).organisations.map((o) => [o.id, o.name]));
  $("export-run").disabled = false;
}

/** This browser's device keys as ThreadState takes them; never made here (/devices enrols). */
async function deviceSecrets() {
  const store = await KeyStore.open();
  try {
    const keys = await store.get("keys", "device");
    if (!keys) throw new ExportError("this browser holds no device keys", "koppi.no_device_keys");
    return {
      deviceId: await deviceIdOf(keys.signingPublic),
      signing: new SigningKey(keys.signing, keys.signingPublic),
      certKem: new KemKey(keys.kem, keys.kemPublic),
      packageKeys: new Map(), // this browser publishes no key packages: wraps use the certificate's key
    };
  } finally {
    store.close();
  }
}

/** A TrustStore pinned to the keys the page carries (root, log, witnesses and quorum). */
async function follower() {
  const { root, log, witnesses, quorum } = panel.dataset;
  if (!root || !log) throw new ExportError("no root key or log configured", "koppi.no_pins");
  const witnessKeys = witnesses ? witnesses.split(",").map(unhex) : [];
  const config = Number(quorum) > 0
    ? await LogConfig.create(unhex(log), witnessKeys, Number(quorum))
    : await LogConfig.unwitnessed(unhex(log));
  return new LogFollower(new TrustStore(unhex(root), new LogView(config, { nowMs: () => Date.now() })));
}

function renderMessage(m) {
  const item = el("li", undefined, { "data-seq": String(m.seq), "data-id": m.id });
  const meta = `${m.seq} · ${when(m.sent_at_ms)} · ${T.sender}: ${nameOf(m.sender.organisation)} · ` +
    `${T.label}: ${m.label.organisations.map(nameOf).join(", ")}`;
  const content = m.text !== null ? m.text
    : fill(T.binary, { type: m.content_type, bytes: Math.floor((m.body.length * 3) / 4) });
  item.append(el("p", meta, { class: "meta" }), el("p", content, { class: "text" }));
  return item;
}

async function run() {
  $("export-run").disabled = true;
  $("export-error").textContent = "";
  $("export-download").hidden = true;
  $("export-messages").replaceChildren();
  $("export-refused").replaceChildren();
  $("export-status").textContent = T.working;
  panel.dataset.state = "working";
  try {
    const me = await get("/api/me");
    const exporter = new Exporter(get, await deviceSecrets(), await follower(), { nowMs: () => Date.now() });
    const out = await exporter.export(threadId, me.org);
    for (const m of out.messages) $("export-messages").append(renderMessage(m));
    for (const r of out.refused) {
      $("export-refused").append(el("li", `${r.seq}: ${r.reason}`, { "data-code": r.code }));
    }
    if (!out.messages.length) $("export-messages").append(el("li", T.none));
    if (!out.refused.length) $("export-refused").append(el("li", T.none));
    if (download) URL.revokeObjectURL(download);
    download = URL.createObjectURL(new Blob([JSON.stringify(out, null, 2)], { type: "application/json" }));
    $("export-file").href = download;
    $("export-file").download = `koppi-export-${threadId}-${out.next_after}.json`;
    $("export-download").hidden = false;
    $("export-status").textContent = fill(T.done, { exported: out.messages.length, refused: out.refused.length });
    panel.dataset.state = "done";
  } catch (e) {
    $("export-status").textContent = "";
    const clear = T[e.code];
    $("export-error").textContent = `${T.error}: ${clear ?? e.message}${e.code ? ` (${e.code})` : ""}`;
    panel.dataset.state = "error";
    panel.dataset.error = e.code ?? "error";
  } finally {
    $("export-run").disabled = false;
  }
}

$("export-run").addEventListener("click", () => { run(); });

load()
  .catch((e) => {
    $("export-error").textContent = `${T[e.code] ?? e.message} (${e.code ?? "error"})`;
    panel.dataset.state = "error";
    panel.dataset.error = e.code ?? "error";
  })
  .finally(() => { document.body.dataset.ready = "true"; });
