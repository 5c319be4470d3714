// Suite 1 primitives in native WebCrypto, with Koppi's strict checks before each platform call
// (docs/protocol.md §2), mirroring crypto/primitives.py. Private keys are imported as
// non-extractable CryptoKeys: once imported, no script can read them back.

import { AuthFailed, LocalProtocolError, WeakKey } from "./errors.js";
import { concat, sha256, utf8 } from "./encoding.js";

const subtle = globalThis.crypto.subtle;
export { sha256 };

export const P = (1n << 255n) - 19n;
export const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function leInt(bytes) {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

// y-coordinates of the eight small-order points of edwards25519 (sign bit ignored).
const SMALL_ORDER_Y = new Set([
  0n,
  1n,
  P - 1n,
  leInt(Uint8Array.from(hexBytes("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))),
  leInt(Uint8Array.from(hexBytes("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))),
]);

// u-coordinates of the low-order points of Curve25519 (RFC 7748 §6.1).
const LOW_ORDER_U = new Set([
  0n,
  1n,
  P - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
]);

function hexBytes(h) {
  const out = [];
  for (let i = 0; i < h.length; i += 2) out.push(parseInt(h.slice(i, i + 2), 16));
  return out;
}

// --- hashes, MACs, KDF, AEAD ---------------------------------------------------------------

export async function hmacSha256(key, data) {
  // WebCrypto refuses an empty HMAC key; callers pass 32 zero bytes for RFC 5869's empty salt,
  // which HMAC treats identically (the key is zero-padded to the block size either way).
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data));
}

export async function hkdfExtract(salt, ikm) {
  return hmacSha256(salt.length ? salt : new Uint8Array(32), ikm);
}

export async function hkdfExpand(prk, info, length) {
  if (length > 255 * 32) throw new LocalProtocolError("HKDF output too long");
  const blocks = [];
  let t = new Uint8Array(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    t = await hmacSha256(prk, concat(t, info, Uint8Array.of(i)));
    blocks.push(t);
  }
  return concat(...blocks).slice(0, length);
}

export async function hkdf(ikm, salt, info, length) {
  return hkdfExpand(await hkdfExtract(salt, ikm), info, length);
}

export async function aeadSeal(key, nonce, plaintext, aad) {
  if (key.length !== 32 || nonce.length !== 12) {
    throw new LocalProtocolError("AES-256-GCM needs a 32-byte key and a 12-byte nonce");
  }
  const k = await subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, k, plaintext),
  );
}

export async function aeadOpen(key, nonce, ciphertext, aad) {
  if (key.length !== 32 || nonce.length !== 12) {
    throw new LocalProtocolError("AES-256-GCM needs a 32-byte key and a 12-byte nonce");
  }
  const k = await subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(
      await subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, k, ciphertext),
    );
  } catch {
    throw new AuthFailed();
  }
}

// --- Ed25519 ---------------------------------------------------------------------------------

function edPointAcceptable(encoding) {
  const y = leInt(encoding) & ((1n << 255n) - 1n);
  return y < P && !SMALL_ORDER_Y.has(y);
}

export function checkEd25519Public(publicKey) {
  if (publicKey.length !== 32 || !edPointAcceptable(publicKey)) {
    throw new WeakKey("Ed25519 public key is non-canonical or of small order");
  }
  return publicKey;
}

/** Strict verification: our checks first (engines differ here), then the platform's. */
export async function ed25519Verify(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) throw new AuthFailed();
  if (!edPointAcceptable(publicKey) || !edPointAcceptable(signature.slice(0, 32))) {
    throw new AuthFailed();
  }
  if (leInt(signature.slice(32)) >= L) throw new AuthFailed();
  let ok = false;
  try {
    const k = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    ok = await subtle.verify({ name: "Ed25519" }, k, signature, message);
  } catch {
    ok = false;
  }
  if (!ok) throw new AuthFailed();
}

const ED25519_PKCS8 = Uint8Array.from(hexBytes("302e020100300506032b657004220420"));
const X25519_PKCS8 = Uint8Array.from(hexBytes("302e020100300506032b656e04220420"));

