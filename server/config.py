"""Server configuration: a TOML file, then `KOPPI_*` environment variables, then flags (flags win).

One frozen `Config`; every key is documented in README.md ("Configuration"). Environment variable
names are the key in upper case with a `KOPPI_` prefix (`database_url` -> `KOPPI_DATABASE_URL`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./koppi-data/koppi.sqlite3"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = ""  # empty: in-process fan-out (one server process)
    max_frame_bytes: int = 256 * 1024  # largest websocket frame accepted
    max_body_bytes: int = 192 * 1024  # largest decoded message body accepted
    max_http_body_bytes: int = 1024 * 1024
    session_lifetime_s: int = 12 * 3600
    token_lifetime_s: int = 90 * 24 * 3600
    login_attempts: int = 5  # per username and per address, refilled over login_window_s
    login_window_s: int = 300
    ws_rate: float = 50.0  # frames per second per connection, sustained
    ws_burst: int = 200
    secure_cookies: bool = False  # set true behind TLS
    log_format: str = "console"  # console | json
    commit_batch_max: int = 512  # most envelopes one group commit takes
    log_key_file: str = ""  # the transparency log's sealed signing key (`koppi log init`)
    log_head_interval_s: int = 300  # a new signed tree head at least this often
    audit_checkpoint_s: int = 60  # the audit chain's head goes to the log this often, if it moved
    audit_delivery_flush_s: float = 5.0  # delivered ranges go to the audit trail this often
    retention_days: int = 90  # a closed thread's messages are purged this long after closing
    max_message_age_days: int = 3650  # and no message is kept longer than this, closed or not
    purge_interval_s: int = 3600  # how often the purge job looks
    audit_retention_days: int = 3650  # audit events and disclosure records are kept this long
    log_witness_keys: str = ""  # witnesses' Ed25519 public keys (hex, comma-separated)
    root_public_key: str = ""  # the deployment root's public key (hex), pinned by browser pages
    log_quorum: int = 0  # cosignatures of log_witness_keys the browser pages require on a head
    consent_warning_days: int = 7  # the app warns when the consent in force ends this soon

    def __post_init__(self) -> None:
        if self.audit_delivery_flush_s <= 0:
            raise ConfigError("audit_delivery_flush_s: a number of seconds above 0")
        if self.audit_retention_days < 1:
            raise ConfigError("audit_retention_days: at least one day")
        if self.consent_warning_days < 0:
            raise ConfigError("consent_warning_days: 0 (no warning) or more days")
        try:
            witnesses = self.witness_keys()
        except ValueError:
            raise ConfigError("log_witness_keys: comma-separated hex Ed25519 public keys") from None
        try:
            self.root_public()
        except ValueError:
            raise ConfigError(
                "root_public_key: 64 hex digits (`koppi root init` prints it)"
            ) from None
        if not 0 <= self.log_quorum <= len(witnesses):
            raise ConfigError("log_quorum: between 0 and the number of log_witness_keys")

    def root_public(self) -> bytes | None:
        """The root key browser pages pin (None: not configured, so they cannot check trust)."""
        if not self.root_public_key.strip():
            return None
        public = bytes.fromhex(self.root_public_key.strip())
        if len(public) != 32:
            raise ValueError("the root public key is 32 bytes")
        return public

    def witness_keys(self) -> dict[bytes, bytes]:
        """The configured witnesses by key id (SHA-256 of the public key)."""
        import hashlib

        out = {}
        for item in self.log_witness_keys.split(","):
            if item.strip():
                public = bytes.fromhex(item.strip())
                if len(public) != 32:
                    raise ValueError("a witness key is 32 bytes")
                out[hashlib.sha256(public).digest()] = public
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    kind = type(getattr(Config(), name))
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            if kind is bool:
                lowered = value.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return kind(value)
        except ValueError:
            raise ConfigError(f"{name}: cannot read {value!r} as {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"{name}: expected {kind.__name__}, got {type(value).__name__}")


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge file < environment < overrides (flags); unknown keys are errors, not ignored."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from None
        section = data.get("koppi", data)
        for key, value in section.items():
            if key not in _FIELDS:
                raise ConfigError(f"unknown config key {key!r} in {path}")
            values[key] = _coerce(key, value)
    environ = os.environ if env is None else env
    for key in _FIELDS:
        raw = environ.get(f"KOPPI_{key.upper()}")
        if raw is not None:
            values[key] = _coerce(key, raw)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(key, value)
    if values.get("log_format", "console") not in {"console", "json"}:
        raise ConfigError("log_format must be 'console' or 'json'")
    return Config(**values)
