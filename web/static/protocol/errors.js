// The error hierarchy of the protocol core, mirroring crypto/errors.py (docs/protocol.md §10).
// Every error carries a stable machine-readable `code`; messages never contain key material.

export class KoppiError extends Error {
  constructor(message, code) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = "KoppiError";
  }
}

/** The caller used the API wrongly; the peer did nothing wrong. */
export class LocalProtocolError extends KoppiError {
  constructor(message, code = "koppi.local_misuse") {
    super(message, code);
  }
}

/** Received bytes or a peer's action violate the protocol. */
export class RemoteProtocolError extends KoppiError {
  constructor(message, code = "koppi.protocol_violation") {
    super(message, code);
  }
}

/** A signature, AEAD tag, HPKE open or MAC did not verify; deliberately says nothing more. */
export class AuthFailed extends RemoteProtocolError {
  constructor() {
    super("authentication failed", "koppi.auth_failed");
  }
}

export class DecodeError extends RemoteProtocolError {
  constructor(message) {
    super(message, "koppi.decode");
  }
}

export class WeakKey extends RemoteProtocolError {
  constructor(message) {
    super(message, "koppi.weak_key");
  }
}
