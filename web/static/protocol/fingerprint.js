// Device fingerprints (docs/protocol.md §3, "Fingerprints"), mirroring crypto/fingerprint.py: what
// a professional and their organisation's admin compare before the admin certifies a device.
//   fingerprint = H("koppi/v1/fingerprint", signing_public(32), kem_public(32))
//   hex form    = its first 16 bytes, 8 groups of 4 lowercase hex digits
//   word form   = its first 8 bytes as PGP words (even positions two-syllable, odd three-syllable)
// Each side computes it from the keys it holds itself, never from what the server says it is.

import { hashFields, hex } from "./encoding.js";
import { LocalProtocolError } from "./errors.js";
import { EVEN_WORDS, ODD_WORDS } from "./wordlist.js";

export const FINGERPRINT_LABEL = "koppi/v1/fingerprint";
export const HEX_BYTES = 16;
export const WORD_BYTES = 8;

function key(name, value) {
  if (!(value instanceof Uint8Array)) {
    throw new LocalProtocolError(`${name} must be a Uint8Array`);
  }
  if (value.length !== 32) {
    throw new LocalProtocolError(`${name} must be 32 bytes (a raw public key), not ${value.length}`);
  }
  return value;
}

/** H("koppi/v1/fingerprint", signingPublic, kemPublic): 32 bytes. */
export async function fingerprint(signingPublic, kemPublic) {
  return hashFields(FINGERPRINT_LABEL, key("signing_public", signingPublic), key("kem_public", kemPublic));
}

/** Bytes as PGP words: even positions from the two-syllable list, odd from the three. */
export function pgpWords(bytes) {
  return Array.from(bytes, (b, i) => (i % 2 ? ODD_WORDS : EVEN_WORDS)[b]);
}

/** Both forms of a device's fingerprint: { hex: "abcd ef01 ...", words: ["...", ...] }. */
export async function deviceFingerprint(signingPublic, kemPublic) {
  const fp = await fingerprint(signingPublic, kemPublic);
  return {
    hex: hex(fp.subarray(0, HEX_BYTES)).match(/.{4}/g).join(" "),
    words: pgpWords(fp.subarray(0, WORD_BYTES)),
  };
}

export const fingerprintHex = async (signingPublic, kemPublic) =>
  (await deviceFingerprint(signingPublic, kemPublic)).hex;

export const fingerprintWords = async (signingPublic, kemPublic) =>
  (await deviceFingerprint(signingPublic, kemPublic)).words;
