// The thread state a device drives (docs/protocol.md §5, §7), mirroring crypto/group.py:
// `Chain` holds the public rules every verifier applies; `ThreadState` adds this device's
// secrets (unwrap, tag check, history, messages). State changes only after every check passed.

import { compareBytes, equalBytes, hex } from "./encoding.js";
import { AuthFailed, LocalProtocolError } from "./errors.js";
import { ADD, CAUSE_REASON, CommitError, REMOVE, UPDATE, decodeCommit, signedMessage } from "./commit.js";
import { covers, includes } from "./consent.js";
import { validAt } from "./identity.js";
import { ReplayGuard, open as openMessage, parse } from "./message.js";
import { constantTimeEqual, ed25519Verify } from "./primitives.js";
import { confirmationTag, deriveEpochKeys, historyInfo, openSecret, openThreadInfo, wrapInfo } from "./schedule.js";

export class GroupError extends CommitError {}
const fail = (message, code) => new GroupError(message, code);

export class Chain {
  constructor(genesis) {
    this.genesis = genesis;
    this.records = [];
    this.holdsBy = new Map();
  }
  get headHash() {
    return this.records.length ? this.records[this.records.length - 1].commit.hash : this.genesis.hash;
  }
  get current() {
    return this.records.length ? this.records[this.records.length - 1] : null;
  }
  holds(deviceId) {
    return this.holdsBy.get(hex(deviceId)) ?? new Set();
  }
  historyFor(device, committer, newEpoch) {
    if (this.genesis.historyPolicy !== "by-consent") return new Set();
    let cut = newEpoch;
    for (const rec of this.records) {
      const roster = rec.number ? this.records[rec.number - 1].roster : new Map();
      for (const c of rec.commit.core.changes) {
        const entry = roster.get(hex(c.deviceId));
        if (c.kind === REMOVE && c.reason === CAUSE_REASON && entry && equalBytes(entry.userId, device.userId)) {
          cut = Math.min(cut, rec.number);
        }
      }
    }
    const have = this.holds(device.deviceId);
    const out = new Set();
    for (const e of this.holds(committer)) {
      if (e < cut && !have.has(e) && this.records[e].commit.core.coverage.has(hex(device.orgId))) out.add(e);
    }
    return out;
  }

