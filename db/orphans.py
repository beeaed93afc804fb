"""Stored files no row references (left by a crash between moving a file in and committing its row), and their sweep.

Why the sweep can never remove a file that a commit in flight is about to
reference: a writer moves a file into the store and commits the row naming it
inside one transaction that holds the file's lock from before the move until
the commit (db/storage.store_and_commit; the lock is a PostgreSQL advisory lock
on the file's hash, or SQLite's write lock). The sweep takes the same lock for
each file before it looks for a row naming it, and removes the file while still
holding it. So it either runs before the writer moved the file in (the writer
then moves its own copy in afterwards), or waits until the writer's transaction
has ended: committed, and the row is there to be found; or rolled back, and the
file is an orphan indeed. Nothing depends on clocks, so no grace period is
needed and an orphan is gone at the next start, whatever its age.
"""

import asyncio
import logging
import re
from pathlib import Path

from db.engine import Database
from db.storage import release_files

logger = logging.getLogger("auditgraph.orphans")

# Files swept per transaction: each holds one lock per file until it commits.
SWEEP_BATCH = 100
_FOLDER = re.compile(r"[0-9a-f]{2}")
_NAME = re.compile(r"[0-9a-f]{64}")


def store_folders(upload_dir: Path) -> list[Path]:
    if not upload_dir.is_dir():
        return []
    return sorted(folder for folder in upload_dir.iterdir() if folder.is_dir() and _FOLDER.fullmatch(folder.name))


def stored_files_in(folder: Path) -> list[str]:
    """A store folder's files, as the relative paths rows name them; anything else there is not ours to touch."""
    return sorted(
        f"{folder.name}/{file.name}" for file in folder.iterdir()
        if _NAME.fullmatch(file.name) and file.name.startswith(folder.name) and file.is_file()
    )


async def sweep_store(database: Database, upload_dir: Path) -> int:
    """Remove the stored files no task or artifact references; returns how many.

    One folder listed at a time, so a store of millions of files is never held in memory.
    """
    removed = 0
    for folder in await asyncio.to_thread(store_folders, upload_dir):
        paths = await asyncio.to_thread(stored_files_in, folder)
        for start in range(0, len(paths), SWEEP_BATCH):
            async with database.transaction() as session:
                removed += len(await release_files(session, upload_dir, paths[start:start + SWEEP_BATCH]))
    if removed:
        logger.info("removed %d stored files that no row references", removed)
    return removed
