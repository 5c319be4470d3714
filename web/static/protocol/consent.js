// Consent records (docs/protocol.md §6), mirroring crypto/consent.py rule for rule.

import { Decoder, Encoder, compareBytes, equalBytes, hashFields, hex, sha256 } from "./encoding.js";
import { RemoteProtocolError } from "./errors.js";
import { ed25519Verify } from "./primitives.js";
// A cycle (identity.js reads consents too) that is safe: deviceIdOf is used only when called.
import { deviceIdOf } from "./identity.js";

export const PURPOSES = new Set(["rehabilitation-planning", "income-support-coordination",
  "employment-services", "youth-guidance", "discharge-planning"]);
export const DATA_CATEGORIES = new Set(["health", "social-welfare", "income", "employment",
  "education", "housing", "family"]);
export const PROCESSING_BASES = new Set(["statute-social-welfare", "statute-health-care",
  "statute-kela", "statute-employment", "statute-education", "consent"]);
const DISCLOSURE_BASES = new Set(["consent", "statute"]);
const HOW_OBTAINED = new Set(["written", "electronic", "oral-recorded"]);
const CORE_STATUSES = new Set(["active", "revoked"]);
const REVOCATION_CHANNELS = new Set(["in-person", "phone", "written", "electronic"]);
export const RECORDER_ROLE = "consent-recorder";
const STATUTE_MAX = 200;
const JUSTIFICATION_MAX = 2000;
const CORE_MAX = 256 * 1024;

export class ConsentError extends RemoteProtocolError {}

const lenient = new TextDecoder();
const require = (ok, message) => {
  if (!ok) throw new ConsentError(message, "koppi.bad_consent");
};
// Python's whitespace (str.isspace), which is not quite JavaScript's: "whitespace alone counts
// as empty" must mean the same in both.
const PY_SPACE = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;
const blank = (text) => PY_SPACE.test(text);

export class CoveredOrganisation {
  constructor(orgId, mayStore, processingBasis, roles = [], statute = "", justification = "",
    fullHistory = false) {
    Object.assign(this, {
      orgId, mayStore, processingBasis, roles: [...new Set(roles)].sort(), statute, justification,
      fullHistory,
    });
    require(blank(statute) === blank(justification),
      "a statutory basis, and only one, comes with a written justification");
  }
  encode() {
    const enc = new TextEncoder();
    return new Encoder("koppi/v1/consent-org").bytes(this.orgId)
      .list(this.roles.map((r) => enc.encode(r))).boolean(this.mayStore)
      .text(this.processingBasis).text(this.statute).text(this.justification)
      .boolean(this.fullHistory).finish();
  }
  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/consent-org");
    const orgId = dec.bytes({ length: 16 });
    const roles = dec.list({ maxItems: 16, itemMaxLen: 64 }).map((r) => lenient.decode(r));
    const mayStore = dec.boolean();
    const processingBasis = dec.text({ maxLen: 64 });
    const statute = dec.text({ maxLen: STATUTE_MAX });
    const justification = dec.text({ maxLen: JUSTIFICATION_MAX });
    const fullHistory = dec.boolean();
    dec.finish();
    return new CoveredOrganisation(orgId, mayStore, processingBasis, roles, statute, justification,
      fullHistory);
  }
}

export class ConsentCore {
  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/consent-core");
    if (dec.u16() !== 1) throw new ConsentError("unknown consent format", "koppi.unsupported_version");
    const c = new ConsentCore();
    c.consentId = dec.bytes({ length: 16 });
    c.version = dec.u32();
    c.prevVersionHash = dec.bytes({ maxLen: 32 });
    c.clientRef = dec.bytes({ length: 32 });
    c.purpose = dec.text({ maxLen: 64 });
    c.organisations = dec.list({ maxItems: 64, itemMaxLen: 4096 }).map(CoveredOrganisation.decode);
    c.dataCategories = dec.list({ maxItems: 32, itemMaxLen: 64 }).map((x) => lenient.decode(x));
    c.validFrom = dec.u64n();
    c.validUntil = dec.u64n();
    c.status = dec.text({ maxLen: 16 });
    c.disclosureBasis = dec.text({ maxLen: 32 });
    c.howObtained = dec.text({ maxLen: 32 });
    c.infoTextHash = dec.bytes({ length: 32 });
    c.detailsHash = dec.bytes({ maxLen: 32 });
    c.recorder = dec.bytes({ length: 32 });
    c.recordedAt = dec.u64n();
    c.revocationChannel = dec.text({ maxLen: 32 });
    dec.finish();
    c.raw = data;
    c.validate();
    return c;
  }

  validate() {
    require(this.version >= 1, "versions start at 1");
    require((this.version === 1) === (this.prevVersionHash.length === 0), "version 1 has no predecessor");
    require(PURPOSES.has(this.purpose), "purpose outside the code list");
    require(this.dataCategories.every((d) => DATA_CATEGORIES.has(d)), "data category outside the code list");
    require(this.validFrom < this.validUntil, "empty validity window");
    require(CORE_STATUSES.has(this.status), "status is active or revoked");
    require(DISCLOSURE_BASES.has(this.disclosureBasis), "unknown disclosure basis");
    require(HOW_OBTAINED.has(this.howObtained), "unknown way of obtaining");
    require((this.status === "revoked") === REVOCATION_CHANNELS.has(this.revocationChannel) &&
      (this.status === "revoked" || this.revocationChannel === ""),
      "a revocation, and only a revocation, names its channel");
    const ids = this.organisations.map((o) => hex(o.orgId));
    require(ids.length > 0 && new Set(ids).size === ids.length, "covered organisations unique, >= 1");
    require(this.organisations.every((o) => PROCESSING_BASES.has(o.processingBasis)),
      "processing basis outside the code list");
    require(this.disclosureBasis === "consent" || this.organisations.every((o) => o.statute),
      "a statutory disclosure basis names the provision for every organisation");
  }

  encode() {
    return this.raw;
  }

  coreHash() {
    return hashFields("koppi/v1/consent-core-hash", this.raw);
  }

  covered() {
    return new Set(this.organisations.map((o) => hex(o.orgId)));
  }
}

