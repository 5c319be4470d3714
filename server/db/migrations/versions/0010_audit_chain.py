"""the audit trail becomes a hash chain: each event holds its predecessor's hash and its own;
events already stored are chained in id order

Revision ID: 0010_audit_chain
Revises: 0009_admission_audit
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.audit import GENESIS, event_hash

revision: str = "0010_audit_chain"
down_revision: str | None = "0009_admission_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.LargeBinary(length=32), nullable=True))
    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("org_id", sa.Uuid()),
        sa.column("actor", sa.Uuid()),
        sa.column("action", sa.String()),
        sa.column("subject", sa.String()),
        sa.column("at", sa.BigInteger()),
        sa.column("prev_hash", sa.LargeBinary()),
        sa.column("hash", sa.LargeBinary()),
    )
    conn = op.get_bind()
    prev = GENESIS
    rows = conn.execute(
        sa.select(events.c.id, events.c.org_id, events.c.actor, events.c.action,
                  events.c.subject, events.c.at).order_by(events.c.id)
    ).all()  # fmt: skip
    for r in rows:
        own = event_hash(r.id, r.org_id, r.actor, r.action, r.subject, r.at, prev)
        conn.execute(events.update().where(events.c.id == r.id).values(prev_hash=prev, hash=own))
        prev = own
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.LargeBinary(length=32), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.LargeBinary(length=32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
