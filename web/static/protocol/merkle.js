// RFC 9162 §2.1 Merkle hashing and proof verification (docs/protocol.md §4), mirroring
// crypto/merkle.py: a client never holds the tree, only heads and proofs.

import { concat, sha256 } from "./encoding.js";
import { RemoteProtocolError } from "./errors.js";
import { constantTimeEqual } from "./primitives.js";

export const BAD_INCLUSION = "koppi.bad_inclusion_proof";
export const BAD_CONSISTENCY = "koppi.bad_consistency_proof";

export class MerkleError extends RemoteProtocolError {}

export const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
export const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
export const emptyRoot = () => sha256(new Uint8Array(0));

/** MTH of a list of entries (for vectors; a log server keeps an incremental tree instead). */
export async function root(entries) {
  if (entries.length === 0) return emptyRoot();
  if (entries.length === 1) return leafHash(entries[0]);
  let k = 1;
  while (k * 2 < entries.length) k *= 2;
  return nodeHash(await root(entries.slice(0, k)), await root(entries.slice(k)));
}

const wellFormed = (hashes) => hashes.every((h) => h instanceof Uint8Array && h.length === 32);

/** RFC 9162 §2.1.3.2 for leaf hash `h`: verify against `rootHash` (numbers are safe integers). */
export async function verifyInclusionHash(h, index, size, proof, rootHash) {
  const fail = () => new MerkleError("inclusion proof does not verify", BAD_INCLUSION);
  if (!wellFormed([h, ...proof]) || index < 0 || index >= size) throw fail();
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = h;
  for (const p of proof) {
    if (sn === 0n) throw fail();
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while (!((fn & 1n) === 1n || fn === 0n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !wellFormed([rootHash]) || !constantTimeEqual(r, rootHash)) throw fail();
}

export async function verifyInclusion(entry, index, size, proof, rootHash) {
  return verifyInclusionHash(await leafHash(entry), index, size, proof, rootHash);
}

/** RFC 9162 §2.1.4.2; equal sizes need equal roots and size 0 the empty root (empty proofs). */
export async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  const fail = () => new MerkleError("consistency proof does not verify", BAD_CONSISTENCY);
  if (!wellFormed([oldRoot, newRoot, ...proof]) || !(oldSize >= 0 && oldSize <= newSize)) throw fail();
  if (oldSize === 0) {
    if (proof.length || !constantTimeEqual(oldRoot, await emptyRoot())) throw fail();
    return;
  }
  if (oldSize === newSize) {
    if (proof.length || !constantTimeEqual(oldRoot, newRoot)) throw fail();
    return;
  }
  if (!proof.length) throw fail();
  const path = [...proof];
  if ((oldSize & (oldSize - 1)) === 0) path.unshift(oldRoot);
  let fn = BigInt(oldSize - 1);
  let sn = BigInt(newSize - 1);
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw fail();
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while (!((fn & 1n) === 1n || fn === 0n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (!(constantTimeEqual(fr, oldRoot) && constantTimeEqual(sr, newRoot) && sn === 0n)) throw fail();
}
