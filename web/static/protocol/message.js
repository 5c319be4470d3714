// Messages: seal and open one message of an epoch (docs/protocol.md §7), mirroring
// crypto/message.py check for check and code for code.
//
// An epoch, as this module sees it (built by the thread state, or from a vector):
//   { threadId, number, epochId, coreHash, keys: {sender, ...}, treeSize,
//     roster: Map(hex device id -> {deviceId, signingPublic, orgId, certLogIndex, revokedAtIndex}),
//     coverage: Set(hex org id), mayStore: Set(hex org id), senderSecrets: Map }

import { Decoder, Encoder, concat, hex, sha256, hashFields } from "./encoding.js";
import { DecodeError, LocalProtocolError, RemoteProtocolError } from "./errors.js";
import { aeadOpen, aeadSeal, constantTimeEqual, ed25519Verify, hkdf } from "./primitives.js";

export const BASIS_CODES = new Set(["consent", "legal-obligation", "public-task", "vital-interests"]);
export const BUCKETS = [256, 1024, 4096, 16384, 65536];
export const BUCKET_STEP = 65536;
export const MAX_PADDED = 1024 * 1024;
const MAX_HEADER = 64 * 1024;
const ORG_ID_LEN = 16;

export class MessageError extends RemoteProtocolError {}

const fail = (message, code) => new MessageError(message, code);

export const LABEL_POLICIES = new Set(["own-organisation", "all-may-store", "none"]);

/**
 * The label a sender starts from under the thread's policy (docs/protocol.md §7.1): only its own
 * organisation, every organisation the consent lets store, or none; always within `mayStore`
 * (a Set of hex org ids).
 */
export function defaultLabel(policy, senderOrg, mayStore, basis = "consent") {
  if (!LABEL_POLICIES.has(policy)) throw fail("unknown label policy", "koppi.bad_label");
  const hexOf = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const own = hexOf(senderOrg);
  const wanted = { "own-organisation": [own], "all-may-store": [...mayStore], none: [] }[policy];
  const orgs = wanted.filter((o) => mayStore.has(o)).sort()
    .map((o) => Uint8Array.from(o.match(/../g), (x) => parseInt(x, 16)));
  return new StorageLabel(orgs, basis);
}

/** Which organisations may store a message's content, and on what basis (a policy tag). */
export class StorageLabel {
  constructor(organisations, basis, retentionDays = 0) {
    if (!BASIS_CODES.has(basis)) throw fail("storage basis outside the fixed list", "koppi.bad_label");
    if (organisations.some((o) => o.length !== ORG_ID_LEN)) {
      throw fail("organisation ids are 16 bytes", "koppi.bad_label");
    }
    if (!(retentionDays >= 0 && retentionDays < 2 ** 32)) {
      throw fail("retention days must fit a u32", "koppi.bad_label");
    }
    this.organisations = organisations;
    this.basis = basis;
    this.retentionDays = retentionDays;
  }

  encode() {
    return new Encoder("koppi/v1/storage-label").list(this.organisations).text(this.basis)
      .u32(this.retentionDays).finish();
  }

  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/storage-label");
    const orgs = dec.list({ maxItems: 1000, itemMaxLen: ORG_ID_LEN });
    const label = new StorageLabel(orgs, dec.text({ maxLen: 64 }), dec.u32());
    dec.finish();
    return label;
  }

  /** Only organisations the epoch's consent covers and lets store content. */
  allowedIn(epoch) {
    return this.organisations.every((o) => epoch.coverage.has(hex(o)) && epoch.mayStore.has(hex(o)));
  }
}

export class Header {
  constructor(f) {
    Object.assign(this, { version: 1, suite: 1 }, f);
  }

  encode() {
    return new Encoder("koppi/v1/msg-header").u16(this.version).u16(this.suite)
      .bytes(this.threadId).u64(this.epoch).bytes(this.epochId).bytes(this.sender)
      .u64(this.counter).bytes(this.messageId).u64(this.timestampMs).bytes(this.reuseGuard)
      .bytes(this.label.encode()).finish();
  }

  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/msg-header");
    const version = dec.u16();
    const suite = dec.u16();
    if (version !== 1 || suite !== 1) {
      throw fail("unsupported version or suite", "koppi.unsupported_version");
    }
    const h = new Header({
      threadId: dec.bytes({ length: 16 }),
      epoch: dec.u64n(),
      epochId: dec.bytes({ length: 16 }),
      sender: dec.bytes({ length: 32 }),
      counter: dec.u64n(),
      messageId: dec.bytes({ length: 16 }),
      timestampMs: dec.u64n(),
      reuseGuard: dec.bytes({ length: 4 }),
      label: StorageLabel.decode(dec.bytes({ maxLen: MAX_HEADER })),
    });
    dec.finish();
    return h;
  }
}

