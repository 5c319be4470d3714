"""the thread an audit event is about, indexed: what a thread's participants see

Revision ID: 0014_audit_thread
Revises: 0013_label_policy
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_audit_thread"
down_revision: str | None = "0013_label_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

THREAD_ACTIONS = ("admission.", "consent.", "export.", "thread.", "member.", "message.")


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_id", sa.Uuid(), nullable=True))
        batch_op.create_index("ix_audit_events_thread_id", ["thread_id"])
    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("action", sa.String()),
        sa.column("subject", sa.String()),
        sa.column("thread_id", sa.Uuid()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(events.c.id, events.c.action, events.c.subject)).fetchall()
    for row in rows:
        if not row.action.startswith(THREAD_ACTIONS):
            continue
        try:
            thread = uuid.UUID(row.subject.split(" ", 1)[0])
        except ValueError:
            continue
        conn.execute(sa.update(events).where(events.c.id == row.id).values(thread_id=thread))


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_thread_id")
        batch_op.drop_column("thread_id")
