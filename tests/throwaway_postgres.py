"""A throwaway PostgreSQL cluster in a temporary folder, listening on loopback only.

Used by the test suite and the benchmarks; nothing in the app depends on it.
"""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.cli import free_port


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    if configured := os.environ.get("POSTGRES_BINDIR"):
        return Path(configured)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    raise PostgresUnavailable("no PostgreSQL server binaries found (initdb, postgres)")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


class PostgresCluster:
    """One initialised cluster whose server can be stopped and started again on the same port."""

    def __init__(self, workdir: Path, **server_settings: str) -> None:
        self.bindir = find_bindir()
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: hand the folder to the postgres user.
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root but runuser is missing")
            shutil.chown(workdir, "postgres", "postgres")
            os.chmod(workdir, 0o700)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.server = PostgresServer(host="127.0.0.1", port=free_port(), user="postgres")
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.server.port),
            "unix_socket_directories": str(workdir),
            # A test cluster that is thrown away needs no durability.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            **server_settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def initialise(self) -> None:
        try:
            subprocess.run(
                [*self.as_postgres, str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                 "-A", "trust", "-E", "UTF8", "--no-sync"],
                check=True, capture_output=True,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresUnavailable(f"initdb failed: {error.stderr.decode()[-2000:]}") from error

    def start(self) -> None:
        args = [f"-c{key}={value}" for key, value in self.settings.items()]
        with open(self.workdir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [*self.as_postgres, str(self.bindir / "postgres"), "-D", str(self.datadir), *args],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not self.is_ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise PostgresUnavailable(
                    "PostgreSQL did not start: " + (self.workdir / "server.log").read_text()[-2000:]
                )
            time.sleep(0.1)

    def is_ready(self) -> bool:
        ready = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", self.server.host, "-p", str(self.server.port), "-U", "postgres"],
            capture_output=True,
        )
        return ready.returncode == 0

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended, as when a database server goes away."""
        if self.process is None:
            return
        subprocess.run(
            [*self.as_postgres, str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast",
             "-w", "-t", "20"],
            capture_output=True,
        )
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def postgres_cluster(**server_settings: str) -> Iterator[PostgresCluster]:
    """A started cluster, removed with its folder afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="auditgraph-pg-"))
    try:
        cluster = PostgresCluster(workdir, **server_settings)
        cluster.initialise()
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres(**server_settings: str) -> Iterator[PostgresServer]:
    with postgres_cluster(**server_settings) as cluster:
        yield cluster.server
