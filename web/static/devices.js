// A professional enrols this browser as a device: its keys are generated here and never leave
// it (non-extractable CryptoKeys in IndexedDB); the organisation's admin compares the
// fingerprint and approves. This page shows the state until then.

import { KeyStore } from "/static/protocol/keystore.js";
import { deviceIdOf } from "/static/protocol/identity.js";
import { api, b64u } from "/static/app-common.js";

const status = document.getElementById("device-status");
const fingerprint = document.getElementById("fingerprint");
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
  fingerprint.textContent = device.fingerprint;
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
