"""admission decisions in the audit trail: the scheduler decides without a user (no actor), and
a decision's subject names thread, user, consent version and reason

Revision ID: 0009_admission_audit
Revises: 0008_consents
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_admission_audit"
down_revision: str | None = "0008_consents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("actor", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column(
            "subject", existing_type=sa.String(length=100), type_=sa.String(length=200)
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column(
            "subject", existing_type=sa.String(length=200), type_=sa.String(length=100)
        )
        batch_op.alter_column("actor", existing_type=sa.Uuid(), nullable=False)
