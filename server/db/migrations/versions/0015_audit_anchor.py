"""audit_anchor: where the audit chain starts after its oldest events were pruned (a checkpoint
logged in the transparency log)

Revision ID: 0015_audit_anchor
Revises: 0014_audit_thread
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_audit_anchor"
down_revision: str | None = "0014_audit_thread"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchor")),
        sa.UniqueConstraint("last_id", name=op.f("uq_audit_anchor_last_id")),
    )


def downgrade() -> None:
    op.drop_table("audit_anchor")
