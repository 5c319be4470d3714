// Follow the server's transparency log into a TrustStore (docs/protocol.md §4.6, §3), the
// browser twin of client/trust.py `LogFollower`.
//
// A client that reads every entry needs no inclusion proof from the server: it recomputes the
// tree from the leaves it fetched and accepts the head only if the recomputed root is the head's
// root and the head verifies (log signature, quorum, freshness, consistency with the head
// before). Each entry is then offered to the TrustStore, which checks its signature chain; an
// entry that fails is not trusted and is kept in `refused` with its reason, so a page can say
// *why* it will not trust a device the server lists.

import { Decoder, Encoder, equalBytes, hex, sha256, unb64u } from "./encoding.js";
import { LocalProtocolError, RemoteProtocolError } from "./errors.js";
import { ConsentRecord } from "./consent.js";
import { validAt } from "./identity.js";
import { leafHash, nodeHash } from "./merkle.js";
import { CosignedTreeHead, ROLLBACK } from "./treehead.js";

export const PAGE = 1000;
const HASH_LEN = 32;

/** The entries served are not the tree the head signs (or not the ones served before). */
export class LogMismatch extends RemoteProtocolError {
  constructor(message, code = "koppi.bad_inclusion_proof") {
    super(message, code);
  }
}

/** The largest power of two strictly smaller than n (n >= 2). */
function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** An append-only Merkle tree with cached complete subtrees (crypto/merkle.py `MerkleTree`):
 * `levels[h][i]` is the hash of the perfect subtree over leaves [i * 2^h, (i + 1) * 2^h). */
export class MerkleTree {
  constructor(levels = [[]]) {
    this.levels = levels;
  }

  get size() {
    return this.levels[0].length;
  }

  clone() {
    return new MerkleTree(this.levels.map((level) => level.slice()));
  }

  async appendLeafHash(h) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) throw new LocalProtocolError("a leaf hash is 32 bytes");
    const index = this.size;
    this.levels[0].push(h);
    let level = 0;
    let i = index;
    // Each time a right child completes a pair, the parent subtree is complete too.
    while (i % 2 === 1) {
      const parent = await nodeHash(this.levels[level][i - 1], this.levels[level][i]);
      level += 1;
      if (this.levels.length === level) this.levels.push([]);
      this.levels[level].push(parent);
      i = Math.floor(i / 2);
    }
    return index;
  }

  sizeArg(size) {
    const n = size ?? this.size;
    if (!(Number.isSafeInteger(n) && n >= 0 && n <= this.size)) throw new LocalProtocolError("tree size out of range");
    return n;
  }

  /** MTH of the first `size` entries (default: all). */
  async root(size) {
    const n = this.sizeArg(size);
    return n === 0 ? sha256(new Uint8Array(0)) : this.mth(0, n);
  }

  /** RFC 9162 §2.1.3.1 PATH(index, D[0:size]). */
  async inclusionProof(index, size) {
    const n = this.sizeArg(size);
    if (!(Number.isSafeInteger(index) && index >= 0 && index < n)) throw new LocalProtocolError("leaf index out of range");
    const out = [];
    await this.path(index, 0, n, out);
    return out;
  }

  /** RFC 9162 §2.1.4.1 PROOF(oldSize, D[0:newSize]); empty when oldSize is 0 or equal. */
  async consistencyProof(oldSize, newSize) {
    const n = this.sizeArg(newSize);
    if (!(Number.isSafeInteger(oldSize) && oldSize >= 0 && oldSize <= n)) {
      throw new LocalProtocolError("consistency proof needs 0 <= old_size <= new_size");
    }
    if (oldSize === 0 || oldSize === n) return [];
    const out = [];
    await this.subproof(oldSize, 0, n, true, out);
    return out;
  }

  async mth(lo, n) {
    if ((n & (n - 1)) === 0 && lo % n === 0) return this.levels[Math.log2(n)][lo / n];
    const k = split(n);
    return nodeHash(await this.mth(lo, k), await this.mth(lo + k, n - k));
  }

  async path(m, lo, n, out) {
    if (n === 1) return;
    const k = split(n);
    if (m < k) {
      await this.path(m, lo, k, out);
      out.push(await this.mth(lo + k, n - k));
    } else {
      await this.path(m - k, lo + k, n - k, out);
      out.push(await this.mth(lo, k));
    }
  }

  async subproof(m, lo, n, complete, out) {
    if (m === n) {
      if (!complete) out.push(await this.mth(lo, n));
      return;
    }
    const k = split(n);
    if (m <= k) {
      await this.subproof(m, lo, k, complete, out);
      out.push(await this.mth(lo + k, n - k));
    } else {
      await this.subproof(m - k, lo + k, n - k, false, out);
      out.push(await this.mth(lo, k));
    }
  }
}

