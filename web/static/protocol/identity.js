// Identity and trust (docs/protocol.md §3), mirroring crypto/identity.py: certificates, key
// packages, DeviceLinks and revocations, and the TrustStore a client builds from the log.
// A verified device: { deviceId, userId, orgId, roles: Set, signingPublic, kemPublic, certHash,
//                      certLogIndex, revokedAtIndex, notAfter }

import { Decoder, Encoder, equalBytes, hashFields, hex, sha256 } from "./encoding.js";
import { RemoteProtocolError } from "./errors.js";
import { checkEd25519Public, checkX25519Public, ed25519Verify } from "./primitives.js";
import { keyId } from "./treehead.js";
import { ConsentBook, ConsentRecord, verifyConsent } from "./consent.js";

export const ROLES = new Set(["professional", "consent-recorder", "org-admin", "keeper"]);
export const KEY_PACKAGE_MAX_LIFETIME = 7 * 24 * 3600;
const REVOCATION_REASONS = new Set(["lost", "compromised", "left-organisation", "replaced", "other"]);

export class IdentityError extends RemoteProtocolError {}
const fail = (message, code = "koppi.identity") => new IdentityError(message, code);

const sigMessage = (label, core) => new Encoder(label).bytes(core).finish();

export const deviceIdOf = (signingPublic) => hashFields("koppi/v1/device-id", signingPublic);

function outer(data, label, maxCore) {
  const dec = new Decoder(data, label);
  return { dec, core: dec.bytes({ maxLen: maxCore }) };
}

export function decodeOrgCert(data) {
  const { dec: o, core } = outer(data, "koppi/v1/org-cert-signed", 4096);
  const rootSig = o.bytes({ length: 64 });
  const prevSig = o.bytes({ maxLen: 64 });
  o.finish();
  const d = new Decoder(core, "koppi/v1/org-cert");
  const cert = {
    core, rootSig, prevSig, orgId: d.bytes({ length: 16 }), name: d.text({ maxLen: 256 }),
    businessId: d.text({ maxLen: 64 }), orgPublic: d.bytes({ length: 32 }), generation: d.u32(),
    prevPublic: d.bytes({ maxLen: 32 }), issuedAt: d.u64n(),
  };
  d.finish();
  if ((cert.generation === 0) !== (cert.prevPublic.length === 0 && prevSig.length === 0)) {
    throw fail("a rotation names its previous key and is signed by it", "koppi.bad_rotation");
  }
  if (cert.generation > 0 && (cert.prevPublic.length !== 32 || prevSig.length !== 64)) {
    throw fail("malformed rotation", "koppi.bad_rotation");
  }
  return cert;
}

export async function decodeDeviceCert(data) {
  const { dec: o, core } = outer(data, "koppi/v1/device-cert-signed", 4096);
  const orgSig = o.bytes({ length: 64 });
  o.finish();
  const d = new Decoder(core, "koppi/v1/device-cert");
  const cert = {
    core, orgSig, orgId: d.bytes({ length: 16 }), userId: d.bytes({ length: 16 }),
    deviceId: d.bytes({ length: 32 }), signingPublic: d.bytes({ length: 32 }),
    kemPublic: d.bytes({ length: 32 }),
  };
  let roles;
  try {
    roles = d.list({ maxItems: 16, itemMaxLen: 64 }).map((r) => new TextDecoder("utf-8", { fatal: true }).decode(r));
  } catch (e) {
    if (e.code) throw e;
    throw fail("role is not UTF-8", "koppi.bad_role");
  }
  const unknown = roles.filter((r) => !ROLES.has(r));
  if (unknown.length) throw fail(`unknown role(s) ${unknown}`, "koppi.bad_role");
  cert.roles = new Set(roles);
  cert.notBefore = d.u64n();
  cert.notAfter = d.u64n();
  cert.orgKeyId = d.bytes({ length: 32 });
  d.finish();
  if (!equalBytes(await deviceIdOf(cert.signingPublic), cert.deviceId)) {
    throw fail("device id is not the hash of its signing key");
  }
  cert.certHash = await sha256(data);
  return cert;
}

