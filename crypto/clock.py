"""Injected time and randomness: the core never reads the wall clock or the OS RNG itself.

Tests pass `FakeClock` and `SeededRng` so that expiry, key-package lifetimes and every random
choice are reproducible (STYLE habit 3). Production code passes `SystemClock` and `OsRng`.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Seconds since the Unix epoch, UTC."""
        ...

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC (timestamps, rate limits, latency)."""
        ...


class Rng(Protocol):
    def random_bytes(self, n: int) -> bytes: ...


class SystemClock:
    def now(self) -> int:
        return int(time.time())

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class OsRng:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: int = 1_790_000_000) -> None:
        self._now_ms = start * 1000

    def now(self) -> int:
        return self._now_ms // 1000

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now_ms += round(seconds * 1000)


class SeededRng:
    """Deterministic bytes for tests and vector generation (SHA-256 in counter mode).

    Never use outside tests: its output is predictable by design.
    """

    def __init__(self, seed: bytes | str) -> None:
        self._seed = seed.encode() if isinstance(seed, str) else seed
        self._counter = 0

    def random_bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            block = self._counter.to_bytes(8, "big")
            out += hashlib.sha256(self._seed + block).digest()
            self._counter += 1
        return bytes(out[:n])
