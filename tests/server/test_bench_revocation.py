"""The revocation bench runs end to end on a tiny scale (its figures are for `python -m
bench.revocation`; this only keeps it from rotting)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_revocation_bench_runs_and_checks_the_fence() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.revocation", "--threads", "2", "--trials", "3",
         "--rate", "50"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "cut-off    n=3" in out and "refused with koppi.removal_due" in out