export function decodeRevocation(data) {
  const { dec: o, core } = outer(data, "koppi/v1/revocation-signed", 512);
  const signerKeyId = o.bytes({ length: 32 });
  const signature = o.bytes({ length: 64 });
  o.finish();
  const d = new Decoder(core, "koppi/v1/revocation");
  const rev = {
    core, signerKeyId, signature, subjectKind: d.u8(), orgId: d.bytes({ length: 16 }),
    subject: d.bytes({ length: 32 }), reason: d.text({ maxLen: 64 }), issuedAt: d.u64n(),
  };
  d.finish();
  if (rev.subjectKind !== 1 && rev.subjectKind !== 2) throw fail("unknown revocation subject", "koppi.bad_revocation");
  if (!REVOCATION_REASONS.has(rev.reason)) throw fail("unknown revocation reason", "koppi.bad_revocation");
  return rev;
}

export function decodeDeviceLink(data) {
  const { dec: o, core } = outer(data, "koppi/v1/device-link-signed", 512);
  const signature = o.bytes({ length: 64 });
  o.finish();
  const d = new Decoder(core, "koppi/v1/device-link");
  const link = {
    core, signature, userId: d.bytes({ length: 16 }), existingDeviceId: d.bytes({ length: 32 }),
    newDeviceId: d.bytes({ length: 32 }), newCertHash: d.bytes({ length: 32 }), issuedAt: d.u64n(),
  };
  d.finish();
  return link;
}

export function decodeKeyPackage(data) {
  const { dec: o, core } = outer(data, "koppi/v1/key-package-signed", 512);
  const signature = o.bytes({ length: 64 });
  o.finish();
  const d = new Decoder(core, "koppi/v1/key-package");
  const kp = {
    core, signature, deviceId: d.bytes({ length: 32 }), kemPublic: d.bytes({ length: 32 }),
    notBefore: d.u64n(), notAfter: d.u64n(), certHash: d.bytes({ length: 32 }),
  };
  d.finish();
  return kp;
}

export function validAt(device, treeSize) {
  if (treeSize <= device.certLogIndex) return false;
  return device.revokedAtIndex === null || device.revokedAtIndex === undefined || treeSize <= device.revokedAtIndex;
}

/** What one client has verified, each entry accepted only with its chain and inclusion. */
export class TrustStore {
  constructor(rootPublic, log) {
    this.rootPublic = checkEd25519Public(rootPublic);
    this.log = log;
    this.consents = new ConsentBook();
    this.orgKeys = new Map(); // key id hex -> {cert, logIndex, retiredAtIndex}
    this.devices = new Map(); // device id hex -> newest verified device
    this.certs = new Map(); // cert hash hex -> verified device
    this.links = new Map();
  }

  device(deviceId, certHash = null) {
    if (certHash === null) return this.devices.get(hex(deviceId)) ?? null;
    const d = this.certs.get(hex(certHash));
    return d && equalBytes(d.deviceId, deviceId) ? d : null;
  }
  now() {
    return Math.floor(this.log.effectiveNowMs() / 1000);
  }
  consent(coreHash) {
    return this.consents.cover(coreHash, this.now());
  }
  latestConsent(consentId) {
    return this.consents.latestCover(consentId, this.now());
  }
  treeSize() {
    return this.log.freshHead().head.size;
  }
  treeHeadHash() {
    return this.log.freshHead().head.hash();
  }

  async addOrgCert(entry, index, proof) {
    const cert = decodeOrgCert(entry);
    await ed25519Verify(this.rootPublic, sigMessage("koppi/v1/org-cert-sig/root", cert.core), cert.rootSig);
    checkEd25519Public(cert.orgPublic);
    let previous = null;
    if (cert.generation > 0) {
      previous = this.orgKeys.get(hex(await keyId(cert.prevPublic)));
      if (!previous || !equalBytes(previous.cert.orgId, cert.orgId) ||
          previous.cert.generation + 1 !== cert.generation) {
        throw fail("rotation from an unknown key", "koppi.bad_rotation");
      }
      await ed25519Verify(cert.prevPublic, sigMessage("koppi/v1/org-cert-sig/prev", cert.core), cert.prevSig);
      if (previous.logIndex >= index) throw fail("rotation logged before its previous key", "koppi.bad_rotation");
    }
    await this.log.verifyInclusion(entry, index, proof, { requireFresh: false });
    if (previous && previous.retiredAtIndex === null) previous.retiredAtIndex = index;
    const id = hex(await keyId(cert.orgPublic));
    if (!this.orgKeys.has(id)) this.orgKeys.set(id, { cert, logIndex: index, retiredAtIndex: null });
    return cert;
  }

