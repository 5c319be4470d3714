// Genesis and commits: byte layouts (docs/protocol.md §5.1-§5.3), mirroring crypto/commit.py.
// Decoded structures keep their input bytes: decoding is canonical, so hashes use them as-is.

import { Decoder, Encoder, hashFields, hex, sha256 } from "./encoding.js";
import { DecodeError, RemoteProtocolError } from "./errors.js";
import * as S from "./schedule.js";

export const ADD = 1;
export const REMOVE = 2;
export const UPDATE = 3;
export const CAUSE_REASON = "removed-for-cause";
export const REKEY_INTERVAL = 7 * 24 * 3600;
const ADD_REASONS = new Set(["create", "invited", "device-linked", "device-approved", "readmitted"]);
const REMOVE_REASONS = new Set(["left", "consent-revoked", "consent-expired", "consent-narrowed",
  "device-revoked", "cert-expired", "removed-for-cause", "replaced"]);
const UPDATE_REASONS = new Set(["cert-renewed"]);
const MAX_ROSTER = 1000;

export class CommitError extends RemoteProtocolError {}

function checkVersion(version, suite) {
  if (version !== 1 || suite !== 1) throw new CommitError("unsupported version or suite", "koppi.unsupported_version");
}

export async function decodeGenesis(data) {
  const d = new Decoder(data, "koppi/v1/genesis");
  checkVersion(d.u16(), d.u16());
  const g = {
    threadId: d.bytes({ length: 16 }), clientRef: d.bytes({ length: 32 }), purpose: d.text({ maxLen: 64 }),
    historyPolicy: d.text({ maxLen: 32 }), creator: d.bytes({ length: 32 }), createdAt: d.u64n(),
  };
  d.finish();
  if (g.historyPolicy !== "by-consent" && g.historyPolicy !== "none") throw new DecodeError("unknown history policy");
  g.hash = await sha256(data);
  return g;
}

/** Epoch 0's fixed frame (crypto/commit.py `Genesis.encode`): what the thread is for and which
 * device opens it; decode the bytes again for the object with its hash. */
export function encodeGenesis({ threadId, clientRef, purpose, historyPolicy = "by-consent", creator, createdAt }) {
  return new Encoder("koppi/v1/genesis").u16(1).u16(1).bytes(threadId).bytes(clientRef).text(purpose)
    .text(historyPolicy).bytes(creator).u64(createdAt).finish();
}

function decodeRosterEntry(data) {
  const d = new Decoder(data, "koppi/v1/roster-entry");
  const e = { deviceId: d.bytes({ length: 32 }), userId: d.bytes({ length: 16 }), orgId: d.bytes({ length: 16 }),
    certHash: d.bytes({ length: 32 }), kpHash: d.bytes({ maxLen: 32 }) };
  d.finish();
  if (e.kpHash.length !== 0 && e.kpHash.length !== 32) throw new DecodeError("kp_hash is empty or 32 bytes");
  return e;
}

function decodeChange(data) {
  const d = new Decoder(data, "koppi/v1/change");
  const c = { deviceId: d.bytes({ length: 32 }), kind: d.u8(), reason: d.text({ maxLen: 64 }),
    evidence: d.bytes({ maxLen: 32 }), revocationIndex: d.u64n() };
  d.finish();
  const allowed = { 1: ADD_REASONS, 2: REMOVE_REASONS, 3: UPDATE_REASONS }[c.kind];
  if (!allowed || !allowed.has(c.reason)) throw new CommitError("unknown change kind or reason", "koppi.bad_change");
  return c;
}

function decodeGrant(data) {
  const d = new Decoder(data, "koppi/v1/history-grant");
  const g = { deviceId: d.bytes({ length: 32 }), epoch: d.u64n() };
  d.finish();
  return g;
}

export async function decodeCore(data) {
  const d = new Decoder(data, "koppi/v1/commit-core");
  checkVersion(d.u16(), d.u16());
  const core = {
    raw: data, threadId: d.bytes({ length: 16 }), epoch: d.u64n(), prevCommitHash: d.bytes({ length: 32 }),
    roster: d.list({ maxItems: MAX_ROSTER }).map(decodeRosterEntry),
    changes: d.list({ maxItems: MAX_ROSTER }).map(decodeChange),
    coverage: new Set(d.list({ maxItems: MAX_ROSTER, itemMaxLen: 16 }).map(hex)),
    mayStore: new Set(d.list({ maxItems: MAX_ROSTER, itemMaxLen: 16 }).map(hex)),
    evidence: d.bytes({ length: 32 }), committer: d.bytes({ length: 32 }), treeSize: d.u64n(),
    treeHeadHash: d.bytes({ length: 32 }), createdAt: d.u64n(),
    history: d.list({ maxItems: 100000 }).map(decodeGrant),
  };
  d.finish();
  if ([...core.coverage, ...core.mayStore].some((o) => o.length !== 32)) throw new DecodeError("organisation ids are 16 bytes");
  const devices = core.roster.map((e) => hex(e.deviceId));
  if (new Set(devices).size !== devices.length) throw new DecodeError("a device appears twice in the roster");
  const changed = core.changes.map((c) => hex(c.deviceId));
  if (new Set(changed).size !== changed.length) throw new DecodeError("a device has two changes in one commit");
  core.hash = await hashFields("koppi/v1/commit-core", data);
  return core;
}

function decodeWrap(data) {
  const d = new Decoder(data, "koppi/v1/wrap-entry");
  const w = { raw: data, deviceId: d.bytes({ length: 32 }), kpHash: d.bytes({ maxLen: 32 }), sealed: d.bytes({ maxLen: 256 }) };
  d.finish();
  return w;
}

