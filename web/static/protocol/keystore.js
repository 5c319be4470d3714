// The browser's key store (issue: browser twin, "Key storage"): device keys live as
// non-extractable CryptoKeys in IndexedDB (no script can read them back, not even ours), epoch
// secrets and thread snapshots are sealed under a non-extractable AES-GCM storage key, durable
// storage is requested and its answer reported, and one tab per device sends (Web Locks).

import { AuthFailed } from "./errors.js";
import { concat, utf8 } from "./encoding.js";

const DB_NAME = "koppi";
const STORES = ["keys", "sealed"];

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export class KeyStore {
  constructor(db) {
    this.db = db;
  }

  static async open(name = DB_NAME) {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => {
      for (const s of STORES) if (!r.result.objectStoreNames.contains(s)) r.result.createObjectStore(s);
    };
    return new KeyStore(await request(r));
  }

  close() {
    this.db.close();
  }

  async get(store, key) {
    return request(this.db.transaction(store).objectStore(store).get(key));
  }

  async put(store, key, value) {
    const tx = this.db.transaction(store, "readwrite");
    tx.objectStore(store).put(value, key);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  /** Ask the browser not to evict our storage; the answer is reported to the user. */
  static async requestPersistence() {
    if (!navigator.storage?.persist) return { supported: false, persisted: false };
    const persisted = await navigator.storage.persist();
    return { supported: true, persisted, reported: await navigator.storage.persisted() };
  }

  /** This device's keys, generated here on first use and never extractable. */
  async deviceKeys() {
    let keys = await this.get("keys", "device");
    if (!keys) {
      const signing = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
      const kem = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
      keys = {
        signing: signing.privateKey,
        signingPublic: new Uint8Array(await crypto.subtle.exportKey("raw", signing.publicKey)),
        kem: kem.privateKey,
        kemPublic: new Uint8Array(await crypto.subtle.exportKey("raw", kem.publicKey)),
      };
      await this.put("keys", "device", keys);
    }
    return keys;
  }

  async storageKey() {
    let key = await this.get("keys", "storage");
    if (!key) {
      key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      await this.put("keys", "storage", key);
    }
    return key;
  }

  /** Seal bytes under the storage key; the name is bound as associated data. */
  async seal(name, bytes) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8.encode(name) }, await this.storageKey(), bytes));
    await this.put("sealed", name, { iv, ct });
  }

  async open(name) {
    const record = await this.get("sealed", name);
    if (!record) return null;
    try {
      return new Uint8Array(await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: record.iv, additionalData: utf8.encode(name) }, await this.storageKey(), record.ct));
    } catch {
      throw new AuthFailed();
    }
  }

  /** Persist a thread's snapshot (call it as `beforeSeal` of every send, and after each apply). */
  async saveThread(state) {
    await this.seal(`thread/${Array.from(state.threadId, (b) => b.toString(16).padStart(2, "0")).join("")}`,
      state.snapshot());
  }
}

/** One sending tab per device: resolves to a release function, or null if another tab sends. */
export async function acquireSendLock(deviceIdHex) {
  if (!navigator.locks) return async () => {};
  return new Promise((resolve) => {
    navigator.locks.request(`koppi-send-${deviceIdHex}`, { ifAvailable: true }, (lock) => {
      if (!lock) {
        resolve(null);
        return undefined;
      }
      return new Promise((release) => resolve(async () => release()));
    });
  });
}

export { concat };