  async addDeviceCert(entry, index, proof) {
    const cert = await decodeDeviceCert(entry);
    const orgKey = this.orgKeys.get(hex(cert.orgKeyId));
    if (!orgKey || !equalBytes(orgKey.cert.orgId, cert.orgId)) {
      throw fail("certificate from an unknown organisation key", "koppi.unknown_org_key");
    }
    await ed25519Verify(orgKey.cert.orgPublic, sigMessage("koppi/v1/device-cert-sig", cert.core), cert.orgSig);
    checkX25519Public(cert.kemPublic);
    if (orgKey.retiredAtIndex !== null && index >= orgKey.retiredAtIndex) {
      throw fail("certificate logged after its organisation key was retired", "koppi.cert_after_retirement");
    }
    if (index <= orgKey.logIndex) throw fail("certificate logged before its organisation key", "koppi.unknown_org_key");
    await this.log.verifyInclusion(entry, index, proof, { requireFresh: false });
    let device = {
      deviceId: cert.deviceId, userId: cert.userId, orgId: cert.orgId, roles: cert.roles,
      signingPublic: cert.signingPublic, kemPublic: cert.kemPublic, certHash: cert.certHash,
      certLogIndex: index, revokedAtIndex: null, notAfter: cert.notAfter,
    };
    const known = this.devices.get(hex(cert.deviceId));
    if (known) {
      if (!equalBytes(known.userId, device.userId) || !equalBytes(known.orgId, device.orgId) ||
          !equalBytes(known.kemPublic, device.kemPublic)) {
        throw fail("a certificate for known device keys names another holder", "koppi.conflicting_certificate");
      }
      device = { ...device, revokedAtIndex: known.revokedAtIndex };
    }
    this.devices.set(hex(device.deviceId), device);
    this.certs.set(hex(device.certHash), device);
    return device;
  }

  async addRevocation(entry, index, proof) {
    const rev = decodeRevocation(entry);
    const msg = sigMessage("koppi/v1/revocation-sig", rev.core);
    if (rev.subjectKind === 2) {
      await ed25519Verify(this.rootPublic, msg, rev.signature);
      const target = this.orgKeys.get(hex(rev.subject));
      if (!target || !equalBytes(target.cert.orgId, rev.orgId)) {
        throw fail("revocation of an unknown organisation key", "koppi.unknown_org_key");
      }
    } else {
      const signer = this.orgKeys.get(hex(rev.signerKeyId));
      if (!signer || !equalBytes(signer.cert.orgId, rev.orgId)) {
        throw fail("device revoked by a key of another organisation", "koppi.bad_revocation");
      }
      await ed25519Verify(signer.cert.orgPublic, msg, rev.signature);
      const device = this.devices.get(hex(rev.subject));
      if (!device || !equalBytes(device.orgId, rev.orgId)) throw fail("revocation of an unknown device", "koppi.unknown_device");
    }
    await this.log.verifyInclusion(entry, index, proof, { requireFresh: true });
    if (rev.subjectKind === 2) {
      const target = this.orgKeys.get(hex(rev.subject));
      if (target.retiredAtIndex === null || index < target.retiredAtIndex) target.retiredAtIndex = index;
    } else {
      const id = hex(rev.subject);
      const device = this.devices.get(id);
      if (device.revokedAtIndex === null || index < device.revokedAtIndex) {
        this.devices.set(id, { ...device, revokedAtIndex: index });
        for (const [h, c] of this.certs) {
          if (hex(c.deviceId) === id) this.certs.set(h, { ...c, revokedAtIndex: index });
        }
      }
    }
    return rev;
  }

