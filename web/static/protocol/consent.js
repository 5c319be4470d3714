// Consent records (docs/protocol.md §6), mirroring crypto/consent.py. So far: a covered
// organisation.

import { Decoder, Encoder } from "./encoding.js";

export class CoveredOrganisation {
  constructor(orgId, mayStore, processingBasis, roles = []) {
    this.orgId = orgId;
    this.mayStore = mayStore;
    this.processingBasis = processingBasis;
    this.roles = roles;
  }

  encode() {
    const enc = new TextEncoder();
    return new Encoder("koppi/v1/consent-org").bytes(this.orgId)
      .list(this.roles.map((r) => enc.encode(r))).boolean(this.mayStore)
      .text(this.processingBasis).finish();
  }

  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/consent-org");
    const orgId = dec.bytes({ length: 16 });
    const roles = dec.list({ maxItems: 16, itemMaxLen: 64 }).map((r) => new TextDecoder().decode(r));
    const org = new CoveredOrganisation(orgId, dec.boolean(), dec.text({ maxLen: 64 }), roles);
    dec.finish();
    return org;
  }
}
