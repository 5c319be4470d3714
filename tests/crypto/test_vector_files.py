"""Every checked-in vector file reproduces from its generator (docs/protocol.md §9).

`python -m crypto.vectors.generate --check` writes nothing; it fails if any generated file differs
from what its generator produces now, so a change to the code that alters a vector cannot go
unnoticed, and a vector is never regenerated silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.vectors import generate
from tests.crypto.vectors import VECTOR_DIR, load

ROOT = Path(__file__).resolve().parents[2]


def test_generate_check_reproduces_every_checked_in_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crypto.vectors.generate", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_generated_file_is_checked_in_and_loads() -> None:
    for name in generate.collect():
        assert (VECTOR_DIR / name).exists(), f"{name} is generated but not checked in"
        vf = load(name)
        assert vf.doc["generated_by"].startswith("crypto/vectors/gen_")


def test_every_json_file_names_its_provenance_and_loads() -> None:
    names = sorted(p.name for p in VECTOR_DIR.glob("*.json"))
    assert names
    for name in names:
        load(name)  # raises on a missing source/description/cases or a bad error code
        json.loads((VECTOR_DIR / name).read_text(encoding="utf-8"))


def test_check_detects_a_changed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: one altered byte in a copy of the files makes it fail."""
    copy = tmp_path / "vectors"
    shutil.copytree(VECTOR_DIR, copy)
    victim = sorted(generate.collect())[0]
    (copy / victim).write_text((copy / victim).read_text().replace('"cases"', '"cases" ', 1))
    monkeypatch.setattr(generate, "HERE", copy)
    assert generate.main(["--check"]) == 1