/** The web release's log entry for a served manifest (docs/protocol.md §4 "Web release"). */
async function webReleaseEntry(manifest) {
  const dec = new Decoder(manifest, "koppi/v1/web-manifest");
  const version = dec.text({ maxLen: 64 });
  for (const item of dec.list()) {
    const file = new Decoder(item, "koppi/v1/web-manifest-file");
    file.text({ maxLen: 512 });
    file.bytes({ length: 32 });
    file.finish();
  }
  dec.finish();
  return new Encoder("koppi/v1/log-web-release").text(version).bytes(await sha256(manifest)).finish();
}

/** What the log hashed for an entry of `kind` whose fetched data is `payload`: the entry itself,
 * or the hash-entry of a consent record or a web release manifest. */
export async function leafInput(kind, payload) {
  if (kind === "consent") return ConsentRecord.decode(payload).logEntry();
  if (kind === "web-release") return webReleaseEntry(payload);
  return payload;
}

/** Every entry in [start, end), PAGE at a time: [{index, kind, payload}]. */
export async function fetchEntries(get, start, end) {
  const out = [];
  for (let lo = start; lo < end; lo += PAGE) {
    const page = await get(`/api/log/entries?start=${lo}&end=${Math.min(lo + PAGE, end)}`);
    for (const e of page.entries) out.push({ index: e.index, kind: e.kind, payload: unb64u(e.data) });
  }
  return out;
}

/** One client's replay of the log. `follow(get)` moves to the server's newest head; `get(path)`
 * returns the JSON the server answers (or throws its error). */
export class LogFollower {
  constructor(trust) {
    this.trust = trust;
    this.refused = new Map(); // log index -> { index, kind, code, message }
    this.tree = new MerkleTree();
  }

  get size() {
    return this.tree.size;
  }

  /** Fetch the newest head this client can accept (one with as many cosignatures as its
   * quorum) and every entry since the last one; returns the new entries. */
  async follow(get) {
    const quorum = this.trust.log.config.quorum;
    const body = await get(quorum ? `/api/log/head?cosigned=${quorum}` : "/api/log/head");
    const cth = CosignedTreeHead.decode(unb64u(body.head));
    const entries = await fetchEntries(get, this.size, cth.head.size);
    await this.advance(cth, entries);
    return entries;
  }

  /** Take `entries` (the leaves from the current size up to the head's) and the head. */
  async advance(cth, entries) {
    const old = this.size;
    if (cth.head.size < old) throw new LogMismatch("the log shrank", ROLLBACK);
    if (entries.length !== cth.head.size - old || entries.some((e, i) => e.index !== old + i)) {
      throw new LogMismatch("the server did not serve the entries the head covers");
    }
    const tree = this.tree.clone();
    for (const e of entries) await tree.appendLeafHash(await leafHash(await leafInput(e.kind, e.payload)));
    if (!equalBytes(await tree.root(), cth.head.root)) {
      throw new LogMismatch("the head's root is not the tree of the entries served");
    }
    const proof = this.trust.log.current !== null ? await tree.consistencyProof(old) : [];
    await this.trust.log.update(cth, proof); // signature, quorum, freshness, consistency
    this.tree = tree;
    for (const e of entries) {
      try {
        await this.accept(e, await tree.inclusionProof(e.index));
      } catch (err) {
        if (typeof err?.code !== "string") throw err;
        this.refused.set(e.index, { index: e.index, kind: e.kind, code: err.code, message: err.message });
      }
    }
  }

