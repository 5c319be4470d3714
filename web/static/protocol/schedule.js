// The epoch key schedule and the commit's wrap cryptography (docs/protocol.md §5.3, §5.7),
// mirroring crypto/schedule.py and crypto/commit.py.

import { Decoder, Encoder, concat, sha256, utf8 } from "./encoding.js";
import { RemoteProtocolError } from "./errors.js";
import { aeadSeal, aeadOpen, hkdf, hmacSha256, hpkeOpen, hpkeSeal } from "./primitives.js";

export const SUITE = 1;
export const PURPOSES = ["confirm", "metadata", "sender", "attachment"];

/** key(purpose) = HKDF(ikm = epoch secret, salt = core_hash,
 *                      info = encode("koppi/v1/key/" + purpose, bytes thread, u64 epoch), 32) */
export async function deriveEpochKeys(epochSecret, coreHash, threadId, epoch) {
  const keys = {};
  for (const purpose of PURPOSES) {
    const info = new Encoder(`koppi/v1/key/${purpose}`).bytes(threadId).u64(epoch).finish();
    keys[purpose] = await hkdf(epochSecret, coreHash, info, 32);
  }
  return keys;
}

export async function confirmationTag(confirmKey, coreHash) {
  return hmacSha256(confirmKey, coreHash);
}

export async function wrapInfo(threadId, epoch, coreHash, deviceId, kpHash) {
  const inner = new Encoder("koppi/v1/wrap-info").u16(SUITE).bytes(threadId).u64(epoch)
    .bytes(coreHash).bytes(deviceId).bytes(kpHash).finish();
  return concat(utf8.encode("koppi/v1/wrap"), await sha256(inner));
}

export async function historyInfo(threadId, oldEpoch, oldCommitHash, recipient, kpHash, coreHash) {
  const inner = new Encoder("koppi/v1/history-info").bytes(threadId).u64(oldEpoch)
    .bytes(oldCommitHash).bytes(recipient).bytes(kpHash).bytes(coreHash).finish();
  return concat(utf8.encode("koppi/v1/history"), await sha256(inner));
}

export function secretPlaintext(epoch, secret) {
  return new Encoder("koppi/v1/epoch-secret").u64(epoch).bytes(secret).finish();
}

export async function sealSecret(recipientPublic, info, epoch, secret, options = {}) {
  return hpkeSeal(recipientPublic, info, secretPlaintext(epoch, secret), options);
}

/** Open a wrap; the wrapped epoch number must be the one expected (no cross-epoch reuse). */
export async function openSecret(kemKey, info, sealed, epoch) {
  const dec = new Decoder(await hpkeOpen(kemKey, info, sealed), "koppi/v1/epoch-secret");
  const wrapped = dec.u64();
  const secret = dec.bytes({ length: 32 });
  dec.finish();
  if (wrapped !== BigInt(epoch)) {
    throw new RemoteProtocolError("wrap for another epoch", "koppi.wrong_epoch");
  }
  return secret;
}

const ZERO_NONCE = new Uint8Array(12);

export async function sealThreadInfo(metadataKey, coreHash, info) {
  return aeadSeal(metadataKey, ZERO_NONCE, info, coreHash);
}

export async function openThreadInfo(metadataKey, coreHash, ct) {
  return aeadOpen(metadataKey, ZERO_NONCE, ct, coreHash);
}
