"""The staging folder: where an upload is written before it joins the store, and the sweep of what crashes left there.

Every staging file is held under an exclusive lock (flock) from the moment it
is created until it is moved into the store or removed; the kernel releases the
lock when its process ends, however it ends (kill -9 included). So a staging
file nobody holds a lock on belongs to no live upload, and the sweep removes
exactly those: it may run at any time, in any number of processes sharing the
folder, without touching an upload in progress.

A file is created and then locked, two steps: a sweep that takes the lock in
between and removes the file leaves its creator holding the lock of a file that
is gone, which the creator notices (the path no longer names its file) and so
starts again with a new file.
"""

import fcntl
import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger("auditgraph.staging")


def staging_dir(data_dir: Path) -> Path:
    return data_dir / "staging"


def create_staging_file(folder: Path) -> tuple[BinaryIO, Path]:
    """A new file in the folder, open for writing and locked until the handle is closed."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        if _still_named(descriptor, name):
            return os.fdopen(descriptor, "wb"), Path(name)
        os.close(descriptor)


def _still_named(descriptor: int, name: str) -> bool:
    try:
        return os.stat(name).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def sweep_staging(folder: Path) -> int:
    """Remove the staging files no live process holds; returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            descriptor = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # moved into the store or removed since the listing
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # an upload in progress
            if _still_named(descriptor, entry.path):
                os.unlink(entry.path)
                removed += 1
        finally:
            os.close(descriptor)
    if removed:
        logger.info("removed %d staging files left by interrupted uploads", removed)
    return removed
