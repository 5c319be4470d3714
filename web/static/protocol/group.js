// The thread state a device drives (docs/protocol.md §5, §7), mirroring crypto/group.py:
// `Chain` holds the public rules every verifier applies; `ThreadState` adds this device's
// secrets (unwrap, tag check, history, messages). State changes only after every check passed.

import { Encoder, compareBytes, equalBytes, hex, sha256 } from "./encoding.js";
import { AuthFailed, LocalProtocolError } from "./errors.js";
import { ADD, CAUSE_REASON, CommitError, REMOVE, UPDATE, buildCommit, decodeCommit, signedMessage } from "./commit.js";
import { covers, includes } from "./consent.js";
import { decodeKeyPackage, validAt } from "./identity.js";
import { ReplayGuard, StorageLabel, open as openMessage, parse, seal as sealMessage } from "./message.js";
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
  historyFor(device, committer, newEpoch, fullHistory = new Set()) {
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
      const org = hex(device.orgId);
      if (e < cut && !have.has(e) && (fullHistory.has(org) || this.records[e].commit.core.coverage.has(org))) {
        out.add(e);
      }
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
      for (const e of this.historyFor(devices.get(id), core.committer, core.epoch, cover.fullHistory)) {
        expectedGrants.add(`${id}/${e}`);
      }
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
    const own = this.pending && equalBytes(this.pending.commitHash, commit.hash);
    if (entry) {
      const key = own || this.restored?.has(core.epoch) ? null : this.privateKey(entry.kpHash);
      const wrap = commit.wraps.find((w) => hex(w.deviceId) === me);
      secret = own ? this.pending.secret : this.restored?.get(core.epoch) ?? await openSecret(key,
        await wrapInfo(this.threadId, core.epoch, core.hash, this.me.deviceId, entry.kpHash), wrap.sealed, core.epoch);
      const keys = await deriveEpochKeys(secret, core.hash, this.threadId, core.epoch);
      if (!constantTimeEqual(await confirmationTag(keys.confirm, core.hash), commit.confirmationTag)) throw new AuthFailed();
      info = await openThreadInfo(keys.metadata, core.hash, commit.threadInfoCt);
      for (const hw of commit.historyWraps) {
        if (hex(hw.deviceId) !== me) continue;
        const old = this.chain.records[hw.epoch];
        const oldSecret = this.restored?.get(hw.epoch) ?? await openSecret(key ?? this.privateKey(entry.kpHash), await historyInfo(this.threadId, hw.epoch, old.commit.hash,
          this.me.deviceId, entry.kpHash, core.hash), hw.sealed, hw.epoch);
        const oldKeys = await deriveEpochKeys(oldSecret, old.commit.core.hash, this.threadId, hw.epoch);
        if (!constantTimeEqual(await confirmationTag(oldKeys.confirm, old.commit.core.hash), old.commit.confirmationTag)) {
          throw new AuthFailed();
        }
        history.set(hw.epoch, oldSecret);
      }
    }
    const rec = this.chain.append(commit, seq);
    if (this.pending && (own || this.pending.epoch === core.epoch)) this.pending = null;
    if (secret) {
      await this.remember(rec, secret, trust);
      this.counter = 0;
    }
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

// --- making commits and sending (what a member's device does) ------------------------------


/** Verify a key package for `device` at `now` (seconds): signature, certificate, lifetime. */
export async function verifyKeyPackage(data, device, now) {
  const kp = decodeKeyPackage(data);
  if (!equalBytes(kp.deviceId, device.deviceId) || !equalBytes(kp.certHash, device.certHash)) {
    throw new GroupError("key package of another device or certificate", "koppi.key_package_mismatch");
  }
  await ed25519Verify(device.signingPublic, new Encoder("koppi/v1/key-package-sig").bytes(kp.core).finish(), kp.signature);
  if (kp.notAfter - kp.notBefore > 7 * 24 * 3600 || !(kp.notBefore <= now && now < kp.notAfter)) {
    throw new GroupError("key package outside its lifetime", "koppi.key_package_expired");
  }
  kp.kpHash = await sha256(data);
  return kp;
}

Object.assign(ThreadState.prototype, {
  /** Build, self-check and remember a commit for the next epoch; returns its bytes. */
  async propose(trust, { add = [], remove = {}, evidence = null, threadInfo = null, now, addReason = "invited" }) {
    if (this.removed) throw new LocalProtocolError("this device was removed from the thread");
    this.packages ??= new Map();
    const cur = this.chain.current;
    const epoch = cur ? cur.number + 1 : 0;
    if (cur && !this.epochs.has(cur.number)) throw new LocalProtocolError("cannot commit without the current epoch's secret");
    const ev = evidence ?? (cur ? cur.commit.core.evidence : new Uint8Array(0));
    const cover = trust.consent(ev);
    if (!cover) throw new LocalProtocolError("evidence consent unknown to this client");
    const members = new Map();
    const changes = [];
    if (cur) {
      for (const [id, entry] of cur.roster) {
        if (id in remove) continue;
        const mine = id === hex(this.me.deviceId);
        const device = trust.device(entry.deviceId, mine ? entry.certHash : null);
        if (!device) throw new LocalProtocolError("a kept roster device is unknown to this client");
        if (!equalBytes(device.certHash, entry.certHash)) {
          changes.push({ deviceId: entry.deviceId, kind: UPDATE, reason: "cert-renewed" });
        }
        members.set(id, device);
      }
    }
    for (const [id, reason] of Object.entries(remove)) {
      const gone = cur.roster.get(id);
      const device = trust.device(gone.deviceId);
      const index = device && reason === "device-revoked" ? device.revokedAtIndex : 0;
      changes.push({ deviceId: gone.deviceId, kind: REMOVE, reason, revocationIndex: index ?? 0 });
    }
    for (const m of add) {
      const id = hex(m.device.deviceId);
      if (members.has(id)) throw new LocalProtocolError("device already in the roster");
      members.set(id, m.device);
      if (m.keyPackage) this.packages.set(id, await verifyKeyPackage(m.keyPackage, m.device, now));
      const reason = id === hex(this.me.deviceId) ? "create" : addReason;
      changes.push({ deviceId: m.device.deviceId, kind: ADD, reason, evidence: ev });
    }
    const roster = [];
    for (const [id, device] of members) {
      const kp = this.packages.get(id);
      const usable = kp && equalBytes(kp.certHash, device.certHash) && kp.notBefore <= now && now < kp.notAfter;
      roster.push({ deviceId: device.deviceId, userId: device.userId, orgId: device.orgId,
        certHash: device.certHash, kpHash: usable ? kp.kpHash : new Uint8Array(0) });
    }
    roster.sort((a, b) => compareBytes(a.deviceId, b.deviceId));
    const history = [];
    for (const c of changes) {
      if (c.kind !== ADD) continue;
      for (const e of this.chain.historyFor(members.get(hex(c.deviceId)), this.me.deviceId, epoch, cover.fullHistory)) {
        history.push({ deviceId: c.deviceId, epoch: e });
      }
    }
    const core = {
      threadId: this.threadId, epoch, prevCommitHash: this.chain.headHash, roster, changes,
      coverage: cover.organisations, mayStore: cover.mayStore, evidence: ev, committer: this.me.deviceId,
      treeSize: trust.treeSize(), treeHeadHash: await trust.treeHeadHash(), createdAt: now, history,
    };
    const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const recipients = new Map();
    for (const e of roster) {
      const id = hex(e.deviceId);
      recipients.set(id, e.kpHash.length ? this.packages.get(id).kemPublic : members.get(id).kemPublic);
    }
    const oldEpochs = new Map();
    for (const g of history) {
      oldEpochs.set(g.epoch, { commitHash: this.chain.records[g.epoch].commit.hash, secret: this.secrets.get(g.epoch) });
    }
    const data = await buildCommit(core, secret, {
      recipients, oldEpochs, threadInfo: threadInfo ?? this.threadInfo, signing: this.me.signing,
    });
    // Never send a commit the rules refuse: the same check every member will run.
    const decoded = await decodeCommit(data);
    await this.chain.check(decoded, trust, { live: true, now });
    this.pending = { epoch, commitHash: decoded.hash, secret };
    return data;
  },

  /** Roster devices that must go before anyone sends (revoked, expired, uncovered). */
  dueRemovals(trust, now) {
    const cur = this.chain.current;
    if (!cur) return [];
    const size = trust.treeSize();
    const evidence = trust.consent(cur.commit.core.evidence);
    const cover = evidence ? trust.latestConsent(evidence.consentId) : null;
    const due = [];
    for (const [id, entry] of cur.roster) {
      const device = trust.device(entry.deviceId);
      if (!device || !validAt(device, size) || (device.notAfter !== null && now >= device.notAfter) ||
          !cover || !covers(cover, device)) {
        due.push(id);
      }
    }
    return due;
  },

  /** Seal a message on the current epoch after the cut-off check. The counter advances first:
   * persist the state (keystore.js) before the message leaves. */
  async encrypt(body, { label, trust, now, nowMs, contentType = "text/plain", messageId = null, beforeSeal = null }) {
    const cur = this.chain.current;
    if (this.removed || !cur || !this.epochs.has(cur.number)) throw new LocalProtocolError("no current epoch to send on");
    const due = this.dueRemovals(trust, now);
    if (due.length) {
      const e = new GroupError(`${due.length} roster device(s) must be removed before sending`, "koppi.removal_due");
      e.devices = due;
      throw e;
    }
    this.counter ??= 0;
    const counter = this.counter;
    this.counter += 1;
    if (beforeSeal) await beforeSeal(); // persist counter + 1 before the key is used
    const rnd = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n));
    return sealMessage(this.epochs.get(cur.number), this.me.signing, {
      counter, messageId: messageId ?? rnd(16), timestampMs: nowMs, reuseGuard: rnd(4),
      label: label ?? new StorageLabel([], "consent"), contentType, body,
      treeSize: trust.treeSize(), treeHeadHash: await trust.treeHeadHash(),
    });
  },
});

