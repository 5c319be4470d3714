// Runs a vector file through the browser twin (web/static/protocol/) and returns the failures.
// Loaded by tests/browser/test_vectors.py in real Chromium; the vectors are the same files the
// Python core passes (docs/protocol.md §9).

import * as P from "/web/static/protocol/primitives.js";
import { equalBytes, hex, unhex } from "/web/static/protocol/encoding.js";
import * as S from "/web/static/protocol/schedule.js";
import * as M from "/web/static/protocol/message.js";
import * as MK from "/web/static/protocol/merkle.js";
import * as TH from "/web/static/protocol/treehead.js";
import * as ID from "/web/static/protocol/identity.js";
import * as CS from "/web/static/protocol/consent.js";
import * as C from "/web/static/protocol/commit.js";
import * as G from "/web/static/protocol/group.js";
import * as KS from "/web/static/protocol/keystore.js";
import * as FP from "/web/static/protocol/fingerprint.js";
import * as FL from "/web/static/protocol/follower.js";
import { StorageLabel } from "/web/static/protocol/message.js";
import { CoveredOrganisation } from "/web/static/protocol/consent.js";

async function load(name) {
  const r = await fetch(`/crypto/vectors/${name}`);
  if (!r.ok) throw new Error(`cannot load ${name}`);
  return r.json();
}

function same(label, got, want) {
  const w = typeof want === "string" ? want : hex(want);
  const g = typeof got === "string" ? got : hex(got);
  if (g !== w) throw new Error(`${label}: got ${g.slice(0, 64)} want ${w.slice(0, 64)}`);
}

async function refused(fn, code) {
  try {
    await fn();
  } catch (e) {
    if (e.code === code) return;
    throw new Error(`wanted ${code}, got ${e.code ?? e}`);
  }
  throw new Error(`wanted ${code}, got no error`);
}

const u = unhex;

