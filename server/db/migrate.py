"""Alembic driven from code: `koppi db upgrade`, and the check keeping `serve` off an old schema.

The migration scripts ship inside the package (`server/db/migrations`), so an installed wheel can
upgrade its database without a checkout or an alembic.ini.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("server.db") / "migrations"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on `engine`, in one transaction where the backend can."""

    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


class SchemaOutdated(RuntimeError):
    """The database is not at the code's migration head; `koppi db upgrade` fixes it."""


async def require_current_schema(engine: AsyncEngine) -> None:
    current, head = await current_revision(engine), head_revision()
    if current != head:
        state = "not initialised" if current is None else f"at revision {current}"
        raise SchemaOutdated(
            f"the database is {state}, but this Koppi needs revision {head}: "
            "run `koppi db upgrade` first"
        )
