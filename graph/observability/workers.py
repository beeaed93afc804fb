"""The folder where several workers' metrics meet, made before the workers start.

Kept apart from graph/observability/metrics.py: importing prometheus-client's
metrics with PROMETHEUS_MULTIPROC_DIR set makes files for the importing process,
and the `auditgraph` command that starts the workers records nothing itself.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_by_workers() -> Iterator[Path]:
    """A folder where every worker about to be started writes its metrics (PROMETHEUS_MULTIPROC_DIR).

    One the operator named is emptied of an earlier run's files first; otherwise a
    temporary one is made and removed when the server stops.
    """
    named = os.environ.get(MULTIPROCESS_DIR)
    if named:
        folder = Path(named)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="auditgraph-metrics-") as made:
        os.environ[MULTIPROCESS_DIR] = made
        try:
            yield Path(made)
        finally:
            del os.environ[MULTIPROCESS_DIR]
