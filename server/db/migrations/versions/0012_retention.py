"""retention: a thread can be closed, and its messages are purged after the retention period

Revision ID: 0012_retention
Revises: 0011_disclosures
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_retention"
down_revision: str | None = "0011_disclosures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("purged_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("envelopes", schema=None) as batch_op:
        batch_op.create_index("ix_envelopes_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("envelopes", schema=None) as batch_op:
        batch_op.drop_index("ix_envelopes_created_at")
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("closed_at")
