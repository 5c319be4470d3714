"""threads carry their head commit; envelopes say whether they are a message or a commit

Revision ID: 0006_commits
Revises: 0005_append_only_log
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_commits"
down_revision: str | None = "0005_append_only_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("head_hash", sa.LargeBinary(length=32), nullable=True))
        batch.add_column(sa.Column("genesis", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("envelopes") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=10), server_default="message", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("envelopes") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("genesis")
        batch.drop_column("head_hash")
        batch.drop_column("epoch")
