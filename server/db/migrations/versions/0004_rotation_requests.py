"""an organisation's pending key rotation request (its half, waiting for the root)

Revision ID: 0004_rotation_requests
Revises: 0003_devices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_rotation_requests"
down_revision: str | None = "0003_devices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("rotation_request", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("rotation_requested_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("rotation_requested_by")
        batch.drop_column("rotation_request")