export function encodeContent(contentType, treeSize, headHash, body) {
  return new Encoder("koppi/v1/msg-content").text(contentType).u64(treeSize).bytes(headHash)
    .bytes(body).finish();
}

export function paddedSize(n) {
  for (const b of BUCKETS) if (n <= b) return b;
  return Math.ceil(n / BUCKET_STEP) * BUCKET_STEP;
}

export function pad(content) {
  const size = paddedSize(content.length + 1);
  if (size > MAX_PADDED) throw new LocalProtocolError("message too large", "koppi.message_too_large");
  const out = new Uint8Array(size);
  out.set(content);
  out[content.length] = 0x80;
  return out;
}

export function unpad(padded) {
  if (paddedSize(padded.length) !== padded.length) {
    throw fail("padded length is not a bucket size", "koppi.bad_padding");
  }
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  if (end === 0 || padded[end - 1] !== 0x80) throw fail("padding is not 0x80 then zeros", "koppi.bad_padding");
  return padded.slice(0, end - 1);
}

export async function deviceIdOf(signingPublic) {
  return hashFields("koppi/v1/device-id", signingPublic);
}

/** Derived once per epoch and sender (the epoch keeps it). */
export async function senderSecret(epoch, deviceId) {
  epoch.senderSecrets ??= new Map();
  const k = hex(deviceId);
  let secret = epoch.senderSecrets.get(k);
  if (!secret) {
    const info = new Encoder("koppi/v1/sender-secret").bytes(deviceId).finish();
    secret = await hkdf(epoch.keys.sender, new Uint8Array(0), info, 32);
    epoch.senderSecrets.set(k, secret);
  }
  return secret;
}

export async function messageKey(secret, counter, reuseGuard) {
  const info = new Encoder("koppi/v1/msg-key").u64(counter).finish();
  const okm = await hkdf(secret, new Uint8Array(0), info, 44);
  const nonce = okm.slice(32, 44);
  for (let i = 0; i < 4; i++) nonce[i] ^= reuseGuard[i];
  return { key: okm.slice(0, 32), nonce };
}

export async function signatureInput(header, ciphertext) {
  return new Encoder("koppi/v1/msg-sig").bytes(header).bytes(await sha256(ciphertext)).finish();
}

export function encodeMessage(header, ciphertext, signature) {
  return new Encoder("koppi/v1/message").bytes(header).bytes(ciphertext).bytes(signature).finish();
}

export function decodeMessage(data) {
  if (data.length > MAX_PADDED + MAX_HEADER + 1024) throw fail("message too large", "koppi.message_too_large");
  const dec = new Decoder(data, "koppi/v1/message");
  const header = dec.bytes({ maxLen: MAX_HEADER });
  const ciphertext = dec.bytes({ maxLen: MAX_PADDED + 16 });
  const signature = dec.bytes({ length: 64 });
  dec.finish();
  return { header, ciphertext, signature };
}

export function parse(data) {
  const parts = decodeMessage(data);
  return { data, ...parts, headerFields: Header.decode(parts.header) };
}

export function validAt(device, treeSize) {
  if (treeSize <= device.certLogIndex) return false;
  return device.revokedAtIndex === null || device.revokedAtIndex === undefined ||
    treeSize <= device.revokedAtIndex;
}

