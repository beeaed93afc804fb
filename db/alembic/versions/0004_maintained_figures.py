"""Maintained figures, part 1: the counter tables, a task's verdict and score, the owner on each event

Revision ID: 4f1a2b3c4d5e
Revises: 61e069a4908c
Create Date: 2026-12-06 13:34:33.353355

Only new tables and nullable (or defaulted) columns: quick, so the brief lock an ALTER TABLE takes
is soon released. 0005 fills them in a transaction of its own, with readers reading on.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "4f1a2b3c4d5e"
down_revision: str | None = "61e069a4908c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")
VERDICTS = ("APPROVED", "REVIEW", "REJECTED")
SEVERITIES = ("CRITICAL", "MAJOR", "MINOR", "INFO")
COUNTERS = (*STATUSES, *VERDICTS, *SEVERITIES)
FIGURES = (*(name.lower() for name in COUNTERS),
           "compliance_sum", "compliance_count", "confidence_sum", "confidence_count")


def _figure_columns() -> list[sa.Column]:
    columns = [sa.Column(name, sa.Float() if name.endswith("_sum") else sa.BigInteger(), server_default="0",
                         nullable=False) for name in FIGURES]
    return [
        *columns,
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "owner_figures",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        *_figure_columns(),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_owner_figures_owner_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_owner_figures")),
    )
    op.create_table(
        "owner_day_figures",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_figure_columns(),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_owner_day_figures_owner_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", "day", name=op.f("pk_owner_day_figures")),
    )
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_task_events_user_id_users"), "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "verdict",
            sa.Enum(*VERDICTS, name="verdict", native_enum=False, create_constraint=True, length=32),
            nullable=True,
        ))
        batch_op.add_column(sa.Column("compliance_key", sa.Float(), server_default="-1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("compliance_key")
        batch_op.drop_constraint(batch_op.f("ck_tasks_verdict"), type_="check")
        batch_op.drop_column("verdict")
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_task_events_user_id_users"), type_="foreignkey")
        batch_op.drop_column("user_id")
    op.drop_table("owner_day_figures")
    op.drop_table("owner_figures")
