// A professional enrols this browser as a device: its keys are generated here and never leave
// it (non-extractable CryptoKeys in IndexedDB); the organisation's admin compares the
// fingerprint and approves. This page shows the state until then. The fingerprint shown here is
// computed from this browser's own keys (docs/protocol.md §3), never taken from the server.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf } from "/static/protocol/identity.js";
import { deviceFingerprint } from "/static/protocol/fingerprint.js";
import { api, b64u } from "/static/app-common.js";

const status = document.getElementById("device-status");
const fingerprint = document.getElementById("fingerprint");
const fingerprintWords = document.getElementById("fingerprint-words");
const fingerprintWarning = document.getElementById("fingerprint-warning");
const persistence = document.getElementById("persistence");

async function enrol() {
  const store = await KeyStore.open();
  const keys = await store.deviceKeys();
  const p = await KeyStore.requestPersistence();
  persistence.textContent = p.persisted
    ? "Browser storage is persistent: the keys will not be evicted."
    : "Browser storage is NOT persistent: the browser may evict this device's keys.";
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
  const mine = await deviceFingerprint(keys.signingPublic, keys.kemPublic);
  fingerprintWords.textContent = mine.words.join(" ");
  fingerprint.textContent = mine.hex;
  if (device.signing_public !== b64u(keys.signingPublic) || device.kem_public !== b64u(keys.kemPublic)) {
    fingerprintWarning.textContent =
      "The server holds other keys for this device than this browser: tell your admin not to approve it.";
  }
  const show = (d) => {
    status.textContent = { pending: "Waiting for your organisation's admin to approve this device.",
      approved: "Approved: this device can take part in case conferences.",
      revoked: "Revoked: this device was cut off." }[d.status];
    status.dataset.status = d.status;
  };
  show(device);
  setInterval(async () => show(await api("GET", `/api/devices/${id}`)), 1000);
}

document.getElementById("enrol").addEventListener("click", () => {
  enrol().catch((e) => { status.textContent = e.message; });
});
