"""the transparency log's leaves are append-only in the database itself

A trigger refuses every UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) of `log_entries`, so no
code path of the server, however buggy, rewrites history: a leaf, once stored, stays as clients
and witnesses hashed it. (An operator with database superuser rights can drop the trigger; the
witnesses' cosigned heads are what catch that.)

Revision ID: 0005_append_only_log
Revises: 0004_rotation_requests
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_append_only_log"
down_revision: str | None = "0004_rotation_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "log_entries is append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER log_entries_no_{event.lower()} BEFORE {event} ON log_entries "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION koppi_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
    )
    op.execute(
        "CREATE TRIGGER log_entries_no_rewrite BEFORE UPDATE OR DELETE ON log_entries "
        "FOR EACH ROW EXECUTE FUNCTION koppi_append_only()"
    )
    op.execute(
        "CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries "
        "FOR EACH STATEMENT EXECUTE FUNCTION koppi_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER log_entries_no_update")
        op.execute("DROP TRIGGER log_entries_no_delete")
        return
    op.execute("DROP TRIGGER log_entries_no_truncate ON log_entries")
    op.execute("DROP TRIGGER log_entries_no_rewrite ON log_entries")
    op.execute("DROP FUNCTION koppi_append_only()")
