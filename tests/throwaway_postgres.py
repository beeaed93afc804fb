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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


def _no_restart() -> None:
    raise NotImplementedError("this server cannot be restarted")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    # A fast shutdown (every client disconnected, as in a real restart), then a start on the same port and data.
    restart: Callable[[], None] = field(default=_no_restart, compare=False, repr=False)

    def url(self, database: str, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


@contextlib.contextmanager
def throwaway_postgres(**server_settings: str) -> Iterator[PostgresServer]:
    bindir = find_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="auditgraph-pg-"))
    datadir = workdir / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: hand the folder to the postgres user.
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root but runuser is missing")
        shutil.chown(workdir, "postgres", "postgres")
        os.chmod(workdir, 0o700)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(workdir),
        # A test cluster that is thrown away needs no durability.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "300",
        **server_settings,
    }
    process: subprocess.Popen[bytes] | None = None
    args = [f"-c{key}={value}" for key, value in settings.items()]

    def start() -> subprocess.Popen[bytes]:
        log = open(workdir / "server.log", "ab")
        started = subprocess.Popen(
            [*as_postgres, str(bindir / "postgres"), "-D", str(datadir), *args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return started
            if started.poll() is not None or time.monotonic() > deadline:
                raise PostgresUnavailable(
                    "PostgreSQL did not start: " + (workdir / "server.log").read_text()[-2000:]
                )
            time.sleep(0.1)

    def restart() -> None:
        nonlocal process
        stopped = subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(datadir), "stop", "-m", "fast",
                                  "-w"], capture_output=True)
        if stopped.returncode != 0:
            raise PostgresUnavailable(f"PostgreSQL did not stop: {stopped.stderr.decode()[-2000:]}")
        if process is not None:
            process.wait(timeout=20)
        process = start()

    try:
        subprocess.run(
            [*as_postgres, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
             "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )
        process = start()
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres", restart=restart)
    except subprocess.CalledProcessError as error:
        raise PostgresUnavailable(f"initdb failed: {error.stderr.decode()[-2000:]}") from error
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