/** An Ed25519 signing key held as a non-extractable CryptoKey. */
export class SigningKey {
  constructor(privateKey, publicKey) {
    this.privateKey = privateKey;
    this.public = publicKey;
  }
  static async fromSeed(seed, { extractable = false } = {}) {
    if (seed.length !== 32) throw new LocalProtocolError("an Ed25519 seed is 32 bytes");
    const priv = await subtle.importKey("pkcs8", concat(ED25519_PKCS8, seed), { name: "Ed25519" },
      true, ["sign"]);
    const jwk = await subtle.exportKey("jwk", priv);
    const pub = b64uDecode(jwk.x);
    const key = extractable ? priv : await subtle.importKey("pkcs8", concat(ED25519_PKCS8, seed),
      { name: "Ed25519" }, false, ["sign"]);
    return new SigningKey(key, pub);
  }
  static async generate() {
    const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const pub = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
    return new SigningKey(pair.privateKey, pub);
  }
  async sign(message) {
    return new Uint8Array(await subtle.sign({ name: "Ed25519" }, this.privateKey, message));
  }
}

function b64uDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// --- X25519 ----------------------------------------------------------------------------------

export function checkX25519Public(publicKey) {
  if (publicKey.length !== 32) throw new WeakKey("X25519 public key must be 32 bytes");
  const u = leInt(publicKey) & ((1n << 255n) - 1n);
  if (u >= P || LOW_ORDER_U.has(u)) throw new WeakKey("X25519 public key is low-order or non-canonical");
  return publicKey;
}

const BASEPOINT = Uint8Array.of(9, ...new Uint8Array(31));

async function rawDeriveBits(privateKey, publicBytes) {
  const pub = await subtle.importKey("raw", publicBytes, { name: "X25519" }, true, []);
  try {
    return new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pub }, privateKey, 256));
  } catch {
    throw new WeakKey("X25519 shared secret is all zero");
  }
}

/** An X25519 private key held as a non-extractable CryptoKey. */
export class KemKey {
  constructor(privateKey, publicKey) {
    this.privateKey = privateKey;
    this.public = publicKey;
  }
  static async fromBytes(raw) {
    if (raw.length !== 32) throw new LocalProtocolError("an X25519 private key is 32 bytes");
    const key = await subtle.importKey("pkcs8", concat(X25519_PKCS8, raw), { name: "X25519" },
      false, ["deriveBits"]);
    // The public key is the private scalar times the base point (RFC 7748 §6.1).
    return new KemKey(key, await rawDeriveBits(key, BASEPOINT));
  }
  async exchange(peerPublic) {
    checkX25519Public(peerPublic);
    const shared = await rawDeriveBits(this.privateKey, peerPublic);
    if (shared.every((b) => b === 0)) throw new WeakKey("X25519 shared secret is all zero");
    return shared;
  }
}

/** Plain RFC 7748 scalar multiplication (for the RFC's own vectors, no Koppi checks). */
export async function x25519(scalar, u) {
  const key = await subtle.importKey("pkcs8", concat(X25519_PKCS8, scalar), { name: "X25519" },
    false, ["deriveBits"]);
  return rawDeriveBits(key, u);
}

// --- HPKE (RFC 9180) base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM ---------

const KEM_SUITE = concat(utf8.encode("KEM"), Uint8Array.of(0x00, 0x20));
const HPKE_SUITE = concat(utf8.encode("HPKE"), Uint8Array.of(0x00, 0x20, 0x00, 0x01, 0x00, 0x01));
const V1 = utf8.encode("HPKE-v1");

