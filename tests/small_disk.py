"""A tiny filesystem of its own (a tmpfs), so a test can fill a disk for real rather than pretend.

Mounting needs root with CAP_SYS_ADMIN, which the suite has where it runs its
own PostgreSQL; elsewhere the tests that need one skip, saying why, except under
CI=true, where they fail.
"""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class SmallDiskUnavailable(RuntimeError):
    pass


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "1m") mounted at `path` for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        raise SmallDiskUnavailable(f"cannot mount a tmpfs: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextmanager
def small_filesystem_or_skip(path: Path, size: str) -> Iterator[Path]:
    try:
        with small_filesystem(path, size) as mounted:
            yield mounted
    except SmallDiskUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"tests of a full disk must run under CI: {error}")
        pytest.skip(str(error))