function decodeHistoryWrap(data) {
  const d = new Decoder(data, "koppi/v1/history-wrap");
  const w = { raw: data, deviceId: d.bytes({ length: 32 }), epoch: d.u64n(), sealed: d.bytes({ maxLen: 256 }) };
  d.finish();
  return w;
}

export async function decodeCommit(data) {
  const d = new Decoder(data, "koppi/v1/commit");
  const core = await decodeCore(d.bytes());
  const commit = {
    raw: data, core,
    wraps: d.list({ maxItems: MAX_ROSTER, itemMaxLen: 512 }).map(decodeWrap),
    historyWraps: d.list({ itemMaxLen: 512 }).map(decodeHistoryWrap),
    threadInfoCt: d.bytes({ maxLen: 64 * 1024 + 64 }), confirmationTag: d.bytes({ length: 32 }),
    signature: d.bytes({ length: 64 }),
  };
  d.finish();
  commit.hash = await sha256(data);
  commit.epochId = commit.hash.slice(0, 16);
  return commit;
}

/** encode("koppi/v1/commit-sig", core_hash, H(wraps), H(history wraps), H(thread info), tag) */
export async function signedMessage(commit) {
  const wrapsHash = await sha256(new Encoder("koppi/v1/wraps").list(commit.wraps.map((w) => w.raw)).finish());
  const historyHash = await sha256(new Encoder("koppi/v1/history-wraps")
    .list(commit.historyWraps.map((w) => w.raw)).finish());
  return new Encoder("koppi/v1/commit-sig").bytes(commit.core.hash).bytes(wrapsHash).bytes(historyHash)
    .bytes(await sha256(commit.threadInfoCt)).bytes(commit.confirmationTag).finish();
}

// --- encoding and building (what a committer runs) -----------------------------------------

export function encodeRosterEntry(e) {
  return new Encoder("koppi/v1/roster-entry").bytes(e.deviceId).bytes(e.userId).bytes(e.orgId)
    .bytes(e.certHash).bytes(e.kpHash).finish();
}

export function encodeChange(c) {
  return new Encoder("koppi/v1/change").bytes(c.deviceId).u8(c.kind).text(c.reason)
    .bytes(c.evidence ?? new Uint8Array(0)).u64(c.revocationIndex ?? 0).finish();
}

export function encodeGrant(g) {
  return new Encoder("koppi/v1/history-grant").bytes(g.deviceId).u64(g.epoch).finish();
}

const orgBytes = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));

export function encodeCore(c) {
  return new Encoder("koppi/v1/commit-core").u16(1).u16(1).bytes(c.threadId).u64(c.epoch)
    .bytes(c.prevCommitHash).list(c.roster.map(encodeRosterEntry)).list(c.changes.map(encodeChange))
    .list([...c.coverage].map(orgBytes)).list([...c.mayStore].map(orgBytes)).bytes(c.evidence)
    .bytes(c.committer).u64(c.treeSize).bytes(c.treeHeadHash).u64(c.createdAt)
    .list(c.history.map(encodeGrant)).finish();
}

/** Wrap, tag and sign a core (docs/protocol.md §5.3); returns the commit's bytes.
 * recipients: Map(hex device id -> X25519 public); oldEpochs: Map(epoch -> {commitHash, secret}). */
export async function buildCommit(coreFields, secret, { recipients, oldEpochs, threadInfo, signing }) {
  const coreBytes = encodeCore(coreFields);
  const coreHash = await hashFields("koppi/v1/commit-core", coreBytes);
  const keys = await S.deriveEpochKeys(secret, coreHash, coreFields.threadId, coreFields.epoch);
  const wraps = [];
  for (const e of coreFields.roster) {
    const info = await S.wrapInfo(coreFields.threadId, coreFields.epoch, coreHash, e.deviceId, e.kpHash);
    const sealed = await S.sealSecret(recipients.get(hex(e.deviceId)), info, coreFields.epoch, secret);
    wraps.push(new Encoder("koppi/v1/wrap-entry").bytes(e.deviceId).bytes(e.kpHash).bytes(sealed).finish());
  }
  const kpOf = new Map(coreFields.roster.map((e) => [hex(e.deviceId), e.kpHash]));
  const historyWraps = [];
  for (const g of coreFields.history) {
    const old = oldEpochs.get(g.epoch);
    const info = await S.historyInfo(coreFields.threadId, g.epoch, old.commitHash, g.deviceId,
      kpOf.get(hex(g.deviceId)), coreHash);
    const sealed = await S.sealSecret(recipients.get(hex(g.deviceId)), info, g.epoch, old.secret);
    historyWraps.push(new Encoder("koppi/v1/history-wrap").bytes(g.deviceId).u64(g.epoch).bytes(sealed).finish());
  }
  const infoCt = await S.sealThreadInfo(keys.metadata, coreHash, threadInfo);
  const tag = await S.confirmationTag(keys.confirm, coreHash);
  const message = await signedMessage({
    core: { hash: coreHash }, wraps: wraps.map((raw) => ({ raw })), historyWraps: historyWraps.map((raw) => ({ raw })),
    threadInfoCt: infoCt, confirmationTag: tag,
  });
  const signature = await signing.sign(message);
  return new Encoder("koppi/v1/commit").bytes(coreBytes).list(wraps).list(historyWraps).bytes(infoCt)
    .bytes(tag).bytes(signature).finish();
}