function i2osp(value, width) {
  const out = new Uint8Array(width);
  let v = value;
  for (let i = width - 1; i >= 0; i--) {
    out[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  return out;
}

export async function labeledExtract(suite, salt, label, ikm) {
  return hkdfExtract(salt, concat(V1, suite, utf8.encode(label), ikm));
}

export async function labeledExpand(suite, prk, label, info, length) {
  return hkdfExpand(prk, concat(i2osp(length, 2), V1, suite, utf8.encode(label), info), length);
}

/** RFC 9180 §7.1.3 DeriveKeyPair for X25519: the private key bytes from `ikm`. */
export async function deriveKeyPair(ikm) {
  const prk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "dkp_prk", ikm);
  const sk = await labeledExpand(KEM_SUITE, prk, "sk", new Uint8Array(0), 32);
  const key = await KemKey.fromBytes(sk);
  return { sk, key };
}

async function extractAndExpand(dh, kemContext) {
  const prk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dh);
  return labeledExpand(KEM_SUITE, prk, "shared_secret", kemContext, 32);
}

export async function keySchedule(sharedSecret, info) {
  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(HPKE_SUITE, empty, "psk_id_hash", empty);
  const infoHash = await labeledExtract(HPKE_SUITE, empty, "info_hash", info);
  const ksc = concat(Uint8Array.of(0), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE, sharedSecret, "secret", empty);
  return {
    keyScheduleContext: ksc,
    secret,
    key: await labeledExpand(HPKE_SUITE, secret, "key", ksc, 16),
    baseNonce: await labeledExpand(HPKE_SUITE, secret, "base_nonce", ksc, 12),
    exporterSecret: await labeledExpand(HPKE_SUITE, secret, "exp", ksc, 32),
  };
}

export function hpkeNonce(baseNonce, seq) {
  const nonce = Uint8Array.from(baseNonce);
  const s = i2osp(seq, 12);
  for (let i = 0; i < 12; i++) nonce[i] ^= s[i];
  return nonce;
}

async function aes128(mode, key, nonce, data, aad) {
  const k = await subtle.importKey("raw", key, "AES-GCM", false, [mode]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad };
  if (mode === "encrypt") return new Uint8Array(await subtle.encrypt(params, k, data));
  try {
    return new Uint8Array(await subtle.decrypt(params, k, data));
  } catch {
    throw new AuthFailed();
  }
}

export async function hpkeSealSequence(ctx, seq, aad, plaintext) {
  return aes128("encrypt", ctx.key, hpkeNonce(ctx.baseNonce, seq), plaintext, aad);
}

export async function hpkeOpenSequence(ctx, seq, aad, ciphertext) {
  return aes128("decrypt", ctx.key, hpkeNonce(ctx.baseNonce, seq), ciphertext, aad);
}

/** Encap (§4.1): returns {sharedSecret, enc}; the ephemeral key comes from `ephemeralIkm`
 * (DeriveKeyPair), fixed for test vectors, 32 random bytes otherwise. */
export async function encap(recipientPublic, ephemeralIkm = null) {
  checkX25519Public(recipientPublic);
  const ikm = ephemeralIkm ?? globalThis.crypto.getRandomValues(new Uint8Array(32));
  const { key } = await deriveKeyPair(ikm);
  const dh = await key.exchange(recipientPublic);
  const enc = key.public;
  return { sharedSecret: await extractAndExpand(dh, concat(enc, recipientPublic)), enc };
}

export async function decap(enc, recipient) {
  const dh = await recipient.exchange(enc);
  return extractAndExpand(dh, concat(enc, recipient.public));
}

/** Single-shot base-mode seal: enc(32) || ct || tag. Koppi passes no AAD (context is in info). */
export async function hpkeSeal(recipientPublic, info, plaintext, { ephemeralIkm = null, aad } = {}) {
  const { sharedSecret, enc } = await encap(recipientPublic, ephemeralIkm);
  const ctx = await keySchedule(sharedSecret, info);
  return concat(enc, await hpkeSealSequence(ctx, 0, aad ?? new Uint8Array(0), plaintext));
}

export async function hpkeOpen(recipient, info, sealed, { aad } = {}) {
  if (sealed.length < 32 + 16) throw new AuthFailed();
  let sharedSecret;
  try {
    sharedSecret = await decap(sealed.slice(0, 32), recipient);
  } catch {
    throw new AuthFailed();
  }
  const ctx = await keySchedule(sharedSecret, info);
  return hpkeOpenSequence(ctx, 0, aad ?? new Uint8Array(0), sealed.slice(32));
}

export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
