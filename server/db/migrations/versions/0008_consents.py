"""the consent registry: every signed version of every consent, as recorded

Revision ID: 0008_consents
Revises: 0007_thread_rosters
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_consents"
down_revision: str | None = "0007_thread_rosters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("record_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("consent_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_consents_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("record_hash", name=op.f("pk_consents")),
        sa.UniqueConstraint("consent_id", "version", name=op.f("uq_consents_consent_id")),
    )
    op.create_index(op.f("ix_consents_thread_id"), "consents", ["thread_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_consents_thread_id"), table_name="consents")
    op.drop_table("consents")
