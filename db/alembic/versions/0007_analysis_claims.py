"""analyses.claim_id: the claim (the attempt) an analysis was recorded under

Revision ID: 9c3e5a7b1d20
Revises: 6b7c8d9e0f1a
Create Date: 2026-12-06 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "9c3e5a7b1d20"
down_revision: str | None = "6b7c8d9e0f1a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_id", sa.Uuid(), nullable=True))
    # An analysis recorded before this is taken as its task's current claim's, so it is replaced
    # only on request, as before; one whose task has no claim now belongs to no attempt still running.
    op.execute("UPDATE analyses SET claim_id = (SELECT tasks.claim_id FROM tasks WHERE tasks.id = analyses.task_id)")


def downgrade() -> None:
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_column("claim_id")
