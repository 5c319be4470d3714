// A module Web Worker that runs the protocol's heavy steps off the UI thread (issue: browser
// twin). Messages: {id, op, args} -> {id, ok, value} or {id, ok: false, code, message}. Keys
// travel as CryptoKeys (structured clone keeps them non-extractable); epochs as plain objects.

import * as M from "./message.js";
import { KemKey, SigningKey, hpkeSeal } from "./primitives.js";

const OPS = {
  async seal(epoch, signer, fields) {
    fields.label = new M.StorageLabel(fields.label.organisations, fields.label.basis, fields.label.retentionDays);
    return M.seal(epoch, new SigningKey(signer.privateKey, signer.public), fields);
  },
  async open(epoch, data) {
    const opened = await M.open(epoch, data);
    // The header (its label as a plain object) and the wire hash, for the caller's replay guard.
    return { body: opened.body, sender: opened.header.sender, counter: opened.header.counter,
      header: { ...opened.header, label: { ...opened.header.label } }, contentType: opened.contentType,
      wireHash: opened.wireHash };
  },
  async hpkeSeal(recipientPublic, info, plaintext) {
    return hpkeSeal(recipientPublic, info, plaintext);
  },
  async kemPublic(privateKey, publicKey) {
    return new KemKey(privateKey, publicKey).public;
  },
};

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  try {
    self.postMessage({ id, ok: true, value: await OPS[op](...args) });
  } catch (e) {
    self.postMessage({ id, ok: false, code: e.code ?? "koppi.error", message: String(e.message ?? e) });
  }
};

// The pages' CSP requires Trusted Types for script URLs: `new Worker` takes only what this one
// named policy ("koppi-worker", the only one the CSP allows) passes, which is this very file.
let workerPolicy;
function trustedWorkerURL(url) {
  if (globalThis.trustedTypes === undefined) return url;
  workerPolicy ??= globalThis.trustedTypes.createPolicy("koppi-worker", {
    createScriptURL(value) {
      const own = new URL("./worker.js", import.meta.url).href;
      if (new URL(value, location.href).href !== own) throw new TypeError(`not Koppi's worker: ${value}`);
      return own;
    },
  });
  return workerPolicy.createScriptURL(String(url));
}

/** Main-thread side: `const crypto = new ProtocolWorker(); await crypto.call("seal", ...)`. */
export class ProtocolWorker {
  constructor(url = new URL("./worker.js", import.meta.url)) {
    this.worker = new Worker(trustedWorkerURL(url), { type: "module" });
    this.next = 0;
    this.waiting = new Map();
    this.worker.onmessage = (event) => {
      const { id, ok, value, code, message } = event.data;
      const { resolve, reject } = this.waiting.get(id);
      this.waiting.delete(id);
      if (ok) resolve(value);
      else reject(Object.assign(new Error(message), { code }));
    };
  }
  call(op, ...args) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args });
    });
  }
  terminate() {
    this.worker.terminate();
  }
}
