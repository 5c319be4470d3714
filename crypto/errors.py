"""The error hierarchy of the protocol core (docs/protocol.md, "Errors").

Two roots, as in h11: `LocalProtocolError` means the caller misused the API, and
`RemoteProtocolError` means the bytes or the peer broke the protocol. Every error carries a stable,
machine-readable `code` (``koppi.<name>``) and a human message that never contains key material or
plaintext. Every failed tag, signature or MAC raises `AuthFailed`, whose single code says nothing
about which check failed: an attacker learns nothing from it (cf. cryptography's `InvalidTag`).
"""

from __future__ import annotations

from typing import ClassVar


class KoppiError(Exception):
    """Base of every error the core raises; `code` is stable, `message` is for people."""

    default_code: ClassVar[str] = "koppi.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class LocalProtocolError(KoppiError):
    """The caller used the API wrongly (wrong state, bad argument); the peer did nothing wrong."""

    default_code = "koppi.local_misuse"


class RemoteProtocolError(KoppiError):
    """Received bytes or a peer's action violate the protocol."""

    default_code = "koppi.protocol_violation"


class AuthFailed(RemoteProtocolError):
    """A signature, AEAD tag, HPKE open or MAC did not verify.

    Deliberately uninformative: the cause may be tampering, a wrong key, a wrong nonce or wrong
    associated data, and the error does not say which.
    """

    default_code = "koppi.auth_failed"

    def __init__(self, message: str = "authentication failed") -> None:
        super().__init__(message)