/** Seal one message; the caller persists counter + 1 before calling (a counter is never reused). */
export async function seal(epoch, signingKey, f) {
  const deviceId = await deviceIdOf(signingKey.public);
  if (!epoch.roster.has(hex(deviceId))) {
    throw new LocalProtocolError("sender not in the epoch's roster", "koppi.not_in_roster");
  }
  if (!f.label.allowedIn(epoch)) {
    throw new LocalProtocolError("label names an organisation the consent does not let store",
      "koppi.label_not_covered");
  }
  if (f.messageId.length !== 16 || f.reuseGuard.length !== 4) {
    throw new LocalProtocolError("a message id is 16 bytes and a reuse guard 4");
  }
  const header = new Header({
    threadId: epoch.threadId, epoch: epoch.number, epochId: epoch.epochId, sender: deviceId,
    counter: f.counter, messageId: f.messageId, timestampMs: f.timestampMs,
    reuseGuard: f.reuseGuard, label: f.label,
  }).encode();
  const { key, nonce } = await messageKey(await senderSecret(epoch, deviceId), f.counter, f.reuseGuard);
  const padded = pad(encodeContent(f.contentType, f.treeSize, f.treeHeadHash, f.body));
  const ciphertext = await aeadSeal(key, nonce, padded, header);
  return encodeMessage(header, ciphertext, await signingKey.sign(await signatureInput(header, ciphertext)));
}

/** Verify and decrypt one message of `epoch`, in the order of docs/protocol.md §7.4. */
export async function open(epoch, dataOrParsed) {
  const p = dataOrParsed instanceof Uint8Array ? parse(dataOrParsed) : dataOrParsed;
  const h = p.headerFields;
  if (!constantTimeEqual(h.threadId, epoch.threadId)) throw fail("message of another thread", "koppi.wrong_thread");
  if (h.epoch !== epoch.number) throw fail("message of another epoch", "koppi.wrong_epoch");
  if (!constantTimeEqual(h.epochId, epoch.epochId)) {
    throw fail("epoch_id differs from the applied commit", "koppi.fork");
  }
  const sender = epoch.roster.get(hex(h.sender));
  if (!sender) throw fail("sender not in the epoch's roster", "koppi.not_in_roster");
  if (!validAt(sender, epoch.treeSize)) {
    throw fail("sender not valid at this epoch's tree size", "koppi.sender_revoked");
  }
  await ed25519Verify(sender.signingPublic, await signatureInput(p.header, p.ciphertext), p.signature);
  if (!h.label.allowedIn(epoch)) {
    throw fail("label names an organisation the consent does not let store", "koppi.label_not_covered");
  }
  const { key, nonce } = await messageKey(await senderSecret(epoch, h.sender), h.counter, h.reuseGuard);
  const content = new Decoder(unpad(await aeadOpen(key, nonce, p.ciphertext, p.header)),
    "koppi/v1/msg-content");
  const contentType = content.text({ maxLen: 64 });
  const treeSize = content.u64n();
  const treeHeadHash = content.bytes({ maxLen: 32 });
  if (treeHeadHash.length !== 0 && treeHeadHash.length !== 32) {
    throw new DecodeError("the echoed tree head hash is 32 bytes or empty");
  }
  const body = content.bytes({ maxLen: MAX_PADDED });
  content.finish();
  return { header: h, sender, contentType, treeSize, treeHeadHash, body, wireHash: await sha256(p.data) };
}

/** Remembers, per (thread, epoch), what was opened: a byte-identical resend is koppi.replay, the
 * same counter with other bytes koppi.counter_reuse; a re-encrypted message id is reported. */
export class ReplayGuard {
  constructor() {
    this.seen = new Map();
    this.ids = new Map();
  }

  check(opened) {
    const h = opened.header;
    const epochKey = `${hex(h.threadId)}/${h.epoch}`;
    if (!this.seen.has(epochKey)) this.seen.set(epochKey, new Map());
    const seen = this.seen.get(epochKey);
    const k = `${hex(h.sender)}/${h.counter}`;
    const known = seen.get(k);
    if (known) {
      if (constantTimeEqual(known, opened.wireHash)) throw fail("message already received", "koppi.replay");
      throw fail("counter reused with different bytes", "koppi.counter_reuse");
    }
    seen.set(k, opened.wireHash);
    const idKey = `${hex(h.sender)}/${hex(h.messageId)}`;
    let duplicate = false;
    for (const [ek, ids] of this.ids) {
      if (ek.startsWith(`${hex(h.threadId)}/`) && ids.has(idKey)) duplicate = true;
    }
    if (!this.ids.has(epochKey)) this.ids.set(epochKey, new Set());
    this.ids.get(epochKey).add(idKey);
    return duplicate;
  }

  forgetBefore(threadId, epoch) {
    for (const map of [this.seen, this.ids]) {
      for (const k of [...map.keys()]) {
        const [t, e] = k.split("/");
        if (t === hex(threadId) && Number(e) < epoch) map.delete(k);
      }
    }
  }
}

export { concat };
