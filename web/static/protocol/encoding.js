// The one binary encoding of everything Koppi hashes, signs or MACs (docs/protocol.md §1),
// mirroring crypto/encoding.py: fields in a fixed order, the first an ASCII domain label;
// integers fixed-width big-endian; byte strings and text u32-length-prefixed; lists u32-count-
// prefixed, items strictly ascending bytewise. Decoding is strict: any deviation is DecodeError.

import { DecodeError, LocalProtocolError } from "./errors.js";

export const MAX_FIELD = 16 * 1024 * 1024;
export const MAX_ITEMS = 100000;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

export function concat(...parts) {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  return a.length === b.length && compareBytes(a, b) === 0;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function unhex(text) {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) throw new LocalProtocolError("not lowercase hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function labelBytes(label) {
  if (!/^koppi\/[\x20-\x7e]*$/.test(label)) {
    throw new LocalProtocolError("a domain label is ASCII and starts with 'koppi/'");
  }
  return utf8.encode(label);
}

function intBytes(value, width) {
  const v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(8 * width)) {
    throw new LocalProtocolError(`integer out of range for u${8 * width}`);
  }
  const out = new Uint8Array(width);
  let x = v;
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

export class Encoder {
  constructor(label) {
    this.parts = [];
    this.bytes(labelBytes(label));
  }
  u8(v) { this.parts.push(intBytes(v, 1)); return this; }
  u16(v) { this.parts.push(intBytes(v, 2)); return this; }
  u32(v) { this.parts.push(intBytes(v, 4)); return this; }
  u64(v) { this.parts.push(intBytes(v, 8)); return this; }
  boolean(v) { return this.u8(v ? 1 : 0); }
  bytes(value) {
    if (value.length > MAX_FIELD) throw new LocalProtocolError("field too large to encode");
    this.parts.push(intBytes(value.length, 4), Uint8Array.from(value));
    return this;
  }
  text(value) { return this.bytes(utf8.encode(value)); }
  /** A list; the caller's order does not matter, duplicates are a bug. */
  list(items) {
    const ordered = Array.from(items, (i) => Uint8Array.from(i)).sort(compareBytes);
    for (let i = 1; i < ordered.length; i++) {
      if (compareBytes(ordered[i - 1], ordered[i]) === 0) {
        throw new LocalProtocolError("duplicate list entry");
      }
    }
    this.u32(ordered.length);
    for (const item of ordered) this.bytes(item);
    return this;
  }
  finish() { return concat(...this.parts); }
}

export class Decoder {
  constructor(data, label) {
    this.data = data;
    this.pos = 0;
    if (!equalBytes(this.bytes({ maxLen: 256 }), labelBytes(label))) {
      throw new DecodeError(`expected an encoding labelled ${JSON.stringify(label)}`);
    }
  }
  take(n) {
    const end = this.pos + n;
    if (end > this.data.length) throw new DecodeError("encoding ends early");
    const out = this.data.slice(this.pos, end);
    this.pos = end;
    return out;
  }
  int(width) {
    let v = 0n;
    for (const b of this.take(width)) v = (v << 8n) | BigInt(b);
    return v;
  }
  u8() { return Number(this.int(1)); }
  u16() { return Number(this.int(2)); }
  u32() { return Number(this.int(4)); }
  /** u64 as a BigInt (exact), see u64n() for a safe-integer Number. */
  u64() { return this.int(8); }
  u64n() {
    const v = this.int(8);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError("integer above 2^53");
    return Number(v);
  }
  boolean() {
    const v = this.u8();
    if (v > 1) throw new DecodeError("boolean must be 0 or 1");
    return v === 1;
  }
  bytes({ length = null, maxLen = MAX_FIELD } = {}) {
    const n = this.u32();
    if (length !== null && n !== length) {
      throw new DecodeError(`expected a ${length}-byte field, got ${n}`);
    }
    if (n > maxLen) throw new DecodeError("field longer than allowed");
    return this.take(n);
  }
  text({ maxLen = 4096 } = {}) {
    const raw = this.bytes({ maxLen });
    try {
      return strictUtf8.decode(raw);
    } catch {
      throw new DecodeError("text field is not valid UTF-8");
    }
  }
  list({ maxItems = MAX_ITEMS, itemMaxLen = MAX_FIELD } = {}) {
    const count = this.u32();
    if (count > maxItems) throw new DecodeError("list has too many entries");
    const items = [];
    for (let i = 0; i < count; i++) {
      const item = this.bytes({ maxLen: itemMaxLen });
      if (items.length && compareBytes(item, items[items.length - 1]) <= 0) {
        throw new DecodeError("list entries unsorted or duplicated");
      }
      items.push(item);
    }
    return items;
  }
  finish() {
    if (this.pos !== this.data.length) throw new DecodeError("trailing bytes after the encoding");
  }
}

/** H(label, f1, ..., fn): SHA-256 of encode(label, bytes f1, ..., bytes fn). */
export async function hashFields(label, ...fields) {
  const enc = new Encoder(label);
  for (const f of fields) enc.bytes(f);
  return sha256(enc.finish());
}

export async function sha256(data) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

export { utf8 };

/** Unpadded base64url, as JSON carries byte strings on the wire (docs/protocol.md §1). */
export function b64u(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) throw new DecodeError("not base64url");
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