/**
 * Build a core from its fields (the names of `ConsentCore`'s decoded properties), encoded as
 * docs/protocol.md §6 lays it out. As in the reference, the organisations and the data categories
 * are sets: the encoding sorts them bytewise whatever the caller's order, and a category given
 * twice counts once. Decoding the bytes back applies every rule of the reference.
 */
export function buildConsentCore(f) {
  const utf8 = new TextEncoder();
  const raw = new Encoder("koppi/v1/consent-core").u16(1).bytes(f.consentId).u32(f.version)
    .bytes(f.prevVersionHash).bytes(f.clientRef).text(f.purpose)
    .list(f.organisations.map((o) => o.encode()))
    .list([...new Set(f.dataCategories)].map((c) => utf8.encode(c)))
    .u64(f.validFrom).u64(f.validUntil).text(f.status).text(f.disclosureBasis).text(f.howObtained)
    .bytes(f.infoTextHash).bytes(f.detailsHash).bytes(f.recorder).u64(f.recordedAt)
    .text(f.revocationChannel)
    .finish();
  return ConsentCore.decode(raw);
}

/**
 * Sign a core as the recorder device: `signer` is a `SigningKey`, or this browser's device keys
 * as `KeyStore.deviceKeys()` returns them (`{signing, signingPublic}`, the private key never
 * leaving the browser). The core must name that device (`koppi.wrong_recorder`), as in Python.
 */
export async function signConsent(core, signer) {
  const publicKey = signer.signingPublic ?? signer.public;
  if (!equalBytes(await deviceIdOf(publicKey), core.recorder)) {
    throw new ConsentError("the core names another recorder device", "koppi.wrong_recorder");
  }
  const message = new Encoder("koppi/v1/consent-sig").bytes(core.raw).finish();
  const signature = signer.signing
    ? new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signer.signing, message))
    : await signer.sign(message);
  return ConsentRecord.decode(
    new Encoder("koppi/v1/consent-record").bytes(core.raw).bytes(signature).finish());
}

/**
 * The core of the version after the record `previous`, with `changes` (field names as in
 * `buildConsentCore`); the caller signs it. Python: `next_version`.
 */
export async function nextVersion(previous, { recordedAt, recorder, ...changes }) {
  const { raw, ...fields } = previous.core;
  return buildConsentCore({
    ...fields, version: previous.core.version + 1, prevVersionHash: await previous.recordHash(),
    recordedAt, recorder, ...changes,
  });
}

export class ConsentRecord {
  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/consent-record");
    const r = new ConsentRecord();
    r.core = ConsentCore.decode(dec.bytes({ maxLen: CORE_MAX }));
    r.signature = dec.bytes({ length: 64 });
    dec.finish();
    r.raw = data;
    return r;
  }
  recordHash() {
    return sha256(this.raw);
  }
  async logEntry() {
    return new Encoder("koppi/v1/log-consent").bytes(await this.recordHash()).finish();
  }
}

/** Decode and verify one version against its recorder, valid at the client's fresh head. */
export async function verifyConsent(data, recorder, treeSize) {
  const record = ConsentRecord.decode(data);
  if (!equalBytes(record.core.recorder, recorder.deviceId)) {
    throw new ConsentError("signed by another device than the core names", "koppi.wrong_recorder");
  }
  if (!recorder.roles.has(RECORDER_ROLE)) {
    throw new ConsentError("recorder lacks the consent-recorder role", "koppi.not_consent_recorder");
  }
  const valid = treeSize > recorder.certLogIndex &&
    (recorder.revokedAtIndex === null || recorder.revokedAtIndex === undefined || treeSize <= recorder.revokedAtIndex);
  if (!valid) throw new ConsentError("recorder's certificate is revoked", "koppi.recorder_revoked");
  await ed25519Verify(recorder.signingPublic,
    new Encoder("koppi/v1/consent-sig").bytes(record.core.raw).finish(), record.signature);
  return record;
}

export function checkEvidence(cover, clientRef, purpose) {
  if (!equalBytes(cover.clientRef, clientRef) || cover.purpose !== purpose) {
    throw new ConsentError("consent of another client or purpose", "koppi.consent_mismatch");
  }
}

