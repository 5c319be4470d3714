"""Log entries that are not signed structures of their own (docs/protocol.md §4 "Log entries").

A commit head lets witnesses see a fork of a thread (two commits for one epoch) without reading the
thread. A web release entry lets anyone compare the browser code a server serves with the release
that was logged (outline section 7): the entry holds the SHA-256 of the release manifest, which
lists every file of `web/static` with its SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crypto.encoding import Decoder, Encoder
from crypto.primitives import sha256

COMMIT_HEAD = "koppi/v1/log-commit-head"
WEB_RELEASE = "koppi/v1/log-web-release"
AUDIT_HEAD = "koppi/v1/log-audit-head"
MANIFEST = "koppi/v1/web-manifest"
MANIFEST_FILE = "koppi/v1/web-manifest-file"


@dataclass(frozen=True, slots=True)
class CommitHead:
    thread_id: bytes
    epoch: int
    commit_hash: bytes

    def encode(self) -> bytes:
        return (
            Encoder(COMMIT_HEAD)
            .bytes(self.thread_id)
            .u64(self.epoch)
            .bytes(self.commit_hash)
            .finish()
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitHead:
        dec = Decoder(data, COMMIT_HEAD)
        head = cls(dec.bytes(length=16), dec.u64(), dec.bytes(length=32))
        dec.finish()
        return head


@dataclass(frozen=True, slots=True)
class WebManifest:
    """A release of the browser code: its version and each file's path and SHA-256."""

    version: str
    files: Mapping[str, bytes]

    def encode(self) -> bytes:
        entries = [
            Encoder(MANIFEST_FILE).text(path).bytes(digest).finish()
            for path, digest in self.files.items()
        ]
        return Encoder(MANIFEST).text(self.version).list(sorted(entries)).finish()

    @classmethod
    def decode(cls, data: bytes) -> WebManifest:
        dec = Decoder(data, MANIFEST)
        version = dec.text(max_len=64)
        files: dict[str, bytes] = {}
        for item in dec.list():
            file = Decoder(item, MANIFEST_FILE)
            path, digest = file.text(max_len=512), file.bytes(length=32)
            file.finish()
            files[path] = digest
        dec.finish()
        return cls(version, files)

    def log_entry(self) -> bytes:
        return WebRelease(self.version, sha256(self.encode())).encode()


@dataclass(frozen=True, slots=True)
class WebRelease:
    version: str
    manifest_sha256: bytes

    def encode(self) -> bytes:
        return Encoder(WEB_RELEASE).text(self.version).bytes(self.manifest_sha256).finish()

    @classmethod
    def decode(cls, data: bytes) -> WebRelease:
        dec = Decoder(data, WEB_RELEASE)
        release = cls(dec.text(max_len=64), dec.bytes(length=32))
        dec.finish()
        return release


@dataclass(frozen=True, slots=True)
class AuditHead:
    """A checkpoint of the audit trail's hash chain: how many events, the last one's id and
    hash. In the log, a chain rewritten or cut short afterwards no longer matches it."""

    events: int
    last_id: int
    head_hash: bytes

    def encode(self) -> bytes:
        return Encoder(AUDIT_HEAD).u64(self.events).u64(self.last_id).bytes(self.head_hash).finish()

    @classmethod
    def decode(cls, data: bytes) -> AuditHead:
        dec = Decoder(data, AUDIT_HEAD)
        head = cls(dec.u64(), dec.u64(), dec.bytes(length=32))
        dec.finish()
        return head
