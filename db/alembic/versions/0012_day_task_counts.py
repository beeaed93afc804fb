"""Everyone's tasks per day in a few rows a day (day_task_counts), filled from owner_day_figures

Revision ID: 9b4e7d2c5a13
Revises: 7c2d9e4f1a85
Create Date: 2026-12-06 22:05:00.000000

A WORKER's or an ADMIN's tasks per day summed one owner_day_figures row per owner and day: at a
million tasks, twelve thousand rows a month. The new table holds at most DAY_SHARDS rows a day.
It is filled from owner_day_figures (one row per owner and day, never the tasks themselves: about
two seconds at a million tasks) while that table is locked against writes (SHARE on PostgreSQL,
SQLite's migrations hold its write lock throughout), so no task created meanwhile is missed;
reads go on.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "9b4e7d2c5a13"
down_revision: str | None = "7c2d9e4f1a85"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("queued", "processing", "completed", "failed", "cancelled")


def upgrade() -> None:
    op.create_table(
        "day_task_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("tasks", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("day", "shard", name=op.f("pk_day_task_counts")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE owner_day_figures IN SHARE MODE")
    tasks = " + ".join(STATUSES)
    op.execute(f"INSERT INTO day_task_counts (day, shard, tasks) SELECT day, 0, sum({tasks}) "
               f"FROM owner_day_figures GROUP BY day HAVING sum({tasks}) <> 0")


def downgrade() -> None:
    op.drop_table("day_task_counts")