/** The versions of each consent a client has verified, highest last. */
export class ConsentBook {
  constructor() {
    this.versions = new Map();
    this.byCoreHash = new Map();
  }

  async accept(record) {
    const core = record.core;
    const id = hex(core.consentId);
    const chain = this.versions.get(id) ?? [];
    if (chain.length) {
      const last = chain[chain.length - 1];
      if (core.version <= last.core.version) {
        if (equalBytes(chain[core.version - 1].raw, record.raw)) return;
        throw new ConsentError("a lower or conflicting consent version", "koppi.consent_rollback");
      }
      if (last.core.status === "revoked") throw new ConsentError("a revoked consent is final", "koppi.consent_final");
      if (core.version !== last.core.version + 1 ||
          !equalBytes(core.prevVersionHash, await last.recordHash()) ||
          !equalBytes(core.clientRef, last.core.clientRef) || core.purpose !== last.core.purpose) {
        throw new ConsentError("version does not extend the known chain", "koppi.consent_chain");
      }
    } else if (core.version !== 1) {
      throw new ConsentError("a consent's history starts at version 1", "koppi.consent_chain");
    }
    chain.push(record);
    this.versions.set(id, chain);
    this.byCoreHash.set(hex(await core.coreHash()), record);
  }

  latest(consentId) {
    const chain = this.versions.get(hex(consentId));
    return chain ? chain[chain.length - 1] : null;
  }

  state(consentId, now) {
    const last = this.latest(consentId);
    if (!last) throw new Error("unknown consent");
    if (last.core.status === "revoked") return "revoked";
    return last.core.validFrom <= now && now < last.core.validUntil ? "active" : "expired";
  }

  cover(coreHash, now) {
    const record = this.byCoreHash.get(hex(coreHash));
    if (!record) return null;
    const core = record.core;
    const inForce = this.latest(core.consentId) === record && core.status === "active" &&
      core.validFrom <= now && now < core.validUntil;
    // Per organisation that names roles; an organisation naming none admits every role.
    const roles = new Map(core.organisations.filter((o) => o.roles.length)
      .map((o) => [hex(o.orgId), new Set(o.roles)]));
    return {
      consentId: core.consentId, version: core.version, coreHash, clientRef: core.clientRef,
      purpose: core.purpose, active: inForce, organisations: core.covered(), roles,
      mayStore: new Set(core.organisations.filter((o) => o.mayStore).map((o) => hex(o.orgId))),
      fullHistory: new Set(core.organisations.filter((o) => o.fullHistory).map((o) => hex(o.orgId))),
    };
  }

  /** The admission rule for the version `coreHash` (null: it admits the professional). */
  async refusal(coreHash, orgId, roles, now) {
    const record = this.byCoreHash.get(hex(coreHash));
    if (!record) return "koppi.no_consent";
    return admissionRefusal(record, this.latest(record.core.consentId), orgId, roles, now);
  }

  latestCover(consentId, now) {
    const latest = this.latest(consentId);
    return latest ? this.cover(this.hashOf(latest), now) : null;
  }

  hashOf(record) {
    for (const [h, r] of this.byCoreHash) if (r === record) return Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
    return null;
  }

  history(consentId, now) {
    const chain = this.versions.get(hex(consentId)) ?? [];
    const events = [];
    chain.forEach((r, i) => {
      const at = r.core.recordedAt;
      if (i) events.push({ kind: "superseded", version: chain[i - 1].core.version, at });
      events.push({ kind: r.core.status === "revoked" ? "revoked" : "given", version: r.core.version, at });
    });
    const last = chain[chain.length - 1];
    if (last && last.core.status === "active" && now >= last.core.validUntil) {
      events.push({ kind: "expired", version: last.core.version, at: last.core.validUntil });
    }
    return events;
  }
}

/**
 * The admission rule (DESIGN §3) for one version: why `record` does not admit a professional of
 * `orgId` holding `roles` (a Set) at `now`, or null when it does. `latest` is the newest known
 * version of the same consent; only it can admit anyone.
 */
export function admissionRefusal(record, latest, orgId, roles, now) {
  if (latest.core.status === "revoked") return "koppi.consent_revoked";
  if (latest !== record && !equalBytes(latest.raw, record.raw)) return "koppi.consent_superseded";
  const core = record.core;
  if (now < core.validFrom) return "koppi.consent_not_yet_valid";
  if (now >= core.validUntil) return "koppi.consent_expired";
  const org = core.organisations.find((o) => equalBytes(o.orgId, orgId));
  if (!org) return "koppi.not_covered";
  if (org.roles.length && !org.roles.some((r) => roles.has(r))) return "koppi.role_not_covered";
  return null;
}

/** A cover includes a device regardless of whether the version is still in force. */
export function includes(cover, device) {
  if (!cover.organisations.has(hex(device.orgId))) return false;
  const named = cover.roles.get(hex(device.orgId));
  return !named || [...device.roles].some((r) => named.has(r));
}

export function covers(cover, device) {
  return cover.active && includes(cover, device);
}

export { compareBytes };
