"""Past one machine, on one machine: a PostgreSQL primary and its streaming replica, PgBouncer in transaction
mode in front of both, API processes (real uvicorn, through the CLI) and HAProxy balancing HTTP and WebSocket
across them. Every server is a real one from Debian's packages, installed when missing (as ./dev test does),
started here and stopped at the end. Used by tests/test_topology.py, and by the benchmarks for PgBouncer.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.cli import PROJECT_ROOT, cli_environment, free_port, run_cli, wait_until_ready
from tests.throwaway_postgres import PostgresCluster, PostgresUnavailable

DATABASE = "auditgraph"
REPLICA_DATABASE = "auditgraph_replica"
SECRET_KEY = "topology-secret-key-that-is-long-enough-0123456789"


class ServerUnavailable(RuntimeError):
    """A server this topology needs cannot be had here (the tests skip, or fail under CI=true)."""


def debian_tool(command: str, package: str) -> str:
    """The path of `command`, installing its Debian package when it is missing (as ./dev's need_apt does)."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ServerUnavailable(f"{command} is missing and there is no apt-get to install {package}")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", "-qq", package]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, capture_output=True, env=environment).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], capture_output=True, env=environment)
        installed = subprocess.run(install, capture_output=True, text=True, env=environment)
        if installed.returncode != 0:
            raise ServerUnavailable(f"apt-get could not install {package}: {installed.stderr[-500:]}")
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if not found:
        raise ServerUnavailable(f"{package} is installed but {command} is not on the PATH")
    return found


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServerUnavailable(f"{what} did not listen on port {port}")


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Replica(PostgresCluster):
    """A hot standby of `primary`, copied with pg_basebackup -R: it streams and replays the primary's WAL."""

    def __init__(self, workdir: Path, primary: PostgresCluster) -> None:
        super().__init__(workdir, hot_standby="on")
        self.primary = primary

    def initialise(self) -> None:
        try:
            subprocess.run(
                [*self.as_postgres, str(self.bindir / "pg_basebackup"), "-h", self.primary.server.host,
                 "-p", str(self.primary.server.port), "-U", "postgres", "-D", str(self.datadir),
                 "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"],
                check=True, capture_output=True,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresUnavailable(f"pg_basebackup failed: {error.stderr.decode()[-2000:]}") from error


class PgBouncer:
    """PgBouncer in transaction mode, with one entry per database: {name: (PostgreSQL's port, its database)}."""

    def __init__(self, workdir: Path, databases: dict[str, tuple[int, str]]) -> None:
        self.binary = debian_tool("pgbouncer", "pgbouncer")
        self.workdir = workdir
        self.port = free_port()
        # PgBouncer refuses to run as root.
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.config = workdir / "pgbouncer.ini"
        (workdir / "userlist.txt").write_text('"postgres" ""\n')
        entries = "\n".join(f"{name} = host=127.0.0.1 port={port} dbname={database}"
                             for name, (port, database) in databases.items())
        self.config.write_text(f"""\
[databases]
{entries}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
""")
        if self.as_postgres:
            for path in (workdir, self.config, workdir / "userlist.txt"):
                shutil.chown(path, "postgres", "postgres")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen([*self.as_postgres, self.binary, str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, "pgbouncer")

    def stop(self) -> None:
        """SIGTERM: PgBouncer's immediate shutdown, every client and server connection cut."""
        stop_process(self.process)
        self.process = None


@dataclass
class ApiProcess:
    """One `auditgraph serve` (uvicorn), its log in a file: a pipe nobody reads would stall it."""

    port: int
    environment: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "graph.cli", "serve", "--port", str(self.port)],
                cwd=PROJECT_ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT)

    def wait_until_ready(self) -> None:
        assert self.process is not None
        wait_until_ready(self.base_url, self.process, timeout=120)

    def start(self) -> None:
        self.launch()
        self.wait_until_ready()

    def kill(self) -> None:
        """SIGKILL: the process vanishes mid-request, its sockets cut, as when a host dies."""
        stop_process(self.process, signal.SIGKILL)
        self.process = None

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


class HAProxy:
    """Round robin over the API processes, for HTTP and WebSocket, with /readyz as the health check."""

    def __init__(self, workdir: Path, api_ports: list[int]) -> None:
        self.binary = debian_tool("haproxy", "haproxy")
        self.port = free_port()
        self.config = workdir / "haproxy.cfg"
        servers = "\n".join(f"    server api{number} 127.0.0.1:{port} check"
                            for number, port in enumerate(api_ports, 1))
        self.config.write_text(f"""\
global
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 120s
    # A connection a dead process refuses is tried again on another one.
    retries 3
    option redispatch 1
    # Each request balanced on its own, not each client connection.
    option http-server-close

frontend api
    bind 127.0.0.1:{self.port}
    default_backend apis

backend apis
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
{servers}
""")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-db", "-f", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, "haproxy")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


@dataclass
class Topology:
    primary: PostgresCluster
    replica: Replica
    pgbouncer: PgBouncer
    apis: list[ApiProcess]
    haproxy: HAProxy
    data_dir: Path
    settings: dict[str, str] = field(default_factory=dict)

    def primary_dsn(self) -> str:
        return self.primary.server.dsn(DATABASE)

    def replica_dsn(self) -> str:
        return self.replica.server.dsn(DATABASE)


def _create_database(primary: PostgresCluster) -> None:
    subprocess.run([str(primary.bindir / "createdb"), "-h", primary.server.host, "-p", str(primary.server.port),
                    "-U", "postgres", DATABASE], check=True, capture_output=True)


@contextlib.contextmanager
def topology(api_processes: int = 3, **settings: str) -> Iterator[Topology]:
    """Every server started, the schema migrated; all stopped and removed afterwards."""
    debian_tool("pgbouncer", "pgbouncer")
    debian_tool("haproxy", "haproxy")
    root = Path(tempfile.mkdtemp(prefix="auditgraph-topology-"))
    # The servers that run as the postgres user reach their own folders inside.
    root.chmod(0o711)
    started: list[object] = []
    try:
        (root / "primary").mkdir()
        (root / "replica").mkdir()
        (root / "pgbouncer").mkdir()
        data_dir = root / "data"
        data_dir.mkdir()
        # A commit returns once its WAL is written, and so can reach the replica: as in production.
        primary = PostgresCluster(root / "primary", synchronous_commit="on")
        primary.initialise()
        primary.start()
        started.append(primary)
        _create_database(primary)
        migrated = run_cli("migrate", DATABASE_URL=primary.server.dsn(DATABASE), DATA_DIR=str(data_dir),
                           SECRET_KEY=SECRET_KEY)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        replica = Replica(root / "replica", primary)
        replica.initialise()
        replica.start()
        started.append(replica)
        pgbouncer = PgBouncer(root / "pgbouncer", {DATABASE: (primary.server.port, DATABASE),
                                                   REPLICA_DATABASE: (replica.server.port, DATABASE)})
        pgbouncer.start()
        started.append(pgbouncer)
        environment = cli_environment(
            DATABASE_URL=pgbouncer.url(DATABASE),
            DATABASE_POOLER="transaction",
            LISTEN_DATABASE_URL=primary.server.dsn(DATABASE),
            REPLICA_DATABASE_URL=pgbouncer.url(REPLICA_DATABASE),
            DATA_DIR=str(data_dir),
            SECRET_KEY=SECRET_KEY,
            LOG_FORMAT="json",
            **settings,
        )
        apis = [ApiProcess(free_port(), environment, root / f"api{number}.log") for number in range(api_processes)]
        for api in apis:
            api.launch()
            started.append(api)
        for api in apis:
            api.wait_until_ready()
        haproxy = HAProxy(root, [api.port for api in apis])
        haproxy.start()
        started.append(haproxy)
        yield Topology(primary, replica, pgbouncer, apis, haproxy, data_dir, environment)
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_pgbouncer(databases: dict[str, tuple[int, str]]) -> Iterator[PgBouncer]:
    """PgBouncer alone (the benchmarks put it in front of their own PostgreSQL), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="auditgraph-pgbouncer-"))
    try:
        bouncer = PgBouncer(workdir, databases)
        bouncer.start()
        try:
            yield bouncer
        finally:
            bouncer.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
