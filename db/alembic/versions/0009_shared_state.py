"""persisted_queries and storage_markers: what every process on every host shares through the database

Revision ID: 8e4a1c7f2b60
Revises: 5b7e2c9d1f30
Create Date: 2026-12-06 16:30:00.000000

New tables only: nothing existing changes, and on SQLite no table is rebuilt.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "8e4a1c7f2b60"
down_revision: str | None = "5b7e2c9d1f30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "persisted_queries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persisted_queries")),
        sa.UniqueConstraint("sha256", name=op.f("uq_persisted_queries_sha256")),
    )
    op.create_table(
        "storage_markers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("folder", sa.String(length=64), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_markers")),
        sa.UniqueConstraint("folder", name=op.f("uq_storage_markers_folder")),
    )


def downgrade() -> None:
    op.drop_table("storage_markers")
    op.drop_table("persisted_queries")
