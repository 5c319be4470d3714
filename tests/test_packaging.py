"""The wheel carries what an installed Koppi needs at run time (STYLE: web/ is package data)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_templates_static_files_migrations_and_vectors(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("koppi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "web/templates/login.html",
        "web/static/login.js",
        "server/db/migrations/env.py",
        "server/db/migrations/versions/0001_initial.py",
        "server/db/migrations/versions/0002_translog.py",
        "server/db/migrations/versions/0003_devices.py",
        "crypto/vectors/rfc8032-ed25519.json",
    ):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
