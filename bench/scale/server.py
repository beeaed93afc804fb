"""The PostgreSQL the scale databases live in: a cluster kept in bench/.work/scale/, started per run."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.__main__ import POSTGRES_SETTINGS
from tests.throwaway_postgres import PostgresCluster

WORK_DIR = Path(__file__).resolve().parent.parent / ".work" / "scale"
CLUSTER_DIR = WORK_DIR / "postgres"


@contextlib.contextmanager
def kept_cluster() -> Iterator[PostgresCluster]:
    """The cluster of earlier runs, or a new one; stopped (not removed) on the way out."""
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    cluster = PostgresCluster(CLUSTER_DIR, **POSTGRES_SETTINGS)
    if not (cluster.datadir / "PG_VERSION").exists():
        cluster.initialise()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
