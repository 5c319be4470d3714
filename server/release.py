"""The browser code as a logged release (outline section 7, docs/protocol.md §11 "Web release").

At start the server hashes every file it serves under `/static/` into a `WebManifest`, and, when
the log runs, appends the manifest's hash to the transparency log unless the newest logged release
is this one. Monitors fetch `/api/release`, check that the manifest is the logged one and that
every served file matches it, so a server that quietly serves other code is seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from crypto.logentries import WebManifest
from crypto.primitives import sha256
from server.services.translog import TransparencyLog


@dataclass
class Release:
    """What this server serves under `/static/`, and where the log holds it (None: no log)."""

    manifest: WebManifest
    log_index: int | None = None


def build_manifest(static_dir: Path, release: str | None = None) -> WebManifest:
    files = {
        path.relative_to(static_dir).as_posix(): sha256(path.read_bytes())
        for path in sorted(static_dir.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return WebManifest(release or version("koppi"), files)


async def publish(translog: TransparencyLog, manifest: WebManifest) -> int:
    """The log index of this release, appended now unless it is already the newest release."""
    encoded = manifest.encode()
    newest = await translog.latest("web-release")
    if newest is not None and newest[1] == encoded:
        return newest[0]
    return await translog.append("web-release", manifest.log_entry(), encoded)