Object.assign(ThreadState.prototype, {
  /** The device-local state to keep across reloads (sealed by keystore.js): held epoch secrets
   * and the next counter; the same encoding as the Python client's (docs/protocol.md §8). */
  snapshot() {
    const items = [...this.secrets].map(([e, s]) => new Encoder("koppi/v1/snapshot-secret").u64(e).bytes(s).finish());
    return new Encoder("koppi/v1/thread-snapshot").bytes(this.threadId).u64(this.epoch ?? 0)
      .u64(this.counter ?? 0).list(items).finish();
  },
});

/** Rebuild after a reload: verify the chain again and use the snapshot's secrets (each must still
 * reproduce its epoch's confirmation tag). */
export async function restoreThread(genesis, me, commits, trust, snapshot) {
  const { Decoder } = await import("./encoding.js");
  const dec = new Decoder(snapshot, "koppi/v1/thread-snapshot");
  const threadId = dec.bytes({ length: 16 });
  const epoch = dec.u64n();
  const counter = dec.u64n();
  const restored = new Map();
  for (const item of dec.list()) {
    const d = new Decoder(item, "koppi/v1/snapshot-secret");
    const n = d.u64n();
    restored.set(n, d.bytes({ length: 32 }));
    d.finish();
  }
  dec.finish();
  if (!equalBytes(threadId, genesis.threadId)) throw new LocalProtocolError("snapshot of another thread");
  const state = new ThreadState(genesis, me);
  state.restored = restored;
  for (const [data, seq] of commits) await state.apply(data, seq, trust, { live: false });
  state.restored = null;
  if (state.epoch === epoch) state.counter = counter;
  return state;
}

/** The welcome path (crypto/group.py `ThreadState.join`): verify the whole chain from genesis,
 * unwrap this device's secret and its history grants. `commits`: [[bytes, seq], ...] in order. */
export async function joinThread(genesis, me, commits, trust) {
  const state = new ThreadState(genesis, me);
  for (const [data, seq] of commits) await state.apply(data, seq, trust, { live: false });
  if (state.epoch === null || !state.epochs.has(state.epoch)) {
    throw new LocalProtocolError("this device is not in the thread's current roster", "koppi.not_in_roster");
  }
  return state;
}
