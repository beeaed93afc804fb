"""Statistics on the trigrams of task filenames (PostgreSQL), so a filename search asks the trigram index
for its rare trigrams only (db/filename_search.py)

Revision ID: 7c2d9e4f1a85
Revises: 3f8a1c6e2d47
Create Date: 2026-12-06 19:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c2d9e4f1a85"
down_revision: str | None = "3f8a1c6e2d47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATISTICS = "st_tasks_filename_trigrams"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Kept by every ANALYZE (autovacuum's included): how many names hold each common trigram.
    op.execute(f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} ON (show_trgm(original_filename)) FROM tasks")
    # A sample of the table, as autovacuum would take (under a second at a million tasks), so that the
    # first searches after the upgrade already know; it takes no lock that blocks reads or writes.
    op.execute("ANALYZE tasks")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
