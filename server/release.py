"""The browser code as a logged release (outline section 7, docs/protocol.md §11 "Web release").

At start the server hashes every file it serves under `/static/` into a `WebManifest`, and, when
the log runs, appends the manifest's hash to the transparency log unless the newest logged release
is this one. Monitors fetch `/api/release`, check that the manifest is the logged one and that
every served file matches it, so a server that quietly serves other code is seen.

Pages load the same release from a versioned path, `/static/<tag>/...` (the tag is the start of
the manifest's hash, so a new release is a new URL and the files can be cached as immutable),
and pin every file with Subresource Integrity: the entry module and stylesheet by their
`integrity` attribute, every module by the import map's `integrity` section. The digests are the
manifest's own SHA-256, so what the browser enforces is exactly what the log holds.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from crypto.logentries import WebManifest
from crypto.primitives import sha256
from server.services.translog import TransparencyLog

TAG_HEX = 32  # the versioned path's tag: the first 128 bits of the manifest's hash, in hex


@dataclass
class Release:
    """What this server serves under `/static/`, and where the log holds it (None: no log)."""

    manifest: WebManifest
    log_index: int | None = None
    manifest_sha256: bytes = field(init=False)
    import_map: str = field(init=False)

    def __post_init__(self) -> None:
        self.manifest_sha256 = sha256(self.manifest.encode())
        self.import_map = _import_map(self)

    @property
    def tag(self) -> str:
        return self.manifest_sha256.hex()[:TAG_HEX]

    @property
    def prefix(self) -> str:
        """Where this release's files are served, cacheable for good."""
        return f"/static/{self.tag}/"

    def url(self, path: str) -> str:
        """The versioned URL of one file of the release (refused if the release has no such
        file: a page that names a missing module is a bug to see at once, not a broken page)."""
        if path not in self.manifest.files:
            raise KeyError(f"{path} is not in the web release")
        return self.prefix + path

    def integrity(self, path: str) -> str:
        """The SRI value of one file: its SHA-256 in the manifest."""
        return "sha256-" + base64.b64encode(self.manifest.files[path]).decode()

    @property
    def import_map_hash(self) -> str:
        """The CSP source that lets the page's one inline script, the import map, run."""
        return "'sha256-" + base64.b64encode(sha256(self.import_map.encode())).decode() + "'"


def _import_map(release: Release) -> str:
    """Every module of the release under its versioned URL with its integrity. Modules import
    each other as `/static/x.js` or `./x.js`: the first prefix sends the former to this release,
    the second (longer, so it wins) leaves URLs already in the release alone."""
    data = {
        "imports": {"/static/": release.prefix, release.prefix: release.prefix},
        "integrity": {
            release.prefix + path: release.integrity(path)
            for path in release.manifest.files
            if path.endswith(".js")
        },
    }
    # Inside <script>, "<" could end the element early; no file name holds one, but be exact.
    return json.dumps(data, separators=(",", ":"), sort_keys=True).replace("<", "\\u003c")


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
