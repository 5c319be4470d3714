"""Shared fixtures: databases (SQLite always; PostgreSQL when reachable, and always in CI)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from server.db.engine import make_engine

POSTGRES_URL = os.environ.get(
    "KOPPI_TEST_POSTGRES_URL", "postgresql+asyncpg://root@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("KOPPI_TEST_REQUIRE_SERVICES") == "1"


async def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


def _postgres_available() -> bool:
    try:
        asyncio.run(_reset_postgres(POSTGRES_URL))
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_ok() -> bool:
    ok = _postgres_available()
    if not ok and REQUIRE_SERVICES:
        pytest.fail(
            f"PostgreSQL is required (KOPPI_TEST_REQUIRE_SERVICES=1) but {POSTGRES_URL} fails"
        )
    return ok


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL tests reset the `test` database's schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'koppi.sqlite3'}"
        return
    if not request.getfixturevalue("postgres_ok"):
        pytest.skip("PostgreSQL not reachable")
    asyncio.run(_reset_postgres(POSTGRES_URL))
    yield POSTGRES_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'koppi.sqlite3'}"