  async accept(e, proof) {
    if (["org", "device", "revocation", "link", "consent"].includes(e.kind)) {
      await this.trust.add(e.kind, e.payload, e.index, proof);
    }
  }
}

const uuidText = (b) => {
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

/**
 * Check the devices the server lists for a thread (GET /api/threads/{id}/devices) against what
 * the log proves: client/trust.py `resolve_members`, rule for rule. Returns
 * `{ members: [{device}], refused: Map(hex id -> reason), needsApproval: Map(hex id -> {reason,
 * kind: "device" | "organisation", device})}`. `roster`: hex device ids of the current epoch;
 * `approved`: hex ids a person approved; `approvedOrgs`: hex organisation ids a member approved.
 */
export function resolveMembers(listed, follower, { roster = [], approved = [], approvedOrgs = [], atIndex = null } = {}) {
  const trust = follower.trust;
  const index = atIndex ?? follower.size;
  const inRoster = new Set(roster);
  const byPerson = new Set(approved);
  const orgsApproved = new Set(approvedOrgs);
  const inThread = [...inRoster].map((id) => trust.devices.get(id)).filter(Boolean);
  const rosterUsers = new Set(inThread.map((d) => hex(d.userId)));
  const rosterOrgs = new Set(inThread.map((d) => hex(d.orgId)));
  const members = [];
  const refused = new Map();
  const needsApproval = new Map();
  for (const item of listed) {
    const deviceId = unb64u(item.device_id);
    const id = hex(deviceId);
    const device = trust.device(deviceId);
    const certIndex = item.cert_log_index;
    if (!device) {
      const why = Number.isInteger(certIndex) ? follower.refused.get(certIndex) : null;
      refused.set(id, why ? `its certificate at log index ${certIndex} was refused: ${why.code} (${why.message})`
        : "koppi.unknown_device: no verified certificate for it in the log");
    } else if (certIndex !== device.certLogIndex) {
      refused.set(id, `koppi.unknown_device: the server names log index ${certIndex}, the log certifies it at ${device.certLogIndex}`);
    } else if (item.user !== uuidText(device.userId) || item.org !== uuidText(device.orgId)) {
      refused.set(id, "koppi.roster_mismatch: another user or organisation in the log");
    } else if (!validAt(device, index)) {
      refused.set(id, `koppi.device_revoked: revoked at index ${device.revokedAtIndex}`);
    } else if (device.notAfter !== null && trust.now() >= device.notAfter) {
      refused.set(id, "koppi.removal_due: its certificate has expired");
    } else if (!inRoster.has(id) && rosterUsers.has(hex(device.userId)) && !byPerson.has(id) &&
        !(trust.links.get(id) && inRoster.has(hex(trust.links.get(id).existingDeviceId)))) {
      needsApproval.set(id, { kind: "device", device, reason: "a new device of a member, linked from none of " +
        "their devices in this thread: compare its fingerprint with its owner before approving it" });
    } else if (inThread.length && !inRoster.has(id) && !rosterOrgs.has(hex(device.orgId)) &&
        !orgsApproved.has(hex(device.orgId))) {
      needsApproval.set(id, { kind: "organisation", device, reason: "an organisation new to this thread: a " +
        "member approves adding it (the client's consent covering it is not enough on its own)" });
    } else {
      members.push({ device });
    }
  }
  return { members, refused, needsApproval };
}
