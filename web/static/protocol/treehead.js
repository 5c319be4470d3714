// Signed and cosigned tree heads and a client's view of the log (docs/protocol.md §4),
// mirroring crypto/treehead.py. The clock is injected: { nowMs() }.

import { Decoder, Encoder, hex, sha256 } from "./encoding.js";
import { AuthFailed, LocalProtocolError, RemoteProtocolError } from "./errors.js";
import { verifyConsistency, verifyInclusion } from "./merkle.js";
import { checkEd25519Public, ed25519Verify } from "./primitives.js";

export const MAX_HEAD_AGE_MS = 15 * 60 * 1000;
export const STALE = "koppi.stale_tree_head";
export const ROLLBACK = "koppi.tree_head_rollback";
export const QUORUM = "koppi.cosignature_quorum";
export const UNKNOWN_LOG = "koppi.unknown_log";

export class TreeHeadError extends RemoteProtocolError {}

export const keyId = (publicKey) => sha256(publicKey);

export class TreeHead {
  constructor(size, root, timestampMs, logId) {
    Object.assign(this, { size, root, timestampMs, logId });
  }
  encode() {
    return new Encoder("koppi/v1/tree-head").bytes(this.logId).u64(this.size).bytes(this.root)
      .u64(this.timestampMs).finish();
  }
  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/tree-head");
    const logId = dec.bytes({ length: 32 });
    const size = dec.u64n();
    const root = dec.bytes({ length: 32 });
    const ts = dec.u64n();
    dec.finish();
    return new TreeHead(size, root, ts, logId);
  }
  hash() {
    return sha256(this.encode());
  }
}

export function cosignMessage(headHash, witnessId, timestampMs) {
  return new Encoder("koppi/v1/cosign").bytes(headHash).bytes(witnessId).u64(timestampMs).finish();
}

export class CosignedTreeHead {
  constructor(head, signature, cosignatures) {
    Object.assign(this, { head, signature, cosignatures });
  }
  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/cosigned-tree-head");
    const head = TreeHead.decode(dec.bytes({ maxLen: 256 }));
    const signature = dec.bytes({ length: 64 });
    const cosignatures = dec.list({ maxItems: 64, itemMaxLen: 256 }).map((raw) => {
      const c = new Decoder(raw, "koppi/v1/cosignature");
      const cos = { witnessId: c.bytes({ length: 32 }), timestampMs: c.u64n(), signature: c.bytes({ length: 64 }) };
      c.finish();
      return cos;
    });
    dec.finish();
    return new CosignedTreeHead(head, signature, cosignatures);
  }
}

/** What a client trusts: the log key, the witnesses and the quorum k. */
export class LogConfig {
  static async create(logPublicKey, witnessKeys, quorum, maxHeadAgeMs = MAX_HEAD_AGE_MS) {
    const c = new LogConfig();
    c.logPublicKey = checkEd25519Public(logPublicKey);
    c.logId = await keyId(logPublicKey);
    c.witnesses = new Map();
    for (const k of witnessKeys) c.witnesses.set(hex(await keyId(checkEd25519Public(k))), k);
    if (!(quorum >= 1 && quorum <= c.witnesses.size)) {
      throw new LocalProtocolError("quorum must be between 1 and the number of witnesses");
    }
    c.quorum = quorum;
    c.maxHeadAgeMs = maxHeadAgeMs;
    return c;
  }

  /** A log without witnesses (quorum 0): heads are trusted through the log signature alone,
   * as a Python client pinned without witnesses (client/keystore.py `Pins.log_view`). */
  static async unwitnessed(logPublicKey, maxHeadAgeMs = MAX_HEAD_AGE_MS) {
    const c = new LogConfig();
    c.logPublicKey = checkEd25519Public(logPublicKey);
    c.logId = await keyId(logPublicKey);
    c.witnesses = new Map();
    c.quorum = 0;
    c.maxHeadAgeMs = maxHeadAgeMs;
    return c;
  }

  /** Log signature and quorum; cosignatures by unknown witnesses or bad ones do not count. */
  async verify(cth) {
    if (hex(cth.head.logId) !== hex(this.logId)) throw new TreeHeadError("tree head of another log", UNKNOWN_LOG);
    await ed25519Verify(this.logPublicKey, cth.head.encode(), cth.signature);
    const headHash = await cth.head.hash();
    const valid = new Set();
    for (const c of cth.cosignatures) {
      const id = hex(c.witnessId);
      const pub = this.witnesses.get(id);
      if (!pub || valid.has(id)) continue;
      try {
        await ed25519Verify(pub, cosignMessage(headHash, c.witnessId, c.timestampMs), c.signature);
        valid.add(id);
      } catch (e) {
        if (!(e instanceof AuthFailed)) throw e;
      }
    }
    if (valid.size < this.quorum) {
      throw new TreeHeadError(`tree head has ${valid.size} valid cosignatures, ${this.quorum} needed`, QUORUM);
    }
  }
}

/** A client's state of the log: the newest verified cosigned head and the rules to move it. */
export class LogView {
  constructor(config, clock) {
    this.config = config;
    this.clock = clock;
    this.current = null;
  }
  static async withCurrent(config, clock, current) {
    const v = new LogView(config, clock);
    if (current) {
      await config.verify(current);
      v.current = current;
    }
    return v;
  }
  effectiveNowMs() {
    const now = this.clock.nowMs();
    return this.current ? Math.max(now, this.current.head.timestampMs) : now;
  }
  checkFresh(head) {
    if (head.timestampMs + this.config.maxHeadAgeMs < this.effectiveNowMs()) {
      throw new TreeHeadError("tree head older than MAX_HEAD_AGE", STALE);
    }
  }
  freshHead() {
    if (!this.current) throw new TreeHeadError("no verified tree head yet", STALE);
    this.checkFresh(this.current.head);
    return this.current;
  }
  async update(cth, consistencyProof) {
    await this.config.verify(cth);
    this.checkFresh(cth.head);
    const old = this.current;
    if (old) {
      if (cth.head.size < old.head.size || cth.head.timestampMs < old.head.timestampMs) {
        throw new TreeHeadError("tree head goes backwards", ROLLBACK);
      }
      await verifyConsistency(old.head.size, cth.head.size, old.head.root, cth.head.root, consistencyProof);
    }
    this.current = cth;
  }
  async verifyInclusion(entry, index, proof, { requireFresh = true } = {}) {
    const cth = requireFresh ? this.freshHead() : this.current;
    if (!cth) throw new TreeHeadError("no verified tree head yet", STALE);
    await verifyInclusion(entry, index, cth.head.size, proof, cth.head.root);
  }
}
