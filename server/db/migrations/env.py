"""Alembic environment: migrations always run on a connection handed in by server.db.migrate."""

from alembic import context

from server.db import tables  # noqa: F401  (registers the tables on the metadata)
from server.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `koppi db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
