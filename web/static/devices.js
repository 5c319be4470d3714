// A professional enrols this browser as a device: its keys are generated here and never leave
// it (non-extractable CryptoKeys in IndexedDB); the organisation's admin compares the
// fingerprint and approves. This page shows the state until then, and after: while the device is
// waiting it asks the server every second, and once approved it connects as this device
// (`hello` with `device`), so that a revocation reaches it at once: the server closes the
// connection with 4010 (docs/protocol.md §11) and the page says the device was cut off. The
// fingerprint shown here is computed from this browser's own keys (docs/protocol.md §3), never
// taken from the server.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf } from "/static/protocol/identity.js";
import { deviceFingerprint } from "/static/protocol/fingerprint.js";
import { api, b64u, fill, pageText } from "/static/app-common.js";

const T = pageText("devices-text");
const $ = (id) => document.getElementById(id);
const status = $("device-status");
const connection = $("device-connection");
const DEVICE_REVOKED = 4010;
const USER_DISABLED = 4011;
let watching = null; // the device id this page follows, once known
let poller = null;
let socket = null;

function show(device) {
  status.textContent = T[device.status];
  status.dataset.status = device.status;
  $("enrol").hidden = true;
  if (device.status === "pending") {
    poller ??= setInterval(() => { refresh().catch(failed); }, 1000);
  } else {
    clearInterval(poller);
    poller = null;
  }
  if (device.status === "approved" && !socket) connect();
}

async function refresh() {
  show(await api("GET", `/api/devices/${watching}`));
}

/** Connect as this device: the server closes this connection the moment it is revoked. */
function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws`);
  connection.dataset.state = "connecting";
  connection.textContent = T.connecting;
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ type: "hello", v: 1, device: watching }));
  });
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "ready") {
      connection.dataset.state = "open";
      connection.textContent = T.connected;
    } else if (frame.type === "error") {
      connection.dataset.error = frame.code;
    }
  });
  socket.addEventListener("close", (event) => {
    socket = null;
    connection.dataset.state = "closed";
    connection.dataset.closeCode = String(event.code);
    if (event.code === DEVICE_REVOKED) {
      // Never reconnect as this device (docs/protocol.md §11).
      status.textContent = T.revoked;
      status.dataset.status = "revoked";
      connection.textContent = fill(T.cut_off, { code: event.code });
    } else if (event.code === USER_DISABLED) {
      connection.textContent = T.user_disabled;
    } else {
      connection.textContent = T.disconnected;
      setTimeout(() => { refresh().catch(failed); }, 3000); // the server says whether to reconnect
    }
  });
}

async function showFingerprint(keys, device) {
  const mine = await deviceFingerprint(keys.signingPublic, keys.kemPublic);
  $("fingerprint-words").textContent = mine.words.join(" ");
  $("fingerprint").textContent = mine.hex;
  $("fingerprint-box").hidden = false;
  if (device.signing_public !== b64u(keys.signingPublic) || device.kem_public !== b64u(keys.kemPublic)) {
    $("fingerprint-warning").textContent = T.mismatch;
  }
}

async function follow(keys, device) {
  await showFingerprint(keys, device);
  watching = b64u(await deviceIdOf(keys.signingPublic));
  show(device);
}

async function enrol() {
  const store = await KeyStore.open();
  const keys = await store.deviceKeys();
  const p = await KeyStore.requestPersistence();
  $("persistence").textContent = p.persisted ? T.persistent : T.not_persistent;
  const id = b64u(await deviceIdOf(keys.signingPublic));
  let device;
  try {
    device = await api("POST", "/api/devices", {
      signing_public: b64u(keys.signingPublic), kem_public: b64u(keys.kemPublic), label: "browser",
    });
  } catch (e) {
    if (e.code !== "koppi.device_exists") throw e;
    device = await api("GET", `/api/devices/${id}`);
  }
  if (!watching) await follow(keys, device);
}

/** A browser enrolled before: its state at once, without pressing anything. */
async function start() {
  const store = await KeyStore.open();
  const keys = await store.get("keys", "device");
  if (!keys) {
    status.textContent = T.not_enrolled;
    status.dataset.status = "none";
    return;
  }
  try {
    await follow(keys, await api("GET", `/api/devices/${b64u(await deviceIdOf(keys.signingPublic))}`));
  } catch (e) {
    if (e.code !== "koppi.unknown_device") throw e;
    status.textContent = T.not_enrolled;
    status.dataset.status = "none";
  }
}

function failed(e) {
  status.textContent = T[e.code] ?? `${T.error}: ${e.message}`;
  status.dataset.error = e.code ?? "error";
}

$("enrol").addEventListener("click", () => { enrol().catch(failed); });
start().catch(failed).finally(() => { document.body.dataset.ready = "true"; });
