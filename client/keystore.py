"""A Python client's local key store: one sealed key file (docs/protocol.md §8) on disk.

It holds the device's private keys, which never leave it, and beside them what the client pins
and must not be talked out of: the server it enrolled with, the deployment's root key, the
transparency log's key, the witnesses it requires and their quorum. Sealed with the keys (the
file is authenticated as a whole), a pin cannot be changed without the passphrase either.

Names in the file: `device/signing` (Ed25519 seed), `device/kem` (X25519 private key),
`pin/server` (UTF-8 URL), `pin/root`, `pin/log` (32-byte public keys), `pin/quorum` (one byte),
`pin/witness/<n>` (32-byte public keys), `thread/<uuid>` (a `ThreadState.snapshot()`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crypto.clock import Clock, Rng
from crypto.errors import LocalProtocolError
from crypto.identity import DeviceSecrets
from crypto.keyfile import (
    MEMLIMIT_MODERATE,
    OPSLIMIT_MODERATE,
    open_keyfile,
    read_header,
    seal_keyfile,
)
from crypto.primitives import KemKey, SigningKey, check_ed25519_public
from crypto.treehead import LogConfig, LogView


class KeyStoreError(LocalProtocolError):
    """The key file is missing, unreadable, or not what it should hold."""

    default_code = "koppi.key_file"


@dataclass(frozen=True)
class Pins:
    """What the client trusts without asking the server."""

    server: str
    root_public: bytes
    log_public: bytes
    witnesses: tuple[bytes, ...] = ()
    quorum: int = 0

    def log_view(self, clock: Clock) -> LogView:
        """No witnesses pinned: the log's own signature only (a test or a first deployment)."""
        if not self.witnesses:
            check_ed25519_public(self.log_public)
            return LogView(LogConfig(self.log_public, {}, 0), clock)
        config = LogConfig.create(self.log_public, self.witnesses, quorum=self.quorum)
        return LogView(config, clock)


class KeyStore:
    """The opened key file; `save()` seals it again and replaces the file atomically (0600)."""

    def __init__(
        self,
        path: Path,
        passphrase: str,
        secrets: Mapping[str, bytes],
        rng: Rng,
        *,
        opslimit: int = OPSLIMIT_MODERATE,
        memlimit: int = MEMLIMIT_MODERATE,
    ) -> None:
        self.path = path
        self._passphrase = passphrase
        self._secrets = dict(secrets)
        self._rng = rng
        self._limits = (opslimit, memlimit)

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r}, names={sorted(self._secrets)})"

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        pins: Pins,
        rng: Rng,
        *,
        opslimit: int = OPSLIMIT_MODERATE,
        memlimit: int = MEMLIMIT_MODERATE,
    ) -> KeyStore:
        """New device keys, generated here, sealed with `pins` into a new file (never over an
        existing one: that would throw away a device's keys)."""
        if path.exists():
            raise KeyStoreError(f"{path} exists; refusing to replace a device's keys")
        secrets: dict[str, bytes] = {
            "device/signing": SigningKey.generate(rng).seed_bytes(),
            "device/kem": KemKey.generate(rng).private_bytes(),
            "pin/server": pins.server.encode(),
            "pin/root": pins.root_public,
            "pin/log": pins.log_public,
            "pin/quorum": bytes([pins.quorum]),
        }
        for n, witness in enumerate(pins.witnesses):
            secrets[f"pin/witness/{n}"] = witness
        store = cls(path, passphrase, secrets, rng, opslimit=opslimit, memlimit=memlimit)
        store.save(create=True)
        return store

    @classmethod
    def open(cls, path: Path, passphrase: str, rng: Rng) -> KeyStore:
        try:
            sealed = path.read_bytes()
        except OSError as e:
            raise KeyStoreError(f"cannot read {path}: {e.strerror}") from None
        secrets = open_keyfile(sealed, passphrase)  # koppi.auth_failed, and nothing more
        header = read_header(sealed)
        store = cls(path, passphrase, secrets, rng, opslimit=header.opslimit,
                    memlimit=header.memlimit)  # fmt: skip
        store.device()  # fail now, not halfway through a run
        store.pins()
        return store

    def device(self) -> DeviceSecrets:
        try:
            signing = SigningKey.from_seed(self._secrets["device/signing"])
            kem = KemKey.from_bytes(self._secrets["device/kem"])
        except KeyError:
            raise KeyStoreError(f"{self.path} holds no device keys") from None
        return DeviceSecrets(signing, kem)

    def pins(self) -> Pins:
        try:
            witnesses: Sequence[bytes] = tuple(
                self._secrets[f"pin/witness/{n}"]
                for n in range(sum(1 for k in self._secrets if k.startswith("pin/witness/")))
            )
            return Pins(
                self._secrets["pin/server"].decode(),
                self._secrets["pin/root"],
                self._secrets["pin/log"],
                tuple(witnesses),
                self._secrets["pin/quorum"][0],
            )
        except (KeyError, IndexError, UnicodeDecodeError):
            raise KeyStoreError(f"{self.path} holds no complete pins") from None

    def snapshot(self, thread: uuid.UUID) -> bytes | None:
        return self._secrets.get(f"thread/{thread}")

    def put_snapshot(self, thread: uuid.UUID, snapshot: bytes) -> None:
        """Keep a thread's snapshot (its epoch secrets): call `save()` to make it durable."""
        self._secrets[f"thread/{thread}"] = snapshot

    def save(self, *, create: bool = False) -> None:
        """Seal and write atomically: a temporary file beside it, fsync, rename."""
        opslimit, memlimit = self._limits
        blob = seal_keyfile(self._secrets, self._passphrase, self._rng, opslimit=opslimit,
                            memlimit=memlimit)  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            if create:
                os.link(tmp, self.path)  # fails if someone created it meanwhile
                tmp.unlink()
            else:
                os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