  async addDeviceLink(entry, index, proof) {
    const link = decodeDeviceLink(entry);
    const existing = this.devices.get(hex(link.existingDeviceId));
    const added = this.devices.get(hex(link.newDeviceId));
    if (!existing || !added) throw fail("link between unknown devices", "koppi.unknown_device");
    if (!equalBytes(existing.userId, link.userId) || !equalBytes(added.userId, link.userId)) {
      throw fail("a link joins two devices of one user", "koppi.bad_device_link");
    }
    if (!equalBytes(added.certHash, link.newCertHash) || !validAt(existing, index)) {
      throw fail("link from a revoked device or to another certificate", "koppi.bad_device_link");
    }
    await ed25519Verify(existing.signingPublic, sigMessage("koppi/v1/device-link-sig", link.core), link.signature);
    await this.log.verifyInclusion(entry, index, proof, { requireFresh: false });
    this.links.set(hex(link.newDeviceId), link);
    return link;
  }

  async addConsent(recordBytes, index, proof) {
    const record = ConsentRecord.decode(recordBytes);
    const recorder = this.devices.get(hex(record.core.recorder));
    if (!recorder) throw fail("consent recorded by an unknown device", "koppi.unknown_device");
    await verifyConsent(recordBytes, recorder, this.treeSize());
    await this.log.verifyInclusion(await record.logEntry(), index, proof, { requireFresh: true });
    await this.consents.accept(record);
    return record;
  }

  /** Add a log entry by kind (org, device, revocation, link, consent). */
  add(kind, data, index, proof) {
    const adders = {
      org: () => this.addOrgCert(data, index, proof),
      device: () => this.addDeviceCert(data, index, proof),
      revocation: () => this.addRevocation(data, index, proof),
      link: () => this.addDeviceLink(data, index, proof),
      consent: () => this.addConsent(data, index, proof),
    };
    return adders[kind]();
  }
}

export { hashFields };

// --- issuing (an organisation admin's browser) ---------------------------------------------

/** A DeviceCert signed with the organisation key (a SigningKey held in this browser). */
export async function issueDeviceCert(orgKey, { orgId, userId, signingPublic, kemPublic, roles, notBefore, notAfter }) {
  const enc = new TextEncoder();
  const core = new Encoder("koppi/v1/device-cert").bytes(orgId).bytes(userId)
    .bytes(await deviceIdOf(signingPublic)).bytes(checkEd25519Public(signingPublic))
    .bytes(checkX25519Public(kemPublic)).list(roles.map((r) => enc.encode(r))).u64(notBefore)
    .u64(notAfter).bytes(await keyId(orgKey.public)).finish();
  const sig = await orgKey.sign(sigMessage("koppi/v1/device-cert-sig", core));
  return new Encoder("koppi/v1/device-cert-signed").bytes(core).bytes(sig).finish();
}

/** A Revocation of a device, signed with the organisation key. */
export async function issueDeviceRevocation(orgKey, { orgId, deviceId, reason, issuedAt }) {
  const core = new Encoder("koppi/v1/revocation").u8(1).bytes(orgId).bytes(deviceId).text(reason)
    .u64(issuedAt).finish();
  const sig = await orgKey.sign(sigMessage("koppi/v1/revocation-sig", core));
  return new Encoder("koppi/v1/revocation-signed").bytes(core).bytes(await keyId(orgKey.public))
    .bytes(sig).finish();
}

/** The organisation's half of a key rotation (docs/protocol.md §3): the next certificate's core,
 * signed by the current organisation key; the operator adds the root's signature. */
export async function issueRotationRequest(currentKey, currentCertBytes, newPublic, issuedAt) {
  const cur = decodeOrgCert(currentCertBytes);
  if (hex(cur.orgPublic) !== hex(currentKey.public)) {
    throw new Error("the key in this browser is not the organisation's current key");
  }
  const core = new Encoder("koppi/v1/org-cert").bytes(cur.orgId).text(cur.name).text(cur.businessId)
    .bytes(checkEd25519Public(newPublic)).u32(cur.generation + 1).bytes(cur.orgPublic).u64(issuedAt)
    .finish();
  const prevSig = await currentKey.sign(sigMessage("koppi/v1/org-cert-sig/prev", core));
  return new Encoder("koppi/v1/org-rotation-request").bytes(core).bytes(prevSig).finish();
}
