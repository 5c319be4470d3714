// Browser-side figures for bench/browser_crypto.py: the protocol's per-message and rekey costs in
// Chromium, beside the WebCrypto primitives they are made of, measured in the same page.

import * as P from "/web/static/protocol/primitives.js";
import * as M from "/web/static/protocol/message.js";
import * as S from "/web/static/protocol/schedule.js";
import * as TH from "/web/static/protocol/treehead.js";
import * as ID from "/web/static/protocol/identity.js";
import * as C from "/web/static/protocol/commit.js";
import * as G from "/web/static/protocol/group.js";
import { hex, unhex as u } from "/web/static/protocol/encoding.js";

/** Best-of-batches milliseconds per call of an async function. */
async function timeIt(fn, { batches = 5, minMs = 200 } = {}) {
  let n = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < n; i++) await fn();
    if (performance.now() - t >= minMs / 4) break;
    n *= 2;
  }
  let best = Infinity;
  for (let b = 0; b < batches; b++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) await fn();
    best = Math.min(best, (performance.now() - t) / n);
  }
  return best;
}

export async function primitives() {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const sk = await P.SigningKey.fromSeed(seed);
  const msg = crypto.getRandomValues(new Uint8Array(256));
  const sig = await sk.sign(msg);
  const key = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const aad = crypto.getRandomValues(new Uint8Array(100));
  const kib = crypto.getRandomValues(new Uint8Array(1024));
  const ct = await P.aeadSeal(key, nonce, kib, aad);
  const kem = await P.KemKey.fromBytes(crypto.getRandomValues(new Uint8Array(32)));
  const info = crypto.getRandomValues(new Uint8Array(45));
  const wrapPt = crypto.getRandomValues(new Uint8Array(52));
  const sealed = await P.hpkeSeal(kem.public, info, wrapPt);
  return {
    ed25519_sign: await timeIt(() => sk.sign(msg)),
    ed25519_verify_strict: await timeIt(() => P.ed25519Verify(sk.public, msg, sig)),
    aes256gcm_seal_1k: await timeIt(() => P.aeadSeal(key, nonce, kib, aad)),
    aes256gcm_open_1k: await timeIt(() => P.aeadOpen(key, nonce, ct, aad)),
    hkdf_32: await timeIt(() => P.hkdf(key, nonce, info, 32)),
    hmac_sha256: await timeIt(() => P.hmacSha256(key, key)),
    sha256_1k: await timeIt(() => P.sha256(kib)),
    hpke_seal: await timeIt(() => P.hpkeSeal(kem.public, info, wrapPt)),
    hpke_open: await timeIt(() => P.hpkeOpen(kem, info, sealed)),
  };
}

export async function messages(bodySize) {
  const doc = await (await fetch("/crypto/vectors/koppi-message.json")).json();
  const e = doc.epochs.main;
  const dev = (n) => {
    const d = doc.devices[n];
    return { deviceId: u(d.device_id), orgId: u(d.org_id), signingPublic: u(d.signing_public),
      certLogIndex: d.cert_log_index, revokedAtIndex: d.revoked_at_index };
  };
  const epoch = {
    threadId: u(e.thread_id), number: e.number, epochId: u(e.epoch_id), coreHash: u(e.core_hash),
    keys: await S.deriveEpochKeys(u(e.epoch_secret), u(e.core_hash), u(e.thread_id), e.number),
    roster: new Map(e.roster.map((n) => [hex(dev(n).deviceId), dev(n)])),
    coverage: new Set(e.coverage), mayStore: new Set(e.may_store), treeSize: e.tree_size,
  };
  const alice = await P.SigningKey.fromSeed(u(doc.sender_seeds.alice));
  const body = crypto.getRandomValues(new Uint8Array(bodySize));
  const label = new M.StorageLabel([], "consent");
  let counter = 0;
  const seal = () => M.seal(epoch, alice, {
    counter: counter++, messageId: crypto.getRandomValues(new Uint8Array(16)), timestampMs: 0,
    reuseGuard: crypto.getRandomValues(new Uint8Array(4)), label, contentType: "text/plain", body,
    treeSize: 10, treeHeadHash: new Uint8Array(32),
  });
  const sample = await seal();
  return { seal: await timeIt(seal), open: await timeIt(() => M.open(epoch, sample)) };
}

/** A 40-device rekey: the committer's propose (fresh secret, 40 HPKE wraps, tag, signature,
 * self-check) on a thread set up from a deployment Python built. */
export async function rekey(cfg) {
  const clock = { nowMs: () => cfg.now_ms };
  const config = await TH.LogConfig.create(u(cfg.log_public), cfg.witness_publics.map(u), cfg.quorum);
  const trust = new ID.TrustStore(u(cfg.root_public), new TH.LogView(config, clock));
  await trust.log.update(TH.CosignedTreeHead.decode(u(cfg.sync.tree_head)), []);
  for (const x of cfg.sync.entries) await trust.add(x.kind, u(x.data), x.index, x.proof.map(u));
  const packageKeys = new Map();
  for (const [h, k] of Object.entries(cfg.me.package_keys)) packageKeys.set(h, await P.KemKey.fromBytes(u(k)));
  const me = { deviceId: u(cfg.me.device_id), signing: await P.SigningKey.fromSeed(u(cfg.me.signing_seed)),
    certKem: await P.KemKey.fromBytes(u(cfg.me.cert_kem_private)), packageKeys };
  const state = new G.ThreadState(await C.decodeGenesis(u(cfg.genesis)), me);
  const now = Math.floor(cfg.now_ms / 1000);
  const add = cfg.members.map((m) => ({ device: trust.device(u(m.device_id)), keyPackage: u(m.key_package) }));
  const first = await state.propose(trust, { add, evidence: u(cfg.evidence), now });
  await state.apply(first, 1, trust, { now });
  const propose = async () => {
    await state.propose(trust, { now });
    state.pending = null;
  };
  return { devices: add.length, propose: await timeIt(propose, { batches: 3, minMs: 300 }) };
}
