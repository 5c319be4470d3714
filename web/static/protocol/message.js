// Messages (docs/protocol.md §7), mirroring crypto/message.py. So far: the storage label.

import { Decoder, Encoder } from "./encoding.js";
import { RemoteProtocolError } from "./errors.js";

export const BASIS_CODES = new Set(["consent", "legal-obligation", "public-task", "vital-interests"]);
const ORG_ID_LEN = 16;

export class MessageError extends RemoteProtocolError {}

/** Which organisations may store a message's content, and on what basis (a policy tag). */
export class StorageLabel {
  constructor(organisations, basis, retentionDays = 0) {
    if (!BASIS_CODES.has(basis)) {
      throw new MessageError("storage basis outside the fixed list", "koppi.bad_label");
    }
    if (organisations.some((o) => o.length !== ORG_ID_LEN)) {
      throw new MessageError("organisation ids are 16 bytes", "koppi.bad_label");
    }
    if (!(retentionDays >= 0 && retentionDays < 2 ** 32)) {
      throw new MessageError("retention days must fit a u32", "koppi.bad_label");
    }
    this.organisations = organisations;
    this.basis = basis;
    this.retentionDays = retentionDays;
  }

  encode() {
    return new Encoder("koppi/v1/storage-label").list(this.organisations).text(this.basis)
      .u32(this.retentionDays).finish();
  }

  static decode(data) {
    const dec = new Decoder(data, "koppi/v1/storage-label");
    const orgs = dec.list({ maxItems: 1000, itemMaxLen: ORG_ID_LEN });
    const label = new StorageLabel(orgs, dec.text({ maxLen: 64 }), dec.u32());
    dec.finish();
    return label;
  }
}
