"""task_events.position: an event's place in the whole log, in commit order

Revision ID: 7d2f3b9e41a0
Revises: cc301cf8f465
Create Date: 2026-12-01 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "7d2f3b9e41a0"
down_revision: str | None = "cc301cf8f465"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
    # Events written before positions existed are numbered in the order they were written.
    op.execute(
        "UPDATE task_events SET position = numbered.position FROM ("
        " SELECT id, row_number() OVER (ORDER BY created_at, task_id, sequence) AS position FROM task_events"
        ") AS numbered WHERE task_events.id = numbered.id"
    )
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_task_events_position"), ["position"])


def downgrade() -> None:
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_task_events_position"), type_="unique")
        batch_op.drop_column("position")
