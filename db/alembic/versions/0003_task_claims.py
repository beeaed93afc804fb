"""tasks.claim_id, claimed_by, attempts, lease_expires_at: a claim is a lease

Revision ID: 61e069a4908c
Revises: 7d2f3b9e41a0
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "61e069a4908c"
down_revision: str | None = "7d2f3b9e41a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_tasks_claimed_by"), ["claimed_by"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_claimed_by_users"), "users", ["claimed_by"], ["id"], ondelete="SET NULL"
        )
    # A task being processed before claims existed has no claim its worker could name: its lease
    # ends now, so the service puts it back in the queue at once.
    op.execute(
        "UPDATE tasks SET attempts = 1, lease_expires_at = CURRENT_TIMESTAMP WHERE status = 'PROCESSING'"
    )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tasks_claimed_by_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tasks_claimed_by"))
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("claim_id")