  async check(commit, trust, { live, now }) {
    const core = commit.core;
    if (!equalBytes(core.threadId, this.genesis.threadId)) throw fail("commit of another thread", "koppi.wrong_thread");
    const expected = this.records.length;
    if (core.epoch < expected) {
      if (equalBytes(commit.hash, this.records[core.epoch].commit.hash)) {
        throw fail("commit already applied", "koppi.duplicate_commit");
      }
      throw fail("a second commit for an applied epoch", "koppi.fork");
    }
    if (core.epoch > expected) throw fail("commit skips an epoch", "koppi.epoch_gap");
    if (!equalBytes(core.prevCommitHash, this.headHash)) {
      throw fail("commit does not follow the thread head", "koppi.bad_prev_hash");
    }
    const prev = this.current;
    const prevRoster = prev ? prev.roster : new Map();
    const newRoster = new Map(core.roster.map((e) => [hex(e.deviceId), e]));
    const changes = new Map(core.changes.map((c) => [hex(c.deviceId), c]));
    const committerId = hex(core.committer);
    if (core.epoch === 0) {
      if (!equalBytes(core.committer, this.genesis.creator)) {
        throw fail("only the creator opens a thread", "koppi.unauthorized_committer");
      }
      const own = changes.get(committerId);
      if (!own || own.kind !== ADD || own.reason !== "create") throw fail("the creator adds itself", "koppi.roster_mismatch");
    } else {
      if (!prevRoster.has(committerId)) throw fail("committer not in the previous roster", "koppi.unauthorized_committer");
      if (changes.has(committerId)) throw fail("committer changes itself", "koppi.committer_removed");
    }
    if (!newRoster.has(committerId)) throw fail("committer removed by its own commit", "koppi.committer_removed");
    const committer = trust.device(core.committer, newRoster.get(committerId).certHash);
    if (!committer) throw fail("committer unknown", "koppi.unknown_device");
    await ed25519Verify(committer.signingPublic, await signedMessage(commit), commit.signature);

    for (const [id, c] of changes) {
      const was = prevRoster.has(id);
      const nowIn = newRoster.has(id);
      const ok = (c.kind === ADD && !was && nowIn) || (c.kind === REMOVE && was && !nowIn) ||
        (c.kind === UPDATE && was && nowIn && !equalBytes(prevRoster.get(id).certHash, newRoster.get(id).certHash));
      if (!ok) throw fail("a change does not match the roster", "koppi.roster_mismatch");
    }
    for (const [id, entry] of newRoster) {
      if (changes.has(id)) continue;
      const old = prevRoster.get(id);
      if (!old || !equalBytes(old.userId, entry.userId) || !equalBytes(old.orgId, entry.orgId) ||
          !equalBytes(old.certHash, entry.certHash)) {
        throw fail("roster changed without a change entry", "koppi.roster_mismatch");
      }
    }
    for (const id of prevRoster.keys()) {
      if (!newRoster.has(id) && !changes.has(id)) throw fail("device dropped without a change entry", "koppi.roster_mismatch");
    }

    if (prev && core.treeSize < prev.commit.core.treeSize) {
      throw fail("commit echoes an older tree head than its parent", "koppi.tree_head_rollback");
    }
    if (core.treeSize > trust.treeSize()) throw fail("commit echoes a tree head newer than ours", "koppi.tree_head_ahead");

    const cover = trust.consent(core.evidence);
    if (!cover) throw fail("evidence consent unknown", "koppi.unknown_consent");
    if (!equalBytes(cover.clientRef, this.genesis.clientRef) || cover.purpose !== this.genesis.purpose) {
      throw fail("consent of another client or purpose", "koppi.consent_mismatch");
    }
    if (live && !cover.active) throw fail("evidence consent not active", "koppi.consent_inactive");
    if (prev) {
      const before = trust.consent(prev.commit.core.evidence);
      if (before && equalBytes(before.consentId, cover.consentId) && cover.version < before.version) {
        throw fail("older consent version than the parent's", "koppi.consent_rollback");
      }
    }
    const sameSet = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));
    if (!sameSet(core.coverage, cover.organisations) || !sameSet(core.mayStore, cover.mayStore)) {
      throw fail("coverage differs from the evidence consent", "koppi.coverage_mismatch");
    }

    const devices = new Map();
    for (const [id, entry] of newRoster) {
      const device = trust.device(entry.deviceId, entry.certHash);
      if (!device) throw fail("roster names an unverified certificate", "koppi.unknown_device");
      if (!equalBytes(device.userId, entry.userId) || !equalBytes(device.orgId, entry.orgId) ||
          !equalBytes(device.certHash, entry.certHash)) {
        throw fail("roster entry differs from the certificate", "koppi.roster_mismatch");
      }
      if (!validAt(device, core.treeSize) || (live && now !== null && now !== undefined &&
          device.notAfter !== null && now >= device.notAfter)) {
        throw fail("roster keeps a revoked or expired device", "koppi.removal_due");
      }
      if (!(live ? covers(cover, device) : includes(cover, device))) {
        throw fail("roster device not covered by the consent", "koppi.not_covered");
      }
      devices.set(id, device);
    }
    for (const [id, c] of changes) {
      if (c.kind === REMOVE && c.reason === "device-revoked") {
        const gone = trust.device(c.deviceId);
        if (!gone || gone.revokedAtIndex !== c.revocationIndex) {
          throw fail("removal cites a revocation that is not logged", "koppi.bad_change");
        }
      }
    }

    const wrapIds = commit.wraps.map((w) => hex(w.deviceId));
    const rosterIds = [...newRoster.keys()].sort();
    if (wrapIds.join() !== rosterIds.join() ||
        commit.wraps.some((w) => !equalBytes(w.kpHash, newRoster.get(hex(w.deviceId)).kpHash))) {
      throw fail("wraps do not match the roster", "koppi.wrap_mismatch");
    }

    const expectedGrants = new Set();
    for (const [id, c] of changes) {
      if (c.kind !== ADD) continue;
      for (const e of this.historyFor(devices.get(id), core.committer, core.epoch)) expectedGrants.add(`${id}/${e}`);
    }
    const grants = new Set(core.history.map((g) => `${hex(g.deviceId)}/${g.epoch}`));
    if ([...grants].some((g) => !expectedGrants.has(g))) {
      throw fail("history grant outside the consent's coverage", "koppi.history_outside_coverage");
    }
    if ([...expectedGrants].some((g) => !grants.has(g))) throw fail("history grant missing", "koppi.history_incomplete");
    const hw = commit.historyWraps.map((w) => `${hex(w.deviceId)}/${w.epoch}`);
    if (hw.length !== grants.size || hw.some((g) => !grants.has(g))) {
      throw fail("history wraps do not match the grants", "koppi.wrap_mismatch");
    }
  }

  append(commit, seq) {
    if (this.records.length && seq <= this.records[this.records.length - 1].seq) {
      throw fail("commit sequenced before its parent", "koppi.bad_sequence");
    }
    const rec = {
      commit, seq, number: commit.core.epoch, epochId: commit.epochId,
      roster: new Map(commit.core.roster.map((e) => [hex(e.deviceId), e])),
    };
    this.records.push(rec);
    const hold = (id, e) => {
      if (!this.holdsBy.has(id)) this.holdsBy.set(id, new Set());
      this.holdsBy.get(id).add(e);
    };
    for (const e of commit.core.roster) hold(hex(e.deviceId), rec.number);
    for (const g of commit.core.history) hold(hex(g.deviceId), g.epoch);
    return rec;
  }
}

/** This device's private keys: { deviceId, signing: SigningKey, certKem: KemKey,
 * packageKeys: Map(hex kp_hash -> KemKey) }. */