const CHECKS = {
  async "rfc8032-ed25519.json"(c) {
    const key = await P.SigningKey.fromSeed(u(c.secret_key));
    same("public", key.public, c.public_key);
    const sig = await key.sign(u(c.message));
    same("signature", sig, c.signature); // Ed25519 is deterministic
    await P.ed25519Verify(key.public, u(c.message), sig);
    const bad = Uint8Array.from(sig);
    bad[5] ^= 0x40;
    await refused(() => P.ed25519Verify(key.public, u(c.message), bad), "koppi.auth_failed");
  },
  async "ed25519-speccheck.json"(c) {
    const run = () => P.ed25519Verify(u(c.public_key), u(c.message), u(c.signature));
    if (c.expected_error) await refused(run, c.expected_error);
    else await run();
  },
  async "rfc7748-x25519.json"(c) {
    if (c.kind === "scalarmult") {
      same("output", await P.x25519(u(c.scalar), u(c.u)), c.output);
    } else if (c.kind === "iterated") {
      let k = u(c.k);
      let uu = u(c.k);
      for (let i = 0; i < c.iterations; i++) {
        const out = await P.x25519(k, uu);
        uu = k;
        k = out;
      }
      same("output", k, c.output);
    } else if (c.kind === "dh") {
      const alice = await P.KemKey.fromBytes(u(c.alice_private));
      const bob = await P.KemKey.fromBytes(u(c.bob_private));
      same("alice public", alice.public, c.alice_public);
      same("bob public", bob.public, c.bob_public);
      same("shared a", await alice.exchange(bob.public), c.shared);
      same("shared b", await bob.exchange(alice.public), c.shared);
    } else {
      await refused(async () => P.checkX25519Public(u(c.u)), c.expected_error);
      const key = await P.KemKey.fromBytes(new Uint8Array(32).map((_, i) => i));
      await refused(() => key.exchange(u(c.u)), "koppi.weak_key");
    }
  },
  async "rfc5869-hkdf.json"(c) {
    const prk = await P.hkdfExtract(u(c.salt), u(c.ikm));
    same("prk", prk, c.prk);
    same("okm", await P.hkdfExpand(prk, u(c.info), c.length), c.okm);
    same("okm (one call)", await P.hkdf(u(c.ikm), u(c.salt), u(c.info), c.length), c.okm);
  },
  async "rfc9180-a1-1.json"(c) {
    const e = await P.deriveKeyPair(u(c.ikmE));
    same("skEm", e.sk, c.skEm);
    same("pkEm", e.key.public, c.pkEm);
    const r = await P.deriveKeyPair(u(c.ikmR));
    same("skRm", r.sk, c.skRm);
    same("pkRm", r.key.public, c.pkRm);
    const { sharedSecret, enc } = await P.encap(u(c.pkRm), u(c.ikmE));
    same("enc", enc, c.enc);
    same("shared secret", sharedSecret, c.shared_secret);
    same("decap", await P.decap(enc, r.key), c.shared_secret);
    const ctx = await P.keySchedule(sharedSecret, u(c.info));
    same("key schedule context", ctx.keyScheduleContext, c.key_schedule_context);
    same("secret", ctx.secret, c.secret);
    same("key", ctx.key, c.key);
    same("base nonce", ctx.baseNonce, c.base_nonce);
    same("exporter secret", ctx.exporterSecret, c.exporter_secret);
    for (const x of c.encryptions) {
      same(`nonce ${x.sequence_number}`, P.hpkeNonce(ctx.baseNonce, x.sequence_number), x.nonce);
      const ct = await P.hpkeSealSequence(ctx, x.sequence_number, u(x.aad), u(x.pt));
      same(`ct ${x.sequence_number}`, ct, x.ct);
      same(`pt ${x.sequence_number}`, await P.hpkeOpenSequence(ctx, x.sequence_number, u(x.aad), ct), x.pt);
    }
    const first = c.encryptions[0];
    const sealed = await P.hpkeSeal(u(c.pkRm), u(c.info), u(first.pt),
      { ephemeralIkm: u(c.ikmE), aad: u(first.aad) });
    same("single shot", sealed, c.enc + first.ct);
    same("open", await P.hpkeOpen(r.key, u(c.info), sealed, { aad: u(first.aad) }), first.pt);
  },
  async "koppi-encoding.json"(c) {
    const decode = c.structure === "storage-label" ? StorageLabel.decode : CoveredOrganisation.decode;
    if (c.expected_error) return refused(async () => decode(u(c.bytes)), c.expected_error);
    const value = decode(u(c.bytes));
    for (const [name, want] of Object.entries(c.expected)) {
      const got = {
        organisations: () => value.organisations.map(hex).sort(),
        basis: () => value.basis,
        retention_days: () => value.retentionDays,
        may_store: () => value.mayStore,
      }[name]();
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${name}: ${got} != ${want}`);
    }
    same("re-encoding", value.encode(), c.bytes);
  },
  async "koppi-schedule.json"(c) {
    if (c.kind === "epoch_keys") {
      const keys = await S.deriveEpochKeys(u(c.epoch_secret), u(c.core_hash), u(c.thread_id), c.epoch);
      for (const p of S.PURPOSES) same(p, keys[p], c[p]);
      same("tag", await S.confirmationTag(keys.confirm, u(c.core_hash)), c.confirmation_tag);
      same("thread info", await S.sealThreadInfo(keys.metadata, u(c.core_hash), u(c.thread_info)),
        c.thread_info_ct);
      return;
    }
    const key = await P.KemKey.fromBytes(u(c.recipient_private));
    const info = c.kind === "wrap"
      ? await S.wrapInfo(u(c.thread_id), c.epoch, u(c.core_hash), u(c.device_id), u(c.kp_hash))
      : await S.historyInfo(u(c.thread_id), c.old_epoch, u(c.old_commit_hash), u(c.recipient),
        u(c.kp_hash), u(c.admitting_core_hash));
    const epoch = c.kind === "wrap" ? c.epoch : c.old_epoch;
    if (c.expected_error) return refused(() => S.openSecret(key, info, u(c.sealed), epoch), c.expected_error);
    same("info", info, c.info);
    same("open", await P.hpkeOpen(key, info, u(c.sealed)), c.plaintext);
    const again = await P.hpkeSeal(key.public, info, u(c.plaintext), { ephemeralIkm: u(c.ephemeral_ikm) });
    same("fixed-ephemeral seal", again, c.sealed);
    const secret = await S.openSecret(key, info, u(c.sealed), epoch);
    same("secret", secret, u(c.plaintext).slice(-32));
  },
};

async function messageEpochs(doc) {
  const devices = {};
  for (const [name, d] of Object.entries(doc.devices)) {
    devices[name] = {
      deviceId: u(d.device_id), orgId: u(d.org_id), signingPublic: u(d.signing_public),
      certLogIndex: d.cert_log_index, revokedAtIndex: d.revoked_at_index,
    };
  }
  const epochs = {};
  for (const [name, e] of Object.entries(doc.epochs)) {
    epochs[name] = {
      threadId: u(e.thread_id), number: e.number, epochId: u(e.epoch_id), coreHash: u(e.core_hash),
      keys: await S.deriveEpochKeys(u(e.epoch_secret), u(e.core_hash), u(e.thread_id), e.number),
      roster: new Map(e.roster.map((n) => [hex(devices[n].deviceId), devices[n]])),
      coverage: new Set(e.coverage), mayStore: new Set(e.may_store), treeSize: e.tree_size,
    };
  }
  return epochs;
}

function labelJson(label) {
  return { organisations: label.organisations.map(hex).sort(), basis: label.basis,
    retention_days: label.retentionDays };
}

CHECKS["koppi-message.json"] = async (c, doc, ctx) => {
  ctx.epochs ??= await messageEpochs(doc);
  const epoch = ctx.epochs[c.epoch];
  switch (c.kind) {
    case "label": {
      const label = new M.StorageLabel(c.organisations.map(u), c.basis, c.retention_days);
      same("encoding", label.encode(), c.encoding);
      same("decode", M.StorageLabel.decode(u(c.encoding)).encode(), c.encoding);
      return;
    }
    case "label_decode":
      return refused(async () => M.StorageLabel.decode(u(c.encoding)), c.expected_error);
    case "header": {
      const h = new M.Header({
        threadId: u(c.thread_id), epoch: c.epoch, epochId: u(c.epoch_id), sender: u(c.sender),
        counter: c.counter, messageId: u(c.message_id), timestampMs: c.timestamp_ms,
        reuseGuard: u(c.reuse_guard), label: M.StorageLabel.decode(u(c.label)),
      });
      same("encoding", h.encode(), c.encoding);
      same("decode", M.Header.decode(u(c.encoding)).encode(), c.encoding);
      return;
    }
    case "header_decode":
      return refused(async () => M.Header.decode(u(c.encoding)), c.expected_error);
    case "content":
      same("encoding", M.encodeContent(c.content_type, c.tree_size, u(c.tree_head_hash), u(c.body)),
        c.encoding);
      return;
    case "keys": {
      const fake = { keys: { sender: u(c.epoch_sender_key) } };
      const secret = await M.senderSecret(fake, u(c.device_id));
      same("sender secret", secret, c.sender_secret);
      const { key, nonce } = await M.messageKey(secret, c.counter, u(c.reuse_guard));
      same("key", key, c.key);
      same("nonce", nonce, c.nonce);
      return;
    }
    case "pad_size":
      if (c.expected_error) {
        return refused(async () => M.pad(new Uint8Array(c.content_length)), c.expected_error);
      }
      if (M.paddedSize(c.content_length + 1) !== c.padded_length) throw new Error("padded size");
      return;
    case "pad":
      same("padded", M.pad(u(c.content)), c.padded);
      same("unpadded", M.unpad(u(c.padded)), c.content);
      return;
    case "open": {
      if (c.expected_error) return refused(() => M.open(epoch, u(c.message)), c.expected_error);
      const got = await M.open(epoch, u(c.message));
      const w = c.expected;
      same("sender", got.header.sender, w.sender);
      if (got.header.counter !== w.counter) throw new Error("counter");
      same("message id", got.header.messageId, w.message_id);
      if (got.header.timestampMs !== w.timestamp_ms) throw new Error("timestamp");
      same("reuse guard", got.header.reuseGuard, w.reuse_guard);
      if (JSON.stringify(labelJson(got.header.label)) !== JSON.stringify(w.label)) throw new Error("label");
      if (got.contentType !== w.content_type || got.treeSize !== w.tree_size) throw new Error("content");
      same("tree head", got.treeHeadHash, w.tree_head_hash);
      same("body", got.body, w.body);
      return;
    }
    case "replay": {
      const guard = new M.ReplayGuard();
      for (const step of c.steps) {
        const run = async () => guard.check(await M.open(epoch, u(step.message)));
        if (step.expected_error) await refused(run, step.expected_error);
        else if ((await run()) !== step.is_duplicate_id) throw new Error("is_duplicate_id");
      }
      return;
    }
    default:
      throw new Error(`unknown kind ${c.kind}`);
  }
};

CHECKS["koppi-merkle.json"] = async (c, doc) => {
  if (c.kind === "root") {
    same("root", await MK.root(doc.entries.slice(0, c.size).map(u)), c.root);
    return;
  }
  const run = c.kind === "inclusion"
    ? () => MK.verifyInclusion(u(c.entry), c.index, c.size, c.proof.map(u), u(c.root))
    : () => MK.verifyConsistency(c.old_size, c.new_size, u(c.old_root), u(c.new_root), c.proof.map(u));
  if (c.expected_error) await refused(run, c.expected_error);
  else await run();
};

CHECKS["koppi-treehead.json"] = async (c, doc) => {
  const cfg = doc.config;
  const config = await TH.LogConfig.create(u(cfg.log_public_key), cfg.witness_public_keys.map(u),
    cfg.quorum, cfg.max_head_age_ms);
  const clock = { nowMs: () => c.now_ms };
  if (c.kind === "decode") return refused(async () => TH.CosignedTreeHead.decode(u(c.data)), c.expected_error);
  const current = c.current ? TH.CosignedTreeHead.decode(u(c.current)) : null;
  const view = await TH.LogView.withCurrent(config, clock, current);
  let run;
  if (c.kind === "update") {
    run = () => view.update(TH.CosignedTreeHead.decode(u(c.new)), c.proof.map(u));
  } else if (c.kind === "inclusion") {
    run = () => view.verifyInclusion(u(c.entry), c.index, c.proof.map(u));
  } else {
    if (view.effectiveNowMs() !== c.effective_now_ms) throw new Error("effective now");
    return;
  }
  if (c.expected_error) await refused(run, c.expected_error);
  else await run();
};

CHECKS["koppi-identity.json"] = async (c) => {
  const config = await TH.LogConfig.create(u(c.log_public), c.witness_publics.map(u), c.quorum);
  const view = new TH.LogView(config, { nowMs: () => c.now_ms });
  await view.update(TH.CosignedTreeHead.decode(u(c.tree_head)), []);
  const store = new ID.TrustStore(u(c.root_public), view);
  for (const e of c.entries) {
    const add = () => store.add(e.kind, u(e.data), e.index, e.proof.map(u));
    if (e.index === c.failing_entry) return refused(add, c.expected_error);
    await add();
  }
  if (c.expected_error) throw new Error("no entry failed");
  for (const d of c.expected_devices) {
    const v = store.device(u(d.device_id));
    if (!v || v.certLogIndex !== d.cert_log_index || v.revokedAtIndex !== d.revoked_at_index) {
      throw new Error(`device ${d.device_id}`);
    }
  }
};

CHECKS["koppi-consent.json"] = async (c) => {
  const run = async () => {
    if (c.kind === "verify") {
      const pub = u(c.recorder_public);
      const recorder = {
        deviceId: await ID.deviceIdOf(pub), roles: new Set(c.recorder_roles), signingPublic: pub,
        certLogIndex: c.recorder_cert_log_index, revokedAtIndex: c.recorder_revoked_at_index,
      };
      await CS.verifyConsent(u(c.record), recorder, c.tree_size);
      return null;
    }
    const book = new CS.ConsentBook();
    const records = c.records.map((r) => CS.ConsentRecord.decode(u(r)));
    for (const r of records) await book.accept(r);
    if (c.kind === "evidence") {
      const first = records[0].core;
      const cover = book.cover(await first.coreHash(), first.validFrom);
      CS.checkEvidence(cover, u(c.thread_client_ref), c.thread_purpose);
    }
    return { book, records };
  };
  if (c.expected_error) return refused(run, c.expected_error);
  const got = await run();
  if (c.state_at) {
    const id = got.records[0].core.consentId;
    if (got.book.state(id, c.state_at.time) !== c.state_at.state) throw new Error("state");
    const kinds = got.book.history(id, c.state_at.time).map((e) => e.kind);
    if (JSON.stringify(kinds) !== JSON.stringify(c.history)) throw new Error(`history ${kinds}`);
  }
};

CHECKS["koppi-fingerprint.json"] = async (c) => {
  const json = JSON.stringify;
  if (c.kind === "words") {
    const got = FP.pgpWords(u(c.bytes));
    if (json(got) !== json(c.words)) throw new Error(`words ${got.slice(0, 4)}`);
    return;
  }
  const [signing, kem] = [u(c.signing_public), u(c.kem_public)];
  if (c.expected_error) return refused(() => FP.deviceFingerprint(signing, kem), c.expected_error);
  same("device id", await ID.deviceIdOf(signing), c.device_id);
  same("fingerprint", await FP.fingerprint(signing, kem), c.fingerprint);
  const got = await FP.deviceFingerprint(signing, kem);
  if (got.hex !== c.hex) throw new Error(`hex ${got.hex}`);
  if (json(got.words) !== json(c.words)) throw new Error(`words ${got.words}`);
  if (json(await FP.fingerprintWords(signing, kem)) !== json(c.words)) throw new Error("fingerprintWords");
  if ((await FP.fingerprintHex(signing, kem)) !== c.hex) throw new Error("fingerprintHex");
};

/** koppi-thread.json is one story: its cases run in order against persistent observers. */
export async function replayThread() {
  const { cases, failures } = await replayThreadState();
  return { cases, failures };
}

async function replayThreadState() {
  const doc = await load("koppi-thread.json");
  const d = doc.deployment;
  const clock = { nowMs: () => d.now_ms };
  const config = await TH.LogConfig.create(u(d.log_public), d.witness_publics.map(u), d.quorum, d.max_head_age_ms);
  const genesis = await C.decodeGenesis(u(doc.genesis));
  const observers = {};
  for (const [name, o] of Object.entries(doc.observers)) {
    const packageKeys = new Map();
    for (const [h, k] of Object.entries(o.package_keys)) packageKeys.set(h, await P.KemKey.fromBytes(u(k)));
    const me = {
      deviceId: u(o.device_id), signing: await P.SigningKey.fromSeed(u(o.signing_seed)),
      certKem: await P.KemKey.fromBytes(u(o.cert_kem_private)), packageKeys,
    };
    observers[name] = {
      trust: new ID.TrustStore(u(d.root_public), new TH.LogView(config, clock)),
      state: new G.ThreadState(genesis, me),
    };
  }
  const failures = [];
  for (const c of doc.cases) {
    try {
      if (c.kind === "sync") {
        for (const o of Object.values(observers)) {
          await o.trust.log.update(TH.CosignedTreeHead.decode(u(c.tree_head)), c.consistency_proof.map(u));
          for (const e of c.entries) await o.trust.add(e.kind, u(e.data), e.index, e.proof.map(u));
        }
        continue;
      }
      const o = observers[c.observer];
      const run = c.kind === "commit"
        ? () => o.state.apply(u(c.data), c.seq, o.trust, { live: c.live, now: Math.floor(d.now_ms / 1000) })
        : () => o.state.decrypt(u(c.data), c.seq);
      if (c.expected_error) {
        const before = [hex(o.state.chain.headHash), o.state.readableEpochs.join()];
        await refused(run, c.expected_error);
        if (hex(o.state.chain.headHash) !== before[0] || o.state.readableEpochs.join() !== before[1]) {
          throw new Error("a refused input changed the state");
        }
        continue;
      }
      const got = await run();
      const w = c.expected;
      if (c.kind === "commit") {
        const mine = { epoch: got.epoch, epoch_id: hex(got.epochId), removed_me: got.removedMe,
          history: got.history, readable_epochs: o.state.readableEpochs, thread_info: hex(o.state.threadInfo) };
        if (JSON.stringify(mine) !== JSON.stringify(w)) throw new Error(`${JSON.stringify(mine)} != ${JSON.stringify(w)}`);
      } else {
        const mine = { body: hex(got.body), sender: hex(got.header.sender), epoch: got.header.epoch,
          content_type: got.contentType, label_organisations: got.header.label.organisations.map(hex).sort(),
          label_basis: got.header.label.basis };
        if (JSON.stringify(mine) !== JSON.stringify(w)) throw new Error(`${JSON.stringify(mine)} != ${JSON.stringify(w)}`);
      }
    } catch (e) {
      failures.push({ name: c.name, error: String(e.message ?? e) });
    }
  }
  return { cases: doc.cases.length, failures, observers, doc, genesis };
}

/** Run every case of `file`; returns {cases, failures: [{name, error}]}. */
export async function run(file) {
  const doc = await load(file);
  const check = CHECKS[file];
  const ctx = {};
  const failures = [];
  for (const c of doc.cases) {
    try {
      await check(c, doc, ctx);
    } catch (e) {
      failures.push({ name: c.name, error: String(e.message ?? e) });
    }
  }
  return { cases: doc.cases.length, failures };
}

/** Private keys imported into WebCrypto cannot be read back by any script. */
export async function privateKeysAreNotExtractable() {
  const sk = await P.SigningKey.fromSeed(new Uint8Array(32).fill(7));
  const kem = await P.KemKey.fromBytes(new Uint8Array(32).fill(9));
  const results = [];
  for (const key of [sk.privateKey, kem.privateKey]) {
    try {
      await crypto.subtle.exportKey("pkcs8", key);
      results.push("exported");
    } catch (e) {
      results.push(key.extractable ? "extractable" : "refused");
    }
  }
  return results;
}

export { equalBytes };

/** Cross tests: seal in the browser what Python will open, and open what Python sealed. */
export async function sealForPython(senderSeed, fields) {
  const doc = await load("koppi-message.json");
  const epochs = await messageEpochs(doc);
  const key = await P.SigningKey.fromSeed(u(senderSeed));
  const data = await M.seal(epochs.main, key, {
    counter: fields.counter, messageId: u(fields.message_id), timestampMs: fields.timestamp_ms,
    reuseGuard: u(fields.reuse_guard), label: M.StorageLabel.decode(u(fields.label)),
    contentType: fields.content_type, body: u(fields.body), treeSize: fields.tree_size,
    treeHeadHash: u(fields.tree_head_hash),
  });
  return hex(data);
}

export async function openFromPython(message) {
  const doc = await load("koppi-message.json");
  const epochs = await messageEpochs(doc);
  const got = await M.open(epochs.main, u(message));
  return { body: hex(got.body), sender: hex(got.header.sender), counter: got.header.counter };
}

export async function hpkeSealForPython(recipientPublic, info, plaintext) {
  return hex(await P.hpkeSeal(u(recipientPublic), u(info), u(plaintext)));
}

export async function hpkeOpenFromPython(recipientPrivate, info, sealed) {
  const key = await P.KemKey.fromBytes(u(recipientPrivate));
  return hex(await P.hpkeOpen(key, u(info), u(sealed)));
}

export async function wrapSecretForPython(recipientPublic, threadId, epoch, coreHash, deviceId,
  kpHash, secret) {
  const info = await S.wrapInfo(u(threadId), epoch, u(coreHash), u(deviceId), u(kpHash));
  return hex(await S.sealSecret(u(recipientPublic), info, epoch, u(secret)));
}

export async function unwrapSecretFromPython(recipientPrivate, threadId, epoch, coreHash,
  deviceId, kpHash, sealed) {
  const key = await P.KemKey.fromBytes(u(recipientPrivate));
  const info = await S.wrapInfo(u(threadId), epoch, u(coreHash), u(deviceId), u(kpHash));
  return hex(await S.openSecret(key, info, u(sealed), epoch));
}

// --- a browser member driven from Python (tests/browser/test_cross.py) ----------------------

let MEMBER = null;

export async function startMember(cfg) {
  const clock = { nowMs: () => cfg.now_ms };
  const config = await TH.LogConfig.create(u(cfg.log_public), cfg.witness_publics.map(u), cfg.quorum);
  const packageKeys = new Map();
  for (const [h, k] of Object.entries(cfg.me.package_keys)) packageKeys.set(h, await P.KemKey.fromBytes(u(k)));
  const me = {
    deviceId: u(cfg.me.device_id), signing: await P.SigningKey.fromSeed(u(cfg.me.signing_seed)),
    certKem: await P.KemKey.fromBytes(u(cfg.me.cert_kem_private)), packageKeys,
  };
  MEMBER = {
    trust: new ID.TrustStore(u(cfg.root_public), new TH.LogView(config, clock)),
    state: new G.ThreadState(await C.decodeGenesis(u(cfg.genesis)), me),
    now: Math.floor(cfg.now_ms / 1000),
    nowMs: cfg.now_ms,
  };
  await syncMember(cfg.sync);
}

export async function syncMember(sync) {
  await MEMBER.trust.log.update(TH.CosignedTreeHead.decode(u(sync.tree_head)), sync.consistency_proof.map(u));
  for (const e of sync.entries) await MEMBER.trust.add(e.kind, u(e.data), e.index, e.proof.map(u));
}

export async function proposeMember(p) {
  const add = p.add.map((a) => ({
    device: MEMBER.trust.device(u(a.device_id)), keyPackage: a.key_package ? u(a.key_package) : null,
  }));
  const data = await MEMBER.state.propose(MEMBER.trust, {
    add, evidence: p.evidence ? u(p.evidence) : null, threadInfo: p.thread_info ? u(p.thread_info) : null,
    now: MEMBER.now,
  });
  return hex(data);
}

export async function applyMember(data, seq, live = true) {
  const ev = await MEMBER.state.apply(u(data), seq, MEMBER.trust, { live, now: MEMBER.now });
  return { epoch: ev.epoch, history: ev.history, readable: MEMBER.state.readableEpochs };
}

export async function encryptMember(body) {
  return hex(await MEMBER.state.encrypt(u(body), { trust: MEMBER.trust, now: MEMBER.now, nowMs: MEMBER.nowMs }));
}

export async function decryptMember(data, seq) {
  return hex((await MEMBER.state.decrypt(u(data), seq)).body);
}

// --- key storage (tests/browser/test_keystore.py) --------------------------------------------

export async function deviceKeysRound(dbName, message) {
  const ks = await KS.KeyStore.open(dbName);
  const keys = await ks.deviceKeys();
  const signer = new P.SigningKey(keys.signing, keys.signingPublic);
  const sig = await signer.sign(u(message));
  const exported = [];
  for (const k of [keys.signing, keys.kem]) {
    try {
      await crypto.subtle.exportKey("pkcs8", k);
      exported.push(true);
    } catch {
      exported.push(false);
    }
  }
  ks.close();
  return { signingPublic: hex(keys.signingPublic), kemPublic: hex(keys.kemPublic), signature: hex(sig),
    exported, extractable: [keys.signing.extractable, keys.kem.extractable] };
}

export async function persistence() {
  return KS.KeyStore.requestPersistence();
}

export async function sealedRound(dbName, name, secret, tamper) {
  const ks = await KS.KeyStore.open(dbName);
  await ks.seal(name, u(secret));
  const raw = await ks.get("sealed", name);
  if (tamper) {
    raw.ct[0] ^= 1;
    await ks.put("sealed", name, raw);
  }
  let opened = null;
  let error = null;
  try {
    opened = hex(await ks.open(name));
  } catch (e) {
    error = e.code;
  }
  ks.close();
  return { stored: hex(raw.ct), opened, error };
}

const RELEASES = {};

export async function takeSendLock(device) {
  const release = await KS.acquireSendLock(device);
  if (!release) return false;
  RELEASES[device] = release;
  return true;
}

export async function dropSendLock(device) {
  await RELEASES[device]();
  delete RELEASES[device];
}

/** Send, "crash" (drop the state), restore from the sealed snapshot, send again: the counter goes
 * on, because it was persisted before the first message was sealed. */
export async function counterSurvivesRestart(dbName) {
  const { observers, doc, genesis } = await replayThreadState();
  const bob = observers.bob;
  const ks = await KS.KeyStore.open(dbName);
  const now = Math.floor(doc.deployment.now_ms / 1000);
  const send = (state) => state.encrypt(new TextEncoder().encode("hei"), {
    trust: bob.trust, now, nowMs: doc.deployment.now_ms, beforeSeal: () => ks.saveThread(state),
  });
  const first = M.parse(await send(bob.state)).headerFields.counter;
  const commits = doc.cases.filter((c) => c.kind === "commit" && c.observer === "bob" && !c.expected_error)
    .map((c) => [u(c.data), c.seq]);
  const name = `thread/${hex(genesis.threadId)}`;
  const restored = await G.restoreThread(genesis, bob.state.me, commits, bob.trust, await ks.open(name));
  const second = M.parse(await send(restored)).headerFields.counter;
  ks.close();
  return { first, second, readable: restored.readableEpochs };
}

// --- the Web Worker (tests/browser/test_worker.py) --------------------------------------------

export async function sealInWorker() {
  const { ProtocolWorker } = await import("/web/static/protocol/worker.js");
  const doc = await load("koppi-message.json");
  const epochs = await messageEpochs(doc);
  const alice = await P.SigningKey.fromSeed(u(doc.sender_seeds.alice));
  const worker = new ProtocolWorker();
  const body = new TextEncoder().encode("sealed off the UI thread");
  const sealed = await worker.call("seal", epochs.main, { privateKey: alice.privateKey, public: alice.public }, {
    counter: 3, messageId: new Uint8Array(16), timestampMs: 1, reuseGuard: new Uint8Array(4),
    label: { organisations: [], basis: "consent", retentionDays: 0 }, contentType: "text/plain", body,
    treeSize: 10, treeHeadHash: new Uint8Array(0),
  });
  const opened = await M.open(epochs.main, sealed);
  const back = await worker.call("open", epochs.main, sealed);
  let refusal = null;
  const bad = Uint8Array.from(sealed);
  bad[bad.length - 1] ^= 1;
  try {
    await worker.call("open", epochs.main, bad);
  } catch (e) {
    refusal = e.code;
  }
  worker.terminate();
  return { body: new TextDecoder().decode(opened.body), workerBody: new TextDecoder().decode(back.body), refusal };
}

/** koppi-consent.json's `covers`: a version's cover at a time, after a given history. */
export async function consentCovers() {
  const doc = await load("koppi-consent.json");
  const full = doc.cases.find((c) => c.name === "v1-v2-v3-revoked").records.map((r) => CS.ConsentRecord.decode(u(r)));
  const failures = [];
  for (const want of doc.covers) {
    const book = new CS.ConsentBook();
    for (const r of want.accepted === "v1,v2" ? full.slice(0, 2) : full) await book.accept(r);
    const cover = book.cover(u(want.core_hash), want.now);
    const roles = Object.fromEntries([...cover.roles].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([org, r]) => [org, [...r].sort()]));
    const got = { version: cover.version, active: cover.active, organisations: [...cover.organisations].sort(),
      may_store: [...cover.mayStore].sort(), roles };
    const expected = { version: want.version, active: want.active, organisations: want.organisations,
      may_store: want.may_store, roles: want.roles };
    if (JSON.stringify(got) !== JSON.stringify(expected)) failures.push({ want, got });
  }
  return { cases: doc.covers.length, failures };
}

/** koppi-consent.json's `admissions`: the admission rule, table-driven. */
export async function consentAdmissions() {
  const doc = await load("koppi-consent.json");
  const failures = [];
  for (const c of doc.admissions) {
    const book = new CS.ConsentBook();
    for (const r of c.records) await book.accept(CS.ConsentRecord.decode(u(r)));
    const got = await book.refusal(u(c.core_hash), u(c.org_id), new Set(c.roles), c.now);
    if (got !== c.refusal) failures.push({ name: c.name, got });
  }
  return { cases: doc.admissions.length, failures };
}

/**
 * koppi-consent.json's `record`, built from its fields and signed, byte for byte; then the next
 * versions of its `v1-v2-v3-revoked` case (one organisation dropped, then withdrawn by phone),
 * which Python built with `next_version`. Returns the names of the checks that failed.
 */
export async function consentBuild() {
  const doc = await load("koppi-consent.json");
  const { record } = doc;
  const f = record.fields;
  const [, v2Want, v3Want] = doc.cases.find((c) => c.name === "v1-v2-v3-revoked").records;
  const recorder = await P.SigningKey.fromSeed(u(record.recorder_seed));
  const fields = {
    consentId: u(f.consent_id), version: f.version, prevVersionHash: new Uint8Array(),
    clientRef: u(f.client_ref), purpose: f.purpose,
    organisations: f.organisations.map((o) => new CoveredOrganisation(
      u(o.org_id), o.may_store, o.processing_basis, o.roles, o.statute, o.justification, o.full_history)),
    dataCategories: f.data_categories, validFrom: f.valid_from, validUntil: f.valid_until,
    status: f.status, disclosureBasis: f.disclosure_basis, howObtained: f.how_obtained,
    infoTextHash: u(f.info_text_hash), detailsHash: u(f.details_hash),
    recorder: await ID.deviceIdOf(recorder.public), recordedAt: f.recorded_at,
    revocationChannel: f.revocation_channel,
  };
  const failures = [];
  let cases = 0;
  const check = (name, ok) => {
    cases += 1;
    if (!ok) failures.push(name);
  };
  const core = CS.buildConsentCore(fields);
  check("core", hex(core.raw) === record.core);
  check("core hash", hex(await core.coreHash()) === record.core_hash);
  // The organisations and categories are sets: any order given, the reference's bytes.
  const shuffled = CS.buildConsentCore({ ...fields, organisations: [...fields.organisations].reverse(),
    dataCategories: [...fields.dataCategories].reverse().concat(fields.dataCategories[0]) });
  check("order given", hex(shuffled.raw) === record.core);
  const v1 = await CS.signConsent(core, recorder);
  check("record", hex(v1.raw) === record.record);
  const te = u("2000000000000000000000000000000c");
  const v2 = await CS.signConsent(await CS.nextVersion(v1, { recordedAt: f.recorded_at + 100,
    recorder: core.recorder, organisations: core.organisations.filter((o) => !equalBytes(o.orgId, te)) }),
  recorder);
  check("v2", hex(v2.raw) === v2Want);
  const v3 = await CS.signConsent(await CS.nextVersion(v2, { recordedAt: f.recorded_at + 200,
    recorder: core.recorder, status: "revoked", revocationChannel: "phone" }), recorder);
  check("v3", hex(v3.raw) === v3Want);
  const other = await P.SigningKey.fromSeed(new Uint8Array(32).fill(7));
  const outcome = async (fn) => { try { await fn(); return "ok"; } catch (e) { return e.code ?? String(e); } };
  check("signed by another device",
    await outcome(() => CS.signConsent(core, other)) === "koppi.wrong_recorder");
  // "Whitespace alone counts as empty" as Python's str.strip() has it, not JavaScript's trim().
  const org = (statute) => () => new CoveredOrganisation(te, false, "consent", [], statute, "");
  check("NEL is whitespace", await outcome(org("\x85")) === "ok");
  check("BOM is not", await outcome(org("\ufeff")) === "koppi.bad_consent");
  return { cases, failures };
}

/** koppi-message.json's `label_policies`: a thread's default label, as the reference computes. */
export async function labelPolicies() {
  const doc = await load("koppi-message.json");
  const failures = [];
  for (const c of doc.label_policies) {
    try {
      const label = M.defaultLabel(c.policy, u(c.sender_org), new Set(c.may_store));
      const got = label.organisations.map((o) => hex(o)).sort();
      if (c.expected_error || JSON.stringify(got) !== JSON.stringify(c.organisations)) {
        failures.push({ c, got });
      }
    } catch (e) {
      if (e.code !== c.expected_error) failures.push({ c, error: e.code });
    }
  }
  return { cases: doc.label_policies.length, failures };
}

// --- the log follower (protocol/follower.js), against the same log as client/trust.py -------


let FOLLOWER = null;

/** A follower pinned like the Python one; `served` maps each path the follower may ask for to
 * the server's JSON. Returns what it trusts, or the error code. */
export async function followLog(cfg, served, fresh = false) {
  if (fresh || !FOLLOWER) {
    const config = cfg.quorum
      ? await TH.LogConfig.create(u(cfg.log_public), cfg.witness_publics.map(u), cfg.quorum)
      : await TH.LogConfig.unwitnessed(u(cfg.log_public));
    FOLLOWER = new FL.LogFollower(new ID.TrustStore(u(cfg.root_public), new TH.LogView(config, { nowMs: () => cfg.now_ms })));
  }
  FOLLOWER.trust.log.clock = { nowMs: () => cfg.now_ms };
  const asked = [];
  const get = async (path) => {
    asked.push(path);
    if (!(path in served)) throw Object.assign(new Error(`not served: ${path}`), { code: "koppi.not_found" });
    return served[path];
  };
  try {
    await FOLLOWER.follow(get);
  } catch (e) {
    return { error: e.code ?? String(e), asked, size: FOLLOWER.size };
  }
  const trust = FOLLOWER.trust;
  const devices = {};
  for (const [id, d] of trust.devices) {
    devices[id] = { cert_log_index: d.certLogIndex, revoked_at_index: d.revokedAtIndex, cert_hash: hex(d.certHash) };
  }
  return {
    asked, size: FOLLOWER.size, root: hex(await FOLLOWER.tree.root()),
    refused: Object.fromEntries([...FOLLOWER.refused].map(([i, r]) => [String(i), [r.kind, r.code]])),
    devices, links: [...trust.links.keys()].sort(),
    consents: cfg.consents.map((h) => trust.consent(u(h)) !== null),
  };
}

/** Every root, inclusion proof and consistency proof of the tree over `leafHashes` (hex). */
export async function merkleProofs(leafHashes) {
  const tree = new FL.MerkleTree();
  for (const h of leafHashes) await tree.appendLeafHash(u(h));
  const n = tree.size;
  const out = { roots: [], inclusion: {}, consistency: {} };
  for (let size = 0; size <= n; size++) {
    out.roots.push(hex(await tree.root(size)));
    for (let m = 0; m < size; m++) out.inclusion[`${m}/${size}`] = (await tree.inclusionProof(m, size)).map(hex);
    for (let m = 0; m <= size; m++) out.consistency[`${m}/${size}`] = (await tree.consistencyProof(m, size)).map(hex);
  }
  return out;
}
