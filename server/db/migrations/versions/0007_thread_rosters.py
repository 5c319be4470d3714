"""each thread's current roster (from its head commit), and the re-key fence

Revision ID: 0007_thread_rosters
Revises: 0006_commits
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_thread_rosters"
down_revision: str | None = "0006_commits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "thread_roster",
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_thread_roster_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("thread_id", "device_id", name=op.f("pk_thread_roster")),
    )
    op.create_index(
        op.f("ix_thread_roster_device_id"), "thread_roster", ["device_id"], unique=False
    )
    with op.batch_alter_table("threads") as batch:
        batch.add_column(
            sa.Column("rekey_due", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("rekey_due")
    op.drop_index(op.f("ix_thread_roster_device_id"), table_name="thread_roster")
    op.drop_table("thread_roster")