export class ThreadState {
  constructor(genesis, me) {
    this.chain = new Chain(genesis);
    this.me = me;
    this.secrets = new Map();
    this.epochs = new Map();
    this.threadInfo = new Uint8Array(0);
    this.removed = false;
    this.replay = new ReplayGuard();
  }
  get threadId() {
    return this.chain.genesis.threadId;
  }
  get epoch() {
    const cur = this.chain.current;
    return cur ? cur.number : null;
  }
  privateKey(kpHash) {
    const key = kpHash.length === 0 ? this.me.certKem : this.me.packageKeys.get(hex(kpHash));
    if (!key) throw new LocalProtocolError("no private key for this key package", "koppi.missing_private_key");
    return key;
  }

  /** Apply the commit the server sequenced at `seq`. */
  async apply(data, seq, trust, { live = true, now = null } = {}) {
    const commit = await decodeCommit(data);
    await this.chain.check(commit, trust, { live, now });
    const core = commit.core;
    const prev = this.chain.current;
    const prevRoster = prev ? prev.roster : new Map();
    const me = hex(this.me.deviceId);
    const entry = core.roster.find((e) => hex(e.deviceId) === me);
    let secret = null;
    let info = this.threadInfo;
    const history = new Map();
    if (entry) {
      const wrap = commit.wraps.find((w) => hex(w.deviceId) === me);
      const key = this.privateKey(entry.kpHash);
      secret = await openSecret(key, await wrapInfo(this.threadId, core.epoch, core.hash, this.me.deviceId, entry.kpHash),
        wrap.sealed, core.epoch);
      const keys = await deriveEpochKeys(secret, core.hash, this.threadId, core.epoch);
      if (!constantTimeEqual(await confirmationTag(keys.confirm, core.hash), commit.confirmationTag)) throw new AuthFailed();
      info = await openThreadInfo(keys.metadata, core.hash, commit.threadInfoCt);
      for (const hw of commit.historyWraps) {
        if (hex(hw.deviceId) !== me) continue;
        const old = this.chain.records[hw.epoch];
        const oldSecret = await openSecret(key, await historyInfo(this.threadId, hw.epoch, old.commit.hash,
          this.me.deviceId, entry.kpHash, core.hash), hw.sealed, hw.epoch);
        const oldKeys = await deriveEpochKeys(oldSecret, old.commit.core.hash, this.threadId, hw.epoch);
        if (!constantTimeEqual(await confirmationTag(oldKeys.confirm, old.commit.core.hash), old.commit.confirmationTag)) {
          throw new AuthFailed();
        }
        history.set(hw.epoch, oldSecret);
      }
    }
    const rec = this.chain.append(commit, seq);
    if (secret) await this.remember(rec, secret, trust);
    for (const [n, s] of history) await this.remember(this.chain.records[n], s, trust);
    const removedMe = prevRoster.has(me) && !entry;
    if (removedMe) this.removed = true;
    this.threadInfo = info;
    this.replay.forgetBefore(this.threadId, core.epoch - 1);
    return { epoch: core.epoch, epochId: rec.epochId, removedMe, history: [...history.keys()].sort((a, b) => a - b) };
  }

  async remember(rec, secret, trust) {
    const core = rec.commit.core;
    const roster = new Map();
    for (const [id, e] of rec.roster) {
      const device = trust.device(e.deviceId, e.certHash);
      if (device) roster.set(id, device);
    }
    this.secrets.set(rec.number, secret);
    this.epochs.set(rec.number, {
      threadId: this.threadId, number: rec.number, epochId: rec.epochId, coreHash: core.hash,
      keys: await deriveEpochKeys(secret, core.hash, this.threadId, rec.number), roster,
      coverage: core.coverage, mayStore: core.mayStore, treeSize: core.treeSize,
    });
  }

  get readableEpochs() {
    return [...this.epochs.keys()].sort((a, b) => a - b);
  }

  /** Open a message delivered at `seq`: its epoch known, its epoch_id matching, in its window. */
  async decrypt(data, seq) {
    const parsed = parse(data);
    const h = parsed.headerFields;
    if (!equalBytes(h.threadId, this.threadId)) throw fail("message of another thread", "koppi.wrong_thread");
    if (h.epoch >= this.chain.records.length) throw fail("message of an unknown epoch", "koppi.unknown_epoch");
    const rec = this.chain.records[h.epoch];
    if (!constantTimeEqual(h.epochId, rec.epochId)) throw fail("epoch_id differs from the applied commit", "koppi.fork");
    const next = this.chain.records[h.epoch + 1];
    if (seq <= rec.seq || (next && seq >= next.seq)) throw fail("message sequenced outside its epoch", "koppi.stale_epoch");
    const epoch = this.epochs.get(h.epoch);
    if (!epoch) throw fail("this device holds no secret for that epoch", "koppi.epoch_unreadable");
    const opened = await openMessage(epoch, parsed);
    this.replay.check(opened);
    return opened;
  }
}

export { compareBytes };
