"""An index of each name's trigrams tagged with its owner (PostgreSQL), so that one owner's filename search
looks up that owner's names only (db/filename_search.py)

Revision ID: 5e1c8a3f7b20
Revises: 9b4e7d2c5a13
Create Date: 2026-12-07 00:20:00.000000

The trigram index holds everyone's names: for the owner of half the tasks, a search found every
owner's names that hold its rare trigrams and dropped the others' at the table, one visit each (at a
million tasks, 1,090 of 2,054). Here each key is the hash of an owner and a trigram, so a key's
posting list holds one owner's names only. The index is built CONCURRENTLY (about 40 seconds at a
million tasks): reads and writes go on while it is built.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5e1c8a3f7b20"
down_revision: str | None = "9b4e7d2c5a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_tasks_owner_filename_trigrams"

# Bodies in the SQL standard's form are bound when the function is made, not when it runs, so the
# index's expression finds show_trgm (pg_trgm's schema) under any search_path, a restore's included.
OWNER_TRIGRAM_KEYS = """
    CREATE OR REPLACE FUNCTION owner_trigram_keys(owner uuid, trigrams text[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ARRAY(SELECT hashtext(owner::text || trigram) FROM unnest(trigrams) AS trigram)
"""
OWNER_FILENAME_KEYS = """
    CREATE OR REPLACE FUNCTION owner_filename_keys(owner uuid, filename text) RETURNS integer[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN owner_trigram_keys(owner, show_trgm(filename))
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(OWNER_TRIGRAM_KEYS)
    op.execute(OWNER_FILENAME_KEYS)
    with op.get_context().autocommit_block():
        # A concurrent build that was stopped leaves an invalid index behind, which IF NOT EXISTS would keep.
        invalid = op.get_bind().exec_driver_sql(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            f"WHERE c.relname = '{INDEX}' AND c.relnamespace = current_schema()::regnamespace "
            "AND NOT i.indisvalid").first()
        if invalid:
            op.execute(f"DROP INDEX CONCURRENTLY {INDEX}")
        op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} "
                   "ON tasks USING gin (owner_filename_keys(user_id, original_filename))")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute("DROP FUNCTION IF EXISTS owner_filename_keys(uuid, text)")
    op.execute("DROP FUNCTION IF EXISTS owner_trigram_keys(uuid, text[])")
